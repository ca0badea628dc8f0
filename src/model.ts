// loadModel, Model and Session: the library's surface over a GGUF file, a tokenizer and a backend.
//
// A Model owns the open file, the tokenizer and one Backend (CPU reference or WebGPU). A Session
// owns one BackendSequence (a KV cache) and the tokens in it. Generation samples with the
// llama.cpp-ordered chain of sampler.ts and decodes with the tokenizer's streaming decoder.
import { openGGUF, type GGUFFile } from '../gguf/reader.js';
import { ggmlTypeName, type GGUFTensorInfo } from '../gguf/types.js';
import type { Backend, BackendSequence, Numerics, SequenceStats, TopKResult } from './backend.js';
import { applyChatTemplate, chatTemplateSource, chatTurn, isHarmonyTemplate, promptOpensThinking, tokenizeChatPrompt, type ChatChunk, type ChatMessage, type ChatOptions, type ChatResult, type ChatTemplateOptions } from './chat.js';
import { configFromGGUF, type ModelConfig } from './config.js';
import { AbortError, ContextOverflowError, DisposedError, MoetError } from './errors.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import { Tokenizer } from './tokenizer/index.js';
import { RoutingTraceRecorder } from './trace/recorder.js';
import type { RoutingTrace, TraceOptions } from './trace/types.js';
import type { ExpertCacheOptions, ExpertCacheStats, GpuMemoryBudget } from './gpu/expert-cache.js';

/** Names of the backends moet has. */
export type BackendName = 'cpu' | 'webgpu';

/** What a backend factory receives besides the file and config. */
interface BackendLoadOptions {
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
  numerics?: Numerics;
  gpuMemoryBudget?: GpuMemoryBudget;
  experts?: ExpertCacheOptions;
  contextLength?: number;
}

type BackendFactory = (file: GGUFFile, config: ModelConfig, opts: BackendLoadOptions) => Promise<Backend>;

// One entry per backend, imported lazily so that choosing one never loads the other (the CPU
// backend never touches Dawn).
const BACKENDS: Record<BackendName, BackendFactory> = {
  cpu: async (file, config, opts) => (await import('./cpu/backend.js')).loadCpuBackend(file, config, opts),
  webgpu: async (file, config, opts) => (await import('./gpu/backend.js')).WebGPUBackend.load(file, config, opts),
};

/** The backend loadModel uses when none is given. */
export const DEFAULT_BACKEND: BackendName = 'webgpu';

/** Context length of a session when loadModel is given none (capped at the trained context). */
export const DEFAULT_CONTEXT_LENGTH = 2048;

/** Options of loadModel. */
export interface LoadModelOptions {
  /** 'cpu' (plain TypeScript reference) or 'webgpu'. Default: DEFAULT_BACKEND */
  backend?: BackendName;
  /** tokens each session's KV cache holds. Default: min(2048, the trained context) */
  contextLength?: number;
  /** called with the fraction (0..1) of weight bytes loaded */
  onProgress?: (fraction: number) => void;
  /** aborts loading (the promise rejects with AbortError) */
  signal?: AbortSignal;
  /**
   * 'llamacpp' (default): round activations before each quantized product (and q / softmax weights
   * against the F16 KV cache) exactly as llama.cpp's CPU backend does, so results track llama.cpp
   * on the same file; 'exact': multiply in plain f32. See Numerics in src/backend.ts.
   */
  numerics?: Numerics;
  /**
   * WebGPU: bytes of GPU memory the weights may take. Attention, norms, routers, embeddings, LM head
   * (everything but the routed experts) stay on the GPU; each MoE layer gets as many GPU slots for
   * experts as fit, and the other experts are read from the file when the router picks them
   * (results identical to the model loaded whole; each MoE layer then costs a readback of its
   * expert ids per step). 'auto': 90% of the GPU's memory, when the host can tell it, less one
   * session's KV cache; { expertFraction }: keep that share of each layer's experts on the GPU.
   * Unset, or enough for the whole model: loaded as usual. See docs/performance.md.
   */
  gpuMemoryBudget?: GpuMemoryBudget;
  /** with gpuMemoryBudget: the expert cache's eviction policy (default 'lru') and calibration prior */
  experts?: ExpertCacheOptions;
}

/** Number of tensors and bytes of one ggml type in a file. */
export interface QuantMixEntry {
  tensors: number;
  bytes: number;
}

/** Expert configuration of a Mixture-of-Experts model. */
export interface ExpertInfo {
  /** experts per layer */
  count: number;
  /** experts each token uses */
  used: number;
  /** hidden width of one expert's FFN */
  feedForwardLength: number;
}

/** What a loaded model is. */
export interface ModelInfo {
  /** `general.name`, or null */
  name: string | null;
  /** `general.architecture` (qwen3moe, qwen3) */
  architecture: string;
  /** size of the GGUF file in bytes */
  fileSize: number;
  /** number of weights (elements of every tensor) */
  parameterCount: number;
  /** per ggml type name (Q4_K, F32, ...): tensor count and bytes */
  quantMix: Record<string, QuantMixEntry>;
  layers: number;
  embeddingLength: number;
  heads: number;
  kvHeads: number;
  headDimK: number;
  headDimV: number;
  /** dense FFN width (0 when the file has none) */
  feedForwardLength: number;
  /** null for dense models */
  experts: ExpertInfo | null;
  vocabSize: number;
  /** context the model was trained with */
  contextTrained: number;
  /** context length of this model's sessions */
  contextLength: number;
  /** the backend in use */
  backend: BackendName;
}

/** Options of Model.tokenize. */
export interface TokenizeOptions {
  /** parse control tokens such as `<|im_start|>` written in the text. Default false */
  special?: boolean;
  /** prepend BOS. Default: what the GGUF says (`tokenizer.ggml.add_bos_token`) */
  addBos?: boolean;
}

/** Options of Model.detokenize. */
export interface DetokenizeOptions {
  /** include the text of control tokens. Default false */
  special?: boolean;
}

/** Options of Session.generate: the sampler's options plus the stopping rules. */
export interface GenerateOptions extends SamplerOptions {
  /** most tokens to generate. Default: until end of generation, a stop string or a full context */
  maxTokens?: number;
  /** generation ends when the text contains one of these; the text before it is emitted, it is not */
  stop?: readonly string[];
  /** checked between tokens; generate then throws AbortError */
  signal?: AbortSignal;
  /** record the MoE routing of every token this call evaluates (see Session.lastTrace) */
  trace?: TraceOptions;
}

/** Options of Session.eval. */
export interface SessionEvalOptions {
  /** record the MoE routing of the evaluated tokens (see Session.lastTrace) */
  trace?: TraceOptions;
}

/** One generated token. */
export interface GeneratedToken {
  /** token id */
  id: number;
  /**
   * text that became final with this token: may be '' (a UTF-8 character still incomplete, or text
   * that could be the start of a stop string) or hold text held back from earlier tokens
   */
  text: string;
}

/** Why the last generate ended. */
export type StopReason = 'eog' | 'stop' | 'length' | 'context' | 'abort';

/** Timings of the last generate call (times in milliseconds). */
export interface GenerationTimings {
  /** tokens evaluated for the prompt (including a token left pending by the previous call) */
  promptTokens: number;
  promptMs: number;
  /** tokens sampled, including a final end-of-generation token */
  generatedTokens: number;
  /** evaluations of generated tokens (one token each) */
  evalRuns: number;
  evalMs: number;
  /** time spent sampling */
  sampleMs: number;
  /** evalMs + sampleMs: generation time, not counting the caller's time between tokens */
  genMs: number;
  stopReason: StopReason;
}

/** Element count of a tensor. */
function elementCount(t: GGUFTensorInfo): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** Tensor count and bytes per ggml type. @internal used by the CLI */
export function quantMixOf(tensors: readonly GGUFTensorInfo[]): Record<string, QuantMixEntry> {
  const mix: Record<string, QuantMixEntry> = {};
  for (const t of tensors) {
    const name = ggmlTypeName(t.type);
    const e = (mix[name] ??= { tensors: 0, bytes: 0 });
    e.tensors++;
    e.bytes += t.byteLength;
  }
  return mix;
}

/** Number of weights in all tensors. @internal used by the CLI */
export function parameterCountOf(tensors: readonly GGUFTensorInfo[]): number {
  let n = 0;
  for (const t of tensors) n += elementCount(t);
  return n;
}

function checkAlive(disposed: boolean, what: string): void {
  if (disposed) throw new DisposedError(`${what} was disposed; load the model again`);
}

function abortError(signal: AbortSignal, what: string): AbortError {
  const reason = signal.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new AbortError(`${what} was aborted${reason}`, { cause: signal.reason });
}

/**
 * Opens a GGUF model, reads its tokenizer and configuration and loads its weights into a backend.
 *
 * @param path path of a .gguf file
 * @throws GGUFFormatError when the file is not a valid GGUF file; UnsupportedQuantError for a
 *   tensor type moet cannot run; UnsupportedArchitectureError for an architecture moet does not run
 *   or missing hyperparameters; ModelFormatError for a missing or mis-shaped tensor;
 *   WebGPUUnavailableError when the WebGPU backend finds no adapter; GpuMemoryBudgetError when
 *   `gpuMemoryBudget` is below the model's minimum (the message says it); AbortError when `signal`
 *   aborts; RangeError for a bad option; Node's fs errors (ENOENT, EACCES) for an unreadable path
 */
export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<Model> {
  const backendName = opts.backend ?? DEFAULT_BACKEND;
  const factory = BACKENDS[backendName];
  if (!factory) throw new RangeError(`unknown backend "${String(backendName)}"; use one of: ${Object.keys(BACKENDS).join(', ')}`);
  if (opts.signal?.aborted) throw abortError(opts.signal, 'model loading');
  const file = await openGGUF(path);
  try {
    const config = configFromGGUF(file.metadata, file.tensorByName);
    const tokenizer = Tokenizer.fromGGUF(file.metadata);
    let contextLength = opts.contextLength ?? Math.min(DEFAULT_CONTEXT_LENGTH, config.nCtxTrain);
    if (!Number.isInteger(contextLength) || contextLength <= 0) {
      throw new RangeError(`contextLength must be a positive integer, got ${opts.contextLength}`);
    }
    contextLength = Math.trunc(contextLength);
    if (opts.gpuMemoryBudget !== undefined && backendName !== 'webgpu') throw new RangeError(`gpuMemoryBudget applies to the webgpu backend, not ${backendName}`);
    const backend = await factory(file, config, { signal: opts.signal, onProgress: opts.onProgress, numerics: opts.numerics, gpuMemoryBudget: opts.gpuMemoryBudget, experts: opts.experts, contextLength });
    if (opts.signal?.aborted) {
      await backend.dispose();
      throw abortError(opts.signal, 'model loading');
    }
    return new Model(file, config, tokenizer, backend, backendName, contextLength);
  } catch (e) {
    await file.close().catch(() => {});
    throw e;
  }
}

/**
 * A loaded model: tokenizer, configuration and weights on a backend. Create sessions to run it.
 * Call `dispose()` (or use `await using`) when done.
 */
export class Model {
  /** what the model is (architecture, sizes, experts, quantization, ...) */
  readonly info: ModelInfo;
  /** the tokenizer read from the GGUF */
  readonly tokenizer: Tokenizer;
  /** hyperparameters as the backends see them */
  readonly config: ModelConfig;
  private readonly sessions = new Set<Session>();
  private disposed = false;

  /** @internal use loadModel */
  constructor(
    private readonly file: GGUFFile,
    config: ModelConfig,
    tokenizer: Tokenizer,
    /** @internal */ readonly backend: Backend,
    backendName: BackendName,
    /** tokens each session holds */
    readonly contextLength: number,
  ) {
    this.config = config;
    this.tokenizer = tokenizer;
    const name = file.getValue('general.name');
    this.info = {
      name: typeof name === 'string' ? name : null,
      architecture: config.arch,
      fileSize: file.fileSize,
      parameterCount: parameterCountOf(file.tensors),
      quantMix: quantMixOf(file.tensors),
      layers: config.nLayer,
      embeddingLength: config.nEmbd,
      heads: config.nHead,
      kvHeads: config.nHeadKv,
      headDimK: config.headDimK,
      headDimV: config.headDimV,
      feedForwardLength: config.nFf,
      experts: config.nExpert > 0 ? { count: config.nExpert, used: config.nExpertUsed, feedForwardLength: config.nFfExp } : null,
      vocabSize: config.nVocab,
      contextTrained: config.nCtxTrain,
      contextLength,
      backend: backendName,
    };
  }

  /** true after dispose() */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Text to token ids. BOS is prepended when the GGUF asks for it (not for Qwen3).
   * @throws DisposedError after dispose()
   */
  tokenize(text: string, opts: TokenizeOptions = {}): number[] {
    checkAlive(this.disposed, 'the model');
    return this.tokenizer.encode(text, { special: opts.special ?? false, addBos: opts.addBos ?? this.tokenizer.addBos });
  }

  /**
   * Token ids to text. Control tokens are left out unless `special` is true.
   * @throws DisposedError after dispose(); RangeError for an id outside the vocabulary
   */
  detokenize(ids: readonly number[], opts: DetokenizeOptions = {}): string {
    checkAlive(this.disposed, 'the model');
    return this.tokenizer.decode([...ids], { special: opts.special ?? false });
  }

  /**
   * Renders a conversation with the GGUF's chat template (`tokenizer.chat_template`, Jinja), or
   * plain ChatML when the file has none (or with `opts.template`). Ends with the assistant's
   * generation prompt unless `addGenerationPrompt` is false.
   * @throws DisposedError after dispose(); RangeError for malformed messages; MoetError when the
   *   template cannot be parsed or rendered
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    checkAlive(this.disposed, 'the model');
    return applyChatTemplate(this.tokenizer, messages, opts);
  }

  /**
   * A new session with its own KV cache of `contextLength` tokens.
   * @throws DisposedError after dispose()
   */
  createSession(): Session {
    checkAlive(this.disposed, 'the model');
    const s = new Session(this, this.backend.createSequence(this.contextLength), () => this.sessions.delete(s));
    this.sessions.add(s);
    return s;
  }

  /**
   * What the expert cache did (hit rate per layer, bytes uploaded per token …) when the model was
   * loaded with a gpuMemoryBudget smaller than it; null when every expert is on the GPU.
   */
  get expertCacheStats(): ExpertCacheStats | null {
    return (this.backend as { expertCache?: { stats: ExpertCacheStats } | null }).expertCache?.stats ?? null;
  }

  /** Frees every session, the backend's memory and the file. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of [...this.sessions]) s.dispose();
    try {
      await this.backend.dispose();
    } finally {
      await this.file.close();
    }
  }

  /** Same as dispose(), for `await using model = await loadModel(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** longest suffix of `text` that is a proper prefix of one of `stops` */
function heldBackLength(text: string, stops: readonly string[]): number {
  let keep = 0;
  for (const s of stops) {
    for (let l = Math.min(s.length - 1, text.length); l > keep; l--) {
      if (text.endsWith(s.slice(0, l))) {
        keep = l;
        break;
      }
    }
  }
  return keep;
}

/** earliest index where one of `stops` occurs, or -1 */
function findStop(text: string, stops: readonly string[]): number {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/**
 * One conversation's state: a KV cache and the tokens in it. `eval` and `generate` append to the
 * context; `reset` empties it. A session runs one call at a time.
 *
 * The last token `generate` produced is part of the context but is evaluated only by the next
 * `eval` or `generate` call (so a finished generation costs no extra forward pass).
 *
 * Calls that change the context (eval, generate, reset) while a generate is suspended between
 * tokens supersede it: the suspended generator throws MoetError when resumed.
 */
export class Session {
  /** timings of the last generate call, null before the first */
  lastTimings: GenerationTimings | null = null;
  /** routing of the last eval/generate call, when it asked for a trace */
  private recorder: RoutingTraceRecorder | null = null;
  private readonly tokenList: number[] = [];
  /** last generated token, in tokenList but not yet evaluated */
  private pending: number | null = null;
  /** logits after the last evaluated token, when no token is pending */
  private lastLogits: Float32Array | null = null;
  /** an eval or the prompt/token evaluation of a generate is awaiting the backend */
  private busy = false;
  /** bumped by every change of the context; a suspended generate checks it when resumed */
  private version = 0;
  private disposed = false;

  /** @internal use Model.createSession */
  constructor(
    private readonly model: Model,
    private readonly seq: BackendSequence,
    private readonly onDispose: () => void,
  ) {}

  /** tokens the context can hold */
  get contextLength(): number {
    return this.model.contextLength;
  }

  /** the tokens in the context, in order (a copy) */
  get tokens(): number[] {
    return [...this.tokenList];
  }

  /** number of tokens in the context */
  get length(): number {
    return this.tokenList.length;
  }

  /** the backend's work counters for this session (WebGPU: dispatches, submits, bytes read back), if it keeps any */
  get backendStats(): SequenceStats | undefined {
    return this.seq.stats;
  }

  private assertUsable(): void {
    checkAlive(this.disposed, 'the session');
    checkAlive(this.model.isDisposed, 'the model');
    if (this.busy) throw new MoetError('the session is busy evaluating; await the previous call or create another session');
  }

  private checkIds(ids: readonly number[]): void {
    const n = this.model.config.nVocab;
    for (const t of ids) {
      if (!(Number.isInteger(t) && t >= 0 && t < n)) throw new RangeError(`token id ${t} is outside the vocabulary 0..${n - 1}`);
    }
  }

  /**
   * The MoE routing recorded by the last `eval` or `generate` call, when it was given
   * `trace: { routing: true }` (null otherwise): every token that call evaluated, in order, from
   * position `start` (a token left pending by a previous generate comes first; the last token a
   * generate samples is not evaluated by it, so it is not in its trace). During a generate it holds
   * the tokens evaluated so far. See docs/moe-internals.md for the shape.
   */
  get lastTrace(): RoutingTrace | null {
    return this.recorder && this.recorder.trace();
  }

  /** a recorder for `opts`, or null when no trace is asked for */
  private traceRecorder(opts: TraceOptions | undefined): RoutingTraceRecorder | null {
    if (!opts?.routing) {
      if (opts?.probs) throw new RangeError('trace.probs needs trace.routing: true');
      return null;
    }
    const cfg = this.model.config;
    if (!(cfg.nExpert > 0)) throw new RangeError(`routing traces need a Mixture-of-Experts model; ${cfg.arch} has no experts`);
    if (!this.model.backend.tracesRouting) throw new MoetError(`the ${this.model.backend.name} backend does not record routing traces yet; use { backend: 'cpu' }`);
    return new RoutingTraceRecorder({ nLayer: cfg.nLayer, k: cfg.nExpertUsed, nExpert: cfg.nExpert }, !!opts.probs);
  }

  /** evaluates the pending token (if any) and `ids`; updates the context */
  private async evalInternal(ids: readonly number[], trace?: RoutingTraceRecorder | null): Promise<Float32Array> {
    const toEval = this.pending === null ? [...ids] : [this.pending, ...ids];
    if (toEval.length === 0) {
      if (this.lastLogits) return this.lastLogits;
      const n = this.seq.nPast;
      if (n === 0 || n !== this.tokenList.length) throw new RangeError('nothing to evaluate: the session is empty and no tokens were given');
      // the last step read back only candidates (evalTopK): evaluate the last token again
      this.seq.truncate(n - 1);
      toEval.push(this.tokenList[n - 1]!);
    }
    if (this.seq.nPast + toEval.length > this.contextLength) {
      throw new ContextOverflowError(this.contextLength, this.seq.nPast + toEval.length);
    }
    this.busy = true;
    let logits: Float32Array;
    try {
      logits = await this.seq.eval(toEval, trace ? { trace } : undefined);
    } finally {
      this.busy = false;
    }
    this.version++;
    this.pending = null;
    this.tokenList.push(...ids);
    this.lastLogits = logits;
    return logits;
  }

  /**
   * Evaluates the pending token and reads back only the k best candidates (backends with
   * evalTopK: the selection runs on the device). Leaves no full logits behind.
   */
  private async evalCandidates(k: number): Promise<TopKResult> {
    if (this.pending === null || !this.seq.evalTopK) throw new MoetError('internal: no pending token or no evalTopK');
    if (this.seq.nPast + 1 > this.contextLength) throw new ContextOverflowError(this.contextLength, this.seq.nPast + 1);
    this.busy = true;
    let r: TopKResult;
    try {
      r = await this.seq.evalTopK([this.pending], k);
    } finally {
      this.busy = false;
    }
    this.version++;
    this.pending = null;
    this.lastLogits = null;
    return r;
  }

  /**
   * Appends `ids` to the context and returns the logits of the next token ([n_vocab]). With no ids,
   * returns the logits after the current context.
   * @throws DisposedError after dispose(); ContextOverflowError when the ids do not fit;
   *   RangeError for an id outside the vocabulary or an empty session with no ids; MoetError when
   *   the session is busy
   */
  async eval(ids: readonly number[], opts: SessionEvalOptions = {}): Promise<Float32Array> {
    this.assertUsable();
    this.checkIds(ids);
    const recorder = this.traceRecorder(opts.trace);
    this.recorder = recorder;
    return this.evalInternal(ids, recorder);
  }

  /**
   * Generates tokens after the context plus `prompt`, streaming them. A string prompt is tokenized
   * with special-token parsing on (BOS only when the session is empty and the GGUF asks for it);
   * an empty prompt continues from the current context.
   *
   * Ends on an end-of-generation token (not yielded, its text never emitted; if text was held
   * back, it comes with one last item carrying that token's id), on a stop string (the text before
   * it is emitted, the rest not), after `maxTokens`, or when the context is full. Text never splits
   * a UTF-8 character. Timings land in `lastTimings`.
   *
   * @throws AbortError when `signal` aborts (checked before the prompt and between tokens; what was
   *   yielded stays valid and the context keeps the tokens generated so far); ContextOverflowError
   *   when the prompt does not fit; DisposedError; RangeError for bad ids or options; MoetError when
   *   the session is busy
   */
  async *generate(prompt: string | readonly number[] = '', opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken, void, undefined> {
    this.assertUsable();
    const maxTokens = opts.maxTokens ?? Infinity;
    if (!(maxTokens >= 0)) throw new RangeError(`maxTokens must be ≥ 0, got ${opts.maxTokens}`);
    const stops = (opts.stop ?? []).filter((s) => s.length > 0);
    const tok = this.model.tokenizer;
    const ids =
      typeof prompt === 'string'
        ? prompt.length > 0
          ? tok.encode(prompt, { special: true, addBos: this.tokenList.length === 0 && tok.addBos })
          : []
        : [...prompt];
    this.checkIds(ids);
    const sampler = new Sampler(opts);
    const signal = opts.signal;
    const recorder = this.traceRecorder(opts.trace);
    this.recorder = recorder;

    const timings: GenerationTimings = {
      promptTokens: ids.length + (this.pending === null ? 0 : 1),
      promptMs: 0, generatedTokens: 0, evalRuns: 0, evalMs: 0, sampleMs: 0, genMs: 0, stopReason: 'length',
    };
    this.lastTimings = timings;
    const superseded = () =>
      new MoetError('the session was used by another call while this generate was suspended; start a new generate');
    try {
      if (signal?.aborted) {
        timings.stopReason = 'abort';
        throw abortError(signal, 'generation');
      }
      const t0 = performance.now();
      let logits: Float32Array | null = await this.evalInternal(ids, recorder);
      let candidates: TopKResult | null = null;
      timings.promptMs = performance.now() - t0;
      let version = this.version;
      for (const t of this.tokenList) sampler.accept(t);

      // generated text continues the prompt: keep the space an SPM vocabulary puts before the first
      // token (llama.cpp's server keeps it too: "…France is" + " Paris")
      const decoder = tok.createStreamDecoder({ keepLeadingSpace: true });
      let held = '';
      for (;;) {
        if (timings.generatedTokens >= maxTokens) {
          timings.stopReason = 'length';
          break;
        }
        if (signal?.aborted) {
          timings.stopReason = 'abort';
          throw abortError(signal, 'generation');
        }
        const ts = performance.now();
        const id = candidates ? sampler.sampleCandidates(candidates.ids, candidates.logits) : sampler.sample(logits!);
        sampler.accept(id);
        timings.sampleMs += performance.now() - ts;
        timings.generatedTokens++;
        this.tokenList.push(id);
        this.pending = id;
        this.lastLogits = null;
        version = ++this.version;

        if (tok.eogIds.has(id)) {
          timings.stopReason = 'eog';
          const rest = held + decoder.flush();
          if (rest) yield { id, text: rest };
          break;
        }
        let text = held + decoder.push(id);
        held = '';
        const full = this.seq.nPast + 1 > this.contextLength;
        const last = timings.generatedTokens >= maxTokens || full;
        if (last) text += decoder.flush();
        const at = findStop(text, stops);
        if (at >= 0) {
          timings.stopReason = 'stop';
          yield { id, text: text.slice(0, at) };
          break;
        }
        if (last) {
          timings.stopReason = full ? 'context' : 'length';
          yield { id, text };
          break;
        }
        const keep = heldBackLength(text, stops);
        held = text.slice(text.length - keep);
        yield { id, text: text.slice(0, text.length - keep) };

        if (this.disposed || this.model.isDisposed) throw new DisposedError('the session was disposed during generate');
        if (version !== this.version) throw superseded();
        if (signal?.aborted) {
          timings.stopReason = 'abort';
          throw abortError(signal, 'generation');
        }
        const te = performance.now();
        // with a device-side top-k (WebGPU) and a sampler that needs only the best k logits, a
        // step reads back k candidates instead of the whole vocabulary
        const need = sampler.candidatesNeeded();
        if (need !== 'all' && !recorder && this.seq.evalTopK && need <= (this.seq.maxTopK ?? 0)) {
          candidates = await this.evalCandidates(need);
          logits = null;
        } else {
          logits = await this.evalInternal([], recorder);
          candidates = null;
        }
        version = this.version;
        timings.evalMs += performance.now() - te;
        timings.evalRuns++;
      }
    } finally {
      timings.genMs = timings.evalMs + timings.sampleMs;
    }
  }

  /**
   * Keeps the first `length` tokens of the context and forgets the rest (their KV cache entries).
   * A no-op when `length` is at least the context's length.
   * @throws DisposedError after dispose(); MoetError when the session is busy; RangeError for a
   *   negative or fractional length
   */
  truncate(length: number): void {
    this.assertUsable();
    if (!(Number.isInteger(length) && length >= 0)) throw new RangeError(`truncate: length must be an integer ≥ 0, got ${length}`);
    if (length >= this.tokenList.length) return;
    this.version++;
    this.seq.truncate(Math.min(length, this.seq.nPast));
    this.tokenList.length = length;
    this.pending = null;
    this.lastLogits = null;
  }

  /**
   * One chat turn: renders `messages` with the chat template (see Model.applyChatTemplate; the
   * generation prompt is added), keeps the part of the context that the rendered conversation shares
   * with it (the KV cache is reused across turns: only new tokens are evaluated) and streams the
   * answer as `{ text, kind, id? }` chunks, `kind` being 'thinking' for text between `<think>` and
   * `</think>` (the tags are not emitted) and 'content' for the answer. With a harmony template
   * (gpt-oss: it writes `<|channel|>`) the analysis channel is 'thinking', the final channel (and
   * commentary preambles) 'content', and tool calls (messages with a recipient) go to
   * ChatResult.toolCalls only. The generator's return value is a ChatResult (content, thinking, stop
   * reason, token counts, timings); `lastTimings` is set too.
   *
   * Add the answer to `messages` as `{ role: 'assistant', content }` before the next turn.
   *
   * @throws ContextOverflowError when the rendered conversation does not fit (the context is left
   *   as it was); AbortError when `signal` aborts; RangeError for malformed messages or options;
   *   MoetError when the template cannot be rendered or the session is busy; DisposedError
   */
  async *chat(messages: readonly ChatMessage[], opts: ChatOptions = {}): AsyncGenerator<ChatChunk, ChatResult, undefined> {
    this.assertUsable();
    const { enableThinking, reasoningEffort, template, now, ...genOpts } = opts;
    const tok = this.model.tokenizer;
    const prompt = applyChatTemplate(tok, messages, { enableThinking, reasoningEffort, template, now });
    const ids = tokenizeChatPrompt(tok, prompt);
    const harmony = isHarmonyTemplate(chatTemplateSource(tok, template));
    return yield* chatTurn(this, ids, harmony ? { ...genOpts, harmonyPrompt: prompt } : { ...genOpts, inThinking: promptOpensThinking(prompt) });
  }

  /**
   * Empties the context (the KV cache is kept allocated).
   * @throws DisposedError after dispose(); MoetError when the session is busy
   */
  reset(): void {
    this.assertUsable();
    this.version++;
    this.seq.truncate(0);
    this.tokenList.length = 0;
    this.pending = null;
    this.lastLogits = null;
  }

  /** Frees the KV cache. Idempotent; also done by Model.dispose(). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.seq.dispose();
    this.onDispose();
  }

  /** Same as dispose(), for `using session = model.createSession()`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
