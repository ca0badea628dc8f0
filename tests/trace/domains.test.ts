// Expert specialization by domain (src/trace/domains.ts) on hand-made traces whose answer is known.
import { describe, expect, it } from 'vitest';
import { domainSpecialization, specializationSvg, type LabelledTrace } from '../../src/trace/domains.js';
import type { RoutingTrace } from '../../src/trace/types.js';

/** A one-layer trace of n tokens whose k experts come from `pick(t)`. */
function trace(n: number, k: number, nExpert: number, pick: (t: number) => number[], nLayer = 1): RoutingTrace {
  const ids = new Uint16Array(n * nLayer * k);
  for (let t = 0; t < n; t++) for (let l = 0; l < nLayer; l++) ids.set(pick(t), (t * nLayer + l) * k);
  return { nLayer, k, nExpert, tokens: Array.from({ length: n }, (_, i) => i), start: 0, ids, weights: new Float32Array(n * nLayer * k).fill(0.5) };
}

describe('domainSpecialization', () => {
  it('perfect specialization: I(D;E) = H(D), shares are one-hot, lift = 1/p(d)', () => {
    const items: LabelledTrace[] = [
      { domain: 'prose', trace: trace(100, 2, 4, (t) => [t % 2, 1 - (t % 2)]) },
      { domain: 'code', trace: trace(100, 2, 4, (t) => [2 + (t % 2), 3 - (t % 2)]) },
    ];
    const s = domainSpecialization(items);
    expect(s.domains).toEqual(['prose', 'code']);
    expect(s.tokens).toEqual([100, 100]);
    expect(s.domainEntropy).toBeCloseTo(1, 12);
    const L = s.layers[0]!;
    expect(L.mutualInformation).toBeCloseTo(1, 12);
    expect(L.normalized).toBeCloseTo(1, 12);
    expect(L.mutualInformationTop1).toBeCloseTo(1, 12);
    expect(L.share).toEqual([[1, 0], [1, 0], [0, 1], [0, 1]]);
    expect(L.counts[0]).toEqual([100, 0]);
    expect(L.lift[2]).toEqual([0, 2]);
  });

  it('routing that ignores the domain: I(D;E) = 0, every share equals the domain share', () => {
    const pick = (t: number) => [t % 4, (t + 1) % 4];
    const s = domainSpecialization([
      { domain: 'a', trace: trace(400, 2, 4, pick) },
      { domain: 'b', trace: trace(200, 2, 4, pick) },
    ]);
    const L = s.layers[0]!;
    expect(L.mutualInformation).toBeLessThan(1e-12);
    for (const row of L.share) {
      expect(row[0]).toBeCloseTo(2 / 3, 12);
      expect(row[1]).toBeCloseTo(1 / 3, 12);
    }
  });

  it('half-specialized: I(D;E) between the two, top-1 counted separately', () => {
    // domain x: top-1 always expert 0, second expert 1 or 2; domain y: top-1 expert 1 or 2, second 0
    const s = domainSpecialization([
      { domain: 'x', trace: trace(100, 2, 3, (t) => [0, 1 + (t % 2)]) },
      { domain: 'y', trace: trace(100, 2, 3, (t) => [1 + (t % 2), 0]) },
    ], ['y', 'x']);
    expect(s.domains).toEqual(['y', 'x']);
    const L = s.layers[0]!;
    // every token has expert 0 in its k=2: the set-level joint is identical for both domains
    expect(L.mutualInformation).toBeLessThan(1e-12);
    // but the first choice separates them completely
    expect(L.mutualInformationTop1).toBeCloseTo(1, 12);
  });

  it('refuses no traces, mixed shapes and unlisted domains', () => {
    expect(() => domainSpecialization([])).toThrow(RangeError);
    const a = trace(4, 2, 4, () => [0, 1]);
    const b = trace(4, 2, 8, () => [0, 1]);
    expect(() => domainSpecialization([{ domain: 'p', trace: a }, { domain: 'q', trace: b }])).toThrow(/different shapes/);
    expect(() => domainSpecialization([{ domain: 'p', trace: a }], ['q'])).toThrow(/not among/);
  });

  it('draws one heatmap per layer with the mutual information in the title', () => {
    const s = domainSpecialization([
      { domain: 'svg', trace: trace(10, 2, 4, () => [0, 1], 2) },
      { domain: 'json<&>', trace: trace(10, 2, 4, () => [2, 3], 2) },
    ]);
    const svg = specializationSvg(s);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('>layer 1</text>');
    expect(svg).toContain('I = 1.00 bits (100%)');
    expect(svg).toContain('json&lt;&amp;&gt;');
    expect((svg.match(/<rect x=/g) ?? []).length).toBe(2 * 4 * 2 + 1);
  });
});
