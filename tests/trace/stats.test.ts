// routingStats and RoutingTraceRecorder on hand-built traces with hand-computed values.
import { describe, expect, it } from 'vitest';
import { coactivationPairs, routingStats, type RoutingTrace } from '../../src/index.js';
import { RoutingTraceRecorder } from '../../src/trace/recorder.js';

const H = (ps: number[]) => -ps.reduce((s, p) => s + (p > 0 ? p * Math.log(p) : 0), 0);

/**
 * 3 tokens, 2 layers, k = 2 of 4 experts.
 *   layer 0: t0 [0, 1] w [.75, .25]   t1 [0, 2] w [.5, .5]   t2 [1, 0] w [.6, .4]
 *   layer 1: t0 [3, 2] w [.3, .1]     t1 [0, 1] w [.5, .5]   t2 [1, 3] w [.9, .1]
 * (layer 1 t0's weights sum to 0.4: the entropy renormalizes them to [.75, .25])
 */
function handTrace(): RoutingTrace {
  // index (t·nLayer + l)·k + j
  return {
    nLayer: 2, k: 2, nExpert: 4, start: 5, tokens: [11, 12, 13],
    ids: Uint16Array.from([0, 1, 3, 2, 0, 2, 0, 1, 1, 0, 1, 3]),
    weights: Float32Array.from([0.75, 0.25, 0.3, 0.1, 0.5, 0.5, 0.5, 0.5, 0.6, 0.4, 0.9, 0.1]),
  };
}

describe('routingStats', () => {
  it('load, imbalance, CV, unused experts, weight load', () => {
    const s = routingStats(handTrace());
    expect(s).toMatchObject({ nTokens: 3, nLayer: 2, k: 2, nExpert: 4, entropySource: 'topk-weights' });
    const [l0, l1] = s.layers;
    expect(l0!.load).toEqual([3, 2, 1, 0]);
    expect(l1!.load).toEqual([1, 2, 1, 2]);
    // mean = 3·2/4 = 1.5
    expect(l0!.maxOverMean).toBeCloseTo(2, 12);
    expect(l1!.maxOverMean).toBeCloseTo(4 / 3, 12);
    // layer 0: deviations 1.5, .5, −.5, −1.5 → variance (2.25+.25+.25+2.25)/4 = 1.25
    expect(l0!.cv).toBeCloseTo(Math.sqrt(1.25) / 1.5, 12);
    // layer 1: deviations ±.5 → std .5
    expect(l1!.cv).toBeCloseTo(0.5 / 1.5, 12);
    expect(l0!.unused).toBe(1);
    expect(l1!.unused).toBe(0);
    expect(l0!.weightLoad[0]).toBeCloseTo(0.75 + 0.5 + 0.4, 6);
    expect(l0!.weightLoad[1]).toBeCloseTo(0.25 + 0.6, 6);
    expect(l0!.weightLoad[2]).toBeCloseTo(0.5, 6);
    expect(l0!.weightLoad[3]).toBe(0);
    expect(l1!.weightLoad[3]).toBeCloseTo(0.3 + 0.1, 6);
  });

  it('entropy of the renormalized top-k weights', () => {
    const s = routingStats(handTrace());
    const e0 = (H([0.75, 0.25]) + H([0.5, 0.5]) + H([0.6, 0.4])) / 3;
    const e1 = (H([0.75, 0.25]) + H([0.5, 0.5]) + H([0.9, 0.1])) / 3;
    expect(s.layers[0]!.entropy).toBeCloseTo(e0, 6);
    expect(s.layers[1]!.entropy).toBeCloseTo(e1, 6);
    expect(s.layers[0]!.entropyNormalized).toBeCloseTo(e0 / Math.log(2), 6);
  });

  it('entropy of the full distribution when probs are present', () => {
    const t = handTrace();
    // layer 0: uniform (ln 4) for every token; layer 1: one-hot (0), [.5,.5,0,0] (ln 2), one-hot
    const probs = new Float32Array(3 * 2 * 4);
    for (let tk = 0; tk < 3; tk++) probs.set([0.25, 0.25, 0.25, 0.25], (tk * 2 + 0) * 4);
    probs.set([0, 0, 0, 1], (0 * 2 + 1) * 4);
    probs.set([0.5, 0.5, 0, 0], (1 * 2 + 1) * 4);
    probs.set([0, 1, 0, 0], (2 * 2 + 1) * 4);
    const s = routingStats({ ...t, probs });
    expect(s.entropySource).toBe('probs');
    expect(s.layers[0]!.entropy).toBeCloseTo(Math.log(4), 6);
    expect(s.layers[0]!.entropyNormalized).toBeCloseTo(1, 6);
    expect(s.layers[1]!.entropy).toBeCloseTo(Math.log(2) / 3, 6);
  });

  it('top-1 change between adjacent layers', () => {
    const s = routingStats(handTrace());
    // top-1: layer 0 [0, 0, 1], layer 1 [3, 0, 1] → 1 of 3 changed
    expect(s.layers[0]!.top1Change).toBeNull();
    expect(s.layers[1]!.top1Change).toBeCloseTo(1 / 3, 12);
  });

  it('co-activation counts (symmetric, zero diagonal) and pair lists', () => {
    const s = routingStats(handTrace());
    const c0 = s.layers[0]!.coactivation;
    const at = (a: number, b: number) => c0[a * 4 + b];
    expect(at(0, 1)).toBe(2);
    expect(at(1, 0)).toBe(2);
    expect(at(0, 2)).toBe(1);
    expect(at(2, 0)).toBe(1);
    expect([at(0, 0), at(1, 1), at(0, 3), at(1, 2), at(2, 3)]).toEqual([0, 0, 0, 0, 0]);
    let total = 0;
    for (const v of c0) total += v;
    expect(total).toBe(2 * 3); // one pair per token (k = 2), counted both ways
    expect(coactivationPairs(s.layers[0]!, 4)).toEqual([[0, 1, 2], [0, 2, 1]]);
    expect(coactivationPairs(s.layers[1]!, 4)).toEqual([[0, 1, 1], [1, 3, 1], [2, 3, 1]]);
  });

  it('per-token experts of every layer, with positions from start', () => {
    const s = routingStats(handTrace());
    expect(s.tokens.map((t) => t.position)).toEqual([5, 6, 7]);
    expect(s.tokens.map((t) => t.token)).toEqual([11, 12, 13]);
    expect(s.tokens[0]!.experts).toEqual([[0, 1], [3, 2]]);
    expect(s.tokens[2]!.experts).toEqual([[1, 0], [1, 3]]);
    expect(s.tokens[2]!.weights[1]![0]).toBeCloseTo(0.9, 6);
  });

  it('a perfectly balanced layer: max/mean 1, CV 0', () => {
    // 2 tokens, k = 2 of 4: t0 [0, 1], t1 [2, 3]
    const s = routingStats({ nLayer: 1, k: 2, nExpert: 4, start: 0, tokens: [1, 2], ids: Uint16Array.from([0, 1, 2, 3]), weights: new Float32Array(4).fill(0.5) });
    expect(s.layers[0]!.maxOverMean).toBe(1);
    expect(s.layers[0]!.cv).toBe(0);
    expect(s.layers[0]!.entropy).toBeCloseTo(Math.log(2), 12);
  });

  it('rejects empty and inconsistent traces', () => {
    const t = handTrace();
    expect(() => routingStats({ ...t, tokens: [], ids: new Uint16Array(0), weights: new Float32Array(0) })).toThrow(RangeError);
    expect(() => routingStats({ ...t, ids: t.ids.subarray(1) })).toThrow(/ids/);
    expect(() => routingStats({ ...t, probs: new Float32Array(5) })).toThrow(/probs/);
  });
});

describe('RoutingTraceRecorder', () => {
  const shape = { nLayer: 2, k: 2, nExpert: 4 };

  it('concatenates consecutive blocks into one trace (ids as Uint16)', () => {
    const r = new RoutingTraceRecorder(shape, true);
    r.add({ tokens: [7], start: 3, ids: Int32Array.from([0, 1, 2, 3]), weights: [0.6, 0.4, 0.7, 0.3], probs: new Float32Array(8).fill(0.25) });
    expect(r.trace().tokens).toEqual([7]);
    r.add({ tokens: [8, 9], start: 4, ids: Uint32Array.from([3, 2, 1, 0, 0, 3, 2, 1]), weights: new Float32Array(8).fill(0.5), probs: new Float32Array(16).fill(0.25) });
    const t = r.trace();
    expect(r.length).toBe(3);
    expect(t.start).toBe(3);
    expect(t.tokens).toEqual([7, 8, 9]);
    expect(t.ids).toBeInstanceOf(Uint16Array);
    expect(Array.from(t.ids)).toEqual([0, 1, 2, 3, 3, 2, 1, 0, 0, 3, 2, 1]);
    expect(t.weights[0]).toBeCloseTo(0.6, 6);
    expect(t.probs).toHaveLength(24);
    expect(r.trace()).toBe(t); // cached
  });

  it('leaves probs out unless asked', () => {
    const r = new RoutingTraceRecorder(shape, false);
    r.add({ tokens: [1], start: 0, ids: [0, 1, 2, 3], weights: [0.5, 0.5, 0.5, 0.5], probs: new Float32Array(8) });
    expect('probs' in r.trace()).toBe(false);
  });

  it('rejects gaps, wrong sizes, missing probs and bad expert ids', () => {
    const r = new RoutingTraceRecorder(shape, true);
    const ok = { tokens: [1], start: 0, ids: [0, 1, 2, 3], weights: [0.5, 0.5, 0.5, 0.5], probs: new Float32Array(8) };
    r.add(ok);
    expect(() => r.add({ ...ok, start: 2 })).toThrow(/position 2, expected 1/);
    expect(() => r.add({ ...ok, start: 1, ids: [0, 1, 2] })).toThrow(/ids/);
    expect(() => r.add({ ...ok, start: 1, probs: undefined })).toThrow(/probabilities/);
    expect(() => r.add({ ...ok, start: 1, ids: [0, 1, 2, 4] })).toThrow(/expert id 4/);
    expect(r.length).toBe(1);
  });
});
