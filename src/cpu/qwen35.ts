// The Qwen3.5 / 3.6 hybrids on the CPU: `qwen35moe` (Qwen3.6-35B-A3B) and `qwen35` (dense), as
// llama.cpp computes them (shared/docs/qwen35moe.md). Every layer is
//
//   h = x + Mixer(RMSNorm(x) ⊙ attn_norm)          Mixer = Gated DeltaNet (deltanet.ts) on recurrent
//                                                    layers, gated full attention on the others
//   x = h + FFN(RMSNorm(h) ⊙ post_attention_norm)   FFN = routed experts + sigmoid-gated shared
//                                                    expert (qwen35moe), dense SwiGLU (qwen35)
//
// then logits = output · (RMSNorm(x) ⊙ output_norm). Multi-token-prediction blocks (blk.nLayer and
// above, nextn_predict_layers) are not part of the trunk and are never read.
//
// Sequence state: a KV cache for the attention layers plus, per DeltaNet layer, a fixed-size
// recurrent state (conv state + delta-rule state). A recurrent state cannot be rewound: `truncate`
// restores a copy kept at the end of one of the last few multi-token evaluations (prompt prefills)
// or resets to zero, then re-evaluates the tokens from there up to the requested position (see
// Qwen35CpuSequence.truncate).
import { GGMLType } from '../../gguf/types.js';
import type { Backend, BackendSequence, EvalOptions, Numerics } from '../backend.js';
import { isQwen35, type ModelConfig, type Qwen35Config } from '../config.js';
import { DisposedError, UnsupportedArchitectureError } from '../errors.js';
import { CpuTraceCollector } from '../trace/cpu.js';
import {
  checkContextLength, checkEvalTokens, evalInBatches, weightReader, type CpuLoadOptions, type CpuSequenceOptions, type GGUFTensorSource,
} from './backend.js';
import { deltaNetBlock, DeltaNetState, type DeltaNetWeights } from './deltanet.js';
import { KVCache, normRopeAttention, type Emit, type OnTensor } from './forward.js';
import { add, embedRow, matMul, rmsNorm, sigmoid, swiglu, type QuantMatrix } from './ops.js';
import { denseFfn, readDenseFfn, type DenseFfnWeights } from './qwen3.js';
import { readSharedMoeFfn, sharedMoeFfn, type SharedMoeFfnWeights } from './qwen3moe.js';

type Qwen35ModelConfig = ModelConfig & { qwen35: Qwen35Config };

/** Weights of one gated full-attention mixer. */
export interface GatedAttentionWeights {
  kind: 'attention';
  wq: QuantMatrix; // attn_q [E → nHead·2·D]: per head [query D | gate D]
  wk: QuantMatrix; // attn_k [E → nHeadKv·D]
  wv: QuantMatrix; // attn_v [E → nHeadKv·D]
  wo: QuantMatrix; // attn_output [nHead·D → E]
  qNorm: Float32Array; // attn_q_norm [D]
  kNorm: Float32Array; // attn_k_norm [D]
}

export interface Qwen35LayerWeights {
  attnNorm: Float32Array; // attn_norm [E]
  postAttnNorm: Float32Array; // post_attention_norm [E]
  mixer: DeltaNetWeights | GatedAttentionWeights;
  ffn: SharedMoeFfnWeights | DenseFfnWeights;
}

export interface Qwen35Weights {
  tokEmbd: QuantMatrix; // [nVocab rows of E]
  layers: Qwen35LayerWeights[];
  outputNorm: Float32Array; // [E]
  /** LM head [E → nVocab]; tokEmbd itself when embeddings are tied */
  output: QuantMatrix;
}

/** Everything one sequence carries between evaluations. */
export class Qwen35State {
  /** KV cache of the attention layers only (cache layer a = the a-th attention layer) */
  readonly kv: KVCache;
  /** per model layer: its index in kv (attention layers) or in dn (recurrent layers) */
  readonly slot: number[];
  /** one recurrent state per DeltaNet layer */
  readonly dn: DeltaNetState[] = [];

  constructor(readonly cfg: Qwen35ModelConfig, contextLength: number, kvF16: boolean, numerics: Numerics = 'exact') {
    let nAttn = 0;
    this.slot = cfg.qwen35.recurrent.map((rec) => {
      if (rec) {
        this.dn.push(new DeltaNetState(cfg.qwen35));
        return this.dn.length - 1;
      }
      return nAttn++;
    });
    this.kv = new KVCache({ ...cfg, nLayer: nAttn }, contextLength, kvF16, numerics);
  }

  /** A copy of every recurrent state (the KV cache is positional and needs no copy). */
  snapshot(): DeltaNetState[] {
    return this.dn.map((s) => {
      const c = new DeltaNetState(this.cfg.qwen35);
      c.copyFrom(s);
      return c;
    });
  }

  restore(snap: readonly DeltaNetState[]): void {
    this.dn.forEach((s, i) => s.copyFrom(snap[i]!));
  }

  reset(): void {
    for (const s of this.dn) s.reset();
  }
}

/**
 * Gated attention of n tokens at positions pos0.. (shared/docs/qwen35moe.md "Gated attention").
 * x: [n, E] (after attn_norm). Writes K/V into the cache layer `cl`. Returns attn_output·o: [n, E].
 * Intermediates: Qcur_full [n, nHead·2D], Qcur / Kcur / Vcur (after the projections; Qcur split out
 * of Qcur_full), gate_reshaped [n, nHead·D], Qcur_normed, Kcur_normed, Qcur_rope, Kcur_rope, attn_pregate
 * [n, nHead·D], attn_gated [n, nHead·D], attn_out [n, E].
 */
export function gatedAttentionBlock(
  cfg: ModelConfig, L: GatedAttentionWeights, cache: KVCache, cl: number, il: number, x: Float32Array, n: number, pos0: number, emit: Emit,
): Float32Array {
  const { nEmbd: E, nHead, headDimK: D } = cfg;
  const qRow = nHead * D;

  // 1. Q and gate from one projection, per head [query D | gate D].
  const qFull = new Float32Array(n * 2 * qRow); // [n, nHead, 2, D]
  matMul(qFull, L.wq, x, n);
  emit('Qcur_full', il, qFull);
  const q = new Float32Array(n * qRow); // [n, nHead, D]
  const gate = new Float32Array(n * qRow); // [n, nHead, D]
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < nHead; h++) {
      const src = (t * nHead + h) * 2 * D;
      q.set(qFull.subarray(src, src + D), (t * nHead + h) * D);
      gate.set(qFull.subarray(src + D, src + 2 * D), (t * nHead + h) * D);
    }
  }
  const k = new Float32Array(n * cache.kRow); // [n, nHeadKv, D]
  const v = new Float32Array(n * cache.vRow); // [n, nHeadKv, D]
  matMul(k, L.wk, x, n);
  matMul(v, L.wv, x, n);
  emit('Qcur', il, q);
  emit('gate_reshaped', il, gate);
  emit('Kcur', il, k);
  emit('Vcur', il, v);

  // 2.–4. Per-head RMSNorm of q and k, partial NEOX RoPE on the first nRot dims (IMROPE with every
  // section at position p), causal GQA attention over the cache (forward.ts normRopeAttention).
  const o = normRopeAttention(cfg, L, cache, cl, il, q, k, v, n, pos0, emit); // [n, nHead, D]
  emit('attn_pregate', il, o);

  // 5. Output gate: o ⊙ sigmoid(gate), then attn_output.
  for (let i = 0; i < o.length; i++) o[i] = o[i]! * Math.fround(sigmoid(gate[i]!));
  emit('attn_gated', il, o);
  const out = new Float32Array(n * E); // [n, E]
  matMul(out, L.wo, o, n);
  emit('attn_out', il, out);
  return out;
}

/**
 * Evaluates `tokens` at positions pos0..pos0+n-1 (the state holds positions 0..pos0-1) and returns
 * the logits of the last token [nVocab], or of every token [n, nVocab] with allLogits.
 * Intermediates: inp_embd; per layer attn_norm, the mixer's (deltanet.ts / gatedAttentionBlock),
 * attn_residual, attn_post_norm, the FFN's, ffn_out, l_out; then result_norm, result_output.
 */
export function forwardQwen35(
  cfg: Qwen35ModelConfig, w: Qwen35Weights, state: Qwen35State, tokens: readonly number[], pos0: number,
  opts: { allLogits?: boolean; onTensor?: OnTensor } = {},
): Float32Array {
  const n = tokens.length;
  const E = cfg.nEmbd;
  const onTensor = opts.onTensor;
  const emit: Emit = onTensor ? (name, layer, data) => onTensor(name, layer, data.slice()) : () => {};

  const x = new Float32Array(n * E); // [n, E] the residual stream
  for (let t = 0; t < n; t++) embedRow(x.subarray(t * E, (t + 1) * E), w.tokEmbd, tokens[t]!);
  emit('inp_embd', -1, x);

  for (let il = 0; il < cfg.nLayer; il++) {
    const L = w.layers[il]!;
    const h = new Float32Array(n * E); // [n, E]
    rmsNorm(h, x, L.attnNorm, cfg.rmsEps, n);
    emit('attn_norm', il, h);
    const mixed =
      L.mixer.kind === 'deltanet'
        ? deltaNetBlock(cfg, cfg.qwen35, L.mixer, state.dn[state.slot[il]!]!, h, n, il, emit)
        : gatedAttentionBlock(cfg, L.mixer, state.kv, state.slot[il]!, il, h, n, pos0, emit); // [n, E]
    add(x, x, mixed);
    emit('attn_residual', il, x);

    const h2 = new Float32Array(n * E); // [n, E]
    rmsNorm(h2, x, L.postAttnNorm, cfg.rmsEps, n);
    emit('attn_post_norm', il, h2);
    const ffnOut = L.ffn.kind === 'dense' ? denseFfn(cfg, L.ffn, h2, n, il, emit) : sharedMoeFfn(cfg, L.ffn, h2, n, il, emit); // [n, E]
    emit('ffn_out', il, ffnOut);
    add(x, x, ffnOut);
    emit('l_out', il, x);
  }

  const first = opts.allLogits ? 0 : n - 1;
  const rows = n - first;
  const normed = new Float32Array(rows * E); // [rows, E]
  rmsNorm(normed, x.subarray(first * E), w.outputNorm, cfg.rmsEps, rows);
  emit('result_norm', -1, normed);
  const logits = new Float32Array(rows * cfg.nVocab); // [rows, nVocab]
  matMul(logits, w.output, normed, rows);
  emit('result_output', -1, logits);
  return logits;
}

/** Recurrent-state copies kept for truncate (the ends of the most recent multi-token evals). */
const MAX_SNAPSHOTS = 2;

/** The CPU reference backend of qwen35moe / qwen35 (same contract as CpuBackend). */
export class Qwen35CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  /** eval honours opts.trace (routing traces of qwen35moe) */
  readonly tracesRouting = true;
  private disposed = false;

  /** numerics: how the matrices of `weights` were marked at load; sequences round attention to match */
  constructor(readonly config: Qwen35ModelConfig, readonly weights: Qwen35Weights, readonly numerics: Numerics = 'exact') {}

  /**
   * Reads the trunk's tensors (checking names and shapes) into memory.
   * @throws ModelFormatError, UnsupportedQuantError, UnsupportedArchitectureError, AbortError
   */
  static async load(file: GGUFTensorSource, config: ModelConfig, opts: CpuLoadOptions = {}): Promise<Qwen35CpuBackend> {
    if (!isQwen35(config)) throw new UnsupportedArchitectureError(`${config.arch} is not a Qwen3.5 hybrid`);
    const r = weightReader(file, config, opts);
    const { numerics, vec, mat } = r;

    const tokEmbd = await mat('token_embd.weight');
    const layers: Qwen35LayerWeights[] = [];
    for (let i = 0; i < config.nLayer; i++) {
      const b = `blk.${i}.`;
      const attnNorm = await vec(b + 'attn_norm.weight');
      const postAttnNorm = await vec(b + 'post_attention_norm.weight');
      const mixer: DeltaNetWeights | GatedAttentionWeights = config.qwen35.recurrent[i]
        ? {
            kind: 'deltanet',
            wqkv: await mat(b + 'attn_qkv.weight'),
            wz: await mat(b + 'attn_gate.weight'),
            conv: await vec(b + 'ssm_conv1d.weight'),
            dtBias: await vec(b + 'ssm_dt.bias'),
            a: await vec(b + 'ssm_a'),
            wBeta: await mat(b + 'ssm_beta.weight'),
            wAlpha: await mat(b + 'ssm_alpha.weight'),
            norm: await vec(b + 'ssm_norm.weight'),
            wOut: await mat(b + 'ssm_out.weight'),
          }
        : {
            kind: 'attention',
            wq: await mat(b + 'attn_q.weight'),
            wk: await mat(b + 'attn_k.weight'),
            wv: await mat(b + 'attn_v.weight'),
            wo: await mat(b + 'attn_output.weight'),
            qNorm: await vec(b + 'attn_q_norm.weight'),
            kNorm: await vec(b + 'attn_k_norm.weight'),
          };
      const ffn: SharedMoeFfnWeights | DenseFfnWeights =
        config.arch === 'qwen35moe' ? await readSharedMoeFfn(r, config, i) : await readDenseFfn(r, b);
      layers.push({ attnNorm, postAttnNorm, mixer, ffn });
    }
    const outputNorm = await vec('output_norm.weight');
    const output = config.tiedEmbeddings ? tokEmbd : await mat('output.weight');
    return new Qwen35CpuBackend(config, { tokEmbd, layers, outputNorm, output }, numerics);
  }

  /** A new sequence with an empty KV cache and zero recurrent states. */
  createSequence(contextLength: number, opts: CpuSequenceOptions = {}): Qwen35CpuSequence {
    this.assertAlive();
    checkContextLength(contextLength);
    return new Qwen35CpuSequence(this, contextLength, opts);
  }

  /** @internal */
  assertAlive(): void {
    if (this.disposed) throw new DisposedError('the CPU backend was disposed');
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

export class Qwen35CpuSequence implements BackendSequence {
  private disposed = false;
  private readonly state: Qwen35State;
  /** every token evaluated so far (position i holds tokens[i]); truncate replays from these */
  private readonly tokens: number[] = [];
  /** recurrent-state copies by position, oldest first (see truncate) */
  private readonly snapshots: { pos: number; dn: DeltaNetState[] }[] = [];

  constructor(private readonly backend: Qwen35CpuBackend, readonly contextLength: number, private readonly opts: CpuSequenceOptions) {
    this.state = new Qwen35State(backend.config, contextLength, opts.kvF16 ?? true, backend.numerics);
  }

  get nPast(): number {
    return this.tokens.length;
  }

  /** Positions (besides 0) where a copy of the recurrent state is kept: truncate there costs nothing. */
  get snapshotPositions(): number[] {
    return this.snapshots.map((s) => s.pos);
  }

  /**
   * Evaluates tokens at positions nPast..nPast+n-1; returns the last token's logits [nVocab], or all
   * of them [n, nVocab] with allLogits. After a multi-token eval the recurrent state is copied so
   * that truncate can come back to this position cheaply (the last MAX_SNAPSHOTS are kept).
   * @throws ContextOverflowError, RangeError for an empty list or a token id outside the vocabulary
   */
  async eval(tokens: number[], opts: EvalOptions = {}): Promise<Float32Array> {
    this.assertAlive();
    const past = this.tokens.length;
    const { config } = this.backend;
    checkEvalTokens(tokens, past, this.contextLength, config.nVocab);
    const trace = opts.trace && config.nExpert > 0 ? new CpuTraceCollector(config, tokens, past, opts.trace) : null;
    const out = this.run(tokens, !!opts.allLogits, trace);
    trace?.finish();
    if (tokens.length > 1) {
      this.snapshots.push({ pos: this.tokens.length, dn: this.state.snapshot() });
      if (this.snapshots.length > MAX_SNAPSHOTS) this.snapshots.shift();
    }
    return out;
  }

  /** Runs the forward pass over `tokens` from the current position and appends them. */
  private run(tokens: readonly number[], allLogits: boolean, trace: CpuTraceCollector | null): Float32Array {
    const { config, weights } = this.backend;
    return evalInBatches(tokens, config.nVocab, allLogits, (chunk, i, allLogits) => {
      const onTensor = trace ? trace.listener(i, this.opts.onTensor) : this.opts.onTensor;
      const logits = forwardQwen35(config, weights, this.state, chunk, this.tokens.length, { allLogits, onTensor });
      this.tokens.push(...chunk);
      return logits;
    });
  }

  /**
   * Forgets positions >= nPast. The KV cache can simply be cut, but a DeltaNet layer's recurrent
   * state summarizes every token so far and cannot be rewound: truncate restores the latest copy of
   * the recurrent state kept at or before nPast (snapshotPositions; or the zero state of position 0)
   * and re-evaluates the remembered tokens from there up to nPast. That is free at 0, at nPast itself
   * and at a snapshot position, and costs a prefill of the gap elsewhere.
   */
  truncate(nPast: number): void {
    this.assertAlive();
    const past = this.tokens.length;
    if (!(Number.isInteger(nPast) && nPast >= 0 && nPast <= past)) {
      throw new RangeError(`cannot truncate to ${nPast}: the sequence holds ${past} positions`);
    }
    if (nPast === past) return;
    // the latest snapshot at or before nPast; later ones describe forgotten tokens
    while (this.snapshots.length && this.snapshots[this.snapshots.length - 1]!.pos > nPast) this.snapshots.pop();
    const snap = this.snapshots[this.snapshots.length - 1];
    const from = snap ? snap.pos : 0;
    if (snap) this.state.restore(snap.dn);
    else this.state.reset();
    const replay = this.tokens.slice(from, nPast);
    this.tokens.length = from;
    // the replay rewrites K/V of positions from..nPast-1 with the same values; only the recurrent
    // states change. onTensor listeners see the replayed tokens as an ordinary evaluation.
    if (replay.length) this.run(replay, false, null);
  }

  dispose(): void {
    this.disposed = true;
  }

  private assertAlive(): void {
    if (this.disposed) throw new DisposedError('the sequence was disposed');
    this.backend.assertAlive();
  }
}
