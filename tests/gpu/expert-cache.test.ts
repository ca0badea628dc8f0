// Experts for GPUs smaller than the model (src/gpu/expert-cache.ts, src/arch/expert-offload.ts): a
// fixture forced to a budget of a few experts per layer gives the logits of the all-resident pass
// bit for bit over a prefill and several decode steps (prefills that need more experts than slots
// run in passes); the budget's minimum and its typed error; a model that fits loads as without a
// budget (no cache, the same dispatches, no readback); statistics.
import { afterAll, describe, expect, it } from 'vitest';
import { openGGUF, type GGUFFile } from '../../gguf/reader.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { GpuMemoryBudgetError, UnsupportedArchitectureError } from '../../src/errors.js';
import { WebGPUBackend, type WebGPULoadOptions } from '../../src/gpu/backend.js';
import { planExpertBudget, slotsBudget } from '../../src/gpu/expert-cache.js';
import { fixturePath, type FixtureName, type FixtureVariant } from '../fixtures/make.js';
import { openTestGPU, randomF32, rng } from './helpers.js';
import { rewriteGGUF } from '../helpers/rewrite-gguf.js';
import { quantize } from '../../gguf/quants.js';
import { GGMLType } from '../../gguf/types.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let tmpDir: string | undefined;
async function tmp(): Promise<string> {
  return (tmpDir ??= await mkdtemp(join(tmpdir(), 'moet-experts-')));
}
afterAll(async () => {
  if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
});

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

const files: GGUFFile[] = [];
afterAll(async () => {
  for (const f of files) await f.close();
});

async function open(name: FixtureName, variant: FixtureVariant = 'quantized'): Promise<{ file: GGUFFile; cfg: ModelConfig }> {
  const file = await openGGUF(await fixturePath(name, variant));
  files.push(file);
  return { file, cfg: configFromGGUF(file.metadata, file.tensorByName) };
}

/** The bits of a float array, for exact comparison with a readable first difference. */
function expectSameBits(label: string, a: Float32Array, b: Float32Array): void {
  expect(a.length, `${label}: length`).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) expect.fail(`${label}: element ${i} differs: ${a[i]} vs ${b[i]} (resident)`);
  }
}

/** Logits of a prefill of `prompt` and then `steps` decode steps (greedy on the resident logits). */
async function run(be: WebGPUBackend, prompt: number[], steps: number, ubatch?: number): Promise<Float32Array[]> {
  const seq = be.createSequence(64, ubatch ? { ubatch } : {});
  try {
    const out = [await seq.eval(prompt, { allLogits: true })];
    for (let i = 0; i < steps; i++) {
      const last = out[out.length - 1]!;
      const V = be.config.nVocab;
      const tail = last.subarray(last.length - V);
      let best = 0;
      for (let v = 1; v < V; v++) if (tail[v]! > tail[best]!) best = v;
      out.push(await seq.eval([(best * 7 + i) % V]));
    }
    return out;
  } finally {
    seq.dispose();
  }
}

const PROMPT = [5, 77, 3, 140, 9, 9, 250, 1, 64, 33, 12, 90, 41];

describe.skipIf(!ctx)('experts in host memory, GPU slots', () => {
  const cases: { name: FixtureName; variant?: FixtureVariant; slots: (c: ModelConfig) => number; opts?: WebGPULoadOptions; ubatch?: number; why: string }[] = [
    { name: 'qwen3moe-q8_0', slots: (c) => c.nExpertUsed, why: 'k slots: every prefill ubatch runs in passes' },
    { name: 'qwen3moe-q8_0', slots: (c) => c.nExpertUsed + 2, opts: { maxPartBytes: 40_000 }, ubatch: 4, why: 'k + 2 slots split over several parts, ubatch 4' },
    { name: 'mixtral-q8_0', variant: 'per-expert', slots: (c) => c.nExpertUsed + 1, why: "Mixtral's per-expert tensors" },
    { name: 'qwen3moe-f32', slots: (c) => c.nExpertUsed + 1, opts: { numerics: 'exact' }, why: "F32 experts, numerics 'exact'" },
    { name: 'qwen35moe-q8_0', slots: (c) => c.nExpertUsed + 1, why: 'the qwen35moe hybrid (DeltaNet layers, shared expert)' },
    { name: 'deepseek2-lite-q8_0', slots: (c) => c.nExpertUsed, why: 'deepseek2: a dense leading layer, shared experts, moe_route_general' },
  ];
  for (const c of cases) {
    it(`${c.name}${c.variant ? ` (${c.variant})` : ''}: ${c.why} — logits bit-identical to the resident pass`, async () => {
      const { file, cfg } = await open(c.name, c.variant);
      const S = c.slots(cfg);
      const full = await WebGPUBackend.load(file, cfg, { context: ctx!, ...c.opts });
      const cached = await WebGPUBackend.load(file, cfg, { context: ctx!, ...c.opts, gpuMemoryBudget: slotsBudget(cfg, file.tensorByName, S) });
      try {
        expect(full.expertCache).toBeNull();
        const cache = cached.expertCache!;
        expect(cache.stats.slots).toBe(S);
        expect(cached.weightBytes).toBeLessThan(full.weightBytes);
        expect(cached.weightBytes).toBeLessThanOrEqual(cache.budget.budget);
        const prompt = PROMPT.map((t) => t % cfg.nVocab);
        const a = await run(full, prompt, 5, c.ubatch);
        const b = await run(cached, prompt, 5, c.ubatch);
        a.forEach((x, i) => expectSameBits(i === 0 ? 'prefill' : `decode step ${i}`, b[i]!, x));
        const st = cache.stats;
        expect(st.tokens).toBe(prompt.length + 5);
        expect(st.misses).toBeGreaterThan(0);
        expect(st.perLayer).toHaveLength(cfg.nLayer - cfg.nLayerDenseLead);
        expect(st.uploadBytes).toBeGreaterThan(0);
        if (S === cfg.nExpertUsed) expect(st.passes).toBeGreaterThan(st.batches * st.perLayer.length); // some batches ran in passes
        console.log(`${c.name}: ${S}/${cfg.nExpert} slots, hit rate ${st.hitRate.toFixed(3)}, ${st.passes} passes over ${st.batches} batches, ${(st.uploadBytesPerToken / 1024).toFixed(1)} KiB uploaded per token`);
      } finally {
        await cached.dispose();
        await full.dispose();
      }
    });
  }

  it('experts whose bytes are not a multiple of 4 (Q8_0 gate/up of 33 rows of 102 bytes) are written with their neighbours\' edge bytes: bit-identical', async () => {
    // qwen3moe-q8_0 with experts 33 wide: gate/up Q8_0 [96, 33, 10] (3366 bytes per expert), down F32 [33, 96, 10]
    const path = await rewriteGGUF(await fixturePath('qwen3moe-q8_0'), join(await tmp(), 'odd-experts.gguf'), (md, tensors) => {
      md.get('qwen3moe.expert_feed_forward_length')!.value = 33;
      const rand = rng(5);
      for (const t of tensors) {
        const m = /ffn_(gate|up|down)_exps/.exec(t.name);
        if (!m) continue;
        const [cols, rows] = m[1] === 'down' ? [33, 96] : [96, 33];
        const values = randomF32(rand, cols * rows * 10, -0.3, 0.3);
        t.shape = [cols, rows, 10];
        t.type = m[1] === 'down' ? GGMLType.F32 : GGMLType.Q8_0;
        t.data = m[1] === 'down' ? new Uint8Array(values.buffer) : quantize(GGMLType.Q8_0, values);
      }
    });
    const file = await openGGUF(path);
    files.push(file);
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    const full = await WebGPUBackend.load(file, cfg, { context: ctx! });
    const cached = await WebGPUBackend.load(file, cfg, { context: ctx!, gpuMemoryBudget: slotsBudget(cfg, file.tensorByName, 4) });
    try {
      const a = await run(full, PROMPT, 4);
      const b = await run(cached, PROMPT, 4);
      a.forEach((x, i) => expectSameBits(i === 0 ? 'prefill' : `decode step ${i}`, b[i]!, x));
      expect(cached.expertCache!.stats.misses).toBeGreaterThan(0);
    } finally {
      await cached.dispose();
      await full.dispose();
    }
  });

  it('a budget below the non-expert weights plus k experts per layer is a GpuMemoryBudgetError that says the minimum', async () => {
    const { file, cfg } = await open('qwen3moe-q8_0');
    const plan = planExpertBudget(cfg, file.tensorByName, Number.MAX_SAFE_INTEGER);
    expect(plan.offload).toBe(false);
    expect(plan.minimum).toBe(slotsBudget(cfg, file.tensorByName, cfg.nExpertUsed));
    expect(planExpertBudget(cfg, file.tensorByName, plan.minimum).slots).toBe(cfg.nExpertUsed);
    const err = await WebGPUBackend.load(file, cfg, { context: ctx!, gpuMemoryBudget: plan.minimum - 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuMemoryBudgetError);
    expect((err as GpuMemoryBudgetError).minimum).toBe(plan.minimum);
    expect((err as Error).message).toContain(String(plan.minimum));
    expect(() => planExpertBudget(cfg, file.tensorByName, 1000)).toThrow(GpuMemoryBudgetError);
    // gpt-oss's biased experts cannot live in slots yet: refused when they would have to, loaded when they fit
    const oss = await open('gpt-oss-mxfp4');
    const half = slotsBudget(oss.cfg, oss.file.tensorByName, oss.cfg.nExpert / 2);
    expect(() => planExpertBudget(oss.cfg, oss.file.tensorByName, half)).toThrow(UnsupportedArchitectureError);
    expect(planExpertBudget(oss.cfg, oss.file.tensorByName, slotsBudget(oss.cfg, oss.file.tensorByName, oss.cfg.nExpert)).offload).toBe(false);
  });

  it('a model that fits its budget loads exactly as without one: no cache, the same dispatches, no readback but the logits', async () => {
    const { file, cfg } = await open('qwen3moe-q8_0');
    const plain = await WebGPUBackend.load(file, cfg, { context: ctx! });
    const budgeted = await WebGPUBackend.load(file, cfg, { context: ctx!, gpuMemoryBudget: plain.weightBytes * 2 });
    try {
      expect(budgeted.expertCache).toBeNull();
      expect(budgeted.weightBytes).toBe(plain.weightBytes);
      const counts = async (be: WebGPUBackend) => {
        const s = be.createSequence(16);
        await s.eval([1, 2, 3]);
        const pre = { ...s.stats.last, perLayer: [...s.stats.last.perLayer] };
        await s.eval([4]);
        const dec = { ...s.stats.last, perLayer: [...s.stats.last.perLayer] };
        s.dispose();
        return { pre, dec };
      };
      const [p, b] = [await counts(plain), await counts(budgeted)];
      expect(b).toEqual(p);
      expect(b.dec.submits).toBe(1);
      expect(b.dec.bytesRead).toBe(cfg.nVocab * 4);
    } finally {
      await budgeted.dispose();
      await plain.dispose();
    }
  });
});
