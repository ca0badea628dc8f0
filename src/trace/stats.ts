// Statistics of a routing trace (src/trace/types.ts): per layer the expert load, its imbalance, the
// router's entropy, how often the top-1 expert index changes from the previous layer and which
// experts are chosen together; per token the experts of every layer. Formulas: docs/moe-internals.md.
import type { RoutingTrace } from './types.js';

/** Statistics of one MoE layer over the traced tokens. */
export interface LayerRoutingStats {
  layer: number;
  /** a layer without a router (deepseek2's leading dense layers): every weight of the trace is 0 there; its other fields are zeros */
  dense: boolean;
  /** [nExpert] number of tokens that chose each expert (Σ = nTokens·k) */
  load: number[];
  /** [nExpert] sum of the weights each expert received (Σ = nTokens when the weights are renormalized) */
  weightLoad: number[];
  /** experts no token chose */
  unused: number;
  /** max(load) / mean(load), mean = nTokens·k / nExpert; 1 is perfectly balanced, nExpert/k the worst */
  maxOverMean: number;
  /** coefficient of variation of the load: population standard deviation / mean; 0 is balanced */
  cv: number;
  /** mean over tokens of the router's entropy in nats (see RoutingStats.entropySource) */
  entropy: number;
  /** entropy / ln(n) with n = nExpert (probs) or k (top-k weights): 1 is uniform */
  entropyNormalized: number;
  /** fraction of tokens whose top-1 expert id differs from their top-1 id in the previous layer; null for layer 0 */
  top1Change: number | null;
  /**
   * [nExpert·nExpert] symmetric co-activation counts: element a·nExpert + b (a ≠ b) is the number of
   * tokens that chose both a and b in this layer; the diagonal is 0 (the load is in `load`)
   */
  coactivation: Uint32Array;
}

/** The experts one token chose. */
export interface TokenRouting {
  /** context position */
  position: number;
  /** token id */
  token: number;
  /** [nLayer][k] expert ids, descending weight */
  experts: number[][];
  /** [nLayer][k] their weights */
  weights: number[][];
}

export interface RoutingStats {
  nTokens: number;
  nLayer: number;
  k: number;
  nExpert: number;
  /**
   * what the entropy is computed from: 'probs' = the router's full softmax over every expert (when
   * the trace has probs), 'topk-weights' = the chosen experts' weights renormalized to sum 1
   */
  entropySource: 'probs' | 'topk-weights';
  layers: LayerRoutingStats[];
  tokens: TokenRouting[];
}

/** H = −Σ p·ln p over the n values at `off` (divided by their sum first when `renormalize`); 0·ln 0 = 0. */
function entropyOf(x: ArrayLike<number>, off: number, n: number, renormalize: boolean): number {
  let sum = 1;
  if (renormalize) {
    sum = 0;
    for (let i = 0; i < n; i++) sum += x[off + i]!;
    if (!(sum > 0)) return 0;
  }
  let h = 0;
  for (let i = 0; i < n; i++) {
    const p = x[off + i]! / sum;
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

/**
 * Statistics of a routing trace. Entropies use the full router probabilities when the trace has
 * them, else the renormalized top-k weights (`entropySource` says which).
 * @throws RangeError for a trace without tokens or with inconsistent array sizes
 */
export function routingStats(trace: RoutingTrace): RoutingStats {
  const { nLayer, k, nExpert, ids, weights, probs } = trace;
  const n = trace.tokens.length;
  if (n === 0) throw new RangeError('routingStats: the trace has no tokens');
  if (ids.length !== n * nLayer * k || weights.length !== n * nLayer * k) {
    throw new RangeError(`routingStats: ids/weights hold ${ids.length}/${weights.length} values, expected ${n}·${nLayer}·${k}`);
  }
  if (probs && probs.length !== n * nLayer * nExpert) {
    throw new RangeError(`routingStats: probs hold ${probs.length} values, expected ${n}·${nLayer}·${nExpert}`);
  }
  const at = (t: number, l: number) => (t * nLayer + l) * k;
  // layers without a router (deepseek2's leading dense layers) hold only zero weights
  const isDense = Array.from({ length: nLayer }, (_, l) => {
    for (let t = 0; t < n; t++) for (let j = 0; j < k; j++) if (weights[at(t, l) + j] !== 0) return false;
    return true;
  });
  const layers: LayerRoutingStats[] = [];
  for (let l = 0; l < nLayer; l++) {
    const load = new Array<number>(nExpert).fill(0);
    const weightLoad = new Array<number>(nExpert).fill(0);
    const co = new Uint32Array(nExpert * nExpert);
    let entropy = 0;
    let changed = 0;
    for (let t = 0; t < n; t++) {
      const o = at(t, l);
      for (let j = 0; j < k; j++) {
        const e = ids[o + j]!;
        load[e]!++;
        weightLoad[e]! += weights[o + j]!;
        for (let i = 0; i < j; i++) {
          const f = ids[o + i]!;
          if (f === e) continue;
          co[e * nExpert + f]!++;
          co[f * nExpert + e]!++;
        }
      }
      // (renormalized: a sigmoid router's probabilities do not sum to 1)
      entropy += probs ? entropyOf(probs, (t * nLayer + l) * nExpert, nExpert, true) : entropyOf(weights, o, k, true);
      if (l > 0 && !isDense[l - 1] && ids[o]! !== ids[at(t, l - 1)]!) changed++;
    }
    const mean = (n * k) / nExpert;
    let max = 0;
    let sq = 0;
    let unused = 0;
    for (const c of load) {
      max = Math.max(max, c);
      sq += (c - mean) * (c - mean);
      if (c === 0) unused++;
    }
    entropy /= n;
    const hMax = Math.log(probs ? nExpert : k);
    const dense = isDense[l]!;
    if (dense) {
      layers.push({ layer: l, dense, load: load.fill(0), weightLoad, unused: nExpert, maxOverMean: 0, cv: 0, entropy: 0, entropyNormalized: 0, top1Change: null, coactivation: co.fill(0) });
      continue;
    }
    layers.push({
      layer: l,
      dense,
      load,
      weightLoad,
      unused,
      maxOverMean: max / mean,
      cv: Math.sqrt(sq / nExpert) / mean,
      entropy,
      entropyNormalized: hMax > 0 ? entropy / hMax : 0,
      top1Change: l === 0 || isDense[l - 1] ? null : changed / n,
      coactivation: co,
    });
  }
  const tokens: TokenRouting[] = [];
  for (let t = 0; t < n; t++) {
    const experts: number[][] = [];
    const ws: number[][] = [];
    for (let l = 0; l < nLayer; l++) {
      const o = at(t, l);
      experts.push(Array.from(ids.subarray(o, o + k)));
      ws.push(Array.from(weights.subarray(o, o + k)));
    }
    tokens.push({ position: trace.start + t, token: trace.tokens[t]!, experts, weights: ws });
  }
  return { nTokens: n, nLayer, k, nExpert, entropySource: probs ? 'probs' : 'topk-weights', layers, tokens };
}

/** The co-activation matrix as a sparse list of [a, b, count] with a < b and count > 0. */
export function coactivationPairs(stats: LayerRoutingStats, nExpert: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let a = 0; a < nExpert; a++) {
    for (let b = a + 1; b < nExpert; b++) {
      const c = stats.coactivation[a * nExpert + b]!;
      if (c > 0) out.push([a, b, c]);
    }
  }
  return out;
}
