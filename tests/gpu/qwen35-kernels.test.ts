// gated.wgsl (the Qwen3.5 hybrids' gates) vs the CPU reference in src/cpu/ops.ts (gatedRmsNorm,
// sigmoid, swiglu): awkward head dims and widths, several token counts through setCount on one
// launch, operands at offsets with padded strides. Plus the bindings against the WGSL (wgsl_reflect).
import { afterAll, describe, it } from 'vitest';
import { gatedRmsNorm, sigmoid, silu } from '../../src/cpu/ops.js';
import { createGatedRmsNorm, createSigmoidGate, createSwigluShexp, GATED_SPECS } from '../../src/gpu/gated.js';
import { createStorage, createStorageFrom, readF32, writeBuffer } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';
import { expectSpecMatchesWgsl } from './reflect.js';

describe('gated.wgsl bindings match the launcher specs (wgsl_reflect)', () => {
  for (const [name, spec] of Object.entries(GATED_SPECS)) it(name, () => expectSpecMatchesWgsl(spec));
});

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** n rows of `width` values from `src` placed `stride` apart after `offset` zeros */
function strided(src: Float32Array, n: number, width: number, stride: number, offset: number): Float32Array {
  const out = new Float32Array(offset + n * stride);
  for (let t = 0; t < n; t++) out.set(src.subarray(t * width, (t + 1) * width), offset + t * stride);
  return out;
}

/** the rows back out of a strided read */
function unstride(buf: Float32Array, n: number, width: number, stride: number): Float32Array {
  const out = new Float32Array(n * width);
  for (let t = 0; t < n; t++) out.set(buf.subarray(t * stride, t * stride + width), t * width);
  return out;
}

describe.skipIf(!ctx)('gated_rms_norm: RMSNorm(x_h) ⊙ w ⊙ silu(z_h)', () => {
  const g = ctx!;
  for (const [heads, d, counts, wg] of [
    [6, 14, [7, 1, 3], 32],
    [4, 12, [1, 5], 64],
    [32, 128, [3, 1], 64],
    [3, 100, [2], 128],
    [1, 256, [4, 1], 64],
  ] as const) {
    it(`${heads} heads of ${d}, tokens ${counts.join('+')}, WG ${wg}`, async () => {
      const rand = rng(heads * 1000 + d);
      const row = heads * d;
      const maxN = Math.max(...counts);
      const w = randomF32(rand, d, 0.5, 1.5);
      // x contiguous at an offset; z inside a wider row (as in the fused projection); out padded
      const xOff = 3;
      const zOff = 5;
      const zStride = row + 2 * heads + 7;
      const oOff = 1;
      const oStride = row + 4;
      const xb = createStorage(g, (xOff + maxN * row) * 4);
      const zb = createStorage(g, (zOff + maxN * zStride) * 4);
      const ob = createStorage(g, (oOff + maxN * oStride) * 4);
      const launch = await createGatedRmsNorm(g, {
        x: { buffer: xb, offset: xOff }, z: { buffer: zb, offset: zOff }, zStride, out: { buffer: ob, offset: oOff }, outStride: oStride,
        weight: createStorageFrom(g, w), nHeads: heads, headDim: d, eps: 1e-6, nTokens: maxN, workgroupSize: wg,
      });
      for (const n of counts) {
        const x = randomF32(rand, n * row, -3, 3);
        const z = randomF32(rand, n * row, -6, 6);
        writeBuffer(g, xb, x, xOff * 4);
        writeBuffer(g, zb, strided(z, n, row, zStride, 0), zOff * 4);
        launch.setCount(n);
        runLaunches(g, [launch]);
        const ref = new Float32Array(n * row);
        gatedRmsNorm(ref, x, w, z, 1e-6, n * heads);
        expectClose(`${n} tokens`, unstride(await readF32(g, ob, n * oStride, oOff), n, row, oStride), ref, 2e-6, 2e-5);
      }
    });
  }
});

describe.skipIf(!ctx)('sigmoid_gate: o ⊙= sigmoid(gate), in place', () => {
  const g = ctx!;
  for (const [width, counts, wg] of [
    [132, [7, 1], 256],
    [4096, [3, 1], 256],
    [37, [300, 1], 32],
  ] as const) {
    it(`width ${width}, tokens ${counts.join('+')}, WG ${wg}`, async () => {
      const rand = rng(width);
      const maxN = Math.max(...counts);
      // the gate beside the query in one row [q | gate], as gated attention's Wq writes it
      const gStride = 2 * width;
      const gb = createStorage(g, (width + maxN * gStride) * 4);
      const ob = createStorage(g, (2 + maxN * width) * 4);
      const launch = await createSigmoidGate(g, { gate: { buffer: gb, offset: width }, gateStride: gStride, o: { buffer: ob, offset: 2 }, width, nTokens: maxN, workgroupSize: wg });
      for (const n of counts) {
        const o = randomF32(rand, n * width, -2, 2);
        const gate = randomF32(rand, n * width, -8, 8);
        writeBuffer(g, gb, strided(gate, n, width, gStride, width));
        writeBuffer(g, ob, o, 2 * 4);
        launch.setCount(n);
        runLaunches(g, [launch]);
        const ref = o.map((v, i) => v * Math.fround(sigmoid(gate[i]!)));
        expectClose(`${n} tokens`, await readF32(g, ob, n * width, 2), ref, 1e-6, 2e-6);
      }
    });
  }
});

describe.skipIf(!ctx)('swiglu_shexp: silu(g) ⊙ u · sigmoid(w·x)', () => {
  const g = ctx!;
  for (const [E, F, counts, wg] of [
    [76, 38, [7, 1], 256],
    [2048, 512, [2, 1], 256],
    [96, 160, [33, 1], 32],
  ] as const) {
    it(`n_embd ${E}, n_ff ${F}, tokens ${counts.join('+')}, WG ${wg}`, async () => {
      const rand = rng(E * 7 + F);
      const maxN = Math.max(...counts);
      const w = randomF32(rand, E, -1 / Math.sqrt(E), 1 / Math.sqrt(E));
      const xOff = 4;
      const guStride = 2 * F + 3;
      const xb = createStorage(g, (xOff + maxN * E) * 4);
      const gub = createStorage(g, maxN * guStride * 4);
      const ab = createStorage(g, (1 + maxN * F) * 4);
      const sb = createStorage(g, (2 + maxN) * 4);
      const launch = await createSwigluShexp(g, {
        x: { buffer: xb, offset: xOff }, w: createStorageFrom(g, w), gu: gub, guStride, act: { buffer: ab, offset: 1 }, gate: { buffer: sb, offset: 2 },
        nEmbd: E, nFf: F, nTokens: maxN, workgroupSize: wg,
      });
      for (const n of counts) {
        const x = randomF32(rand, n * E, -2, 2);
        const gu = randomF32(rand, n * 2 * F, -4, 4);
        writeBuffer(g, xb, x, xOff * 4);
        writeBuffer(g, gub, strided(gu, n, 2 * F, guStride, 0));
        launch.setCount(n);
        runLaunches(g, [launch]);
        const s = new Float32Array(n);
        const act = new Float32Array(n * F);
        for (let t = 0; t < n; t++) {
          let dot = 0;
          for (let i = 0; i < E; i++) dot += x[t * E + i]! * w[i]!;
          s[t] = sigmoid(dot);
          for (let i = 0; i < F; i++) act[t * F + i] = Math.fround(silu(gu[t * 2 * F + i]!)) * gu[t * 2 * F + F + i]! * s[t]!;
        }
        expectClose(`gate, ${n} tokens`, await readF32(g, sb, n, 2), s, 1e-6, 1e-5);
        expectClose(`act, ${n} tokens`, await readF32(g, ab, n * F, 1), act, 1e-6, 2e-5);
      }
    });
  }
});
