// moe_mm.wgsl — expert matmul for prefill over the tokens gathered per expert (ggml's mul_mat_id
// idea): for each tile of ≤ TN (token, slot) pairs routed to one expert e, Y[p] = W[e] · X[row(p)].
// Launcher: createMoeFfnPrefill (src/gpu/moe.ts), after moe_group.wgsl (GROUP) built the tile list.
//
// Bindings (@group(0)):
//   0 P       uniform             MoeMmParams
//   1 w       storage read        one part of an expert stack [cols, rows, n_expert] (raw GGUF blocks):
//                                 experts [expert_first, expert_first + expert_count)
//   2 x       storage read        f32; pair p reads row p / x_div at x_offset + (p / x_div)·x_stride
//                                 (gate/up: the token's normed hidden state, x_div = k;
//                                  down: the pair's activation, x_div = 1)
//   3 y       storage read_write  f32; pair p's [rows] at y_offset + p·y_stride
//   4 sorted  storage read        u32 pair ids grouped by expert (moe_group.wgsl)
//   5 tiles   storage read        u32 [n_tiles, 4]: (expert, first index in sorted, n pairs, 0)
//
// Dispatch: indirect, (ceil(rows / TM), n_tiles, 1) written by moe_group.wgsl; one dispatch per
// weight part (tiles of experts in other parts return at once). Workgroup (bx, ti) computes rows
// [bx·TM, +TM) for tile ti's pairs: per step of TK = 32 along cols it dequantizes a TM × 32 tile of
// W[e] into workgroup memory (one row per thread step: quant.wgsl unit_hdr once per unit, then
// unit_dq8) and gathers a TN × 32 tile of X rows through `sorted`, then each thread accumulates
// RM × RN outputs (rows tm + i·WG_M, pairs tn + j·WG_N). TM = WG_M·RM, TN = WG_N·RN.
//
// Defines: one weight type (quant.wgsl); SWIGLU: y = silu(y) ⊙ (W·x) in place (y holds the gate
// projection), else y = W·x.
// Overrides: WG_M, WG_N (threads along rows / pairs).

struct MoeMmParams {
  cols: u32,
  rows: u32,          // rows per expert
  row_bytes: u32,
  expert_first: u32,
  expert_count: u32,
  x_offset: u32,
  x_stride: u32,
  x_div: u32,
  y_offset: u32,
  y_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: MoeMmParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> sorted: array<u32>;
@group(0) @binding(5) var<storage, read> tiles: array<u32>;

#include "quant.wgsl"

override WG_M: u32 = 16u;
override WG_N: u32 = 8u;
override NT: u32 = WG_M * WG_N; // threads (derived; do not set)
const RM: u32 = 4u;
const RN: u32 = 4u;
const TK: u32 = 32u;
const TKP: u32 = 33u; // padded tile row stride

var<workgroup> wt: array<f32, WG_M * RM * TKP>; // [TM][TKP]
var<workgroup> xt: array<f32, WG_N * RN * TKP>; // [TN][TKP]
var<workgroup> prow: array<u32, WG_N * RN>;     // the tile's pair ids

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let TM = WG_M * RM;
  let TN = WG_N * RN;
  let ti = wid.y;
  let e = tiles[4u * ti];
  let first = tiles[4u * ti + 1u];
  let np = tiles[4u * ti + 2u];
  if (e < P.expert_first || e >= P.expert_first + P.expert_count) {
    return;
  }
  let wbase = (e - P.expert_first) * P.rows * P.row_bytes;
  let m0 = wid.x * TM;
  let tm = tid % WG_M;
  let tn = tid / WG_M;
  let cols = P.cols;

  for (var n = tid; n < TN; n += NT) {
    prow[n] = select(0xffffffffu, sorted[first + min(n, np - 1u)], n < np);
  }
  workgroupBarrier();

  var acc: array<f32, 16>; // RM · RN
  for (var i = 0u; i < RM * RN; i++) {
    acc[i] = 0.0;
  }

  for (var k0 = 0u; k0 < cols; k0 += TK) {
    // W tile: one row's 32 values per thread step, each unit's header decoded once
    for (var m = tid; m < TM; m += NT) {
      let row = m0 + m;
      for (var u = 0u; u < TK / UNIT; u++) {
        var h: Hdr;
        if (row < P.rows) {
          h = unit_hdr(wbase + row * P.row_bytes, k0 + u * UNIT, cols);
        }
        for (var g = 0u; g < UNIT / 8u; g++) {
          var d = D8(vec4<f32>(0.0), vec4<f32>(0.0));
          if (row < P.rows) {
            d = unit_dq8(h, g);
          }
          let o = m * TKP + u * UNIT + 8u * g;
          wt[o] = d.a.x;
          wt[o + 1u] = d.a.y;
          wt[o + 2u] = d.a.z;
          wt[o + 3u] = d.a.w;
          wt[o + 4u] = d.b.x;
          wt[o + 5u] = d.b.y;
          wt[o + 6u] = d.b.z;
          wt[o + 7u] = d.b.w;
        }
      }
    }
    for (var i = tid; i < TN * TK; i += NT) {
      let n = i / TK;
      let c = i - n * TK;
      let p = prow[n];
      var v = 0.0;
      if (p != 0xffffffffu && k0 + c < cols) {
        v = x[P.x_offset + (p / P.x_div) * P.x_stride + k0 + c];
      }
      xt[n * TKP + c] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>; // RM
      var b: array<f32, 4>; // RN
      for (var i = 0u; i < RM; i++) {
        a[i] = wt[(tm + i * WG_M) * TKP + kk];
      }
      for (var j = 0u; j < RN; j++) {
        b[j] = xt[(tn + j * WG_N) * TKP + kk];
      }
      for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) {
          acc[i * RN + j] += a[i] * b[j];
        }
      }
    }
    workgroupBarrier();
  }

  for (var j = 0u; j < RN; j++) {
    let p = prow[tn + j * WG_N];
    if (p == 0xffffffffu) {
      continue;
    }
    for (var i = 0u; i < RM; i++) {
      let row = m0 + tm + i * WG_M;
      if (row < P.rows) {
        let yi = P.y_offset + p * P.y_stride + row;
#if SWIGLU
        let g = y[yi];
        y[yi] = (g / (1.0 + exp(-g))) * acc[i * RN + j];
#else
        y[yi] = acc[i * RN + j];
#endif
      }
    }
  }
}
