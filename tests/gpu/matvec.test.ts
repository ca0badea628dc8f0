// matvec.wgsl (dense and MoE) vs src/cpu/ops.ts matVec, for every weight type.
import { afterAll, describe, expect, it } from 'vitest';
import { quantize } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { expertSlice, matVec, type QuantMatrix } from '../../src/cpu/ops.js';
import { createMatVec, createMatVecId } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readF32, uploadWeight, writeBuffer } from '../../src/runtime/buffers.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectProduct, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** A random [cols, rows] weight of `type` (values in ±1, quantized with the reference quantizer). */
export function randomMatrix(type: GGMLType, rows: number, cols: number, seed: number): QuantMatrix {
  const values = randomF32(rng(seed), rows * cols);
  return { type, rows, cols, data: quantize(type, values) };
}

/**
 * One CASES entry on the GPU: a random weight (seeded by its shape) uploaded as `w`, a random x
 * uploaded as `xb`, and the CPU reference `ref` = W·x (src/cpu/ops.ts matVec).
 */
function denseCase(g: GPUContext, type: GGMLType, rows: number, cols: number) {
  const m = randomMatrix(type, rows, cols, rows * 7919 + cols);
  const x = randomF32(rng(cols), cols);
  const ref = new Float32Array(rows);
  matVec(ref, m, x);
  const w = uploadWeight(g, { name: 'w', type, shape: [cols, rows], data: m.data });
  return { w, xb: createStorageFrom(g, x), ref };
}

// (type, rows, cols): rows not multiples of any workgroup/rows-per-workgroup; cols multiples of
// the block size but not of the 8-value step × threads; float types also get an odd length.
const CASES: [GGMLType, number, number][] = [
  [GGMLType.F32, 37, 96],
  [GGMLType.F32, 131, 37],
  [GGMLType.F16, 131, 288],
  [GGMLType.F16, 37, 45],
  [GGMLType.BF16, 37, 800],
  [GGMLType.BF16, 5, 43],
  [GGMLType.Q8_0, 131, 288],
  [GGMLType.Q8_0, 1000, 96],
  [GGMLType.Q4_0, 37, 800],
  [GGMLType.Q4_0, 131, 96],
  [GGMLType.Q4_1, 131, 288],
  [GGMLType.Q5_1, 37, 800],
  [GGMLType.Q5_0, 131, 288],
  [GGMLType.Q5_0, 37, 800],
  [GGMLType.Q4_K, 1000, 256],
  [GGMLType.Q4_K, 37, 768],
  [GGMLType.Q5_K, 131, 512],
  [GGMLType.Q6_K, 131, 768],
  [GGMLType.Q6_K, 1000, 256],
  // 17-byte blocks: rows of 3 and 25 blocks start at odd bytes
  [GGMLType.MXFP4, 131, 96],
  [GGMLType.MXFP4, 37, 800],
];

describe.skipIf(!ctx)('matvec (dense)', () => {
  const g = ctx!;
  for (const [type, rows, cols] of CASES) {
    it(`${ggmlTypeName(type)} ${rows}×${cols}`, async () => {
      const { w, xb, ref } = denseCase(g, type, rows, cols);
      const yb = createStorage(g, rows * 4);
      const launch = await createMatVec(g, { w, x: xb, y: yb });
      runLaunches(g, [launch]);
      expectProduct(`${ggmlTypeName(type)} ${rows}×${cols}`, await readF32(g, yb, rows), ref);
    });
  }

  it('split weight, batch of vectors, offsets, every reduction variant, accumulate', async () => {
    const [rows, cols, nVec] = [131, 288, 3];
    for (const type of [GGMLType.Q8_0, GGMLType.Q4_0]) {
      const m = randomMatrix(type, rows, cols, 42);
      // parts of at most 40 rows: 4 buffers
      const w = uploadWeight(g, { name: 'split', type, shape: [cols, rows], data: m.data }, { maxPartBytes: 40 * (m.data.length / rows) + 4 });
      expect(w.parts.length).toBe(4);
      const xOff = 5;
      const xStride = cols + 3;
      const yOff = 7;
      const yStride = rows + 2;
      const xs = randomF32(rng(9), xOff + nVec * xStride);
      const ref = new Float32Array(nVec * rows);
      for (let v = 0; v < nVec; v++) {
        const out = new Float32Array(rows);
        matVec(out, m, xs.subarray(xOff + v * xStride, xOff + v * xStride + cols));
        ref.set(out, v * rows);
      }
      const xb = createStorageFrom(g, xs);
      const yb = createStorage(g, (yOff + nVec * yStride) * 4);
      const variants = [
        { subgroups: false, rowsPerWorkgroup: 1, workgroupSize: 32 },
        { subgroups: false, rowsPerWorkgroup: 3, workgroupSize: 128 },
        { subgroups: g.features.subgroups, rowsPerWorkgroup: 8, workgroupSize: 64 },
        { subgroups: g.features.subgroups, rowsPerWorkgroup: 2, workgroupSize: 256 },
        // main_rows: 32·3 = 96 rows per workgroup (parts of 40 rows: one partial workgroup each)
        { threadPerRow: { workgroupSize: 32, rowsPerThread: 3 } },
        { threadPerRow: { workgroupSize: 64, rowsPerThread: 16 } },
      ];
      for (const opt of variants) {
        const launch = await createMatVec(g, { w, x: { buffer: xb, offset: xOff }, y: { buffer: yb, offset: yOff }, nVec, xStride, yStride, ...opt });
        runLaunches(g, [launch]);
        const y = await readF32(g, yb, yOff + nVec * yStride);
        const got = new Float32Array(nVec * rows);
        for (let v = 0; v < nVec; v++) got.set(y.subarray(yOff + v * yStride, yOff + v * yStride + rows), v * rows);
        expectProduct(`${ggmlTypeName(type)} split ${JSON.stringify(opt)}`, got, ref);
        launch.dispose();
      }
      // accumulate: y += W·x on top of a known y; and setCount(1) for the first vector only
      const base = randomF32(rng(3), yOff + nVec * yStride);
      writeBuffer(g, yb, base);
      const acc = await createMatVec(g, { w, x: { buffer: xb, offset: xOff }, y: { buffer: yb, offset: yOff }, nVec, xStride, yStride, accumulate: true });
      acc.setCount(1);
      runLaunches(g, [acc]);
      const y = await readF32(g, yb, yOff + nVec * yStride);
      const want = Float32Array.from(base);
      for (let r = 0; r < rows; r++) want[yOff + r] = Math.fround(base[yOff + r]! + ref[r]!);
      expectProduct(`${ggmlTypeName(type)} accumulate`, y, want);
    }
  });
});

// main_rows (one thread per row) for every weight type: rows not multiples of WG · rowsPerThread
// (32 · 5 = 160), float types with odd lengths; and accumulate.
describe.skipIf(!ctx)('matvec, one thread per row (main_rows)', () => {
  const g = ctx!;
  for (const [type, rows, cols] of CASES) {
    it(`${ggmlTypeName(type)} ${rows}×${cols}`, async () => {
      const { w, xb, ref } = denseCase(g, type, rows, cols);
      const base = randomF32(rng(rows), rows);
      const yb = createStorageFrom(g, base);
      const launch = await createMatVec(g, { w, x: xb, y: yb, threadPerRow: { workgroupSize: 32, rowsPerThread: 5 } });
      runLaunches(g, [launch]);
      expectProduct(`${ggmlTypeName(type)} ${rows}×${cols} main_rows`, await readF32(g, yb, rows), ref);
      writeBuffer(g, yb, base);
      const acc = await createMatVec(g, { w, x: xb, y: yb, accumulate: true, threadPerRow: { workgroupSize: 32, rowsPerThread: 2 } });
      runLaunches(g, [acc]);
      const want = base.map((b, r) => Math.fround(b + ref[r]!));
      expectProduct(`${ggmlTypeName(type)} ${rows}×${cols} main_rows accumulate`, await readF32(g, yb, rows), want);
    });
  }

  it('software geometry: taken on a software adapter only', async () => {
    const m = randomMatrix(GGMLType.Q6_K, 37, 256, 5);
    const w = uploadWeight(g, { name: 'w', type: GGMLType.Q6_K, shape: [256, 37], data: m.data });
    const launch = await createMatVec(g, { w, x: createStorage(g, 256 * 4), y: createStorage(g, 37 * 4), software: { threadPerRow: { workgroupSize: 32, rowsPerThread: 4 } } });
    expect(launch.dispatches[0]!.workgroups[0]).toBe(g.adapter.isSoftware ? 1 : Math.ceil(37 / 2));
  });
});

describe.skipIf(!ctx)('matvec_id (MoE expert matvec, ids on the GPU)', () => {
  const g = ctx!;
  for (const type of [GGMLType.Q4_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.F32]) {
    it(`${ggmlTypeName(type)} stack [256, 37, 6] split in 3 parts; shared and per-slot inputs`, async () => {
      const [cols, rows, nExpert] = [256, 37, 6];
      const values = randomF32(rng(11), cols * rows * nExpert);
      const stack = { type, rows, cols, count: nExpert, data: quantize(type, values) };
      const perExpert = stack.data.length / nExpert;
      const w = uploadWeight(g, { name: 'exps', type, shape: [cols, rows, nExpert], data: stack.data }, { maxPartBytes: 2 * perExpert + 4 });
      expect(w.parts.length).toBe(3);
      const ids = new Uint32Array([4, 1, 5, 0]);
      const nSlots = ids.length;
      const idsBuf = createStorageFrom(g, ids);
      for (const shared of [true, false]) {
        const xs = randomF32(rng(shared ? 1 : 2), nSlots * cols);
        const ref = new Float32Array(nSlots * rows);
        for (let s = 0; s < nSlots; s++) {
          const out = new Float32Array(rows);
          matVec(out, expertSlice(stack, ids[s]!), shared ? xs.subarray(0, cols) : xs.subarray(s * cols, (s + 1) * cols));
          ref.set(out, s * rows);
        }
        const xb = createStorageFrom(g, xs);
        const yb = createStorage(g, nSlots * rows * 4);
        const launch = await createMatVecId(g, { w, x: xb, y: yb, ids: idsBuf, nSlots, xStride: shared ? 0 : cols });
        runLaunches(g, [launch]);
        expectProduct(`${ggmlTypeName(type)} moe shared=${shared}`, await readF32(g, yb, nSlots * rows), ref);
      }
    });
  }
});
