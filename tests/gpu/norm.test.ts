// norm.wgsl (RMSNorm; per-head Q/K norm + NEOX RoPE) vs src/cpu/ops.ts rmsNorm / ropeNeox.
import { afterAll, describe, it } from 'vitest';
import { rmsNorm, ropeNeox } from '../../src/cpu/ops.js';
import { createQKNormRope, createRmsNorm } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readF32, writeBuffer } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

describe.skipIf(!ctx)('rms_norm', () => {
  const g = ctx!;
  for (const [n, rows, wg] of [
    [1000, 3, 128],
    [2048, 1, 256],
    [37, 5, 32],
    [4096, 2, 1024],
  ] as const) {
    it(`n ${n} × ${rows} rows, WG ${wg}`, async () => {
      const rand = rng(n + rows);
      const x = randomF32(rand, rows * n, -3, 3);
      const weight = randomF32(rand, n, 0.5, 1.5);
      const eps = 1e-6;
      const ref = new Float32Array(rows * n);
      rmsNorm(ref, x, weight, eps, rows);
      const xb = createStorageFrom(g, x);
      const wb = createStorageFrom(g, weight);
      const ob = createStorage(g, rows * n * 4);
      const launch = await createRmsNorm(g, { x: xb, weight: wb, out: ob, n, rows, eps, workgroupSize: wg });
      runLaunches(g, [launch]);
      expectClose(`rms_norm ${n}×${rows}`, await readF32(g, ob, rows * n), ref, 1e-6, 2e-6);
    });
  }

  it('offsets, strides and setCount', async () => {
    const [n, rows, xOff, xStride, oOff, oStride] = [300, 4, 5, 307, 1, 301];
    const rand = rng(77);
    const xs = randomF32(rand, xOff + rows * xStride);
    const weight = randomF32(rand, n, 0.5, 1.5);
    const xb = createStorageFrom(g, xs);
    const ob = createStorage(g, (oOff + rows * oStride) * 4);
    const launch = await createRmsNorm(g, {
      x: { buffer: xb, offset: xOff },
      weight: createStorageFrom(g, weight),
      out: { buffer: ob, offset: oOff },
      n,
      rows: 1,
      eps: 1e-5,
      xStride,
      outStride: oStride,
    });
    launch.setCount(rows);
    runLaunches(g, [launch]);
    const out = await readF32(g, ob, oOff + rows * oStride);
    for (let r = 0; r < rows; r++) {
      const ref = new Float32Array(n);
      rmsNorm(ref, xs.subarray(xOff + r * xStride, xOff + r * xStride + n), weight, 1e-5, 1);
      expectClose(`row ${r}`, out.subarray(oOff + r * oStride, oOff + r * oStride + n), ref, 1e-6, 2e-6);
    }
  });
});

describe.skipIf(!ctx)('qk_norm_rope (per-head RMSNorm + NEOX RoPE, positions from a buffer)', () => {
  const g = ctx!;
  const cases = [
    { nHeads: 5, headDim: 128, nRot: 128, positions: [0, 1, 17, 1000, 30000, 40959], norm: true, base: 1e6, wg: 64 },
    { nHeads: 3, headDim: 64, nRot: 48, positions: [3, 4097], norm: true, base: 10000, wg: 32 },
    { nHeads: 4, headDim: 96, nRot: 96, positions: [0, 123, 9999], norm: false, base: 10000, wg: 128 },
  ];
  for (const c of cases) {
    it(`${c.nHeads} heads × ${c.headDim} (n_rot ${c.nRot}), norm=${c.norm}, base ${c.base}, positions ${c.positions.join(',')}`, async () => {
      const nTokens = c.positions.length;
      const tokenStride = c.nHeads * c.headDim + 8; // rows of a fused buffer
      const xOff = 4;
      const rand = rng(c.headDim * 31 + c.nRot);
      const xs = randomF32(rand, xOff + nTokens * tokenStride, -2, 2);
      const weight = randomF32(rand, c.headDim, 0.5, 1.5);
      const eps = 1e-6;
      const ref = Float32Array.from(xs);
      for (let t = 0; t < nTokens; t++) {
        const o = xOff + t * tokenStride;
        const head = ref.subarray(o, o + c.nHeads * c.headDim);
        if (c.norm) {
          for (let h = 0; h < c.nHeads; h++) {
            const v = head.subarray(h * c.headDim, (h + 1) * c.headDim);
            rmsNorm(v, v, weight, eps, 1);
          }
        }
        ropeNeox(head, c.nHeads, c.headDim, c.nRot, c.positions[t]!, c.base);
      }
      const xb = createStorageFrom(g, xs);
      const pos = createStorageFrom(g, new Uint32Array([99, ...c.positions]));
      const launch = await createQKNormRope(g, {
        x: { buffer: xb, offset: xOff },
        weight: createStorageFrom(g, weight),
        positions: { buffer: pos, offset: 1 },
        nHeads: c.nHeads,
        headDim: c.headDim,
        nRot: c.nRot,
        nTokens,
        tokenStride,
        eps,
        base: c.base,
        norm: c.norm,
        workgroupSize: c.wg,
      });
      runLaunches(g, [launch]);
      expectClose('qk_norm_rope', await readF32(g, xb, xs.length), ref, 2e-5, 2e-5);
    });
  }

  it('decode: only the position buffer changes between steps', async () => {
    const [nHeads, headDim] = [2, 128];
    const x0 = randomF32(rng(5), nHeads * headDim);
    const weight = new Float32Array(headDim).fill(1);
    const xb = createStorage(g, x0.byteLength);
    const pos = createStorageFrom(g, new Uint32Array([0]));
    const launch = await createQKNormRope(g, { x: xb, weight: createStorageFrom(g, weight), positions: pos, nHeads, headDim, eps: 1e-6, base: 1e6 });
    for (const p of [5, 6, 7000]) {
      writeBuffer(g, xb, x0);
      writeBuffer(g, pos, new Uint32Array([p]));
      runLaunches(g, [launch]);
      const ref = Float32Array.from(x0);
      for (let h = 0; h < nHeads; h++) rmsNorm(ref.subarray(h * headDim, (h + 1) * headDim), ref.subarray(h * headDim, (h + 1) * headDim), weight, 1e-6, 1);
      ropeNeox(ref, nHeads, headDim, headDim, p, 1e6);
      expectClose(`pos ${p}`, await readF32(g, xb, x0.length), ref, 2e-5, 2e-5);
    }
  });
});
