// rms_norm_q (norm.wgsl, createRmsNorm with `round`): the normed rows are those of rms_norm (bit for
// bit, and close to src/cpu/ops.ts rmsNorm), and out_q is gguf/quants.ts's round trip of them, bit
// for bit, for Q8_K, Q8_0, F16 and BF16, over row lengths and workgroup sizes that are not
// multiples of each other, ties on the Q8 grids, zero blocks, offsets, strides and setCount.
import { afterAll, describe, expect, it } from 'vitest';
import { roundTripBF16, roundTripF16, roundTripQ8_0, roundTripQ8_K } from '../../gguf/quants.js';
import { GGMLType } from '../../gguf/types.js';
import { rmsNorm } from '../../src/cpu/ops.js';
import type { ActQuantType } from '../../src/gpu/actquant.js';
import { createQKNormRope, createRmsNorm } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readF32, writeBuffer } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

const CPU: Record<ActQuantType, (x: Float32Array) => Float32Array> = {
  [GGMLType.Q8_K]: (x) => roundTripQ8_K(x),
  [GGMLType.Q8_0]: (x) => roundTripQ8_0(x),
  [GGMLType.Q8_1]: (x) => roundTripQ8_0(x),
  [GGMLType.F16]: (x) => roundTripF16(x),
  [GGMLType.BF16]: (x) => roundTripBF16(x),
};

function expectSame(label: string, got: Float32Array, want: Float32Array): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (!(g === w || (Number.isNaN(g) && Number.isNaN(w)))) expect.fail(`${label}: element ${i}: GPU ${g}, CPU ${w}`);
  }
}

describe.skipIf(!ctx)('rms_norm_q: RMSNorm + activation round trip in one dispatch', () => {
  const g = ctx!;
  const cases: [string, ActQuantType, number, number, number][] = [
    ['Q8_K 768 × 3, WG 128', GGMLType.Q8_K, 768, 3, 128],
    ['Q8_K 2048 × 1, WG 64', GGMLType.Q8_K, 2048, 1, 64],
    ['Q8_K 256 × 5, WG 32', GGMLType.Q8_K, 256, 5, 32],
    ['Q8_K 4352 × 2, WG 256 (17 blocks)', GGMLType.Q8_K, 4352, 2, 256],
    ['Q8_0 1056 × 3, WG 128 (33 blocks)', GGMLType.Q8_0, 1056, 3, 128],
    ['Q8_1 224 × 2, WG 32', GGMLType.Q8_1, 224, 2, 32],
    ['F16 1000 × 2, WG 128', GGMLType.F16, 1000, 2, 128],
    ['BF16 301 × 4, WG 64', GGMLType.BF16, 301, 4, 64],
  ];
  for (const [label, type, n, rows, wg] of cases) {
    it(label, async () => {
      const rand = rng(n * 3 + rows);
      const x = randomF32(rand, rows * n, -3, 3);
      for (let i = 0; i < x.length; i += 5) x[i] = Math.round(x[i]! * 32) / 64; // ties on the grids
      if (n >= 512) x.fill(0, 256, 512); // a zero block in row 0
      const weight = randomF32(rand, n, 0.5, 1.5);
      for (let i = 3; i < n; i += 11) weight[i] = 1;
      const eps = 1e-6;
      const xb = createStorageFrom(g, x);
      const wb = createStorageFrom(g, weight);
      const plain = createStorage(g, rows * n * 4);
      const ob = createStorage(g, rows * n * 4);
      const qb = createStorage(g, rows * n * 4);
      runLaunches(g, [
        await createRmsNorm(g, { x: xb, weight: wb, out: plain, n, rows, eps, workgroupSize: wg }),
        await createRmsNorm(g, { x: xb, weight: wb, out: ob, n, rows, eps, workgroupSize: wg, round: { type, out: qb } }),
      ]);
      const normed = await readF32(g, ob, rows * n);
      expectSame(`${label}: normed = rms_norm's`, normed, await readF32(g, plain, rows * n));
      const ref = new Float32Array(rows * n);
      rmsNorm(ref, x, weight, eps, rows);
      expectClose(`${label}: normed vs CPU`, normed, ref, 1e-6, 2e-6);
      const want = new Float32Array(rows * n);
      for (let r = 0; r < rows; r++) want.set(CPU[type](normed.subarray(r * n, (r + 1) * n)), r * n);
      expectSame(`${label}: out_q`, await readF32(g, qb, rows * n), want);
    });
  }

  it('offsets, strides and setCount (out_q stays contiguous)', async () => {
    const [n, rows, xOff, xStride, oOff, oStride] = [512, 4, 5, 519, 1, 513];
    const rand = rng(91);
    const xs = randomF32(rand, xOff + rows * xStride);
    const weight = randomF32(rand, n, 0.5, 1.5);
    const ob = createStorage(g, (oOff + rows * oStride) * 4);
    const qb = createStorage(g, rows * n * 4);
    const launch = await createRmsNorm(g, {
      x: { buffer: createStorageFrom(g, xs), offset: xOff },
      weight: createStorageFrom(g, weight),
      out: { buffer: ob, offset: oOff },
      n,
      rows: 1,
      eps: 1e-5,
      xStride,
      outStride: oStride,
      round: { type: GGMLType.Q8_K, out: qb },
    });
    launch.setCount(rows);
    runLaunches(g, [launch]);
    const out = await readF32(g, ob, oOff + rows * oStride);
    const q = await readF32(g, qb, rows * n);
    for (let r = 0; r < rows; r++) {
      const normed = out.subarray(oOff + r * oStride, oOff + r * oStride + n);
      expectSame(`row ${r}`, q.subarray(r * n, (r + 1) * n), roundTripQ8_K(normed));
    }
  });

  it('rejects a row length that is not a multiple of the block', async () => {
    const b = createStorage(g, 300 * 4);
    await expect(createRmsNorm(g, { x: b, weight: b, out: b, n: 300, eps: 1e-6, round: { type: GGMLType.Q8_K, out: createStorage(g, 300 * 4) } })).rejects.toBeInstanceOf(RangeError);
  });
});

describe.skipIf(!ctx)('qk_norm_rope with K heads (one dispatch) and q rounded to f16', () => {
  const g = ctx!;
  for (const [nHead, nKv, hd, nRot, n, qStride] of [
    [5, 3, 48, 48, 3, 5 * 48],
    [4, 2, 64, 32, 2, 2 * 4 * 64], // gated layout: [query | gate] per token, partial rotation
  ] as const) {
    it(`${nHead}/${nKv} heads of ${hd}, n_rot ${nRot}, ${n} tokens, q stride ${qStride}`, async () => {
      const rand = rng(nHead * 100 + hd);
      const q = randomF32(rand, n * qStride, -3, 3);
      const k = randomF32(rand, n * nKv * hd, -3, 3);
      const qw = randomF32(rand, hd, 0.5, 1.5);
      const kw = randomF32(rand, hd, 0.5, 1.5);
      const pos = createStorage(g, n * 4);
      writeBuffer(g, pos, new Uint32Array(Array.from({ length: n }, (_, i) => 7 + i * 131)));
      const rope = { positions: pos, headDim: hd, nRot, nTokens: 1, eps: 1e-6, base: 1e6, workgroupSize: 32 };
      const [qa, ka, qb, kb] = [createStorageFrom(g, q), createStorageFrom(g, k), createStorageFrom(g, q), createStorageFrom(g, k)];
      const [qwb, kwb] = [createStorageFrom(g, qw), createStorageFrom(g, kw)];
      const qr = createStorage(g, n * nHead * hd * 4);
      const pair = await createQKNormRope(g, { ...rope, x: qb, weight: qwb, nHeads: nHead, tokenStride: qStride, k: { x: kb, weight: kwb, nHeads: nKv }, qRoundF16: qr });
      const one = [
        await createQKNormRope(g, { ...rope, x: qa, weight: qwb, nHeads: nHead, tokenStride: qStride }),
        await createQKNormRope(g, { ...rope, x: ka, weight: kwb, nHeads: nKv }),
      ];
      for (const l of [pair, ...one]) l.setCount(n);
      runLaunches(g, [...one, pair]);
      const qWant = await readF32(g, qa, q.length);
      expectSame('q', await readF32(g, qb, q.length), qWant);
      expectSame('k', await readF32(g, kb, k.length), await readF32(g, ka, k.length));
      const rows = new Float32Array(n * nHead * hd);
      for (let t = 0; t < n; t++) rows.set(qWant.subarray(t * qStride, t * qStride + nHead * hd), t * nHead * hd);
      expectSame('q_r', await readF32(g, qr, rows.length), roundTripF16(rows));
    });
  }
});
