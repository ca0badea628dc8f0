// src/cpu/llamacpp.ts: the building blocks of llama.cpp's x86 arithmetic, and the kernels' agreement
// with the plain computation (round trip + f64 dot). Bit-for-bit agreement with llama.cpp itself is
// what the golden tests measure (tests/golden: KL 0 on qwen3moe-q8_0, ~1e-14 on qwen3-q4_k_m).
import { describe, expect, it } from 'vitest';
import { activationRoundTrip, quantize } from '../../gguf/quants.js';
import { GGMLType } from '../../gguf/types.js';
import { fmaf, hsum8, llamaAttention, llamaMatMul, reduce16 } from '../../src/cpu/llamacpp.js';
import { attention, dequantizeRow, dot, normalizedMSE, roundToF16, type QuantMatrix } from '../../src/cpu/ops.js';
import { mulberry32 as rng } from '../helpers/random.js';

const fr = Math.fround;

function gauss(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() + r() + r() + r() - 2) * scale);
}

function matrix(type: GGMLType, rows: number, cols: number, seed: number): QuantMatrix {
  return { type, rows, cols, data: quantize(type, gauss(rows * cols, seed, 0.2)), numerics: 'llamacpp' };
}

/** the plain computation: activations round-tripped, f64 dot with the dequantized rows */
function reference(w: QuantMatrix, x: Float32Array, n: number): Float32Array {
  const xin = w.type === GGMLType.F32 ? x : activationRoundTrip(w.type, x.subarray(0, n * w.cols));
  const out = new Float32Array(n * w.rows);
  for (let r = 0; r < w.rows; r++) {
    const row = dequantizeRow(w, r);
    for (let t = 0; t < n; t++) out[t * w.rows + r] = dot(row, xin, t * w.cols, w.cols);
  }
  return out;
}

describe('fmaf', () => {
  it('rounds a·b + c once, also where the f64 sum lands exactly halfway between two floats', () => {
    // a·b = 2^-24 − 2^-70, c = 1 + 2^-23: the f64 sum is the midpoint 1 + 2^-23 + 2^-24, the exact
    // sum is just below it
    const a = 1 + 2 ** -23;
    const b = 2 ** -24 - 2 ** -47;
    const c = 1 + 2 ** -23;
    expect(fr(a * b + c)).toBe(1 + 2 ** -22); // double rounding
    expect(fmaf(a, b, c)).toBe(1 + 2 ** -23);
    expect(fmaf(-a, b, -c)).toBe(-(1 + 2 ** -23));
    // and just above a midpoint
    expect(fmaf(1 + 2 ** -23, 2 ** -24 + 2 ** -47, 1)).toBe(1 + 2 ** -23);
    // ordinary values: the same as rounding the exact f64 result
    const r = rng(3);
    for (let i = 0; i < 1000; i++) {
      const x = fr(r() * 4 - 2);
      const y = fr(r() * 4 - 2);
      const z = fr(r() * 4 - 2);
      expect(fmaf(x, y, z)).toBe(fr(x * y + z));
    }
  });
});

describe('horizontal sums in ggml order', () => {
  it('hsum8: (v4+v0)+(v6+v2) + ((v5+v1)+(v7+v3))', () => {
    const v = [1, 0, 2 ** 25, 0, 1, 0, -(2 ** 25), 0];
    // (1+1) + (−2^25 + 2^25) = 2; left to right in f32 it would be 0
    expect(hsum8(v)).toBe(2);
  });
  it('_mm512_reduce_add_ps: halves of 8, of 4, then [0]+[2], [1]+[3]', () => {
    const v = new Array(16).fill(0);
    v[0] = 1;
    v[8] = 1;
    v[4] = 2 ** 25;
    v[12] = -(2 ** 25);
    expect(reduce16(v)).toBe(2);
  });
});

describe('llamaMatMul', () => {
  // bound on the normalized MSE against the round trip + f64 dot: only the order of the f32 sums
  // differs, except for Q4_1 / Q5_1, whose mins multiply Q8_1's s = f16(d·Σq) instead of Σ f16(d)·q
  const cases: [string, GGMLType, number, number, number][] = [
    ['Q8_0', GGMLType.Q8_0, 24, 96, 1e-11],
    ['Q4_0 (12 rows: not repacked)', GGMLType.Q4_0, 12, 64, 1e-11],
    ['Q4_0 repacked (rows % 8 == 0)', GGMLType.Q4_0, 16, 64, 1e-11],
    ['Q5_0', GGMLType.Q5_0, 20, 64, 1e-11],
    ['Q4_1', GGMLType.Q4_1, 12, 96, 1e-6],
    ['Q5_1', GGMLType.Q5_1, 8, 64, 1e-6],
    ['Q4_K repacked (rows % 8 == 0)', GGMLType.Q4_K, 16, 512, 1e-11],
    ['Q4_K not repacked', GGMLType.Q4_K, 12, 256, 1e-11],
    ['Q5_K', GGMLType.Q5_K, 9, 512, 1e-11],
    ['Q6_K', GGMLType.Q6_K, 10, 512, 1e-11],
    ['F32 (tinyBLAS: k % 16, rows % 4)', GGMLType.F32, 8, 48, 1e-11],
    ['F32 (vec_dot: odd shapes)', GGMLType.F32, 10, 150, 1e-11],
    ['F16', GGMLType.F16, 12, 80, 1e-11],
  ];
  for (const [label, type, rows, cols, bound] of cases) {
    it(`${label}: close to the round trip + f64 dot`, () => {
      const w = matrix(type, rows, cols, 7);
      const n = 7;
      const x = gauss(n * cols, 11);
      const out = new Float32Array(n * rows);
      llamaMatMul(out, w, x, n);
      const err = normalizedMSE(out, reference(w, x, n));
      expect(err).toBeLessThan(bound);
      // one row at a time (decode) is within the same distance
      const one = new Float32Array(rows);
      llamaMatMul(one, w, x.subarray(3 * cols, 4 * cols), 1);
      expect(normalizedMSE(one, out.subarray(3 * rows, 4 * rows))).toBeLessThan(1e-11);
    });
  }

  it('Q4_K repacked: a batch goes through gemm in groups of 4 rows and gemv for the last n % 4; mul_mat_id is gemv throughout', () => {
    const w = matrix(GGMLType.Q4_K, 64, 512, 5);
    const n = 5;
    const x = gauss(n * 512, 9, 3);
    const batch = new Float32Array(n * 64);
    llamaMatMul(batch, w, x, n);
    const single = (t: number) => {
      const o = new Float32Array(64);
      llamaMatMul(o, w, x.subarray(t * 512, (t + 1) * 512), 1);
      return Array.from(o);
    };
    // the 5th row takes the one-row path either way
    expect(Array.from(batch.subarray(4 * 64))).toEqual(single(4));
    // the first four are summed per 64 values instead of per 256: some results differ in the last bits
    const differs = [0, 1, 2, 3].some((t) => single(t).some((v, r) => v !== batch[t * 64 + r]));
    expect(differs).toBe(true);
    const ids = new Float32Array(n * 64);
    llamaMatMul(ids, w, x, n, true);
    for (let t = 0; t < n; t++) expect(Array.from(ids.subarray(t * 64, (t + 1) * 64))).toEqual(single(t));
  });

  it('refuses types without a reproduced kernel', () => {
    const w = matrix(GGMLType.BF16, 4, 64, 1);
    expect(() => llamaMatMul(new Float32Array(4), w, new Float32Array(64), 1)).toThrow(RangeError);
  });
});

describe('llamaAttention', () => {
  it('is the F16-cache attention: close to the exact one on the same cache, and one-token batches take vec_dot', () => {
    const nHead = 4;
    const nHeadKv = 2;
    const D = 32;
    const nKv = 40;
    const q = gauss(nHead * D, 1);
    const k = gauss(nKv * nHeadKv * D, 2);
    const v = gauss(nKv * nHeadKv * D, 3);
    roundToF16(k);
    roundToF16(v);
    const scale = fr(1 / fr(Math.sqrt(D)));
    const exact = new Float32Array(nHead * D);
    attention(exact, q, k, v, nHead, nHeadKv, D, D, nKv, scale);
    const llama = new Float32Array(nHead * D);
    llamaAttention(llama, q, k, v, nHead, nHeadKv, D, D, nKv, scale, 8);
    const err = normalizedMSE(llama, exact);
    expect(err).toBeGreaterThan(0); // q and the softmax weights in f16
    expect(err).toBeLessThan(1e-5);
    const decode = new Float32Array(nHead * D);
    llamaAttention(decode, q, k, v, nHead, nHeadKv, D, D, nKv, scale, 1);
    expect(normalizedMSE(decode, llama)).toBeLessThan(1e-12);
  });
});
