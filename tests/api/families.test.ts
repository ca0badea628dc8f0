// The transformer-family architectures through the public API, beyond the golden tests
// (tests/golden: every fixture against llama.cpp): Mixtral's older per-expert tensor layout loads on
// both backends and gives the same logits bit for bit as the stacked layout; routing traces of the
// new MoE families on both backends; and what a malformed file of each family gets.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import { ModelFormatError, UnsupportedArchitectureError, loadModel } from '../../src/index.js';
import { fixturePath } from '../fixtures/make.js';
import { openTestGPU } from '../gpu/helpers.js';
import { dropTensor, rewriteGGUF, type GGUFEdit } from '../helpers/rewrite-gguf.js';

const gpu = await openTestGPU();
afterAll(async () => gpu?.dispose());
const BACKENDS = gpu ? (['cpu', 'webgpu'] as const) : (['cpu'] as const);
const PROMPT = [1, 17, 42, 99, 5, 230, 8];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-families-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const rewrite = (src: string, name: string, edit: GGUFEdit) => rewriteGGUF(src, join(dir, name), edit);

describe("Mixtral's per-expert tensors (blk.N.ffn_gate.E.weight)", () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] load as one expert stack: the same logits, bit for bit, as the stacked file`, async () => {
      const stacked = await fixturePath('mixtral-q8_0');
      const perExpert = await fixturePath('mixtral-q8_0', 'per-expert');
      const f = await openGGUF(perExpert);
      const names = f.tensors.map((t) => t.name);
      await f.close();
      expect(names).toContain('blk.0.ffn_gate.7.weight');
      expect(names.some((n) => n.includes('_exps'))).toBe(false);
      const logits: Float32Array[] = [];
      for (const path of [stacked, perExpert]) {
        const model = await loadModel(path, { backend, contextLength: 64 });
        try {
          expect(model.config.perExpertTensors).toBe(path === perExpert);
          logits.push(await model.createSession().eval(PROMPT));
        } finally {
          await model.dispose();
        }
      }
      expect(Buffer.from(logits[1]!.buffer).equals(Buffer.from(logits[0]!.buffer))).toBe(true);
    });
  }
});

describe('routing traces of the new MoE families', () => {
  for (const name of ['mixtral-q8_0', 'olmoe-q8_0', 'qwen2moe-q4_k_m'] as const) {
    it(`${name}: the same expert ids on both backends, weights renormalized only for Mixtral`, async () => {
      const path = await fixturePath(name);
      const traces = [];
      for (const backend of BACKENDS) {
        const model = await loadModel(path, { backend, contextLength: 64 });
        try {
          const s = model.createSession();
          await s.eval(PROMPT, { trace: { routing: true } });
          const t = s.lastTrace!;
          expect(t.tokens).toEqual(PROMPT);
          traces.push({ t, k: model.config.nExpertUsed, nLayer: model.config.nLayer });
        } finally {
          await model.dispose();
        }
      }
      const { t, k, nLayer } = traces[0]!;
      // Mixtral (llama) renormalizes the top-k; olmoe and qwen2moe keep the raw probabilities (sum < 1)
      for (let r = 0; r < PROMPT.length * nLayer; r++) {
        let sum = 0;
        for (let j = 0; j < k; j++) sum += t.weights[r * k + j]!;
        if (name === 'mixtral-q8_0') expect(sum).toBeCloseTo(1, 5);
        else expect(sum).toBeLessThan(0.999);
      }
      if (traces[1]) expect(Array.from(traces[1].t.ids)).toEqual(Array.from(t.ids));
    });
  }
});

describe('malformed files of the new families', () => {
  it('a llama file without a layer tensor: ModelFormatError naming it, on both backends', async () => {
    const path = await rewrite(await fixturePath('llama-q4_k_m'), 'llama-no-wk.gguf', (_md, t) => dropTensor(t, 'blk.1.attn_k.weight'));
    for (const backend of BACKENDS) {
      await expect(loadModel(path, { backend })).rejects.toThrow(ModelFormatError);
      await expect(loadModel(path, { backend })).rejects.toThrow(/blk\.1\.attn_k\.weight is missing/);
    }
  });

  it('olmoe without output.weight (it has no tied embeddings): ModelFormatError', async () => {
    const path = await rewrite(await fixturePath('olmoe-q8_0'), 'olmoe-untied.gguf', (_md, t) => dropTensor(t, 'output.weight'));
    await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(/output\.weight is missing/);
  });

  it('olmoe with per-head Q/K norms (Qwen3 shapes): ModelFormatError with the expected full-width shape', async () => {
    const path = await rewrite(await fixturePath('olmoe-q8_0'), 'olmoe-headnorm.gguf', (_md, t) => {
      const i = t.findIndex((x) => x.name === 'blk.0.attn_q_norm.weight');
      t[i] = { ...t[i]!, shape: [24], data: () => new Uint8Array(24 * 4) };
    });
    await expect(loadModel(path, { backend: 'cpu' })).rejects.toThrow(/blk\.0\.attn_q_norm\.weight has shape \[24\], expected \[96\]/);
  });

  it('qwen2moe without the shared expert gate, and a Mixtral with one expert matrix missing', async () => {
    const q2 = await rewrite(await fixturePath('qwen2moe-q4_k_m'), 'qwen2moe-noshexp.gguf', (_md, t) => dropTensor(t, 'blk.2.ffn_gate_inp_shexp.weight'));
    await expect(loadModel(q2, { backend: 'cpu' })).rejects.toThrow(/blk\.2\.ffn_gate_inp_shexp\.weight is missing/);
    const mx = await rewrite(await fixturePath('mixtral-q8_0', 'per-expert'), 'mixtral-missing-expert.gguf', (_md, t) => dropTensor(t, 'blk.1.ffn_up.5.weight'));
    for (const backend of BACKENDS) await expect(loadModel(mx, { backend })).rejects.toThrow(/blk\.1\.ffn_up\.5\.weight is missing/);
  });

  it('an architecture moet does not run, and a family missing a required key: UnsupportedArchitectureError', async () => {
    const src = await fixturePath('llama-f32');
    const other = await rewrite(src, 'gemma.gguf', (md) => {
      md.get('general.architecture')!.value = 'gemma3';
    });
    await expect(loadModel(other, { backend: 'cpu' })).rejects.toThrow(UnsupportedArchitectureError);
    await expect(loadModel(other, { backend: 'cpu' })).rejects.toThrow(/"gemma3" is not supported; supported architectures: .*llama, olmoe, qwen2moe/);
    const noEps = await rewrite(await fixturePath('qwen2moe-q4_k_m'), 'qwen2moe-noeps.gguf', (md) => {
      md.delete('qwen2moe.attention.layer_norm_rms_epsilon');
    });
    await expect(loadModel(noEps, { backend: 'cpu' })).rejects.toThrow(/qwen2moe\.attention\.layer_norm_rms_epsilon is missing/);
  });
});
