// Routing traces of the WebGPU backend (written by the GPU: moe_trace.wgsl after each router) against
// the CPU backend's, on the qwen3moe-q8_0 fixture: prefill in several batches, then decode steps.
// Expert ids must be identical except where the router is at a near-tie (the k-th and (k+1)-th
// probabilities, or two chosen experts, closer than 1e-4), weights and probabilities within
// tolerance. Also: tracing changes no logits, adds exactly one copy dispatch per layer and batch,
// and nothing without a trace. Skips locally without an adapter, fails in CI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGGUF, type GGUFFile } from '../../gguf/reader.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { RoutingTraceRecorder } from '../../src/trace/recorder.js';
import type { RoutingTrace } from '../../src/trace/types.js';
import { fixturePath } from '../fixtures/make.js';
import { openTestGPU } from '../gpu/helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

const NEAR_TIE = 1e-4;

describe.skipIf(!ctx)('routing traces: WebGPU vs CPU', () => {
  let file: GGUFFile;
  let cfg: ModelConfig;
  let cpu: CpuBackend;
  let gpu: WebGPUBackend;
  const shape = () => ({ nLayer: cfg.nLayer, k: cfg.nExpertUsed, nExpert: cfg.nExpert });

  beforeAll(async () => {
    file = await openGGUF(await fixturePath('qwen3moe-q8_0'));
    cfg = configFromGGUF(file.metadata, file.tensorByName);
    cpu = (await CpuBackend.load(file, cfg, { numerics: 'exact' })) as CpuBackend; // the GPU multiplies exactly
    gpu = await WebGPUBackend.load(file, cfg, { context: ctx!, numerics: 'exact' });
  });
  afterAll(async () => {
    await gpu?.dispose();
    await cpu?.dispose();
    await file?.close();
  });

  /** prompt (20 tokens) then 3 single-token steps, each traced into its own recorder */
  const prompt = Array.from({ length: 20 }, (_, i) => 5 + ((i * 41) % 300));
  const steps = [17, 250, 3];

  async function traces(seq: { eval(t: number[], o?: object): Promise<Float32Array> }): Promise<{ trace: RoutingTrace; logits: Float32Array[] }> {
    const rec = new RoutingTraceRecorder(shape(), true);
    const logits = [await seq.eval(prompt, { trace: rec })];
    for (const t of steps) logits.push(await seq.eval([t], { trace: rec }));
    return { trace: rec.trace(), logits };
  }

  it('ids agree except at near-ties; weights and probs within tolerance', async () => {
    const c = await traces(cpu.createSequence(64));
    const g = await traces(gpu.createSequence(64, { ubatch: 8 })); // prefill in batches of 8, 8, 4
    const { nLayer, k, nExpert } = c.trace;
    const n = prompt.length + steps.length;
    expect(g.trace.tokens).toEqual(c.trace.tokens);
    expect(g.trace.start).toBe(0);
    expect(g.trace.ids).toHaveLength(n * nLayer * k);
    expect(g.trace.probs).toHaveLength(n * nLayer * nExpert);
    let compared = 0;
    let skipped = 0;
    let maxW = 0;
    let maxP = 0;
    for (let t = 0; t < n; t++) {
      for (let l = 0; l < nLayer; l++) {
        const p = c.trace.probs!.subarray((t * nLayer + l) * nExpert, (t * nLayer + l + 1) * nExpert);
        const sorted = Array.from(p).sort((a, b) => b - a);
        const tie = sorted.slice(0, k).some((v, j) => v - sorted[j + 1]! < NEAR_TIE);
        const gp = g.trace.probs!.subarray((t * nLayer + l) * nExpert, (t * nLayer + l + 1) * nExpert);
        for (let e = 0; e < nExpert; e++) maxP = Math.max(maxP, Math.abs(gp[e]! - p[e]!));
        if (tie) {
          skipped++;
          continue;
        }
        compared++;
        const o = (t * nLayer + l) * k;
        expect(Array.from(g.trace.ids.subarray(o, o + k)), `token ${t} layer ${l}`).toEqual(Array.from(c.trace.ids.subarray(o, o + k)));
        for (let j = 0; j < k; j++) maxW = Math.max(maxW, Math.abs(g.trace.weights[o + j]! - c.trace.weights[o + j]!));
      }
    }
    expect(compared).toBeGreaterThan(0.9 * n * nLayer);
    expect(skipped).toBeLessThan(0.1 * n * nLayer);
    expect(maxW).toBeLessThan(1e-3);
    expect(maxP).toBeLessThan(1e-3);
  });

  it('tracing changes no logits; one copy dispatch per layer and batch, none without a trace', async () => {
    const a = gpu.createSequence(64, { ubatch: 8 });
    const b = gpu.createSequence(64, { ubatch: 8 });
    const la = await a.eval(prompt, { trace: new RoutingTraceRecorder(shape(), false) });
    const traced = a.stats.last.dispatches;
    const lb = await b.eval(prompt);
    const plain = b.stats.last.dispatches;
    expect(Array.from(la)).toEqual(Array.from(lb));
    expect(traced - plain).toBe(cfg.nLayer * Math.ceil(prompt.length / 8));
    // decode: with, then without
    const sa = await a.eval([9], { trace: new RoutingTraceRecorder(shape(), true) });
    const tracedDecode = a.stats.last.dispatches;
    const sb = await b.eval([9]);
    expect(Array.from(sa)).toEqual(Array.from(sb));
    expect(tracedDecode - b.stats.last.dispatches).toBe(cfg.nLayer);
    await a.eval([10]);
    expect(a.stats.last.dispatches).toBe(b.stats.last.dispatches);
    // evalTopK (GPU candidate selection) traces too
    const rec = new RoutingTraceRecorder(shape(), false);
    const top = await a.evalTopK([11], 4, { trace: rec });
    expect(top.ids).toHaveLength(4);
    expect(rec.trace().tokens).toEqual([11]);
    expect(rec.trace().start).toBe(prompt.length + 2);
    a.dispose();
    b.dispose();
  });
});
