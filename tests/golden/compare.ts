// Metrics for comparing next-token distributions (shared/docs/matching-llamacpp.md).

/** log-softmax of one row, in f64 */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - lse;
  return out;
}

/** KL(P ‖ Q) in nats from the logits of P (reference) and Q (candidate) */
export function klFromLogits(ref: ArrayLike<number>, cand: ArrayLike<number>): number {
  const lp = logSoftmax(ref);
  const lq = logSoftmax(cand);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const p = Math.exp(lp[i]!);
    if (p > 0) kl += p * (lp[i]! - lq[i]!);
  }
  return Math.max(0, kl);
}

/** index of the largest value, the first one on ties (llama_sampler_greedy's rule) */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** top-1 minus top-2 value */
export function topMargin(row: ArrayLike<number>): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > a) {
      b = a;
      a = v;
    } else if (v > b) b = v;
  }
  return a - b;
}

export interface DistributionStats {
  positions: number;
  meanKL: number;
  maxKL: number;
  /** position of the largest KL */
  maxKLAt: number;
  /** fraction of positions where both argmaxes agree */
  top1: number;
  /** positions whose argmax differs, with llama.cpp's top-1/top-2 margin there */
  top1Misses: { pos: number; ref: number; cand: number; refMargin: number }[];
  /** max |Δlogit| after removing each row's mean shift */
  maxLogitDiff: number;
}

/** Compares row-major [n, nVocab] logits of a reference and a candidate. */
export function compareLogits(ref: Float32Array, cand: Float32Array, nVocab: number): DistributionStats {
  if (ref.length !== cand.length) throw new RangeError(`logit arrays differ in length: ${ref.length} vs ${cand.length}`);
  const n = ref.length / nVocab;
  let sumKL = 0;
  let maxKL = 0;
  let maxKLAt = 0;
  let agree = 0;
  let maxLogitDiff = 0;
  const top1Misses: DistributionStats['top1Misses'] = [];
  for (let p = 0; p < n; p++) {
    const r = ref.subarray(p * nVocab, (p + 1) * nVocab);
    const c = cand.subarray(p * nVocab, (p + 1) * nVocab);
    const kl = klFromLogits(r, c);
    sumKL += kl;
    if (kl > maxKL) {
      maxKL = kl;
      maxKLAt = p;
    }
    const ar = argmax(r);
    const ac = argmax(c);
    if (ar === ac) agree++;
    else top1Misses.push({ pos: p, ref: ar, cand: ac, refMargin: topMargin(r) });
    let shift = 0;
    for (let i = 0; i < nVocab; i++) shift += c[i]! - r[i]!;
    shift /= nVocab;
    for (let i = 0; i < nVocab; i++) maxLogitDiff = Math.max(maxLogitDiff, Math.abs(c[i]! - r[i]! - shift));
  }
  return { positions: n, meanKL: sumKL / n, maxKL, maxKLAt, top1: agree / n, top1Misses, maxLogitDiff };
}
