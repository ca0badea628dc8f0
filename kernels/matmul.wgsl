// matmul.wgsl — Y = W·X for a batch of tokens (prefill), W quantized (any type of quant.wgsl).
// Launcher: createMatMul (src/gpu/matmul.ts).
//
// Bindings (@group(0)):
//   0 P  uniform  MatMulParams
//   1 w  storage read        one part of W: [cols, rows] raw GGUF blocks (rows [row0, row0 + rows) of W)
//   2 x  storage read        f32 [n_tokens, x_stride]; token t at x_offset + t·x_stride
//   3 y  storage read_write  f32; y[t][row0 + r] at y_offset + t·y_stride + row0 + r
//
// Dispatch: (ceil(rows / TM), ceil(n_tokens / TN), 1), TM = WG_M·RM rows, TN = WG_N·RN tokens
// per workgroup (defaults 64 × 32, 128 threads). Per step of TK = 32 along cols, the workgroup
// dequantizes a TM × 32 tile of W into workgroup memory (dq8: 8 values per thread-step) and
// copies a TN × 32 tile of X, then each thread accumulates an RM × RN block of outputs (rows
// tm + i·WG_M, tokens tn + j·WG_N). Each weight element is dequantized once per TN tokens.
//
// Overrides: WG_M, WG_N (threads along rows / tokens), ACCUMULATE (Y += W·X).

struct MatMulParams {
  cols: u32,
  rows: u32,        // rows in this part
  row_bytes: u32,
  row0: u32,        // first row of this part
  n_tokens: u32,
  x_offset: u32,
  x_stride: u32,
  y_offset: u32,
  y_stride: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: MatMulParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

#include "quant.wgsl"

override WG_M: u32 = 16u;
override WG_N: u32 = 8u;
override ACCUMULATE: bool = false;
override NT: u32 = WG_M * WG_N; // threads (derived; do not set)
const RM: u32 = 4u;
const RN: u32 = 4u;
const TK: u32 = 32u;
const TKP: u32 = 33u; // padded row stride of the tiles (fewer bank conflicts)

var<workgroup> ws: array<f32, WG_M * RM * TKP>; // [TM][TKP]
var<workgroup> xs: array<f32, WG_N * RN * TKP>; // [TN][TKP]

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let TM = WG_M * RM;
  let TN = WG_N * RN;
  let m0 = wid.x * TM;
  let n0 = wid.y * TN;
  let tm = tid % WG_M;
  let tn = tid / WG_M;
  let cols = P.cols;

  var acc: array<f32, 16>; // RM * RN
  for (var i = 0u; i < RM * RN; i++) {
    acc[i] = 0.0;
  }

  for (var k0 = 0u; k0 < cols; k0 += TK) {
    // W tile: TM rows × 4 groups of 8
    for (var i = tid; i < TM * 4u; i += NT) {
      let m = i >> 2u;
      let g = (i & 3u) * 8u;
      let row = m0 + m;
      var d = D8(vec4<f32>(0.0), vec4<f32>(0.0));
      if (row < P.rows) {
        d = dq8(row * P.row_bytes, k0 + g, cols);
      }
      let o = m * TKP + g;
      ws[o] = d.a.x;
      ws[o + 1u] = d.a.y;
      ws[o + 2u] = d.a.z;
      ws[o + 3u] = d.a.w;
      ws[o + 4u] = d.b.x;
      ws[o + 5u] = d.b.y;
      ws[o + 6u] = d.b.z;
      ws[o + 7u] = d.b.w;
    }
    // X tile: TN tokens × TK
    for (var i = tid; i < TN * TK; i += NT) {
      let t = i / TK;
      let c = i % TK;
      let tok = n0 + t;
      var v = 0.0;
      if (tok < P.n_tokens && k0 + c < cols) {
        v = x[P.x_offset + tok * P.x_stride + k0 + c];
      }
      xs[t * TKP + c] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, 4>; // RM
      var b: array<f32, 4>; // RN
      for (var i = 0u; i < RM; i++) {
        a[i] = ws[(tm + i * WG_M) * TKP + kk];
      }
      for (var j = 0u; j < RN; j++) {
        b[j] = xs[(tn + j * WG_N) * TKP + kk];
      }
      for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) {
          acc[i * RN + j] += a[i] * b[j];
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < RM; i++) {
    let row = m0 + tm + i * WG_M;
    if (row >= P.rows) {
      continue;
    }
    for (var j = 0u; j < RN; j++) {
      let tok = n0 + tn + j * WG_N;
      if (tok < P.n_tokens) {
        let yi = P.y_offset + tok * P.y_stride + P.row0 + row;
        if (ACCUMULATE) {
          y[yi] += acc[i * RN + j];
        } else {
          y[yi] = acc[i * RN + j];
        }
      }
    }
  }
}
