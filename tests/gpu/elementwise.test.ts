// embed.wgsl vs src/cpu/ops.ts embedRow (every weight type, split tables), and elementwise.wgsl
// (add, swiglu, in place or not) vs add / swiglu.
import { afterAll, describe, expect, it } from 'vitest';
import { quantize } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { add, embedRow, swiglu } from '../../src/cpu/ops.js';
import { createAdd, createEmbed, createSwiglu } from '../../src/gpu/ops.js';
import { KERNEL_TYPES, createStorage, createStorageFrom, readF32, uploadWeight } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

describe.skipIf(!ctx)('embed', () => {
  const g = ctx!;
  for (const type of KERNEL_TYPES) {
    const cols = type === GGMLType.Q4_K || type === GGMLType.Q5_K || type === GGMLType.Q6_K ? 768 : type === GGMLType.F32 || type === GGMLType.F16 || type === GGMLType.BF16 ? 45 : 800;
    it(`${ggmlTypeName(type)} [${cols}, 131], split in parts, ids at an offset`, async () => {
      const nVocab = 131;
      const data = quantize(type, randomF32(rng(cols), nVocab * cols));
      const rowBytes = data.length / nVocab;
      const w = uploadWeight(g, { name: 'token_embd', type, shape: [cols, nVocab], data }, { maxPartBytes: 40 * rowBytes + 4 });
      expect(w.parts.length).toBe(4);
      const ids = [0, 130, 39, 40, 5, 77, 80, 119, 120];
      const idsBuf = createStorageFrom(g, new Uint32Array([7, 7, ...ids]));
      const outStride = cols + 3;
      const out = createStorage(g, (1 + ids.length * outStride) * 4);
      const launch = await createEmbed(g, { w, ids: { buffer: idsBuf, offset: 2 }, out: { buffer: out, offset: 1 }, nTokens: ids.length, outStride });
      runLaunches(g, [launch]);
      const got = await readF32(g, out, 1 + ids.length * outStride);
      const ref = new Float32Array(cols);
      for (let t = 0; t < ids.length; t++) {
        embedRow(ref, { type, rows: nVocab, cols, data }, ids[t]!);
        // dequantization is exact: the same f32 values as the CPU codec
        expectClose(`token ${t} (id ${ids[t]})`, got.subarray(1 + t * outStride, 1 + t * outStride + cols), ref, 0, 0);
      }
    });
  }
});

describe.skipIf(!ctx)('elementwise', () => {
  const g = ctx!;
  const n = 1000;
  const rand = rng(123);
  const a = randomF32(rand, n + 3, -8, 8);
  const b = randomF32(rand, n + 5, -2, 2);

  for (const kind of ['add', 'swiglu'] as const) {
    for (const inplace of [false, true]) {
      it(`${kind}${inplace ? ' in place' : ''}, n ${n}, offsets`, async () => {
        const ref = new Float32Array(n);
        (kind === 'add' ? add : swiglu)(ref, a.subarray(3, 3 + n), b.subarray(5, 5 + n));
        const bBuf = createStorageFrom(g, b);
        const create = kind === 'add' ? createAdd : createSwiglu;
        let outBuf: GPUBuffer;
        let launch;
        if (inplace) {
          outBuf = createStorageFrom(g, a);
          launch = await create(g, { b: { buffer: bBuf, offset: 5 }, out: { buffer: outBuf, offset: 3 }, n });
        } else {
          outBuf = createStorage(g, (n + 2) * 4);
          launch = await create(g, { a: { buffer: createStorageFrom(g, a), offset: 3 }, b: { buffer: bBuf, offset: 5 }, out: { buffer: outBuf, offset: 2 }, n });
        }
        runLaunches(g, [launch]);
        const off = inplace ? 3 : 2;
        const got = (await readF32(g, outBuf, off + n)).subarray(off);
        expectClose(kind, got, ref, 1e-6, kind === 'add' ? 0 : 4e-6);
      });
    }
  }
});
