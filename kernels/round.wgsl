// round.wgsl — the scalar pieces of llama.cpp's activation round trip (gguf/quants.ts
// activationRoundTrip), shared by act_quant.wgsl and the fused RMSNorm + round trip (norm.wgsl).
// The scales are divisions, which WGSL does not round correctly (2.5 ulp); they are computed by an
// integer long division (div_rn), and f32 → f16 / bf16 by bit manipulation, so every device gives
// ggml's values. Included with `#include "round.wgsl"`; no bindings.

/** a / b rounded to nearest even, for positive normal a, b with a normal result (else plain a / b). */
fn div_rn(a: f32, b: f32) -> f32 {
  let ua = bitcast<u32>(a);
  let ub = bitcast<u32>(b);
  let ea = i32((ua >> 23u) & 0xffu);
  let eb = i32((ub >> 23u) & 0xffu);
  if (ea == 0 || eb == 0 || ea == 255 || eb == 255) {
    return a / b;
  }
  let mb = (ub & 0x7fffffu) | 0x800000u;
  var r = (ua & 0x7fffffu) | 0x800000u;
  var e = ea - eb;
  if (r < mb) {
    r = r << 1u;
    e = e - 1;
  }
  var q = 0u;
  for (var i = 0u; i < 24u; i++) {
    q = q << 1u;
    if (r >= mb) {
      q = q | 1u;
      r = r - mb;
    }
    r = r << 1u;
  }
  // q: 24 quotient bits; r: twice the remainder
  if (r > mb || (r == mb && (q & 1u) == 1u)) {
    q = q + 1u;
    if (q == 0x1000000u) {
      q = 0x800000u;
      e = e + 1;
    }
  }
  let be = e + 127;
  if (be <= 0 || be >= 255) {
    return a / b;
  }
  return bitcast<f32>((u32(be) << 23u) | (q & 0x7fffffu));
}

/** f32 → IEEE half bits, nearest even; overflow → inf; NaN → quiet NaN (ggml's fp32_to_fp16). */
fn f32_to_f16_bits(v: f32) -> u32 {
  let w = bitcast<u32>(v);
  let sign = (w >> 16u) & 0x8000u;
  let exp = (w >> 23u) & 0xffu;
  var mant = w & 0x7fffffu;
  if (exp == 0xffu) {
    return sign | select(0x7c00u, 0x7e00u, mant != 0u);
  }
  if (exp > 142u) {
    return sign | 0x7c00u;
  }
  if (exp >= 113u) {
    var h = ((exp - 112u) << 10u) | (mant >> 13u);
    let rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) {
      h = h + 1u;
    }
    return sign | h;
  }
  if (exp < 102u) {
    return sign;
  }
  mant = mant | 0x800000u;
  let shift = 126u - exp;
  var h = mant >> shift;
  let rem = mant & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (h & 1u) != 0u)) {
    h = h + 1u;
  }
  return sign | h;
}

/** IEEE half bits → f32 value (exact). */
fn f16_bits_to_f32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let exp = (h >> 10u) & 0x1fu;
  let mant = h & 0x3ffu;
  if (exp == 0u) {
    let v = f32(mant) * 5.9604644775390625e-8; // mant · 2^-24, exact
    return select(v, -v, sign != 0u);
  }
  if (exp == 0x1fu) {
    return bitcast<f32>(sign | 0x7f800000u | (mant << 13u));
  }
  return bitcast<f32>(sign | ((exp + 112u) << 23u) | (mant << 13u));
}

/** the value of x rounded to bf16, nearest even; NaN made quiet (ggml's fp32_to_bf16) */
fn round_bf16(v: f32) -> f32 {
  let w = bitcast<u32>(v);
  if ((w & 0x7fffffffu) > 0x7f800000u) {
    return bitcast<f32>((w | 0x400000u) & 0xffff0000u);
  }
  return bitcast<f32>(((w + 0x7fffu + ((w >> 16u) & 1u)) >> 16u) << 16u);
}
