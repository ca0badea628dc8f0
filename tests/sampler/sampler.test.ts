import { describe, expect, it } from 'vitest';
import { DEFAULT_SAMPLER_OPTIONS, Sampler, Xoshiro128 } from '../../src/sampler.js';

const OFF = { topK: 0, topP: 1, minP: 0, temperature: 1 } as const;

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function expectDist(d: { ids: Int32Array; probs: Float64Array }, ids: number[], probs: number[]): void {
  expect([...d.ids]).toEqual(ids);
  expect(d.probs.length).toBe(probs.length);
  for (let i = 0; i < probs.length; i++) expect(d.probs[i]).toBeCloseTo(probs[i]!, 6);
}

function randomLogits(n: number, seed: number, scale = 3): Float32Array {
  const rng = new Xoshiro128(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // sum of uniforms: roughly normal
    out[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * scale;
  }
  return out;
}

describe('defaults', () => {
  it("match llama.cpp's", () => {
    expect(DEFAULT_SAMPLER_OPTIONS).toEqual({
      temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeatPenalty: 1, repeatLastN: 64, frequencyPenalty: 0, presencePenalty: 0,
    });
    const s = new Sampler();
    expect(s.topK).toBe(40);
    expect(Number.isInteger(s.seed)).toBe(true);
  });

  it('rejects bad options', () => {
    expect(() => new Sampler({ seed: -1 })).toThrow(RangeError);
    expect(() => new Sampler({ seed: 1.5 })).toThrow(RangeError);
    expect(() => new Sampler({ temperature: NaN })).toThrow(RangeError);
    expect(() => new Sampler({ repeatLastN: -2 })).toThrow(RangeError);
    expect(() => new Sampler().sample(new Float32Array(0))).toThrow(RangeError);
  });
});

describe('greedy', () => {
  it('temperature 0 picks the argmax, ties to the lowest id', () => {
    const s = new Sampler({ temperature: 0 });
    expect(s.sample(Float32Array.of(1, 3, 3, 2))).toBe(1);
    expect(s.sample(Float32Array.of(-5, -1, -3))).toBe(1);
    expect(s.sample(Float32Array.of(-Infinity, -Infinity, 0))).toBe(2);
    expect(new Sampler({ temperature: -1 }).sample(Float32Array.of(0, 0, 9, 9))).toBe(2);
    expectDist(s.distribution(Float32Array.of(1, 3, 3, 2)), [1], [1]);
  });

  it('greedy still applies bias and penalties first', () => {
    const s = new Sampler({ temperature: 0, logitBias: { 0: 5 } });
    expect(s.sample(Float32Array.of(1, 3, 2))).toBe(0);
    const p = new Sampler({ temperature: 0, repeatPenalty: 4 });
    p.accept(1);
    expect(p.sample(Float32Array.of(1, 3, 2))).toBe(2); // 3/4 < 2
  });
});

describe('top-k / top-p / min-p / temperature', () => {
  it('top-k keeps the k largest', () => {
    const s = new Sampler({ ...OFF, topK: 3 });
    expectDist(s.distribution(Float32Array.of(1, 2, 3, 4, 5)), [4, 3, 2], softmax([5, 4, 3]));
  });

  it('top-k ties keep the lowest ids', () => {
    const s = new Sampler({ ...OFF, topK: 2 });
    expectDist(s.distribution(Float32Array.of(1, 1, 1, 1)), [0, 1], [0.5, 0.5]);
  });

  it('the full-vocabulary sort orders by logit, then id (negatives, ties, -Infinity)', () => {
    const xs = [0.5, -2, 0.5, -0, 3, -Infinity, -2, 1e-30, -1e-30, 3, 0.25];
    const d = new Sampler({ ...OFF, topP: 0.999999 }).distribution(Float32Array.from(xs));
    const order = [...xs.keys()].sort((a, b) => xs[b]! - xs[a]! || a - b).filter((i) => xs[i]! > -Infinity);
    expect([...d.ids].slice(0, 9)).toEqual(order.slice(0, 9));
  });

  it('top-p keeps the smallest prefix reaching p', () => {
    const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    expectDist(new Sampler({ ...OFF, topP: 0.75 }).distribution(logits), [0, 1], [0.5 / 0.8, 0.3 / 0.8]);
    expectDist(new Sampler({ ...OFF, topP: 0.81 }).distribution(logits), [0, 1, 2], [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95]);
    expectDist(new Sampler({ ...OFF, topP: 0.4 }).distribution(logits), [0], [1]);
  });

  it('top-p is computed over the top-k survivors', () => {
    // after top-k 2: probs 0.5/0.8 = 0.625, 0.375; top-p 0.6 keeps only the first
    const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    expectDist(new Sampler({ ...OFF, topK: 2, topP: 0.6 }).distribution(logits), [0], [1]);
    // without top-k, top-p 0.6 keeps two
    expect(new Sampler({ ...OFF, topP: 0.6 }).distribution(logits).ids.length).toBe(2);
  });

  it('min-p drops tokens below minP × the top probability', () => {
    const logits = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    expectDist(new Sampler({ ...OFF, minP: 0.2 }).distribution(logits), [0, 1, 2], [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95]);
    expectDist(new Sampler({ ...OFF, minP: 0.7 }).distribution(logits), [0], [1]);
    // with top-k on, the same
    expectDist(new Sampler({ ...OFF, topK: 3, minP: 0.2 }).distribution(logits), [0, 1, 2], [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95]);
  });

  it('temperature comes after the filters', () => {
    const p = [0.5, 0.3, 0.15, 0.05];
    const logits = Float32Array.from(p.map(Math.log));
    // top-p 0.75 keeps {0,1} regardless of the temperature; then logits / 2
    const d = new Sampler({ ...OFF, topP: 0.75, temperature: 2 }).distribution(logits);
    const w = [Math.sqrt(0.5), Math.sqrt(0.3)];
    expectDist(d, [0, 1], w.map((x) => x / (w[0]! + w[1]!)));
    // min-p 0.2 keeps 3 at temperature 0.5 (it would keep 2 if applied after: 0.15² / 0.5² = 0.09)
    const d2 = new Sampler({ ...OFF, minP: 0.2, temperature: 0.5 }).distribution(logits);
    const w2 = [0.25, 0.09, 0.0225];
    const s2 = w2.reduce((a, b) => a + b);
    expectDist(d2, [0, 1, 2], w2.map((x) => x / s2));
  });

  it('everything off gives the plain softmax', () => {
    const xs = [0.3, -1, 2, 0];
    const d = new Sampler(OFF).distribution(Float32Array.from(xs));
    const sm = softmax(xs);
    expectDist(d, [2, 0, 3, 1], [sm[2]!, sm[0]!, sm[3]!, sm[1]!]);
  });
});

describe('penalties', () => {
  it('repeat, frequency and presence penalties, as llama.cpp', () => {
    const s = new Sampler({ ...OFF, repeatPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 0.25 });
    for (const t of [0, 1, 0]) s.accept(t);
    // token 0 (count 2): 2 / 2 - 2·0.5 - 0.25 = -0.25; token 1 (count 1): -1·2 - 0.5 - 0.25 = -2.75
    const d = s.distribution(Float32Array.of(2, -1, 0.5, 3));
    const sm = softmax([-0.25, -2.75, 0.5, 3]);
    expectDist(d, [3, 2, 0, 1], [sm[3]!, sm[2]!, sm[0]!, sm[1]!]);
  });

  it('only the last repeatLastN tokens count', () => {
    const s = new Sampler({ ...OFF, frequencyPenalty: 1, repeatLastN: 2 });
    for (const t of [0, 1, 0, 2, 2]) s.accept(t);
    const d = s.distribution(Float32Array.of(0, 0, 0));
    const sm = softmax([0, 0, -2]);
    expectDist(d, [0, 1, 2], sm);
    const none = new Sampler({ ...OFF, frequencyPenalty: 1, repeatLastN: 0 });
    none.accept(0);
    expectDist(none.distribution(Float32Array.of(0, 0)), [0, 1], [0.5, 0.5]);
    const all = new Sampler({ ...OFF, frequencyPenalty: 1, repeatLastN: -1 });
    for (let i = 0; i < 200; i++) all.accept(i === 0 ? 0 : 1);
    expectDist(all.distribution(Float32Array.of(0, 0)), [0, 1], softmax([-1, -199]));
  });

  it('logit bias comes before the penalties', () => {
    // bias first: -1 + 2 = 1 > 0 → 1 / 2 = 0.5. (Penalty first would give -2 + 2 = 0.)
    const s = new Sampler({ ...OFF, repeatPenalty: 2, logitBias: new Map([[1, 2]]) });
    s.accept(1);
    const d = s.distribution(Float32Array.of(0, -1));
    expectDist(d, [1, 0], softmax([0.5, 0]));
  });

  it('penalties come before top-k', () => {
    const s = new Sampler({ ...OFF, topK: 1, presencePenalty: 10 });
    s.accept(0);
    expectDist(s.distribution(Float32Array.of(5, 1, 2)), [2], [1]);
  });

  it('-Infinity bias bans a token', () => {
    const s = new Sampler({ temperature: 0, logitBias: { 2: -Infinity } });
    expect(s.sample(Float32Array.of(0, 1, 5))).toBe(1);
  });

  it('reset forgets the history', () => {
    const s = new Sampler({ temperature: 0, presencePenalty: 10 });
    s.accept(0);
    expect(s.sample(Float32Array.of(5, 1))).toBe(1);
    s.reset();
    expect(s.sample(Float32Array.of(5, 1))).toBe(0);
  });
});

describe('randomness', () => {
  it('a seed reproduces the same tokens', () => {
    const logits = randomLogits(1000, 1, 1);
    const run = (seed: number) => {
      const s = new Sampler({ seed, temperature: 1.5, topK: 0, topP: 1, minP: 0 });
      return Array.from({ length: 200 }, () => s.sample(logits));
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
    const s = new Sampler({ seed: 7, temperature: 1.5, topK: 0, topP: 1, minP: 0 });
    const a = Array.from({ length: 50 }, () => s.sample(logits));
    s.reset();
    expect(Array.from({ length: 50 }, () => s.sample(logits))).toEqual(a);
  });

  it('unseeded samplers get different random seeds', () => {
    const seeds = new Set(Array.from({ length: 8 }, () => new Sampler().seed));
    expect(seeds.size).toBeGreaterThan(1);
  });

  it('xoshiro128** gives uniform floats in [0, 1)', () => {
    const r = new Xoshiro128(123);
    let sum = 0;
    let bad = 0;
    for (let i = 0; i < 100000; i++) {
      const x = r.nextFloat();
      if (!(x >= 0 && x < 1)) bad++;
      sum += x;
    }
    expect(bad).toBe(0);
    expect(sum / 100000).toBeCloseTo(0.5, 2);
  });

  it('draw frequencies follow the distribution', () => {
    const p = [0.5, 0.3, 0.15, 0.05];
    const logits = Float32Array.from(p.map(Math.log));
    const s = new Sampler({ ...OFF, seed: 2024 });
    const n = 40000;
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[s.sample(logits)]!++;
    // chi-square with 3 degrees of freedom: 16.3 is the 0.999 quantile
    const chi2 = counts.reduce((acc, c, i) => acc + (c - n * p[i]!) ** 2 / (n * p[i]!), 0);
    expect(chi2).toBeLessThan(16.3);
  });

  it('filtered tokens are never drawn', () => {
    const logits = Float32Array.of(3, 2.9, 2.8, 0, -1);
    const s = new Sampler({ topK: 3, topP: 1, minP: 0, temperature: 5, seed: 1 });
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(s.sample(logits));
    expect([...seen].sort()).toEqual([0, 1, 2]);
  });
});

describe('vocabulary-sized logits', () => {
  const N = 151936;
  const logits = randomLogits(N, 99);

  it('top-k selection equals a full sort', () => {
    const s = new Sampler({ ...OFF, topK: 40 });
    const d = s.distribution(logits);
    const sorted = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, 40);
    expect([...d.ids]).toEqual(sorted);
  });

  it('top-k off with min-p prefilter equals the unfiltered chain', () => {
    const withMinP = new Sampler({ topK: 0, topP: 0.9, minP: 0.05, temperature: 1 }).distribution(logits);
    const noMinP = new Sampler({ topK: 0, topP: 0.9, minP: 0, temperature: 1 }).distribution(logits);
    // min-p after top-p keeps the prefix of top-p's set above the threshold
    const thr = logits[noMinP.ids[0]!]! + Math.log(0.05);
    const expected = [...noMinP.ids].filter((id) => logits[id]! >= thr);
    expect([...withMinP.ids]).toEqual(expected);
  });

  it('sampling the default chain is fast (no full sort)', () => {
    const s = new Sampler({ seed: 5 });
    s.sample(logits);
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) s.sample(logits);
    const ms = (performance.now() - t0) / 20;
    expect(ms).toBeLessThan(25);
  });

  it('candidatesNeeded and sampleCandidates reproduce the full choice', () => {
    const cases = [
      { temperature: 0 },
      { temperature: 0, repeatPenalty: 1.3, presencePenalty: 0.5 },
      { temperature: 0.8, seed: 3 },
      { temperature: 1, topK: 20, topP: 0.8, minP: 0, frequencyPenalty: 1, seed: 4 },
      { temperature: 1, topK: 10, logitBias: { 5: -3 }, seed: 6 },
    ];
    const order = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]! || a - b);
    for (const opts of cases) {
      const full = new Sampler(opts);
      const cand = new Sampler(opts);
      // history: some of the top tokens, so that penalties matter
      for (const t of [order[0]!, order[3]!, order[0]!, order[7]!, 12345]) {
        full.accept(t);
        cand.accept(t);
      }
      const need = cand.candidatesNeeded();
      expect(typeof need).toBe('number');
      const ids = Int32Array.from(order.slice(0, need as number)).reverse(); // any order
      const vals = Float32Array.from(ids, (id) => logits[id]!);
      for (let i = 0; i < 30; i++) expect(cand.sampleCandidates(ids, vals)).toBe(full.sample(logits));
    }
  });

  it("candidatesNeeded says 'all' when a subset cannot be exact", () => {
    expect(new Sampler({ temperature: 0 }).candidatesNeeded()).toBe(1);
    expect(new Sampler({ topK: 40 }).candidatesNeeded()).toBe(40);
    expect(new Sampler({ topK: 0 }).candidatesNeeded()).toBe('all');
    expect(new Sampler({ logitBias: { 1: 1 } }).candidatesNeeded()).toBe('all');
    expect(new Sampler({ repeatPenalty: 0.9 }).candidatesNeeded()).toBe('all');
    const s = new Sampler({ topK: 40, repeatPenalty: 1.1 });
    s.accept(1);
    s.accept(2);
    s.accept(1);
    expect(s.candidatesNeeded()).toBe(42);
  });
});
