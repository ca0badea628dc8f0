// The block library's attention variants on the GPU against src/cpu/ops.ts:
//   qk_norm_rope with ROPE_NORM (llama's adjacent pairs), FREQ_FACTORS (llama3's rope_freqs), a
//   freq scale (linear rope scaling) and YaRN (ramp, mscale), with and without the per-head norm, through the KV path the
//   forward pass uses (K rows checked in the cache too);
//   the elementwise add with a broadcast row (Q/K/V and output biases).
// Odd head counts, head dims and row widths that are not multiples of the workgroup size.
import { afterAll, describe, expect, it } from 'vitest';
import { addBias, rmsNorm, rope, type RopeSpec } from '../../src/cpu/ops.js';
import { createKvCache } from '../../src/gpu/attention.js';
import { createAdd, createQKNormRope } from '../../src/gpu/ops.js';
import { createStorageFrom, readF32 } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

interface Case {
  nHead: number;
  nKv: number;
  hd: number;
  nRot: number;
  n: number;
  pos0: number;
  style: 'neox' | 'norm';
  freqFactors: boolean;
  freqScale: number;
  norm: boolean;
  wg: number;
  /** YaRN: ext factor 1, the ramp between corr dims, cos/sin × mscale */
  yarn?: { extFactor: number; corrDims: [number, number]; mscale: number };
}

const CASES: Case[] = [
  { nHead: 5, nKv: 1, hd: 14, nRot: 14, n: 3, pos0: 0, style: 'norm', freqFactors: false, freqScale: 1, norm: false, wg: 32 },
  { nHead: 3, nKv: 3, hd: 24, nRot: 24, n: 4, pos0: 7, style: 'norm', freqFactors: true, freqScale: 1, norm: false, wg: 64 },
  { nHead: 6, nKv: 2, hd: 64, nRot: 64, n: 2, pos0: 1000, style: 'norm', freqFactors: true, freqScale: 0.25, norm: true, wg: 32 },
  { nHead: 7, nKv: 1, hd: 40, nRot: 16, n: 5, pos0: 3, style: 'neox', freqFactors: true, freqScale: 0.5, norm: false, wg: 32 },
  { nHead: 4, nKv: 2, hd: 18, nRot: 12, n: 1, pos0: 200, style: 'norm', freqFactors: false, freqScale: 1, norm: true, wg: 64 },
  { nHead: 3, nKv: 1, hd: 64, nRot: 64, n: 3, pos0: 90, style: 'norm', freqFactors: false, freqScale: 0.025, norm: false, wg: 32, yarn: { extFactor: 1, corrDims: [4, 19], mscale: 1.3688 } },
  { nHead: 5, nKv: 5, hd: 40, nRot: 40, n: 2, pos0: 4000, style: 'neox', freqFactors: false, freqScale: 0.25, norm: true, wg: 64, yarn: { extFactor: 1, corrDims: [0, 13], mscale: 1.1386 } },
];

/** n tokens of nh heads (f32 [n, nh·hd]) normed (optional) and rotated at pos0 + t, as src/cpu/forward.ts does */
function reference(x: Float32Array, w: Float32Array, nh: number, c: Case, r: RopeSpec): Float32Array {
  const out = Float32Array.from(x);
  const row = nh * c.hd;
  if (c.norm) rmsNorm(out, out, w, 1e-6, c.n * nh);
  for (let t = 0; t < c.n; t++) rope(out.subarray(t * row, (t + 1) * row), nh, c.hd, c.pos0 + t, r);
  return out;
}

describe.skipIf(!ctx)('qk_norm_rope variants (adjacent pairs, rope_freqs, freq scale) vs src/cpu/ops.ts rope', () => {
  const g = ctx!;
  for (const c of CASES) {
    const name = `${c.style} ${c.nHead}/${c.nKv} heads of ${c.hd}, n_rot ${c.nRot}, ${c.n} tokens at ${c.pos0}` +
      `${c.freqFactors ? ', rope_freqs' : ''}${c.freqScale !== 1 ? `, scale ${c.freqScale}` : ''}${c.yarn ? ', YaRN' : ''}${c.norm ? ', normed' : ''}, WG ${c.wg}`;
    it(name, async () => {
      const rand = rng(c.nHead * 97 + c.hd + c.pos0);
      const qRow = c.nHead * c.hd;
      const kRow = c.nKv * c.hd;
      const q = randomF32(rand, c.n * qRow, -3, 3);
      const k = randomF32(rand, c.n * kRow, -3, 3);
      const v = randomF32(rand, c.n * kRow, -3, 3);
      const qw = randomF32(rand, c.hd, 0.5, 1.5);
      const kw = randomF32(rand, c.hd, 0.5, 1.5);
      const ff = c.freqFactors ? randomF32(rand, c.nRot / 2, 1, 8) : null;
      const r: RopeSpec = { nRot: c.nRot, base: 5e5, style: c.style, freqFactors: ff, freqScale: c.freqScale, yarn: c.yarn };
      const [qb, kb, vb, qwb, kwb] = [q, k, v, qw, kw].map((a) => createStorageFrom(g, a));
      const ffb = ff ? createStorageFrom(g, ff) : undefined;
      const cache = createKvCache(g, { nCtx: c.pos0 + c.n, nHeadKv: c.nKv, headDimK: c.hd, headDimV: c.hd, f16: false });
      const launch = await createQKNormRope(g, {
        x: qb!, weight: qwb!, nHeads: c.nHead, headDim: c.hd, nRot: c.nRot, eps: 1e-6, base: 5e5, norm: c.norm,
        style: c.style, freqFactors: ffb, freqScale: c.freqScale, yarn: c.yarn, workgroupSize: c.wg,
        k: { x: kb!, weight: kwb!, nHeads: c.nKv }, kv: { cache, v: vb! },
      });
      launch.update(c.n, c.pos0);
      runLaunches(g, [launch]);
      await g.checkErrors();
      const wantQ = reference(q, qw, c.nHead, c, r);
      const wantK = reference(k, kw, c.nKv, c, r);
      // cos/sin of the GPU are not libm's: a few ulps; with YaRN the angle's mix is one f32 rounding
      // (fused or not) of an angle up to pos·freq_scale: values |x| ≤ 3 move by 3·ulp(angle)
      const tol = 3e-5 + (c.yarn ? 3 * 2.4e-7 * (c.pos0 + c.n) * c.freqScale : 0);
      expectClose('q', await readF32(g, qb!, c.n * qRow), wantQ, tol, 3e-5);
      expectClose('k', await readF32(g, kb!, c.n * kRow), wantK, tol, 3e-5);
      const kc = await readF32(g, cache.k, (c.pos0 + c.n) * kRow);
      expectClose('K cache rows', kc.subarray(c.pos0 * kRow), wantK, tol, 3e-5);
      // a wrong pair style, or ignoring the factors, is far off: the test can tell them apart
      const wrong = reference(q, qw, c.nHead, c, { ...r, style: c.style === 'norm' ? 'neox' : 'norm' });
      let diff = 0;
      for (let i = 0; i < wrong.length; i++) diff = Math.max(diff, Math.abs(wrong[i]! - wantQ[i]!));
      expect(diff).toBeGreaterThan(1e-2);
      for (const b of [qb, kb, vb, qwb, kwb, ffb, cache.k, cache.v]) if (b) g.destroyBuffer(b);
    });
  }
});

describe.skipIf(!ctx)('elementwise add with a broadcast row (biases)', () => {
  const g = ctx!;
  for (const [rows, width, wg] of [[1, 96, 64], [7, 84, 256], [3, 1000, 64], [512, 13, 256]] as const) {
    it(`${rows} rows of ${width}, WG ${wg}`, async () => {
      const rand = rng(rows * 31 + width);
      const x = randomF32(rand, rows * width, -2, 2);
      const bias = randomF32(rand, width, -1, 1);
      const xb = createStorageFrom(g, x);
      // the bias at an offset inside its buffer, as a layer's bias is bound
      const padded = new Float32Array(width + 5);
      padded.set(bias, 5);
      const bb = createStorageFrom(g, padded);
      const add = await createAdd(g, { b: { buffer: bb, offset: 5 }, out: xb, n: rows * width, bWidth: width, workgroupSize: wg });
      runLaunches(g, [add]);
      await g.checkErrors();
      const want = Float32Array.from(x);
      addBias(want, bias, rows);
      expectClose('x + bias', await readF32(g, xb, rows * width), want, 0, 0);
      // setCount(n) resizes it like the prefill launches (fewer rows: the rest untouched)
      const xb2 = createStorageFrom(g, x);
      const add2 = await createAdd(g, { b: { buffer: bb, offset: 5 }, out: xb2, n: rows * width, bWidth: width, workgroupSize: wg });
      add2.setCount(width);
      runLaunches(g, [add2]);
      const got2 = await readF32(g, xb2, rows * width);
      expectClose('first row', got2.subarray(0, width), want.subarray(0, width), 0, 0);
      expectClose('other rows', got2.subarray(width), x.subarray(width), 0, 0);
      for (const b of [xb, bb, xb2]) g.destroyBuffer(b);
    });
  }
});
