#if SUBGROUPS
enable subgroups;
#endif
// moe_ffn.wgsl — the expert FFN of one token (decode) or a small batch, for all k chosen experts at
// once, with the expert ids read from the router's output on the GPU (ggml's mul_mat_vec_id idea).
// Launcher: createMoeFfnDecode (src/gpu/moe.ts): three dispatches (× weight parts)
//   1. GATE:        act[s] = W_gate[e_s] · x[t]                               (define GATE_UP)
//   2. UP + SwiGLU: act[s] = silu(act[s]) ⊙ (W_up[e_s] · x[t])  in place      (GATE_UP, SWIGLU)
//   3. DOWN:        y[t]  += Σ_j w[t,j] · W_down[e_{t,j}] · act[t·k + j]       (define DOWN)
// slot s = t·k + j is token t's j-th expert, e_s = ids[ids_offset + s].
// Unused experts are never read: the weight offset comes from e_s.
//
// Bindings (@group(0)):
//   0 P     uniform             MoeFfnParams
//   1 w     storage read        one part of an expert stack [cols, rows, n_expert] (raw GGUF
//                               blocks): experts [expert_first, expert_first + expert_count)
//   2 x     storage read        f32. GATE_UP: token t's input [cols] at x_offset + t·x_stride;
//                               DOWN: slot s's activation [cols] at x_offset + s·x_stride
//   3 y     storage read_write  f32. GATE_UP: slot s's [rows] at y_offset + s·y_stride (act);
//                               DOWN: token t's residual [rows] at y_offset + t·y_stride (+=)
//   4 ids   storage read        u32 [n_tokens, k] expert ids (moe_route.wgsl)
//   5 rw    storage read        f32 [n_tokens, k] expert weights at rw_offset (DOWN only)
//
// Dispatch: (gx, gy, Z) with gx·gy ≥ n_wg = ceil(rows / ROWS) (grid2d); Z = n_tokens·k slots
// (GATE_UP) or n_tokens (DOWN). Workgroup wid.x + wid.y·gx computes ROWS consecutive rows; WG
// threads stride over the row in UNIT-element steps (quant.wgsl's unit_hdr once per unit and row,
// then unit_dq8 8 values at a time), x is loaded once per unit for the ROWS rows. DOWN loops over
// the token's k slots inside the workgroup, scaling each slot's partial dots by its weight, so the
// weighted sum and the residual add need no second pass and no float atomics. Per-row sums: subgroupAdd + workgroup memory
// (SUBGROUPS) or a workgroup tree. A slot whose expert lives in another weight part is skipped,
// so a stack split over several buffers is one dispatch per part (DOWN accumulates across parts).
//
// Defines: one weight type (quant.wgsl), GATE_UP [+ SWIGLU] or DOWN, SUBGROUPS.
// Overrides: WG (threads, power of two), ROWS (rows per workgroup, 1..8).

struct MoeFfnParams {
  cols: u32,          // ne0, the dot length
  rows: u32,          // rows per expert (ne1)
  row_bytes: u32,
  n_wg: u32,          // ceil(rows / ROWS)
  x_offset: u32,
  x_stride: u32,
  y_offset: u32,
  y_stride: u32,
  ids_offset: u32,
  k: u32,             // experts per token
  expert_first: u32,  // experts held by this part
  expert_count: u32,
  rw_offset: u32,     // DOWN: token t's weights at rw_offset + t·k
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: MoeFfnParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> ids: array<u32>;
#if DOWN
@group(0) @binding(5) var<storage, read> rw: array<f32>;
#endif

#include "quant.wgsl"

override WG: u32 = 64u;
override ROWS: u32 = 2u;
const MAX_ROWS: u32 = 8u;

var<workgroup> red: array<f32, WG * ROWS>;

// x[base + k .. base + k + 8], zero past n
fn load_x8(base: u32, k: u32, n: u32) -> D8 {
  if (k + 8u <= n) {
    let i = base + k;
    return D8(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), vec4<f32>(x[i + 4u], x[i + 5u], x[i + 6u], x[i + 7u]));
  }
  var v: array<f32, 8>;
  for (var e = 0u; e < 8u; e++) {
    v[e] = select(0.0, x[base + min(k + e, n - 1u)], k + e < n);
  }
  return D8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// acc[r] += scale · (row r0 + r of the matrix at byte wbase) · x[xo ..]; this thread's share.
// x is loaded once per unit for the ROWS rows; each row's unit header (scales) is decoded once
// (quant.wgsl unit_hdr / unit_dq8).
fn dot_rows(acc: ptr<function, array<f32, MAX_ROWS>>, wbase: u32, r0: u32, xo: u32, scale: f32, tid: u32) {
  let cols = P.cols;
  let n_units = (cols + UNIT - 1u) / UNIT;
  for (var u = tid; u < n_units; u += WG) {
    let k = u * UNIT;
    var xv: array<D8, UNIT / 8u>;
    for (var g = 0u; g < UNIT / 8u; g++) {
      xv[g] = load_x8(xo, k + 8u * g, cols);
    }
    for (var r = 0u; r < ROWS; r++) {
      if (r0 + r < P.rows) {
        let h = unit_hdr(wbase + (r0 + r) * P.row_bytes, k, cols);
        var s = 0.0;
        for (var g = 0u; g < UNIT / 8u; g++) {
          let d = unit_dq8(h, g);
          s += dot(d.a, xv[g].a) + dot(d.b, xv[g].b);
        }
        (*acc)[r] += scale * s;
      }
    }
  }
}

// byte offset of expert e's matrix in this part, or 0xffffffff when e is not in this part
fn expert_base(e: u32) -> u32 {
  if (e < P.expert_first || e >= P.expert_first + P.expert_count) {
    return 0xffffffffu;
  }
  return (e - P.expert_first) * P.rows * P.row_bytes;
}

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
#if SUBGROUPS
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sg_size: u32,
#endif
) {
  let blk = wid.x + wid.y * nwg.x;
  if (blk >= P.n_wg) {
    return;
  }
  let r0 = blk * ROWS;
  var acc: array<f32, MAX_ROWS>;
  for (var r = 0u; r < MAX_ROWS; r++) {
    acc[r] = 0.0;
  }

#if GATE_UP
  let s = wid.z;
  let wbase = expert_base(ids[P.ids_offset + s]);
  if (wbase == 0xffffffffu) {
    return;
  }
  let t = s / P.k;
  dot_rows(&acc, wbase, r0, P.x_offset + t * P.x_stride, 1.0, tid);
  let out_base = P.y_offset + s * P.y_stride;
#else
  let t = wid.z;
  for (var j = 0u; j < P.k; j++) {
    let s = t * P.k + j;
    let wbase = expert_base(ids[P.ids_offset + s]);
    if (wbase != 0xffffffffu) {
      dot_rows(&acc, wbase, r0, P.x_offset + s * P.x_stride, rw[P.rw_offset + s], tid);
    }
  }
  let out_base = P.y_offset + t * P.y_stride;
#endif

  var v = 0.0;
#if SUBGROUPS
  let n_sg = (WG + sg_size - 1u) / sg_size;
  for (var r = 0u; r < ROWS; r++) {
    let sr = subgroupAdd(acc[r]);
    if (lane == 0u) {
      red[r * WG + tid / sg_size] = sr;
    }
  }
  workgroupBarrier();
  if (tid < ROWS) {
    for (var i = 0u; i < n_sg; i++) {
      v += red[tid * WG + i];
    }
  }
#else
  for (var r = 0u; r < ROWS; r++) {
    red[r * WG + tid] = acc[r];
  }
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (tid < st) {
      for (var r = 0u; r < ROWS; r++) {
        red[r * WG + tid] += red[r * WG + tid + st];
      }
    }
    workgroupBarrier();
  }
  if (tid < ROWS) {
    v = red[tid * WG];
  }
#endif

  if (tid < ROWS && r0 + tid < P.rows) {
    let yi = out_base + r0 + tid;
#if DOWN
    y[yi] += v;
#elif SWIGLU
    let g = y[yi];
    y[yi] = (g / (1.0 + exp(-g))) * v;
#else
    y[yi] = v;
#endif
  }
}
