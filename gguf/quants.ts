// Quant codecs: ggml block formats decoded to f32 and encoded from f32, plus f16/bf16 scalars.
//
// Written from the format description in shared/docs/quants.md and the behaviour of llama.cpp's
// ggml-quants.c (dequantize_row_*, quantize_row_*_ref). Everything that ggml computes in f32 is
// reproduced with Math.fround at each step, and C's conversions and NaN truthiness are followed,
// so that:
//   - dequantize gives the same f32 values as ggml's dequantize_row_* (bit for bit);
//   - quantize gives the same bytes as the reference quantizers (what llama-quantize uses without
//     an importance matrix), also for inputs with huge values, inf or NaN. Checked against the
//     libggml-base.so of node-llama-cpp; tests/quants/quantize.test.ts records hashes of its output.
// The K-quant searches skip candidates that provably cannot win (see makeQkx2Quants and
// makeQxQuants); that changes the speed only, never the result.
// The host is assumed little-endian (every platform Node runs on), like the GGUF files themselves.

import { UnsupportedQuantError } from './errors.js';
import { GGMLType, GGML_TYPE_INFO, ggmlTypeName } from './types.js';

const fr = Math.fround;

// ---------------------------------------------------------------------------------------------
// f16 / bf16 scalars
// ---------------------------------------------------------------------------------------------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE half bits → f32 value (exact; NaN payloads are not kept in the returned number). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** f32 bit pattern → IEEE half bits, round to nearest even; overflow → ±inf; NaN → sign|0x7e00
 * (ggml's portable ggml_compute_fp32_to_fp16). */
function f32BitsToF16(w: number): number {
  const sign = (w >>> 16) & 0x8000;
  const exp = (w >>> 23) & 0xff;
  let mant = w & 0x7fffff;
  if (exp === 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  if (exp > 142) return sign | 0x7c00; // ≥ 2^16: beyond the largest half even before rounding
  if (exp >= 113) {
    // normal half (the rounding carry may run into the exponent, up to infinity: that is right)
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  if (exp < 102) return sign; // below 2^-25: rounds to (signed) zero
  // subnormal half: units of 2^-24
  mant |= 0x800000;
  const shift = 126 - exp; // 14..24
  let h = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** Number → IEEE half bits as ggml's GGML_FP32_TO_FP16 does it: the value is first taken as an
 * f32 (Math.fround), then rounded to nearest even; overflow gives ±inf, NaN gives sign|0x7e00. */
export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16(scratchU32[0]!);
}

/** bfloat16 bits → f32 value (the top half of an f32). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** f32 bit pattern → bf16 bits, as ggml_compute_fp32_to_bf16: round to nearest even, subnormals
 * kept, NaN made quiet (bit 6 set) with its sign and top payload bits kept. */
function f32BitsToBf16(w: number): number {
  if ((w & 0x7fffffff) >>> 0 > 0x7f800000) return ((w >>> 16) | 64) & 0xffff;
  return ((w + (0x7fff + ((w >>> 16) & 1))) >>> 16) & 0xffff;
}

/** Number → bf16 bits with ggml's rounding (value first taken as an f32). */
export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16(scratchU32[0]!);
}

// f16 → f32 lookup, as bits (so NaN payloads survive) and as values; built on first use.
let f16TableBits: Uint32Array | undefined;
let f16Table: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    f16TableBits = new Uint32Array(f16Table.buffer);
    for (let h = 0; h < 65536; h++) {
      const exp = (h >>> 10) & 0x1f;
      if (exp === 0x1f) {
        // inf / NaN: widen the bits directly (payload shifted into the f32 mantissa)
        f16TableBits[h] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13);
      } else {
        f16Table[h] = f16ToF32(h);
      }
    }
  }
  return f16Table;
}
function halfTableBits(): Uint32Array {
  halfTable();
  return f16TableBits!;
}

// ---------------------------------------------------------------------------------------------
// Type support
// ---------------------------------------------------------------------------------------------

const SUPPORTED = new Set<number>([
  GGMLType.F32, GGMLType.F16, GGMLType.BF16,
  GGMLType.Q4_0, GGMLType.Q4_1, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q8_0,
  GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.MXFP4,
]);

/** Whether `dequantize` can decode this ggml type. */
export function isSupportedType(type: number): boolean {
  return SUPPORTED.has(type);
}

/** Whether `quantize` can encode this ggml type (the same set as `isSupportedType`). */
export function isQuantizeSupported(type: number): boolean {
  return SUPPORTED.has(type);
}

function checkType(type: number, what: 'dequantize' | 'quantize'): { blockSize: number; typeSize: number } {
  if (!SUPPORTED.has(type)) {
    throw new UnsupportedQuantError(
      `cannot ${what} tensor type ${ggmlTypeName(type)} (ggml type ${type}); supported: ` +
        [...SUPPORTED].map((t) => ggmlTypeName(t)).join(', '),
      type,
    );
  }
  return GGML_TYPE_INFO[type]!;
}

// ---------------------------------------------------------------------------------------------
// dequantize
// ---------------------------------------------------------------------------------------------

/**
 * Decodes `nElements` values of ggml type `type` from `src` (which may be a subarray at any byte
 * offset) into `dst`, giving the same f32 values as ggml's dequantize_row_*.
 * @param nElements a multiple of the type's block size
 * @param dst receives the values; allocated when omitted; must hold at least nElements
 * @returns dst (its first nElements entries written)
 * @throws UnsupportedQuantError for a type that cannot be decoded (see isSupportedType)
 * @throws RangeError when nElements is not a non-negative multiple of the block size, src holds
 *   fewer bytes than nElements need, or dst is too short
 */
export function dequantize(type: GGMLType, src: Uint8Array, nElements: number, dst?: Float32Array): Float32Array {
  const { blockSize, typeSize } = checkType(type, 'dequantize');
  const name = ggmlTypeName(type);
  if (!Number.isSafeInteger(nElements) || nElements < 0) {
    throw new RangeError(`dequantize ${name}: element count ${nElements} is not a non-negative integer`);
  }
  if (nElements % blockSize !== 0) {
    throw new RangeError(`dequantize ${name}: element count ${nElements} is not a multiple of the block size ${blockSize}`);
  }
  const nb = nElements / blockSize;
  const need = nb * typeSize;
  if (src.length < need) {
    throw new RangeError(`dequantize ${name}: ${nElements} elements need ${need} bytes, src has ${src.length}`);
  }
  if (dst === undefined) dst = new Float32Array(nElements);
  else if (dst.length < nElements) {
    throw new RangeError(`dequantize ${name}: dst holds ${dst.length} values, ${nElements} needed`);
  }
  switch (type) {
    case GGMLType.F32:
      new Uint8Array(dst.buffer, dst.byteOffset, need).set(src.subarray(0, need));
      break;
    case GGMLType.F16: {
      const tb = halfTableBits();
      const out = new Uint32Array(dst.buffer, dst.byteOffset, nElements);
      for (let i = 0, p = 0; i < nElements; i++, p += 2) out[i] = tb[src[p]! | (src[p + 1]! << 8)]!;
      break;
    }
    case GGMLType.BF16: {
      const out = new Uint32Array(dst.buffer, dst.byteOffset, nElements);
      for (let i = 0, p = 0; i < nElements; i++, p += 2) out[i] = ((src[p]! | (src[p + 1]! << 8)) << 16) >>> 0;
      break;
    }
    case GGMLType.Q8_0: dequantQ8_0(src, nb, dst); break;
    case GGMLType.Q4_0: dequantQ4_0(src, nb, dst); break;
    case GGMLType.MXFP4: dequantMXFP4(src, nb, dst); break;
    case GGMLType.Q4_1: dequantQ4_1(src, nb, dst); break;
    case GGMLType.Q5_0: dequantQ5_0(src, nb, dst); break;
    case GGMLType.Q5_1: dequantQ5_1(src, nb, dst); break;
    case GGMLType.Q4_K: dequantQ4K(src, nb, dst); break;
    case GGMLType.Q5_K: dequantQ5K(src, nb, dst); break;
    case GGMLType.Q6_K: dequantQ6K(src, nb, dst); break;
  }
  return dst;
}

// Q8_0: half d; i8 qs[32]; y = q*d
function dequantQ8_0(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 34, o += 32) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    for (let j = 0; j < 32; j++) y[o + j] = ((src[p + 2 + j]! << 24) >> 24) * d;
  }
}

// Q4_0: half d; u8 qs[16]; y[j] = (lo-8)*d, y[j+16] = (hi-8)*d
function dequantQ4_0(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 18, o += 32) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const q = src[p + 2 + j]!;
      y[o + j] = ((q & 15) - 8) * d;
      y[o + j + 16] = ((q >>> 4) - 8) * d;
    }
  }
}

// MXFP4 (gpt-oss): u8 e (E8M0 scale); u8 qs[16] of E2M1 codes; y = kvalues[q] · 2^(e − 128)
// (ggml's kvalues are twice the E2M1 values, hence the half scale; low nibbles are elements 0..15)
const MXFP4_VALUES = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
/** ggml_e8m0_to_fp32_half: 2^(e − 128) as an f32 (denormal below e = 2) */
export function e8m0ToF32Half(e: number): number {
  const bits = e < 2 ? 0x00200000 << e : (e - 1) << 23;
  return new Float32Array(new Uint32Array([bits >>> 0]).buffer)[0]!;
}
function dequantMXFP4(src: Uint8Array, nb: number, y: Float32Array): void {
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 17, o += 32) {
    const d = e8m0ToF32Half(src[p]!);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 1 + j]!;
      y[o + j] = MXFP4_VALUES[q & 15]! * d;
      y[o + j + 16] = MXFP4_VALUES[q >>> 4]! * d;
    }
  }
}

// Q4_1: half d; half m; u8 qs[16]; y = q*d + m
function dequantQ4_1(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 20, o += 32) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    const m = ht[src[p + 2]! | (src[p + 3]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const q = src[p + 4 + j]!;
      y[o + j] = fr((q & 15) * d) + m;
      y[o + j + 16] = fr((q >>> 4) * d) + m;
    }
  }
}

function readU32(src: Uint8Array, p: number): number {
  return (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24)) >>> 0;
}

// Q5_0: half d; u32 qh; u8 qs[16]; 5-bit q - 16
function dequantQ5_0(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 22, o += 32) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    const qh = readU32(src, p + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 6 + j]!;
      y[o + j] = (((q & 15) | (((qh >>> j) & 1) << 4)) - 16) * d;
      y[o + j + 16] = (((q >>> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  }
}

// Q5_1: half d; half m; u32 qh; u8 qs[16]; y = q*d + m
function dequantQ5_1(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 24, o += 32) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    const m = ht[src[p + 2]! | (src[p + 3]! << 8)]!;
    const qh = readU32(src, p + 4);
    for (let j = 0; j < 16; j++) {
      const q = src[p + 8 + j]!;
      y[o + j] = fr(((q & 15) | (((qh >>> j) & 1) << 4)) * d) + m;
      y[o + j + 16] = fr(((q >>> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d) + m;
    }
  }
}

// 6-bit scale and min of sub-block j from the 12 packed bytes at s (Q4_K / Q5_K).
function scaleK4(src: Uint8Array, s: number, j: number): number {
  return j < 4 ? src[s + j]! & 63 : (src[s + j + 4]! & 15) | ((src[s + j - 4]! >>> 6) << 4);
}
function minK4(src: Uint8Array, s: number, j: number): number {
  return j < 4 ? src[s + j + 4]! & 63 : (src[s + j + 4]! >>> 4) | ((src[s + j]! >>> 6) << 4);
}

// Q4_K: half d @0; half dmin @2; scales[12] @4; qs[128] @16
function dequantQ4K(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 144) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    const dmin = ht[src[p + 2]! | (src[p + 3]! << 8)]!;
    for (let c = 0; c < 4; c++) {
      const j = 2 * c;
      const d1 = fr(d * scaleK4(src, p + 4, j));
      const m1 = fr(dmin * minK4(src, p + 4, j));
      const d2 = fr(d * scaleK4(src, p + 4, j + 1));
      const m2 = fr(dmin * minK4(src, p + 4, j + 1));
      const q = p + 16 + 32 * c;
      for (let l = 0; l < 32; l++) y[o + l] = fr(d1 * (src[q + l]! & 15)) - m1;
      for (let l = 0; l < 32; l++) y[o + 32 + l] = fr(d2 * (src[q + l]! >>> 4)) - m2;
      o += 64;
    }
  }
}

// Q5_K: half d @0; half dmin @2; scales[12] @4; qh[32] @16; qs[128] @48
function dequantQ5K(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 176) {
    const d = ht[src[p]! | (src[p + 1]! << 8)]!;
    const dmin = ht[src[p + 2]! | (src[p + 3]! << 8)]!;
    const qh = p + 16;
    for (let c = 0; c < 4; c++) {
      const j = 2 * c;
      const d1 = fr(d * scaleK4(src, p + 4, j));
      const m1 = fr(dmin * minK4(src, p + 4, j));
      const d2 = fr(d * scaleK4(src, p + 4, j + 1));
      const m2 = fr(dmin * minK4(src, p + 4, j + 1));
      const u1 = 1 << j;
      const u2 = 2 << j;
      const q = p + 48 + 32 * c;
      for (let l = 0; l < 32; l++) {
        y[o + l] = fr(d1 * ((src[q + l]! & 15) + (src[qh + l]! & u1 ? 16 : 0))) - m1;
      }
      for (let l = 0; l < 32; l++) {
        y[o + 32 + l] = fr(d2 * ((src[q + l]! >>> 4) + (src[qh + l]! & u2 ? 16 : 0))) - m2;
      }
      o += 64;
    }
  }
}

// Q6_K: ql[128] @0; qh[64] @128; i8 scales[16] @192; half d @208
function dequantQ6K(src: Uint8Array, nb: number, y: Float32Array): void {
  const ht = halfTable();
  for (let b = 0, p = 0, o = 0; b < nb; b++, p += 210) {
    const d = ht[src[p + 208]! | (src[p + 209]! << 8)]!;
    for (let h = 0; h < 2; h++) {
      const ql = p + 64 * h;
      const qh = p + 128 + 32 * h;
      const sc = p + 192 + 8 * h;
      for (let half = 0; half < 2; half++) {
        // l in [16*half, 16*half+16) uses scale index is = half
        const s1 = fr(d * ((src[sc + half]! << 24) >> 24));
        const s2 = fr(d * ((src[sc + half + 2]! << 24) >> 24));
        const s3 = fr(d * ((src[sc + half + 4]! << 24) >> 24));
        const s4 = fr(d * ((src[sc + half + 6]! << 24) >> 24));
        for (let l = 16 * half; l < 16 * half + 16; l++) {
          const a = src[ql + l]!;
          const c = src[ql + l + 32]!;
          const hb = src[qh + l]!;
          y[o + l] = s1 * (((a & 15) | ((hb & 3) << 4)) - 32);
          y[o + l + 32] = s2 * (((c & 15) | (((hb >>> 2) & 3) << 4)) - 32);
          y[o + l + 64] = s3 * (((a >>> 4) | (((hb >>> 4) & 3) << 4)) - 32);
          y[o + l + 96] = s4 * (((c >>> 4) | (((hb >>> 6) & 3) << 4)) - 32);
        }
      }
      o += 128;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// quantize
// ---------------------------------------------------------------------------------------------

/**
 * Encodes `values` as ggml type `type` the way llama.cpp's reference quantizers do
 * (quantize_row_*_ref: what llama-quantize uses without an importance matrix), in f32 arithmetic
 * step by step. The bytes are the ggml block layout, ready for a GGUF tensor.
 * @param values length a multiple of the type's block size (rows simply concatenated)
 * @throws UnsupportedQuantError for a type that cannot be encoded (see isQuantizeSupported)
 * @throws RangeError when the length is not a multiple of the block size
 */
export function quantize(type: GGMLType, values: Float32Array): Uint8Array {
  const { blockSize, typeSize } = checkType(type, 'quantize');
  const n = values.length;
  if (n % blockSize !== 0) {
    throw new RangeError(
      `quantize ${ggmlTypeName(type)}: ${n} values is not a multiple of the block size ${blockSize}`,
    );
  }
  const nb = n / blockSize;
  const out = new Uint8Array(nb * typeSize);
  switch (type) {
    case GGMLType.F32:
      out.set(new Uint8Array(values.buffer, values.byteOffset, n * 4));
      break;
    case GGMLType.F16: {
      const w = new Uint32Array(values.buffer, values.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = f32BitsToF16(w[i]!);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      break;
    }
    case GGMLType.BF16: {
      const w = new Uint32Array(values.buffer, values.byteOffset, n);
      for (let i = 0; i < n; i++) {
        const h = f32BitsToBf16(w[i]!);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      break;
    }
    case GGMLType.Q8_0: quantQ8_0(values, nb, out); break;
    case GGMLType.Q4_0: quantQ4_0(values, nb, out); break;
    case GGMLType.MXFP4: quantMXFP4(values, nb, out); break;
    case GGMLType.Q4_1: quantQ4_1(values, nb, out); break;
    case GGMLType.Q5_0: quantQ5_0(values, nb, out); break;
    case GGMLType.Q5_1: quantQ5_1(values, nb, out); break;
    case GGMLType.Q4_K: quantQ4K(values, nb, out); break;
    case GGMLType.Q5_K: quantQ5K(values, nb, out); break;
    case GGMLType.Q6_K: quantQ6K(values, nb, out); break;
  }
  return out;
}

function putHalf(out: Uint8Array, p: number, x: number): void {
  const h = f32ToF16(x);
  out[p] = h & 0xff;
  out[p + 1] = h >>> 8;
}

/** llama.cpp's nearest_int: rounds an f32 to the nearest integer, ties to even, by adding
 * 1.5*2^23 in f32 and reading the mantissa bits — which it does also when |x| ≥ 2^22, for ±inf
 * (giving -2^22) and NaN (giving 0 for the quiet NaNs that arithmetic produces). */
function nearestInt(x: number): number {
  const v = fr(x + 12582912);
  if (v >= 8388608 && v < 16777216) return v - 12582912;
  scratchF32[0] = v;
  return (scratchU32[0]! & 0x7fffff) - 0x400000;
}

/** nearest_int for the hot loops, where the argument is within ±(nmax+1) unless the data hold
 * inf or NaN: exact there, and ±inf / NaN come out as ±inf / NaN, which the clamps that follow
 * map where ggml's clamps map -2^22 and 0. (A second branch here makes V8 compile the loops
 * several times slower, hence two functions.) */
function nearestIntHot(x: number): number {
  return fr(x + 12582912) - 12582912;
}

/** C's float → int conversion on x86 (cvttss2si): truncation; NaN and out of range give INT_MIN.
 * The callers then keep the low 8 bits, as C's casts to (u)int8_t do. */
function cvtI32(v: number): number {
  return v > -2147483649 && v < 2147483648 ? Math.trunc(v) : -2147483648;
}

/** C's roundf (half away from zero). */
function roundf(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

// quantize_row_q8_0_ref
function quantQ8_0(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 32, p += 34) {
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const av = Math.abs(x[xo + j]!);
      amax = amax > av ? amax : av; // C's MAX
    }
    const d = fr(amax / 127);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as true
    putHalf(out, p, d);
    for (let j = 0; j < 32; j++) out[p + 2 + j] = cvtI32(roundf(fr(x[xo + j]! * id))) & 0xff;
  }
}

// quantize_row_q4_0_ref: d = max/-8 where max is the value of largest magnitude
function quantQ4_0(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 32, p += 18) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -8);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as true
    putHalf(out, p, d);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, (cvtI32(fr(fr(x[xo + j]! * id) + 8.5)) << 24) >> 24) & 0xff;
      const q1 = Math.min(15, (cvtI32(fr(fr(x[xo + 16 + j]! * id) + 8.5)) << 24) >> 24) & 0xff;
      out[p + 2 + j] = q0 | (q1 << 4);
    }
  }
}

// quantize_row_mxfp4_ref: e = floor(log2(amax)) − 2 + 127, each value the nearest kvalue·d (first on ties)
function quantMXFP4(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 32, p += 17) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]!));
    const e = amax > 0 ? (Math.floor(Math.log2(fr(amax))) - 2 + 127) & 0xff : 0;
    const d = e8m0ToF32Half(e);
    out[p] = e;
    const best = (v: number) => {
      let bi = 0;
      let be = Math.abs(fr(fr(MXFP4_VALUES[0]! * d) - v));
      for (let i = 1; i < 16; i++) {
        const err = Math.abs(fr(fr(MXFP4_VALUES[i]! * d) - v));
        if (err < be) [bi, be] = [i, err];
      }
      return bi;
    };
    for (let j = 0; j < 16; j++) out[p + 1 + j] = best(x[xo + j]!) | (best(x[xo + 16 + j]!) << 4);
  }
}

// quantize_row_q4_1_ref: d = (max-min)/15, m = min
function quantQ4_1(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 32, p += 20) {
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 15);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as true
    putHalf(out, p, d);
    putHalf(out, p + 2, min);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, (cvtI32(fr(fr(fr(x[xo + j]! - min) * id) + 0.5)) << 24) >> 24) & 0xff;
      const q1 = Math.min(15, (cvtI32(fr(fr(fr(x[xo + 16 + j]! - min) * id) + 0.5)) << 24) >> 24) & 0xff;
      out[p + 4 + j] = q0 | (q1 << 4);
    }
  }
}

function putU32(out: Uint8Array, p: number, v: number): void {
  out[p] = v & 0xff;
  out[p + 1] = (v >>> 8) & 0xff;
  out[p + 2] = (v >>> 16) & 0xff;
  out[p + 3] = (v >>> 24) & 0xff;
}

// quantize_row_q5_0_ref: d = max/-16
function quantQ5_0(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 32, p += 22) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fr(max / -16);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as true
    putHalf(out, p, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, (cvtI32(fr(fr(x[xo + j]! * id) + 16.5)) << 24) >> 24) & 0xff;
      const q1 = Math.min(31, (cvtI32(fr(fr(x[xo + 16 + j]! * id) + 16.5)) << 24) >> 24) & 0xff;
      out[p + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 >>> 4) & 1) << j;
      qh |= ((q1 >>> 4) & 1) << (j + 16);
    }
    putU32(out, p + 2, qh);
  }
}

// quantize_row_q5_1_ref: d = (max-min)/31, m = min
function quantQ5_1(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 32, p += 24) {
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < 32; j++) {
      const v = x[xo + j]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 31);
    const id = d !== 0 ? fr(1 / d) : 0; // C truthiness: NaN counts as true
    putHalf(out, p, d);
    putHalf(out, p + 2, min);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = cvtI32(fr(fr(fr(x[xo + j]! - min) * id) + 0.5)) & 0xff;
      const q1 = cvtI32(fr(fr(fr(x[xo + 16 + j]! - min) * id) + 0.5)) & 0xff;
      out[p + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 >>> 4) & 1) << j;
      qh |= ((q1 >>> 4) & 1) << (j + 16);
    }
    putU32(out, p + 4, qh);
  }
}

// Scratch for the K-quants (no per-block allocation).
const kL = new Uint8Array(256);
const kLaux = new Uint8Array(32);
const kWeights = new Float32Array(32);
const kScales = new Float32Array(16);
const kMins = new Float32Array(8);
let qkx2Min = 0; // second result of makeQkx2Quants: -min
const qkxX = new Float32Array(32);
const qkxXm = new Float32Array(32);
const qkxLevels = new Float32Array(32);

/**
 * llama.cpp's make_qkx2_quants for one sub-block of n values at x[xo]: scale and min (≤ 0) for
 * x ≈ scale*L + min with L in [0, nmax], searched over nstep+1 candidate inverse scales by
 * weighted least squares. L goes to L[lo..]; returns the scale and leaves -min in qkx2Min.
 */
function makeQkx2Quants(
  n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array,
  L: Uint8Array, lo: number, Laux: Uint8Array, rmin: number, rdelta: number, nstep: number,
): number {
  const xs = qkxX; // the sub-block, then x - min
  const xm = qkxXm;
  const lv = qkxLevels;
  let min = x[xo]!;
  let max = min;
  let sumW = w[0]!;
  let sumX = fr(sumW * min);
  xs[0] = min;
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    xs[i] = xi;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const wi = w[i]!;
    sumW = fr(sumW + wi);
    sumX = fr(sumX + fr(wi * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    qkx2Min = -min;
    return 0;
  }
  for (let i = 0; i < n; i++) xm[i] = xs[i]! - min; // Float32Array store rounds like f32 arithmetic
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestIntHot(fr(iscale * xm[i]!));
    l = l >= 0 ? (l <= nmax ? l : l === Infinity ? 0 : nmax) : 0; // MAX(0, MIN(nmax, l))
    L[lo + i] = l;
    let diff = fr(fr(fr(scale * l) + min) - xs[i]!);
    diff = fr(diff * diff);
    bestError = fr(bestError + fr(w[i]! * diff));
  }
  const rd = fr(rdelta); // a float parameter in C (0.1f)
  // Double-precision sums over the sub-block for the screening below.
  let sumWd = 0;
  let sumXd = 0;
  let sumX2d = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!;
    const xi = xs[i]!;
    sumWd += wi;
    sumXd += wi * xi;
    sumX2d += wi * xi * xi;
  }
  // Consecutive candidate scales often give the same levels; such a candidate has the same error
  // as the previous one, so it cannot beat the best (strict <) and is skipped.
  let havePrev = false;
  for (let is = 0; is <= nstep; is++) {
    // min may have been replaced by a better candidate's: ggml uses the current one here
    iscale = fr(fr(fr(rmin + fr(rd * is)) + nmax) / fr(max - min));
    let same = havePrev;
    let sLd = 0;
    let sL2d = 0;
    let sXLd = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestIntHot(fr(iscale * xm[i]!));
      l = l >= 0 ? (l <= nmax ? l : l === Infinity ? 0 : nmax) : 0;
      if (Laux[i] !== l) {
        Laux[i] = l;
        same = false;
      }
      const wl = w[i]! * l;
      sLd += wl;
      sL2d += wl * l;
      sXLd += wl * xs[i]!;
    }
    havePrev = true;
    if (same) continue;
    // Screening (a speed-up that never changes the result): whatever scale s and min m the f32
    // code below computes for these levels, its f32 error is at least (√Emin − √R)²·(1 − 3e-6),
    // where Emin is the weighted least-squares error of the best affine fit (computed here in
    // double) and R bounds what rounding the levels s*l + m to f32 can gain. A candidate that
    // provably loses is skipped. Ill-conditioned fits and fits that would clamp the min take
    // the exact path.
    const Dd = sumWd * sL2d - sLd * sLd;
    if (Dd > 1e-2 * sumWd * sL2d) {
      const sD = (sumWd * sXLd - sumXd * sLd) / Dd;
      const mD = (sL2d * sumXd - sLd * sXLd) / Dd;
      const mag = Math.abs(sD) * nmax + Math.abs(mD);
      if (mD < -1e-3 * mag) {
        const emin = sumX2d - (sumWd * sXLd * sXLd - 2 * sumXd * sLd * sXLd + sL2d * sumXd * sumXd) / Dd
          - 1e-9 * sumX2d;
        if (emin > 0) {
          const r = Math.sqrt(emin) - Math.sqrt(2 ** -44 * sumWd * mag * mag);
          if (r > 0) {
            const lower = r * r * (1 - 3e-6);
            if (lower > 1e-30 && lower > bestError) continue;
          }
        }
      }
    }
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Laux[i]!;
      const wl = fr(w[i]! * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * xs[i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      for (let l = 0; l <= nmax; l++) lv[l] = fr(thisScale * l) + thisMin; // rounded by the store
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(lv[Laux[i]!]! - xs[i]!);
        diff = fr(diff * diff);
        curError = fr(curError + fr(w[i]! * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        if (thisMin !== min) {
          min = thisMin;
          for (let i = 0; i < n; i++) xm[i] = xs[i]! - min;
        }
      }
    }
  }
  qkx2Min = -min;
  return scale;
}

/** Shared body of quantize_row_q4_K_ref / quantize_row_q5_K_ref up to the final L values:
 * per-sub-block make_qkx2_quants, 6-bit scales and mins packed into out[p+4..p+16), d and dmin
 * at out[p], out[p+2], then L recomputed from the stored (rounded) scales. */
function quantKScalesAndL(
  x: Float32Array, xo: number, out: Uint8Array, p: number,
  nmax: number, rmin: number, rdelta: number, nstep: number,
): void {
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const so = xo + 32 * j;
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) {
      const v = x[so + l]!;
      sumX2 = fr(sumX2 + fr(v * v));
    }
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) kWeights[l] = avX + Math.abs(x[so + l]!);
    const scale = makeQkx2Quants(32, nmax, x, so, kWeights, kL, 32 * j, kLaux, rmin, rdelta, nstep);
    kScales[j] = scale;
    kMins[j] = qkx2Min;
    if (scale > maxScale) maxScale = scale;
    if (kMins[j]! > maxMin) maxMin = kMins[j]!;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const s = p + 4;
  for (let j = 0; j < 12; j++) out[s + j] = 0;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * kScales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * kMins[j]!)) & 0xff);
    if (j < 4) {
      out[s + j] = ls;
      out[s + j + 4] = lm;
    } else {
      out[s + j + 4] = (ls & 15) | ((lm & 15) << 4);
      out[s + j - 4] |= (ls >>> 4) << 6;
      out[s + j] |= (lm >>> 4) << 6;
    }
  }
  putHalf(out, p, fr(maxScale / 63));
  putHalf(out, p + 2, fr(maxMin / 63));
  const ht = halfTable();
  const dAll = ht[out[p]! | (out[p + 1]! << 8)]!;
  const mAll = ht[out[p + 2]! | (out[p + 3]! << 8)]!;
  for (let j = 0; j < 8; j++) {
    const d = fr(dAll * scaleK4(out, s, j));
    if (d === 0) continue; // C's !d: NaN does not skip
    const dm = fr(mAll * minK4(out, s, j));
    for (let ii = 0; ii < 32; ii++) {
      let l = nearestInt(fr(fr(x[xo + 32 * j + ii]! + dm) / d));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      kL[32 * j + ii] = l;
    }
  }
}

// quantize_row_q4_K_ref
function quantQ4K(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 256, p += 144) {
    quantKScalesAndL(x, xo, out, p, 15, -1, 0.1, 20);
    for (let c = 0; c < 4; c++) {
      const q = p + 16 + 32 * c;
      for (let l = 0; l < 32; l++) out[q + l] = kL[64 * c + l]! | (kL[64 * c + 32 + l]! << 4);
    }
  }
}

// quantize_row_q5_K_ref
function quantQ5K(x: Float32Array, nb: number, out: Uint8Array): void {
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 256, p += 176) {
    quantKScalesAndL(x, xo, out, p, 31, -0.5, 0.1, 15);
    const qh = p + 16;
    for (let l = 0; l < 32; l++) out[qh + l] = 0;
    for (let c = 0; c < 4; c++) {
      const q = p + 48 + 32 * c;
      const m1 = 1 << (2 * c);
      const m2 = 2 << (2 * c);
      for (let l = 0; l < 32; l++) {
        let l1 = kL[64 * c + l]!;
        if (l1 > 15) {
          l1 -= 16;
          out[qh + l] |= m1;
        }
        let l2 = kL[64 * c + 32 + l]!;
        if (l2 > 15) {
          l2 -= 16;
          out[qh + l] |= m2;
        }
        out[q + l] = l1 | (l2 << 4);
      }
    }
  }
}

const GROUP_MAX_EPS = fr(1e-15);
const F32_0_1 = fr(0.1);
const qxX = new Float32Array(16);
const qxW = new Float32Array(16);
const qxWX = new Float32Array(16);

/**
 * llama.cpp's make_qx_quants with rmse_type 1 and no importance weights (weights x²): symmetric
 * scale for x ≈ scale*(L - nmax), L in [0, 2*nmax), searched over 19 candidate scales. L goes to
 * L[lo..]; returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  const xs = qxX;
  const ws = qxW; // weight x², as f32
  const wxs = qxWX; // x² * x, as f32
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    xs[i] = xi;
    ws[i] = xi * xi; // Float32Array stores round like f32 arithmetic
    wxs[i] = ws[i]! * xi;
    const ax = Math.abs(xi);
    if (ax > amax) {
      amax = ax;
      max = xi;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestIntHot(fr(iscale * xs[i]!));
    l = l >= -nmax ? (l <= nmax - 1 ? l : l === Infinity ? -nmax : nmax - 1) : l !== l ? 0 : -nmax;
    L[lo + i] = l + nmax;
    sumlx = fr(sumlx + fr(wxs[i]! * l));
    suml2 = fr(suml2 + fr(fr(ws[i]! * l) * l));
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  // Screening (a speed-up that never changes the result): all terms of sumlx have one sign and
  // those of suml2 are ≥ 0, so their f32 values are within ~1.1e-6 (relative) of the double sums
  // here, and a candidate whose double ratio sumlx²/suml2 is 1e-5 below the best cannot pass the
  // f32 test. Outside [1e-8, 1e11] (underflow, overflow of x³) every candidate is checked in f32.
  const screen = amax >= 1e-8 && amax <= 1e11;
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(F32_0_1 * is)) / max);
    if (screen) {
      let sd = 0;
      let s2d = 0;
      for (let i = 0; i < n; i++) {
        let l = nearestIntHot(fr(iscale * xs[i]!));
        l = l >= -nmax ? (l <= nmax - 1 ? l : l === Infinity ? -nmax : nmax - 1) : l !== l ? 0 : -nmax;
        sd += wxs[i]! * l;
        s2d += ws[i]! * l * l;
      }
      if (s2d === 0 || sd * sd < best * s2d * (1 - 1e-5)) continue;
    }
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestIntHot(fr(iscale * xs[i]!));
      l = l >= -nmax ? (l <= nmax - 1 ? l : l === Infinity ? -nmax : nmax - 1) : l !== l ? 0 : -nmax;
      sumlx = fr(sumlx + fr(wxs[i]! * l));
      suml2 = fr(suml2 + fr(fr(ws[i]! * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        let l = nearestIntHot(fr(iscale * xs[i]!));
        l = l >= -nmax ? (l <= nmax - 1 ? l : l === Infinity ? -nmax : nmax - 1) : l !== l ? 0 : -nmax;
        L[lo + i] = l + nmax;
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

// quantize_row_q6_K_ref
function quantQ6K(x: Float32Array, nb: number, out: Uint8Array): void {
  const ht = halfTable();
  for (let b = 0, xo = 0, p = 0; b < nb; b++, xo += 256, p += 210) {
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, x, xo + 16 * ib, kL, 16 * ib);
      kScales[ib] = scale;
      const absScale = Math.abs(scale);
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale;
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) continue; // all-zero block (out is zero-filled)
    const iscale = fr(-128 / maxScale);
    putHalf(out, p + 208, fr(1 / iscale));
    for (let ib = 0; ib < 16; ib++) {
      out[p + 192 + ib] = Math.min(127, nearestInt(fr(iscale * kScales[ib]!))) & 0xff;
    }
    const dAll = ht[out[p + 208]! | (out[p + 209]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * ((out[p + 192 + j]! << 24) >> 24));
      if (d === 0) continue; // C's !d: NaN does not skip
      for (let ii = 0; ii < 16; ii++) {
        let l = nearestInt(fr(x[xo + 16 * j + ii]! / d));
        l = l < -32 ? -32 : l > 31 ? 31 : l;
        kL[16 * j + ii] = l + 32;
      }
    }
    for (let h = 0; h < 2; h++) {
      const ql = p + 64 * h;
      const qh = p + 128 + 32 * h;
      const Lo = 128 * h;
      for (let l = 0; l < 32; l++) {
        const a = kL[Lo + l]!;
        const bq = kL[Lo + l + 32]!;
        const c = kL[Lo + l + 64]!;
        const e = kL[Lo + l + 96]!;
        out[ql + l] = (a & 15) | ((c & 15) << 4);
        out[ql + l + 32] = (bq & 15) | ((e & 15) << 4);
        out[qh + l] = (a >>> 4) | ((bq >>> 4) << 2) | ((c >>> 4) << 4) | ((e >>> 4) << 6);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Activation round trips: what llama.cpp's CPU backend does to the activation vector before a
// dot product with a quantized (or F16/BF16) weight row
// ---------------------------------------------------------------------------------------------
//
// ggml-cpu converts src1 of a matrix product to the weight type's `vec_dot_type`
// (type_traits_cpu in ggml-cpu.c) and multiplies integer blocks. The functions below give, per
// element, the value llama.cpp's dot product then effectively uses: the decoded value of the
// quantized activation (d·q). Multiplying dequantized weights by these in f32/f64 reproduces
// llama.cpp's result up to the order of the final additions.
//
// Which quantizer runs is what the x86-64 build (node-llama-cpp's prebuilt AVX2/AVX-512 variants)
// runs:
//   Q8_K (K-quant weights): quantize_row_q8_K = quantize_row_q8_K_ref on x86, and the repacked
//     Q4_K path (ggml_quantize_mat_q8_K_4x8) computes the same values: per 256 values, max = the
//     element of largest magnitude (the first one), iscale = -127/max in f32, q = min(127,
//     nearest_int(iscale·x)) (ties to even), d = 1/iscale kept as an f32.
//   Q8_0 (Q8_0/Q4_0/Q5_0 weights) and Q8_1 (Q4_1/Q5_1): the AVX quantize_row_q8_0 / _q8_1, which
//     differ from the _ref functions: per 32 values, d = amax/127 stored as f16, id = 127/amax in
//     f32, q = round-half-even(x·id). (The _ref versions use id = 1/d and round half away from
//     zero: they differ only on ties and one-ulp differences of id.)
//   F16 / BF16 weights: the activation rounded to f16 / bf16 (nearest even).
//   F32 weights: unchanged.

/**
 * ggml-cpu's vec_dot_type of a weight type: the type the activation vector is converted to before
 * the dot product (F32 for F32 weights, F16 for F16, BF16 for BF16, Q8_0 for Q8_0/Q4_0/Q5_0, Q8_1
 * for Q4_1/Q5_1, Q8_K for the K-quants).
 * @throws UnsupportedQuantError for a weight type moet cannot multiply
 */
export function vecDotType(weightType: GGMLType): GGMLType {
  switch (weightType) {
    case GGMLType.F32: return GGMLType.F32;
    case GGMLType.F16: return GGMLType.F16;
    case GGMLType.BF16: return GGMLType.BF16;
    case GGMLType.Q4_0: case GGMLType.Q5_0: case GGMLType.Q8_0: case GGMLType.MXFP4: return GGMLType.Q8_0;
    case GGMLType.Q4_1: case GGMLType.Q5_1: return GGMLType.Q8_1;
    case GGMLType.Q2_K: case GGMLType.Q3_K: case GGMLType.Q4_K: case GGMLType.Q5_K: case GGMLType.Q6_K: return GGMLType.Q8_K;
    default:
      throw new UnsupportedQuantError(`no activation round trip for weights of type ${ggmlTypeName(weightType)} (ggml type ${weightType})`, weightType);
  }
}

/**
 * Rounds an activation vector the way llama.cpp's CPU backend does before multiplying it with a
 * weight of type `weightType` (through vecDotType(weightType): see roundTripQ8_K, roundTripQ8_0,
 * roundTripQ8_1, roundTripF16, roundTripBF16; F32 copies). out may be x.
 * @param x length a multiple of the vec_dot_type's block (256 for Q8_K, 32 for Q8_0/Q8_1)
 * @returns out (allocated when omitted)
 * @throws RangeError for a length that is not a multiple of the block, or a short out
 * @throws UnsupportedQuantError for a weight type without a vec_dot_type here
 */
export function activationRoundTrip(weightType: GGMLType, x: Float32Array, out?: Float32Array): Float32Array {
  switch (vecDotType(weightType)) {
    case GGMLType.Q8_K: return roundTripQ8_K(x, out);
    case GGMLType.Q8_0: return roundTripQ8_0(x, out);
    case GGMLType.Q8_1: return roundTripQ8_1(x, out);
    case GGMLType.F16: return roundTripF16(x, out);
    case GGMLType.BF16: return roundTripBF16(x, out);
    default: {
      const o = activationOut(x, out, 1, 'F32');
      if (o !== x) o.set(x);
      return o;
    }
  }
}

function activationOut(x: Float32Array, out: Float32Array | undefined, block: number, what: string): Float32Array {
  if (x.length % block !== 0) throw new RangeError(`${what} round trip: ${x.length} values is not a multiple of the block size ${block}`);
  if (!out) return new Float32Array(x.length);
  if (out.length < x.length) throw new RangeError(`${what} round trip: out holds ${out.length} values, needs ${x.length}`);
  return out;
}

/**
 * x through ggml's Q8_K (quantize_row_q8_K_ref) and back: per block of 256, the element of largest
 * magnitude `max` (the first on ties), iscale = -127/max (f32), q = min(127, nearest_int(iscale·x))
 * (ties to even), d = 1/iscale (an f32, not rounded to f16); returns d·q rounded to f32. An all-zero
 * block gives zeros. out may be x.
 */
export function roundTripQ8_K(x: Float32Array, out?: Float32Array): Float32Array {
  const y = activationOut(x, out, 256, 'Q8_K');
  for (let o = 0; o < x.length; o += 256) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 256; j++) {
      const ax = Math.abs(x[o + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[o + j]!;
      }
    }
    if (amax === 0) {
      y.fill(0, o, o + 256);
      continue;
    }
    const iscale = fr(-127 / max);
    const d = fr(1 / iscale);
    for (let j = 0; j < 256; j++) {
      const q = nearestInt(fr(iscale * x[o + j]!));
      y[o + j] = d * (q < 127 ? q : 127);
    }
  }
  return y;
}

/** _mm256_round_ps(v, _MM_ROUND_NEAREST) then _mm256_cvtps_epi32 and the saturating packs to
 * int8: ties to even, NaN → INT_MIN → -128, clamped to [-128, 127]. */
function rneToI8(v: number): number {
  if (!(v > -128.5)) return -128; // also NaN
  if (v >= 127.5) return 127;
  return fr(v + 12582912) - 12582912;
}

/** amax, d (the f16 value) and id of an AVX quantize_row_q8_0 / q8_1 block. */
function q8_0Scales(x: Float32Array, o: number): { amax: number; d: number; id: number } {
  let amax = 0;
  for (let j = 0; j < 32; j++) {
    const a = Math.abs(x[o + j]!);
    if (a > amax) amax = a;
  }
  return { amax, d: f16ToF32(f32ToF16(fr(amax / 127))), id: amax !== 0 ? fr(127 / amax) : 0 };
}

/**
 * x through ggml-cpu's Q8_0 (the AVX quantize_row_q8_0 of x86 builds) and back: per block of 32,
 * amax = max|x|, d = amax/127 stored as f16, id = 127/amax (f32), q = round-half-even(x·id);
 * returns f16(d)·q (exact in f32). out may be x.
 */
export function roundTripQ8_0(x: Float32Array, out?: Float32Array): Float32Array {
  return roundTripQ8Blocks(x, out, 'Q8_0');
}

/** roundTripQ8_0 / roundTripQ8_1 (`what` names the type in errors). */
function roundTripQ8Blocks(x: Float32Array, out: Float32Array | undefined, what: string): Float32Array {
  const y = activationOut(x, out, 32, what);
  for (let o = 0; o < x.length; o += 32) {
    const { d, id } = q8_0Scales(x, o);
    for (let j = 0; j < 32; j++) y[o + j] = d * rneToI8(fr(x[o + j]! * id));
  }
  return y;
}

/**
 * x through ggml-cpu's Q8_1 (the AVX quantize_row_q8_1): the same quants and f16 d as roundTripQ8_0.
 * Its extra field s = f16(d·Σq), which the Q4_1/Q5_1 dot products multiply by the weight block's
 * min, is not representable per element; the values returned (f16(d)·q) sum to f16(d)·Σq instead,
 * a difference below f16 precision of that one term.
 */
export function roundTripQ8_1(x: Float32Array, out?: Float32Array): Float32Array {
  return roundTripQ8Blocks(x, out, 'Q8_1');
}

/** Every element rounded to f16 (nearest even; ggml_cpu_fp32_to_fp16). out may be x. */
export function roundTripF16(x: Float32Array, out?: Float32Array): Float32Array {
  const y = activationOut(x, out, 1, 'F16');
  const bits = halfTableBits();
  const w = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const yw = new Uint32Array(y.buffer, y.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) yw[i] = bits[f32BitsToF16(w[i]!)]!;
  return y;
}

/** Every element rounded to bf16 (nearest even; ggml_cpu_fp32_to_bf16). out may be x. */
export function roundTripBF16(x: Float32Array, out?: Float32Array): Float32Array {
  const y = activationOut(x, out, 1, 'BF16');
  const w = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const yw = new Uint32Array(y.buffer, y.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) yw[i] = f32BitsToBf16(w[i]!) << 16;
  return y;
}
