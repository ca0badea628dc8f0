// TypeScript launchers of the attention kernels: KV cache write (kernels/attn_kv_write.wgsl),
// flash-decoding (kernels/attn_decode.wgsl) and causal prefill (kernels/attn_prefill.wgsl).
// Each createX(ctx, args) compiles (or reuses) its pipelines, makes uniforms and bind groups once
// and returns a Launch (src/runtime/pipelines.ts): encode(pass) records it; the set* methods
// change positions / lengths by rewriting uniforms and grids, without allocating.
//
// KV cache layout, per layer: K [n_ctx, n_head_kv, head_dim_k], V [n_ctx, n_head_kv, head_dim_v],
// position-major (src/cpu/ops.ts attention's layout), f16 when the device has shader-f16, else f32.
import { ContextOverflowError } from '../errors.js';
import { createStorage } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, linearGrid, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';
import { buildSteps, checkWg, need, StepLaunch, unref, type BufferRef } from './steps.js';

// ------------------------------------------------------------------------------------------------
// Specs
// ------------------------------------------------------------------------------------------------

/** KV_F16 selects an f16 cache; without it the cache is f32. */
const KV_VARIANTS = [{}, { KV_F16: true }] as const;

export const KV_WRITE: KernelSpec = {
  file: 'attn_kv_write.wgsl',
  entryPoint: 'main',
  variants: KV_VARIANTS,
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'k_new', kind: 'read-only-storage' },
    { binding: 2, name: 'v_new', kind: 'read-only-storage' },
    { binding: 3, name: 'k_cache', kind: 'storage' },
    { binding: 4, name: 'v_cache', kind: 'storage' },
  ],
  uniform: uniformSpec('KvWriteParams', [
    ['n_tokens', 'u32'],
    ['pos0', 'u32'],
    ['kv_k', 'u32'],
    ['kv_v', 'u32'],
    ['k_offset', 'u32'],
    ['k_stride', 'u32'],
    ['v_offset', 'u32'],
    ['v_stride', 'u32'],
  ]),
  overrides: ['WG'],
};

const DECODE_BINDINGS = [
  { binding: 0, name: 'P', kind: 'uniform' },
  { binding: 1, name: 'q', kind: 'read-only-storage' },
  { binding: 2, name: 'k_cache', kind: 'read-only-storage' },
  { binding: 3, name: 'v_cache', kind: 'read-only-storage' },
  { binding: 4, name: 'part', kind: 'storage' },
  { binding: 5, name: 'out', kind: 'storage' },
] as const;
const DECODE_PARAMS = uniformSpec('DecodeParams', [
  ['n_kv', 'u32'],
  ['chunk', 'u32'],
  ['n_chunks', 'u32'],
  ['group', 'u32'],
  ['n_head_kv', 'u32'],
  ['q_offset', 'u32'],
  ['out_offset', 'u32'],
  ['scale', 'f32'],
  ['window', 'u32'],
  ['v_pos', 'u32'],
  ['v_head', 'u32'],
  ['_pad2', 'u32'],
]);

export const ATTN_DECODE_PARTIAL: KernelSpec = {
  file: 'attn_decode.wgsl',
  entryPoint: 'partial',
  variants: KV_VARIANTS,
  bindings: DECODE_BINDINGS,
  uniform: DECODE_PARAMS,
  overrides: ['WG', 'DK', 'DV', 'MAX_CHUNK'],
};
export const ATTN_DECODE_REDUCE: KernelSpec = { ...ATTN_DECODE_PARTIAL, entryPoint: 'reduce' };
/** With attention sinks (gpt-oss): a logit per head in every softmax. */
const DECODE_SINK_BINDINGS = [...DECODE_BINDINGS, { binding: 6, name: 'sinks', kind: 'read-only-storage' }] as const;
export const ATTN_DECODE_PARTIAL_SINKS: KernelSpec = { ...ATTN_DECODE_PARTIAL, defines: { SINKS: true }, bindings: DECODE_SINK_BINDINGS };
export const ATTN_DECODE_REDUCE_SINKS: KernelSpec = { ...ATTN_DECODE_REDUCE, defines: { SINKS: true }, bindings: DECODE_SINK_BINDINGS };

export const ATTN_PREFILL: KernelSpec = {
  file: 'attn_prefill.wgsl',
  entryPoint: 'main',
  variants: KV_VARIANTS,
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'q', kind: 'read-only-storage' },
    { binding: 2, name: 'k_cache', kind: 'read-only-storage' },
    { binding: 3, name: 'v_cache', kind: 'read-only-storage' },
    { binding: 4, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('PrefillParams', [
    ['n_q', 'u32'],
    ['p0', 'u32'],
    ['group', 'u32'],
    ['n_head_kv', 'u32'],
    ['q_offset', 'u32'],
    ['q_stride', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
    ['scale', 'f32'],
    ['window', 'u32'],
    ['v_pos', 'u32'],
    ['v_head', 'u32'],
  ]),
  overrides: ['WG', 'BQ', 'BK', 'DK', 'DV'],
};
/** With attention sinks (gpt-oss). */
export const ATTN_PREFILL_SINKS: KernelSpec = {
  ...ATTN_PREFILL,
  defines: { SINKS: true },
  bindings: [...ATTN_PREFILL.bindings, { binding: 5, name: 'sinks', kind: 'read-only-storage' }],
};

/** Every spec of this module by name (for the binding reflection test). */
export const ATTENTION_SPECS: Readonly<Record<string, KernelSpec>> = {
  KV_WRITE,
  ATTN_DECODE_PARTIAL,
  ATTN_DECODE_REDUCE,
  ATTN_DECODE_PARTIAL_SINKS,
  ATTN_DECODE_REDUCE_SINKS,
  ATTN_PREFILL,
  ATTN_PREFILL_SINKS,
};

// ------------------------------------------------------------------------------------------------
// KV cache
// ------------------------------------------------------------------------------------------------

/** One layer's KV cache on the GPU. */
export interface KvCache {
  /** [nCtx, nHeadKv, headDimK] of f16 (f16 = true) or f32 */
  k: GPUBuffer;
  /** [nCtx, nHeadKv, headDimV]; with vInK the K buffer itself */
  v: GPUBuffer;
  /**
   * V is the first headDimV values of each K row (MLA: the latent c of the row [c | k_pe], as
   * llama.cpp's cache, which allocates no V for MLA): no V buffer, the KV write skips V
   */
  vInK: boolean;
  f16: boolean;
  nCtx: number;
  nHeadKv: number;
  headDimK: number;
  headDimV: number;
}

export interface KvCacheOptions {
  nCtx: number;
  nHeadKv: number;
  headDimK: number;
  /** default headDimK */
  headDimV?: number;
  /** f16 cache (default: when the device has shader-f16) */
  f16?: boolean;
  /** V inside the K rows (KvCache.vInK; needs headDimV ≤ headDimK) */
  vInK?: boolean;
  label?: string;
}

/** Where the attention kernels find V: elements between positions and between KV heads. */
function vLayout(cache: KvCache): { v_pos: number; v_head: number } {
  return cache.vInK ? { v_pos: cache.nHeadKv * cache.headDimK, v_head: cache.headDimK } : { v_pos: cache.nHeadKv * cache.headDimV, v_head: cache.headDimV };
}

/** Allocates one layer's K and V cache (contents undefined until written). */
export function createKvCache(ctx: GPUContext, o: KvCacheOptions): KvCache {
  const headDimV = o.headDimV ?? o.headDimK;
  const f16 = o.f16 ?? ctx.features.f16;
  if (f16 && !ctx.features.f16) throw new KernelError('createKvCache: an f16 cache needs the shader-f16 feature, which this device lacks');
  for (const [n, v] of [['nCtx', o.nCtx], ['nHeadKv', o.nHeadKv], ['headDimK', o.headDimK], ['headDimV', headDimV]] as const) {
    if (!(Number.isInteger(v) && v >= 1)) throw new RangeError(`createKvCache: ${n} = ${v} must be a positive integer`);
  }
  const bytes = f16 ? 2 : 4;
  const label = o.label ?? 'kv';
  const vInK = !!o.vInK;
  if (vInK && headDimV > o.headDimK) throw new RangeError(`createKvCache: V inside the K rows needs headDimV ${headDimV} ≤ headDimK ${o.headDimK}`);
  const k = createStorage(ctx, o.nCtx * o.nHeadKv * o.headDimK * bytes, `${label}.k`);
  return {
    k,
    v: vInK ? k : createStorage(ctx, o.nCtx * o.nHeadKv * headDimV * bytes, `${label}.v`),
    vInK,
    f16,
    nCtx: o.nCtx,
    nHeadKv: o.nHeadKv,
    headDimK: o.headDimK,
    headDimV,
  };
}

/** The define selecting the cache element type (also used by createQKNormRope's `kv`). */
export function kvDefines(cache: KvCache): Record<string, boolean> {
  return cache.f16 ? { KV_F16: true } : {};
}

/** @throws RangeError for invalid positions, ContextOverflowError when pos0 + n exceeds the cache */
export function checkPositions(cache: KvCache, pos0: number, n: number): void {
  if (!(Number.isInteger(pos0) && pos0 >= 0 && Number.isInteger(n) && n >= 1)) throw new RangeError(`attention: positions ${pos0} + ${n} are not valid`);
  if (pos0 + n > cache.nCtx) throw new ContextOverflowError(cache.nCtx, pos0 + n);
}

// ------------------------------------------------------------------------------------------------
// KV write
// ------------------------------------------------------------------------------------------------

export interface KvWriteArgs {
  cache: KvCache;
  /** f32 K of the new tokens: token t's [nHeadKv·headDimK] at offset + t·kStride */
  k: BufferRef;
  /** f32 V: token t's [nHeadKv·headDimV] at offset + t·vStride */
  v: BufferRef;
  /** default 1; setCount() changes it */
  nTokens?: number;
  /** cache position of the first token, default 0; setPosition() changes it */
  pos0?: number;
  /** default nHeadKv·headDimK */
  kStride?: number;
  /** default nHeadKv·headDimV */
  vStride?: number;
  workgroupSize?: number;
}

/**
 * A launch over nTokens new tokens at cache positions pos0 .. pos0 + nTokens − 1 (one step):
 * setCount(nTokens), setPosition(pos0), update(nTokens, pos0); positioned() makes its update.
 */
export class PositionedLaunch extends StepLaunch {
  nTokens = 1;
  pos0 = 0;
  /** @throws ContextOverflowError when pos0 + nTokens exceeds the cache */
  setPosition(pos0: number): void {
    this.update(this.nTokens, pos0);
  }
  /** the tokens at the current pos0 */
  override setCount(n: number): void {
    this.update(n, this.pos0);
  }
  /** @internal */
  update!: (n: number, pos0: number) => void;
}

/**
 * Starts `launch` at (n0, p0) and gives it update(n, pos0): check(n, pos0), then n and pos0 into
 * the uniform fields `fields` and the grid workgroups(n).
 */
export function positioned<L extends PositionedLaunch>(
  launch: L, n0: number, p0: number, fields: readonly [string, string], check: (n: number, pos0: number) => void, workgroups: (n: number) => [number, number, number],
): L {
  launch.nTokens = n0;
  launch.pos0 = p0;
  launch.update = (n, pos0) => {
    check(n, pos0);
    const u = launch.uniforms[0]!;
    u.set(fields[0], n);
    u.set(fields[1], pos0);
    launch.dispatches[0]!.workgroups = workgroups(n);
    launch.nTokens = n;
    launch.pos0 = pos0;
  };
  return launch;
}

/**
 * KV write launch (a PositionedLaunch). Also what createQKNormRope returns with `kv` (Q/K norm +
 * RoPE + this write, one dispatch).
 */
export class KvWriteLaunch extends PositionedLaunch {}

/**
 * Writes the K and V of nTokens new tokens into the cache at positions pos0 .. pos0 + nTokens − 1
 * (converted to f16 for an f16 cache). One dispatch.
 */
export async function createKvWrite(ctx: GPUContext, a: KvWriteArgs): Promise<KvWriteLaunch> {
  const { cache } = a;
  const wg = a.workgroupSize ?? 256;
  checkWg('kv_write', wg, ctx);
  const kvK = cache.nHeadKv * cache.headDimK;
  // V inside the K rows: nothing of V to write (kv_v 0; v_cache bound to a scratch word, since the
  // K cache may not be bound twice for writing)
  const kvV = cache.vInK ? 0 : cache.nHeadKv * cache.headDimV;
  const k = unref(a.k);
  const v = unref(a.v);
  const vDummy = cache.vInK ? createStorage(ctx, 4, 'kv_write.no_v') : null;
  const kStride = a.kStride ?? kvK;
  const vStride = a.vStride ?? kvV;
  const check = (n: number, p0: number) => {
    checkPositions(cache, p0, n);
    need('kv_write k', k, (n - 1) * kStride + kvK);
    need('kv_write v', v, (n - 1) * vStride + kvV);
  };
  const grid = (n: number) => linearGrid(ctx, Math.ceil((n * Math.max(kvK, kvV)) / wg));
  const n0 = a.nTokens ?? 1;
  const p0 = a.pos0 ?? 0;
  check(n0, p0);
  const launch = await buildSteps(
    ctx,
    'kv_write',
    [
      {
        spec: KV_WRITE,
        defines: kvDefines(cache),
        constants: { WG: wg },
        uniform: { n_tokens: n0, pos0: p0, kv_k: kvK, kv_v: kvV, k_offset: k.offset, k_stride: kStride, v_offset: v.offset, v_stride: vStride },
        buffers: { k_new: k.buffer, v_new: v.buffer, k_cache: cache.k, v_cache: vDummy ?? cache.v },
        workgroups: grid(n0),
      },
    ],
    (d, u) => new KvWriteLaunch('kv_write', d, u),
  );
  if (vDummy) launch.own(ctx, vDummy);
  return positioned(launch, n0, p0, ['n_tokens', 'pos0'], check, grid);
}

// ------------------------------------------------------------------------------------------------
// Decode (flash-decoding)
// ------------------------------------------------------------------------------------------------

export interface AttnDecodeArgs {
  cache: KvCache;
  /** f32 [nHead, headDimK] query (after Q norm and RoPE) */
  q: BufferRef;
  /** f32 [nHead, headDimV] output */
  out: BufferRef;
  nHead: number;
  /** visible positions (the new token included), default 1; setKv() changes it */
  nKv?: number;
  /** default 1/sqrt(headDimK) */
  scale?: number;
  /** threads per workgroup (power of two), default 64 */
  workgroupSize?: number;
  /** largest chunk of positions per workgroup, default 256 */
  maxChunk?: number;
  /** the launcher aims at about this many chunks per head (default 16), chunks ≥ 32 positions */
  targetChunks?: number;
  /** fixed chunk length (tests); default: chosen per nKv */
  chunk?: number;
  /** scratch for the partial results, at least attnDecodeScratchBytes(...) bytes (default: allocated) */
  scratch?: GPUBuffer;
  /**
   * llama.cpp's non-flash softmax (numerics 'llamacpp', f16 cache): scale after q·k, and the KQ·V
   * product over the normalized probabilities rounded to f16 (kernel define LLAMA_SOFTMAX)
   */
  llamaSoftmax?: boolean;
  /** sliding window: only the last `window` positions are visible (0 or absent: all) */
  window?: number;
  /** f32 [nHead] attention sinks (gpt-oss): one more logit per head in the softmax, without a value */
  sinks?: BufferRef;
}

/** Bytes of the decode scratch (partial max, sum and output per head and chunk) for a context. */
export function attnDecodeScratchBytes(nHead: number, headDimV: number, nCtx: number, o: { maxChunk?: number; targetChunks?: number; chunk?: number } = {}): number {
  const maxChunks = o.chunk ? Math.ceil(nCtx / o.chunk) : Math.max(o.targetChunks ?? 16, Math.ceil(nCtx / (o.maxChunk ?? 256)));
  return nHead * maxChunks * (headDimV + 2) * 4;
}

/**
 * The chunk length for nKv positions: up to maxChunk positions one chunk (one dispatch, no reduce:
 * a short context is little work, and a decode step saves a dispatch per layer); beyond, about
 * targetChunks chunks of a multiple of 32, within [32, maxChunk], so long contexts fill the device.
 */
export function decodeChunk(nKv: number, maxChunk = 256, targetChunks = 16): number {
  if (nKv <= maxChunk) return Math.max(32, Math.ceil(nKv / 32) * 32);
  const c = Math.ceil(Math.ceil(nKv / targetChunks) / 32) * 32;
  return Math.min(maxChunk, Math.max(32, c));
}

/** Decode attention launch: setKv(nKv) (also setCount). */
export class AttnDecodeLaunch extends StepLaunch {
  nKv = 1;
  nChunks = 1;
  chunk = 32;
  /** @throws ContextOverflowError when nKv exceeds the cache */
  setKv(nKv: number): void {
    this.setCount(nKv);
  }
}

/**
 * Attention of one query token over positions 0 .. nKv − 1 of the cache (GQA, scale·q·k, softmax,
 * weighted V). Two dispatches: `partial` over (n_chunks, nHead) and, when n_chunks > 1, `reduce`
 * over nHead.
 */
export async function createAttnDecode(ctx: GPUContext, a: AttnDecodeArgs): Promise<AttnDecodeLaunch> {
  const { cache, nHead } = a;
  const DK = cache.headDimK;
  const DV = cache.headDimV;
  if (!(Number.isInteger(nHead) && nHead >= cache.nHeadKv && nHead % cache.nHeadKv === 0)) {
    throw new KernelError(`attn_decode: n_head ${nHead} must be a multiple of n_head_kv ${cache.nHeadKv}`);
  }
  const wg = a.workgroupSize ?? 64;
  checkWg('attn_decode', wg, ctx);
  const maxChunk = a.maxChunk ?? 256;
  const target = a.targetChunks ?? 16;
  if (a.chunk !== undefined && !(Number.isInteger(a.chunk) && a.chunk >= 1 && a.chunk <= maxChunk)) throw new RangeError(`attn_decode: chunk ${a.chunk} not in 1..${maxChunk}`);
  const q = unref(a.q);
  const out = unref(a.out);
  need('attn_decode q', q, nHead * DK);
  need('attn_decode out', out, nHead * DV);
  const partBytes = attnDecodeScratchBytes(nHead, DV, cache.nCtx, { maxChunk, targetChunks: target, chunk: a.chunk });
  const part = a.scratch ?? createStorage(ctx, partBytes, 'attn_decode.part');
  const ownPart = a.scratch ? undefined : part;
  if (part.size < partBytes) throw new RangeError(`attn_decode: scratch of ${part.size} bytes, needs ${partBytes}`);
  const scale = a.scale ?? 1 / Math.sqrt(DK);
  const window = a.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) throw new RangeError(`attn_decode: window ${window}`);
  const sinks = a.sinks ? unref(a.sinks) : null;
  if (sinks) {
    need('attn_decode sinks', sinks, nHead);
    if (sinks.offset !== 0) throw new KernelError('attn_decode: sinks must start at offset 0 of their buffer');
  }
  const layout = (nKv: number) => {
    checkPositions(cache, 0, nKv);
    // a sliding window: the last `window` positions
    const visible = window > 0 ? Math.min(nKv, window) : nKv;
    // llamaSoftmax: one chunk while it fits, so that the probabilities are normalized before P·V
    const chunk = a.chunk ?? (a.llamaSoftmax ? Math.min(visible, maxChunk) : decodeChunk(visible, maxChunk, target));
    return { chunk, nChunks: Math.ceil(visible / chunk) };
  };
  const nKv0 = a.nKv ?? 1;
  const l0 = layout(nKv0);
  const uniform = {
    n_kv: nKv0,
    chunk: l0.chunk,
    n_chunks: l0.nChunks,
    group: nHead / cache.nHeadKv,
    n_head_kv: cache.nHeadKv,
    q_offset: q.offset,
    out_offset: out.offset,
    scale,
    window,
    ...vLayout(cache),
  };
  const buffers: Record<string, GPUBuffer> = { q: q.buffer, k_cache: cache.k, v_cache: cache.v, part, out: out.buffer };
  if (sinks) buffers.sinks = sinks.buffer;
  const constants = { WG: wg, DK, DV, MAX_CHUNK: maxChunk };
  const defines = { ...kvDefines(cache), ...(a.llamaSoftmax ? { LLAMA_SOFTMAX: true } : {}), ...(sinks ? { SINKS: true } : {}) };
  const launch = await buildSteps(
    ctx,
    'attn_decode',
    [
      { spec: sinks ? ATTN_DECODE_PARTIAL_SINKS : ATTN_DECODE_PARTIAL, defines, constants, uniform, buffers, workgroups: [l0.nChunks, nHead, 1] },
      { spec: sinks ? ATTN_DECODE_REDUCE_SINKS : ATTN_DECODE_REDUCE, defines, constants, uniform, buffers, workgroups: [l0.nChunks > 1 ? nHead : 0, 1, 1] },
    ],
    (d, u) =>
      new AttnDecodeLaunch('attn_decode', d, u, (nKv) => {
        const l = layout(nKv);
        for (const ub of launch.uniforms) {
          ub.set('n_kv', nKv);
          ub.set('chunk', l.chunk);
          ub.set('n_chunks', l.nChunks);
        }
        launch.dispatches[0]!.workgroups = [l.nChunks, nHead, 1];
        launch.dispatches[1]!.workgroups = [l.nChunks > 1 ? nHead : 0, 1, 1];
        launch.nKv = nKv;
        launch.nChunks = l.nChunks;
        launch.chunk = l.chunk;
      }),
  );
  launch.nKv = nKv0;
  launch.nChunks = l0.nChunks;
  launch.chunk = l0.chunk;
  if (ownPart) launch.own(ctx, ownPart);
  return launch;
}

// ------------------------------------------------------------------------------------------------
// Prefill
// ------------------------------------------------------------------------------------------------

export interface AttnPrefillArgs {
  cache: KvCache;
  /** f32 queries: token t, head h at offset + t·qStride + h·headDimK */
  q: BufferRef;
  /** f32 outputs: token t, head h at offset + t·outStride + h·headDimV */
  out: BufferRef;
  nHead: number;
  /** query tokens; setCount() changes it */
  nTokens: number;
  /** position of the first query (its K/V already in the cache); setPosition() changes it */
  pos0: number;
  /** default nHead·headDimK */
  qStride?: number;
  /** default nHead·headDimV */
  outStride?: number;
  /** default 1/sqrt(headDimK) */
  scale?: number;
  /** threads per workgroup, default 64 */
  workgroupSize?: number;
  /** query rows / keys per tile; default: the largest that fits the device's workgroup memory */
  blockQ?: number;
  blockK?: number;
  /**
   * llama.cpp's non-flash softmax (numerics 'llamacpp', f16 cache): scale after q·k, and the KQ·V
   * product over the normalized probabilities rounded to f16 (kernel define LLAMA_SOFTMAX)
   */
  llamaSoftmax?: boolean;
  /** sliding window: query at position p sees keys > p − window only (0 or absent: all earlier keys) */
  window?: number;
  /** f32 [nHead] attention sinks (gpt-oss) */
  sinks?: BufferRef;
}

/** Workgroup memory of attn_prefill.wgsl for a tile (see the kernel header). */
export function prefillTileBytes(bq: number, bk: number, dk: number, dv: number, f16: boolean): number {
  const kst = dk + (f16 ? 2 : 1);
  const kvBytes = Math.ceil((bk * Math.max(kst, dv) * (f16 ? 2 : 4)) / 4) * 4;
  return 4 * bq * dk + kvBytes + 4 * bq * bk + 4 * bq * dv + 12 * bq;
}

/** The (BQ, BK) the prefill kernel uses: the first of a preference list that fits `limit` bytes. */
export function prefillTile(limit: number, dk: number, dv: number, f16: boolean, wg = 64): { bq: number; bk: number } {
  const prefs: [number, number][] = [[16, 32], [16, 16], [8, 32], [8, 16], [4, 16], [4, 8], [2, 8], [1, 8], [1, 4]];
  for (const [bq, bk] of prefs) {
    if (bq <= wg && prefillTileBytes(bq, bk, dk, dv, f16) <= limit) return { bq, bk };
  }
  throw new KernelError(`attn_prefill: head dims ${dk}/${dv} do not fit in ${limit} bytes of workgroup memory`);
}

/** Prefill attention launch (a PositionedLaunch): setCount(nTokens), setPosition(pos0). */
export class AttnPrefillLaunch extends PositionedLaunch {}

/**
 * Causal attention of nTokens queries at positions pos0 .. pos0 + nTokens − 1 over the cache
 * (which must already hold their K and V). One dispatch over (ceil(nTokens / BQ), nHead).
 */
export async function createAttnPrefill(ctx: GPUContext, a: AttnPrefillArgs): Promise<AttnPrefillLaunch> {
  const { cache, nHead } = a;
  const DK = cache.headDimK;
  const DV = cache.headDimV;
  if (!(Number.isInteger(nHead) && nHead >= cache.nHeadKv && nHead % cache.nHeadKv === 0)) {
    throw new KernelError(`attn_prefill: n_head ${nHead} must be a multiple of n_head_kv ${cache.nHeadKv}`);
  }
  const wg = a.workgroupSize ?? 64;
  checkWg('attn_prefill', wg, ctx);
  const auto = prefillTile(ctx.limits.maxComputeWorkgroupStorageSize, DK, DV, cache.f16, wg);
  const bq = a.blockQ ?? auto.bq;
  const bk = a.blockK ?? auto.bk;
  if (bq > wg) throw new KernelError(`attn_prefill: blockQ ${bq} exceeds the workgroup size ${wg}`);
  if (prefillTileBytes(bq, bk, DK, DV, cache.f16) > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw new KernelError(`attn_prefill: tile ${bq}×${bk} needs more than ${ctx.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory`);
  }
  const q = unref(a.q);
  const out = unref(a.out);
  const qStride = a.qStride ?? nHead * DK;
  const outStride = a.outStride ?? nHead * DV;
  const check = (n: number, p0: number) => {
    checkPositions(cache, p0, n);
    need('attn_prefill q', q, (n - 1) * qStride + nHead * DK);
    need('attn_prefill out', out, (n - 1) * outStride + nHead * DV);
  };
  check(a.nTokens, a.pos0);
  const window = a.window ?? 0;
  if (!(Number.isInteger(window) && window >= 0)) throw new RangeError(`attn_prefill: window ${window}`);
  const sinks = a.sinks ? unref(a.sinks) : null;
  if (sinks) {
    need('attn_prefill sinks', sinks, nHead);
    if (sinks.offset !== 0) throw new KernelError('attn_prefill: sinks must start at offset 0 of their buffer');
  }
  const grid = (n: number): [number, number, number] => [Math.ceil(n / bq), nHead, 1];
  const launch = await buildSteps(
    ctx,
    'attn_prefill',
    [
      {
        spec: sinks ? ATTN_PREFILL_SINKS : ATTN_PREFILL,
        defines: { ...kvDefines(cache), ...(a.llamaSoftmax ? { LLAMA_SOFTMAX: true } : {}), ...(sinks ? { SINKS: true } : {}) },
        constants: { WG: wg, BQ: bq, BK: bk, DK, DV },
        uniform: {
          n_q: a.nTokens,
          p0: a.pos0,
          group: nHead / cache.nHeadKv,
          n_head_kv: cache.nHeadKv,
          q_offset: q.offset,
          q_stride: qStride,
          out_offset: out.offset,
          out_stride: outStride,
          scale: a.scale ?? 1 / Math.sqrt(DK),
          window,
          ...vLayout(cache),
        },
        buffers: { q: q.buffer, k_cache: cache.k, v_cache: cache.v, out: out.buffer, ...(sinks ? { sinks: sinks.buffer } : {}) },
        workgroups: grid(a.nTokens),
      },
    ],
    (d, u) => new AttnPrefillLaunch('attn_prefill', d, u),
  );
  return positioned(launch, a.nTokens, a.pos0, ['n_q', 'p0'], check, grid);
}
