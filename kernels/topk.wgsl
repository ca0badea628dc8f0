// topk.wgsl — the MoE router of one token after its logits, computed by one workgroup: softmax over
// the experts, top-k, renormalize (src/cpu/ops.ts moeRoute). Shared by moe_route.wgsl (one
// workgroup per token) and moe_ffn.wgsl's TOPK variants (every workgroup of the gate/up dispatch
// routes its token itself, so no routing dispatch of its own). Included with
// `#include "topk.wgsl"`; no bindings.
//
// The including file declares `override WG: u32` (threads of the workgroup) and defines
//   fn topk_logit(e: u32) -> f32      logit of expert e of the token being routed
// then calls topk_route(n_expert, k, normalize, tid) from uniform control flow (it has barriers);
// afterwards every thread may read topk_id(i) and topk_weight(i), i < k.
//
// p = softmax(logits); S = the k largest p, descending, ties → the lower expert id;
// w_i = p_{S_i} / max(Σ_S p, 6.103515625e-5) when `normalize`, else p.
// The arithmetic is that of TOPK_LANES threads, whatever WG is: lane l takes experts l,
// l + TOPK_LANES, …, in order (max, then the sum of exp(p − max)), and the lanes meet in a
// workgroup tree over TOPK_LANES entries; the WG threads share the lanes. So two kernels with the
// same TOPK_LANES give the same bits (moe_route.wgsl runs with TOPK_LANES = its WG). The top-k is
// a rank count: expert e's rank is the number of experts that beat it (higher p, or equal p and a
// lower id), so the experts of rank < k land in their slots in one pass.
//
// Overrides: MAX_EXPERT (≥ n_expert), MAX_K (≥ k), TOPK_LANES (power of two).

override MAX_EXPERT: u32 = 256u;
override MAX_K: u32 = 16u;
override TOPK_LANES: u32 = 128u;

const RENORM_MIN: f32 = 6.103515625e-5;

var<workgroup> tk_sp: array<f32, MAX_EXPERT>;
var<workgroup> tk_red: array<f32, TOPK_LANES>;
var<workgroup> tk_id: array<u32, MAX_K>;
var<workgroup> tk_p: array<f32, MAX_K>;

fn topk_route(n: u32, k: u32, normalize: bool, tid: u32) {
  // max
  for (var l = tid; l < TOPK_LANES; l += WG) {
    var mx = -3.0e38;
    for (var e = l; e < n; e += TOPK_LANES) {
      let v = topk_logit(e);
      tk_sp[e] = v;
      mx = max(mx, v);
    }
    tk_red[l] = mx;
  }
  workgroupBarrier();
  for (var s = TOPK_LANES / 2u; s > 0u; s >>= 1u) {
    for (var l = tid; l < s; l += WG) {
      tk_red[l] = max(tk_red[l], tk_red[l + s]);
    }
    workgroupBarrier();
  }
  let mx = tk_red[0];
  workgroupBarrier();

  // exp and sum
  for (var l = tid; l < TOPK_LANES; l += WG) {
    var sum = 0.0;
    for (var e = l; e < n; e += TOPK_LANES) {
      let v = exp(tk_sp[e] - mx);
      tk_sp[e] = v;
      sum += v;
    }
    tk_red[l] = sum;
  }
  workgroupBarrier();
  for (var s = TOPK_LANES / 2u; s > 0u; s >>= 1u) {
    for (var l = tid; l < s; l += WG) {
      tk_red[l] += tk_red[l + s];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / tk_red[0];
  workgroupBarrier();
  for (var e = tid; e < n; e += WG) {
    tk_sp[e] *= inv;
  }
  workgroupBarrier();

  // top-k by rank
  for (var e = tid; e < n; e += WG) {
    let p = tk_sp[e];
    var rank = 0u;
    for (var f = 0u; f < n && rank < k; f++) {
      let pf = tk_sp[f];
      if (pf > p || (pf == p && f < e)) {
        rank++;
      }
    }
    if (rank < k) {
      tk_id[rank] = e;
      tk_p[rank] = p;
    }
  }
  workgroupBarrier();

  if (tid == 0u) {
    var tot = 0.0;
    for (var i = 0u; i < k; i++) {
      tot += tk_p[i];
    }
    tk_red[0] = select(1.0, max(tot, RENORM_MIN), normalize);
  }
  workgroupBarrier();
}

/** expert of slot i (descending probability), after topk_route */
fn topk_id(i: u32) -> u32 {
  return tk_id[i];
}

/** weight of slot i, after topk_route */
fn topk_weight(i: u32) -> f32 {
  return tk_p[i] / tk_red[0];
}
