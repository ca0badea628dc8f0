// The contract every backend (CPU reference, WebGPU) implements. See docs/architecture.md.
import type { RoutingTraceSink } from './trace/recorder.js';

export type { RoutingTraceBlock, RoutingTraceSink } from './trace/recorder.js';

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
}

export interface Backend {
  readonly name: 'cpu' | 'webgpu';
  /** true when eval honours `opts.trace` (routing traces, src/trace/) */
  readonly tracesRouting?: boolean;
  createSequence(contextLength: number): BackendSequence;
  dispose(): Promise<void>;
}
