// Routing traces: what a Mixture-of-Experts router chose, per token and layer. The backends fill a
// RoutingTraceRecorder (src/trace/recorder.ts) during `eval`; Session hands the result to the user
// as a RoutingTrace. See docs/moe-internals.md.

/** What to record. Passed as `trace` to Session.eval / Session.generate. */
export interface TraceOptions {
  /** record the chosen expert ids and their weights (must be true to trace anything) */
  routing: boolean;
  /**
   * also record the router's full probability vector (softmax over every expert) per token and
   * layer: nExpert floats per token and layer, e.g. 24 KiB per token for Qwen3-30B-A3B. Default false
   */
  probs?: boolean;
}

/**
 * The routing of a run of consecutive tokens. Arrays are row-major, token outermost:
 * element (t, l, j) of `ids` / `weights` is at `(t·nLayer + l)·k + j`, element (t, l, e) of `probs` at
 * `(t·nLayer + l)·nExpert + e`.
 */
export interface RoutingTrace {
  /** MoE layers (every block of qwen3moe) */
  nLayer: number;
  /** experts used per token */
  k: number;
  /** experts per layer */
  nExpert: number;
  /** the traced tokens' ids, in evaluation order */
  tokens: number[];
  /** context position of tokens[0] (the following tokens are at consecutive positions) */
  start: number;
  /** [nTok, nLayer, k] chosen experts, in descending router probability (ties: lower id first) */
  ids: Uint16Array;
  /** [nTok, nLayer, k] the weights the experts' outputs were scaled by (renormalized top-k probabilities) */
  weights: Float32Array;
  /** [nTok, nLayer, nExpert] the router's softmax probabilities, when asked for */
  probs?: Float32Array;
}

/** Shape of the traces of one model. */
export interface RoutingTraceShape {
  nLayer: number;
  k: number;
  nExpert: number;
  /**
   * what `probs` holds: the softmax of the router logits (default; gpt-oss's router too, which
   * weights by a softmax over the chosen logits only) or their sigmoid (DeepSeek-V3/R1's routers)
   */
  gating?: 'softmax' | 'sigmoid';
}
