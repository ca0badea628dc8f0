// Activation round trips (gguf/quants.ts): what llama.cpp's CPU backend does to an activation vector
// before a quantized / F16 / BF16 dot product, bit for bit.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UnsupportedQuantError } from '../../gguf/errors.js';
import {
  activationRoundTrip,
  roundTripBF16,
  roundTripF16,
  roundTripQ8_0,
  roundTripQ8_1,
  roundTripQ8_K,
  vecDotType,
} from '../../gguf/quants.js';
import { GGMLType } from '../../gguf/types.js';
import { activationInput } from './activation-input.js';

const fr = Math.fround;
const sha = (b: Float32Array) => createHash('sha256').update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex').slice(0, 16);

// sha256 (first 16 hex digits) of the decoded activations (d·q as f32; f16/bf16 values widened)
// that the libggml-cpu-icelake.so of @node-llama-cpp/linux-x64 3.22.1 produces from activationInput()
// through its own type_traits_cpu[Q8_0 | Q8_1 | Q8_K | F16 | BF16].from_float (a C harness calling
// the library; node has no FFI, so this is a recorded fact rather than a live check). The repacked
// Q4_K path's ggml_quantize_mat_q8_K_4x8 gives the same Q8_K values (checked the same way; it
// differs only in the sign of some zeros).
const GGML = { Q8_0: '48704c8bd28f9f1c', Q8_1: '48704c8bd28f9f1c', Q8_K: 'dc3682e47b541788', F16: '048beb09096d9ab6', BF16: 'c864b97b994e76e9' };

describe('activation round trips: identical to ggml-cpu (x86-64)', () => {
  const x = activationInput();
  it('Q8_0 (AVX quantize_row_q8_0), Q8_1, Q8_K (quantize_row_q8_K_ref), F16, BF16', () => {
    expect(sha(roundTripQ8_0(x))).toBe(GGML.Q8_0);
    expect(sha(roundTripQ8_1(x))).toBe(GGML.Q8_1);
    expect(sha(roundTripQ8_K(x))).toBe(GGML.Q8_K);
    expect(sha(roundTripF16(x))).toBe(GGML.F16);
    expect(sha(roundTripBF16(x))).toBe(GGML.BF16);
  });
});

describe('activation round trips: hand-computed blocks', () => {
  it('Q8_0: d = amax/127 as f16, q = round-half-even(x·127/amax)', () => {
    // amax = 127/64: d = 1/64 exactly, id = 64; k/128 lands on k/2
    const x = new Float32Array(32);
    x.set([127 / 64, 1 / 128, 3 / 128, 5 / 128, -5 / 128, -1 / 128, 7 / 128]);
    const y = roundTripQ8_0(x);
    // ties go to even (quantize_row_q8_0_ref would round 0.5 → 1 and 2.5 → 3)
    expect(Array.from(y.subarray(0, 8))).toEqual([127 / 64, 0, 2 / 64, 2 / 64, -2 / 64, 0, 4 / 64, 0]);
    // d rounded to f16: f16(1/127) = 2064·2^-18 = 0.00787353515625
    const z = new Float32Array(32);
    z.set([1, 0.5, -0.25]);
    const w = roundTripQ8_0(z);
    expect(w[0]).toBe(127 * 0.00787353515625);
    expect(w[1]).toBe(64 * 0.00787353515625); // 63.5 → 64
    expect(w[2]).toBe(-32 * 0.00787353515625); // −31.75 → −32
    // an all-zero block stays zero; Q8_1 has the same quants and scale
    expect(Array.from(roundTripQ8_0(new Float32Array(32)))).toEqual(new Array(32).fill(0));
    expect(Array.from(roundTripQ8_1(z))).toEqual(Array.from(w));
  });

  it('Q8_K: iscale = −127/max (max = the element of largest magnitude, signed), d = 1/iscale as f32, ties to even', () => {
    const x = new Float32Array(256);
    x.set([2.5, 3.5, -2.5, 126.5, 0.1, -0.5, 1.5, -127]); // max = −127 → iscale = 1, d = 1
    const y = roundTripQ8_K(x);
    expect(Array.from(y.subarray(0, 8))).toEqual([2, 4, -2, 126, 0, 0, 2, -127]); // −0.5 → 0
    const u = new Float32Array(256);
    u.set([2, 1, -1, 0.75]); // max = 2 → iscale = −63.5, d = 1/−63.5 in f32
    const v = roundTripQ8_K(u);
    const d = fr(1 / fr(-127 / 2));
    expect(v[0]).toBe(fr(d * -127));
    expect(v[1]).toBe(fr(d * -64)); // −63.5 → −64
    expect(v[2]).toBe(fr(d * 64));
    expect(v[3]).toBe(fr(d * -48)); // −47.625 → −48
    expect(Array.from(roundTripQ8_K(new Float32Array(256)))).toEqual(new Array(256).fill(0));
  });

  it('F16 and BF16: nearest even, overflow to infinity', () => {
    const f = roundTripF16(Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65520, 2 ** -25, 3 * 2 ** -26, -1.5]));
    expect(Array.from(f)).toEqual([1, 1 + 2 ** -9, Infinity, 0, 2 ** -24, -1.5]);
    const b = roundTripBF16(Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN, -2]));
    expect(b[0]).toBe(1);
    expect(b[1]).toBe(1 + 2 ** -6);
    expect(b[2]).toBeNaN();
    expect(b[3]).toBe(-2);
  });

  it('out may be x; a short out or a partial block is a RangeError', () => {
    const x = activationInput().slice(0, 512);
    const expected = roundTripQ8_K(x);
    expect(roundTripQ8_K(x, x)).toBe(x);
    expect(Array.from(x)).toEqual(Array.from(expected));
    expect(() => roundTripQ8_K(new Float32Array(100))).toThrow(RangeError);
    expect(() => roundTripQ8_0(new Float32Array(48))).toThrow(RangeError);
    expect(() => roundTripQ8_0(new Float32Array(64), new Float32Array(32))).toThrow(RangeError);
  });
});

describe('vecDotType / activationRoundTrip', () => {
  it("maps weight types to ggml-cpu's vec_dot_type", () => {
    expect(vecDotType(GGMLType.F32)).toBe(GGMLType.F32);
    expect(vecDotType(GGMLType.F16)).toBe(GGMLType.F16);
    expect(vecDotType(GGMLType.BF16)).toBe(GGMLType.BF16);
    for (const t of [GGMLType.Q4_0, GGMLType.Q5_0, GGMLType.Q8_0]) expect(vecDotType(t)).toBe(GGMLType.Q8_0);
    for (const t of [GGMLType.Q4_1, GGMLType.Q5_1]) expect(vecDotType(t)).toBe(GGMLType.Q8_1);
    for (const t of [GGMLType.Q2_K, GGMLType.Q3_K, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]) expect(vecDotType(t)).toBe(GGMLType.Q8_K);
    expect(() => vecDotType(GGMLType.Q8_K)).toThrow(UnsupportedQuantError);
  });

  it('dispatches on the weight type; F32 weights leave the activations unchanged', () => {
    const x = activationInput().slice(0, 256);
    expect(Array.from(activationRoundTrip(GGMLType.Q4_K, x))).toEqual(Array.from(roundTripQ8_K(x)));
    expect(Array.from(activationRoundTrip(GGMLType.Q5_0, x))).toEqual(Array.from(roundTripQ8_0(x)));
    expect(Array.from(activationRoundTrip(GGMLType.F16, x))).toEqual(Array.from(roundTripF16(x)));
    const same = activationRoundTrip(GGMLType.F32, x);
    expect(same).not.toBe(x);
    expect(Array.from(same)).toEqual(Array.from(x));
  });
});
