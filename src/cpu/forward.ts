// The forward pass of the transformer family on the CPU (qwen3moe, qwen3, llama / Mixtral, olmoe,
// qwen2moe): embedding, the attention block, the residual stream, the final norm and the LM head.
// What differs between architectures is data, not code: config.ts AttentionSpec (RoPE style, Q/K norm
// per head | full width | none, biases, scale, rope_freqs) and FfnKind (qwen3.ts dense SwiGLU,
// qwen3moe.ts routed experts, with or without a gated shared expert). Follows
// shared/docs/qwen3moe.md and other-moe-archs.md step by step. A batch of n tokens is processed layer by layer
// (each weight row is dequantized once per batch); every token attends causally to the KV cache.
import type { Numerics } from '../backend.js';
import type { ModelConfig } from '../config.js';
import { add, addBias, attention, embedRow, matMul, rmsNorm, rope, roundToF16, type QuantMatrix, type RopeSpec } from './ops.js';
import { denseFfn, type DenseFfnWeights } from './qwen3.js';
import { moeFfn, moeRouting, sharedMoeFfn, type MoeFfnWeights, type MoeRouting, type SharedMoeFfnWeights } from './qwen3moe.js';
import { mlaAttentionBlock, type MlaWeights } from './mla.js';

/** Weights of one transformer block (norms as f32, matrices still quantized). */
export interface LayerWeights {
  attnNorm: Float32Array; // [nEmbd]
  wq: QuantMatrix; // [nEmbd → nHead·headDimK]
  wk: QuantMatrix; // [nEmbd → nHeadKv·headDimK]
  wv: QuantMatrix; // [nEmbd → nHeadKv·headDimV]
  wo: QuantMatrix; // [nHead·headDimV → nEmbd]
  /** attn_q_norm / attn_k_norm: [headDimK] (qkNorm 'head'), [nHead·headDimK] / [nHeadKv·headDimK] ('full'), null ('none') */
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  /** attn_q/k/v.bias [nHead·headDimK] / [nHeadKv·headDimK] / [nHeadKv·headDimV] (qkvBias), else null */
  bq: Float32Array | null;
  bk: Float32Array | null;
  bv: Float32Array | null;
  /** attn_output.bias [nEmbd] (outBias), else null */
  bo: Float32Array | null;
  /** attn_sinks [nHead] (attention.sinks), else null */
  sinks?: Float32Array | null;
  ffnNorm: Float32Array; // [nEmbd]
  ffn: MoeFfnWeights | DenseFfnWeights | SharedMoeFfnWeights;
}

/** A deepseek2 block: multi-head latent attention (mla.ts) and the FFN. */
export interface MlaLayerWeights {
  attnNorm: Float32Array; // [nEmbd]
  mla: MlaWeights;
  ffnNorm: Float32Array; // [nEmbd]
  ffn: MoeFfnWeights | DenseFfnWeights | SharedMoeFfnWeights;
}

export interface CpuWeights {
  tokEmbd: QuantMatrix; // [nVocab rows of nEmbd]
  /** rope_freqs [nRot/2] (llama3's frequency factors), when the file has it */
  ropeFreqs?: Float32Array | null;
  layers: (LayerWeights | MlaLayerWeights)[];
  outputNorm: Float32Array; // [nEmbd]
  /** the LM head [nEmbd → nVocab]; the same object as tokEmbd when embeddings are tied */
  output: QuantMatrix;
}

/**
 * Receives intermediates, named like llama.cpp's graph callbacks; `layer` is −1 outside the blocks.
 * `data` is a copy, row-major with the token as the outermost dimension ([n, …]).
 * Names: inp_embd; per layer attn_norm, Qcur, Kcur, Vcur (after the projections), Qcur_normed,
 * Kcur_normed (per-head RMSNorm), Qcur_rope, Kcur_rope, kqv_out (attention output, before Wo),
 * attn_out (after Wo), ffn_inp, ffn_norm, then the FFN's own (see qwen3moe.ts / qwen3.ts), ffn_out,
 * l_out; finally result_norm and result_output ([rows, nVocab], only the rows returned). Under
 * numerics 'llamacpp' the last layer's ffn_inp onwards hold only the returned rows (as in
 * llama.cpp), except the router's intermediates (ffn_moe_logits, _probs, _topk, _weights,
 * _weights_norm), which cover every token.
 */
export type OnTensor = (name: string, layer: number, data: Float32Array | Int32Array) => void;

/** Internal emitter: copies only when someone listens. */
export type Emit = (name: string, layer: number, data: Float32Array | Int32Array) => void;

function emitter(onTensor: OnTensor | undefined, names?: ReadonlySet<string>): Emit {
  if (!onTensor) return () => {};
  if (names) return (name, layer, data) => names.has(name) && onTensor(name, layer, data.slice());
  return (name, layer, data) => onTensor(name, layer, data.slice());
}

/**
 * The KV cache of one sequence: per layer, K [capacity, nHeadKv·headDimK] and V [capacity,
 * nHeadKv·headDimV], position-major. Values are rounded to f16 precision by default, like
 * llama.cpp's default F16 cache. Storage grows on demand up to contextLength. With an f16 cache and
 * numerics 'llamacpp', attention against it rounds q and the softmax weights to f16 (`llamaF16`).
 */
export class KVCache {
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  readonly kRow: number;
  readonly vRow: number;
  /** attention against this cache rounds like llama.cpp's non-flash F16 path (ops.ts attention) */
  readonly llamaF16: boolean;
  private capacity = 0;

  constructor(cfg: ModelConfig, readonly contextLength: number, readonly f16 = true, numerics: Numerics = 'exact') {
    this.llamaF16 = f16 && numerics === 'llamacpp';
    this.kRow = cfg.nHeadKv * cfg.headDimK;
    this.vRow = cfg.nHeadKv * cfg.headDimV;
    for (let i = 0; i < cfg.nLayer; i++) {
      this.k.push(new Float32Array(0));
      this.v.push(new Float32Array(0));
    }
  }

  /** Makes room for positions 0..n-1 (keeps what is stored). */
  reserve(n: number): void {
    if (n <= this.capacity) return;
    const cap = Math.min(this.contextLength, Math.max(n, this.capacity * 2, 16));
    for (let i = 0; i < this.k.length; i++) {
      const k = new Float32Array(cap * this.kRow);
      k.set(this.k[i]!);
      this.k[i] = k;
      const v = new Float32Array(cap * this.vRow);
      v.set(this.v[i]!);
      this.v[i] = v;
    }
    this.capacity = cap;
  }

  /** Stores one token's K [kRow] and V [vRow] at `pos` of `layer`. */
  write(layer: number, pos: number, k: Float32Array, v: Float32Array): void {
    const kd = this.k[layer]!.subarray(pos * this.kRow, (pos + 1) * this.kRow);
    const vd = this.v[layer]!.subarray(pos * this.vRow, (pos + 1) * this.vRow);
    kd.set(k);
    vd.set(v);
    if (this.f16) {
      roundToF16(kd);
      roundToF16(vd);
    }
  }
}

/** The RoPE of a config (its attention spec), with the file's frequency factors. */
export function ropeOf(cfg: ModelConfig, freqFactors: Float32Array | null = null): RopeSpec {
  const a = cfg.attention;
  return { nRot: cfg.nRot, base: cfg.ropeBase, style: a.rope, freqFactors, freqScale: a.ropeFreqScale, yarn: a.yarn };
}

/**
 * The attention core shared by the transformer family (attentionBlock) and the Qwen3.5 hybrids
 * (qwen35.ts gatedAttentionBlock), for n tokens at positions pos0..pos0+n-1, after the Q/K/V
 * projections (and their biases): the Q/K norm of the spec (per head, over the full projection, or
 * none) BEFORE RoPE, RoPE on the first nRot dims, K/V into cache layer `cl`, then causal GQA
 * attention over the cache (F16 K/V like llama.cpp's default cache).
 * q: [n, nHead·headDimK], k: [n, nHeadKv·headDimK] (both normed and rotated in place),
 * v: [n, nHeadKv·headDimV]. Returns [n, nHead·headDimV]. Emits Qcur_normed, Kcur_normed (with a Q/K
 * norm), Qcur_rope, Kcur_rope of layer `il`.
 */
export function normRopeAttention(
  cfg: ModelConfig, L: { qNorm: Float32Array | null; kNorm: Float32Array | null; sinks?: Float32Array | null }, cache: KVCache, cl: number, il: number,
  q: Float32Array, k: Float32Array, v: Float32Array, n: number, pos0: number, emit: Emit, ropeFreqs: Float32Array | null = null,
): Float32Array {
  const { nHead, nHeadKv, headDimK, headDimV, rmsEps } = cfg;
  const qkNorm = cfg.attention.qkNorm;
  if (qkNorm !== 'none') {
    // 'head': one RMSNorm per head (rows of headDimK); 'full': one per token over the whole projection
    rmsNorm(q, q, L.qNorm, rmsEps, qkNorm === 'head' ? n * nHead : n);
    rmsNorm(k, k, L.kNorm, rmsEps, qkNorm === 'head' ? n * nHeadKv : n);
    emit('Qcur_normed', il, q);
    emit('Kcur_normed', il, k);
  }

  const qRow = nHead * headDimK;
  const swa = cfg.attention.swaLayers[il] ?? false; // gpt-oss: every other layer slides
  const r = { ...ropeOf(cfg, ropeFreqs), ...(swa ? { base: cfg.attention.ropeBaseSwa } : {}) };
  for (let t = 0; t < n; t++) {
    rope(q.subarray(t * qRow, (t + 1) * qRow), nHead, headDimK, pos0 + t, r);
    rope(k.subarray(t * cache.kRow, (t + 1) * cache.kRow), nHeadKv, headDimK, pos0 + t, r);
  }
  emit('Qcur_rope', il, q);
  emit('Kcur_rope', il, k);

  cache.reserve(pos0 + n);
  for (let t = 0; t < n; t++) {
    cache.write(cl, pos0 + t, k.subarray(t * cache.kRow, (t + 1) * cache.kRow), v.subarray(t * cache.vRow, (t + 1) * cache.vRow));
  }

  const oRow = nHead * headDimV;
  const o = new Float32Array(n * oRow); // [n, nHead, headDimV]
  const scale = cfg.attention.scale; // llama.cpp: 1.0f/sqrtf(float(n_embd_head)), or llama.attention.scale
  for (let t = 0; t < n; t++) {
    // token t sees positions 0..pos0+t (causal)
    // (sliding-window layers: only the last `slidingWindow` positions; sinks: one more logit per head)
    const first = swa ? Math.max(0, pos0 + t - cfg.attention.slidingWindow + 1) : 0;
    attention(o.subarray(t * oRow, (t + 1) * oRow), q.subarray(t * qRow, (t + 1) * qRow), cache.k[cl]!, cache.v[cl]!,
      nHead, nHeadKv, headDimK, headDimV, pos0 + t + 1, scale, cache.llamaF16, n, { first, sinks: L.sinks ?? null });
  }
  return o;
}

/**
 * Attention block of one layer for n tokens at positions pos0..pos0+n-1; writes their K/V into the
 * cache. x: [n, nEmbd] (the residual stream, not modified). Returns Wo·attention: [n, nEmbd].
 */
export function attentionBlock(
  cfg: ModelConfig, L: LayerWeights, cache: KVCache, il: number, x: Float32Array, n: number, pos0: number, emit: Emit, ropeFreqs: Float32Array | null = null,
): Float32Array {
  const { nEmbd, nHead, nHeadKv, headDimK, headDimV } = cfg;
  const h = new Float32Array(n * nEmbd); // [n, nEmbd]
  rmsNorm(h, x, L.attnNorm, cfg.rmsEps, n);
  emit('attn_norm', il, h);

  const q = new Float32Array(n * nHead * headDimK); // [n, nHead, headDimK]
  const k = new Float32Array(n * nHeadKv * headDimK); // [n, nHeadKv, headDimK]
  const v = new Float32Array(n * nHeadKv * headDimV); // [n, nHeadKv, headDimV]
  matMul(q, L.wq, h, n);
  matMul(k, L.wk, h, n);
  matMul(v, L.wv, h, n);
  if (L.bq) addBias(q, L.bq, n);
  if (L.bk) addBias(k, L.bk, n);
  if (L.bv) addBias(v, L.bv, n);
  emit('Qcur', il, q);
  emit('Kcur', il, k);
  emit('Vcur', il, v);

  // Q/K norm of the spec (before RoPE), RoPE, K/V into the cache, causal attention
  const o = normRopeAttention(cfg, L, cache, il, il, q, k, v, n, pos0, emit, ropeFreqs); // [n, nHead, headDimV]
  emit('kqv_out', il, o);

  const out = new Float32Array(n * nEmbd); // [n, nEmbd]
  matMul(out, L.wo, o, n);
  if (L.bo) addBias(out, L.bo, n);
  emit('attn_out', il, out);
  return out;
}

/**
 * For a listener of the last layer when only the last rows go through its FFN: the routing of the
 * `first` earlier tokens (router only, no experts), put in front of the router's intermediates of
 * the output rows, so that routing traces cover every token. x, attnOut: [n, nEmbd] of the layer.
 */
function withEarlierRouting(cfg: ModelConfig, L: Pick<LayerWeights, 'ffnNorm'>, f: MoeFfnWeights, x: Float32Array, attnOut: Float32Array, first: number, emit: Emit): Emit {
  const E = cfg.nEmbd;
  const h = new Float32Array(first * E); // [first, nEmbd]
  add(h, x.subarray(0, first * E), attnOut.subarray(0, first * E));
  rmsNorm(h, h, L.ffnNorm, cfg.rmsEps, first);
  const pre: MoeRouting = moeRouting(cfg, f, h, first);
  return (name, layer, data) => {
    const p = (pre as unknown as Record<string, Float32Array | Int32Array | undefined>)[name];
    if (!p) return emit(name, layer, data);
    const all = new (data.constructor as Float32ArrayConstructor | Int32ArrayConstructor)(p.length + data.length);
    all.set(p);
    all.set(data, p.length);
    emit(name, layer, all);
  };
}

export interface ForwardOptions {
  /** 'llamacpp': the matrices round like llama.cpp (they carry that) and the last layer's FFN runs
   * on the returned rows only, as llama.cpp's graph does; default 'exact' */
  numerics?: Numerics;
  /** logits of every token ([n, nVocab]) instead of only the last ([nVocab]) */
  allLogits?: boolean;
  onTensor?: OnTensor;
  /** report (and copy) only these intermediates to onTensor; default all */
  onTensorNames?: ReadonlySet<string>;
}

/**
 * Evaluates `tokens` at positions pos0..pos0+n-1 (the cache must hold positions 0..pos0-1) and
 * returns the logits of the last token [nVocab], or of all tokens [n, nVocab] with allLogits.
 */
export function forward(cfg: ModelConfig, w: CpuWeights, cache: KVCache, tokens: readonly number[], pos0: number, opts: ForwardOptions = {}): Float32Array {
  const n = tokens.length;
  const E = cfg.nEmbd;
  const emit = emitter(opts.onTensor, opts.onTensorNames);

  let x = new Float32Array(n * E); // [m, nEmbd] the residual stream (m = n, then the output rows)
  for (let t = 0; t < n; t++) embedRow(x.subarray(t * E, (t + 1) * E), w.tokEmbd, tokens[t]!);
  emit('inp_embd', -1, x);

  const first = opts.allLogits ? 0 : n - 1; // rows whose logits are returned
  const rows = n - first;
  for (let il = 0; il < cfg.nLayer; il++) {
    const L = w.layers[il]!;
    // x → Wo·attention(RMSNorm(x)): the transformer family's attention, or deepseek2's latent attention   [n, nEmbd]
    let attnOut = 'mla' in L ? mlaAttentionBlock(cfg, cfg.mla!, L.attnNorm, L.mla, cache, il, x, n, pos0, emit) : attentionBlock(cfg, L, cache, il, x, n, pos0, emit, w.ropeFreqs ?? null);
    // like llama.cpp (inp_out_ids): after the last layer's attention only the output rows go on
    // (the FFN then runs on `rows` tokens, which picks llama.cpp's kernels for that count)
    // (gpt-oss: llama.cpp picks the output rows after the last layer, not inside it)
    const m = il === cfg.nLayer - 1 && opts.numerics === 'llamacpp' && !cfg.outputRowsAfterLastLayer ? rows : n;
    let ffnEmit = emit;
    if (m < n) {
      if (L.ffn.kind !== 'dense' && opts.onTensor) ffnEmit = withEarlierRouting(cfg, L, L.ffn.kind === 'moe' ? L.ffn : L.ffn.moe, x, attnOut, first, emit);
      x = x.slice(first * E);
      attnOut = attnOut.subarray(first * E);
    }
    add(x, x, attnOut);
    emit('ffn_inp', il, x);

    const h = new Float32Array(m * E); // [m, nEmbd]
    rmsNorm(h, x, L.ffnNorm, cfg.rmsEps, m);
    emit('ffn_norm', il, h);
    // dense SwiGLU | routed experts | routed experts + sigmoid-gated shared expert   [m, nEmbd]
    const f = L.ffn;
    const ffnOut = f.kind === 'moe' ? moeFfn(cfg, f, h, m, il, ffnEmit) : f.kind === 'moe+shared' ? sharedMoeFfn(cfg, f, h, m, il, ffnEmit) : denseFfn(cfg, f, h, m, il, emit);
    emit('ffn_out', il, ffnOut);
    add(x, x, ffnOut);
    emit('l_out', il, x);
  }

  const xr = x.subarray(x.length - rows * E); // [rows, nEmbd]
  const normed = new Float32Array(rows * E); // [rows, nEmbd]
  rmsNorm(normed, xr, w.outputNorm, cfg.rmsEps, rows);
  emit('result_norm', -1, normed);
  const logits = new Float32Array(rows * cfg.nVocab); // [rows, nVocab]
  matMul(logits, w.output, normed, rows);
  emit('result_output', -1, logits);
  return logits;
}
