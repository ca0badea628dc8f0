// matmul.wgsl (prefill) vs src/cpu/ops.ts matMul, for every weight type.
import { afterAll, describe, expect, it } from 'vitest';
import { quantize } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { matMul } from '../../src/cpu/ops.js';
import { createMatMul } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readF32, uploadWeight, writeBuffer } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectProduct, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

// (type, rows, cols, tokens): rows / tokens not multiples of the 64 × 32 tile
const CASES: [GGMLType, number, number, number][] = [
  [GGMLType.F32, 37, 96, 5],
  [GGMLType.F16, 131, 45, 33],
  [GGMLType.BF16, 70, 288, 3],
  [GGMLType.Q8_0, 131, 288, 37],
  [GGMLType.Q4_0, 37, 800, 9],
  [GGMLType.Q5_0, 131, 96, 40],
  [GGMLType.Q4_1, 37, 288, 6],
  [GGMLType.Q5_1, 70, 96, 33],
  [GGMLType.Q4_K, 131, 512, 33],
  [GGMLType.Q5_K, 37, 256, 7],
  [GGMLType.Q6_K, 100, 768, 35],
  [GGMLType.MXFP4, 37, 96, 9],
];

describe.skipIf(!ctx)('matmul', () => {
  const g = ctx!;
  for (const [type, rows, cols, nTokens] of CASES) {
    it(`${ggmlTypeName(type)} ${rows}×${cols} × ${nTokens} tokens`, async () => {
      const data = quantize(type, randomF32(rng(rows + cols), rows * cols));
      const x = randomF32(rng(nTokens), nTokens * cols);
      const ref = new Float32Array(nTokens * rows);
      matMul(ref, { type, rows, cols, data }, x, nTokens);
      const w = uploadWeight(g, { name: 'w', type, shape: [cols, rows], data });
      const xb = createStorageFrom(g, x);
      const yb = createStorage(g, nTokens * rows * 4);
      const launch = await createMatMul(g, { w, x: xb, y: yb, nTokens });
      runLaunches(g, [launch]);
      expectProduct(`${ggmlTypeName(type)} ${rows}×${cols}×${nTokens}`, await readF32(g, yb, nTokens * rows), ref);
    });
  }

  it('split weight, strides/offsets, other tile shape, accumulate, setCount', async () => {
    const [type, rows, cols, nTokens] = [GGMLType.Q6_K, 131, 256, 34];
    const data = quantize(type, randomF32(rng(5), rows * cols));
    const w = uploadWeight(g, { name: 'split', type, shape: [cols, rows], data }, { maxPartBytes: 50 * (data.length / rows) + 4 });
    expect(w.parts.length).toBe(3);
    const [xOff, xStride, yOff, yStride] = [3, cols + 1, 2, rows + 5];
    const xs = randomF32(rng(6), xOff + nTokens * xStride);
    const xDense = new Float32Array(nTokens * cols);
    for (let t = 0; t < nTokens; t++) xDense.set(xs.subarray(xOff + t * xStride, xOff + t * xStride + cols), t * cols);
    const ref = new Float32Array(nTokens * rows);
    matMul(ref, { type, rows, cols, data }, xDense, nTokens);
    const xb = createStorageFrom(g, xs);
    const yb = createStorage(g, (yOff + nTokens * yStride) * 4);
    const unpack = (y: Float32Array, n: number) => {
      const out = new Float32Array(n * rows);
      for (let t = 0; t < n; t++) out.set(y.subarray(yOff + t * yStride, yOff + t * yStride + rows), t * rows);
      return out;
    };
    for (const [wgM, wgN] of [[16, 8], [8, 16], [32, 2]] as const) {
      const launch = await createMatMul(g, { w, x: { buffer: xb, offset: xOff }, y: { buffer: yb, offset: yOff }, nTokens, xStride, yStride, wgM, wgN });
      runLaunches(g, [launch]);
      expectProduct(`tile ${wgM}×${wgN}`, unpack(await readF32(g, yb, yOff + nTokens * yStride), nTokens), ref);
    }
    // accumulate over zeros twice with setCount(5): first 5 tokens = 2·ref
    writeBuffer(g, yb, new Float32Array(yOff + nTokens * yStride));
    const acc = await createMatMul(g, { w, x: { buffer: xb, offset: xOff }, y: { buffer: yb, offset: yOff }, nTokens, xStride, yStride, accumulate: true });
    acc.setCount(5);
    runLaunches(g, [acc]);
    runLaunches(g, [acc]);
    const got = unpack(await readF32(g, yb, yOff + nTokens * yStride), nTokens);
    expectProduct('accumulate', got.subarray(0, 5 * rows), ref.subarray(0, 5 * rows).map((v) => 2 * v));
    expect(got.subarray(5 * rows).every((v) => v === 0)).toBe(true);
  });
});
