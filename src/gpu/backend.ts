// WebGPUBackend: the Backend contract (src/backend.ts) on WebGPU (Dawn). Weights are streamed to
// the GPU once (weights.ts) and stay in their GGUF formats; each sequence owns its activations, KV
// cache and recorded forward pass (src/arch/), and a decode step is one submit that reads back
// either the logits or, with evalTopK, only the k best candidates.
import type { Backend, BackendSequence, EvalOptions, Numerics, RoutingTraceSink, SequenceStats, TopKResult } from '../backend.js';
import { isQwen35, type ModelConfig, validateTensors } from '../config.js';
import type { OnTensor } from '../cpu/forward.js';
import { ContextOverflowError, DisposedError, UnsupportedArchitectureError } from '../errors.js';
import { DEFAULT_MAX_TOPK, ffnBlock, GpuForward, type Want } from '../arch/index.js';
import { createGPU, type CreateGPUOptions, type GPUContext } from '../runtime/device.js';
import { freeWeights, loadWeights, type GGUFTensorReader, type GpuWeights } from './weights.js';
import { autoGpuMemoryBudget, ExpertCache, expertCacheOf, initialSlots, planExpertBudget, slotsBudget, slotsForFraction, type ExpertCacheOptions, type GpuMemoryBudget } from './expert-cache.js';

export interface WebGPULoadOptions {
  signal?: AbortSignal;
  /** 'llamacpp' (default): activations rounded before products as llama.cpp's CPU backend does (src/backend.ts); 'exact': f32 */
  numerics?: Numerics;
  /** fraction of weight bytes uploaded so far, 0..1 */
  onProgress?: (fraction: number) => void;
  /** device options (adapter, debug …); ignored when `context` is given */
  gpu?: CreateGPUOptions;
  /** an open device to use (the backend then does not dispose it) */
  context?: GPUContext;
  /** compile every pipeline during load (default true), so the first eval does not pay for it */
  warmup?: boolean;
  /** weight loader tuning (tests) */
  chunkBytes?: number;
  maxPartBytes?: number;
  /**
   * Bytes of GPU memory the weights may take (src/gpu/expert-cache.ts): everything but the routed
   * experts stays on the GPU, as many experts per MoE layer as fit get GPU slots, and the others are
   * read from the file when the router picks them. 'auto': 90% of the GPU's memory (when the host
   * can tell it) less one session's KV cache; { expertFraction }: the budget that keeps that share
   * of each layer's experts on the GPU. Unset, or enough for the whole model: loads as usual.
   */
  gpuMemoryBudget?: GpuMemoryBudget;
  /** the expert cache's eviction policy and calibration prior (with gpuMemoryBudget) */
  experts?: ExpertCacheOptions;
  /** sessions' context length: sizes the KV cache that gpuMemoryBudget 'auto' leaves room for (default 2048) */
  contextLength?: number;
}

export interface WebGPUSequenceOptions {
  /** tokens per prefill batch (default min(512, contextLength)) */
  ubatch?: number;
  /** f16 KV cache (default: when the device has shader-f16) */
  kvF16?: boolean;
  /** largest k of evalTopK (default 256) */
  maxTopK?: number;
  /** debug: named intermediates copied back from the GPU after every eval (see arch/index.ts) */
  onTensor?: OnTensor;
}

function emptyStats(): SequenceStats {
  return {
    last: { tokens: 0, dispatches: 0, perLayer: [], submits: 0, bytesRead: 0 },
    total: { evals: 0, tokens: 0, dispatches: 0, submits: 0, bytesRead: 0 },
  };
}

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu' as const;
  /** eval honours opts.trace: the GPU writes the routing (src/trace/gpu.ts), read back once per call */
  readonly tracesRouting = true;
  private readonly sequences = new Set<WebGPUSequence>();
  private disposed = false;

  private constructor(
    readonly ctx: GPUContext,
    readonly config: ModelConfig,
    /** @internal */ readonly weights: GpuWeights,
    private readonly ownsContext: boolean,
    /** how every sequence's pass rounds (src/backend.ts Numerics) */
    readonly numerics: Numerics = 'llamacpp',
  ) {}

  /**
   * Opens the device (unless given one) and streams the weights to it.
   * @throws WebGPUUnavailableError without an adapter; ModelFormatError, UnsupportedQuantError,
   *   UnsupportedArchitectureError for the file; GpuMemoryBudgetError for a gpuMemoryBudget below
   *   the model's minimum; AbortError (everything allocated is freed first)
   */
  static async load(file: GGUFTensorReader, config: ModelConfig, opts: WebGPULoadOptions = {}): Promise<WebGPUBackend> {
    validateTensors(config, file.tensorByName); // a missing or mis-shaped tensor is reported before anything is allocated
    // a budget in bytes is checked before the device opens; 'auto' needs the device
    const asked = opts.gpuMemoryBudget;
    const bytes = typeof asked === 'object' ? slotsBudget(config, file.tensorByName, slotsForFraction(config, asked.expertFraction)) : asked;
    let budget = typeof bytes === 'number' ? planExpertBudget(config, file.tensorByName, bytes) : null;
    const ctx = opts.context ?? (await createGPU(opts.gpu));
    const owns = !opts.context;
    try {
      if (asked === 'auto') {
        const auto = autoGpuMemoryBudget(ctx, config, opts.contextLength ?? 2048);
        budget = auto === null ? null : planExpertBudget(config, file.tensorByName, auto);
      }
      const offload = budget?.offload ? budget : null;
      const expertSlots = offload ? initialSlots(config, offload, opts.experts) : undefined;
      const weights = await loadWeights(ctx, file, config, { signal: opts.signal, onProgress: opts.onProgress, chunkBytes: opts.chunkBytes, maxPartBytes: opts.maxPartBytes, expertSlots });
      const cache = offload ? ExpertCache.create(ctx, file, config, offload, weights, opts.experts) : null;
      const be = new WebGPUBackend(ctx, config, weights, owns, opts.numerics ?? 'llamacpp');
      if (opts.warmup !== false) {
        try {
          // a tiny sequence runs each path once: every pipeline compiles now (drivers such as
          // lavapipe compile on first dispatch, not at pipeline creation)
          const f = await GpuForward.create(ctx, config, weights, { contextLength: 4, ubatch: 2, maxTopK: 2, numerics: be.numerics });
          try {
            await f.eval([0, 0], 0, { kind: 'logits' });
            await f.eval([0], 2, { kind: 'topk', k: 2 });
          } finally {
            f.dispose();
          }
        } catch (e) {
          await be.dispose();
          throw e;
        }
      }
      cache?.resetStats(); // the warm-up's batches are not the user's
      return be;
    } catch (e) {
      if (owns) await ctx.dispose();
      throw e;
    }
  }

  /** GPU bytes held by the weights */
  get weightBytes(): number {
    return this.weights.bytes;
  }

  /** The expert cache (gpuMemoryBudget smaller than the model), or null when every expert is on the GPU. */
  get expertCache(): ExpertCache | null {
    return expertCacheOf(this.weights) ?? null;
  }

  /**
   * A new sequence with an empty KV cache of `contextLength` positions. Its buffers and pipelines
   * are made on first use (eval is async; this is not).
   */
  createSequence(contextLength: number, opts: WebGPUSequenceOptions = {}): WebGPUSequence {
    this.assertAlive();
    if (!(Number.isInteger(contextLength) && contextLength > 0)) throw new RangeError(`invalid context length ${contextLength}`);
    const s = new WebGPUSequence(this, contextLength, opts, () => this.sequences.delete(s));
    this.sequences.add(s);
    return s;
  }

  /** @internal */
  assertAlive(): void {
    if (this.disposed) throw new DisposedError('the WebGPU backend was disposed');
    this.ctx.assertUsable();
  }

  /** Frees every sequence, the weights and (if it opened it) the device. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of [...this.sequences]) s.dispose();
    if (!this.ctx.isLost) freeWeights(this.ctx, this.weights);
    if (this.ownsContext) await this.ctx.dispose();
  }
}

export class WebGPUSequence implements BackendSequence {
  private past = 0;
  private disposed = false;
  private forward: Promise<GpuForward> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly emptyStats = emptyStats();
  /** hybrids (recurrent layers): the token at every position, which truncate re-evaluates */
  private readonly history: number[] | null;
  /** a failed rewind leaves the recurrent state unknown: later evals throw this */
  private broken: unknown = null;

  constructor(
    private readonly backend: WebGPUBackend,
    readonly contextLength: number,
    private readonly opts: WebGPUSequenceOptions,
    private readonly onDispose: () => void,
  ) {
    this.history = isQwen35(backend.config) ? [] : null;
  }

  get nPast(): number {
    return this.past;
  }

  /** largest k evalTopK accepts */
  get maxTopK(): number {
    return Math.min(this.opts.maxTopK ?? DEFAULT_MAX_TOPK, this.backend.config.nVocab);
  }

  /** Work counters: the last eval's dispatches (total and per layer), submits and bytes read back, and totals. */
  get stats(): SequenceStats {
    return this.ready?.stats ?? this.emptyStats;
  }

  private ready: GpuForward | null = null;

  /**
   * Evaluates tokens at positions nPast..nPast+n-1; returns the last token's logits [nVocab], or
   * all of them [n, nVocab] with allLogits.
   * @throws ContextOverflowError, RangeError for an empty list or an id outside the vocabulary,
   *   DisposedError, DeviceLostError
   */
  async eval(tokens: number[], opts: EvalOptions = {}): Promise<Float32Array> {
    return (await this.run(tokens, opts.allLogits ? { kind: 'all' } : { kind: 'logits' }, opts.trace)) as Float32Array;
  }

  /**
   * Like eval, but returns only the k highest logits of the last token, selected on the GPU
   * (descending, ties → lower id): a decode step reads back 8·k bytes instead of the vocabulary.
   * @throws RangeError when k is not in 1..maxTopK; as eval
   */
  async evalTopK(tokens: number[], k: number, opts: Pick<EvalOptions, 'trace'> = {}): Promise<TopKResult> {
    if (!(Number.isInteger(k) && k >= 1 && k <= this.maxTopK)) throw new RangeError(`evalTopK: k = ${k} not in 1..${this.maxTopK}`);
    return (await this.run(tokens, { kind: 'topk', k }, opts.trace)) as TopKResult;
  }

  private run(tokens: number[], want: Want, trace?: RoutingTraceSink): Promise<Float32Array | TopKResult> {
    this.assertAlive();
    const n = tokens.length;
    if (n === 0) throw new RangeError('eval needs at least one token');
    const nVocab = this.backend.config.nVocab;
    for (const t of tokens) {
      if (!(Number.isInteger(t) && t >= 0 && t < nVocab)) throw new RangeError(`token id ${t} is outside the vocabulary 0..${nVocab - 1}`);
    }
    if (this.past + n > this.contextLength) throw new ContextOverflowError(this.contextLength, this.past + n);
    const pos0 = this.past;
    this.past += n; // reserved now so that a second call queued behind this one checks against it
    this.history?.push(...tokens);
    const job = async () => {
      this.assertAlive();
      if (this.broken) throw this.broken;
      const f = await this.getForward();
      this.assertAlive();
      return f.eval(tokens, pos0, want, trace);
    };
    const p = this.queue.then(job, job);
    this.queue = p.catch(() => undefined);
    return p.catch((e) => {
      if (this.disposed) throw new DisposedError('the sequence was disposed during eval', { cause: e });
      // the positions were not filled: give them back (only if nothing was queued after); a
      // recurrent state may have advanced part way: rewind it too
      if (this.past === pos0 + n) {
        this.past = pos0;
        if (this.history && !this.broken) this.rewind(pos0);
      }
      throw e;
    });
  }

  /** Hybrids: queues the recurrent state's return to position nPast (GpuForward.rewind). */
  private rewind(nPast: number): void {
    const tokens = this.history!.slice(0, nPast);
    this.history!.length = nPast;
    const job = async () => {
      if (this.disposed || this.broken || !this.forward) return; // no forward yet: its state is still zero
      const f = await this.forward;
      await f.rewind(nPast, tokens);
    };
    this.queue = this.queue.then(job, job).catch((e) => {
      this.broken ??= e;
    });
  }

  private getForward(): Promise<GpuForward> {
    if (!this.forward) {
      const { ctx, config, weights } = this.backend;
      this.forward = GpuForward.create(ctx, config, weights, { ...this.opts, contextLength: this.contextLength, numerics: this.backend.numerics }).then((f) => {
        if (this.disposed) {
          f.dispose();
          throw new DisposedError('the sequence was disposed');
        }
        this.ready = f;
        return f;
      });
      this.forward.catch(() => (this.forward = null));
    }
    return this.forward;
  }

  /**
   * Forgets positions >= nPast (the cache keeps its memory; attention never reads past nPast).
   * Hybrids (qwen35moe, qwen35): a recurrent state cannot be rewound, so — like the CPU backend —
   * the state copied at the end of one of the last two multi-token evals at or before nPast is
   * restored (or the zero state) and the remembered tokens from there up to nPast are evaluated
   * again: free at 0 and at those positions, a prefill of the gap elsewhere. The GPU work is queued
   * before the next eval; a failure there makes later evals throw it.
   */
  truncate(nPast: number): void {
    this.assertAlive();
    if (!(Number.isInteger(nPast) && nPast >= 0 && nPast <= this.past)) {
      throw new RangeError(`cannot truncate to ${nPast}: the sequence holds ${this.past} positions`);
    }
    if (this.history && nPast !== this.past) this.rewind(nPast);
    this.past = nPast;
  }

  /** Hybrids: positions where truncate restores a copy of the recurrent state without re-evaluating (besides 0). */
  get snapshotPositions(): number[] {
    return this.ready?.snapshotPositions ?? [];
  }

  /** Frees the KV cache and activations. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ready?.dispose();
    this.ready = null;
    this.onDispose();
  }

  private assertAlive(): void {
    if (this.disposed) throw new DisposedError('the sequence was disposed');
    this.backend.assertAlive();
  }
}
