// kernels/sample.wgsl (createTopK, GPU-side candidate selection) against a CPU sort: the k largest
// logits, descending, ties → lower id; NaN and −inf never selected; k larger than what is
// selectable leaves empty slots. Plus the wgsl_reflect check of its KernelSpecs.
import { afterAll, describe, expect, it } from 'vitest';
import { createTopK, decodeTopK, SAMPLE_SPECS } from '../../src/gpu/sample.js';
import { createStorageFrom, readBuffer } from '../../src/runtime/buffers.js';
import { kernelSource, runLaunches } from '../../src/runtime/pipelines.js';
import { openTestGPU, rng } from './helpers.js';
import { WgslReflect } from './reflect.js';

describe('sample.wgsl bindings match the launcher (wgsl_reflect)', () => {
  for (const [name, spec] of Object.entries(SAMPLE_SPECS)) {
    it(`${name} ${spec.entryPoint}`, () => {
      const reflect = new WgslReflect(kernelSource(spec));
      const entry = reflect.entry.compute.find((f) => f.name === spec.entryPoint)!;
      expect(entry).toBeDefined();
      const kind = (r: { resourceType: number; access: string }) =>
        r.resourceType === 0 ? 'uniform' : r.access === 'read_write' ? 'storage' : 'read-only-storage';
      expect(entry.resources.map((r) => ({ binding: r.binding, name: r.name, kind: kind(r) })).sort((a, b) => a.binding - b.binding)).toEqual(
        spec.bindings.map((b) => ({ binding: b.binding, name: b.name, kind: b.kind })),
      );
      const uni = entry.resources.find((r) => r.resourceType === 0)!;
      expect(uni.size).toBe(spec.uniform!.size);
      expect((uni.members ?? []).map((m) => ({ name: m.name, offset: m.offset }))).toEqual(spec.uniform!.fields.map((f) => ({ name: f.name, offset: f.offset })));
      expect(reflect.overrides.map((o) => o.name)).toEqual(expect.arrayContaining([...spec.overrides!]));
    });
  }
});

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** reference: indices of the k largest finite-or-+inf values, descending, ties → lower id */
function refTopK(x: Float32Array, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) if (!Number.isNaN(x[i]!) && x[i] !== -Infinity) idx.push(i);
  idx.sort((a, b) => x[b]! - x[a]! || a - b);
  return idx.slice(0, k);
}

describe.skipIf(!ctx)('GPU top-k (sample.wgsl)', () => {
  const g = ctx!;

  async function run(x: Float32Array, ks: number[], blocks?: number): Promise<void> {
    const buf = createStorageFrom(g, x);
    const maxK = Math.max(...ks);
    const l = await createTopK(g, { logits: buf, n: x.length, maxK, blocks });
    try {
      for (const k of ks) {
        l.setK(k);
        runLaunches(g, [l]);
        const got = decodeTopK(await readBuffer(g, l.out, 0, 8 * k), k);
        const want = refTopK(x, k);
        expect(Array.from(got.ids), `n ${x.length} k ${k} blocks ${blocks ?? 'auto'}`).toEqual(want);
        expect(Array.from(got.logits)).toEqual(want.map((i) => x[i]!));
      }
    } finally {
      l.dispose();
      g.destroyBuffer(buf);
    }
  }

  it('151936 logits (Qwen3 vocabulary) with many ties, NaN and −inf; k = 1, 2, 40, 64, 256', async () => {
    const r = rng(7);
    const n = 151936;
    // values on a coarse grid: hundreds of exact ties among the top candidates
    const x = Float32Array.from({ length: n }, () => Math.round((r() * 2 - 1) * 200) / 16);
    for (let i = 0; i < 50; i++) x[Math.floor(r() * n)] = NaN;
    for (let i = 0; i < 50; i++) x[Math.floor(r() * n)] = -Infinity;
    x[n - 1] = 100; // the best at the very end
    x[0] = 100; // tied with it: the lower id first
    await run(x, [1, 2, 40, 64, 256]);
  });

  it('odd sizes and block counts; negative values; k beyond the selectable logits', async () => {
    const r = rng(11);
    for (const n of [1, 5, 37, 1000, 4099]) {
      const x = Float32Array.from({ length: n }, () => -1 - r() * 100);
      for (const blocks of [undefined, 1, 3, 7]) await run(x, [1, Math.min(8, n), Math.min(33, n)], blocks);
    }
    // fewer selectable than k: NaN / −inf are left out, empty slots are dropped by decodeTopK
    const y = new Float32Array([NaN, 3, -Infinity, 3, NaN, 1]);
    await run(y, [1, 3, 6]);
  });

  it('greedy equals the CPU argmax on the first index of the maximum', async () => {
    const x = new Float32Array(3000).fill(-5);
    x[1234] = 7;
    x[2999] = 7;
    x[17] = 6.999999;
    await run(x, [1]);
  });
});
