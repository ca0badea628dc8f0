// gpt-oss on the WebGPU backend beyond the golden test (tests/golden: vs llama.cpp) and the
// per-intermediate comparison (tests/gpu/forward.test.ts): a prompt longer than the fixture's sliding
// window (8), prefilled in batches of 5 (so a batch's window reaches back into the previous batch's
// keys), then decode steps: logits against the CPU backend (numerics 'exact'), and the routing trace
// (softmax over the top-k logits + the router's bias) the same experts at every (token, layer).
// Skips locally without an adapter, fails in CI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGGUF, type GGUFFile } from '../../gguf/reader.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { RoutingTraceRecorder } from '../../src/trace/recorder.js';
import { fixturePath } from '../fixtures/make.js';
import { openTestGPU } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

describe.skipIf(!ctx)('gpt-oss on WebGPU vs the CPU backend', () => {
  let file: GGUFFile;
  let cfg: ModelConfig;
  let cpu: CpuBackend;
  let gpu: WebGPUBackend;

  beforeAll(async () => {
    file = await openGGUF(await fixturePath('gpt-oss-mxfp4'));
    cfg = configFromGGUF(file.metadata, file.tensorByName);
    cpu = (await CpuBackend.load(file, cfg, { numerics: 'exact' })) as CpuBackend;
    gpu = await WebGPUBackend.load(file, cfg, { context: ctx!, numerics: 'exact' });
  });
  afterAll(async () => {
    await gpu?.dispose();
    await cpu?.dispose();
    await file?.close();
  });

  const prompt = Array.from({ length: 19 }, (_, i) => 3 + ((i * 37) % 200));
  const steps = [11, 150, 42, 7];

  it('the fixture slides: window 8 on layers 0 and 2, sinks', () => {
    expect(cfg.attention.slidingWindow).toBe(8);
    expect(cfg.attention.swaLayers).toEqual([true, false, true]);
    expect(cfg.attention.sinks).toBe(true);
    expect(prompt.length).toBeGreaterThan(2 * cfg.attention.slidingWindow);
  });

  it('logits within 1e-3 of the CPU backend (prefill in batches of 5, then 4 decode steps), the same experts and router probabilities', async () => {
    const shape = { nLayer: cfg.nLayer, k: cfg.nExpertUsed, nExpert: cfg.nExpert };
    const run = async (seq: { eval(t: number[], o?: object): Promise<Float32Array> }) => {
      const rec = new RoutingTraceRecorder(shape, true);
      const logits = [Float32Array.from(await seq.eval(prompt, { trace: rec }))];
      for (const t of steps) logits.push(Float32Array.from(await seq.eval([t], { trace: rec })));
      return { logits, ids: rec.trace().ids, probs: rec.trace().probs! };
    };
    const c = await run(cpu.createSequence(64));
    const g = await run(gpu.createSequence(64, { ubatch: 5 }));
    expect(g.logits).toHaveLength(c.logits.length);
    for (let i = 0; i < c.logits.length; i++) {
      let worst = 0;
      for (let j = 0; j < c.logits[i]!.length; j++) worst = Math.max(worst, Math.abs(g.logits[i]![j]! - c.logits[i]![j]!));
      expect(worst, `step ${i}`).toBeLessThan(1e-3);
    }
    expect(Array.from(g.ids)).toEqual(Array.from(c.ids));
    // the trace's probabilities: the softmax of the (biased) router logits on both
    expect(g.probs).toHaveLength(c.probs.length);
    for (let i = 0; i < c.probs.length; i++) expect(Math.abs(g.probs[i]! - c.probs[i]!), `prob ${i}`).toBeLessThan(1e-4);
    const row = c.probs.subarray(0, cfg.nExpert);
    expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });
});
