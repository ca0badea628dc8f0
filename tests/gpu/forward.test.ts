// The GPU forward pass (src/arch/) against the CPU reference (src/cpu/forward.ts), intermediate by
// intermediate, on every qwen3moe / qwen3 fixture: a 7-token prompt (prefill path: matmuls, tiled
// attention, grouped expert matmuls) and then 3 decode steps (matvecs, flash-decoding, expert
// matvecs). Tolerances per shared/docs/matching-llamacpp.md: normalized MSE ≤ 5e-4 for every
// product-derived tensor, expert ids identical for ≥ 99% of (token, layer) pairs.
import { afterAll, describe, expect, it } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { FIXTURES, fixturePath, fixtureSpec, type FixtureName } from '../fixtures/make.js';
import { nmse, openTestGPU } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** the architectures the GPU forward pass runs */
const GPU_FIXTURES = FIXTURES.filter((f) => ['qwen3moe', 'qwen3'].includes(fixtureSpec(f).arch));

/** tensors compared by normalized MSE (names as src/cpu/forward.ts) */
const COMMON = ['inp_embd', 'attn_norm', 'Vcur', 'Qcur_rope', 'Kcur_rope', 'kqv_out', 'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_out', 'l_out', 'result_norm', 'result_output'];
const MOE = ['ffn_moe_logits', 'ffn_moe_weights_norm'];
const DENSE = ['ffn_gate', 'ffn_up', 'ffn_swiglu'];
const MAX_NMSE = 5e-4;

type Tensors = Map<string, Float32Array | Int32Array>;
const key = (name: string, layer: number) => `${name}@${layer}`;

/** loads a fixture on both backends; the WebGPU one on the shared debug context */
async function open(name: FixtureName): Promise<{ cfg: ModelConfig; cpu: CpuBackend; gpu: WebGPUBackend }> {
  const file = await openGGUF(await fixturePath(name));
  try {
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    // the GPU multiplies in f32 like the CPU reference's 'exact' numerics (not llama.cpp's activation rounding)
    const cpu = await CpuBackend.load(file, cfg, { numerics: 'exact' });
    const gpu = await WebGPUBackend.load(file, cfg, { context: ctx!, numerics: 'exact' }); // as the CPU reference
    return { cfg, cpu, gpu };
  } finally {
    await file.close();
  }
}

describe.skipIf(!ctx)('GPU forward pass vs the CPU reference, per intermediate', () => {
  for (const name of GPU_FIXTURES) {
    it(`${name}: prefill of 7 tokens, then 3 decode steps`, async () => {
      const { cfg, cpu, gpu } = await open(name);
      try {
        let cpuT: Tensors = new Map();
        let gpuT: Tensors = new Map();
        const cs = cpu.createSequence(32, { onTensor: (n, l, d) => void cpuT.set(key(n, l), d) });
        const gs = gpu.createSequence(32, { onTensor: (n, l, d) => void gpuT.set(key(n, l), d) });
        const V = cfg.nVocab;
        const prompt = [3, 17, V - 1, 42, 5, 99 % V, 7];
        const steps = [[11], [V - 2], [0]];
        const names = [...COMMON, ...(cfg.arch === 'qwen3moe' ? MOE : DENSE)];
        let worst = { nmse: 0, at: '' };
        let idRows = 0;
        let idSame = 0;
        for (const [phase, tokens] of [['prefill', prompt], ...steps.map((s, i) => [`decode ${i}`, s] as const)] as const) {
          cpuT = new Map();
          gpuT = new Map();
          const cl = await cs.eval([...tokens]);
          const gl = await gs.eval([...tokens]);
          expect(nmse(gl, cl), `${phase}: logits`).toBeLessThanOrEqual(MAX_NMSE);
          for (const n of names) {
            for (let il = -1; il < cfg.nLayer; il++) {
              const c = cpuT.get(key(n, il));
              if (!c) continue;
              const g = gpuT.get(key(n, il));
              expect(g, `${phase}: the GPU pass emits ${n} of layer ${il}`).toBeDefined();
              expect(g!.length, `${phase}: ${n}@${il} length`).toBe(c.length);
              const e = nmse(g!, c);
              if (!(e <= worst.nmse)) worst = { nmse: e, at: `${phase} ${n}@${il}` };
              expect(e, `${phase}: ${n} of layer ${il}: normalized MSE`).toBeLessThanOrEqual(MAX_NMSE);
            }
          }
          if (cfg.arch === 'qwen3moe') {
            const K = cfg.nExpertUsed;
            for (let il = 0; il < cfg.nLayer; il++) {
              const c = cpuT.get(key('ffn_moe_topk', il)) as Int32Array;
              const g = gpuT.get(key('ffn_moe_topk', il)) as Int32Array;
              expect(g, `${phase}: ffn_moe_topk@${il}`).toBeInstanceOf(Int32Array);
              expect(g.length).toBe(c.length);
              for (let t = 0; t < c.length / K; t++) {
                idRows++;
                if (c.subarray(t * K, (t + 1) * K).every((e, j) => e === g[t * K + j])) idSame++;
              }
            }
          }
        }
        if (cfg.arch === 'qwen3moe') {
          expect(idRows).toBe((prompt.length + steps.length) * cfg.nLayer);
          expect(idSame / idRows, 'expert ids identical per (token, layer)').toBeGreaterThanOrEqual(0.99);
        }
        console.log(`${name}: worst normalized MSE ${worst.nmse.toExponential(2)} (${worst.at})` +
          (idRows ? `; expert ids identical ${idSame}/${idRows}` : ''));
        cs.dispose();
        gs.dispose();
      } finally {
        await gpu.dispose();
        await cpu.dispose();
      }
    });
  }
});
