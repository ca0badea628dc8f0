// act_quant.wgsl — llama.cpp's activation round trip: what its CPU backend does to an activation
// vector before a product with a quantized / F16 / BF16 weight (gguf/quants.ts activationRoundTrip,
// bit for bit). Launcher: createActQuant (src/gpu/actquant.ts).
//
// Bindings (@group(0)):
//   0 P    uniform  ActQuantParams
//   1 x    storage read        f32 [rows, x_stride] at x_offset (row r's n values)
//   2 out  storage read_write  f32 [rows, out_stride] at out_offset; must not overlap x
// Entry points (n a multiple of the block; one workgroup per block for the 8-bit types):
//   q8_k  per 256 values: max = the value of largest magnitude (the first one), iscale = −127/max,
//         q = min(127, round-half-even(x·iscale)), out = (1/iscale)·q          (quantize_row_q8_K_ref)
//   q8_0  per 32 values: amax = max|x|, d = f16(amax/127), q = round-half-even(x·(127/amax)),
//         out = d·q                                  (the AVX quantize_row_q8_0; Q8_1's values too)
//   to_f16   out = x rounded to f16 (nearest even), one value per thread
//   to_bf16  out = x rounded to bf16 (nearest even), one value per thread
// The scales are divisions, which WGSL does not round correctly (2.5 ulp); they are computed by an
// integer long division (div_rn), and f32 → f16 / bf16 by bit manipulation, so every device gives
// ggml's values; products and round() are exact in WGSL (subnormal inputs aside).
// Dispatch: (gx, gy, 1) with gx·gy ≥ rows·n/256 (q8_k), rows·n/32 (q8_0), ceil(rows·n/WG) (to_f16,
// to_bf16) (grid2d); the excess exits.
// Override: WG (q8_k: 32..256, q8_0: exactly 32; to_f16 / to_bf16: any).

struct ActQuantParams {
  n: u32,
  rows: u32,
  x_offset: u32,
  x_stride: u32,
  out_offset: u32,
  out_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: ActQuantParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override WG: u32 = 64u;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

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

// ---------------------------------------------------------------------------------------------
// Q8_K: one workgroup per block of 256
// ---------------------------------------------------------------------------------------------

var<workgroup> best_abs: array<f32, 256>;
var<workgroup> best_idx: array<u32, 256>;
var<workgroup> scales: vec2<f32>; // iscale, d

@compute @workgroup_size(WG)
fn q8_k(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let blocks_per_row = P.n / 256u;
  let blk = linear_id(wid, nwg);
  if (blk >= blocks_per_row * P.rows) {
    return; // uniform per workgroup
  }
  let row = blk / blocks_per_row;
  let col0 = (blk % blocks_per_row) * 256u;
  let xb = P.x_offset + row * P.x_stride + col0;
  let ob = P.out_offset + row * P.out_stride + col0;
  let per = 256u / WG;

  // the first value of largest magnitude: each thread scans its values in order, then a tree
  // keeps the larger, the lower index on ties
  var a = 0.0;
  var ai = 0xffffffffu;
  for (var j = 0u; j < per; j++) {
    let i = tid * per + j;
    let v = abs(x[xb + i]);
    if (v > a) {
      a = v;
      ai = i;
    }
  }
  best_abs[tid] = a;
  best_idx[tid] = ai;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (tid < s) {
      let b = best_abs[tid + s];
      let bi = best_idx[tid + s];
      if (b > best_abs[tid] || (b == best_abs[tid] && bi < best_idx[tid])) {
        best_abs[tid] = b;
        best_idx[tid] = bi;
      }
    }
    workgroupBarrier();
  }
  if (tid == 0u) {
    let amax = best_abs[0];
    if (amax == 0.0) {
      scales = vec2<f32>(0.0, 0.0);
    } else {
      let mx = x[xb + best_idx[0]];
      let m = div_rn(127.0, amax); // |iscale|
      let iscale = select(m, -m, mx > 0.0); // −127 / max
      let dm = div_rn(1.0, m);
      scales = vec2<f32>(iscale, select(dm, -dm, iscale < 0.0)); // d = 1 / iscale
    }
  }
  workgroupBarrier();
  let sc = scales;
  for (var j = 0u; j < per; j++) {
    let i = tid * per + j;
    if (sc.x == 0.0) {
      out[ob + i] = 0.0;
    } else {
      let q = min(127.0, round(x[xb + i] * sc.x));
      out[ob + i] = sc.y * q;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Q8_0 (and Q8_1): one workgroup of 32 per block of 32
// ---------------------------------------------------------------------------------------------

var<workgroup> amax32: array<f32, 32>;

@compute @workgroup_size(WG)
fn q8_0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let blocks_per_row = P.n / 32u;
  let blk = linear_id(wid, nwg);
  if (blk >= blocks_per_row * P.rows) {
    return;
  }
  let row = blk / blocks_per_row;
  let col0 = (blk % blocks_per_row) * 32u;
  let v = x[P.x_offset + row * P.x_stride + col0 + tid];
  amax32[tid] = abs(v);
  workgroupBarrier();
  for (var s = 16u; s > 0u; s = s / 2u) {
    if (tid < s) {
      amax32[tid] = max(amax32[tid], amax32[tid + s]);
    }
    workgroupBarrier();
  }
  let amax = amax32[0];
  var y = 0.0;
  if (amax != 0.0) {
    let d = f16_bits_to_f32(f32_to_f16_bits(div_rn(amax, 127.0)));
    let id = div_rn(127.0, amax);
    let q = clamp(round(v * id), -128.0, 127.0);
    y = d * q;
  }
  out[P.out_offset + row * P.out_stride + col0 + tid] = y;
}

// ---------------------------------------------------------------------------------------------
// F16 / BF16: one value per thread
// ---------------------------------------------------------------------------------------------

fn element(wid: vec3<u32>, nwg: vec3<u32>, tid: u32) -> vec3<u32> {
  let e = linear_id(wid, nwg) * WG + tid;
  let row = e / P.n;
  let col = e % P.n;
  return vec3<u32>(select(0u, 1u, row < P.rows), P.x_offset + row * P.x_stride + col, P.out_offset + row * P.out_stride + col);
}

@compute @workgroup_size(WG)
fn to_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let e = element(wid, nwg, tid);
  if (e.x == 1u) {
    out[e.z] = f16_bits_to_f32(f32_to_f16_bits(x[e.y]));
  }
}

@compute @workgroup_size(WG)
fn to_bf16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let e = element(wid, nwg, tid);
  if (e.x == 1u) {
    out[e.z] = round_bf16(x[e.y]);
  }
}
