// act_quant.wgsl (src/gpu/actquant.ts) against gguf/quants.ts's round trips, bit for bit: Q8_K,
// Q8_0 / Q8_1, F16, BF16 over awkward lengths, offsets and strides, ties and edge blocks; setCount;
// the launcher's bindings against the WGSL.
import { afterAll, describe, expect, it } from 'vitest';
import { roundTripBF16, roundTripF16, roundTripQ8_0, roundTripQ8_K } from '../../gguf/quants.js';
import { GGMLType } from '../../gguf/types.js';
import { ACT_QUANT_KERNEL_SPECS, actQuantFor, createActQuant, type ActQuantType } from '../../src/gpu/actquant.js';
import { createStorage, createStorageFrom, readF32 } from '../../src/runtime/buffers.js';
import { kernelSource, runLaunches } from '../../src/runtime/pipelines.js';
import { activationInput } from '../quants/activation-input.js';
import { openTestGPU, randomF32, rng } from './helpers.js';
import { WgslReflect } from './reflect.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

const CPU: Record<ActQuantType, (x: Float32Array) => Float32Array> = {
  [GGMLType.Q8_K]: (x) => roundTripQ8_K(x),
  [GGMLType.Q8_0]: (x) => roundTripQ8_0(x),
  [GGMLType.Q8_1]: (x) => roundTripQ8_0(x),
  [GGMLType.F16]: (x) => roundTripF16(x),
  [GGMLType.BF16]: (x) => roundTripBF16(x),
};

/** equal bit for bit, except that +0 and −0 count as equal (and NaN as NaN) */
function expectSame(label: string, got: Float32Array, want: Float32Array): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!(g === w || (Number.isNaN(g) && Number.isNaN(w)))) expect.fail(`${label}: element ${i}: GPU ${g}, CPU ${w}`);
  }
}

/** activation-like rows: Gaussian-ish at varied scales, with ties on the Q8 grids */
function rows(rand: () => number, n: number, count: number): Float32Array {
  const x = randomF32(rand, n * count, -3, 3);
  for (let i = 0; i < x.length; i += 7) x[i] = Math.round(x[i]! * 64) / 128; // multiples of 1/128
  for (let r = 0; r < count; r++) for (let i = 0; i < n; i++) x[r * n + i] = x[r * n + i]! * 10 ** ((r % 5) - 2);
  return x;
}

describe.skipIf(!ctx)('act_quant: bit for bit as gguf/quants.ts', () => {
  const g = ctx!;
  const cases: [string, ActQuantType, number, number, number?][] = [
    ['Q8_K 256 × 1', GGMLType.Q8_K, 256, 1],
    ['Q8_K 768 × 5, WG 32', GGMLType.Q8_K, 768, 5, 32],
    ['Q8_K 512 × 3, WG 256', GGMLType.Q8_K, 512, 3, 256],
    ['Q8_0 32 × 1', GGMLType.Q8_0, 32, 1],
    ['Q8_0 96 × 7', GGMLType.Q8_0, 96, 7],
    ['Q8_0 1056 × 3 (33 blocks)', GGMLType.Q8_0, 1056, 3],
    ['Q8_1 224 × 2', GGMLType.Q8_1, 224, 2],
    ['F16 37 × 3', GGMLType.F16, 37, 3],
    ['F16 1000 × 2, WG 64', GGMLType.F16, 1000, 2, 64],
    ['BF16 301 × 4', GGMLType.BF16, 301, 4],
  ];
  for (const [label, type, n, count, wg] of cases) {
    it(label, async () => {
      const x = rows(rng(n * 7 + count), n, count);
      const want = new Float32Array(n * count);
      for (let r = 0; r < count; r++) want.set(CPU[type](x.subarray(r * n, (r + 1) * n)), r * n);
      const xb = createStorageFrom(g, x);
      const ob = createStorage(g, x.byteLength);
      const launch = await createActQuant(g, { type, x: xb, out: ob, n, rows: count, workgroupSize: wg });
      runLaunches(g, [launch]);
      expectSame(label, await readF32(g, ob, n * count), want);
    });
  }

  it('the edge blocks of activationInput() (ties, negative max, ±max, zeros, tiny and f16-range values)', async () => {
    const x = activationInput();
    const n = 256;
    const count = x.length / n;
    const xb = createStorageFrom(g, x);
    for (const type of [GGMLType.Q8_K, GGMLType.Q8_0, GGMLType.F16, GGMLType.BF16] as const) {
      const ob = createStorage(g, x.byteLength);
      runLaunches(g, [await createActQuant(g, { type, x: xb, out: ob, n, rows: count })]);
      const want = new Float32Array(x.length);
      for (let r = 0; r < count; r++) want.set(CPU[type](x.subarray(r * n, (r + 1) * n)), r * n);
      expectSame(`type ${type}`, await readF32(g, ob, x.length), want);
    }
  });

  it('offsets, strides and setCount', async () => {
    const [n, count, xOff, xStride, oOff, oStride] = [512, 4, 3, 517, 5, 530];
    const xs = randomF32(rng(9), xOff + count * xStride, -2, 2);
    const xb = createStorageFrom(g, xs);
    const ob = createStorage(g, (oOff + count * oStride) * 4);
    const launch = await createActQuant(g, { type: GGMLType.Q8_K, x: { buffer: xb, offset: xOff }, out: { buffer: ob, offset: oOff }, n, rows: 1, xStride, outStride: oStride });
    launch.setCount(count);
    runLaunches(g, [launch]);
    const out = await readF32(g, ob, oOff + count * oStride);
    for (let r = 0; r < count; r++) {
      const want = roundTripQ8_K(xs.subarray(xOff + r * xStride, xOff + r * xStride + n));
      expectSame(`row ${r}`, out.subarray(oOff + r * oStride, oOff + r * oStride + n), want);
    }
    launch.setCount(0); // an empty batch dispatches nothing
    runLaunches(g, [launch]);
  });

  it('rejects row lengths that are not whole blocks, buffers too small, and bad workgroup sizes', async () => {
    const b = createStorage(g, 4096);
    await expect(createActQuant(g, { type: GGMLType.Q8_K, x: b, out: createStorage(g, 4096), n: 100 })).rejects.toThrow(RangeError);
    await expect(createActQuant(g, { type: GGMLType.Q8_0, x: b, out: createStorage(g, 4096), n: 64, rows: 32 })).rejects.toThrow(RangeError);
    await expect(createActQuant(g, { type: GGMLType.Q8_K, x: b, out: createStorage(g, 4096), n: 256, workgroupSize: 512 })).rejects.toThrow();
  });
});

describe('actQuantFor', () => {
  it("follows ggml-cpu's vec_dot_type; F32 weights need none", () => {
    expect(actQuantFor(GGMLType.F32)).toBeNull();
    expect(actQuantFor(GGMLType.Q4_K)).toBe(GGMLType.Q8_K);
    expect(actQuantFor(GGMLType.Q6_K)).toBe(GGMLType.Q8_K);
    expect(actQuantFor(GGMLType.Q8_0)).toBe(GGMLType.Q8_0);
    expect(actQuantFor(GGMLType.Q5_0)).toBe(GGMLType.Q8_0);
    expect(actQuantFor(GGMLType.Q5_1)).toBe(GGMLType.Q8_1);
    expect(actQuantFor(GGMLType.F16)).toBe(GGMLType.F16);
  });
});

describe('act_quant bindings match the WGSL (wgsl_reflect)', () => {
  for (const [name, spec] of Object.entries(ACT_QUANT_KERNEL_SPECS)) {
    it(`${name} ${spec.entryPoint}`, () => {
      const reflect = new WgslReflect(kernelSource(spec));
      const entry = reflect.entry.compute.find((f) => f.name === spec.entryPoint);
      expect(entry).toBeDefined();
      const got = entry!.resources.map((r) => ({ binding: r.binding, name: r.name })).sort((a, b) => a.binding - b.binding);
      expect(got).toEqual(spec.bindings.map((b) => ({ binding: b.binding, name: b.name })));
      const uni = entry!.resources.find((r) => r.resourceType === 0)!;
      expect(uni.size).toBe(spec.uniform!.size);
      expect((uni.members ?? []).map((m) => m.name)).toEqual(spec.uniform!.fields.map((f) => f.name));
    });
  }
});
