// deepseek2 beyond the golden tests (tests/golden: both deepseek2 fixtures vs llama.cpp): DeepSeek's
// router (sigmoid gating, the exp_probs_b selection bias, group-limited top-k, renormalization and
// scale) against a plain re-derivation, and the group restriction seen in a routing trace of the
// V3-shaped fixture; the config of MLA files; malformed MLA files.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { moeRouteGeneral, type RouteSpec } from '../../src/cpu/ops.js';
import { ModelFormatError, UnsupportedArchitectureError, loadModel, routingStats } from '../../src/index.js';
import { fixturePath } from '../fixtures/make.js';
import { openTestGPU } from '../gpu/helpers.js';
import { mulberry32 } from '../helpers/random.js';
import { dropTensor, rewriteGGUF, type GGUFEdit } from '../helpers/rewrite-gguf.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-deepseek2-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const sig = (x: number) => 1 / (1 + Math.exp(-x));

describe("DeepSeek's router (moeRouteGeneral)", () => {
  const V3: RouteSpec = { gating: 'sigmoid', normalize: true, groups: 4, groupsUsed: 2, scale: 2.5 };

  it('sigmoid probabilities; the bias changes the selection, not the weights; weights renormalized and scaled', () => {
    const z = Float32Array.from([0.1, 2, -1, 0.5, 1.9, 0, -2, 0.3]);
    const noBias = moeRouteGeneral(z, 2, { ...V3, groups: 0, groupsUsed: 0 }, null);
    expect(Array.from(noBias.ids)).toEqual([1, 4]);
    // a bias that lifts expert 3 above expert 4 for the selection only
    const bias = new Float32Array(8);
    bias[3] = 0.5;
    const r = moeRouteGeneral(z, 2, { ...V3, groups: 0, groupsUsed: 0 }, bias);
    expect(Array.from(r.ids)).toEqual([3, 1]);
    expect(r.probs[3]).toBeCloseTo(sig(0.5), 6); // unbiased
    const sum = sig(0.5) + sig(2);
    expect(r.weights[0]).toBeCloseTo((sig(0.5) / sum) * 2.5, 5);
    expect(r.weights[1]).toBeCloseTo((sig(2) / sum) * 2.5, 5);
  });

  it('group-limited: only experts of the groupsUsed groups whose two best sum highest', () => {
    const rand = mulberry32(7);
    for (let trial = 0; trial < 200; trial++) {
      const z = Float32Array.from({ length: 12 }, () => rand() * 4 - 2);
      const bias = Float32Array.from({ length: 12 }, () => rand() * 0.2 - 0.1);
      const r = moeRouteGeneral(z, 3, V3, bias);
      const s = Array.from(z, (v, i) => Math.fround(Math.fround(sig(v)) + bias[i]!));
      const score = [0, 1, 2, 3].map((g) => s.slice(3 * g, 3 * g + 3).sort((a, b) => b - a).slice(0, 2).reduce((a, b) => a + b, 0));
      const groups = [0, 1, 2, 3].sort((a, b) => score[b]! - score[a]! || a - b).slice(0, 2);
      const eligible = s.map((v, i) => (groups.includes(Math.floor(i / 3)) ? v : -Infinity));
      const want = eligible.map((_, i) => i).sort((a, b) => eligible[b]! - eligible[a]! || a - b).slice(0, 3);
      expect(Array.from(r.ids)).toEqual(want);
    }
  });

  it('without groups the same scores can pick from more groups (the restriction is real)', () => {
    // group 0 has one very good expert, group 1 two good ones, groups 2 and 3 nothing: with 1 group
    // used, the two-best score keeps group 1 and drops the single best expert
    const z = Float32Array.from([3, -3, -3, 2, 2, -3, -3, -3, -3, -3, -3, -3]);
    const grouped = moeRouteGeneral(z, 2, { ...V3, groupsUsed: 1 }, null);
    const plain = moeRouteGeneral(z, 2, { ...V3, groups: 0, groupsUsed: 0 }, null);
    expect(Array.from(grouped.ids)).toEqual([3, 4]);
    expect(Array.from(plain.ids)).toEqual([0, 3]);
  });
});

const gpuAvailable = await (async () => {
  const gpu = await openTestGPU();
  await gpu?.dispose();
  return !!gpu;
})();

describe('deepseek2 files', () => {
  const probsOf: Partial<Record<'cpu' | 'webgpu', Float32Array>> = {};
  for (const backend of ['cpu', 'webgpu'] as const) {
  it.skipIf(backend === 'webgpu' && !gpuAvailable)(`${backend}: MLA config of the V3-shaped fixture; the routing trace never leaves the chosen groups`, async () => {
    const model = await loadModel(await fixturePath('deepseek2-v3-f32'), { backend, contextLength: 64 });
    try {
      const c = model.config;
      expect(c.mla).toEqual({ qLoraRank: 40, kvLoraRank: 48, qkNope: 12, qkRope: 8, vHead: 14 });
      expect([c.headDimK, c.headDimV, c.nHeadKv, c.nLayerDenseLead, c.nFfShexp, c.sharedExpertGated]).toEqual([56, 48, 1, 1, 30, false]);
      expect(c.router).toEqual({ gating: 'sigmoid', logitBias: false, normalize: true, selectionBias: true, groups: 4, groupsUsed: 2, scale: 2.5 });
      const s = model.createSession();
      const prompt = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % c.nVocab);
      await s.eval(prompt, { trace: { routing: true } });
      const t = s.lastTrace!;
      const k = c.nExpertUsed;
      let rows = 0;
      for (let r = 0; r < prompt.length; r++) {
        for (let l = c.nLayerDenseLead; l < c.nLayer; l++) {
          const ids = Array.from(t.ids.subarray((r * c.nLayer + l) * k, (r * c.nLayer + l + 1) * k));
          expect(new Set(ids.map((e) => Math.floor(e / 3))).size).toBeLessThanOrEqual(2);
          let sum = 0;
          for (let j = 0; j < k; j++) sum += t.weights[(r * c.nLayer + l) * k + j]!;
          expect(sum).toBeCloseTo(2.5, 4); // renormalized, then scaled
          rows++;
        }
      }
      expect(rows).toBe(prompt.length * 2);
      // statistics: the leading dense layer is marked, a sigmoid router's entropy is normalized (≤ 1)
      await s.eval([3, 4, 5], { trace: { routing: true, probs: true } });
      const st = routingStats(s.lastTrace!);
      expect(st.layers.map((L) => L.dense)).toEqual([true, false, false]);
      expect(st.layers[1]!.top1Change).toBeNull();
      for (const L of st.layers.slice(1)) expect(L.entropyNormalized).toBeLessThanOrEqual(1);
      // a sigmoid router's probabilities are σ(logit) per expert (they need not sum to 1)
      const probs = s.lastTrace!.probs!;
      const row = probs.subarray(1 * c.nExpert, 2 * c.nExpert); // token 0, layer 1
      expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeGreaterThan(0.1);
      probsOf[backend] = Float32Array.from(probs);
    } finally {
      await model.dispose();
    }
  });
  }

  it.skipIf(!gpuAvailable)('the WebGPU trace records the same (sigmoid) probabilities as the CPU trace', () => {
    const [c, g] = [probsOf.cpu!, probsOf.webgpu!];
    expect(g).toHaveLength(c.length);
    for (let i = 0; i < c.length; i++) expect(Math.abs(g[i]! - c[i]!), `prob ${i}`).toBeLessThan(1e-4);
  });

  const rewrite = (src: string, name: string, edit: GGUFEdit) => rewriteGGUF(src, join(dir, name), edit);

  it('a deepseek2 file missing an MLA tensor gets ModelFormatError naming it', async () => {
    const path = await rewrite(await fixturePath('deepseek2-lite-q8_0'), 'no-kb.gguf', (_md, t) => dropTensor(t, 'blk.2.attn_k_b.weight'));
    await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(ModelFormatError);
    await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(/blk\.2\.attn_k_b\.weight is missing/);
  });

  it('an older conversion without key_length_mla (attn_kv_b) is refused with what to do', async () => {
    const path = await rewrite(await fixturePath('deepseek2-lite-q8_0'), 'legacy.gguf', (md, t) => {
      md.delete('deepseek2.attention.key_length_mla');
      md.delete('deepseek2.attention.value_length_mla');
      const i = t.findIndex((x) => x.name === 'blk.0.attn_k_b.weight');
      t[i] = { ...t[i]!, name: 'blk.0.attn_kv_b.weight' };
    });
    await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(UnsupportedArchitectureError);
    await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(/re-convert it/);
  });
});
