#if SUBGROUPS
enable subgroups;
#endif
// moe_ffn.wgsl — the expert FFN of one token (decode) or a small batch, for all k chosen experts at
// once, with the expert ids read from the router's output on the GPU (ggml's mul_mat_vec_id idea).
// Launcher: createMoeFfnDecode (src/gpu/moe.ts): two or three dispatches (× weight parts)
//   GATE:        act[s] = W_gate[e_s] · x[t]                               (define GATE_UP)
//   UP + SwiGLU: act[s] = silu(act[s]) ⊙ (W_up[e_s] · x[t])  in place      (GATE_UP, SWIGLU)
//   GU:          act[s] = silu(W_gate[e_s] · x[t]) ⊙ (W_up[e_s] · x[t])   (define GU: gate and up
//                co-located in one buffer, read through one binding; replaces GATE + UP)
//   GU + TOPK:   as GU, and every workgroup first routes token t from its router logits itself
//                (topk.wgsl, the bits of moe_route.wgsl with TOPK_LANES = its WG): e_s is its own
//                result, and workgroup 0 of slot 0 of the part with write_route writes ids and
//                weights for the down dispatch (and the routing trace / debug taps)
//   DOWN:        y[t]  += Σ_j w[t,j] · W_down[e_{t,j}] · act[t·k + j]       (define DOWN)
// slot s = t·k + j is token t's j-th expert, e_s = ids[ids_offset + s].
// Unused experts are never read: the weight offset comes from e_s.
//
// Bindings (@group(0)):
//   0 P     uniform             MoeFfnParams
//   1 w     storage read        one part of an expert stack [cols, rows, n_expert] (raw GGUF
//                               blocks): experts [expert_first, expert_first + expert_count),
//                               at byte gate_base of the binding. GU: gate's part at gate_base
//                               and up's part (same experts, same type) at up_base
//   2 x     storage read        f32. GATE_UP: token t's input [cols] at x_offset + t·x_stride;
//                               DOWN: slot s's activation [cols] at x_offset + s·x_stride
//   3 y     storage read_write  f32. GATE_UP: slot s's [rows] at y_offset + s·y_stride (act);
//                               DOWN: token t's residual [rows] at y_offset + t·y_stride (+=)
//   4 ids   storage read        u32 [n_tokens, k] expert ids (moe_route.wgsl) at ids_offset;
//                               TOPK: read_write, written (token t's at ids_offset + t·k)
//   5 rw    storage read        f32 [n_tokens, k] expert weights at rw_offset (DOWN only);
//                               TOPK: read_write, written
//   6 logits storage read       TOPK: f32 [n_tokens, n_expert] router logits at logits_offset
//
// Dispatch: (gx, gy, Z) with gx·gy ≥ n_wg = ceil(rows / ROWS) (grid2d); Z = n_tokens·k slots
// (GATE_UP, GU) or n_tokens (DOWN). Workgroup wid.x + wid.y·gx computes ROWS consecutive rows; WG
// threads stride over the row in UNIT-element steps (quant.wgsl's unit_hdr once per unit and row,
// then unit_dq8 8 values at a time), x is loaded once per unit for the ROWS rows. DOWN loops over
// the token's k slots inside the workgroup, scaling each slot's partial dots by its weight, so the
// weighted sum and the residual add need no second pass and no float atomics. Per-row sums: subgroupAdd + workgroup memory
// (SUBGROUPS) or a workgroup tree. A slot whose expert lives in another weight part is skipped,
// so a stack split over several buffers is one dispatch per part (DOWN accumulates across parts).
//
// PROLOGUE (with one PRE_* define of prologue.wgsl; numerics 'llamacpp'): the input rows go
// through llama.cpp's activation round trip inside the workgroup (prologue.wgsl, the bits of
// act_quant.wgsl) before the dot loop, so no act_quant dispatch: GU rounds token t's x (the normed
// h) to gate/up's vec_dot type; DOWN rounds token t's k activation rows (PRO_ROWS = k) to down's.
//
// GU reduces gate's ROWS rows and up's ROWS rows together and applies SwiGLU to the sums: the same
// dot products, sums and silu formula as GATE then UP + SWIGLU, so the same bits.
//
// ROW_THREADS (software adapters): one thread per row instead. A workgroup computes WG·ROWS rows
// (n_wg = ceil(rows / (WG·ROWS))), thread t the ROWS rows (blk·WG + t)·ROWS .., each as one
// sequential sum over its units (GU: its gate and up rows; DOWN: slot after slot, each unit's dot
// scaled by the slot's weight) — no reduction, no barrier after the prologue. The prologue and
// the routing are still shared by the workgroup, and every thread reads the same x (uniform
// loads). On llvmpipe (a workgroup's threads run as SIMD lanes of one CPU thread, barriers are
// coroutine switches) this is several times faster than the strided geometry; the sums follow
// matvec.wgsl main_rows' order. INT_DOT (ROW_THREADS, a Q8_K prologue, Q4_K / Q6_K weights): the
// dots in integers on the prepared int8 rows (quant.wgsl unit_dot_q).
//
// Defines: one weight type (quant.wgsl), GATE_UP [+ SWIGLU], GU [+ TOPK] or DOWN, SUBGROUPS, ROW_THREADS,
// PROLOGUE + PRE_Q8_K | PRE_Q8_0 | PRE_F16 | PRE_BF16 (GU, DOWN).
// Overrides: WG (threads, power of two), ROWS (rows per workgroup, 1..8; ROW_THREADS: per thread); TOPK: MAX_EXPERT, MAX_K,
// TOPK_LANES (topk.wgsl); PROLOGUE: PRO_COLS, PRO_ROWS, PRO_NORM_WG (prologue.wgsl).

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
  rw_offset: u32,     // DOWN: token t's weights at rw_offset + t·k (TOPK: written there)
  gate_base: u32,     // byte offset of the (gate) part in binding w
  up_base: u32,       // GU: byte offset of up's part in binding w
  n_expert: u32,      // TOPK: logits per token
  normalize: u32,     // TOPK: 1 renormalizes the top-k weights
  logits_offset: u32, // TOPK: token t's logits at logits_offset + t·n_expert
  write_route: u32,   // TOPK: 1 on one part's dispatch: its workgroup 0 of slot t·k writes ids, rw
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  _pad3: u32,
  _pad4: u32,
}

@group(0) @binding(0) var<uniform> P: MoeFfnParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#if TOPK
@group(0) @binding(4) var<storage, read_write> ids: array<u32>;
@group(0) @binding(5) var<storage, read_write> rw: array<f32>;
@group(0) @binding(6) var<storage, read> logits: array<f32>;
#else
@group(0) @binding(4) var<storage, read> ids: array<u32>;
#endif
#if DOWN
@group(0) @binding(5) var<storage, read> rw: array<f32>;
#endif

#include "quant.wgsl"

override WG: u32 = 64u;
override ROWS: u32 = 2u;
const MAX_ROWS: u32 = 8u;
const MAX_ACC: u32 = 16u; // 2·MAX_ROWS: GU's gate and up rows
// accumulators per thread: ROWS rows (GU: gate's ROWS, then up's ROWS)
#if GU
const N_ACC: u32 = 2u;
#else
const N_ACC: u32 = 1u;
#endif

#if !ROW_THREADS
var<workgroup> red: array<f32, WG * ROWS * N_ACC>;
#endif

#if PROLOGUE
#include "prologue.wgsl"

var<private> pro_base: u32;   // x index of input row 0 of this workgroup's token
var<private> pro_stride: u32; // x elements between input rows

fn pro_raw(row: u32, i: u32) -> f32 {
  return x[pro_base + row * pro_stride + i];
}
#endif

#if TOPK
#include "topk.wgsl"

var<private> logits_base: u32;

fn topk_logit(e: u32) -> f32 {
  return logits[logits_base + e];
}
#endif

// x[base + k .. base + k + 8], zero past n (PROLOGUE: values k .. k + 8 of prepared row `base`)
fn load_x8(base: u32, k: u32, n: u32) -> D8 {
#if PROLOGUE
  return D8(pro_x4(base, k, n), pro_x4(base, k + 4u, n));
#else
  if (k + 8u <= n) {
    let i = base + k;
    return D8(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), vec4<f32>(x[i + 4u], x[i + 5u], x[i + 6u], x[i + 7u]));
  }
  var v: array<f32, 8>;
  for (var e = 0u; e < 8u; e++) {
    v[e] = select(0.0, x[base + min(k + e, n - 1u)], k + e < n);
  }
  return D8(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
#endif
}

// acc[r] += scale · (row r0 + r of the matrix at byte wbase) · x[xo ..]; this thread's share:
// units tid, tid + WG, … (ROW_THREADS: all units, in order; call with tid 0).
// x is loaded once per unit for the ROWS rows; each row's unit header (scales) is decoded once
// (quant.wgsl unit_dot: unit_hdr, then unit_dq8 · x per 8 values).
// Accumulates into acc[a0 + r].
fn dot_rows(acc: ptr<function, array<f32, MAX_ACC>>, a0: u32, wbase: u32, r0: u32, xo: u32, scale: f32, tid: u32) {
  let cols = P.cols;
  let n_units = (cols + UNIT - 1u) / UNIT;
#if ROW_THREADS
  let step = 1u;
#else
  let step = WG;
#endif
  for (var u = tid; u < n_units; u += step) {
    let k = u * UNIT;
    var xv: array<D8, UNIT_G>;
    for (var g = 0u; g < UNIT_G; g++) {
      xv[g] = load_x8(xo, k + 8u * g, cols);
    }
    for (var r = 0u; r < ROWS; r++) {
      if (r0 + r < P.rows) {
        (*acc)[a0 + r] += scale * unit_dot(wbase + (r0 + r) * P.row_bytes, k, cols, &xv);
      }
    }
  }
}

#if INT_DOT
// acc[a0 + r] += part[r]
fn add_rows(acc: ptr<function, array<f32, MAX_ACC>>, a0: u32, part: array<f32, MAX_ROWS>) {
  for (var r = 0u; r < ROWS; r++) {
    (*acc)[a0 + r] += part[r];
  }
}
#endif

// byte offset of expert e's matrix in this part, or 0xffffffff when e is not in this part
fn expert_base(e: u32) -> u32 {
  if (e < P.expert_first || e >= P.expert_first + P.expert_count) {
    return 0xffffffffu;
  }
  return P.gate_base + (e - P.expert_first) * P.rows * P.row_bytes;
}

#if !ROW_THREADS
// the sum of row r of the accumulators over the workgroup, after reduce_rows (any thread)
fn row_total(r: u32, n_sg: u32) -> f32 {
#if SUBGROUPS
  var v = 0.0;
  for (var i = 0u; i < n_sg; i++) {
    v += red[r * WG + i];
  }
  return v;
#else
  return red[r * WG];
#endif
}
#endif

// writes output row yi from its sum v (GU: gate's v and up's vu)
fn put_row(yi: u32, v: f32, vu: f32) {
#if DOWN
  y[yi] += v;
#elif GU
  y[yi] = (v / (1.0 + exp(-v))) * vu;
#elif SWIGLU
  let g = y[yi];
  y[yi] = (g / (1.0 + exp(-g))) * v;
#else
  y[yi] = v;
#endif
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
#if ROW_THREADS
  let r0 = (blk * WG + tid) * ROWS;
  let lane0 = 0u; // dot_rows: every unit
#else
  let r0 = blk * ROWS;
  let lane0 = tid;
#endif
  var acc: array<f32, MAX_ACC>;
  for (var r = 0u; r < MAX_ACC; r++) {
    acc[r] = 0.0;
  }
  var ok = true; // this workgroup's slot has its expert in this part (GU)

#if GU
  let s = wid.z;
  let t = s / P.k;
#if PROLOGUE
  pro_base = P.x_offset + t * P.x_stride;
  pro_stride = 0u;
  pro_prepare(tid, 1u, P.cols, 0.0);
  let xo = 0u; // prepared row 0
#else
  let xo = P.x_offset + t * P.x_stride;
#endif
#if TOPK
  // route token t (every workgroup, the same bits); one workgroup publishes the result
  logits_base = P.logits_offset + t * P.n_expert;
  topk_route(P.n_expert, P.k, P.normalize != 0u, tid);
  let j = s - t * P.k;
  if (P.write_route != 0u && blk == 0u && j == 0u) {
    for (var i = tid; i < P.k; i += WG) {
      ids[P.ids_offset + s + i] = topk_id(i);
      rw[P.rw_offset + s + i] = topk_weight(i);
    }
  }
  let e = topk_id(j);
#else
  let e = ids[P.ids_offset + s];
#endif
  // not returning early: e may be non-uniform (workgroup memory), and barriers follow
  let wbase = expert_base(e);
  ok = wbase != 0xffffffffu;
  if (ok) {
#if INT_DOT
    add_rows(&acc, 0u, pro_dot_rows_q(wbase, r0, P.rows, P.row_bytes, P.cols, 0u, 1.0));
    add_rows(&acc, ROWS, pro_dot_rows_q(wbase - P.gate_base + P.up_base, r0, P.rows, P.row_bytes, P.cols, 0u, 1.0));
#else
    dot_rows(&acc, 0u, wbase, r0, xo, 1.0, lane0);
    dot_rows(&acc, ROWS, wbase - P.gate_base + P.up_base, r0, xo, 1.0, lane0);
#endif
  }
  let out_base = P.y_offset + s * P.y_stride;
#elif GATE_UP
  let s = wid.z;
  let wbase = expert_base(ids[P.ids_offset + s]);
  if (wbase == 0xffffffffu) {
    return;
  }
  let t = s / P.k;
  dot_rows(&acc, 0u, wbase, r0, P.x_offset + t * P.x_stride, 1.0, lane0);
  let out_base = P.y_offset + s * P.y_stride;
#else
  let t = wid.z;
#if PROLOGUE
  // token t's k activation rows through down's round trip
  pro_base = P.x_offset + t * P.k * P.x_stride;
  pro_stride = P.x_stride;
  pro_prepare(tid, P.k, P.cols, 0.0);
#endif
  for (var j = 0u; j < P.k; j++) {
    let s = t * P.k + j;
    let wbase = expert_base(ids[P.ids_offset + s]);
    if (wbase != 0xffffffffu) {
#if PROLOGUE
      let xo = j; // prepared row j
#else
      let xo = P.x_offset + s * P.x_stride;
#endif
#if INT_DOT
      add_rows(&acc, 0u, pro_dot_rows_q(wbase, r0, P.rows, P.row_bytes, P.cols, j, rw[P.rw_offset + s]));
#else
      dot_rows(&acc, 0u, wbase, r0, xo, rw[P.rw_offset + s], lane0);
#endif
    }
  }
  let out_base = P.y_offset + t * P.y_stride;
#endif

#if ROW_THREADS
  // this thread's rows, summed already
  if (ok) {
    for (var r = 0u; r < ROWS; r++) {
      if (r0 + r < P.rows) {
        put_row(out_base + r0 + r, acc[r], acc[ROWS * (N_ACC - 1u) + r]);
      }
    }
  }
#else
  // per-row sums over the workgroup: rows 0..ROWS (GU: and up's ROWS..2·ROWS)
  let n_acc = ROWS * N_ACC;
#if SUBGROUPS
  let n_sg = (WG + sg_size - 1u) / sg_size;
  for (var r = 0u; r < n_acc; r++) {
    let sr = subgroupAdd(acc[r]);
    if (lane == 0u) {
      red[r * WG + tid / sg_size] = sr;
    }
  }
  workgroupBarrier();
#else
  let n_sg = 0u;
  for (var r = 0u; r < n_acc; r++) {
    red[r * WG + tid] = acc[r];
  }
  workgroupBarrier();
  for (var st = WG / 2u; st > 0u; st >>= 1u) {
    if (tid < st) {
      for (var r = 0u; r < n_acc; r++) {
        red[r * WG + tid] += red[r * WG + tid + st];
      }
    }
    workgroupBarrier();
  }
#endif

  if (ok && tid < ROWS && r0 + tid < P.rows) {
    put_row(out_base + r0 + tid, row_total(tid, n_sg), row_total(ROWS * (N_ACC - 1u) + tid, n_sg));
  }
#endif
}
