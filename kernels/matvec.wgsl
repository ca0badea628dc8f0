#if SUBGROUPS
enable subgroups;
#endif
// matvec.wgsl — y = W·x with the dequantization fused (decode), for every weight type of quant.wgsl.
// Launchers: createMatVec (dense, src/gpu/matvec.ts) and createMatVecId (MoE, define MOE).
//
// Bindings (@group(0)):
//   0 P    uniform  MatVecParams
//   1 w    storage read        one part of W: [cols, rows] (ggml order), raw GGUF blocks of the
//                              weight type; dense: rows [row0, row0 + rows) of W;
//                              MOE: experts [expert_first, expert_first + expert_count) of an
//                              [cols, rows, n_expert] stack, `rows` rows each
//   2 x    storage read        f32 [n_vec or n_slot, x_stride]; vector v at x_offset + v·x_stride
//   3 y    storage read_write  f32; output row r of vector v at y_offset + v·y_stride + row0 + r
//   4 ids  storage read        (MOE only) u32 expert ids; slot s multiplies expert ids[ids_offset + s]
//
// Dispatch: (gx, gy, n_vec) with gx·gy ≥ n_wg = ceil(rows / ROWS) (grid2d); workgroup
// wid.x + wid.y·gx computes ROWS consecutive rows of vector / slot wid.z. WG threads stride over
// the row in UNIT-element steps (32 for block types: one block or K-quant sub-block; 8 for
// floats): x for the unit is loaded once and reused for the ROWS rows; per row the unit's scales
// are decoded once and its values 8 at a time (quant.wgsl unit_dot). Per-row partial sums are
// reduced with subgroupAdd + shared memory (SUBGROUPS; subgroup s = threads [s·size, (s+1)·size))
// or a shared-memory tree. MOE: a workgroup whose slot's expert is not in this part returns at
// once, so a stack split over several buffers is covered by one dispatch per part.
//
// Overrides: WG (threads, power of two, 32..1024), ROWS (rows per workgroup, 1..8; main_rows:
// rows per thread, 1..16), ACCUMULATE (y += W·x instead of y = W·x: fused residual add).
//
// Entry points: main (above), main_fused (FUSED, below) and main_rows (dense, one thread per row,
// for software adapters; see there). main_fused with ROW_THREADS takes main_rows' geometry: thread
// t of a range's workgroup b computes rows (b·WG + t)·ROWS .. +ROWS (ROWS ≤ 8) as main_rows does,
// after the workgroup's prologue; n_wg counts ceil(rows / (WG·ROWS)) workgroups per range. With
// INT_DOT (a Q8_K round trip, Q4_K / Q6_K weights) the dots are taken in integers (unit_dot_q).

struct MatVecParams {
  cols: u32,          // ne0, the dot length
  rows: u32,          // rows in this part (dense) or rows per expert (MOE)
  row_bytes: u32,     // bytes of one row
  row0: u32,          // dense: first row of this part (output row offset); MOE: 0
  x_offset: u32,
  x_stride: u32,
  y_offset: u32,
  y_stride: u32,
  n_wg: u32,          // ceil(rows / ROWS): workgroups along the rows
  expert_first: u32,  // MOE: first expert held by this part
  expert_count: u32,  // MOE: experts held by this part
  ids_offset: u32,    // MOE: first slot's index in ids
}

// FUSED: one input row, up to 3 row ranges (co-located weights), each with its own output
struct MatVecFusedParams {
  cols: u32,
  row_bytes: u32,
  n_wg: u32,          // workgroups in all (wg_end2)
  x_offset: u32,
  xu_offset: u32,     // PRE_SWIGLU: the up half
  h_offset: u32,
  write_h: u32,       // 1: workgroup 0 writes the prepared row before its round trip to h
  eps: f32,           // PRE_NORM
  base0: u32,         // range r: byte offset of its row 0 in w, its rows, the end of its
  rows0: u32,         //   workgroups (prefix sum of ceil(rows / ROWS)), its output offset in y_r
  wg_end0: u32,
  y_offset0: u32,
  base1: u32,
  rows1: u32,
  wg_end1: u32,
  y_offset1: u32,
  base2: u32,
  rows2: u32,
  wg_end2: u32,
  y_offset2: u32,
}

#if FUSED
@group(0) @binding(0) var<uniform> P: MatVecFusedParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> xu: array<f32>;
@group(0) @binding(4) var<storage, read> norm_w: array<f32>;
@group(0) @binding(5) var<storage, read_write> h: array<f32>;
@group(0) @binding(6) var<storage, read_write> y0: array<f32>;
@group(0) @binding(7) var<storage, read_write> y1: array<f32>;
@group(0) @binding(8) var<storage, read_write> y2: array<f32>;
#else
@group(0) @binding(0) var<uniform> P: MatVecParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#if MOE
@group(0) @binding(4) var<storage, read> ids: array<u32>;
#endif
#endif

#include "quant.wgsl"

override WG: u32 = 64u;
override ROWS: u32 = 2u;
override ACCUMULATE: bool = false;
#if ROW_THREADS
const MAX_ROWS: u32 = 16u; // main_fused's rows per thread
#else
const MAX_ROWS: u32 = 8u;
#endif

#if !ROW_THREADS
var<workgroup> red: array<f32, WG * ROWS>;
#endif

#if !FUSED
// x[base + k .. base + k + 8], zero past n (block types: n % 32 == 0, never past n)
fn x8(base: u32, k: u32, n: u32) -> D8 {
  if (UNIT == 32u || k + 8u <= n) {
    let i = base + k;
    return D8(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), vec4<f32>(x[i + 4u], x[i + 5u], x[i + 6u], x[i + 7u]));
  }
  var v = array<f32, 8>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  for (var e = 0u; e < 8u; e++) {
    if (k + e < n) {
      v[e] = x[base + k + e];
    }
  }
  return D8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

// y[i] = v (ACCUMULATE: y[i] += v)
fn put_y(i: u32, v: f32) {
  if (ACCUMULATE) {
    y[i] += v;
  } else {
    y[i] = v;
  }
}
#endif

// x's values k .. k + UNIT (x8: x at xo; FUSED: prepared row 0), as unit_dot takes them
fn x_unit(xo: u32, k: u32, cols: u32) -> array<D8, UNIT_G> {
  var xv: array<D8, UNIT_G>;
  for (var g = 0u; g < UNIT_G; g++) {
    xv[g] = x8(xo, k + 8u * g, cols);
  }
  return xv;
}

// acc[r] += this thread's share (units tid, tid + step, ..) of the dot of row r0 + r (r < ROWS,
// r0 + r < rows; at byte base + (r0 + r)·row_bytes of w) with x (x_unit(xo, ..)). main, main_fused
// (step WG; ROW_THREADS: tid 0, step 1, every unit in order as main_rows).
fn dot_rows(acc: ptr<function, array<f32, MAX_ROWS>>, base: u32, r0: u32, rows: u32, xo: u32, tid: u32, step: u32) {
  let cols = P.cols;
  let n_units = (cols + UNIT - 1u) / UNIT;
  for (var u = tid; u < n_units; u += step) {
    let k = u * UNIT;
    var xv = x_unit(xo, k, cols);
    for (var r = 0u; r < ROWS; r++) {
      let row = r0 + r;
      if (row < rows) {
        (*acc)[r] += unit_dot(base + row * P.row_bytes, k, cols, &xv);
      }
    }
  }
}

// The workgroup's sum of each thread's acc[r]: thread r < ROWS gets row r's (the others 0). Per
// subgroup, then across subgroups (SUBGROUPS; subgroup s = threads [s·sg_size, (s+1)·sg_size)), or
// a shared-memory tree. Every thread calls it (barriers).
#if !ROW_THREADS
fn row_sum(acc: array<f32, MAX_ROWS>, tid: u32, lane: u32, sg_size: u32) -> f32 {
  var v = 0.0;
#if SUBGROUPS
  let n_sg = (WG + sg_size - 1u) / sg_size;
  for (var r = 0u; r < ROWS; r++) {
    let s = subgroupAdd(acc[r]);
    if (lane == 0u) {
      red[r * WG + tid / sg_size] = s;
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
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      for (var r = 0u; r < ROWS; r++) {
        red[r * WG + tid] += red[r * WG + tid + s];
      }
    }
    workgroupBarrier();
  }
  if (tid < ROWS) {
    v = red[tid * WG];
  }
#endif
  return v;
}
#endif

#if !FUSED
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
  let slot = wid.z;
  var wbase = 0u;
#if MOE
  let e = ids[P.ids_offset + slot];
  if (e < P.expert_first || e >= P.expert_first + P.expert_count) {
    return;
  }
  wbase = (e - P.expert_first) * P.rows * P.row_bytes;
#endif
  let r0 = blk * ROWS;

  var acc: array<f32, MAX_ROWS>;
  for (var r = 0u; r < MAX_ROWS; r++) {
    acc[r] = 0.0;
  }
  dot_rows(&acc, wbase, r0, P.rows, P.x_offset + slot * P.x_stride, tid, WG);
#if SUBGROUPS
  let v = row_sum(acc, tid, lane, sg_size);
#else
  let v = row_sum(acc, tid, 0u, 0u);
#endif
  if (tid < ROWS && r0 + tid < P.rows) {
    put_y(P.y_offset + slot * P.y_stride + P.row0 + r0 + tid, v);
  }
}
#endif

#if !FUSED
#if !MOE
// main_rows: one thread per row, no reduction. Thread t of workgroup b computes the ROWS rows
// (b·WG + t)·ROWS .. +ROWS (ROWS up to MAX_ROWS_T), each as one sequential sum over its units; x
// for a unit is loaded once and reused for the ROWS rows. No workgroup memory, no barriers: on a
// software adapter (llvmpipe runs a workgroup's invocations in SIMD chunks on one CPU thread and
// implements barriers with coroutines) this is 1.3–1.9× faster than `main` for short rows, where
// most of `main`'s threads have no unit. Dispatch: gx·gy ≥ P.n_wg = ceil(rows / (WG·ROWS)).
const MAX_ROWS_T: u32 = 16u;

@compute @workgroup_size(WG)
fn main_rows(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let blk = wid.x + wid.y * nwg.x;
  if (blk >= P.n_wg) {
    return;
  }
  let slot = wid.z;
  let r0 = (blk * WG + tid) * ROWS;
  let xo = P.x_offset + slot * P.x_stride;
  let cols = P.cols;

  var acc: array<f32, MAX_ROWS_T>;
  for (var r = 0u; r < MAX_ROWS_T; r++) {
    acc[r] = 0.0;
  }
  let n_units = (cols + UNIT - 1u) / UNIT;
  for (var u = 0u; u < n_units; u++) {
    let k = u * UNIT;
    var xv = x_unit(xo, k, cols);
    for (var r = 0u; r < ROWS; r++) {
      // rows past the end recompute the last row (no divergent branch); their sums are not stored
      let row = min(r0 + r, P.rows - 1u);
      acc[r] += unit_dot(row * P.row_bytes, k, cols, &xv);
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    if (r0 + r < P.rows) {
      put_y(P.y_offset + slot * P.y_stride + P.row0 + r0 + r, acc[r]);
    }
  }
}
#endif
#endif

#if FUSED
// the prologue's hooks (prologue.wgsl): raw value i (PRE_SWIGLU: silu(g)·u as elementwise.wgsl
// swiglu computes it) and the norm weight
fn pro_raw(row: u32, i: u32) -> f32 {
#if PRE_SWIGLU
  let g = x[P.x_offset + i];
  return (g / (1.0 + exp(-g))) * xu[P.xu_offset + i];
#else
  return x[P.x_offset + i];
#endif
}

fn pro_weight(i: u32) -> f32 {
  return norm_w[i];
}

#include "prologue.wgsl"

// values k .. k + 8 of prepared row `row` (x_unit's loader; main_fused passes row 0)
fn x8(row: u32, k: u32, n: u32) -> D8 {
  return D8(pro_x4(row, k, n), pro_x4(row, k + 4u, n));
}

fn store_y(range: u32, i: u32, v: f32) {
  if (range == 0u) {
    if (ACCUMULATE) {
      y0[i] += v;
    } else {
      y0[i] = v;
    }
  } else if (range == 1u) {
    if (ACCUMULATE) {
      y1[i] += v;
    } else {
      y1[i] = v;
    }
  } else {
    if (ACCUMULATE) {
      y2[i] += v;
    } else {
      y2[i] = v;
    }
  }
}

@compute @workgroup_size(WG)
fn main_fused(
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
  let cols = P.cols;
  pro_prepare(tid, 1u, cols, P.eps);
  if (P.write_h != 0u && blk == 0u) {
    for (var i = tid; i < cols; i += WG) {
      h[P.h_offset + i] = pro_normed(0u, i);
    }
  }

  // this workgroup's range and rows
  var range = 0u;
  var first = 0u; // the range's first workgroup
  var base = P.base0;
  var rows = P.rows0;
  var yo = P.y_offset0;
  if (blk >= P.wg_end1) {
    range = 2u;
    first = P.wg_end1;
    base = P.base2;
    rows = P.rows2;
    yo = P.y_offset2;
  } else if (blk >= P.wg_end0) {
    range = 1u;
    first = P.wg_end0;
    base = P.base1;
    rows = P.rows1;
    yo = P.y_offset1;
  }
  var acc: array<f32, MAX_ROWS>;
  for (var r = 0u; r < MAX_ROWS; r++) {
    acc[r] = 0.0;
  }
#if ROW_THREADS
  let r0 = ((blk - first) * WG + tid) * ROWS;
#if INT_DOT
  acc = pro_dot_rows_q(base, r0, rows, P.row_bytes, cols, 0u, 1.0); // 1.0·v = v: same sums
#else
  dot_rows(&acc, base, r0, rows, 0u, 0u, 1u);
#endif
  for (var r = 0u; r < ROWS; r++) {
    if (r0 + r < rows) {
      store_y(range, yo + r0 + r, acc[r]);
    }
  }
#else
  let r0 = (blk - first) * ROWS;
  dot_rows(&acc, base, r0, rows, 0u, tid, WG);
#if SUBGROUPS
  let v = row_sum(acc, tid, lane, sg_size);
#else
  let v = row_sum(acc, tid, 0u, 0u);
#endif
  if (tid < ROWS && r0 + tid < rows) {
    store_y(range, yo + r0 + tid, v);
  }
#endif
}
#endif
