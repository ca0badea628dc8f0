// moe_route.wgsl — the MoE router after its logits: softmax over the experts, top-k, renormalize.
// Launcher: createMoeRoute (src/gpu/moe.ts). The logits come from the dense F32 matvec/matmul of
// ffn_gate_inp (createMatVec / createMatMul in src/gpu/ops.ts).
//
// Bindings (@group(0)):
//   0 P        uniform             RouteParams
//   1 logits   storage read        f32; token t's [n_expert] logits at logits_offset + t·logits_stride
//   2 ids      storage read_write  u32 [n_tokens, k] chosen experts, descending probability
//   3 weights  storage read_write  f32 [n_tokens, k] their weights
// For each token: p = softmax(logits); S = the k largest p, descending, ties → the lower expert id
// (src/cpu/ops.ts moeRoute); w_i = p_{S_i} / max(Σ_S p, 6.103515625e-5) when `normalize`, else p.
//
// Dispatch: (gx, gy, 1) with gx·gy ≥ n_tokens (grid2d): one workgroup per token. Threads stride
// over the experts (n_expert ≤ MAX_EXPERT). Max and sum are workgroup tree reductions; the top-k
// is a rank count: expert e's rank is the number of experts that beat it (higher p, or equal p and
// a lower id), so the experts of rank < k land in their slots in one pass, with no k-step loop.
//
// Overrides: WG (threads, power of two), MAX_EXPERT (workgroup array size, default 256),
// MAX_K (default 16).

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
override MAX_EXPERT: u32 = 256u;
override MAX_K: u32 = 16u;

const RENORM_MIN: f32 = 6.103515625e-5;

var<workgroup> sp: array<f32, MAX_EXPERT>;
var<workgroup> red: array<f32, WG>;
var<workgroup> sel_id: array<u32, MAX_K>;
var<workgroup> sel_p: array<f32, MAX_K>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.n_tokens) {
    return;
  }
  let n = P.n_expert;
  let k = P.k;
  let lo = P.logits_offset + t * P.logits_stride;

  // max
  var mx = -3.0e38;
  for (var e = tid; e < n; e += WG) {
    let v = logits[lo + e];
    sp[e] = v;
    mx = max(mx, v);
  }
  red[tid] = mx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red[tid] = max(red[tid], red[tid + s]);
    }
    workgroupBarrier();
  }
  mx = red[0];
  workgroupBarrier();

  // exp and sum
  var sum = 0.0;
  for (var e = tid; e < n; e += WG) {
    let v = exp(sp[e] - mx);
    sp[e] = v;
    sum += v;
  }
  red[tid] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red[tid] += red[tid + s];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];
  workgroupBarrier();
  for (var e = tid; e < n; e += WG) {
    sp[e] *= inv;
  }
  workgroupBarrier();

  // top-k by rank
  for (var e = tid; e < n; e += WG) {
    let p = sp[e];
    var rank = 0u;
    for (var f = 0u; f < n && rank < k; f++) {
      let pf = sp[f];
      if (pf > p || (pf == p && f < e)) {
        rank++;
      }
    }
    if (rank < k) {
      sel_id[rank] = e;
      sel_p[rank] = p;
    }
  }
  workgroupBarrier();

  if (tid == 0u) {
    var tot = 0.0;
    for (var i = 0u; i < k; i++) {
      tot += sel_p[i];
    }
    red[0] = select(1.0, max(tot, RENORM_MIN), P.normalize != 0u);
  }
  workgroupBarrier();
  let denom = red[0];
  for (var i = tid; i < k; i += WG) {
    ids[t * k + i] = sel_id[i];
    weights[t * k + i] = sel_p[i] / denom;
  }
}
