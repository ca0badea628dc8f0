// The contract every backend (CPU reference, WebGPU) implements. See docs/architecture.md.
import type { RoutingTraceSink } from './trace/recorder.js';

export type { RoutingTraceBlock, RoutingTraceSink } from './trace/recorder.js';

/**
 * How a backend rounds the inputs of its products. 'llamacpp' (the default) reproduces llama.cpp's
 * CPU backend: before a product with a quantized, F16 or BF16 weight the activation vector is
 * round-tripped through the weight type's vec_dot_type (Q8_K for K-quants, Q8_0 for Q8_0/Q4_0/Q5_0,
 * Q8_1 for Q4_1/Q5_1, f16, bf16: gguf/quants.ts activationRoundTrip), and with an F16 KV cache q is
 * rounded to f16 before K·q and the softmax weights before the V sum. F32 weights (the router)
 * multiply exactly either way. 'exact': f32 inputs throughout.
 */
export type Numerics = 'llamacpp' | 'exact';

/** Options of one evaluation call. */
export interface EvalOptions {
  /** return the logits of every evaluated token ([n, n_vocab] row-major) instead of only the last */
  allLogits?: boolean;
  /**
   * record the MoE routing of these tokens: the backend calls `trace.add()` with the chosen expert
   * ids and weights ([n, nLayer, k]) and, when `trace.probs`, the router probabilities
   * ([n, nLayer, nExpert]), once per eval call or per internal batch, tokens in order. Only backends
   * with `tracesRouting` accept it. Without it a backend does no tracing work and holds no trace memory.
   */
  trace?: RoutingTraceSink;
}

/** One sequence: a KV cache and the position it has reached. */
export interface BackendSequence {
  /** number of tokens held in the KV cache */
  readonly nPast: number;
  /**
   * Evaluates `tokens` at positions nPast .. nPast+n-1 and returns the logits of the last one
   * ([n_vocab]) or, with allLogits, of all of them ([n, n_vocab]).
   * @throws ContextOverflowError when nPast + n exceeds the context length
   */
  eval(tokens: number[], opts?: EvalOptions): Promise<Float32Array>;
  /** forgets every position >= nPast */
  truncate(nPast: number): void;
  dispose(): void;
  /**
   * Optional (WebGPU): like eval, but returns only the k highest logits of the last token, selected
   * on the device (descending, ties → lower id), so a decode step reads back 8·k bytes instead of
   * n_vocab floats. Fewer than k when the vocabulary has fewer selectable (finite) logits.
   * @throws RangeError when k is not in 1..maxTopK; as eval
   */
  evalTopK?(tokens: number[], k: number, opts?: Pick<EvalOptions, 'trace'>): Promise<TopKResult>;
  /** largest k evalTopK accepts */
  readonly maxTopK?: number;
  /** optional work counters (WebGPU): dispatches, submits and bytes read back */
  readonly stats?: SequenceStats;
}

/** Candidate ids and their raw logits, best first. */
export interface TopKResult {
  ids: Uint32Array;
  logits: Float32Array;
}

/** Work counters of a sequence: the last eval call and the totals since creation. */
export interface SequenceStats {
  last: {
    tokens: number;
    /** compute dispatches encoded */
    dispatches: number;
    /** dispatches per layer; the last entry counts those outside the layers (embedding, head, top-k) */
    perLayer: number[];
    /** queue submits */
    submits: number;
    /** bytes copied back to the host */
    bytesRead: number;
  };
  total: { evals: number; tokens: number; dispatches: number; submits: number; bytesRead: number };
}

export interface Backend {
  readonly name: 'cpu' | 'webgpu';
  /** true when eval honours `opts.trace` (routing traces, src/trace/) */
  readonly tracesRouting?: boolean;
  createSequence(contextLength: number): BackendSequence;
  dispose(): Promise<void>;
}
