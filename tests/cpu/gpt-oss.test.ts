// gpt-oss beyond the golden test (tests/golden: the gpt-oss-mxfp4 fixture vs llama.cpp on the CPU):
// the config of the fixture (sliding-window layers, sinks, the router), what a file missing
// gpt-oss's tensors gets (the WebGPU backend: tests/gpu/gpt-oss.test.ts).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { moeRouteGeneral } from '../../src/cpu/ops.js';
import { ModelFormatError, loadModel } from '../../src/index.js';
import { fixturePath } from '../fixtures/make.js';
import { dropTensor, rewriteGGUF } from '../helpers/rewrite-gguf.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-gpt-oss-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('gpt-oss', () => {
  it('config: sliding window 8 on layers 0 and 2, sinks, biased experts with the clamped SwiGLU, softmax over the top-k logits', async () => {
    const model = await loadModel(await fixturePath('gpt-oss-mxfp4'), { backend: 'cpu', contextLength: 64 });
    try {
      const c = model.config;
      expect([c.attention.slidingWindow, c.attention.swaLayers, c.attention.sinks]).toEqual([8, [true, false, true], true]);
      expect([c.router.gating, c.router.logitBias, c.router.normalize, c.expertBiases, c.expertActivation, c.ffnNormName]).toEqual(['softmax_weight', true, false, true, 'swiglu_oai', 'post_attention_norm']);
      expect(c.attention.yarn.extFactor).toBe(1);
    } finally {
      await model.dispose();
    }
  });

  it('the router: top-k of the logits, weights = softmax over those k', () => {
    const z = Float32Array.from([0.5, 3, -1, 2.5, 1]);
    const r = moeRouteGeneral(z, 2, { gating: 'softmax_weight', normalize: false, groups: 0, groupsUsed: 0, scale: 1 }, null);
    expect(Array.from(r.ids)).toEqual([1, 3]);
    const e = [Math.exp(3 - 3), Math.exp(2.5 - 3)];
    expect(r.weights[0]).toBeCloseTo(e[0]! / (e[0]! + e[1]!), 6);
    expect(r.weights[1]).toBeCloseTo(e[1]! / (e[0]! + e[1]!), 6);
  });

  const without = async (name: string) => rewriteGGUF(await fixturePath('gpt-oss-mxfp4'), join(dir, `no-${name}.gguf`), (_md, t) => dropTensor(t, name));

  it('a file missing the sinks or an expert bias gets ModelFormatError naming it', async () => {
    for (const name of ['blk.1.attn_sinks.weight', 'blk.2.ffn_down_exps.bias', 'blk.0.post_attention_norm.weight']) {
      const path = await without(name);
      await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(ModelFormatError);
      await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(new RegExp(`${name.replace(/\./g, '\\.')} is missing`));
    }
  });
});
