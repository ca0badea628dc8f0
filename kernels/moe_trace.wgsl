// moe_trace.wgsl — routing trace: after a layer's router (moe_route.wgsl), copies its chosen expert
// ids and weights (and, when asked, the full softmax of its logits) into a trace buffer at the
// tokens' [token, layer] slots, so a whole eval call is read back once. Launched only when a trace
// is asked for. Launcher: createRoutingTrace (src/trace/gpu.ts).
//
// Bindings (@group(0)):
//   0 P        uniform             TraceParams
//   1 logits   storage read        f32; token t's [n_expert] router logits at logits_offset + t·logits_stride
//   2 ids      storage read        u32 [n_tokens, k] at ids_offset (moe_route's output)
//   3 weights  storage read        f32 [n_tokens, k] at weights_offset (moe_route's output)
//   4 out      storage read_write  u32 [max_tokens, rec] one record per token, rec = n_layer·(2k + probs·n_expert):
//                                  ids [n_layer, k] | weights [n_layer, k] (f32 bits) | probs [n_layer, n_expert] (f32 bits)
// Token t of this dispatch is token token0 + t of the record array; this layer's values go to
// its `layer` slots. Records are token-major, so the first n tokens are one contiguous range.
//
// Probabilities are computed as moe_route.wgsl computes them (max, exp(x − max), workgroup tree
// sum, multiply by 1/sum), so with the same WG they are the values the router ranked; GATING 1
// (sigmoid routers: DeepSeek-V3/R1) records σ(logit) instead, as moe_route_general.wgsl ranks them.
//
// Dispatch: (gx, gy, 1) with gx·gy ≥ n_tokens (grid2d): one workgroup per token.
// Overrides: WG (threads, power of two), MAX_EXPERT (workgroup array size), GATING (0 softmax, 1 sigmoid).

struct TraceParams {
  n_tokens: u32,
  n_expert: u32,
  k: u32,
  n_layer: u32,
  layer: u32,
  token0: u32,
  probs: u32,          // 1: also write the probabilities
  rec: u32,            // words per token record
  logits_offset: u32,
  logits_stride: u32,
  ids_offset: u32,
  weights_offset: u32,
}

@group(0) @binding(0) var<uniform> P: TraceParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

override WG: u32 = 128u;
override MAX_EXPERT: u32 = 256u;
override GATING: u32 = 0u;

var<workgroup> sp: array<f32, MAX_EXPERT>;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.n_tokens) {
    return;
  }
  let k = P.k;
  let base = (P.token0 + t) * P.rec;
  let lk = P.layer * k;
  let wbase = base + P.n_layer * k;
  for (var j = tid; j < k; j += WG) {
    out[base + lk + j] = ids[P.ids_offset + t * k + j];
    out[wbase + lk + j] = bitcast<u32>(weights[P.weights_offset + t * k + j]);
  }
  if (P.probs == 0u) {
    return;
  }

  let n = P.n_expert;
  let lo = P.logits_offset + t * P.logits_stride;
  let pb = base + 2u * P.n_layer * k + P.layer * n;
  if (GATING == 1u) {
    for (var e = tid; e < n; e += WG) {
      out[pb + e] = bitcast<u32>(1.0 / (1.0 + exp(-logits[lo + e])));
    }
    return;
  }
  // softmax of the logits, as moe_route.wgsl computes it
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
  let pbase = base + 2u * P.n_layer * k + P.layer * n;
  for (var e = tid; e < n; e += WG) {
    out[pbase + e] = bitcast<u32>(sp[e] * inv);
  }
}
