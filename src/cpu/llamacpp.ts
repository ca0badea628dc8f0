// llama.cpp's CPU arithmetic, reproduced: the matrix products and attention of ggml-cpu as they run
// in node-llama-cpp's prebuilt x86-64 library (AVX2 / AVX-512 variants), so that numerics 'llamacpp'
// (src/backend.ts Numerics) gives the same f32 results as llama.cpp, not merely close ones.
//
// Why bit-level: before a quantized product llama.cpp rounds the activation to 8 bits (Q8_K / Q8_0).
// An input that differs from llama.cpp's in its last bit lands on the other side of a rounding
// boundary now and then, which changes that element by a whole quantization step; the difference
// then grows from layer to layer (on the test fixtures llama.cpp itself, evaluating token by token
// instead of in one batch, moves its own top-1 by several percent). Quantizing the activations the
// same way is therefore not enough: the f32 results of the products must be the same too, which
// means the same integer sums and the same order of f32 operations:
//
//   Q8_0, Q4_0, Q5_0 × Q8_0 (tinyBLAS_Q0_AVX for batches, ggml_vec_dot_*_q8_0 for one row: the same
//     arithmetic): per block of 32, eight lanes of 4 consecutive products (integer), each lane
//     lane = fma(f32(dW·dA), lane sum, lane) over the blocks; then the 8 lanes summed pairwise
//     (hsum: hi+lo, then [0]+[2] and [1]+[3], then the two).
//   Q4_0 repacked to 8x8 (rows % 8 == 0): one accumulator, acc = fma(f32(Σ q·q8), f32(dW·dA), acc)
//     per block of 32, for one row and for batches alike.
//   Q4_1, Q5_1 × Q8_1 (ggml_vec_dot_*_q8_1): the eight lanes as above plus the mins, summed one
//     block at a time in f32: summs = fma(mW, sA, summs) with sA = f16(d·Σq); result hsum + summs.
//   Q5_K: as Q4_K not repacked, its mins summed one super block at a time in f32.
//   Q4_K repacked to 8x8 (weights with rows % 8 == 0): one row (gemv, and every row of mul_mat_id)
//     accumulates once per super block, A = fma(f32(Σ sc·isum), f32(dW·dA), A) and the mins
//     M = fma(f32(Σ m·bsum), f32(dmin·dA), M), result A − M; batches (gemm, rows in groups of 4,
//     the last n % 4 rows by gemv) accumulate the same way once per pair of sub-blocks (64 values).
//   Q4_K not repacked, Q6_K: ggml_vec_dot_*_q8_K (AVX2): eight integer lanes per super block (4
//     consecutive values of each 32-value group, scaled), lane = fma(f32(dA·dW), lane, lane), hsum;
//     Q4_K adds its mins from four more lanes.
//   F32, F16 (and the F16 KV cache in attention): tinyBLAS (16 lanes of fma over k, then
//     _mm512_reduce_add_ps) when the batch has ≥ 2 rows, k % 16 == 0 and the output count % 4 == 0;
//     otherwise ggml_vec_dot_f32 / _f16 (4 accumulators of 16 lanes over each 64 values, the rest
//     one by one).
//   Other weight types (BF16): the activation round trip and an f64 dot product (close, not bit-exact).
//
// What is not reproduced bit for bit: ggml's vectorized expf/silu approximations (softmax, SwiGLU)
// and glibc's cosf/sinf (RoPE; about 1% of its values are not the correctly rounded ones moet uses);
// these differ in the last bit now and then, and an 8-bit rounding downstream occasionally turns
// that into a visible difference. Checked against the node-llama-cpp 3.22.1 library with a tensor
// dump harness: every product above matches bit for bit (Q8_0, Q4_0 repacked and not, Q5_0, Q4_1,
// Q5_1, Q4_K gemm/gemv/vec_dot, Q5_K, Q6_K, batch and one row), and whole fixtures give KL 0.
//
// The choice of kernel follows ggml's rules for an AVX2/AVX-512 machine; the arithmetic of the
// AVX-512 and AVX2 variants is the same for every path above except tinyBLAS F32/F16, whose lane
// count is 16 with AVX-512 (the machines node-llama-cpp's tests run on) and 8 without.
import { activationRoundTrip, dequantize, f16ToF32, f32ToF16 } from '../../gguf/quants.js';
import { GGMLType, rowBytes } from '../../gguf/types.js';
import type { QuantMatrix } from './ops.js';

const fr = Math.fround;

/** fmaf(a, b, c) = a·b + c rounded once to f32. Exact for f32 a, b (their product fits an f64). */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = fr(s);
  if (r === s) return r;
  // s is p + c rounded to f64; rounding that to f32 can differ from rounding p + c only when s lies
  // exactly halfway between two floats: then the f64 rounding error decides
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return r;
  const d = s - r;
  const other = r + 2 * d;
  if (fr(other) !== other) return r;
  return err > 0 === other > r ? other : r;
}

/** hsum_float_8 / tinyBLAS hsum(__m256): (v4+v0)+(v6+v2) + ((v5+v1)+(v7+v3)), each sum in f32. */
export function hsum8(v: ArrayLike<number>, o = 0): number {
  const s0 = fr(v[o + 4]! + v[o]!);
  const s1 = fr(v[o + 5]! + v[o + 1]!);
  const s2 = fr(v[o + 6]! + v[o + 2]!);
  const s3 = fr(v[o + 7]! + v[o + 3]!);
  return fr(fr(s0 + s2) + fr(s1 + s3));
}

/** _mm512_reduce_add_ps (GCC): halves of 8, then of 4, then [0]+[2], [1]+[3], then the two. */
export function reduce16(v: ArrayLike<number>, o = 0): number {
  const t = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < 8; i++) t[i] = fr(v[o + i + 8]! + v[o + i]!);
  const u0 = fr(t[4]! + t[0]!);
  const u1 = fr(t[5]! + t[1]!);
  const u2 = fr(t[6]! + t[2]!);
  const u3 = fr(t[7]! + t[3]!);
  return fr(fr(u0 + u2) + fr(u1 + u3));
}

// ---------------------------------------------------------------------------------------------
// Activations, quantized as llama.cpp quantizes them (same values as gguf/quants.ts roundTrip*)
// ---------------------------------------------------------------------------------------------

/** Quantized activation rows: per block its scale d (f32, or the f16 value for Q8_0), the quants,
 * and for Q8_K the sums of each 16 quants. */
interface QAct {
  d: Float32Array;
  qs: Int8Array;
  bsums: Int32Array;
  /** Q8_1: f16(d·Σq) per block of 32 (d the f32 scale before its f16 rounding) */
  s: Float32Array;
}

function newAct(n: number, block: number): QAct {
  return { d: new Float32Array(n / block), qs: new Int8Array(n), bsums: new Int32Array(n / 16), s: new Float32Array(block === 32 ? n / 32 : 0) };
}

/** quantize_row_q8_K_ref over x[0..n) (n a multiple of 256). */
function quantizeQ8K(x: Float32Array, n: number): QAct {
  const a = newAct(n, 256);
  for (let b = 0, o = 0; o < n; b++, o += 256) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 256; j++) {
      const ax = Math.abs(x[o + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[o + j]!;
      }
    }
    if (amax === 0) continue;
    const iscale = fr(-127 / max);
    a.d[b] = fr(1 / iscale);
    for (let j = 0; j < 256; j++) {
      const v = fr(iscale * x[o + j]!);
      // nearest_int: ties to even (|v| ≤ 127 here except for inf/NaN inputs, which give garbage as in ggml)
      const q = Math.abs(v) < 4194304 ? fr(v + 12582912) - 12582912 : 0;
      a.qs[o + j] = q < 127 ? q : 127;
    }
    for (let g = 0; g < 16; g++) {
      let s = 0;
      for (let j = 0; j < 16; j++) s += a.qs[o + 16 * g + j]!;
      a.bsums[o / 16 + g] = s;
    }
  }
  return a;
}

/** The AVX quantize_row_q8_0 (or _q8_1, with s) over x[0..n) (n a multiple of 32): d as its f16 value. */
function quantizeQ8_0(x: Float32Array, n: number): QAct {
  const a = newAct(n, 32);
  for (let b = 0, o = 0; o < n; b++, o += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const v = Math.abs(x[o + j]!);
      if (v > amax) amax = v;
    }
    const d = fr(amax / 127);
    a.d[b] = f16ToF32(f32ToF16(d));
    const id = amax !== 0 ? fr(127 / amax) : 0;
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const v = fr(x[o + j]! * id);
      const q = !(v > -128.5) ? -128 : v >= 127.5 ? 127 : fr(v + 12582912) - 12582912;
      a.qs[o + j] = q;
      sum += q;
    }
    a.s[b] = f16ToF32(f32ToF16(fr(d * sum)));
  }
  return a;
}

// ---------------------------------------------------------------------------------------------
// Weight rows decoded to integers (per row, reused for every activation row)
// ---------------------------------------------------------------------------------------------

const half = (b: Uint8Array, p: number): number => f16ToF32(b[p]! | (b[p + 1]! << 8));

/** Q8_0 / Q4_0 / Q5_0 row → signed quants [cols] and the f16 scale of each block of 32. */
function decodeQ0(type: GGMLType, src: Uint8Array, cols: number, q: Int8Array, d: Float32Array): void {
  const nb = cols / 32;
  for (let b = 0; b < nb; b++) {
    const o = 32 * b;
    if (type === GGMLType.Q8_0) {
      const p = 34 * b;
      d[b] = half(src, p);
      for (let j = 0; j < 32; j++) q[o + j] = (src[p + 2 + j]! << 24) >> 24;
    } else if (type === GGMLType.Q4_0) {
      const p = 18 * b;
      d[b] = half(src, p);
      for (let j = 0; j < 16; j++) {
        q[o + j] = (src[p + 2 + j]! & 15) - 8;
        q[o + j + 16] = (src[p + 2 + j]! >> 4) - 8;
      }
    } else {
      // Q5_0
      const p = 22 * b;
      d[b] = half(src, p);
      const qh = (src[p + 2]! | (src[p + 3]! << 8) | (src[p + 4]! << 16) | (src[p + 5]! << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        q[o + j] = ((src[p + 6 + j]! & 15) | (((qh >>> j) & 1) << 4)) - 16;
        q[o + j + 16] = ((src[p + 6 + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16;
      }
    }
  }
}

/** Q4_1 / Q5_1 row → unsigned quants [cols], and the f16 scale d and min m of each block of 32. */
function decodeQ1(type: GGMLType, src: Uint8Array, cols: number, q: Uint8Array, d: Float32Array, m: Float32Array): void {
  for (let b = 0, o = 0; o < cols; b++, o += 32) {
    if (type === GGMLType.Q4_1) {
      const p = 20 * b;
      d[b] = half(src, p);
      m[b] = half(src, p + 2);
      for (let j = 0; j < 16; j++) {
        q[o + j] = src[p + 4 + j]! & 15;
        q[o + j + 16] = src[p + 4 + j]! >> 4;
      }
    } else {
      const p = 24 * b;
      d[b] = half(src, p);
      m[b] = half(src, p + 2);
      const qh = (src[p + 4]! | (src[p + 5]! << 8) | (src[p + 6]! << 16) | (src[p + 7]! << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        q[o + j] = (src[p + 8 + j]! & 15) | (((qh >>> j) & 1) << 4);
        q[o + j + 16] = (src[p + 8 + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      }
    }
  }
}

/** Q4_K / Q5_K / Q6_K row → unsigned quants [cols] (0..15 / 0..31 / 0..63), and per super block d, dmin (Q4_K, Q5_K),
 * the 8 scales and 8 mins (Q4_K) or the 16 signed scales (Q6_K). */
interface KRow {
  q: Uint8Array;
  d: Float32Array;
  dmin: Float32Array;
  sc: Int32Array;
  m: Int32Array;
}

function decodeQ4K(src: Uint8Array, cols: number, r: KRow, q5 = false): void {
  const nb = cols / 256;
  for (let b = 0; b < nb; b++) {
    const p = (q5 ? 176 : 144) * b;
    r.d[b] = half(src, p);
    r.dmin[b] = half(src, p + 2);
    const s = p + 4;
    for (let j = 0; j < 8; j++) {
      if (j < 4) {
        r.sc[8 * b + j] = src[s + j]! & 63;
        r.m[8 * b + j] = src[s + j + 4]! & 63;
      } else {
        r.sc[8 * b + j] = (src[s + j + 4]! & 15) | ((src[s + j - 4]! >> 6) << 4);
        r.m[8 * b + j] = (src[s + j + 4]! >> 4) | ((src[s + j]! >> 6) << 4);
      }
    }
    const qs = p + (q5 ? 48 : 16);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const v = src[qs + 32 * c + l]!;
        const h = q5 ? src[p + 16 + l]! : 0; // Q5_K: bit 2c / 2c+1 of qh[l] is the fifth bit
        r.q[256 * b + 64 * c + l] = (v & 15) | (((h >> (2 * c)) & 1) << 4);
        r.q[256 * b + 64 * c + 32 + l] = (v >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
      }
    }
  }
}

function decodeQ6K(src: Uint8Array, cols: number, r: KRow): void {
  const nb = cols / 256;
  for (let b = 0; b < nb; b++) {
    const p = 210 * b;
    r.d[b] = half(src, p + 208);
    for (let i = 0; i < 16; i++) r.sc[16 * b + i] = (src[p + 192 + i]! << 24) >> 24;
    for (let h = 0; h < 2; h++) {
      const ql = p + 64 * h;
      const qh = p + 128 + 32 * h;
      const y = 256 * b + 128 * h;
      for (let l = 0; l < 32; l++) {
        const hb = src[qh + l]!;
        r.q[y + l] = (src[ql + l]! & 15) | ((hb & 3) << 4);
        r.q[y + l + 32] = (src[ql + l + 32]! & 15) | (((hb >> 2) & 3) << 4);
        r.q[y + l + 64] = (src[ql + l]! >> 4) | (((hb >> 4) & 3) << 4);
        r.q[y + l + 96] = (src[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Dot products, one (weight row, activation row) pair each
// ---------------------------------------------------------------------------------------------

const lanes8 = new Float64Array(8);
const lanes16 = new Float64Array(16);

/** Q8_0-family weight row (q, d) · Q8_0 activation row starting at element ao. */
function dotQ0(q: Int8Array, d: Float32Array, a: QAct, ao: number, cols: number): number {
  lanes8.fill(0);
  for (let b = 0, o = 0; o < cols; b++, o += 32) {
    const s = fr(d[b]! * a.d[ao / 32 + b]!);
    for (let i = 0; i < 8; i++) {
      const e = o + 4 * i;
      const isum = q[e]! * a.qs[ao + e]! + q[e + 1]! * a.qs[ao + e + 1]! + q[e + 2]! * a.qs[ao + e + 2]! + q[e + 3]! * a.qs[ao + e + 3]!;
      lanes8[i] = fmaf(s, isum, lanes8[i]!);
    }
  }
  return hsum8(lanes8);
}

/** Q4_0 repacked (8x8): one accumulator, one fma per block of 32. */
function dotQ40Repacked(q: Int8Array, d: Float32Array, a: QAct, ao: number, cols: number): number {
  let acc = 0;
  for (let b = 0, o = 0; o < cols; b++, o += 32) {
    let isum = 0;
    for (let j = 0; j < 32; j++) isum += q[o + j]! * a.qs[ao + o + j]!;
    acc = fmaf(isum, fr(d[b]! * a.d[ao / 32 + b]!), acc);
  }
  return acc;
}

/** ggml_vec_dot_q4_1_q8_1 / _q5_1_q8_1 (AVX2): the Q8_0 lanes with unsigned quants, plus m·s per block. */
function dotQ1(q: Uint8Array, d: Float32Array, m: Float32Array, a: QAct, ao: number, cols: number): number {
  lanes8.fill(0);
  let summs = 0;
  for (let b = 0, o = 0; o < cols; b++, o += 32) {
    const ab = ao / 32 + b;
    summs = fmaf(m[b]!, a.s[ab]!, summs);
    const s = fr(d[b]! * a.d[ab]!);
    for (let i = 0; i < 8; i++) {
      const e = o + 4 * i;
      const isum = q[e]! * a.qs[ao + e]! + q[e + 1]! * a.qs[ao + e + 1]! + q[e + 2]! * a.qs[ao + e + 2]! + q[e + 3]! * a.qs[ao + e + 3]!;
      lanes8[i] = fmaf(s, isum, lanes8[i]!);
    }
  }
  return fr(hsum8(lanes8) + summs);
}

/** Q4_K repacked (8x8): gemv accumulates once per super block, gemm once per 64 values. */
function dotQ4KRepacked(r: KRow, a: QAct, ao: number, cols: number, gemm: boolean): number {
  let A = 0;
  let M = 0;
  const nb = cols / 256;
  for (let b = 0; b < nb; b++) {
    const ab = ao / 256 + b;
    const dA = a.d[ab]!;
    const sD = fr(r.d[b]! * dA);
    const sM = fr(r.dmin[b]! * dA);
    let iacc = 0;
    let imin = 0;
    for (let j = 0; j < 8; j++) {
      const e = 256 * b + 32 * j;
      let isum = 0;
      for (let l = 0; l < 32; l++) isum += r.q[e + l]! * a.qs[ao + e + l]!;
      iacc += r.sc[8 * b + j]! * isum;
      imin += r.m[8 * b + j]! * (a.bsums[ab * 16 + 2 * j]! + a.bsums[ab * 16 + 2 * j + 1]!);
      if (gemm && j & 1) {
        A = fmaf(fr(iacc), sD, A);
        M = fmaf(fr(imin), sM, M);
        iacc = 0;
        imin = 0;
      }
    }
    if (!gemm) {
      A = fmaf(fr(iacc), sD, A);
      M = fmaf(fr(imin), sM, M);
    }
  }
  return fr(A - M);
}

/** ggml_vec_dot_q5_K_q8_K (AVX2): the Q4_K lanes; the mins in one f32 sum, a super block at a time. */
function dotQ5K(r: KRow, a: QAct, ao: number, cols: number): number {
  lanes8.fill(0);
  let summs = 0;
  const nb = cols / 256;
  for (let b = 0; b < nb; b++) {
    const ab = ao / 256 + b;
    const dA = a.d[ab]!;
    const d = fr(dA * r.d[b]!);
    const dmin = -fr(dA * r.dmin[b]!);
    let mins = 0;
    for (let j = 0; j < 8; j++) mins += r.m[8 * b + j]! * (a.bsums[ab * 16 + 2 * j]! + a.bsums[ab * 16 + 2 * j + 1]!);
    summs = fmaf(dmin, mins, summs);
    for (let i = 0; i < 8; i++) {
      let s = 0;
      for (let j = 0; j < 8; j++) {
        const e = 256 * b + 32 * j + 4 * i;
        s += r.sc[8 * b + j]! * (r.q[e]! * a.qs[ao + e]! + r.q[e + 1]! * a.qs[ao + e + 1]! + r.q[e + 2]! * a.qs[ao + e + 2]! + r.q[e + 3]! * a.qs[ao + e + 3]!);
      }
      lanes8[i] = fmaf(d, fr(s), lanes8[i]!);
    }
  }
  return fr(hsum8(lanes8) + summs);
}

/** ggml_vec_dot_q4_K_q8_K (AVX2). */
function dotQ4KVec(r: KRow, a: QAct, ao: number, cols: number): number {
  lanes8.fill(0);
  const accM = [0, 0, 0, 0];
  const nb = cols / 256;
  for (let b = 0; b < nb; b++) {
    const ab = ao / 256 + b;
    const dA = a.d[ab]!;
    const d = fr(dA * r.d[b]!);
    const dmin = -fr(dA * r.dmin[b]!);
    for (let i = 0; i < 4; i++) {
      const bs0 = a.bsums[ab * 16 + 4 * i]! + a.bsums[ab * 16 + 4 * i + 1]!;
      const bs1 = a.bsums[ab * 16 + 4 * i + 2]! + a.bsums[ab * 16 + 4 * i + 3]!;
      accM[i] = fmaf(dmin, r.m[8 * b + 2 * i]! * bs0 + r.m[8 * b + 2 * i + 1]! * bs1, accM[i]!);
    }
    for (let i = 0; i < 8; i++) {
      let s = 0;
      for (let j = 0; j < 8; j++) {
        // sub-block j, values 4i..4i+3 of its 32
        const e = 256 * b + 32 * j + 4 * i;
        const p = r.q[e]! * a.qs[ao + e]! + r.q[e + 1]! * a.qs[ao + e + 1]! + r.q[e + 2]! * a.qs[ao + e + 2]! + r.q[e + 3]! * a.qs[ao + e + 3]!;
        s += r.sc[8 * b + j]! * p;
      }
      lanes8[i] = fmaf(d, fr(s), lanes8[i]!);
    }
  }
  const m = fr(fr(fr(accM[0]! + accM[2]!) + fr(accM[1]! + accM[3]!)));
  return fr(hsum8(lanes8) + m);
}

/** ggml_vec_dot_q6_K_q8_K (AVX2). */
function dotQ6K(r: KRow, a: QAct, ao: number, cols: number): number {
  lanes8.fill(0);
  const nb = cols / 256;
  for (let b = 0; b < nb; b++) {
    const ab = ao / 256 + b;
    const d = fr(a.d[ab]! * r.d[b]!);
    for (let i = 0; i < 8; i++) {
      let s = 0;
      for (let g = 0; g < 8; g++) {
        // 32-value group g (half g >> 2, quarter g & 3): values 4i..4i+3, scale of their 16
        const e = 256 * b + 32 * g + 4 * i;
        const p = r.q[e]! * a.qs[ao + e]! + r.q[e + 1]! * a.qs[ao + e + 1]! + r.q[e + 2]! * a.qs[ao + e + 2]! + r.q[e + 3]! * a.qs[ao + e + 3]!;
        s += r.sc[16 * b + 2 * g + (i >> 2)]! * p;
      }
      // the −32 offset, through the bsums: lane i takes sub-blocks 2i and 2i+1 (×32)
      s -= 32 * (a.bsums[ab * 16 + 2 * i]! * r.sc[16 * b + 2 * i]! + a.bsums[ab * 16 + 2 * i + 1]! * r.sc[16 * b + 2 * i + 1]!);
      lanes8[i] = fmaf(d, fr(s), lanes8[i]!);
    }
  }
  return hsum8(lanes8);
}

/** tinyBLAS (AVX-512): 16 lanes of fma over k, then _mm512_reduce_add_ps. */
export function dotTiny16(w: ArrayLike<number>, wo: number, x: ArrayLike<number>, xo: number, k: number): number {
  lanes16.fill(0);
  for (let l = 0; l < k; l += 16) {
    for (let i = 0; i < 16; i++) lanes16[i] = fmaf(w[wo + l + i]!, x[xo + l + i]!, lanes16[i]!);
  }
  return reduce16(lanes16);
}

const acc4x16 = new Float64Array(64);

/** The four AVX-512 accumulators of ggml_vec_dot_f32 / _f16 over the first k & ~63 values, reduced. */
function vecDotSimd(w: ArrayLike<number>, wo: number, x: ArrayLike<number>, xo: number, np: number): number {
  acc4x16.fill(0);
  for (let i = 0; i < np; i += 64) {
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 16; l++) {
        const e = i + 16 * j + l;
        acc4x16[16 * j + l] = fmaf(w[wo + e]!, x[xo + e]!, acc4x16[16 * j + l]!);
      }
    }
  }
  for (let l = 0; l < 16; l++) {
    acc4x16[l] = fr(acc4x16[l]! + acc4x16[32 + l]!);
    acc4x16[16 + l] = fr(acc4x16[16 + l]! + acc4x16[48 + l]!);
  }
  for (let l = 0; l < 16; l++) acc4x16[l] = fr(acc4x16[l]! + acc4x16[16 + l]!);
  return reduce16(acc4x16);
}

/** ggml_vec_dot_f32 (AVX-512): the SIMD part, then the rest one by one in f32 (contracted to fma). */
export function dotVecF32(w: ArrayLike<number>, wo: number, x: ArrayLike<number>, xo: number, k: number): number {
  const np = k & ~63;
  let s = np ? vecDotSimd(w, wo, x, xo, np) : 0;
  for (let i = np; i < k; i++) s = fmaf(w[wo + i]!, x[xo + i]!, s);
  return s;
}

/** ggml_vec_dot_f16 (AVX-512, inputs already f16 values): the SIMD part, the rest summed in f64. */
export function dotVecF16(w: ArrayLike<number>, wo: number, x: ArrayLike<number>, xo: number, k: number): number {
  const np = k & ~63;
  let s = np ? vecDotSimd(w, wo, x, xo, np) : 0;
  for (let i = np; i < k; i++) s += w[wo + i]! * x[xo + i]!; // f16·f16 is exact in f32
  return fr(s);
}

// ---------------------------------------------------------------------------------------------
// Matrix products
// ---------------------------------------------------------------------------------------------

/** Whether llama.cpp repacks a Q4_0 / Q4_K weight (ggml-cpu "CPU_REPACK", AVX2): rows a multiple of 8. */
function repacked(w: QuantMatrix): boolean {
  return (w.type === GGMLType.Q4_0 || w.type === GGMLType.Q4_K) && w.rows % 8 === 0;
}

/**
 * out[t][r] = W[r]·x[t] for t < n, computed as llama.cpp's CPU backend computes it (see the header).
 * `rowByRow`: the matrix is an expert of a 3-D stack, which llama.cpp multiplies with mul_mat_id,
 * one activation row at a time.
 */
export function llamaMatMul(out: Float32Array, w: QuantMatrix, x: Float32Array, n: number, rowByRow = false): void {
  const { rows, cols, type } = w;
  const rb = rowBytes(type, cols);
  switch (type) {
    case GGMLType.Q8_0:
    case GGMLType.Q4_0:
    case GGMLType.Q5_0: {
      const a = quantizeQ8_0(x, n * cols);
      const q = new Int8Array(cols);
      const d = new Float32Array(cols / 32);
      const rp = repacked(w);
      for (let r = 0; r < rows; r++) {
        decodeQ0(type, w.data.subarray(r * rb, (r + 1) * rb), cols, q, d);
        for (let t = 0; t < n; t++) out[t * rows + r] = rp ? dotQ40Repacked(q, d, a, t * cols, cols) : dotQ0(q, d, a, t * cols, cols);
      }
      return;
    }
    case GGMLType.Q4_1:
    case GGMLType.Q5_1: {
      const a = quantizeQ8_0(x, n * cols); // Q8_1: the same quants and scale, plus s
      const q = new Uint8Array(cols);
      const d = new Float32Array(cols / 32);
      const m = new Float32Array(cols / 32);
      for (let r = 0; r < rows; r++) {
        decodeQ1(type, w.data.subarray(r * rb, (r + 1) * rb), cols, q, d, m);
        for (let t = 0; t < n; t++) out[t * rows + r] = dotQ1(q, d, m, a, t * cols, cols);
      }
      return;
    }
    case GGMLType.Q4_K:
    case GGMLType.Q5_K:
    case GGMLType.Q6_K: {
      const a = quantizeQ8K(x, n * cols);
      const nb = cols / 256;
      const k: KRow = { q: new Uint8Array(cols), d: new Float32Array(nb), dmin: new Float32Array(nb), sc: new Int32Array(16 * nb), m: new Int32Array(8 * nb) };
      const rp = repacked(w);
      // the repacked batch path: gemm for rows in groups of 4, gemv for the last n % 4
      const gemmRows = rp && !rowByRow ? n - (n % 4) : 0;
      for (let r = 0; r < rows; r++) {
        const src = w.data.subarray(r * rb, (r + 1) * rb);
        if (type === GGMLType.Q6_K) decodeQ6K(src, cols, k);
        else decodeQ4K(src, cols, k, type === GGMLType.Q5_K);
        for (let t = 0; t < n; t++) {
          out[t * rows + r] =
            type === GGMLType.Q6_K ? dotQ6K(k, a, t * cols, cols)
            : type === GGMLType.Q5_K ? dotQ5K(k, a, t * cols, cols)
            : rp ? dotQ4KRepacked(k, a, t * cols, cols, t < gemmRows)
            : dotQ4KVec(k, a, t * cols, cols);
        }
      }
      return;
    }
    case GGMLType.F32:
    case GGMLType.F16: {
      const xin = type === GGMLType.F16 ? activationRoundTrip(type, x.subarray(0, n * cols)) : x;
      const tiny = n >= 2 && !rowByRow && cols % 16 === 0 && rows % 4 === 0;
      const row = new Float32Array(cols);
      for (let r = 0; r < rows; r++) {
        dequantize(type, w.data.subarray(r * rb, (r + 1) * rb), cols, row);
        for (let t = 0; t < n; t++) {
          out[t * rows + r] = tiny
            ? dotTiny16(row, 0, xin, t * cols, cols)
            : type === GGMLType.F32
              ? dotVecF32(row, 0, xin, t * cols, cols)
              : dotVecF16(row, 0, xin, t * cols, cols);
        }
      }
      return;
    }
    default:
      throw new RangeError(`llamaMatMul: no llama.cpp kernel for this type (${type}); use the round trip`);
  }
}

const KERNEL_TYPES = new Set<GGMLType>([
  GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q5_0, GGMLType.Q4_1, GGMLType.Q5_1, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.F32, GGMLType.F16,
]);

/** Whether llamaMatMul reproduces llama.cpp's kernel for this weight type (else: round trip + f64 dot). */
export function hasLlamaKernel(type: GGMLType): boolean {
  return KERNEL_TYPES.has(type);
}

// ---------------------------------------------------------------------------------------------
// Attention against an F16 KV cache (llama.cpp's non-flash path)
// ---------------------------------------------------------------------------------------------

/**
 * Attention of ONE query token, as llama.cpp computes it with an F16 cache and flash attention
 * off: kq = mul_mat(k, q) with q rounded to f16; soft_max_ext(kq·scale) (f32 exp, the sum of
 * 16-value chunks in f64, times the f32 reciprocal); kqv = mul_mat(v, kq) with kq rounded to f16.
 * Both products take tinyBLAS's path when the batch has ≥ 2 tokens (and k % 16 == 0, outputs % 4
 * == 0), ggml_vec_dot_f16 otherwise. Shapes as ops.ts attention; kCache/vCache hold f16 values.
 * `batch`: tokens in the evaluation (ubatch) this token belongs to.
 */
export function llamaAttention(
  out: Float32Array, q: Float32Array, kCache: Float32Array, vCache: Float32Array,
  nHead: number, nHeadKv: number, headDimK: number, headDimV: number, nKv: number, scale: number, batch: number,
  extras: { first?: number; sinks?: Float32Array | null } = {},
): void {
  const first = extras.first ?? 0;
  const group = nHead / nHeadKv;
  const kStride = nHeadKv * headDimK;
  const vStride = nHeadKv * headDimV;
  const q16 = activationRoundTrip(GGMLType.F16, q.subarray(0, nHead * headDimK)); // [nHead, headDimK]
  const kqTiny = batch >= 2 && headDimK % 16 === 0;
  // kqv: k = n_kv (a multiple of 256 in llama.cpp's cache), m = headDimV
  const kqvTiny = batch >= 2 && headDimV % 4 === 0;
  const e = new Float32Array(nKv); // [nKv]
  const vcol = new Float32Array(nKv); // [nKv] one V column (llama.cpp's V cache is transposed)
  for (let h = 0; h < nHead; h++) {
    const kvh = Math.floor(h / group);
    const qo = h * headDimK;
    let max = -Infinity;
    for (let j = 0; j < nKv; j++) {
      if (j < first) continue; // masked by the sliding window (−∞ in llama.cpp's mask)
      const ko = j * kStride + kvh * headDimK;
      const s = kqTiny ? dotTiny16(kCache, ko, q16, qo, headDimK) : dotVecF16(kCache, ko, q16, qo, headDimK);
      e[j] = fr(s * scale);
      if (e[j]! > max) max = e[j]!;
    }
    // attention sinks: the max includes the head's sink, and exp(sink − max) joins the sum
    const sink = extras.sinks ? extras.sinks[h]! : null;
    if (sink !== null && sink > max) max = sink;
    for (let j = 0; j < nKv; j++) e[j] = j < first ? 0 : Math.exp(fr(e[j]! - max));
    let sum = 0;
    for (let c = 0; c < nKv; c += 16) {
      lanes16.fill(0);
      for (let i = 0; i < 16 && c + i < nKv; i++) lanes16[i] = e[c + i]!;
      sum += reduce16(lanes16);
    }
    if (sink !== null) sum += fr(Math.exp(fr(sink - max)));
    const inv = fr(1 / sum);
    for (let j = 0; j < nKv; j++) e[j] = f16ToF32(f32ToF16(fr(e[j]! * inv)));
    const oo = h * headDimV;
    for (let d = 0; d < headDimV; d++) {
      for (let j = 0; j < nKv; j++) vcol[j] = vCache[j * vStride + kvh * headDimV + d]!;
      out[oo + d] = kqvTiny ? dotTiny16Tail(vcol, e, nKv) : dotVecF16Tail(vcol, e, nKv);
    }
  }
}

/** dotTiny16 over the first n values of a longer (zero-padded) row: lanes by position. */
function dotTiny16Tail(w: Float32Array, x: Float32Array, n: number): number {
  lanes16.fill(0);
  for (let j = 0; j < n; j++) lanes16[j & 15] = fmaf(w[j]!, x[j]!, lanes16[j & 15]!);
  return reduce16(lanes16);
}

/** ggml_vec_dot_f16's SIMD part over a zero-padded row whose length is a multiple of 64. */
function dotVecF16Tail(w: Float32Array, x: Float32Array, n: number): number {
  acc4x16.fill(0);
  for (let j = 0; j < n; j++) {
    const a = 16 * ((j >> 4) & 3) + (j & 15);
    acc4x16[a] = fmaf(w[j]!, x[j]!, acc4x16[a]!);
  }
  for (let l = 0; l < 16; l++) {
    acc4x16[l] = fr(acc4x16[l]! + acc4x16[32 + l]!);
    acc4x16[16 + l] = fr(acc4x16[16 + l]! + acc4x16[48 + l]!);
  }
  for (let l = 0; l < 16; l++) acc4x16[l] = fr(acc4x16[l]! + acc4x16[16 + l]!);
  return reduce16(acc4x16);
}
