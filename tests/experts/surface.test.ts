// Experts in host memory through the public surface: loadModel's gpuMemoryBudget (typed error with
// the minimum, 'auto', a share of the experts, the cpu backend's refusal, Model.expertCacheStats,
// generation identical to the model loaded whole), `moet run --gpu-memory … --verbose`, `moet bench
// --gpu-memory` JSON and table.
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/app.js';
import { GpuMemoryBudgetError, loadModel } from '../../src/index.js';
import { fixturePath } from '../fixtures/make.js';
import { openTestGPU } from '../gpu/helpers.js';

const ctx = await openTestGPU(); // only to know whether WebGPU runs here
afterAll(async () => ctx?.dispose());

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

describe('gpuMemoryBudget on the CPU backend', () => {
  it('is refused', async () => {
    await expect(loadModel(await fixturePath('qwen3moe-f32'), { backend: 'cpu', gpuMemoryBudget: 1 << 30 })).rejects.toThrow(RangeError);
  });
});

describe.skipIf(!ctx)('experts in host memory, public surface', () => {
  it('loadModel: the budget error says the minimum; auto and a roomy budget load whole; a share of the experts generates the same text', async () => {
    const path = await fixturePath('qwen3moe-q8_0');
    const err = await loadModel(path, { gpuMemoryBudget: 100_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GpuMemoryBudgetError);
    expect((err as GpuMemoryBudgetError).minimum).toBeGreaterThan(100_000);
    expect((err as Error).message).toMatch(/minimum of \d+ bytes/);

    const whole = await loadModel(path);
    const auto = await loadModel(path, { gpuMemoryBudget: 'auto' }); // lavapipe: host memory, plenty
    const part = await loadModel(path, { gpuMemoryBudget: { expertFraction: 0.4 }, experts: { policy: 'lfu' } });
    try {
      expect(whole.expertCacheStats).toBeNull();
      expect(auto.expertCacheStats).toBeNull();
      const gen = async (m: typeof whole) => {
        const s = m.createSession();
        const ids: number[] = [];
        for await (const t of s.generate([5, 17, 99, 3], { maxTokens: 6, temperature: 0 })) ids.push(t.id);
        s.dispose();
        return ids;
      };
      expect(await gen(part)).toEqual(await gen(whole));
      // routing traces see the experts' ids, not the slots
      const traceOf = async (m: typeof whole) => {
        const s = m.createSession();
        await s.eval([5, 17, 99, 3, 42], { trace: { routing: true } });
        await s.eval([8], { trace: { routing: true } });
        const t = s.lastTrace!;
        s.dispose();
        return [...t.ids];
      };
      expect(await traceOf(part)).toEqual(await traceOf(whole));
      const st = part.expertCacheStats!;
      expect(st.slots).toBe(4);
      expect(st.policy).toBe('lfu');
      expect(st.tokens).toBeGreaterThan(0);
      expect(st.hitRate).toBeGreaterThan(0);
      expect(st.hitRate).toBeLessThan(1);
    } finally {
      await part.dispose();
      await auto.dispose();
      await whole.dispose();
    }
  });

  it('moet run --gpu-memory 30% --verbose prints the expert cache', async () => {
    const r = await cli('run', '-m', await fixturePath('qwen3moe-q8_0'), '-p', 'hello', '-n', '4', '--temp', '0', '--gpu-memory', '30%', '--expert-policy', 'lru', '--verbose');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/expert cache = 3\/10 experts per layer on the GPU .* policy lru/);
    expect(r.stderr).toMatch(/hit rate [\d.]+% \(per layer \d+\/\d+\/\d+%\)/);
    const bad = await cli('run', '-m', 'x.gguf', '-p', 'hi', '--gpu-memory', 'lots');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--gpu-memory must be/);
  });

  it('moet bench --gpu-memory 100%,40% -o json: gpu_memory and expert_cache per row; the md table', async () => {
    const m = await fixturePath('qwen3moe-q8_0');
    const j = await cli('bench', '-m', m, '-p', '8', '-n', '4', '-r', '1', '--gpu-memory', '100%,40%', '-o', 'json');
    expect(j.code, j.stderr).toBe(0);
    const rows = JSON.parse(j.stdout) as Record<string, unknown>[];
    expect(rows.map((r) => [r.test, r.gpu_memory])).toEqual([['pp8', '100%'], ['tg4', '100%'], ['pp8', '40%'], ['tg4', '40%']]);
    expect(rows[1]!.expert_cache).toBeNull();
    const c = rows[3]!.expert_cache as Record<string, number | number[]>;
    expect(c).toMatchObject({ slots: 4, n_expert: 10, resident_fraction: 0.4, policy: 'lru' });
    expect(c.hit_rate_per_layer).toHaveLength(3);
    expect(c.readbacks_per_token).toBe(3); // one per MoE layer and decode step
    expect(c.upload_bytes_per_token as number).toBeGreaterThan(0);
    const md = await cli('bench', '-m', m, '-p', '0', '-n', '2', '-r', '1', '--gpu-memory', '40%');
    expect(md.code, md.stderr).toBe(0);
    expect(md.stdout).toMatch(/experts in host memory \(lru\):/);
    expect(md.stdout).toMatch(/\|\s+tg2 \|\s+40% \|.*\|\s+4\/10 \(40%\) \|/);
  });
});
