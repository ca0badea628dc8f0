// moe_route.wgsl — the MoE router after its logits: softmax over the experts, top-k, renormalize.
// Launcher: createMoeRoute (src/gpu/moe.ts). The logits come from the dense F32 matvec/matmul of
// ffn_gate_inp (createMatVec / createMatMul in src/gpu/matvec.ts, matmul.ts).
//
// Bindings (@group(0)):
//   0 P        uniform             RouteParams
//   1 logits   storage read        f32; token t's [n_expert] logits at logits_offset + t·logits_stride
//   2 ids      storage read_write  u32 [n_tokens, k] chosen experts, descending probability
//   3 weights  storage read_write  f32 [n_tokens, k] their weights
// For each token: p = softmax(logits); S = the k largest p, descending, ties → the lower expert id
// (src/cpu/ops.ts moeRoute); w_i = p_{S_i} / max(Σ_S p, 6.103515625e-5) when `normalize`, else p.
// The routing itself is topk.wgsl's topk_route (shared with moe_ffn.wgsl's TOPK variants, which
// give the same bits with the same TOPK_LANES).
//
// Dispatch: (gx, gy, 1) with gx·gy ≥ n_tokens (grid2d): one workgroup per token. Threads stride
// over the experts (n_expert ≤ MAX_EXPERT). Max and sum are workgroup tree reductions over
// TOPK_LANES lanes (the launcher sets TOPK_LANES = WG: one lane per thread); the top-k is a rank
// count (topk.wgsl).
//
// Overrides: WG (threads, power of two), MAX_EXPERT (workgroup array size, default 256),
// MAX_K (default 16), TOPK_LANES (= WG).

struct RouteParams {
  n_tokens: u32,
  n_expert: u32,
  k: u32,
  normalize: u32,     // 1: renormalize the top-k weights
  logits_offset: u32,
  logits_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: RouteParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;

override WG: u32 = 128u;

#include "topk.wgsl"

var<private> logits_base: u32;

fn topk_logit(e: u32) -> f32 {
  return logits[logits_base + e];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.n_tokens) {
    return;
  }
  let k = P.k;
  logits_base = P.logits_offset + t * P.logits_stride;
  topk_route(P.n_expert, k, P.normalize != 0u, tid);
  for (var i = tid; i < k; i += WG) {
    ids[t * k + i] = topk_id(i);
    weights[t * k + i] = topk_weight(i);
  }
}
