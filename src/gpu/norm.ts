// Launchers of kernels/norm.wgsl: RMSNorm over rows (createRmsNorm, with llama.cpp's activation
// round trip of the normed rows in the same dispatch: RMS_NORM_Q) and the per-head Q/K norm + RoPE
// (createQKNormRope: Q alone, Q and K, Q's f16 round trip, the KV cache write, llama3's rope_freqs).
import { GGMLType } from '../../gguf/types.js';
import { actQuantBlock, type ActQuantType } from './actquant.js';
import { checkPositions, kvDefines, KvWriteLaunch, positioned, type KvCache } from './attention.js';
import { buildLaunch, buildSteps, checkWg, need, unref, type BufferRef, type DispatchPlan } from './steps.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, linearGrid, Launch, uniformSpec, type Defines, type KernelSpec } from '../runtime/pipelines.js';

export const RMS_NORM: KernelSpec = {
  file: 'norm.wgsl',
  entryPoint: 'rms_norm',
  defines: { RMS_NORM: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'read-only-storage' },
    { binding: 2, name: 'weight', kind: 'read-only-storage' },
    { binding: 3, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('NormParams', [
    ['n', 'u32'],
    ['rows', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
    ['eps', 'f32'],
    ['_pad0', 'u32'],
  ]),
  overrides: ['WG'],
};

/**
 * rms_norm that also writes the normed rows through llama.cpp's activation round trip (binding 4,
 * out_q); one ROUND_* define per vec_dot_type.
 */
export const RMS_NORM_Q: KernelSpec = {
  ...RMS_NORM,
  entryPoint: 'rms_norm_q',
  defines: { RMS_NORM_Q: true },
  variants: [{ ROUND_Q8_K: true }, { ROUND_Q8_0: true }, { ROUND_F16: true }, { ROUND_BF16: true }],
  bindings: [...RMS_NORM.bindings, { binding: 4, name: 'out_q', kind: 'storage' }],
};

export const QK_NORM_ROPE: KernelSpec = {
  file: 'norm.wgsl',
  entryPoint: 'qk_norm_rope',
  defines: { QK_NORM_ROPE: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'storage' },
    { binding: 2, name: 'weight', kind: 'read-only-storage' },
    { binding: 3, name: 'pos', kind: 'read-only-storage' },
  ],
  uniform: uniformSpec('RopeParams', [
    ['n_heads', 'u32'],
    ['head_dim', 'u32'],
    ['n_rot', 'u32'],
    ['n_tokens', 'u32'],
    ['x_offset', 'u32'],
    ['token_stride', 'u32'],
    ['pos_offset', 'u32'],
    ['eps', 'f32'],
    ['theta_scale', 'f32'],
    ['k_heads', 'u32'],
    ['k_offset', 'u32'],
    ['k_stride', 'u32'],
    ['pos0', 'u32'],
    ['head_dim_v', 'u32'],
    ['v_offset', 'u32'],
    ['v_stride', 'u32'],
    ['freq_scale', 'f32'],
    ['ext_factor', 'f32'],
    ['corr_lo', 'f32'],
    ['corr_hi', 'f32'],
    ['mscale', 'f32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
    ['_pad2', 'u32'],
  ]),
  overrides: ['WG', 'NORM', 'ROPE_NORM'],
};

/** qk_norm_rope over the Q and the K heads in one dispatch. */
export const QK_NORM_ROPE_PAIR: KernelSpec = {
  ...QK_NORM_ROPE,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true },
  bindings: [...QK_NORM_ROPE.bindings, { binding: 4, name: 'kx', kind: 'storage' }, { binding: 5, name: 'k_weight', kind: 'read-only-storage' }],
};

/** QK_NORM_ROPE_PAIR that also writes Q rounded to f16 (llama.cpp's round trip before an F16 K·q). */
export const QK_NORM_ROPE_PAIR_F16: KernelSpec = {
  ...QK_NORM_ROPE_PAIR,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true, Q_ROUND_F16: true },
  bindings: [...QK_NORM_ROPE_PAIR.bindings, { binding: 6, name: 'q_r', kind: 'storage' }],
};

/** The KV cache bindings of the KV variants; positions come from the uniform (no binding 3). */
const KV_CACHE_BINDINGS = [
  { binding: 7, name: 'v_new', kind: 'read-only-storage' },
  { binding: 8, name: 'k_cache', kind: 'storage' },
  { binding: 9, name: 'v_cache', kind: 'storage' },
] as const;
/** an f32 (no define) or f16 (KV_F16) cache */
const KV_CACHE_VARIANTS = [{}, { KV_F16: true }] as const;

/** QK_NORM_ROPE_PAIR that also writes K (roped) and V into the KV cache at positions pos0 + t. */
export const QK_NORM_ROPE_PAIR_KV: KernelSpec = {
  ...QK_NORM_ROPE_PAIR,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true, KV: true },
  variants: KV_CACHE_VARIANTS,
  bindings: [...QK_NORM_ROPE_PAIR.bindings.filter((b) => b.name !== 'pos'), ...KV_CACHE_BINDINGS],
};

/** QK_NORM_ROPE_PAIR_F16 with the KV cache write of QK_NORM_ROPE_PAIR_KV. */
export const QK_NORM_ROPE_PAIR_F16_KV: KernelSpec = {
  ...QK_NORM_ROPE_PAIR_F16,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true, Q_ROUND_F16: true, KV: true },
  variants: KV_CACHE_VARIANTS,
  bindings: [...QK_NORM_ROPE_PAIR_F16.bindings.filter((b) => b.name !== 'pos'), ...KV_CACHE_BINDINGS],
};

/** A qk_norm_rope spec with llama3's rope_freqs bound (FREQ_FACTORS, binding 10). */
function withFreqFactors(spec: KernelSpec): KernelSpec {
  return { ...spec, defines: { ...spec.defines, FREQ_FACTORS: true }, bindings: [...spec.bindings, { binding: 10, name: 'freq_factors', kind: 'read-only-storage' }] };
}
export const QK_NORM_ROPE_PAIR_KV_FF = withFreqFactors(QK_NORM_ROPE_PAIR_KV);
export const QK_NORM_ROPE_PAIR_F16_KV_FF = withFreqFactors(QK_NORM_ROPE_PAIR_F16_KV);

// ------------------------------------------------------------------------------------------------
// RMSNorm
// ------------------------------------------------------------------------------------------------

export interface RmsNormArgs {
  /** f32 [rows, xStride] */
  x: BufferRef;
  /** f32 [n] */
  weight: BufferRef;
  /** f32 [rows, outStride]; must not overlap x */
  out: BufferRef;
  n: number;
  rows?: number;
  eps: number;
  xStride?: number;
  outStride?: number;
  workgroupSize?: number;
  /**
   * Also write the normed rows through llama.cpp's activation round trip of `type` (bit for bit as
   * createActQuant on `out`) into `out`, f32 [rows, n] contiguous from offset 0 (numerics 'llamacpp':
   * the input of the products that read the norm, in the same dispatch).
   */
  round?: { type: ActQuantType; out: GPUBuffer };
}

/** The ROUND_* define of rms_norm_q for a round-trip type. */
function roundDefine(type: ActQuantType): Defines {
  switch (type) {
    case GGMLType.Q8_K:
      return { ROUND_Q8_K: true };
    case GGMLType.Q8_0:
    case GGMLType.Q8_1:
      return { ROUND_Q8_0: true };
    case GGMLType.F16:
      return { ROUND_F16: true };
    default:
      return { ROUND_BF16: true };
  }
}

/**
 * out = RMSNorm(x) ⊙ weight per row (with `round`: and its round trip into round.out, one dispatch).
 * setCount(n) sets the number of rows.
 */
export async function createRmsNorm(ctx: GPUContext, a: RmsNormArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 128;
  checkWg('rms_norm', wg, ctx);
  const x = unref(a.x);
  const weight = unref(a.weight);
  const out = unref(a.out);
  const xStride = a.xStride ?? a.n;
  const outStride = a.outStride ?? a.n;
  if (weight.offset !== 0) throw new KernelError('rms_norm: the weight must start at offset 0 of its buffer');
  need('rms_norm weight', weight, a.n);
  const round = a.round;
  if (round) {
    const block = actQuantBlock(round.type);
    if (a.n % block !== 0) throw new RangeError(`rms_norm: row length ${a.n} is not a multiple of the round trip's block ${block}`);
  }
  const check = (rows: number) => {
    need('rms_norm x', x, (rows - 1) * xStride + a.n);
    need('rms_norm out', out, (rows - 1) * outStride + a.n);
    if (round) need('rms_norm out_q', { buffer: round.out, offset: 0 }, rows * a.n);
  };
  const rows = a.rows ?? 1;
  check(rows);
  const plan: DispatchPlan = {
    uniform: { n: a.n, rows, x_offset: x.offset, x_stride: xStride, out_offset: out.offset, out_stride: outStride, eps: a.eps },
    buffers: round ? { x: x.buffer, weight: weight.buffer, out: out.buffer, out_q: round.out } : { x: x.buffer, weight: weight.buffer, out: out.buffer },
    workgroups: linearGrid(ctx, rows),
  };
  const [label, spec, defines] = round ? ['rms_norm_q', RMS_NORM_Q, roundDefine(round.type)] as const : ['rms_norm', RMS_NORM, {}] as const;
  return buildLaunch(ctx, label, spec, defines, { WG: wg }, [plan], { check, field: 'rows', workgroups: (n) => linearGrid(ctx, n) });
}

// ------------------------------------------------------------------------------------------------
// Q/K norm and RoPE
// ------------------------------------------------------------------------------------------------

export interface QKNormRopeArgs {
  /** f32 [nTokens, tokenStride]: heads of token t at offset + t·tokenStride, head h at + h·headDim (in place) */
  x: BufferRef;
  /** f32 [headDim] norm weight (attn_q_norm / attn_k_norm); ignored with norm = false but must be bound */
  weight: BufferRef;
  /** u32 [nTokens] positions; required without `kv`, not read with it (positions are pos0 + t) */
  positions?: BufferRef;
  nHeads: number;
  headDim: number;
  /** rotated dimensions, default headDim */
  nRot?: number;
  nTokens?: number;
  /** default nHeads·headDim */
  tokenStride?: number;
  eps: number;
  /** rope.freq_base */
  base: number;
  /** RMSNorm each head before rotating (qwen3), default true */
  norm?: boolean;
  /** RoPE pairs: 'neox' (i, i + nRot/2; default) or 'norm' (2i, 2i + 1: llama) */
  style?: 'neox' | 'norm';
  /** (with kv) llama3's rope_freqs, f32 [nRot/2]: θ_i divided by freqFactors[i] */
  freqFactors?: GPUBuffer;
  /** θ multiplied by this (linear rope scaling), default 1 */
  freqScale?: number;
  /** YaRN (config.ts AttentionSpec.yarn), default none */
  yarn?: { extFactor: number; corrDims: [number, number]; mscale: number };
  workgroupSize?: number;
  /** K heads rotated in the same dispatch (same head_dim, n_rot, positions, eps, base) */
  k?: { x: BufferRef; weight: BufferRef; nHeads: number; tokenStride?: number };
  /**
   * (with k) Q's values also rounded to f16 into this buffer, f32 [nTokens, nHeads·headDim]
   * contiguous: llama.cpp's activation round trip before an F16 product (act_quant to_f16)
   */
  qRoundF16?: GPUBuffer;
  /** (with k) also write the KV cache in the same dispatch: see QKNormRopeKv */
  kv?: QKNormRopeKv;
}

/**
 * The KV cache write folded into createQKNormRope: token t's roped K heads and its V heads go to
 * cache position pos0 + t, converted as createKvWrite converts them (the same bits). Token t is then
 * also rotated at position pos0 + t (no positions buffer: one sequence, contiguous positions).
 * cache.nHeadKv must be k.nHeads and cache.headDimK the head_dim.
 */
export interface QKNormRopeKv {
  cache: KvCache;
  /** f32 V of the new tokens: token t's [nHeadKv·headDimV] at offset + t·vStride */
  v: BufferRef;
  /** default nHeadKv·headDimV */
  vStride?: number;
  /** position of token 0, default 0; update() / setPosition() change it */
  pos0?: number;
}

/**
 * Per-head RMSNorm (optional) and NEOX RoPE, in place; positions are read from a GPU buffer so a
 * decode step only writes the position. setCount(n) sets the number of tokens.
 * With `kv` (and `k`): the same dispatch also writes K and V into the KV cache (createKvWrite's
 * job), and the launch is a KvWriteLaunch: update(n, pos0) / setPosition(pos0) set the positions
 * (of the rotation and of the cache rows), setCount(n) the tokens at the current pos0.
 */
export function createQKNormRope(ctx: GPUContext, a: QKNormRopeArgs & { kv: QKNormRopeKv }): Promise<KvWriteLaunch>;
export function createQKNormRope(ctx: GPUContext, a: QKNormRopeArgs): Promise<Launch>;
export async function createQKNormRope(ctx: GPUContext, a: QKNormRopeArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 64;
  checkWg('qk_norm_rope', wg, ctx);
  const nRot = a.nRot ?? a.headDim;
  if (nRot % 2 !== 0 || nRot > a.headDim) throw new KernelError(`qk_norm_rope: n_rot ${nRot} must be even and ≤ head_dim ${a.headDim}`);
  const x = unref(a.x);
  const weight = unref(a.weight);
  if (weight.offset !== 0) throw new KernelError('qk_norm_rope: the weight must start at offset 0 of its buffer');
  const tokenStride = a.tokenStride ?? a.nHeads * a.headDim;
  const k = a.k ? { x: unref(a.k.x), weight: unref(a.k.weight), nHeads: a.k.nHeads, tokenStride: a.k.tokenStride ?? a.k.nHeads * a.headDim } : null;
  if (a.qRoundF16 && !k) throw new KernelError('qk_norm_rope: qRoundF16 needs the K heads (k) too');
  if (k && k.weight.offset !== 0) throw new KernelError('qk_norm_rope: the K weight must start at offset 0 of its buffer');
  const kv = a.kv ? { cache: a.kv.cache, v: unref(a.kv.v), vStride: a.kv.vStride ?? a.kv.cache.nHeadKv * a.kv.cache.headDimV } : null;
  if (kv) {
    if (!k) throw new KernelError('qk_norm_rope: kv needs the K heads (k) too');
    if (kv.cache.nHeadKv !== k.nHeads || kv.cache.headDimK !== a.headDim) {
      throw new KernelError(`qk_norm_rope: the cache holds ${kv.cache.nHeadKv} heads of ${kv.cache.headDimK}, K has ${k.nHeads} of ${a.headDim}`);
    }
  }
  const pos = a.positions ? unref(a.positions) : null;
  if (!kv && !pos) throw new KernelError('qk_norm_rope: positions are needed (without kv)');
  const check = (n: number) => {
    need('qk_norm_rope x', x, (n - 1) * tokenStride + a.nHeads * a.headDim);
    if (!kv) need('qk_norm_rope positions', pos!, n);
    if (k) need('qk_norm_rope k', k.x, (n - 1) * k.tokenStride + k.nHeads * a.headDim);
    if (a.qRoundF16) need('qk_norm_rope q_r', { buffer: a.qRoundF16, offset: 0 }, n * a.nHeads * a.headDim);
    if (kv) need('qk_norm_rope v', kv.v, (n - 1) * kv.vStride + kv.cache.nHeadKv * kv.cache.headDimV);
  };
  const nTokens = a.nTokens ?? 1;
  const pos0 = a.kv?.pos0 ?? 0;
  if (kv) checkPositions(kv.cache, pos0, nTokens);
  check(nTokens);
  need('qk_norm_rope weight', weight, a.norm === false ? 1 : a.headDim);
  if (k) need('qk_norm_rope k weight', k.weight, a.norm === false ? 1 : a.headDim);
  const buffers: Record<string, GPUBuffer> = { x: x.buffer, weight: weight.buffer };
  if (!kv) buffers.pos = pos!.buffer;
  if (k) Object.assign(buffers, { kx: k.x.buffer, k_weight: k.weight.buffer });
  if (a.qRoundF16) buffers.q_r = a.qRoundF16;
  if (kv) Object.assign(buffers, { v_new: kv.v.buffer, k_cache: kv.cache.k, v_cache: kv.cache.v });
  const uniform = {
    n_heads: a.nHeads,
    head_dim: a.headDim,
    n_rot: nRot,
    n_tokens: nTokens,
    x_offset: x.offset,
    token_stride: tokenStride,
    pos_offset: pos && !kv ? pos.offset : 0,
    eps: a.eps,
    theta_scale: Math.fround(Math.pow(a.base, -2 / nRot)),
    k_heads: k?.nHeads ?? 0,
    k_offset: k?.x.offset ?? 0,
    k_stride: k?.tokenStride ?? 0,
    pos0,
    head_dim_v: kv?.cache.headDimV ?? 0,
    v_offset: kv?.v.offset ?? 0,
    v_stride: kv?.vStride ?? 0,
    freq_scale: a.freqScale ?? 1,
    ext_factor: a.yarn?.extFactor ?? 0,
    corr_lo: a.yarn?.corrDims[0] ?? 0,
    corr_hi: a.yarn?.corrDims[1] ?? 0,
    mscale: a.yarn?.mscale ?? 1,
  };
  const workgroups: [number, number, number] = [a.nHeads + (k?.nHeads ?? 0), nTokens, 1];
  const constants = { WG: wg, NORM: a.norm !== false, ROPE_NORM: a.style === 'norm' };
  if (a.freqFactors) {
    if (!kv) throw new KernelError('qk_norm_rope: freqFactors needs the KV variant (kv)');
    need('qk_norm_rope freq_factors', { buffer: a.freqFactors, offset: 0 }, nRot / 2);
    buffers.freq_factors = a.freqFactors;
  }
  if (!kv) {
    const spec = a.qRoundF16 ? QK_NORM_ROPE_PAIR_F16 : k ? QK_NORM_ROPE_PAIR : QK_NORM_ROPE;
    return buildLaunch(ctx, 'qk_norm_rope', spec, {}, constants, [{ uniform, buffers, workgroups }], { check, field: 'n_tokens', workgroups: (n, [x]) => [x, n, 1] });
  }
  const spec = a.freqFactors
    ? a.qRoundF16 ? QK_NORM_ROPE_PAIR_F16_KV_FF : QK_NORM_ROPE_PAIR_KV_FF
    : a.qRoundF16 ? QK_NORM_ROPE_PAIR_F16_KV : QK_NORM_ROPE_PAIR_KV;
  const launch = await buildSteps(
    ctx,
    'qk_norm_rope_kv',
    [{ spec, defines: kvDefines(kv.cache), constants, uniform, buffers, workgroups }],
    (d, u) => new KvWriteLaunch('qk_norm_rope_kv', d, u),
  );
  const checkKv = (n: number, p0: number) => {
    checkPositions(kv.cache, p0, n);
    check(n);
  };
  return positioned(launch, nTokens, pos0, ['n_tokens', 'pos0'], checkKv, (n) => [workgroups[0], n, 1]);
}
