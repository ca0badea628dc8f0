// Shared by the GPU forward-pass tests (forward.test.ts, qwen35-forward.test.ts): one model on the CPU
// reference and on WebGPU, a 7-token prompt (prefill) then 3 decode steps, compared intermediate by
// intermediate. Tolerances per shared/docs/matching-llamacpp.md: normalized MSE ≤ 5e-4 for the logits
// and every compared tensor, expert ids identical for ≥ 99% of (token, layer) pairs.
import { expect } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import type { BackendSequence } from '../../src/backend.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { loadCpuBackend, type CpuBackend } from '../../src/cpu/backend.js';
import type { OnTensor } from '../../src/cpu/forward.js';
import type { Qwen35CpuBackend } from '../../src/cpu/qwen35.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { fixturePath, type FixtureName } from '../fixtures/make.js';
import { nmse } from './helpers.js';

export const MAX_NMSE = 5e-4;

export type Tensors = Map<string, Float32Array | Int32Array>;
export const key = (name: string, layer: number) => `${name}@${layer}`;

/**
 * Loads a fixture on the CPU reference of its architecture and on WebGPU (on `ctx`), both with numerics
 * 'exact': the GPU multiplies in f32 like the CPU reference's 'exact' numerics, not with llama.cpp's
 * activation rounding.
 */
export async function openOnBoth(ctx: GPUContext, name: FixtureName): Promise<{ cfg: ModelConfig; cpu: CpuBackend | Qwen35CpuBackend; gpu: WebGPUBackend }> {
  const file = await openGGUF(await fixturePath(name));
  try {
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    const cpu = await loadCpuBackend(file, cfg, { numerics: 'exact' });
    const gpu = await WebGPUBackend.load(file, cfg, { context: ctx, numerics: 'exact' });
    return { cfg, cpu, gpu };
  } finally {
    await file.close();
  }
}

/** a backend whose sequences report their intermediates (the CPU references, WebGPU) */
interface ObservableBackend {
  createSequence(contextLength: number, opts: { onTensor: OnTensor }): BackendSequence;
}

export interface ForwardComparison {
  /** the GPU's intermediates of the last decode step */
  gpuT: Tensors;
  /** tensors compared by normalized MSE, and the worst of them */
  compared: number;
  worst: { nmse: number; at: string };
  /** (token, layer) pairs whose expert ids were compared, and those identical (0 without MoE) */
  idRows: number;
  idSame: number;
}

/**
 * Runs the prompt and decode steps on both backends and expects the logits and each of `names` (the
 * GPU's names; `cpuName` maps one to the CPU reference's name where they differ) within MAX_NMSE, for
 * every layer (and -1) where the CPU emits it; with `moe`, the expert ids (ffn_moe_topk) identical
 * for ≥ 99% of (token, layer) pairs.
 */
export async function compareForward(
  cfg: ModelConfig,
  cpu: ObservableBackend,
  gpu: ObservableBackend,
  names: string[],
  opts: { moe: boolean; cpuName?: (name: string, layer: number) => string },
): Promise<ForwardComparison> {
  let cpuT: Tensors = new Map();
  let gpuT: Tensors = new Map();
  const cs = cpu.createSequence(32, { onTensor: (n, l, d) => void cpuT.set(key(n, l), d) });
  const gs = gpu.createSequence(32, { onTensor: (n, l, d) => void gpuT.set(key(n, l), d) });
  const V = cfg.nVocab;
  const prompt = [3, 17, V - 1, 42, 5, 99 % V, 7];
  const steps = [[11], [V - 2], [0]];
  let worst = { nmse: 0, at: '' };
  let compared = 0;
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
        const c = cpuT.get(key(opts.cpuName ? opts.cpuName(n, il) : n, il));
        if (!c) continue;
        const g = gpuT.get(key(n, il));
        expect(g, `${phase}: the GPU pass emits ${n} of layer ${il}`).toBeDefined();
        expect(g!.length, `${phase}: ${n}@${il} length`).toBe(c.length);
        const e = nmse(g!, c);
        compared++;
        if (!(e <= worst.nmse)) worst = { nmse: e, at: `${phase} ${n}@${il}` };
        expect(e, `${phase}: ${n} of layer ${il}: normalized MSE`).toBeLessThanOrEqual(MAX_NMSE);
      }
    }
    if (opts.moe) {
      const K = cfg.nExpertUsed;
      for (let il = cfg.nLayerDenseLead; il < cfg.nLayer; il++) {
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
  if (opts.moe) {
    expect(idRows).toBe((prompt.length + steps.length) * (cfg.nLayer - cfg.nLayerDenseLead)); // deepseek2's leading layers are dense
    expect(idSame / idRows, 'expert ids identical per (token, layer)').toBeGreaterThanOrEqual(0.99);
  }
  cs.dispose();
  gs.dispose();
  return { gpuT, compared, worst, idRows, idSame };
}
