// Routing traces on the GPU: kernels/moe_trace.wgsl copies each layer's router output (expert ids,
// weights; optionally the softmax of the router logits) into one trace buffer at [token, layer]
// slots; the whole eval call is then read back with ONE copy and map. Nothing here exists until a
// trace is asked for: a backend creates a RoutingTraceGpu lazily (and only then encodes its
// launches), so a forward pass without tracing does no extra work and holds no extra memory.
//
// Use from a GPU forward pass (per eval call that has opts.trace):
//   trace = await createRoutingTrace(ctx, { nLayer, nExpert, k, maxTokens, probs, logits, ids, weights });
//   for each batch:  trace.setBatch(nTokensInBatch, firstTokenIndexInCall)
//                    per layer l, right after that layer's moe_route launch: trace.layer(l).encode(pass)
//   after the last batch: sink.add({ tokens, start, ...(await trace.read(nTokensInCall)) })
import type { BufferRef } from '../gpu/ops.js';
import { ReadbackBuffer, UniformBlock, createStorage } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { grid2d, KernelError, Launch, pipelineCache, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';
import type { RoutingTraceSink } from './recorder.js';
import type { RoutingTraceShape } from './types.js';

export const MOE_TRACE: KernelSpec = {
  file: 'moe_trace.wgsl',
  entryPoint: 'main',
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'logits', kind: 'read-only-storage' },
    { binding: 2, name: 'ids', kind: 'read-only-storage' },
    { binding: 3, name: 'weights', kind: 'read-only-storage' },
    { binding: 4, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('TraceParams', [
    ['n_tokens', 'u32'],
    ['n_expert', 'u32'],
    ['k', 'u32'],
    ['n_layer', 'u32'],
    ['layer', 'u32'],
    ['token0', 'u32'],
    ['probs', 'u32'],
    ['rec', 'u32'],
    ['logits_offset', 'u32'],
    ['logits_stride', 'u32'],
    ['ids_offset', 'u32'],
    ['weights_offset', 'u32'],
  ]),
  overrides: ['WG', 'MAX_EXPERT', 'GATING'],
};

function unref(r: BufferRef): { buffer: GPUBuffer; offset: number } {
  return 'buffer' in r ? { buffer: r.buffer, offset: r.offset ?? 0 } : { buffer: r, offset: 0 };
}

/** Checks that `elements` f32/u32 elements fit in the buffer after the offset. */
function need(label: string, r: { buffer: GPUBuffer; offset: number }, elements: number): void {
  if (!(Number.isInteger(r.offset) && r.offset >= 0)) throw new RangeError(`${label}: offset ${r.offset} is not a non-negative integer`);
  if ((r.offset + elements) * 4 > r.buffer.size) {
    throw new RangeError(`${label}: needs ${r.offset + elements} elements but the buffer holds ${Math.floor(r.buffer.size / 4)}`);
  }
}

/** Every spec of this module by name (for a binding reflection test). */
export const TRACE_SPECS: Readonly<Record<string, KernelSpec>> = { MOE_TRACE };

/** Where one layer's router output lives. Layers may share buffers (the copy runs right after the router). */
export interface RouterBuffers {
  /** f32 router logits: token t's [nExpert] at offset + t·logitsStride */
  logits: BufferRef;
  /** u32 [nTokens, k] chosen experts (createMoeRoute's ids) */
  ids: BufferRef;
  /** f32 [nTokens, k] their weights (createMoeRoute's weights) */
  weights: BufferRef;
  /** default nExpert */
  logitsStride?: number;
}

export interface RoutingTraceArgs {
  nLayer: number;
  nExpert: number;
  k: number;
  /** tokens one eval call may trace (the trace buffer's capacity) */
  maxTokens: number;
  /** also record the router's probabilities (softmax, or sigmoid with gating 'sigmoid') */
  probs: boolean;
  /** what the probabilities are (RoutingTraceShape.gating; default softmax) */
  gating?: 'softmax' | 'sigmoid';
  /** the router buffers: one for all layers, or one per layer */
  router: RouterBuffers | readonly RouterBuffers[];
  /** threads per workgroup (power of two, default 128, as createMoeRoute) */
  workgroupSize?: number;
}

/** What read() returns: token-major arrays of the first n tokens. */
export interface RoutingTraceData {
  /** [n, nLayer, k] */
  ids: Uint32Array;
  /** [n, nLayer, k] */
  weights: Float32Array;
  /** [n, nLayer, nExpert] when probs were recorded */
  probs?: Float32Array;
}

/** The trace buffer of one sequence and the per-layer copy launches writing into it. */
export class RoutingTraceGpu {
  /** @internal use createRoutingTrace */
  constructor(
    private readonly ctx: GPUContext,
    readonly args: Readonly<RoutingTraceArgs>,
    /** u32 words per token record */
    readonly rec: number,
    /** the trace buffer [maxTokens, rec] u32 */
    readonly buffer: GPUBuffer,
    private readonly launches: Launch[],
    private readonly readback: ReadbackBuffer,
    private readonly check: (n: number) => void,
    private readonly dummy: GPUBuffer | undefined,
  ) {}

  /** bytes of GPU memory this trace holds (trace buffer + staging buffer) */
  get bytes(): number {
    return this.buffer.size + this.readback.buffer.size;
  }

  /**
   * Sets the next batch: `n` tokens, the first of which is token `token0` of the eval call (its
   * record index). Applies to every layer launch at the next encode.
   * @throws RangeError when token0 + n exceeds maxTokens
   */
  setBatch(n: number, token0 = 0): void {
    if (!(Number.isInteger(n) && n >= 1 && Number.isInteger(token0) && token0 >= 0 && token0 + n <= this.args.maxTokens)) {
      throw new RangeError(`routing trace: tokens ${token0}..${token0 + n - 1} do not fit its capacity of ${this.args.maxTokens}`);
    }
    this.check(n);
    const [gx, gy] = grid2d(this.ctx, n);
    for (const l of this.launches) {
      l.uniforms[0]!.set('n_tokens', n);
      l.uniforms[0]!.set('token0', token0);
      l.dispatches[0]!.workgroups = [gx, gy, 1];
    }
  }

  /** The copy launch of layer `l`: encode it right after that layer's router launch. */
  layer(l: number): Launch {
    const launch = this.launches[l];
    if (!launch) throw new RangeError(`routing trace: layer ${l} is not in 0..${this.args.nLayer - 1}`);
    return launch;
  }

  /**
   * Reads the first `n` token records back (one copy, one map) and splits them into ids, weights
   * and probabilities.
   * @throws DeviceLostError, GPUErrorCaptured (debug mode)
   */
  async read(n: number): Promise<RoutingTraceData> {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.args.maxTokens)) throw new RangeError(`routing trace: cannot read ${n} tokens of ${this.args.maxTokens}`);
    if (n === 0) return splitRecords(new Uint32Array(0), 0, this.args);
    const words = new Uint32Array(await this.readback.read(this.buffer, 0, n * this.rec * 4));
    return splitRecords(words, n, this.args);
  }

  /** Frees the trace buffer, the staging buffer and the launches' uniforms. */
  dispose(): void {
    for (const l of this.launches) l.dispose();
    this.ctx.destroyBuffer(this.buffer);
    if (this.dummy) this.ctx.destroyBuffer(this.dummy);
    this.readback.destroy();
  }
}

/** Records [n, rec] → ids / weights / probs arrays (token-major). */
export function splitRecords(words: Uint32Array, n: number, a: Pick<RoutingTraceArgs, 'nLayer' | 'k' | 'nExpert' | 'probs'>): RoutingTraceData {
  const lk = a.nLayer * a.k;
  const lp = a.probs ? a.nLayer * a.nExpert : 0;
  const rec = 2 * lk + lp;
  const f32 = new Float32Array(words.buffer, words.byteOffset, words.length);
  const ids = new Uint32Array(n * lk);
  const weights = new Float32Array(n * lk);
  const probs = a.probs ? new Float32Array(n * lp) : undefined;
  for (let t = 0; t < n; t++) {
    const b = t * rec;
    ids.set(words.subarray(b, b + lk), t * lk);
    weights.set(f32.subarray(b + lk, b + 2 * lk), t * lk);
    probs?.set(f32.subarray(b + 2 * lk, b + rec), t * lp);
  }
  return probs ? { ids, weights, probs } : { ids, weights };
}

/**
 * Allocates the trace buffer ([maxTokens, nLayer·(2k + probs·nExpert)] u32) and its staging buffer and
 * builds one copy launch per layer. Call only when a trace is asked for.
 */
export async function createRoutingTrace(ctx: GPUContext, a: RoutingTraceArgs): Promise<RoutingTraceGpu> {
  const { nLayer, nExpert, k, maxTokens } = a;
  if (!(Number.isInteger(nLayer) && nLayer >= 1)) throw new KernelError(`moe_trace: ${nLayer} layers`);
  if (!(Number.isInteger(nExpert) && nExpert >= 1 && nExpert <= 4096)) throw new KernelError(`moe_trace: n_expert ${nExpert} not in 1..4096`);
  if (!(Number.isInteger(k) && k >= 1 && k <= nExpert)) throw new KernelError(`moe_trace: k ${k} not in 1..${nExpert}`);
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new KernelError(`moe_trace: capacity ${maxTokens}`);
  const routers = Array.isArray(a.router) ? (a.router as readonly RouterBuffers[]) : Array.from({ length: nLayer }, () => a.router as RouterBuffers);
  if (routers.length !== nLayer) throw new KernelError(`moe_trace: ${routers.length} router buffer sets for ${nLayer} layers`);
  const wg = a.workgroupSize ?? 128;
  const maxWg = Math.min(1024, ctx.limits.maxComputeInvocationsPerWorkgroup);
  if (!(Number.isInteger(wg) && wg >= 32 && wg <= maxWg && (wg & (wg - 1)) === 0)) throw new KernelError(`moe_trace: workgroup size ${wg} must be a power of two in 32..${maxWg}`);
  const rec = nLayer * (2 * k + (a.probs ? nExpert : 0));
  const bytes = maxTokens * rec * 4;
  if (bytes > ctx.limits.maxStorageBufferBindingSize) {
    throw new KernelError(`moe_trace: a trace of ${maxTokens} tokens needs ${bytes} bytes, above the device's binding limit; trace fewer tokens per eval${a.probs ? ' or leave out probs' : ''}`);
  }
  // workgroup array size rounded up to a power of two ≥ 64, so models of similar size share a pipeline
  const maxExpert = Math.max(64, 2 ** Math.ceil(Math.log2(nExpert)));
  const pipeline = await pipelineCache(ctx).get(MOE_TRACE, {}, { WG: wg, MAX_EXPERT: maxExpert, GATING: a.gating === 'sigmoid' ? 1 : 0 });
  const layout = pipelineCache(ctx).bindGroupLayout(MOE_TRACE);
  const refs = routers.map((r) => ({ logits: unref(r.logits), ids: unref(r.ids), weights: unref(r.weights), stride: r.logitsStride ?? nExpert }));
  const check = (n: number) => {
    for (const [l, r] of refs.entries()) {
      need(`moe_trace layer ${l} ids`, r.ids, n * k);
      need(`moe_trace layer ${l} weights`, r.weights, n * k);
      if (a.probs) need(`moe_trace layer ${l} logits`, r.logits, (n - 1) * r.stride + nExpert);
    }
  };
  check(1);
  const buffer = createStorage(ctx, bytes, 'moe_trace.out');
  // without probs the logits are never read: bind a dummy so the router's logits need not exist
  const dummy = a.probs ? undefined : createStorage(ctx, 4, 'moe_trace.nologits');
  const launches: Launch[] = [];
  const make = () => {
    for (let l = 0; l < nLayer; l++) {
      const r = refs[l]!;
      const u = new UniformBlock(ctx, MOE_TRACE.uniform!, {
        n_tokens: 1, n_expert: nExpert, k, n_layer: nLayer, layer: l, token0: 0, probs: a.probs ? 1 : 0, rec,
        logits_offset: a.probs ? r.logits.offset : 0, logits_stride: r.stride, ids_offset: r.ids.offset, weights_offset: r.weights.offset,
      }, `moe_trace layer ${l}`);
      const bindGroup = ctx.device.createBindGroup({
        label: `moe_trace layer ${l}`,
        layout,
        entries: [
          { binding: 0, resource: { buffer: u.buffer } },
          { binding: 1, resource: { buffer: a.probs ? r.logits.buffer : dummy! } },
          { binding: 2, resource: { buffer: r.ids.buffer } },
          { binding: 3, resource: { buffer: r.weights.buffer } },
          { binding: 4, resource: { buffer } },
        ],
      });
      launches.push(new Launch(`moe_trace layer ${l}`, [{ pipeline, bindGroup, workgroups: [1, 1, 1] }], [u]));
    }
  };
  try {
    if (ctx.debug) await ctx.scoped('moe_trace', make);
    else make();
  } catch (e) {
    for (const l of launches) l.dispose();
    ctx.destroyBuffer(buffer);
    if (dummy) ctx.destroyBuffer(dummy);
    throw e;
  }
  const readback = new ReadbackBuffer(ctx, bytes, 'moe_trace.readback');
  return new RoutingTraceGpu(ctx, { ...a, router: routers }, rec, buffer, launches, readback, check, dummy);
}

// ------------------------------------------------------------------------------------------------
// Per-sequence driver for a GPU forward pass
// ------------------------------------------------------------------------------------------------

/** Largest trace buffer a tracer allocates (bytes); longer calls are read back in several pieces. */
const MAX_TRACE_BYTES = 256 << 20;

/**
 * What a GPU forward pass needs to trace routing, with nothing allocated until the first traced
 * eval call. Per eval call that has a sink:
 *
 *   await tracer.begin(sink, tokens, pos0);        // (re)allocates the trace buffer if needed
 *   for each batch tokens[from .. from+n):
 *     await tracer.batch(n, from);                 // before encoding the batch
 *     ... after layer l's router launch, in the same pass: tracer.encodeLayer(pass, l)
 *     submit
 *   await tracer.end();                            // one readback of the whole call → sink.add
 *
 * A call without a sink never touches the tracer: `encodeLayer` is a no-op unless a call is active.
 */
export class GpuRoutingTracer {
  private gpu: RoutingTraceGpu | null = null;
  private sink: RoutingTraceSink | null = null;
  private tokens: readonly number[] = [];
  private start = 0;
  /** index (in the call) of the first token held in the trace buffer, and how many are held */
  private base = 0;
  private held = 0;

  constructor(
    private readonly ctx: GPUContext,
    private readonly shape: RoutingTraceShape,
    /** the router buffers (one set shared by every layer, or one per layer) */
    private readonly router: RouterBuffers | readonly RouterBuffers[],
    /** cap on the trace buffer's size in bytes (default: min(256 MiB, the binding limit)) */
    private readonly maxBytes = Math.min(MAX_TRACE_BYTES, ctx.limits.maxStorageBufferBindingSize),
  ) {}

  /** true between begin() and end() */
  get active(): boolean {
    return this.sink !== null;
  }

  /** GPU bytes held (0 until the first traced call) */
  get bytes(): number {
    return this.gpu?.bytes ?? 0;
  }

  /**
   * Starts a traced eval call of `tokens` at positions start.. : makes sure a trace buffer with the
   * sink's probs setting exists, large enough for the call (or for as much as maxBytes allows).
   */
  async begin(sink: RoutingTraceSink, tokens: readonly number[], start: number): Promise<void> {
    const { nLayer, k, nExpert } = this.shape;
    const recBytes = nLayer * (2 * k + (sink.probs ? nExpert : 0)) * 4;
    const limit = Math.max(1, Math.floor(this.maxBytes / recBytes));
    const want = Math.min(limit, Math.max(tokens.length, 64));
    const g = this.gpu;
    if (!g || g.args.probs !== sink.probs || g.args.maxTokens < Math.min(tokens.length, limit)) {
      g?.dispose();
      this.gpu = null;
      this.gpu = await createRoutingTrace(this.ctx, { ...this.shape, maxTokens: want, probs: sink.probs, router: this.router });
    }
    this.sink = sink;
    this.tokens = tokens;
    this.start = start;
    this.base = 0;
    this.held = 0;
  }

  /**
   * Before encoding the batch tokens[from .. from+n): points the copies at their slots; when the
   * trace buffer is full, first reads back what it holds (batches already submitted).
   */
  async batch(n: number, from: number): Promise<void> {
    const g = this.gpu;
    if (!this.sink || !g) throw new RangeError('routing trace: batch() outside begin()/end()');
    if (from !== this.base + this.held) throw new RangeError(`routing trace: batch starts at token ${from}, expected ${this.base + this.held}`);
    if (n > g.args.maxTokens) throw new RangeError(`routing trace: a batch of ${n} tokens exceeds the trace buffer (${g.args.maxTokens})`);
    if (this.held + n > g.args.maxTokens) await this.flush();
    g.setBatch(n, this.held);
    this.held += n;
  }

  /** Encodes layer l's copy (right after its router launch, same pass). No-op outside a traced call. */
  encodeLayer(pass: GPUComputePassEncoder, l: number): void {
    this.layerLaunch(l)?.encode(pass);
  }

  /** Layer l's copy launch during a traced call, else undefined. */
  layerLaunch(l: number): Launch | undefined {
    return this.sink ? this.gpu!.layer(l) : undefined;
  }

  /** Ends the call: reads back what the buffer holds (one copy and map) and reports it. */
  async end(): Promise<void> {
    try {
      if (this.sink) await this.flush();
    } finally {
      this.sink = null;
      this.tokens = [];
    }
  }

  /** Abandons the call without reading back (after an error). */
  cancel(): void {
    this.sink = null;
    this.tokens = [];
  }

  private async flush(): Promise<void> {
    if (this.held === 0) return;
    const data = await this.gpu!.read(this.held);
    this.sink!.add({ tokens: this.tokens.slice(this.base, this.base + this.held), start: this.start + this.base, ...data });
    this.base += this.held;
    this.held = 0;
  }

  /** Frees the trace buffer (if one was made). */
  dispose(): void {
    this.gpu?.dispose();
    this.gpu = null;
    this.sink = null;
  }
}

// ------------------------------------------------------------------------------------------------
// Hooks for a recorded forward program (src/arch)
// ------------------------------------------------------------------------------------------------

const tracers = new WeakMap<object, GpuRoutingTracer>();

/**
 * The tracer of one forward graph (`owner`: any object that lives as long as the forward pass and
 * its router buffers, e.g. src/arch's Graph), or undefined when no hook was recorded for it.
 */
export function routingTracerOf(owner: object): GpuRoutingTracer | undefined {
  return tracers.get(owner);
}

/**
 * A Launch to record right after layer `layer`'s router launch in a forward program. While no traced
 * eval call is active it encodes nothing (and reports no dispatch); during one it encodes that
 * layer's moe_trace copy. Creates the graph's tracer on first use (a plain object: GPU memory is
 * allocated only by the first traced call).
 */
export function routingTraceHook(owner: object, ctx: GPUContext, shape: RoutingTraceShape, layer: number, router: RouterBuffers): Launch {
  let tracer = tracers.get(owner);
  if (!tracer) {
    tracer = new GpuRoutingTracer(ctx, shape, Array.from({ length: shape.nLayer }, () => router));
    tracers.set(owner, tracer);
  }
  return new TraceHookLaunch(tracer, layer);
}

/** See routingTraceHook. `dispatches` mirrors what encode() recorded, for dispatch counters. */
class TraceHookLaunch extends Launch {
  constructor(
    private readonly tracer: GpuRoutingTracer,
    private readonly layerIndex: number,
  ) {
    super(`moe_trace hook layer ${layerIndex}`, [], []);
  }

  override encode(pass: GPUComputePassEncoder): void {
    this.dispatches.length = 0;
    const l = this.tracer.layerLaunch(this.layerIndex);
    if (!l) return;
    l.encode(pass);
    this.dispatches.push(...l.dispatches);
  }
}
