// TypeScript launchers of the MoE kernels: routing (kernels/moe_route.wgsl), the decode expert FFN
// (kernels/moe_ffn.wgsl) and the prefill expert FFN (kernels/moe_group.wgsl + kernels/moe_mm.wgsl).
// The router's top-k ids and weights stay on the GPU: the FFN kernels read them there, so a
// forward pass never reads expert ids back to the CPU, and only the chosen experts' weights are read.
//
// Expert stacks are WeightTensors uploaded with splits on expert boundaries (uploadWeight's default
// for 3-D tensors): gate/up [n_embd, n_ff, n_expert], down [n_ff, n_embd, n_expert].
import { createStorage, partBinding, type BindingBuffer, type WeightPart, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { grid2d, KernelError, linearGrid, uniformSpec, type Defines, type KernelSpec } from '../runtime/pipelines.js';
import { actQuantStep, type ActQuantType } from './actquant.js';
import { prologueConfig } from './prologue.js';
import { buildSteps, checkWeight, countSetter, checkWg, FusedKernelUnsupported, need, StepLaunch, TYPE_VARIANTS, typeDefine, unref, type BufferRef, type StepPlan } from './steps.js';

// ------------------------------------------------------------------------------------------------
// Specs
// ------------------------------------------------------------------------------------------------

export const MOE_ROUTE: KernelSpec = {
  file: 'moe_route.wgsl',
  entryPoint: 'main',
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'logits', kind: 'read-only-storage' },
    { binding: 2, name: 'ids', kind: 'storage' },
    { binding: 3, name: 'weights', kind: 'storage' },
  ],
  uniform: uniformSpec('RouteParams', [
    ['n_tokens', 'u32'],
    ['n_expert', 'u32'],
    ['k', 'u32'],
    ['normalize', 'u32'],
    ['logits_offset', 'u32'],
    ['logits_stride', 'u32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
  ]),
  overrides: ['WG', 'MAX_EXPERT', 'MAX_K', 'TOPK_LANES'],
};

const SUBGROUP_TYPE_VARIANTS: readonly Defines[] = [...TYPE_VARIANTS.flatMap((d) => [d, { ...d, SUBGROUPS: true }]), { Q6_K: true, ROW_THREADS: true }];

const MOE_FFN_PARAMS = uniformSpec('MoeFfnParams', [
  ['cols', 'u32'],
  ['rows', 'u32'],
  ['row_bytes', 'u32'],
  ['n_wg', 'u32'],
  ['x_offset', 'u32'],
  ['x_stride', 'u32'],
  ['y_offset', 'u32'],
  ['y_stride', 'u32'],
  ['ids_offset', 'u32'],
  ['k', 'u32'],
  ['expert_first', 'u32'],
  ['expert_count', 'u32'],
  ['rw_offset', 'u32'],
  ['gate_base', 'u32'],
  ['up_base', 'u32'],
  ['n_expert', 'u32'],
  ['normalize', 'u32'],
  ['logits_offset', 'u32'],
  ['write_route', 'u32'],
  ['_pad0', 'u32'],
  ['_pad1', 'u32'],
  ['_pad2', 'u32'],
  ['_pad3', 'u32'],
  ['_pad4', 'u32'],
]);
const MOE_FFN_BINDINGS = [
  { binding: 0, name: 'P', kind: 'uniform' },
  { binding: 1, name: 'w', kind: 'read-only-storage' },
  { binding: 2, name: 'x', kind: 'read-only-storage' },
  { binding: 3, name: 'y', kind: 'storage' },
  { binding: 4, name: 'ids', kind: 'read-only-storage' },
] as const;

/** Decode gate projection of every chosen expert: act[s] = W_gate[e_s]·x[t]. */
export const MOE_FFN_GATE: KernelSpec = {
  file: 'moe_ffn.wgsl',
  entryPoint: 'main',
  defines: { GATE_UP: true },
  variants: SUBGROUP_TYPE_VARIANTS,
  bindings: MOE_FFN_BINDINGS,
  uniform: MOE_FFN_PARAMS,
  overrides: ['WG', 'ROWS'],
};
/** Decode up projection with SwiGLU in place: act[s] = silu(act[s])·(W_up[e_s]·x[t]). */
export const MOE_FFN_UP: KernelSpec = { ...MOE_FFN_GATE, defines: { GATE_UP: true, SWIGLU: true } };
/** Decode down projection, weighted sum over the k experts and residual: y[t] += Σ_j w·W_down[e]·act. */
export const MOE_FFN_DOWN: KernelSpec = {
  ...MOE_FFN_GATE,
  defines: { DOWN: true },
  bindings: [...MOE_FFN_BINDINGS, { binding: 5, name: 'rw', kind: 'read-only-storage' }],
};

/** A few weight types with a round trip of the prologue (PRE_*), for the binding reflection test. */
const PROLOGUE_VARIANTS: readonly Defines[] = [
  { Q4_K: true, PRE_Q8_K: true },
  { Q8_0: true, PRE_Q8_0: true, SUBGROUPS: true },
  { F16: true, PRE_F16: true },
  { BF16: true, PRE_BF16: true, SUBGROUPS: true },
  { Q4_K: true, PRE_Q8_K: true, ROW_THREADS: true, INT_DOT: true },
  { Q6_K: true, PRE_Q8_K: true, ROW_THREADS: true, INT_DOT: true },
];
/** A spec with the input round trip in its prologue (numerics 'llamacpp'; prologue.wgsl's overrides). */
function withPrologue(spec: KernelSpec): KernelSpec {
  return { ...spec, defines: { ...spec.defines, PROLOGUE: true }, variants: PROLOGUE_VARIANTS, overrides: [...(spec.overrides ?? []), 'PRO_COLS', 'PRO_ROWS', 'PRO_NORM_WG'] };
}
/** MOE_FFN_DOWN with the k activation rows through down's round trip inside the dispatch. */
export const MOE_FFN_DOWN_PRO = withPrologue(MOE_FFN_DOWN);
/**
 * Decode gate and up of every chosen expert in one dispatch, gate and up co-located in one buffer
 * (read through one binding): act[s] = silu(W_gate[e_s]·x[t]) ⊙ (W_up[e_s]·x[t]).
 */
export const MOE_FFN_GU: KernelSpec = { ...MOE_FFN_GATE, defines: { GU: true } };
/**
 * MOE_FFN_GU routing the token itself from its router logits (softmax → top-k → renormalize, the
 * bits of moe_route.wgsl): writes ids and weights for the down dispatch.
 */
export const MOE_FFN_GU_TOPK: KernelSpec = {
  ...MOE_FFN_GATE,
  defines: { GU: true, TOPK: true },
  bindings: [
    ...MOE_FFN_BINDINGS.slice(0, 4),
    { binding: 4, name: 'ids', kind: 'storage' },
    { binding: 5, name: 'rw', kind: 'storage' },
    { binding: 6, name: 'logits', kind: 'read-only-storage' },
  ],
  overrides: ['WG', 'ROWS', 'MAX_EXPERT', 'MAX_K', 'TOPK_LANES'],
};
/** MOE_FFN_GU / MOE_FFN_GU_TOPK with x through gate/up's round trip inside the dispatch. */
export const MOE_FFN_GU_PRO = withPrologue(MOE_FFN_GU);
export const MOE_FFN_GU_TOPK_PRO = withPrologue(MOE_FFN_GU_TOPK);

export const MOE_GROUP: KernelSpec = {
  file: 'moe_group.wgsl',
  entryPoint: 'main',
  defines: { GROUP: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'ids', kind: 'read-only-storage' },
    { binding: 2, name: 'sorted', kind: 'storage' },
    { binding: 3, name: 'tiles', kind: 'storage' },
    { binding: 4, name: 'args', kind: 'storage' },
  ],
  uniform: uniformSpec('GroupParams', [
    ['n_pairs', 'u32'],
    ['n_expert', 'u32'],
    ['tile_n', 'u32'],
    ['ids_offset', 'u32'],
    ['row_tiles_a', 'u32'],
    ['row_tiles_b', 'u32'],
    ['max_tiles', 'u32'],
    ['_pad0', 'u32'],
  ]),
  overrides: ['WG', 'MAX_EXPERT'],
};

export const MOE_COMBINE: KernelSpec = {
  file: 'moe_group.wgsl',
  entryPoint: 'main',
  defines: { COMBINE: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'ye', kind: 'read-only-storage' },
    { binding: 2, name: 'rw', kind: 'read-only-storage' },
    { binding: 3, name: 'y', kind: 'storage' },
  ],
  uniform: uniformSpec('CombineParams', [
    ['n', 'u32'],
    ['k', 'u32'],
    ['n_tokens', 'u32'],
    ['ye_offset', 'u32'],
    ['rw_offset', 'u32'],
    ['y_offset', 'u32'],
    ['y_stride', 'u32'],
    ['_pad0', 'u32'],
  ]),
  overrides: ['WG'],
};

export const MOE_MM: KernelSpec = {
  file: 'moe_mm.wgsl',
  entryPoint: 'main',
  variants: TYPE_VARIANTS,
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'w', kind: 'read-only-storage' },
    { binding: 2, name: 'x', kind: 'read-only-storage' },
    { binding: 3, name: 'y', kind: 'storage' },
    { binding: 4, name: 'sorted', kind: 'read-only-storage' },
    { binding: 5, name: 'tiles', kind: 'read-only-storage' },
  ],
  uniform: uniformSpec('MoeMmParams', [
    ['cols', 'u32'],
    ['rows', 'u32'],
    ['row_bytes', 'u32'],
    ['expert_first', 'u32'],
    ['expert_count', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['x_div', 'u32'],
    ['y_offset', 'u32'],
    ['y_stride', 'u32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
  ]),
  overrides: ['WG_M', 'WG_N'],
};
/** moe_mm with SwiGLU in place (the up projection after the gate). */
export const MOE_MM_SWIGLU: KernelSpec = { ...MOE_MM, defines: { SWIGLU: true } };

const MOE_BIAS_PARAMS = uniformSpec('MoeBiasParams', [
  ['n', 'u32'],
  ['rows', 'u32'],
  ['k', 'u32'],
  ['ids_offset', 'u32'],
  ['rw_offset', 'u32'],
  ['y_offset', 'u32'],
  ['y_stride', 'u32'],
  ['u_offset', 'u32'],
  ['alpha', 'f32'],
  ['limit', 'f32'],
  ['_pad0', 'u32'],
  ['_pad1', 'u32'],
]);
/** gpt-oss: y[s] += bias[e_s] per slot (ggml add_id). */
export const MOE_BIAS_ADD_ID: KernelSpec = {
  file: 'moe_bias.wgsl',
  entryPoint: 'main',
  defines: { ADD_ID: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'y', kind: 'storage' },
    { binding: 2, name: 'ids', kind: 'read-only-storage' },
    { binding: 3, name: 'bias', kind: 'read-only-storage' },
  ],
  uniform: MOE_BIAS_PARAMS,
  overrides: ['WG'],
};
/** gpt-oss: y = swiglu_oai(y, u) (the clamped SwiGLU). */
export const MOE_BIAS_OAI: KernelSpec = {
  ...MOE_BIAS_ADD_ID,
  defines: { OAI: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'y', kind: 'storage' },
    { binding: 5, name: 'u', kind: 'read-only-storage' },
  ],
};
/** gpt-oss: y[t] += Σ_j w[t,j] · bias[e_{t,j}] (down's bias). */
export const MOE_BIAS_DOWN: KernelSpec = {
  ...MOE_BIAS_ADD_ID,
  defines: { DOWN_BIAS: true },
  bindings: [...MOE_BIAS_ADD_ID.bindings, { binding: 4, name: 'rw', kind: 'read-only-storage' }],
};

/** Every spec of this module by name (for the binding reflection test). */
export const MOE_SPECS: Readonly<Record<string, KernelSpec>> = {
  MOE_ROUTE,
  MOE_FFN_GATE,
  MOE_FFN_UP,
  MOE_FFN_DOWN,
  MOE_FFN_GU,
  MOE_FFN_GU_TOPK,
  MOE_FFN_DOWN_PRO,
  MOE_FFN_GU_PRO,
  MOE_FFN_GU_TOPK_PRO,
  MOE_GROUP,
  MOE_COMBINE,
  MOE_MM,
  MOE_MM_SWIGLU,
  MOE_BIAS_ADD_ID,
  MOE_BIAS_OAI,
  MOE_BIAS_DOWN,
};

// ------------------------------------------------------------------------------------------------
// Routing
// ------------------------------------------------------------------------------------------------

export interface MoeRouteArgs {
  /** f32 router logits: token t's [nExpert] at offset + t·logitsStride (dense F32 matvec output) */
  logits: BufferRef;
  /** u32 [nTokens, k] output: expert ids, descending probability (ties → lower id) */
  ids: BufferRef;
  /** f32 [nTokens, k] output: their weights */
  weights: BufferRef;
  nExpert: number;
  k: number;
  /** renormalize the top-k weights to sum 1 (qwen3moe, mixtral), default true */
  normalize?: boolean;
  /** default 1; setCount() changes it */
  nTokens?: number;
  /** default nExpert */
  logitsStride?: number;
  /** threads per workgroup (power of two), default 128 */
  workgroupSize?: number;
}

/** Softmax → top-k → renormalize per token, one workgroup per token. setCount(n) sets nTokens. */
export async function createMoeRoute(ctx: GPUContext, a: MoeRouteArgs): Promise<StepLaunch> {
  const { nExpert, k } = a;
  if (!(Number.isInteger(nExpert) && nExpert >= 1 && nExpert <= 4096)) throw new KernelError(`moe_route: n_expert ${nExpert} not in 1..4096`);
  if (!(Number.isInteger(k) && k >= 1 && k <= nExpert && k <= 64)) throw new KernelError(`moe_route: k ${k} not in 1..min(n_expert, 64)`);
  const wg = a.workgroupSize ?? 128;
  checkWg('moe_route', wg, ctx);
  const logits = unref(a.logits);
  const ids = unref(a.ids);
  const weights = unref(a.weights);
  const stride = a.logitsStride ?? nExpert;
  const check = (n: number) => {
    if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`moe_route: ${n} tokens`);
    need('moe_route logits', logits, (n - 1) * stride + nExpert);
    need('moe_route ids', ids, n * k);
    need('moe_route weights', weights, n * k);
  };
  const n0 = a.nTokens ?? 1;
  check(n0);
  if (ids.offset !== 0 || weights.offset !== 0) throw new KernelError('moe_route: ids and weights must start at offset 0 of their buffers');
  return buildSteps(
    ctx,
    'moe_route',
    [
      {
        spec: MOE_ROUTE,
        constants: { WG: wg, MAX_EXPERT: nExpert, MAX_K: k, TOPK_LANES: wg },
        uniform: { n_tokens: n0, n_expert: nExpert, k, normalize: a.normalize === false ? 0 : 1, logits_offset: logits.offset, logits_stride: stride },
        buffers: { logits: logits.buffer, ids: ids.buffer, weights: weights.buffer },
        workgroups: linearGrid(ctx, n0),
      },
    ],
    (d, u) => new StepLaunch('moe_route', d, u, countSetter(d, u, { check, field: 'n_tokens', workgroups: (n) => linearGrid(ctx, n) })),
  );
}

// ------------------------------------------------------------------------------------------------
// Expert FFN shapes
// ------------------------------------------------------------------------------------------------

interface Experts {
  nEmbd: number;
  nFf: number;
  nExpert: number;
}

function expertShapes(label: string, gate: WeightTensor, up: WeightTensor, down: WeightTensor): Experts {
  for (const w of [gate, up, down]) {
    checkWeight(label, w);
    if (w.shape.length !== 3) throw new KernelError(`${label}: ${w.name} is not an expert stack (shape ${w.shape.join('×')})`);
    if (w.splitRows % w.shape[1]! !== 0) throw new KernelError(`${label}: ${w.name} was split inside an expert (splitRows ${w.splitRows})`);
  }
  const [nEmbd, nFf, nExpert] = gate.shape as [number, number, number];
  const same = (w: WeightTensor, s: number[]) => w.shape.length === 3 && w.shape.every((v, i) => v === s[i]);
  if (!same(up, [nEmbd, nFf, nExpert])) throw new KernelError(`${label}: up ${up.shape.join('×')} does not match gate ${gate.shape.join('×')}`);
  if (!same(down, [nFf, nEmbd, nExpert])) throw new KernelError(`${label}: down ${down.shape.join('×')} is not [${nFf}, ${nEmbd}, ${nExpert}]`);
  return { nEmbd, nFf, nExpert };
}

// ------------------------------------------------------------------------------------------------
// Decode expert FFN
// ------------------------------------------------------------------------------------------------

export interface MoeFfnDecodeArgs {
  /** ffn_gate_exps [n_embd, n_ff, n_expert] */
  gate: WeightTensor;
  /** ffn_up_exps [n_embd, n_ff, n_expert] */
  up: WeightTensor;
  /** ffn_down_exps [n_ff, n_embd, n_expert] */
  down: WeightTensor;
  /** f32 normed hidden state: token t's [n_embd] at offset + t·xStride */
  x: BufferRef;
  /** f32 residual stream, updated in place: token t's [n_embd] at offset + t·outStride (+= Σ w·y) */
  out: BufferRef;
  /** u32 [nTokens, k] expert ids from createMoeRoute (with `route`: written by this launch) */
  ids: BufferRef;
  /** f32 [nTokens, k] expert weights from createMoeRoute (with `route`: written by this launch) */
  weights: BufferRef;
  k: number;
  /**
   * The routing too: softmax → top-k → renormalize of the router logits (moe_route.wgsl's bits),
   * into ids and weights. With gate and up co-located (pairedParts) every workgroup of the fused
   * gate/up dispatch routes its token itself (MOE_FFN_GU_TOPK); otherwise a moe_route dispatch
   * runs first.
   */
  route?: MoeFfnRoute;
  /** tokens (1 for decode; a few for small batches), default 1; setCount() changes it */
  nTokens?: number;
  /** capacity for setCount (default nTokens) */
  maxTokens?: number;
  xStride?: number;
  outStride?: number;
  /** f32 scratch [maxTokens·k, n_ff] for the activations (default: allocated) */
  act?: BufferRef;
  /**
   * numerics 'llamacpp': the SwiGLU activations go through llama.cpp's round trip of down's
   * vec_dot_type: inside the down dispatch (prologue.wgsl, k rows per workgroup) when that fits the
   * workgroup memory, else an act_quant dispatch into `out` (f32 [maxTokens·k, n_ff]), which down
   * then reads (without `out`, not fitting throws FusedKernelUnsupported)
   */
  actQuant?: { type: ActQuantType; out?: GPUBuffer };
  /**
   * numerics 'llamacpp': x is not rounded yet; the fused gate/up dispatch rounds it to this type
   * (gate/up's vec_dot_type) in its prologue. Needs the fused path (pairedParts, fuse not false)
   * and the prologue to fit: otherwise throws FusedKernelUnsupported (see moeDecodeRoundsX).
   */
  xRound?: ActQuantType;
  /**
   * fuse (default true): gate and up in one dispatch when co-located, the activations' round trip
   * inside down; false: the unfused kernels (gate, up, act_quant, down), for tests
   */
  fuse?: boolean;
  rowsPerWorkgroup?: number;
  workgroupSize?: number;
  subgroups?: boolean;
  /**
   * one thread per row (moe_ffn.wgsl ROW_THREADS): workgroupSize threads, rowsPerThread rows each
   * (1..8), each a sequential sum; no reduction. Replaces workgroupSize / rowsPerWorkgroup.
   */
  threadPerRow?: { workgroupSize: number; rowsPerThread: number };
  /** the geometry on a software adapter (ctx.adapter.isSoftware) instead of the above */
  software?: Pick<MoeFfnDecodeArgs, 'workgroupSize' | 'rowsPerWorkgroup' | 'threadPerRow'>;
  /**
   * gpt-oss (moe_bias.wgsl): biased experts and the clamped SwiGLU: act = W_gate[e]·x + b_gate[e],
   * u = W_up[e]·x + b_up[e] (a scratch of its own), act = swiglu_oai(act, u), and after down
   * out[t] += Σ_j w·b_down[e_j]. Takes the unfused projections (no xRound).
   */
  oai?: MoeOaiExperts;
}

/** gpt-oss's expert biases and clamped-SwiGLU constants. */
export interface MoeOaiExperts {
  /** ffn_gate_exps.bias f32 [nExpert, nFf] */
  gateBias: GPUBuffer;
  /** ffn_up_exps.bias f32 [nExpert, nFf] */
  upBias: GPUBuffer;
  /** ffn_down_exps.bias f32 [nExpert, nEmbd] */
  downBias: GPUBuffer;
  /** swiglu_oai's α (1.702) and limit (7) */
  alpha: number;
  limit: number;
}

/** The router logits MoeFfnDecodeArgs.route reads. */
export interface MoeFfnRoute {
  /** f32 [nTokens, nExpert] router logits (contiguous rows) */
  logits: BufferRef;
  nExpert: number;
  /** renormalize the top-k weights (default true) */
  normalize?: boolean;
  /** moe_route's workgroup size whose bits to give (default 128, createMoeRoute's default) */
  lanes?: number;
}

/**
 * True when one fused kernel can read gate and up through one binding per part: the same type,
 * the same number of parts, and part i of both in the same buffer with the same expert range
 * (the loader co-locates ffn_gate_exps and ffn_up_exps so, src/gpu/weights.ts).
 */
export function pairedParts(gate: WeightTensor, up: WeightTensor): boolean {
  return (
    gate.type === up.type &&
    gate.parts.length === up.parts.length &&
    gate.parts.every((g, i) => {
      const u = up.parts[i]!;
      return g.buffer === u.buffer && g.firstRow === u.firstRow && g.nRows === u.nRows;
    })
  );
}

/**
 * The MoE FFN of nTokens tokens over their k routed experts (ggml mul_mat_vec_id style):
 *   gate|up: act[t·k+j] = silu(W_gate[e]·x[t]) ⊙ (W_up[e]·x[t])   one dispatch (per part) when
 *            gate and up are co-located (pairedParts; with `route`, routing inside it too);
 *            otherwise gate, then up with SwiGLU in place: two
 *   down:    out[t] += Σ_j w[t,j] · W_down[e]·act[t·k+j]            one dispatch, weighted sum + residual fused
 * with e = ids[t·k + j] read on the GPU. Numerics 'llamacpp': x's round trip (xRound) in the fused
 * gate/up dispatch, the activations' (actQuant) in the down dispatch when it fits, else an
 * act_quant dispatch between. setCount(n) sets nTokens (≤ maxTokens).
 */
export async function createMoeFfnDecode(ctx: GPUContext, args: MoeFfnDecodeArgs): Promise<StepLaunch> {
  const a: MoeFfnDecodeArgs = ctx.adapter.isSoftware && args.software ? { ...args, workgroupSize: undefined, rowsPerWorkgroup: undefined, ...args.software } : args;
  const { nEmbd, nFf } = expertShapes('moe_ffn', a.gate, a.up, a.down);
  const { k } = a;
  if (!(Number.isInteger(k) && k >= 1)) throw new KernelError(`moe_ffn: k ${k}`);
  const tpr = a.threadPerRow;
  const wg = tpr?.workgroupSize ?? a.workgroupSize ?? 64;
  checkWg('moe_ffn', wg, ctx);
  // 8 rows per workgroup: every workgroup repeats its prologue (routing, RMSNorm, round trips), so
  // more rows share it (the per-row sums do not depend on ROWS: same bits)
  const rowsPer = tpr?.rowsPerThread ?? a.rowsPerWorkgroup ?? 8;
  if (!(Number.isInteger(rowsPer) && rowsPer >= 1 && rowsPer <= 8)) throw new KernelError(`moe_ffn: rows per ${tpr ? 'thread' : 'workgroup'} ${rowsPer} not in 1..8`);
  const rowsPerWg = tpr ? wg * rowsPer : rowsPer;
  const n0 = a.nTokens ?? 1;
  const maxTokens = a.maxTokens ?? n0;
  const x = unref(a.x);
  const out = unref(a.out);
  const ids = unref(a.ids);
  const rw = unref(a.weights);
  const xStride = a.xStride ?? nEmbd;
  const outStride = a.outStride ?? nEmbd;
  const ownAct = a.act ? undefined : createStorage(ctx, maxTokens * k * nFf * 4, 'moe_ffn.act');
  const act = a.act ? unref(a.act) : { buffer: ownAct!, offset: 0 };
  need('moe_ffn act', act, maxTokens * k * nFf);
  const route = a.route;
  const logits = route ? unref(route.logits) : null;
  const lanes = route?.lanes ?? 128;
  if (route) {
    const nE = route.nExpert;
    if (!(Number.isInteger(nE) && nE >= 1 && nE <= 4096)) throw new KernelError(`moe_ffn: n_expert ${nE} not in 1..4096`);
    if (!(k <= nE && k <= 64)) throw new KernelError(`moe_ffn: k ${k} not in 1..min(n_expert, 64)`);
    checkWg('moe_ffn routing lanes', lanes, ctx);
  }
  const check = (n: number) => {
    if (!(Number.isInteger(n) && n >= 1 && n <= maxTokens)) throw new RangeError(`moe_ffn: ${n} tokens, capacity ${maxTokens}`);
    need('moe_ffn x', x, (n - 1) * xStride + nEmbd);
    need('moe_ffn out', out, (n - 1) * outStride + nEmbd);
    need('moe_ffn ids', ids, n * k);
    need('moe_ffn weights', rw, n * k);
    if (logits) need('moe_ffn logits', logits, n * route!.nExpert);
  };
  check(n0);
  const sg = !tpr && (a.subgroups ?? ctx.features.subgroups);
  const rowThreads = { ROW_THREADS: !!tpr };
  const constants = { WG: wg, ROWS: rowsPer };
  const plans: StepPlan[] = [];
  const zOf: ((n: number) => number)[] = [];
  /** per step: how setCount resizes it beyond its z (the routing and round-trip steps) */
  const resize: ((n: number, launch: StepLaunch, i: number) => void)[] = [];
  const slots = (n: number) => n * k;
  const tokens = (n: number) => n;
  const expertRange = (p: WeightPart, rows: number) => ({ expert_first: p.firstRow / rows, expert_count: p.nRows / rows });
  const proj = (spec: KernelSpec, w: WeightTensor, rows: number, io: { xb: GPUBuffer; xo: number; xs: number; yb: GPUBuffer; yo: number; ys: number }, z: (n: number) => number, pro: ReturnType<typeof prologueConfig> | null = null) => {
    const nWg = Math.ceil(rows / rowsPerWg);
    const [gx, gy] = grid2d(ctx, nWg);
    for (const p of w.parts) {
      const buffers: Record<string, BindingBuffer> = { w: partBinding(p), x: io.xb, y: io.yb, ids: ids.buffer };
      if (spec === MOE_FFN_DOWN || spec === MOE_FFN_DOWN_PRO) buffers.rw = rw.buffer;
      plans.push({
        spec,
        defines: { ...typeDefine(w.type), SUBGROUPS: sg, ...rowThreads, ...(pro?.defines ?? {}) },
        constants: { ...constants, ...(pro?.constants ?? {}) },
        uniform: {
          cols: w.cols,
          rows,
          row_bytes: w.rowBytes,
          n_wg: nWg,
          x_offset: io.xo,
          x_stride: io.xs,
          y_offset: io.yo,
          y_stride: io.ys,
          ids_offset: ids.offset,
          k,
          ...expertRange(p, rows),
          rw_offset: rw.offset,
        },
        buffers,
        workgroups: [gx, gy, z(n0)],
      });
      zOf.push(z);
      resize.push(() => {});
    }
  };
  // gpt-oss's bias / activation steps (moe_bias.wgsl): one thread per element of n(count) rows
  const biasWg = 64;
  const biasGrid = (elems: number): [number, number, number] => {
    const [gx, gy] = grid2d(ctx, Math.max(1, Math.ceil(elems / biasWg)));
    return [gx, gy, 1];
  };
  const biasStep = (spec: KernelSpec, rows: number, count: (n: number) => number, buffers: Record<string, BindingBuffer>, yOffset: number, yStride: number) => {
    plans.push({
      spec,
      constants: { WG: biasWg },
      uniform: {
        n: count(n0), rows, k, ids_offset: ids.offset, rw_offset: rw.offset, y_offset: yOffset, y_stride: yStride, u_offset: 0,
        alpha: a.oai?.alpha ?? 0, limit: a.oai?.limit ?? 0,
      },
      buffers,
      workgroups: biasGrid(count(n0) * rows),
    });
    zOf.push(() => 1);
    resize.push((n, l, i) => {
      l.uniforms[i]!.set('n', count(n));
      l.dispatches[i]!.workgroups = biasGrid(count(n) * rows);
    });
  };
  const upAct = a.oai ? createStorage(ctx, maxTokens * k * nFf * 4, 'moe_ffn.up') : undefined;
  // one binding per part pair spanning gate's and up's bytes: within the largest binding
  const pairSpan = (i: number) => {
    const g = partBinding(a.gate.parts[i]!);
    const u = partBinding(a.up.parts[i]!);
    return Math.max(g.offset! + g.size!, u.offset! + u.size!) - Math.min(g.offset!, u.offset!);
  };
  const oai = a.oai;
  if (oai) {
    if (a.xRound !== undefined) throw new FusedKernelUnsupported('moe_ffn: the biased experts (oai) take the unfused projections; round x before');
    need('moe_ffn gate bias', { buffer: oai.gateBias, offset: 0 }, a.gate.shape[2]! * nFf);
    need('moe_ffn up bias', { buffer: oai.upBias, offset: 0 }, a.up.shape[2]! * nFf);
    need('moe_ffn down bias', { buffer: oai.downBias, offset: 0 }, a.down.shape[2]! * nEmbd);
  }
  const fused = !oai && (a.fuse ?? true) && pairedParts(a.gate, a.up) && a.gate.parts.every((_, i) => pairSpan(i) <= ctx.limits.maxStorageBufferBindingSize);
  const wgLimit = ctx.limits.maxComputeWorkgroupStorageSize;
  const redBytes = (acc: number) => (tpr ? 0 : 4 * wg * rowsPer * acc); // moe_ffn's red
  // gate/up's prologue: token t's x through xRound
  let xPro: ReturnType<typeof prologueConfig> | null = null;
  if (a.xRound !== undefined) {
    if (!fused) throw new FusedKernelUnsupported(`moe_ffn: x's round trip needs gate and up co-located (${a.gate.name}, ${a.up.name})`);
    xPro = prologueConfig({ cols: nEmbd, wg, norm: false, round: a.xRound, threadPerRowWeight: tpr ? a.gate.type : undefined });
    if (xPro.bytes + redBytes(2) > wgLimit) throw new FusedKernelUnsupported(`moe_ffn: gate/up prologue needs ${xPro.bytes + redBytes(2)} bytes of workgroup memory, the device allows ${wgLimit}`);
  }
  // down's prologue: the k activation rows through actQuant.type, when it fits
  let actPro: ReturnType<typeof prologueConfig> | null = null;
  if (a.actQuant && (a.fuse ?? true)) {
    try {
      const c = prologueConfig({ cols: nFf, rows: k, wg, norm: false, round: a.actQuant.type, threadPerRowWeight: tpr ? a.down.type : undefined });
      if (c.bytes + redBytes(1) <= wgLimit) actPro = c;
    } catch (e) {
      if (!(e instanceof FusedKernelUnsupported)) throw e;
    }
  }
  if (a.actQuant && !actPro && !a.actQuant.out) throw new FusedKernelUnsupported(`moe_ffn: down's round trip does not fit its dispatch and actQuant.out is not given`);
  // the routing inside the gate/up dispatch when its workgroup arrays fit too (topk.wgsl)
  const topkBytes = route ? 4 * (route.nExpert + lanes + 2 * k) : 0;
  const routeInside = !!route && fused && (xPro?.bytes ?? 0) + redBytes(2) + topkBytes <= wgLimit;
  if (route && !routeInside) {
    // routing in a dispatch of its own (moe_route.wgsl), as createMoeRoute
    plans.push({
      spec: MOE_ROUTE,
      constants: { WG: lanes, MAX_EXPERT: route.nExpert, MAX_K: k, TOPK_LANES: lanes },
      uniform: { n_tokens: n0, n_expert: route.nExpert, k, normalize: route.normalize === false ? 0 : 1, logits_offset: logits!.offset, logits_stride: route.nExpert },
      buffers: { logits: logits!.buffer, ids: ids.buffer, weights: rw.buffer },
      workgroups: linearGrid(ctx, n0),
    });
    zOf.push(() => 1);
    resize.push((n, l, i) => {
      l.uniforms[i]!.set('n_tokens', n);
      l.dispatches[i]!.workgroups = linearGrid(ctx, n);
    });
    if (ids.offset !== 0 || rw.offset !== 0) throw new KernelError('moe_ffn: with route, ids and weights must start at offset 0 of their buffers');
  }
  if (fused) {
    // gate and up in one dispatch per part pair, read through one binding spanning both
    const nWg = Math.ceil(nFf / rowsPerWg);
    const [gx, gy] = grid2d(ctx, nWg);
    a.gate.parts.forEach((gp, i) => {
      const up = a.up.parts[i]!;
      const g = partBinding(gp);
      const u = partBinding(up);
      const start = Math.min(g.offset!, u.offset!);
      const end = Math.max(g.offset! + g.size!, u.offset! + u.size!);
      const buffers: Record<string, BindingBuffer> = { w: { buffer: gp.buffer, offset: start, size: end - start }, x: x.buffer, y: act.buffer, ids: ids.buffer };
      if (routeInside) {
        buffers.rw = rw.buffer;
        buffers.logits = logits!.buffer;
      }
      plans.push({
        spec: xPro ? (routeInside ? MOE_FFN_GU_TOPK_PRO : MOE_FFN_GU_PRO) : routeInside ? MOE_FFN_GU_TOPK : MOE_FFN_GU,
        defines: { ...typeDefine(a.gate.type), SUBGROUPS: sg, ...rowThreads, ...(xPro?.defines ?? {}) },
        constants: { ...constants, ...(routeInside ? { MAX_EXPERT: route!.nExpert, MAX_K: k, TOPK_LANES: lanes } : {}), ...(xPro?.constants ?? {}) },
        uniform: {
          cols: a.gate.cols,
          rows: nFf,
          row_bytes: a.gate.rowBytes,
          n_wg: nWg,
          x_offset: x.offset,
          x_stride: xStride,
          y_offset: act.offset,
          y_stride: nFf,
          ids_offset: ids.offset,
          k,
          ...expertRange(gp, nFf),
          rw_offset: rw.offset,
          gate_base: g.offset! - start,
          up_base: u.offset! - start,
          n_expert: route?.nExpert ?? 0,
          normalize: route?.normalize === false ? 0 : 1,
          logits_offset: logits?.offset ?? 0,
          write_route: i === 0 ? 1 : 0,
        },
        buffers,
        workgroups: [gx, gy, slots(n0)],
      });
      zOf.push(slots);
      resize.push(() => {});
    });
  } else if (oai) {
    // gate + b_gate into act, up + b_up into upAct, act = swiglu_oai(act, upAct)
    const toAct = { xb: x.buffer, xo: x.offset, xs: xStride, yb: act.buffer, yo: act.offset, ys: nFf };
    proj(MOE_FFN_GATE, a.gate, nFf, toAct, slots);
    biasStep(MOE_BIAS_ADD_ID, nFf, slots, { y: act.buffer, ids: ids.buffer, bias: oai.gateBias }, act.offset, nFf);
    proj(MOE_FFN_GATE, a.up, nFf, { ...toAct, yb: upAct!, yo: 0 }, slots);
    biasStep(MOE_BIAS_ADD_ID, nFf, slots, { y: upAct!, ids: ids.buffer, bias: oai.upBias }, 0, nFf);
    biasStep(MOE_BIAS_OAI, nFf, slots, { y: act.buffer, u: upAct! }, act.offset, nFf);
  } else {
    const toAct = { xb: x.buffer, xo: x.offset, xs: xStride, yb: act.buffer, yo: act.offset, ys: nFf };
    proj(MOE_FFN_GATE, a.gate, nFf, toAct, slots);
    proj(MOE_FFN_UP, a.up, nFf, toAct, slots);
  }
  let downIn = { xb: act.buffer, xo: act.offset };
  if (a.actQuant && !actPro) {
    const aqOut = a.actQuant.out!;
    const aq = actQuantStep(a.actQuant.type, act, aqOut, nFf, n0 * k, ctx);
    need('moe_ffn actQuant.out', { buffer: aqOut, offset: 0 }, maxTokens * k * nFf);
    plans.push(aq.plan);
    zOf.push(() => 1);
    resize.push((n, l, i) => {
      l.uniforms[i]!.set('rows', n * k); // every step of this launch has a uniform
      l.dispatches[i]!.workgroups = aq.groups(n * k);
    });
    downIn = { xb: aqOut, xo: 0 };
  }
  proj(actPro ? MOE_FFN_DOWN_PRO : MOE_FFN_DOWN, a.down, nEmbd, { ...downIn, xs: nFf, yb: out.buffer, yo: out.offset, ys: outStride }, tokens, actPro);
  if (oai) biasStep(MOE_BIAS_DOWN, nEmbd, tokens, { y: out.buffer, ids: ids.buffer, bias: oai.downBias, rw: rw.buffer }, out.offset, outStride);
  const launch = await buildSteps(
    ctx,
    `moe_ffn ${a.gate.name}`,
    plans,
    (d, u) =>
      new StepLaunch(`moe_ffn ${a.gate.name}`, d, u, (n) => {
        check(n);
        launch.dispatches.forEach((disp, i) => {
          disp.workgroups[2] = zOf[i]!(n);
          resize[i]!(n, launch, i);
        });
      }),
  );
  if (ownAct) launch.own(ctx, ownAct);
  if (upAct) launch.own(ctx, upAct);
  return launch;
}

// ------------------------------------------------------------------------------------------------
// Prefill expert FFN
// ------------------------------------------------------------------------------------------------

export interface MoeFfnPrefillArgs {
  gate: WeightTensor;
  up: WeightTensor;
  down: WeightTensor;
  /** f32 normed hidden states: token t's [n_embd] at offset + t·xStride */
  x: BufferRef;
  /** f32 residual stream, updated in place: token t at offset + t·outStride */
  out: BufferRef;
  /** u32 [nTokens, k] expert ids from createMoeRoute */
  ids: BufferRef;
  /** f32 [nTokens, k] expert weights */
  weights: BufferRef;
  k: number;
  nTokens: number;
  /** capacity for setCount (default nTokens): sizes the scratch buffers */
  maxTokens?: number;
  xStride?: number;
  outStride?: number;
  /** scratch shared by every layer's launch (layers run one after another); default: allocated */
  scratch?: MoePrefillScratch;
  /** moe_mm threads along rows / pairs (WG_M, WG_N): tile TM = 4·wgM rows × TN = 4·wgN pairs; default 16 × 4 */
  wgM?: number;
  wgN?: number;
  /** as MoeFfnDecodeArgs.actQuant: out f32 [maxTokens·k, n_ff] */
  actQuant?: { type: ActQuantType; out: GPUBuffer };
  /**
   * false: no combine step — the pairs' down outputs stay in scratch.ye (the expert cache runs a
   * batch's experts in several passes of this launch and sums them with the last one, which
   * combines: src/arch/expert-offload.ts). Default true
   */
  combine?: boolean;
}

/** Scratch of the prefill MoE FFN: one set serves every layer. */
export interface MoePrefillScratch {
  maxPairs: number;
  nEmbd: number;
  nFf: number;
  /** u32 [maxPairs] pair ids grouped by expert */
  sorted: GPUBuffer;
  /** u32 [maxTiles, 4] tile list; maxTiles = tilesCapacity */
  tiles: GPUBuffer;
  tilesCapacity: number;
  /** u32 [8] indirect dispatch arguments (STORAGE | INDIRECT) */
  args: GPUBuffer;
  /** f32 [maxPairs, nFf] SwiGLU activations */
  act: GPUBuffer;
  /** f32 [maxPairs, nEmbd] per-pair down-projection outputs */
  ye: GPUBuffer;
}

/** Tiles of at most `tileN` pairs for maxPairs pairs over nExpert experts (each expert's last tile may be partial). */
function tilesFor(maxPairs: number, nExpert: number, tileN: number): number {
  return Math.ceil(maxPairs / tileN) + Math.min(nExpert, maxPairs);
}

/**
 * Allocates the prefill MoE scratch for up to maxTokens tokens with k experts each (sized for any
 * tile width ≥ 4 pairs). About maxTokens·k·(nFf + nEmbd)·4 bytes.
 */
export function createMoePrefillScratch(ctx: GPUContext, o: { maxTokens: number; k: number; nEmbd: number; nFf: number; nExpert: number }): MoePrefillScratch {
  const maxPairs = o.maxTokens * o.k;
  const tilesCapacity = tilesFor(maxPairs, o.nExpert, 4);
  return {
    maxPairs,
    nEmbd: o.nEmbd,
    nFf: o.nFf,
    sorted: createStorage(ctx, maxPairs * 4, 'moe.sorted'),
    tiles: createStorage(ctx, tilesCapacity * 16, 'moe.tiles'),
    tilesCapacity,
    args: ctx.createBuffer({ label: 'moe.args', size: 32, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.INDIRECT | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC }),
    act: createStorage(ctx, maxPairs * o.nFf * 4, 'moe.act'),
    ye: createStorage(ctx, maxPairs * o.nEmbd * 4, 'moe.ye'),
  };
}

/** Frees a scratch made by createMoePrefillScratch. */
export function freeMoePrefillScratch(ctx: GPUContext, s: MoePrefillScratch): void {
  for (const b of [s.sorted, s.tiles, s.args, s.act, s.ye]) ctx.destroyBuffer(b);
}

/**
 * The MoE FFN of a batch of tokens, grouped by expert on the GPU:
 *   group:   count pairs per expert, prefix sum, scatter pair ids, tile list + indirect arguments
 *   gate/up: moe_mm over each expert's gathered tokens (indirect dispatch, no empty workgroups),
 *            SwiGLU fused into the up pass
 *   down:    moe_mm into per-pair outputs
 *   combine: out[t] += Σ_j w[t,j]·y[t·k+j]  (fixed order, deterministic)
 * setCount(n) sets nTokens (≤ maxTokens).
 */
export async function createMoeFfnPrefill(ctx: GPUContext, a: MoeFfnPrefillArgs): Promise<StepLaunch> {
  const { nEmbd, nFf, nExpert } = expertShapes('moe_ffn_prefill', a.gate, a.up, a.down);
  const { k } = a;
  if (!(Number.isInteger(k) && k >= 1 && k <= nExpert)) throw new KernelError(`moe_ffn_prefill: k ${k} not in 1..${nExpert}`);
  const wgM = a.wgM ?? 16;
  const wgN = a.wgN ?? 4;
  if (!(wgM >= 1 && wgN >= 1 && wgM * wgN <= ctx.limits.maxComputeInvocationsPerWorkgroup)) throw new KernelError(`moe_ffn_prefill: bad tile ${wgM}×${wgN}`);
  const TM = wgM * 4;
  const TN = wgN * 4;
  const maxTokens = a.maxTokens ?? a.nTokens;
  const maxPairs = maxTokens * k;
  const maxTiles = tilesFor(maxPairs, nExpert, TN);
  const x = unref(a.x);
  const out = unref(a.out);
  const ids = unref(a.ids);
  const rw = unref(a.weights);
  const xStride = a.xStride ?? nEmbd;
  const outStride = a.outStride ?? nEmbd;
  const check = (n: number) => {
    if (!(Number.isInteger(n) && n >= 1 && n <= maxTokens)) throw new RangeError(`moe_ffn_prefill: ${n} tokens, capacity ${maxTokens}`);
    need('moe_ffn_prefill x', x, (n - 1) * xStride + nEmbd);
    need('moe_ffn_prefill out', out, (n - 1) * outStride + nEmbd);
    need('moe_ffn_prefill ids', ids, n * k);
    need('moe_ffn_prefill weights', rw, n * k);
  };
  check(a.nTokens);
  if (nExpert > 1024) throw new KernelError(`moe_ffn_prefill: ${nExpert} experts exceed the grouping kernel's 1024`);

  const scratch = a.scratch ?? createMoePrefillScratch(ctx, { maxTokens, k, nEmbd, nFf, nExpert });
  if (scratch.maxPairs < maxPairs || scratch.tilesCapacity < maxTiles || scratch.nEmbd < nEmbd || scratch.nFf < nFf) {
    throw new RangeError(`moe_ffn_prefill: scratch for ${scratch.maxPairs} pairs (n_embd ${scratch.nEmbd}, n_ff ${scratch.nFf}) is too small for ${maxPairs} pairs of [${nEmbd}, ${nFf}]`);
  }
  const { sorted, tiles, args, act, ye } = scratch;

  const combineWg = 256;
  const plans: StepPlan[] = [
    {
      spec: MOE_GROUP,
      constants: { WG: 256, MAX_EXPERT: nExpert },
      uniform: {
        n_pairs: a.nTokens * k,
        n_expert: nExpert,
        tile_n: TN,
        ids_offset: ids.offset,
        row_tiles_a: Math.ceil(nFf / TM),
        row_tiles_b: Math.ceil(nEmbd / TM),
        max_tiles: maxTiles,
      },
      buffers: { ids: ids.buffer, sorted, tiles, args },
      workgroups: [1, 1, 1],
    },
  ];
  const mm = (spec: KernelSpec, w: WeightTensor, rows: number, xb: GPUBuffer, xo: number, xs: number, xDiv: number, yb: GPUBuffer, ys: number, argOffset: number) => {
    for (const p of w.parts) {
      plans.push({
        spec,
        defines: typeDefine(w.type),
        constants: { WG_M: wgM, WG_N: wgN },
        uniform: {
          cols: w.cols,
          rows,
          row_bytes: w.rowBytes,
          expert_first: p.firstRow / rows,
          expert_count: p.nRows / rows,
          x_offset: xo,
          x_stride: xs,
          x_div: xDiv,
          y_offset: 0,
          y_stride: ys,
        },
        buffers: { w: partBinding(p), x: xb, y: yb, sorted, tiles },
        workgroups: [0, 0, 0],
        indirect: { buffer: args, offset: argOffset },
      });
    }
  };
  mm(MOE_MM, a.gate, nFf, x.buffer, x.offset, xStride, k, act, nFf, 0);
  mm(MOE_MM_SWIGLU, a.up, nFf, x.buffer, x.offset, xStride, k, act, nFf, 0);
  // numerics 'llamacpp': the activations of every pair through down's round trip first
  const aq = a.actQuant ? actQuantStep(a.actQuant.type, { buffer: act, offset: 0 }, a.actQuant.out, nFf, a.nTokens * k, ctx) : null;
  const aqUniform = plans.filter((p) => p.spec.uniform).length;
  const aqIndex = plans.length;
  if (aq) {
    need('moe_ffn_prefill actQuant.out', { buffer: a.actQuant!.out, offset: 0 }, maxPairs * nFf);
    plans.push(aq.plan);
  }
  mm(MOE_MM, a.down, nEmbd, aq ? a.actQuant!.out : act, 0, nFf, 1, ye, nEmbd, 16);
  const combine = a.combine ?? true;
  if (combine) plans.push({
    spec: MOE_COMBINE,
    constants: { WG: combineWg },
    uniform: { n: nEmbd, k, n_tokens: a.nTokens, ye_offset: 0, rw_offset: rw.offset, y_offset: out.offset, y_stride: outStride },
    buffers: { ye, rw: rw.buffer, y: out.buffer },
    workgroups: [Math.ceil(nEmbd / combineWg), a.nTokens, 1],
  });
  const launch = await buildSteps(
    ctx,
    `moe_ffn_prefill ${a.gate.name}`,
    plans,
    (d, u) =>
      new StepLaunch(`moe_ffn_prefill ${a.gate.name}`, d, u, (n) => {
        check(n);
        launch.uniforms[0]!.set('n_pairs', n * k);
        if (combine) {
          launch.uniforms[launch.uniforms.length - 1]!.set('n_tokens', n);
          launch.dispatches[launch.dispatches.length - 1]!.workgroups[1] = n;
        }
        if (aq) {
          launch.uniforms[aqUniform]!.set('rows', n * k);
          launch.dispatches[aqIndex]!.workgroups = aq.groups(n * k);
        }
      }),
  );
  if (!a.scratch) launch.own(ctx, sorted, tiles, args, act, ye);
  return launch;
}
