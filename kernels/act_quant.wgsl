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

#include "round.wgsl"

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
