// Token sampler with llama.cpp's order and defaults (shared/docs/sampling.md, llama.cpp
// common/common.h and src/llama-sampling.cpp):
//
//   logit bias → penalties (repeat over the last n, frequency, presence) → top-k → top-p → min-p
//   → temperature → draw
//
// temperature ≤ 0 is greedy: the argmax after bias and penalties (ties go to the lowest id).
// Top-k uses a bounded min-heap (O(n log k)), never a full sort of the vocabulary. With top-k off,
// min-p (a logit threshold) prefilters the candidates before the sort that top-p needs; the result
// is the same because both keep a prefix of the sorted order and top-p's normalizer is computed
// over every candidate first.
//
// Randomness: xoshiro128** (Blackman & Vigna), its 128-bit state filled from the 32-bit seed by
// splitmix32. One draw takes 53 bits from two outputs. A seed reproduces the same tokens for the
// same logits; without a seed, one is drawn from crypto.getRandomValues and exposed as `seed`.

/** Options of the sampler chain. Every field is optional; the defaults are llama.cpp's. */
export interface SamplerOptions {
  /** temperature; ≤ 0 means greedy (argmax). Default 0.8 */
  temperature?: number;
  /** keep the k most likely tokens; ≤ 0 disables. Default 40 */
  topK?: number;
  /** nucleus: keep the smallest set whose probability reaches p; ≥ 1 disables. Default 0.95 */
  topP?: number;
  /** drop tokens whose probability is below minP × the top token's; ≤ 0 disables. Default 0.05 */
  minP?: number;
  /** divide positive logits (multiply non-positive ones) of recently seen tokens; 1 disables. Default 1 */
  repeatPenalty?: number;
  /** how many of the last accepted tokens the penalties look at; 0 disables, -1 means all. Default 64 */
  repeatLastN?: number;
  /** subtract count × this from a seen token's logit. Default 0 */
  frequencyPenalty?: number;
  /** subtract this once from every seen token's logit. Default 0 */
  presencePenalty?: number;
  /** added to the logits of the given token ids before anything else (-Infinity bans a token) */
  logitBias?: Readonly<Record<number, number>> | ReadonlyMap<number, number>;
  /** seed of the PRNG (an unsigned 32-bit integer); random when omitted */
  seed?: number;
}

/** llama.cpp's defaults (common_params_sampling). */
export const DEFAULT_SAMPLER_OPTIONS = Object.freeze({
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1.0,
  repeatLastN: 64,
  frequencyPenalty: 0,
  presencePenalty: 0,
});

/** splitmix32: spreads a 32-bit seed over the generator's state. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * xoshiro128** PRNG. Deterministic for a given 32-bit seed.
 */
export class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    const st = { s: seed >>> 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** next unsigned 32-bit output */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** uniform double in [0, 1) with 53 random bits */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function randomSeed(): number {
  const buf = new Uint32Array(1);
  globalThis.crypto.getRandomValues(buf);
  return buf[0]!;
}

function checkFinite(name: string, v: number): number {
  if (typeof v !== 'number' || Number.isNaN(v)) throw new RangeError(`sampler option ${name} must be a number, got ${String(v)}`);
  return v;
}

/**
 * The llama.cpp-ordered sampler chain. Keeps the history the penalties need: call `accept` with
 * every token that enters the context (prompt and generated), as llama.cpp's CLI does.
 */
export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repeatPenalty: number;
  readonly repeatLastN: number;
  readonly frequencyPenalty: number;
  readonly presencePenalty: number;
  /** the seed in use (given or drawn at random) */
  readonly seed: number;

  private readonly bias: Map<number, number>;
  private rng: Xoshiro128;
  private history: number[] = [];
  // scratch buffers, reused between calls
  private scratch: Float32Array = new Float32Array(0);
  private candIds: Int32Array = new Int32Array(0);
  private candVals: Float32Array = new Float32Array(0);
  private probs: Float64Array = new Float64Array(0);

  /**
   * @throws RangeError when an option is not a number or the seed is not an unsigned 32-bit integer
   */
  constructor(opts: SamplerOptions = {}) {
    const d = DEFAULT_SAMPLER_OPTIONS;
    this.temperature = checkFinite('temperature', opts.temperature ?? d.temperature);
    this.topK = Math.trunc(checkFinite('topK', opts.topK ?? d.topK));
    this.topP = checkFinite('topP', opts.topP ?? d.topP);
    this.minP = checkFinite('minP', opts.minP ?? d.minP);
    this.repeatPenalty = checkFinite('repeatPenalty', opts.repeatPenalty ?? d.repeatPenalty);
    this.repeatLastN = Math.trunc(checkFinite('repeatLastN', opts.repeatLastN ?? d.repeatLastN));
    this.frequencyPenalty = checkFinite('frequencyPenalty', opts.frequencyPenalty ?? d.frequencyPenalty);
    this.presencePenalty = checkFinite('presencePenalty', opts.presencePenalty ?? d.presencePenalty);
    if (this.repeatLastN < -1) throw new RangeError(`sampler option repeatLastN must be ≥ -1, got ${this.repeatLastN}`);
    if (opts.seed !== undefined && (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff)) {
      throw new RangeError(`seed must be an integer in [0, 2^32), got ${opts.seed}`);
    }
    this.seed = opts.seed ?? randomSeed();
    this.rng = new Xoshiro128(this.seed);
    this.bias = new Map();
    if (opts.logitBias) {
      const entries = opts.logitBias instanceof Map ? [...opts.logitBias] : Object.entries(opts.logitBias);
      for (const [k, v] of entries) {
        const id = Number(k);
        if (!Number.isInteger(id) || id < 0) throw new RangeError(`logitBias key must be a token id, got ${k}`);
        this.bias.set(id, checkFinite(`logitBias[${id}]`, v as number));
      }
    }
  }

  /** Records a token that entered the context (for the penalties). */
  accept(id: number): void {
    this.history.push(id);
    const keep = this.repeatLastN < 0 ? Infinity : this.repeatLastN;
    // trim lazily so that accept stays O(1) amortized
    if (this.history.length > 2 * keep + 64) this.history.splice(0, this.history.length - keep);
  }

  /** Forgets the history and restarts the PRNG from the seed. */
  reset(): void {
    this.history = [];
    this.rng = new Xoshiro128(this.seed);
  }

  private penaltiesActive(): boolean {
    return (
      this.repeatLastN !== 0 &&
      (this.repeatPenalty !== 1 || this.frequencyPenalty !== 0 || this.presencePenalty !== 0)
    );
  }

  /** token → count over the penalty window */
  private windowCounts(): Map<number, number> {
    const counts = new Map<number, number>();
    if (!this.penaltiesActive()) return counts;
    const n = this.repeatLastN < 0 ? this.history.length : Math.min(this.repeatLastN, this.history.length);
    for (let i = this.history.length - n; i < this.history.length; i++) {
      const id = this.history[i]!;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  private penalize(logit: number, count: number): number {
    let l = logit;
    if (l <= 0) l *= this.repeatPenalty;
    else l /= this.repeatPenalty;
    return l - count * this.frequencyPenalty - (count > 0 ? this.presencePenalty : 0);
  }

  /**
   * How many of the highest raw logits the sampler needs to choose exactly as it would from the
   * full distribution, or 'all'. A GPU backend can select that many candidates on the device and
   * call `sampleCandidates` instead of reading back every logit.
   *
   * Greedy needs 1, top-k needs k; tokens the penalties or a negative bias can push down are
   * added (they can only lower logits, so the true top-k lies within the raw top k + that many).
   * A positive bias, a penalty that can raise logits, or top-k off with temperature > 0 need 'all'.
   */
  candidatesNeeded(): number | 'all' {
    let extra = 0;
    for (const v of this.bias.values()) {
      if (v > 0) return 'all';
      if (v < 0) extra++;
    }
    if (this.penaltiesActive()) {
      if (this.repeatPenalty < 1 || this.frequencyPenalty < 0 || this.presencePenalty < 0) return 'all';
      extra += this.windowCounts().size;
    }
    let base: number;
    if (this.temperature <= 0) base = 1;
    else if (this.topK > 0) base = this.topK;
    else return 'all';
    return base + extra;
  }

  /**
   * Chooses the next token from the full logits ([n_vocab]). Does not modify `logits` and does
   * not `accept` the token.
   * @throws RangeError when logits is empty
   */
  sample(logits: Float32Array): number {
    const n = logits.length;
    if (n === 0) throw new RangeError('cannot sample from empty logits');
    let vals = logits;
    if (this.bias.size > 0 || this.penaltiesActive()) {
      if (this.scratch.length !== n) this.scratch = new Float32Array(n);
      this.scratch.set(logits);
      vals = this.scratch;
      for (const [id, b] of this.bias) if (id < n) vals[id] = vals[id]! + b;
      for (const [id, c] of this.windowCounts()) if (id < n) vals[id] = this.penalize(vals[id]!, c);
    }
    if (this.temperature <= 0) return argmax(vals, null, n);
    const m = this.selectCandidates(vals, null, n);
    return this.finish(m);
  }

  /**
   * Chooses the next token from a candidate subset: `ids[i]` has raw logit `logits[i]`. The
   * subset must hold at least the `candidatesNeeded()` highest raw logits (any order) for the
   * choice to equal `sample` on the full logits.
   * @throws RangeError when the subset is empty or the arrays differ in length
   */
  sampleCandidates(ids: ArrayLike<number>, logits: ArrayLike<number>): number {
    const n = ids.length;
    if (n === 0) throw new RangeError('cannot sample from an empty candidate set');
    if (logits.length !== n) throw new RangeError(`candidate ids (${n}) and logits (${logits.length}) differ in length`);
    const vals = new Float32Array(n);
    const counts = this.windowCounts();
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      let v = logits[i]! + (this.bias.get(id) ?? 0);
      const c = counts.get(id);
      if (c !== undefined) v = this.penalize(v, c);
      vals[i] = v;
    }
    const idArr = ids instanceof Int32Array ? ids : Int32Array.from(ids);
    if (this.temperature <= 0) return argmax(vals, idArr, n);
    const m = this.selectCandidates(vals, idArr, n);
    return this.finish(m);
  }

  /**
   * The distribution the next draw would pick from after the whole chain (bias, penalties,
   * top-k, top-p, min-p, temperature): candidate ids, most likely first, with their
   * probabilities (summing to 1). Greedy gives one id with probability 1. Does not draw.
   * @throws RangeError when logits is empty
   */
  distribution(logits: Float32Array): { ids: Int32Array; probs: Float64Array } {
    const n = logits.length;
    if (n === 0) throw new RangeError('cannot sample from empty logits');
    let vals = logits;
    if (this.bias.size > 0 || this.penaltiesActive()) {
      vals = Float32Array.from(logits);
      for (const [id, b] of this.bias) if (id < n) vals[id] = vals[id]! + b;
      for (const [id, c] of this.windowCounts()) if (id < n) vals[id] = this.penalize(vals[id]!, c);
    }
    if (this.temperature <= 0) return { ids: Int32Array.of(argmax(vals, null, n)), probs: Float64Array.of(1) };
    const m = this.selectCandidates(vals, null, n);
    const max = this.candVals[0]!;
    const probs = new Float64Array(m);
    let sum = 0;
    for (let i = 0; i < m; i++) sum += probs[i] = Math.exp((this.candVals[i]! - max) / this.temperature);
    for (let i = 0; i < m; i++) probs[i]! /= sum;
    return { ids: this.candIds.slice(0, m), probs };
  }

  private ensure(n: number): void {
    if (this.candIds.length < n) {
      this.candIds = new Int32Array(n);
      this.candVals = new Float32Array(n);
      this.probs = new Float64Array(n);
    }
  }

  /**
   * top-k → top-p → min-p over (vals, ids). Leaves the survivors sorted by logit descending (ties:
   * lowest id first) in candIds/candVals and returns their count.
   */
  private selectCandidates(vals: Float32Array, ids: Int32Array | null, n: number): number {
    const k = this.topK > 0 ? Math.min(this.topK, n) : n;
    let m: number;
    if (k < n) {
      this.ensure(k);
      m = heapTopK(vals, ids, n, k, this.candIds, this.candVals);
      return this.topPMinP(m, null);
    }
    // top-k is off: every token is a candidate. Compute top-p's normalizer over all of them, then
    // let min-p's threshold prefilter before sorting (both keep a prefix of the sorted order).
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (vals[i]! > max) max = vals[i]!;
    let z = 0;
    for (let i = 0; i < n; i++) z += Math.exp(vals[i]! - max);
    const thr = this.minP > 0 ? max + Math.log(this.minP) : -Infinity;
    this.ensure(n);
    m = 0;
    for (let i = 0; i < n; i++) {
      const v = vals[i]!;
      if (v >= thr && v > -Infinity) {
        this.candIds[m] = ids ? ids[i]! : i;
        this.candVals[m] = v;
        m++;
      }
    }
    if (m === 0) {
      // everything is -Infinity (or NaN): fall back to the argmax
      this.candIds[0] = argmax(vals, ids, n);
      this.candVals[0] = 0;
      return 1;
    }
    sortCandidates(this.candIds, this.candVals, m);
    return this.topPMinP(m, z);
  }

  /** top-p then min-p on the sorted candidates [0, m); `z` is top-p's normalizer when known. */
  private topPMinP(m: number, z: number | null): number {
    const vals = this.candVals;
    const max = vals[0]!;
    if (this.topP < 1 && m > 1) {
      let sum = z ?? 0;
      if (z === null) for (let i = 0; i < m; i++) sum += Math.exp(vals[i]! - max);
      let cum = 0;
      for (let i = 0; i < m; i++) {
        cum += Math.exp(vals[i]! - max) / sum;
        if (cum >= this.topP) {
          m = i + 1;
          break;
        }
      }
    }
    if (this.minP > 0 && m > 1) {
      const thr = max + Math.log(this.minP);
      let keep = 1;
      while (keep < m && vals[keep]! >= thr) keep++;
      m = keep;
    }
    return m;
  }

  /** temperature, softmax and the draw over the sorted candidates [0, m) */
  private finish(m: number): number {
    const ids = this.candIds;
    const vals = this.candVals;
    if (m === 1) return ids[0]!;
    const max = vals[0]!;
    const invT = 1 / this.temperature;
    const p = this.probs;
    let sum = 0;
    for (let i = 0; i < m; i++) {
      const e = Math.exp((vals[i]! - max) * invT);
      p[i] = e;
      sum += e;
    }
    const r = this.rng.nextFloat() * sum;
    let acc = 0;
    for (let i = 0; i < m; i++) {
      acc += p[i]!;
      if (r < acc) return ids[i]!;
    }
    return ids[m - 1]!;
  }
}

/** index (or id) of the largest value; ties go to the lowest id; NaN never wins */
function argmax(vals: Float32Array, ids: Int32Array | null, n: number): number {
  if (ids === null) {
    let best = 0;
    let bestV = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = vals[i]!;
      if (v > bestV) {
        bestV = v;
        best = i;
      }
    }
    return best;
  }
  let bestId = ids[0]!;
  let bestV = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = vals[i]!;
    const id = ids[i]!;
    if (v > bestV || (v === bestV && id < bestId)) {
      bestV = v;
      bestId = id;
    }
  }
  return bestId;
}

/** a is worse than b: lower value, or equal value and higher id */
function worse(va: number, ia: number, vb: number, ib: number): boolean {
  return va < vb || (va === vb && ia > ib);
}

/**
 * Selects the k best of n values with a min-heap (root = worst kept), then sorts them best first.
 * Writes ids/values into outIds/outVals and returns k.
 */
function heapTopK(
  vals: Float32Array,
  ids: Int32Array | null,
  n: number,
  k: number,
  outIds: Int32Array,
  outVals: Float32Array,
): number {
  const hv = outVals;
  const hi = outIds;
  let size = 0;
  const siftDown = (pos: number) => {
    const v = hv[pos]!;
    const id = hi[pos]!;
    for (;;) {
      const l = 2 * pos + 1;
      if (l >= size) break;
      const r = l + 1;
      let c = l;
      if (r < size && worse(hv[r]!, hi[r]!, hv[l]!, hi[l]!)) c = r;
      if (!worse(hv[c]!, hi[c]!, v, id)) break;
      hv[pos] = hv[c]!;
      hi[pos] = hi[c]!;
      pos = c;
    }
    hv[pos] = v;
    hi[pos] = id;
  };
  const push = (v: number, id: number) => {
    let pos = size++;
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!worse(v, id, hv[parent]!, hi[parent]!)) break;
      hv[pos] = hv[parent]!;
      hi[pos] = hi[parent]!;
      pos = parent;
    }
    hv[pos] = v;
    hi[pos] = id;
  };
  const first = Math.min(k, n);
  for (let i = 0; i < first; i++) {
    const v = vals[i]!;
    push(Number.isNaN(v) ? -Infinity : v, ids ? ids[i]! : i);
  }
  let min = hv[0]!;
  if (ids === null) {
    // scanning in id order, an equal value has a higher id than any kept one, so it is worse
    for (let i = first; i < n; i++) {
      const v = vals[i]!;
      if (!(v > min)) continue; // also skips NaN
      hv[0] = v;
      hi[0] = i;
      siftDown(0);
      min = hv[0]!;
    }
  } else {
    for (let i = first; i < n; i++) {
      const v = vals[i]!;
      const id = ids[i]!;
      if (!(v > min || (v === min && id < hi[0]!))) continue;
      hv[0] = v;
      hi[0] = id;
      siftDown(0);
      min = hv[0]!;
    }
  }
  sortCandidates(hi, hv, size);
  return size;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
const ID_BITS = 2 ** 21;

/** float32 → uint32 whose unsigned order is the float order */
function sortableBits(v: number): number {
  f32Scratch[0] = v;
  const b = u32Scratch[0]!;
  return b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
}

/**
 * Sorts (ids, vals)[0, m) by value descending, ties by id ascending. Packs (value, id) into one
 * exact float64 key (32 bits of order-preserving float bits × 2^21 + 21 bits of id) so that the
 * native numeric sort does the work; ids ≥ 2^21 fall back to a comparator sort.
 */
function sortCandidates(ids: Int32Array, vals: Float32Array, m: number): void {
  let packable = true;
  for (let i = 0; i < m; i++) if (ids[i]! < 0 || ids[i]! >= ID_BITS) packable = false;
  if (packable) {
    const keys = new Float64Array(m);
    for (let i = 0; i < m; i++) keys[i] = sortableBits(vals[i]!) * ID_BITS + (ID_BITS - 1 - ids[i]!);
    keys.sort();
    for (let j = 0; j < m; j++) {
      const key = keys[m - 1 - j]!;
      const low = key % ID_BITS;
      const bits = (key - low) / ID_BITS;
      ids[j] = ID_BITS - 1 - low;
      u32Scratch[0] = bits >= 0x80000000 ? bits - 0x80000000 : ~bits >>> 0;
      vals[j] = f32Scratch[0]!;
    }
    return;
  }
  const order = new Array<number>(m);
  for (let i = 0; i < m; i++) order[i] = i;
  order.sort((a, b) => vals[b]! - vals[a]! || ids[a]! - ids[b]!);
  const oi = new Int32Array(m);
  const ov = new Float32Array(m);
  for (let i = 0; i < m; i++) {
    oi[i] = ids[order[i]!]!;
    ov[i] = vals[order[i]!]!;
  }
  ids.set(oi);
  vals.set(ov);
}
