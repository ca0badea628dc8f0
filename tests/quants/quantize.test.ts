// quantize (gguf/quants.ts): llama.cpp's reference quantizers, byte for byte.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UnsupportedQuantError } from '../../gguf/errors.js';
import { dequantize, f32ToBf16, f32ToF16, isQuantizeSupported, quantize } from '../../gguf/quants.js';
import { GGMLType, GGML_TYPE_INFO } from '../../gguf/types.js';
import { mulberry32 } from '../helpers/random.js';

/** 11 blocks of 256: six near-Gaussian (sum of four uniforms: no transcendental functions, so
 * the values are the same on every platform), zeros, a constant, all positive, values on a
 * quarter grid (rounding ties), and sub-blocks spanning 1e-3..1e4. */
function goldenInput(): Float32Array {
  const r = mulberry32(42);
  const g = () => r() + r() + r() + r() - 2;
  const x = new Float32Array(256 * 11);
  let o = 0;
  for (let i = 0; i < 256 * 6; i++) x[o++] = g();
  o += 256; // zeros
  for (let i = 0; i < 256; i++) x[o++] = 0.37;
  for (let i = 0; i < 256; i++) x[o++] = 0.5 + 0.5 * r();
  for (let i = 0; i < 256; i++) x[o++] = Math.round(g() * 16) / 4;
  const scale = [1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4]; // literals: no Math.pow rounding
  for (let i = 0; i < 256; i++) x[o++] = g() * scale[i >> 5]!;
  return x;
}

/** Gaussian values (Box–Muller), for the error bounds. */
function gaussian(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return x;
}

const sha = (b: Uint8Array | Float32Array) =>
  createHash('sha256').update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex').slice(0, 16);

// sha256 (first 16 hex digits) of quantize_row_<type>_ref(goldenInput()) and of dequantize_row_<type>
// of those bytes, computed with the libggml-base.so that ships in @node-llama-cpp/linux-x64 (called
// through Python ctypes; node has no FFI, so this is a recorded fact rather than a live check).
const LLAMA_CPP: Record<string, [GGMLType, string, string]> = {
  Q4_0: [GGMLType.Q4_0, '41736b3edac63fe8', 'fbbf3948b7c5157a'],
  Q4_1: [GGMLType.Q4_1, '1084fe4c99e59cb9', 'ef800b17a21bb6d4'],
  Q5_0: [GGMLType.Q5_0, '3c6cc52f77891297', '55e8f62b74525ea2'],
  Q5_1: [GGMLType.Q5_1, '28446e3cd41c7f5c', '9372525f15a6573c'],
  Q8_0: [GGMLType.Q8_0, '731c544db7100867', '466e7bf10a1424ae'],
  Q4_K: [GGMLType.Q4_K, 'bbdc02a5d59207cc', 'c83ef1b868383837'],
  Q5_K: [GGMLType.Q5_K, '9477330e9ec3827c', '0ec1314d93819891'],
  Q6_K: [GGMLType.Q6_K, 'b9cc8e9a92607738', '2fd0910919e15edf'],
};
// ggml_fp32_to_fp16_row / ggml_fp32_to_bf16_row_ref of goldenInput(), same library.
const LLAMA_CPP_F16 = '0904f003211220fe';
const LLAMA_CPP_BF16 = 'd5834e6929d012f8';

const QUANT_TYPES = Object.entries(LLAMA_CPP).map(([name, [type]]) => [name, type] as const);
const ALL_TYPES = [['F32', GGMLType.F32], ['F16', GGMLType.F16], ['BF16', GGMLType.BF16], ...QUANT_TYPES] as const;

describe('quantize: identical to llama.cpp', () => {
  const x = goldenInput();
  for (const [name, [type, qHash, dqHash]] of Object.entries(LLAMA_CPP)) {
    it(`${name}: same bytes as quantize_row_${name.toLowerCase().replace('_k', '_K')}_ref, same dequantized values`, () => {
      const q = quantize(type, x);
      const info = GGML_TYPE_INFO[type]!;
      expect(q.length).toBe((x.length / info.blockSize) * info.typeSize);
      expect(sha(q)).toBe(qHash);
      expect(sha(dequantize(type, q, x.length))).toBe(dqHash);
    });
  }
  it('F16 and BF16: same bits as ggml_fp32_to_fp16_row / ggml_fp32_to_bf16_row_ref', () => {
    expect(sha(quantize(GGMLType.F16, x))).toBe(LLAMA_CPP_F16);
    expect(sha(quantize(GGMLType.BF16, x))).toBe(LLAMA_CPP_BF16);
  });
});

describe('quantize: round trip', () => {
  // Relative RMSE ‖dequantize(quantize(x)) − x‖ / ‖x‖ on 64×256 Gaussian values; measured
  // (3 seeds): F16 0.021%, BF16 0.167%, Q8_0 0.53%, Q4_0 8.55%, Q4_1 7.8%, Q5_0 4.25%, Q5_1 3.77%,
  // Q4_K 7.14%, Q5_K 3.60%, Q6_K 1.77%. Bounds leave a little room; the lower bounds catch a
  // codec that returns its input.
  const BOUNDS: [string, GGMLType, number, number][] = [
    ['F32', GGMLType.F32, 0, 0],
    ['F16', GGMLType.F16, 1e-4, 3e-4],
    ['BF16', GGMLType.BF16, 1e-3, 2e-3],
    ['Q8_0', GGMLType.Q8_0, 0.004, 0.006],
    ['Q4_0', GGMLType.Q4_0, 0.07, 0.09],
    ['Q4_1', GGMLType.Q4_1, 0.065, 0.085],
    ['Q5_0', GGMLType.Q5_0, 0.035, 0.046],
    ['Q5_1', GGMLType.Q5_1, 0.03, 0.041],
    ['Q4_K', GGMLType.Q4_K, 0.06, 0.076],
    ['Q5_K', GGMLType.Q5_K, 0.03, 0.039],
    ['Q6_K', GGMLType.Q6_K, 0.014, 0.019],
  ];
  const x = gaussian(64 * 256, 1);
  for (const [name, type, lo, hi] of BOUNDS) {
    it(`${name}: relative RMSE in [${lo}, ${hi}]`, () => {
      const y = dequantize(type, quantize(type, x), x.length);
      let e = 0;
      let s = 0;
      for (let i = 0; i < x.length; i++) {
        e += (y[i]! - x[i]!) ** 2;
        s += x[i]! ** 2;
      }
      const rel = Math.sqrt(e / s);
      expect(rel).toBeGreaterThanOrEqual(lo);
      expect(rel).toBeLessThanOrEqual(hi);
    });
  }

  it('values already on the grid come back exactly (Q8_0, Q4_0, Q5_0)', () => {
    const r = mulberry32(5);
    // Q8_0: q/16 with |q| ≤ 127 and one ±127: d = 1/16 exactly
    const a = new Float32Array(64).map(() => Math.floor(r() * 255 - 127) / 16);
    a[3] = 127 / 16;
    a[40] = -127 / 16;
    expect([...dequantize(GGMLType.Q8_0, quantize(GGMLType.Q8_0, a), 64)]).toEqual([...a]);
    // Q4_0: (q-8)/4 with the largest magnitude -2 (q = 0): d = -2/-8
    const b = new Float32Array(64).map(() => (Math.floor(r() * 16) - 8) / 4);
    b[0] = -2;
    b[33] = -2;
    expect([...dequantize(GGMLType.Q4_0, quantize(GGMLType.Q4_0, b), 64)]).toEqual([...b]);
    // Q5_0: (q-16)/8, largest magnitude -2
    const c = new Float32Array(32).map(() => (Math.floor(r() * 32) - 16) / 8);
    c[7] = -2;
    expect([...dequantize(GGMLType.Q5_0, quantize(GGMLType.Q5_0, c), 32)]).toEqual([...c]);
  });

  it('Q8_0 byte layout: half d, then the 32 signed quants', () => {
    const x = new Float32Array(32).map((_, j) => (j - 16) * 0.5);
    x[0] = -127 * 0.0625; // amax 7.9375 → d = 0.0625 (half 0x2c00)
    const q = quantize(GGMLType.Q8_0, x);
    expect([q[0], q[1]]).toEqual([0x00, 0x2c]);
    const qs = [...new Int8Array(q.buffer, 2, 32)];
    expect(qs).toEqual([-127, ...Array.from({ length: 31 }, (_, j) => (j + 1 - 16) * 8)]);
  });
});

describe('quantize: zeros, block independence, views', () => {
  it('all zeros decode to zeros; K-quants and Q8_0 give all-zero bytes', () => {
    const z = new Float32Array(512);
    for (const [name, type] of ALL_TYPES) {
      const q = quantize(type, z);
      const y = dequantize(type, q, z.length);
      expect(y.every((v) => v === 0), name).toBe(true);
      if (type === GGMLType.Q4_K || type === GGMLType.Q5_K || type === GGMLType.Q6_K || type === GGMLType.Q8_0) {
        expect(q.every((b) => b === 0), name).toBe(true);
      }
    }
    // ggml's Q4_0 of zeros: d = max/-8 = -0 (half 0x8000) and every quant 8
    const q4 = quantize(GGMLType.Q4_0, new Float32Array(32));
    expect([...q4]).toEqual([0x00, 0x80, ...Array(16).fill(0x88)]);
  });

  it('blocks are independent: quantizing a concatenation concatenates the blocks', () => {
    const x = goldenInput();
    for (const [name, type] of QUANT_TYPES) {
      const info = GGML_TYPE_INFO[type]!;
      const whole = quantize(type, x);
      const cut = 3 * 256; // a multiple of every block size
      const a = quantize(type, x.subarray(0, cut));
      const b = quantize(type, x.subarray(cut));
      expect(a.length + b.length, name).toBe(whole.length);
      expect(sha(whole), name).toBe(sha(Uint8Array.from([...a, ...b])));
      expect(a.length, name).toBe((cut / info.blockSize) * info.typeSize);
    }
  });

  it('reads values from a Float32Array view at an offset', () => {
    const x = goldenInput();
    const big = new Float32Array(x.length + 10).fill(123.5);
    big.set(x, 7);
    const view = big.subarray(7, 7 + x.length);
    for (const [name, type] of ALL_TYPES) {
      expect(sha(quantize(type, view)), name).toBe(sha(quantize(type, x)));
    }
  });

  it('F32 keeps the bits; F16 and BF16 match the scalar conversions', () => {
    const x = Float32Array.from([1, -2.5, 0.1, 65520, -1e-8, 3.4e38, NaN, -0, 1e-45]);
    expect([...quantize(GGMLType.F32, x)]).toEqual([...new Uint8Array(x.buffer)]);
    const h = new Uint16Array(quantize(GGMLType.F16, x).buffer);
    const b = new Uint16Array(quantize(GGMLType.BF16, x).buffer);
    expect([...h]).toEqual([...x].map((v) => f32ToF16(v)));
    expect([...b]).toEqual([...x].map((v) => f32ToBf16(v)));
  });

  it('an empty input gives no bytes', () => {
    for (const [, type] of ALL_TYPES) expect(quantize(type, new Float32Array(0)).length).toBe(0);
  });
});

describe('quantize: errors', () => {
  it('rejects lengths that are not a multiple of the block size', () => {
    expect(() => quantize(GGMLType.Q4_K, new Float32Array(255))).toThrow(RangeError);
    expect(() => quantize(GGMLType.Q6_K, new Float32Array(288))).toThrow(/not a multiple of the block size 256/);
    expect(() => quantize(GGMLType.Q8_0, new Float32Array(33))).toThrow(RangeError);
  });

  it('rejects types it cannot encode with UnsupportedQuantError naming the type', () => {
    for (const [type, name] of [[GGMLType.Q2_K, 'Q2_K'], [GGMLType.Q8_K, 'Q8_K'], [GGMLType.IQ4_XS, 'IQ4_XS'],
      [1000, 'type1000']] as const) {
      expect(isQuantizeSupported(type)).toBe(false);
      expect(() => quantize(type as GGMLType, new Float32Array(256))).toThrow(UnsupportedQuantError);
      expect(() => quantize(type as GGMLType, new Float32Array(256))).toThrow(name);
    }
    for (const [, type] of ALL_TYPES) expect(isQuantizeSupported(type)).toBe(true);
  });
});
