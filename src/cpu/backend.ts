// CpuBackend: the plain TypeScript reference behind the Backend contract (src/backend.ts).
// Weights stay quantized in memory (only norms are dequantized); matrices are dequantized one row at
// a time while multiplying. Slow, simple, and the oracle for the WebGPU backend.
import { dequantize } from '../../gguf/quants.js';
import { GGML_TYPE_INFO, GGMLType, type GGUFTensorInfo } from '../../gguf/types.js';
import type { Backend, BackendSequence, EvalOptions, Numerics } from '../backend.js';
import { checkTensor, expectedTensors, isQwen35, layerFfnKind, type ModelConfig } from '../config.js';
import { AbortError, ContextOverflowError, DisposedError, ModelFormatError, UnsupportedArchitectureError, UnsupportedQuantError } from '../errors.js';
import { forward, KVCache, type CpuWeights, type LayerWeights, type MlaLayerWeights, type OnTensor } from './forward.js';
import type { MlaWeights } from './mla.js';
import { dequantizeRow, type QuantMatrix, type QuantMatrixStack } from './ops.js';
import { readDenseFfn } from './qwen3.js';
import { readMoeFfn, readSharedMoeFfn } from './qwen3moe.js';
import type { Qwen35CpuBackend } from './qwen35.js';
import { CpuTraceCollector, TRACE_TENSORS } from '../trace/cpu.js';

/**
 * The CPU backend of any supported architecture: CpuBackend for qwen3moe / qwen3, Qwen35CpuBackend
 * (src/cpu/qwen35.ts: Gated DeltaNet + gated attention, with recurrent state) for qwen35moe / qwen35.
 */
export async function loadCpuBackend(file: GGUFTensorSource, config: ModelConfig, opts: CpuLoadOptions = {}): Promise<CpuBackend | Qwen35CpuBackend> {
  if (isQwen35(config)) return (await import('./qwen35.js')).Qwen35CpuBackend.load(file, config, opts);
  return CpuBackend.load(file, config, opts);
}

/** What CpuBackend needs from an opened GGUF file (gguf/reader.ts GGUFFile satisfies it). */
export interface GGUFTensorSource {
  tensorByName: Map<string, GGUFTensorInfo>;
  readTensor(tensor: GGUFTensorInfo): Promise<Uint8Array>;
}

export interface CpuLoadOptions {
  signal?: AbortSignal;
  /** fraction of tensor bytes read so far, 0..1 */
  onProgress?: (fraction: number) => void;
  /** 'llamacpp' (default): round activations like llama.cpp's CPU backend; 'exact': pure f32 (src/backend.ts) */
  numerics?: Numerics;
}

export interface CpuSequenceOptions {
  /** round the KV cache to f16 precision like llama.cpp's default F16 cache (default true) */
  kvF16?: boolean;
  /** receives the intermediates of every eval (see forward.ts OnTensor) */
  onTensor?: OnTensor;
}

/** Tokens evaluated per forward call (bounds the activation memory of long prompts). */
const MAX_BATCH = 512;

function toF32(info: GGUFTensorInfo, bytes: Uint8Array, n: number): Float32Array {
  if (info.type === GGMLType.F32) return new Float32Array(bytes.slice(0, n * 4).buffer);
  return dequantize(info.type, bytes, n);
}

/** Reads the tensors of one model: norms and other vectors as f32, matrices still quantized. */
export interface WeightReader {
  numerics: Numerics;
  /** a tensor as f32 (every element, dequantized) */
  vec(name: string): Promise<Float32Array>;
  /** a 2-D tensor as a matrix [cols → rows], kept in its type */
  mat(name: string): Promise<QuantMatrix>;
  /**
   * a 3-D tensor as a stack of count matrices (the experts); or several 2-D tensors of one type and
   * shape concatenated into one stack (Mixtral's older per-expert tensors)
   */
  stack(name: string | readonly string[]): Promise<QuantMatrixStack>;
}

/**
 * The loading shared by the CPU backends: checks that rope scaling is absent and that every tensor
 * the config expects is present with its shape, then reads them one at a time (progress, abort),
 * each matrix decoding a first row so that an undecodable type fails at load, not mid-forward.
 * @throws UnsupportedArchitectureError for rope scaling, ModelFormatError for a missing or
 *   mis-shaped tensor, UnsupportedQuantError for a type the CPU cannot decode, AbortError
 */
export function weightReader(file: GGUFTensorSource, config: ModelConfig, opts: CpuLoadOptions): WeightReader {
  if (config.ropeScalingType !== null) {
    throw new UnsupportedArchitectureError(`rope scaling "${config.ropeScalingType}" is not implemented; use a model without rope.scaling`);
  }
  const numerics = opts.numerics ?? 'llamacpp';
  const expected = expectedTensors(config);
  const infos = new Map(expected.map((e) => [e.name, checkTensor(file.tensorByName, e)]));
  const total = [...infos.values()].reduce((s, t) => s + t.byteLength, 0);
  let done = 0;
  const read = async (name: string): Promise<{ info: GGUFTensorInfo; bytes: Uint8Array }> => {
    if (opts.signal?.aborted) throw new AbortError('model loading was aborted');
    const info = infos.get(name)!;
    if (!GGML_TYPE_INFO[info.type]) {
      throw new UnsupportedQuantError(`tensor ${name} has unknown ggml type ${info.type}`, info.type);
    }
    const bytes = await file.readTensor(info);
    done += info.byteLength;
    opts.onProgress?.(total ? done / total : 1);
    return { info, bytes };
  };
  return {
    numerics,
    async vec(name) {
      const { info, bytes } = await read(name);
      return toF32(info, bytes, info.shape.reduce((a, b) => a * b, 1));
    },
    async mat(name) {
      const { info, bytes } = await read(name);
      const m: QuantMatrix = { type: info.type, cols: info.shape[0]!, rows: info.shape[1] ?? 1, data: bytes, numerics };
      dequantizeRow(m, 0); // fail now, not mid-forward, if the type cannot be decoded
      return m;
    },
    async stack(name) {
      if (typeof name === 'string' || name.length === 1) {
        const { info, bytes } = await read(typeof name === 'string' ? name : name[0]!);
        const s: QuantMatrixStack = { type: info.type, cols: info.shape[0]!, rows: info.shape[1]!, count: info.shape[2] ?? 1, data: bytes, numerics };
        dequantizeRow(s, 0);
        return s;
      }
      const parts = [];
      for (const n of name) parts.push(await read(n));
      const first = parts[0]!.info;
      for (const p of parts) {
        if (p.info.type !== first.type || p.info.shape.join() !== first.shape.join()) {
          throw new ModelFormatError(`tensor ${p.info.name} differs in type or shape from ${first.name}: the experts of one layer must match`);
        }
      }
      const data = new Uint8Array(parts.reduce((s, p) => s + p.bytes.length, 0));
      let at = 0;
      for (const p of parts) {
        data.set(p.bytes, at);
        at += p.bytes.length;
      }
      const s: QuantMatrixStack = { type: first.type, cols: first.shape[0]!, rows: first.shape[1]!, count: parts.length, data, numerics };
      dequantizeRow(s, 0);
      return s;
    },
  };
}

/** @throws RangeError unless contextLength is a positive integer */
export function checkContextLength(contextLength: number): void {
  if (!(Number.isInteger(contextLength) && contextLength > 0)) throw new RangeError(`invalid context length ${contextLength}`);
}

/**
 * Checks an eval call's tokens against a sequence holding `past` of `contextLength` positions.
 * @throws RangeError for an empty list or a token id outside the vocabulary, ContextOverflowError
 */
export function checkEvalTokens(tokens: readonly number[], past: number, contextLength: number, nVocab: number): void {
  const n = tokens.length;
  if (n === 0) throw new RangeError('eval needs at least one token');
  if (past + n > contextLength) throw new ContextOverflowError(contextLength, past + n);
  for (const t of tokens) {
    if (!(Number.isInteger(t) && t >= 0 && t < nVocab)) throw new RangeError(`token id ${t} is outside the vocabulary 0..${nVocab - 1}`);
  }
}

/**
 * Runs `forwardBatch` over `tokens` in batches of at most MAX_BATCH (i: the batch's offset in
 * `tokens`; it returns the batch's logits, all rows or the last) and returns the last token's logits
 * [nVocab], or all of them [n, nVocab] with allLogits.
 */
export function evalInBatches(
  tokens: readonly number[], nVocab: number, allLogits: boolean, forwardBatch: (batch: number[], i: number, allLogits: boolean) => Float32Array,
): Float32Array {
  const n = tokens.length;
  const all = allLogits ? new Float32Array(n * nVocab) : null;
  let last: Float32Array = new Float32Array(0);
  for (let i = 0; i < n; i += MAX_BATCH) {
    const logits = forwardBatch(tokens.slice(i, i + MAX_BATCH), i, !!all);
    if (all) all.set(logits, i * nVocab);
    else last = logits;
  }
  return all ?? last;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  /** eval honours opts.trace (routing traces of MoE models); optional so that other CPU backends stay assignable */
  readonly tracesRouting?: boolean = true;
  private disposed = false;

  /** numerics: how the matrices of `weights` were marked at load (they carry it); sequences round attention to match */
  constructor(readonly config: ModelConfig, readonly weights: CpuWeights, readonly numerics: Numerics = 'exact') {}

  /**
   * Reads every tensor the model needs (checking names and shapes) into memory.
   * @throws ModelFormatError for a missing or mis-shaped tensor, UnsupportedQuantError for a tensor
   *   type the CPU cannot decode, UnsupportedArchitectureError for rope scaling, AbortError
   */
  static async load(file: GGUFTensorSource, config: ModelConfig, opts: CpuLoadOptions = {}): Promise<CpuBackend> {
    if (isQwen35(config)) {
      throw new UnsupportedArchitectureError(`${config.arch} is a hybrid with recurrent layers: load it with loadCpuBackend (src/cpu/backend.ts)`);
    }
    const r = weightReader(file, config, opts);
    const { numerics, vec, mat } = r;

    const at = config.attention;
    const tokEmbd = await mat('token_embd.weight');
    const ropeFreqs = at.ropeFreqs ? await vec('rope_freqs.weight') : null;
    const layers: (LayerWeights | MlaLayerWeights)[] = [];
    const ffnOf = async (i: number) => {
      const kind = layerFfnKind(config, i);
      return kind === 'moe' ? await readMoeFfn(r, config, i) : kind === 'moe+shared' ? await readSharedMoeFfn(r, config, i) : await readDenseFfn(r, `blk.${i}.`);
    };
    for (let i = 0; i < config.nLayer; i++) {
      const b = `blk.${i}.`;
      if (config.mla) {
        const lora = config.mla.qLoraRank > 0;
        const mla: MlaWeights = {
          kind: 'mla',
          wq: lora ? null : await mat(b + 'attn_q.weight'),
          wqA: lora ? await mat(b + 'attn_q_a.weight') : null,
          qANorm: lora ? await vec(b + 'attn_q_a_norm.weight') : null,
          wqB: lora ? await mat(b + 'attn_q_b.weight') : null,
          wkvA: await mat(b + 'attn_kv_a_mqa.weight'),
          kvANorm: await vec(b + 'attn_kv_a_norm.weight'),
          wkB: await r.stack(b + 'attn_k_b.weight'),
          wvB: await r.stack(b + 'attn_v_b.weight'),
          wo: await mat(b + 'attn_output.weight'),
        };
        layers.push({ attnNorm: await vec(b + 'attn_norm.weight'), mla, ffnNorm: await vec(b + 'ffn_norm.weight'), ffn: await ffnOf(i) });
        continue;
      }
      const layer: LayerWeights = {
        attnNorm: await vec(b + 'attn_norm.weight'),
        wq: await mat(b + 'attn_q.weight'),
        wk: await mat(b + 'attn_k.weight'),
        wv: await mat(b + 'attn_v.weight'),
        bq: at.qkvBias ? await vec(b + 'attn_q.bias') : null,
        bk: at.qkvBias ? await vec(b + 'attn_k.bias') : null,
        bv: at.qkvBias ? await vec(b + 'attn_v.bias') : null,
        wo: await mat(b + 'attn_output.weight'),
        bo: at.outBias ? await vec(b + 'attn_output.bias') : null,
        qNorm: at.qkNorm !== 'none' ? await vec(b + 'attn_q_norm.weight') : null,
        kNorm: at.qkNorm !== 'none' ? await vec(b + 'attn_k_norm.weight') : null,
        sinks: at.sinks ? await vec(b + 'attn_sinks.weight') : null,
        ffnNorm: await vec(b + config.ffnNormName + '.weight'),
        ffn: await ffnOf(i),
      };
      layers.push(layer);
    }
    const outputNorm = await vec('output_norm.weight');
    const output = config.tiedEmbeddings ? tokEmbd : await mat('output.weight');
    return new CpuBackend(config, { tokEmbd, ropeFreqs, layers, outputNorm, output }, numerics);
  }

  /** A new sequence with an empty KV cache of `contextLength` positions. */
  createSequence(contextLength: number, opts: CpuSequenceOptions = {}): CpuSequence {
    this.assertAlive();
    checkContextLength(contextLength);
    return new CpuSequence(this, contextLength, opts);
  }

  /** @internal */
  assertAlive(): void {
    if (this.disposed) throw new DisposedError('the CPU backend was disposed');
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

export class CpuSequence implements BackendSequence {
  private past = 0;
  private disposed = false;
  private readonly cache: KVCache;

  constructor(private readonly backend: CpuBackend, readonly contextLength: number, private readonly opts: CpuSequenceOptions) {
    this.cache = new KVCache(backend.config, contextLength, opts.kvF16 ?? true, backend.numerics);
  }

  get nPast(): number {
    return this.past;
  }

  /**
   * Evaluates tokens at positions nPast..nPast+n-1; returns the last token's logits [nVocab], or all
   * of them [n, nVocab] with allLogits.
   * @throws ContextOverflowError, RangeError for an empty list or a token id outside the vocabulary
   */
  async eval(tokens: number[], opts: EvalOptions = {}): Promise<Float32Array> {
    this.assertAlive();
    const { config, weights } = this.backend;
    checkEvalTokens(tokens, this.past, this.contextLength, config.nVocab);
    // routing trace: collect the router's intermediates (copying only those unless onTensor listens)
    const trace = opts.trace && config.nExpert > 0 ? new CpuTraceCollector(config, tokens, this.past, opts.trace) : null;
    const out = evalInBatches(tokens, config.nVocab, !!opts.allLogits, (chunk, i, allLogits) => {
      const onTensor = trace ? trace.listener(i, this.opts.onTensor) : this.opts.onTensor;
      const onTensorNames = trace && !this.opts.onTensor ? TRACE_TENSORS : undefined;
      return forward(config, weights, this.cache, chunk, this.past + i, { allLogits, onTensor, onTensorNames, numerics: this.backend.numerics });
    });
    trace?.finish();
    this.past += tokens.length;
    return out;
  }

  /** Forgets positions >= nPast. */
  truncate(nPast: number): void {
    this.assertAlive();
    if (!(Number.isInteger(nPast) && nPast >= 0 && nPast <= this.past)) {
      throw new RangeError(`cannot truncate to ${nPast}: the sequence holds ${this.past} positions`);
    }
    this.past = nPast;
  }

  dispose(): void {
    this.disposed = true;
  }

  private assertAlive(): void {
    if (this.disposed) throw new DisposedError('the sequence was disposed');
    this.backend.assertAlive();
  }
}
