// deepseek2's own kernels against src/cpu: mla_q_rope (the query's rope part, adjacent pairs, into
// the assembled query) against src/cpu/ops.ts rope, and moe_route_general (sigmoid | softmax, the
// exp_probs_b selection bias, group-limited top-k, renormalization, scale) against moeRouteGeneral.
// Head counts, rope widths and expert counts that are not multiples of the workgroup size.
import { afterAll, describe, expect, it } from 'vitest';
import { moeRouteGeneral, rope, type RouteSpec } from '../../src/cpu/ops.js';
import { createMlaQRope, createMoeRouteGeneral } from '../../src/gpu/mla.js';
import { createStorage, createStorageFrom, readBuffer, readF32 } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

describe.skipIf(!ctx)('mla_q_rope vs src/cpu/ops.ts rope (adjacent pairs)', () => {
  const g = ctx!;
  for (const [nHead, nope, nRot, R, n, pos0] of [[3, 12, 8, 48, 5, 0], [16, 128, 64, 512, 2, 700], [5, 7, 6, 10, 1, 33]] as const) {
    it(`${nHead} heads, q [${nope} | ${nRot}] → Q [${R} | ${nRot}], ${n} tokens at ${pos0}`, async () => {
      const rand = rng(nHead * 13 + nRot);
      const kHead = nope + nRot;
      const q = randomF32(rand, n * nHead * kHead, -2, 2);
      const qb = createStorageFrom(g, q);
      const pos = createStorageFrom(g, Uint32Array.from({ length: n }, (_, t) => pos0 + t));
      const KR = R + nRot;
      const out = createStorage(g, n * nHead * KR * 4);
      const l = await createMlaQRope(g, { q: qb, positions: pos, out, nHeads: nHead, nRot, qStride: nHead * kHead, qHeadStride: kHead, qRopeOffset: nope, outStride: nHead * KR, outHeadStride: KR, outOffset: R, base: 1e4, nTokens: n });
      runLaunches(g, [l]);
      await g.checkErrors();
      const got = await readF32(g, out, n * nHead * KR);
      for (let t = 0; t < n; t++) {
        const want = new Float32Array(nHead * nRot);
        for (let h = 0; h < nHead; h++) want.set(q.subarray((t * nHead + h) * kHead + nope, (t * nHead + h + 1) * kHead), h * nRot);
        rope(want, nHead, nRot, pos0 + t, { nRot, base: 1e4, style: 'norm' });
        for (let h = 0; h < nHead; h++) {
          const o = (t * nHead + h) * KR;
          expectClose(`token ${t} head ${h} rope part`, got.subarray(o + R, o + KR), want.subarray(h * nRot, (h + 1) * nRot), 3e-5, 3e-5);
          expect(got.subarray(o, o + R).every((v) => v === 0), 'the absorbed part is not touched').toBe(true);
        }
      }
      for (const b of [qb, pos, out]) g.destroyBuffer(b);
    });
  }
});

describe.skipIf(!ctx)('moe_route_general vs moeRouteGeneral', () => {
  const g = ctx!;
  const CASES: [string, RouteSpec & { gating: 'softmax' | 'sigmoid' | 'softmax_weight' }, number, number, boolean][] = [
    ['V3: sigmoid, bias, 8 groups of 32 (4 used), top-8, norm, scale 2.5', { gating: 'sigmoid', normalize: true, groups: 8, groupsUsed: 4, scale: 2.5 }, 256, 8, true],
    ['V2: softmax, no bias, no groups, top-6, no norm', { gating: 'softmax', normalize: false, groups: 0, groupsUsed: 0, scale: 1 }, 64, 6, false],
    ['odd: sigmoid, 7 groups of 3 (2 used), top-5, norm', { gating: 'sigmoid', normalize: true, groups: 7, groupsUsed: 2, scale: 1 }, 21, 5, true],
    ['softmax with groups: 4 of 10 (1 used), top-3, scale 16', { gating: 'softmax', normalize: false, groups: 4, groupsUsed: 1, scale: 16 }, 40, 3, false],
    ['gpt-oss: top-4 of the logits, softmax over the chosen', { gating: 'softmax_weight', normalize: false, groups: 0, groupsUsed: 0, scale: 1 }, 32, 4, false],
    ['gpt-oss-like, odd: top-3 of 13', { gating: 'softmax_weight', normalize: false, groups: 0, groupsUsed: 0, scale: 1 }, 13, 3, false],
  ];
  for (const [label, r, nExpert, k, withBias] of CASES) {
    it(label, async () => {
      const rand = rng(nExpert + k);
      const n = 9;
      const logits = randomF32(rand, n * nExpert, -4, 4);
      const bias = withBias ? randomF32(rand, nExpert, -0.2, 0.2) : null;
      const ids = createStorage(g, n * k * 4);
      const weights = createStorage(g, n * k * 4);
      const lb = createStorageFrom(g, logits);
      const bb = bias ? createStorageFrom(g, bias) : null;
      const l = await createMoeRouteGeneral(g, { logits: lb, ids, weights, selectionBias: bb, router: { ...r, selectionBias: withBias, logitBias: false }, nExpert, k, nTokens: n });
      runLaunches(g, [l]);
      await g.checkErrors();
      const gotIds = new Uint32Array(await readBuffer(g, ids, 0, n * k * 4));
      const gotW = await readF32(g, weights, n * k);
      for (let t = 0; t < n; t++) {
        const want = moeRouteGeneral(logits.subarray(t * nExpert, (t + 1) * nExpert), k, r, bias);
        expect(Array.from(gotIds.subarray(t * k, (t + 1) * k)), `token ${t} ids`).toEqual(Array.from(want.ids));
        expectClose(`token ${t} weights`, gotW.subarray(t * k, (t + 1) * k), want.weights, 1e-6, 1e-5);
      }
      for (const b of [ids, weights, lb, ...(bb ? [bb] : [])]) g.destroyBuffer(b);
    });
  }
});
