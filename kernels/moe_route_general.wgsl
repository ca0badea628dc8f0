// moe_route_general.wgsl — the general MoE router of llama.cpp's build_moe_ffn, for the routers
// moe_route.wgsl does not cover (DeepSeek-V2/V3/R1): per token,
//   p = softmax(z) or sigmoid(z) over the experts (GATING: 0 softmax, 1 sigmoid), or z itself
//   (GATING 2, gpt-oss: the weights are then the softmax over the k chosen logits)
//   s = p + sel_bias (exp_probs_b; SEL_BIAS), for the selection only
//   groups (n_groups > 1): each group of n_expert / n_groups scores the sum of its two best s; only
//   the groups_used best groups (ties → lower group) stay eligible
//   ids = the k best eligible s, descending, ties → the lower id
//   w_j = p[ids_j] / max(Σ_j p[ids_j], 6.103515625e-5) when normalize, then × scale
// The same as src/cpu/ops.ts moeRouteGeneral. Launcher: createMoeRouteGeneral (src/gpu/mla.ts).
//
// Bindings (@group(0)):
//   0 P         uniform             RouteGeneralParams
//   1 logits    storage read        f32; token t's [n_expert] at logits_offset + t·logits_stride
//   2 ids       storage read_write  u32 [n_tokens, k]
//   3 weights   storage read_write  f32 [n_tokens, k]
//   4 sel_bias  storage read        f32 [n_expert] (SEL_BIAS)
// Dispatch (gx, gy, 1) with gx·gy ≥ n_tokens (grid2d): one workgroup per token. The probabilities
// are computed by the threads in parallel; the group scores and the selection (k ≤ 64 rounds of an
// arg-max over ≤ MAX_EXPERT values) by thread 0: a router is a few hundred values per token.
// Overrides: WG, MAX_EXPERT (workgroup array size), GATING.

struct RouteGeneralParams {
  n_tokens: u32,
  n_expert: u32,
  k: u32,
  normalize: u32,
  logits_offset: u32,
  logits_stride: u32,
  n_groups: u32,
  groups_used: u32,
  scale: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: RouteGeneralParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
#if SEL_BIAS
@group(0) @binding(4) var<storage, read> sel_bias: array<f32>;
#endif

override WG: u32 = 64u;
override MAX_EXPERT: u32 = 256u;
override GATING: u32 = 0u;

var<workgroup> prob: array<f32, MAX_EXPERT>;
var<workgroup> sel: array<f32, MAX_EXPERT>;
var<workgroup> red: array<f32, WG>;

const NEG_INF: f32 = -3.0e38; // a masked-out group's experts
const TAKEN: f32 = -3.3e38; // an expert already chosen

@compute @workgroup_size(WG)
fn route_general(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.n_tokens) {
    return;
  }
  let n = P.n_expert;
  let base = P.logits_offset + t * P.logits_stride;
  if (GATING == 1u) {
    for (var e = tid; e < n; e += WG) {
      prob[e] = 1.0 / (1.0 + exp(-logits[base + e]));
    }
  } else if (GATING == 2u) {
    for (var e = tid; e < n; e += WG) {
      prob[e] = logits[base + e];
    }
  } else {
    var mx = NEG_INF;
    for (var e = tid; e < n; e += WG) {
      mx = max(mx, logits[base + e]);
    }
    red[tid] = mx;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (tid < s) {
        red[tid] = max(red[tid], red[tid + s]);
      }
      workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var e = tid; e < n; e += WG) {
      let v = exp(logits[base + e] - m);
      prob[e] = v;
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
    for (var e = tid; e < n; e += WG) {
      prob[e] *= inv;
    }
  }
  workgroupBarrier();
  for (var e = tid; e < n; e += WG) {
#if SEL_BIAS
    sel[e] = prob[e] + sel_bias[e];
#else
    sel[e] = prob[e];
#endif
  }
  workgroupBarrier();
  if (tid != 0u) {
    return;
  }
  if (P.n_groups > 1u) {
    let per = n / P.n_groups;
    // keep the groups_used best groups: mark the others by pushing their scores to -inf one at a time
    var keep_mask = 0u; // groups ≤ 32
    for (var r = 0u; r < P.groups_used; r++) {
      var best = NEG_INF;
      var best_g = 0u;
      for (var g = 0u; g < P.n_groups; g++) {
        if ((keep_mask & (1u << g)) != 0u) {
          continue;
        }
        var a = NEG_INF;
        var b = NEG_INF;
        for (var i = g * per; i < (g + 1u) * per; i++) {
          let v = sel[i];
          if (v > a) {
            b = a;
            a = v;
          } else if (v > b) {
            b = v;
          }
        }
        let score = a + b;
        if (score > best) {
          best = score;
          best_g = g;
        }
      }
      keep_mask = keep_mask | (1u << best_g);
    }
    for (var g = 0u; g < P.n_groups; g++) {
      if ((keep_mask & (1u << g)) == 0u) {
        for (var i = g * per; i < (g + 1u) * per; i++) {
          sel[i] = NEG_INF;
        }
      }
    }
  }
  var total = 0.0;
  for (var j = 0u; j < P.k; j++) {
    var best = -3.2e38; // above TAKEN, below the masked groups' NEG_INF
    var best_e = 0u;
    for (var e = 0u; e < n; e++) {
      if (sel[e] > best) {
        best = sel[e];
        best_e = e;
      }
    }
    sel[best_e] = TAKEN;
    ids[t * P.k + j] = best_e;
    weights[t * P.k + j] = prob[best_e];
    total += prob[best_e];
  }
  if (GATING == 2u) {
    // softmax over the chosen logits (descending: the first is the max)
    let m = weights[t * P.k];
    total = 0.0;
    for (var j = 0u; j < P.k; j++) {
      let v = exp(weights[t * P.k + j] - m);
      weights[t * P.k + j] = v;
      total += v;
    }
    for (var j = 0u; j < P.k; j++) {
      weights[t * P.k + j] = weights[t * P.k + j] / total;
    }
  }
  let denom = max(total, 6.103515625e-5);
  for (var j = 0u; j < P.k; j++) {
    var w = weights[t * P.k + j];
    if (P.normalize != 0u) {
      w = w / denom;
    }
    weights[t * P.k + j] = w * P.scale;
  }
}
