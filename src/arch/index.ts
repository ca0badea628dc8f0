// GpuForward: one sequence's forward pass on the GPU — the recorded Programs of both shape classes
// (prefill, decode), its activations and KV cache, and the eval loop that feeds them:
//
//   eval(tokens at pos0):  for each ubatch: write ids + positions, set counts/positions,
//                          encode body (+ head on the last ubatch) (+ top-k) + readback copy,
//                          submit once; then read the few bytes back.
//
// The architecture picks the FFN block (qwen3moe.ts: MoE; qwen3.ts: dense; qwen35moe.ts: MoE +
// shared expert) and, for the Qwen3.5 hybrids, the layer block (qwen35.ts: Gated DeltaNet or gated
// attention, with a recurrent state that rewind() restores); the rest is shared (transformer.ts).
import type { Numerics } from '../backend.js';
import type { Architecture, FfnKind, ModelConfig } from '../config.js';
import type { OnTensor } from '../cpu/forward.js';
import { UnsupportedArchitectureError } from '../errors.js';
import { createMatMul, createRmsNorm } from '../gpu/ops.js';
import { decodeTopK, type TopKLaunch } from '../gpu/sample.js';
import type { GpuLayerWeights, GpuWeights } from '../gpu/weights.js';
import type { GPUContext } from '../runtime/device.js';
import type { RoutingTraceSink } from '../trace/recorder.js';
import { routingTracerOf } from '../trace/gpu.js';
import { chainLaunches, type Launch } from '../runtime/pipelines.js';
import { newCounts, Program, type EncodeCounts, type HostIO, type PendingTap } from './program.js';
import { expertCacheOf } from '../gpu/expert-cache.js';
import { denseFfn } from './qwen3.js';
import { moeFfn } from './qwen3moe.js';
import { qwen35Block, recurrentStateOf } from './qwen35.js';
import { mlaBlock } from './mla.js';
import { sharedMoeFfn } from './qwen35moe.js';
import { createLmHead, createSelect, Graph, recordBody, recordHead, type FfnBlock, type LayerBlock, type Mode } from './transformer.js';
import { actQuantFor, createActQuant } from '../gpu/actquant.js';

/** The GPU FFN block of each FfnKind (config.ts): dense SwiGLU, routed experts, routed + gated shared expert. */
export const FFN_BLOCKS: Record<FfnKind, FfnBlock> = { dense: denseFfn, moe: moeFfn, 'moe+shared': sharedMoeFfn };

/** Architectures whose blocks are not the qwen3 transformer block (transformer.ts recordBody's default). */
const LAYER_BLOCKS: Partial<Record<Architecture, LayerBlock>> = { qwen35moe: qwen35Block, qwen35: qwen35Block, deepseek2: mlaBlock };

/** The FFN block the GPU forward pass records for a model (per layer when it has leading dense layers). */
export function ffnBlock(cfg: ModelConfig): FfnBlock {
  return cfg.nLayerDenseLead > 0 ? byLayerFfn(FFN_BLOCKS.dense, FFN_BLOCKS[cfg.ffnKind]) : FFN_BLOCKS[cfg.ffnKind];
}

/** deepseek2: the dense FFN in the leading layers, `sparse` in the others (told apart by the layer's weights). */
function byLayerFfn(dense: FfnBlock, sparse: FfnBlock): FfnBlock {
  const pick = (L: Pick<GpuLayerWeights, 'ffn'>) => (L.ffn.kind === 'dense' ? dense : sparse);
  return {
    alloc(g) {
      dense.alloc(g);
      sparse.alloc(g);
    },
    fusesNorm: (g, L) => pick(L).fusesNorm?.(g, L) ?? false,
    inputs: (L) => pick(L).inputs?.(L) ?? [],
    record: (g, p, mode, L, hq, norm) => pick(L).record(g, p, mode, L, hq, norm),
  };
}

/** Default tokens per prefill batch. */
export const DEFAULT_UBATCH = 512;
/** Default largest k of the GPU candidate selection. */
export const DEFAULT_MAX_TOPK = 256;
/** Host-visible bytes of one allLogits chunk (rows of logits read back at a time). */
const ALL_LOGITS_CHUNK_BYTES = 32 << 20;

export interface GpuForwardOptions {
  /** positions the KV cache holds */
  contextLength: number;
  /** tokens per prefill batch (default min(512, contextLength)) */
  ubatch?: number;
  /** f16 KV cache (default: when the device has shader-f16, like llama.cpp's F16 cache) */
  kvF16?: boolean;
  /** largest k of evalTopK (default 256) */
  maxTopK?: number;
  /** 'llamacpp': llama.cpp's activation round trips before products, q in f16 against an f16 cache; default 'exact' */
  numerics?: Numerics;
  /**
   * Debug: receives named intermediates copied back from the GPU (names as src/cpu/forward.ts;
   * ffn_moe_weights_norm for the routing weights; attn_out and ffn_out are derived as differences
   * of the residual stream, which the kernels update in place). Off: no taps are recorded at all.
   */
  onTensor?: OnTensor;
}

/** What a batch returns. */
export type Want = { kind: 'none' } | { kind: 'logits' } | { kind: 'all' } | { kind: 'topk'; k: number };

/** Work counters of one eval call. */
export interface EvalCounters {
  tokens: number;
  /** compute dispatches encoded */
  dispatches: number;
  /** dispatches per layer (last index: outside the layers) */
  perLayer: number[];
  /** queue submits */
  submits: number;
  /** bytes copied back to the host (debug taps excluded) */
  bytesRead: number;
}

export class GpuForward {
  readonly stats: { last: EvalCounters; total: Omit<EvalCounters, 'perLayer'> & { evals: number } };
  private readonly counts: EncodeCounts;
  private readonly hostIO: HostIO;
  private lastN = -1;
  private readonly tokHost: Uint32Array;
  private readonly posHost: Uint32Array;
  private readonly readback: GPUBuffer;
  private all: { rows: number; launches: Launch[]; out: GPUBuffer; staging: GPUBuffer } | null = null;
  private disposed = false;

  private constructor(
    private readonly ctx: GPUContext,
    readonly cfg: ModelConfig,
    private readonly g: Graph,
    private readonly body: Record<Mode, Program>,
    private readonly head: Record<Mode, Program>,
    private readonly normAll: Launch,
    private readonly select: TopKLaunch,
    private readonly selectProgram: Program,
    private readonly onTensor: OnTensor | undefined,
  ) {
    this.counts = newCounts(cfg.nLayer);
    // what host steps (the expert cache's) may do: submit and read back, counted in the stats
    this.hostIO = {
      device: ctx.device,
      counts: this.counts,
      submit: (enc) => {
        ctx.submit([enc.finish()]);
        this.stats.last.submits++;
      },
      read: (buffer, bytes) => this.read(buffer, bytes),
    };
    this.tokHost = new Uint32Array(g.ubatch);
    this.posHost = new Uint32Array(g.ubatch);
    this.readback = ctx.createBuffer({ label: 'logits.readback', size: Math.max(cfg.nVocab * 4, 8 * select.maxK), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const zero = () => ({ tokens: 0, dispatches: 0, submits: 0, bytesRead: 0 });
    this.stats = { last: { ...zero(), perLayer: [...this.counts.perLayer] }, total: { ...zero(), evals: 0 } };
  }

  /** Allocates the activations and KV cache and records both shape classes (compiles pipelines). */
  static async create(ctx: GPUContext, cfg: ModelConfig, w: GpuWeights, o: GpuForwardOptions): Promise<GpuForward> {
    const nCtx = o.contextLength;
    const ubatch = Math.max(1, Math.min(o.ubatch ?? DEFAULT_UBATCH, nCtx));
    const kvF16 = o.kvF16 ?? ctx.features.f16;
    const g = new Graph(ctx, cfg, w, nCtx, ubatch, ffnBlock(cfg), !!o.onTensor, kvF16, o.numerics ?? 'exact');
    const made: Launch[] = [];
    try {
      const block = LAYER_BLOCKS[cfg.arch];
      const body = { prefill: await recordBody(g, 'prefill', block), decode: await recordBody(g, 'decode', block) };
      made.push(...body.prefill.launches, ...body.decode.launches);
      const lm = await createLmHead(g);
      made.push(lm.launch);
      const head = { prefill: await recordHead(g, 'prefill', lm), decode: await recordHead(g, 'decode', lm) };
      made.push(...head.prefill.launches.filter((l) => l !== lm.launch), ...head.decode.launches.filter((l) => l !== lm.launch));
      const normAll = await g.sized('prefill', createRmsNorm(ctx, { x: g.act.x, weight: w.outputNorm, out: g.act.h, n: cfg.nEmbd, rows: ubatch, eps: cfg.rmsEps }));
      made.push(normAll);
      const select = await createSelect(g, Math.min(o.maxTopK ?? DEFAULT_MAX_TOPK, cfg.nVocab));
      made.push(select);
      const selectProgram = new Program(false);
      selectProgram.run(select);
      return new GpuForward(ctx, cfg, g, body, head, normAll, select, selectProgram, o.onTensor);
    } catch (e) {
      for (const l of new Set(made)) l.dispose();
      g.free();
      throw e;
    }
  }

  /** tokens per prefill batch */
  get ubatch(): number {
    return this.g.ubatch;
  }

  /** largest k of a 'topk' eval */
  get maxTopK(): number {
    return this.select.maxK;
  }

  /** true for hybrids with recurrent layers: truncation goes through rewind() */
  get recurrent(): boolean {
    return !!recurrentStateOf(this.g);
  }

  /** Positions a rewind restores without re-evaluating (besides 0); hybrids only. */
  get snapshotPositions(): number[] {
    return recurrentStateOf(this.g)?.positions ?? [];
  }

  /**
   * Hybrids: brings the recurrent state back to position nPast, given the tokens at positions
   * 0..nPast-1 — the latest snapshot at or before nPast is restored (or the zero state) and the
   * tokens after it are evaluated again (no readback). The KV cache needs nothing: attention never
   * reads past the position. Same semantics and costs as the CPU backend's truncate.
   */
  async rewind(nPast: number, tokens: readonly number[]): Promise<void> {
    const st = recurrentStateOf(this.g);
    if (!st) return;
    const from = st.restore(nPast);
    if (from < nPast) {
      this.replaying = true;
      try {
        await this.eval(tokens.slice(from, nPast), from, { kind: 'none' });
      } finally {
        this.replaying = false;
      }
    }
  }

  private replaying = false;

  /** GPU bytes of the activations and KV cache */
  get bytes(): number {
    return this.g.arena.bytes + this.g.kv.reduce((s, c) => s + c.k.size + c.v.size, 0);
  }

  /**
   * Evaluates tokens at positions pos0 .. pos0+n-1 (the caller checks the context length) and
   * returns what `want` asks for: the last token's logits [nVocab], all rows [n, nVocab], or the
   * top-k ids and logits of the last token.
   */
  async eval(tokens: readonly number[], pos0: number, want: Want, trace?: RoutingTraceSink): Promise<Float32Array | { ids: Uint32Array; logits: Float32Array }> {
    const n = tokens.length;
    const U = this.g.ubatch;
    // routing trace (src/trace/gpu.ts): the GPU writes every layer's routing into a trace buffer,
    // read back once after the last batch
    const tracer = trace ? routingTracerOf(this.g) : undefined;
    if (trace && !tracer) throw new RangeError(`routing traces need a Mixture-of-Experts model; ${this.cfg.arch} has no router`);
    if (tracer) await tracer.begin(trace!, tokens, pos0);
    const last = this.stats.last;
    this.counts.dispatches = 0;
    this.counts.perLayer.fill(0);
    last.tokens = n;
    last.submits = 0;
    last.bytesRead = 0;
    const allRows = want.kind === 'all' ? new Float32Array(n * this.cfg.nVocab) : null;
    let result: Float32Array | { ids: Uint32Array; logits: Float32Array } = new Float32Array(0);
    try {
      for (let i = 0; i < n; i += U) {
        const m = Math.min(U, n - i);
        const isLast = i + m === n;
        if (tracer) await tracer.batch(m, i);
        const r = await this.batch(tokens, i, m, pos0 + i, isLast || allRows ? want : { kind: 'none' });
        if (allRows) allRows.set(r as Float32Array, i * this.cfg.nVocab);
        else if (isLast) result = r;
      }
      if (tracer) await tracer.end();
    } catch (e) {
      tracer?.cancel();
      throw e;
    }
    // hybrids: keep a copy of the recurrent state after a multi-token eval (see rewind)
    if (n > 1 && !this.replaying) recurrentStateOf(this.g)?.snapshot(pos0 + n);
    last.dispatches = this.counts.dispatches;
    for (let l = 0; l < last.perLayer.length; l++) last.perLayer[l] = this.counts.perLayer[l]!;
    const t = this.stats.total;
    t.evals++;
    t.tokens += n;
    t.dispatches += last.dispatches;
    t.submits += last.submits;
    t.bytesRead += last.bytesRead;
    return allRows ?? result;
  }

  /** One ubatch: tokens[from .. from+n) at positions pos0 .. pos0+n-1. */
  private async batch(tokens: readonly number[], from: number, n: number, pos0: number, want: Want): Promise<Float32Array | { ids: Uint32Array; logits: Float32Array }> {
    const { ctx, g } = this;
    const a = g.act;
    const mode: Mode = n === 1 ? 'decode' : 'prefill';

    // inputs: token ids and positions (2·4·n bytes)
    for (let t = 0; t < n; t++) {
      this.tokHost[t] = tokens[from + t]!;
      this.posHost[t] = pos0 + t;
    }
    ctx.queue.writeBuffer(a.tokens, 0, this.tokHost.buffer, 0, n * 4);
    ctx.queue.writeBuffer(a.pos, 0, this.posHost.buffer, 0, n * 4);

    // sizes and positions: uniforms only
    if (mode === 'prefill') {
      if (n !== this.lastN) {
        for (const [l, per] of g.counted) l.setCount(n * per);
        this.lastN = n;
      }
      for (const l of g.kvWrites.prefill) l.update(n, pos0);
      for (const l of g.attnPrefill) l.update(n, pos0);
    } else {
      for (const l of g.kvWrites.decode) l.setPosition(pos0);
      for (const l of g.attnDecode) l.setKv(pos0 + 1);
    }

    let enc = ctx.device.createCommandEncoder({ label: `moet ${mode}` });
    const taps: PendingTap[] | null = this.onTensor ? [] : null;
    const body = this.body[mode];
    let readBytes = 0;
    const allPrefill = want.kind === 'all' && mode === 'prefill';
    // experts offloaded to host memory (src/arch/expert-offload.ts): the pass stops after each MoE
    // layer's router, and the model's expert slots belong to this batch until its last submit
    const release = body.hasHostSteps ? await expertCacheOf(g.w)!.acquire() : null;
    try {
      if (release) enc = await body.encodeWithHost(enc, n, taps, this.hostIO);
      else body.encode(ctx.device, enc, n, this.counts, taps);
      if (allPrefill) {
        // every row: h = RMSNorm(x) ⊙ output_norm, then the LM head in chunks below
        const p = new Program(!!taps);
        p.run(this.normAll);
        p.tap('result_norm', a.h, (k) => k * this.cfg.nEmbd);
        p.encode(ctx.device, enc, n, this.counts, taps);
      } else if (want.kind !== 'none') {
        this.head[mode].encode(ctx.device, enc, n, this.counts, taps);
        if (want.kind === 'topk') {
          if (this.select.k !== want.k) this.select.setK(want.k);
          this.selectProgram.encode(ctx.device, enc, n, this.counts, null);
          readBytes = this.select.resultBytes;
          enc.copyBufferToBuffer(this.select.out, 0, this.readback, 0, readBytes);
        } else {
          readBytes = this.cfg.nVocab * 4;
          enc.copyBufferToBuffer(a.logits, 0, this.readback, 0, readBytes);
        }
      }
      ctx.submit([enc.finish()]);
      this.stats.last.submits++;
    } finally {
      release?.();
    }

    let out: Float32Array | { ids: Uint32Array; logits: Float32Array } = new Float32Array(0);
    if (readBytes > 0) {
      const bytes = await this.read(this.readback, readBytes);
      out = want.kind === 'topk' ? decodeTopK(bytes, want.k) : new Float32Array(bytes);
    }
    if (allPrefill) out = await this.lmHeadAll(n);
    if (taps) await this.emitTaps(taps, allPrefill ? (out as Float32Array) : null);
    return out;
  }

  /** The LM head over rows 0..n-1 of h (allLogits prefill), in chunks of rows read back one by one. */
  private async lmHeadAll(n: number): Promise<Float32Array> {
    const { ctx, g, cfg } = this;
    const V = cfg.nVocab;
    if (!this.all) {
      const rows = Math.max(1, Math.min(g.ubatch, Math.floor(ALL_LOGITS_CHUNK_BYTES / (V * 4))));
      const out = g.arena.alloc('logits_all', rows * V * 4);
      const staging = ctx.createBuffer({ label: 'logits_all.readback', size: rows * V * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const launches: Launch[] = [];
      for (let r0 = 0; r0 < g.ubatch; r0 += rows) {
        const m = Math.min(rows, g.ubatch - r0);
        const x = { buffer: g.act.h, offset: r0 * cfg.nEmbd };
        const type = g.numerics === 'llamacpp' ? actQuantFor(g.w.output.type) : null;
        if (type === null) launches.push(await createMatMul(ctx, { w: g.w.output, x, y: out, nTokens: m }));
        else {
          // llama.cpp's round trip of the head's input, into a buffer of its own (the pass's scratch is smaller)
          const hq = g.arena.alloc('lm_head_all.act', m * cfg.nEmbd * 4);
          const round = await createActQuant(ctx, { type, x, out: hq, n: cfg.nEmbd, rows: m });
          launches.push(chainLaunches(round, await createMatMul(ctx, { w: g.w.output, x: hq, y: out, nTokens: m })));
        }
      }
      this.all = { rows, launches, out, staging };
    }
    const { rows, launches, out, staging } = this.all;
    const result = new Float32Array(n * V);
    for (let c = 0; c * rows < n; c++) {
      const m = Math.min(rows, n - c * rows);
      const l = launches[c]!;
      l.setCount(m);
      const enc = ctx.device.createCommandEncoder({ label: 'moet lm_head all' });
      const p = new Program(false);
      p.run(l);
      p.encode(ctx.device, enc, m, this.counts, null);
      enc.copyBufferToBuffer(out, 0, staging, 0, m * V * 4);
      ctx.submit([enc.finish()]);
      this.stats.last.submits++;
      result.set(new Float32Array(await this.read(staging, m * V * 4)), c * rows * V);
    }
    return result;
  }

  /** Maps `bytes` of a MAP_READ buffer and returns a copy. */
  private async read(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    await this.ctx.track(buf.mapAsync(GPUMapMode.READ, 0, bytes));
    const copy = buf.getMappedRange(0, bytes).slice(0);
    buf.unmap();
    if (this.ctx.debug) this.ctx.throwCaptured();
    this.stats.last.bytesRead += bytes;
    return copy;
  }

  /** Debug: hands the tapped intermediates to onTensor, with attn_out and ffn_out derived. */
  private async emitTaps(taps: PendingTap[], allLogits: Float32Array | null): Promise<void> {
    const on = this.onTensor!;
    const diff = (a: Float32Array, b: Float32Array) => a.map((v, i) => v - b[i]!);
    let resid: Float32Array | null = null; // x entering the current block
    let ffnInp: Float32Array | null = null;
    try {
      for (const t of taps) {
        await this.ctx.track(t.staging.mapAsync(GPUMapMode.READ, 0, t.bytes));
        const bytes = t.staging.getMappedRange(0, t.bytes).slice(0);
        t.staging.unmap();
        const data = t.type === 'u32' ? new Int32Array(bytes) : new Float32Array(bytes);
        on(t.name, t.layer, data);
        if (!(data instanceof Float32Array)) continue;
        if (t.name === 'ffn_inp' || t.name === 'attn_residual') {
          if (resid) on('attn_out', t.layer, diff(data, resid));
          ffnInp = data;
        } else if (t.name === 'l_out') {
          if (ffnInp) on('ffn_out', t.layer, diff(data, ffnInp));
          resid = data;
        } else if (t.name === 'inp_embd') {
          resid = data;
        }
      }
      if (allLogits) on('result_output', -1, allLogits.slice());
    } finally {
      for (const t of taps) t.staging.destroy();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const launches = new Set<Launch>([
      ...this.body.prefill.launches,
      ...this.body.decode.launches,
      ...this.head.prefill.launches,
      ...this.head.decode.launches,
      this.normAll,
      this.select,
      ...(this.all?.launches ?? []),
    ]);
    if (this.ctx.isLost) return;
    routingTracerOf(this.g)?.dispose();
    for (const l of launches) l.dispose();
    this.g.free();
    this.ctx.destroyBuffer(this.readback);
    if (this.all) this.ctx.destroyBuffer(this.all.staging);
  }
}
