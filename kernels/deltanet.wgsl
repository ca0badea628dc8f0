// deltanet.wgsl — the Gated DeltaNet mixer of the Qwen3.5 hybrids (qwen35moe, qwen35): the causal
// depthwise convolution with its state, and the gated delta-rule recurrence with its state resident
// on the GPU. Reference: src/cpu/ops.ts ssmConv / l2Norm / deltaRuleStep, src/cpu/deltanet.ts.
//
// Entry point ssm_conv (launcher createSsmConv), defines SSM_CONV:
//   0 P      uniform  ConvParams
//   1 x      storage read        f32 [n_tokens, channels] raw qkv; token t at x_offset + t·x_stride
//   2 w      storage read        f32 [channels, kernel] (ssm_conv1d): tap j of channel c at c·kernel + j,
//                                tap 0 multiplies the oldest input
//   3 state  storage read_write  f32 [kernel−1, channels] at state_offset: the previous kernel−1 raw
//                                inputs, oldest first; left holding the last kernel−1 raw inputs
//   4 out    storage read_write  f32 [n_tokens, channels]; token t at out_offset + t·out_stride
//   out[t][c] = Σ_j in[t+j][c]·w[c][j] with in = state ++ x, then SiLU (override SILU).
//   One thread per channel walks the tokens in order with the window in registers (kernel ≤ 8).
//   Dispatch (ceil(channels / WG), 1, 1).
//
// Entry point gated_delta_net (launcher createGatedDeltaNet), defines GATED_DELTA_NET:
//   0 P        uniform  DeltaParams
//   1 qkv      storage read        f32 conv output (after SiLU) of token t at qkv_offset + t·qkv_stride:
//                                  q [n_k_heads, d] | k [n_k_heads, d] | v [n_v_heads, d]
//   2 beta     storage read        f32 raw ssm_beta projection [n_tokens, n_v_heads] (beta_offset, beta_stride)
//   3 alpha    storage read        f32 raw ssm_alpha projection [n_tokens, n_v_heads] (alpha_offset, alpha_stride)
//   4 dt_bias  storage read        f32 [n_v_heads] (ssm_dt.bias)
//   5 ssm_a    storage read        f32 [n_v_heads] (ssm_a = −exp(A_log))
//   6 state    storage read_write  f32 [n_v_heads, d, d] at state_offset: S[h][i][j], i the key dim
//   7 out      storage read_write  f32 [n_tokens, n_v_heads, d]; token t at out_offset + t·out_stride
//   Per token and v head h (q/k head h mod n_k_heads): q, k L2-normalized (x / max(‖x‖, eps));
//   β = sigmoid(beta); g = softplus(alpha + dt_bias)·ssm_a; S ← e^g·S; δ = β·(v − Sᵀk);
//   S ← S + k δᵀ; out = Sᵀq · scale. Tokens are processed in order inside the dispatch (prefill and
//   decode alike). Workgroup (h, jb) owns value columns jb·WG .. jb·WG+WG−1 of head h: thread j
//   keeps column j of S in the state buffer (coalesced along j); q and k are staged in workgroup
//   memory with their norms (each workgroup recomputes them). Dispatch (n_v_heads, ceil(d / WG), 1).
//   d ≤ 256.
//
// Overrides: WG (threads, power of two), SILU (ssm_conv: apply SiLU, default true).

struct ConvParams {
  channels: u32,
  kernel: u32,
  n_tokens: u32,
  x_offset: u32,
  x_stride: u32,
  out_offset: u32,
  out_stride: u32,
  state_offset: u32,
}

struct DeltaParams {
  n_tokens: u32,
  n_k_heads: u32,
  n_v_heads: u32,
  d: u32,
  qkv_offset: u32,
  qkv_stride: u32,
  beta_offset: u32,
  beta_stride: u32,
  alpha_offset: u32,
  alpha_stride: u32,
  out_offset: u32,
  out_stride: u32,
  state_offset: u32,
  eps: f32,
  scale: f32,
  _pad0: u32,
}

override WG: u32 = 64u;
override SILU: bool = true;

const MAX_K: u32 = 8u;
const MAX_D: u32 = 256u;

#if SSM_CONV
@group(0) @binding(0) var<uniform> P: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> state: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn ssm_conv(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= P.channels) {
    return;
  }
  let K = P.kernel;
  var win: array<f32, MAX_K>;
  for (var j = 0u; j + 1u < K; j++) {
    win[j] = state[P.state_offset + j * P.channels + c];
  }
  for (var t = 0u; t < P.n_tokens; t++) {
    win[K - 1u] = x[P.x_offset + t * P.x_stride + c];
    var s = 0.0;
    for (var j = 0u; j < K; j++) {
      s += win[j] * w[c * K + j];
    }
    if (SILU) {
      s = s / (1.0 + exp(-s));
    }
    out[P.out_offset + t * P.out_stride + c] = s;
    for (var j = 0u; j + 1u < K; j++) {
      win[j] = win[j + 1u];
    }
  }
  for (var j = 0u; j + 1u < K; j++) {
    state[P.state_offset + j * P.channels + c] = win[j];
  }
}
#endif

#if GATED_DELTA_NET
@group(0) @binding(0) var<uniform> P: DeltaParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read> alpha: array<f32>;
@group(0) @binding(4) var<storage, read> dt_bias: array<f32>;
@group(0) @binding(5) var<storage, read> ssm_a: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;

var<workgroup> qs: array<f32, MAX_D>;
var<workgroup> ks: array<f32, MAX_D>;
var<workgroup> red_q: array<f32, WG>;
var<workgroup> red_k: array<f32, WG>;

// log(1 + e^x) without losing e^x when it is tiny (log1p), and x itself above 20 (ggml)
fn softplus(x: f32) -> f32 {
  if (x > 20.0) {
    return x;
  }
  let e = exp(x);
  let u = 1.0 + e;
  if (u == 1.0) {
    return e;
  }
  return log(u) * e / (u - 1.0);
}

@compute @workgroup_size(WG)
fn gated_delta_net(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let hv = wid.x;
  let tid = lid.x;
  let d = P.d;
  let hk = hv % P.n_k_heads;
  let j = wid.y * WG + tid; // this thread's value column
  let s0 = P.state_offset + hv * d * d;
  let bias = dt_bias[hv];
  let a = ssm_a[hv];
  for (var t = 0u; t < P.n_tokens; t++) {
    let row = P.qkv_offset + t * P.qkv_stride;
    let qo = row + hk * d;
    let ko = row + (P.n_k_heads + hk) * d;
    let vo = row + 2u * P.n_k_heads * d + hv * d;
    // stage q and k, and their squared norms
    var sq = 0.0;
    var sk = 0.0;
    for (var i = tid; i < d; i += WG) {
      let qv = qkv[qo + i];
      let kv = qkv[ko + i];
      qs[i] = qv;
      ks[i] = kv;
      sq += qv * qv;
      sk += kv * kv;
    }
    red_q[tid] = sq;
    red_k[tid] = sk;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (tid < s) {
        red_q[tid] += red_q[tid + s];
        red_k[tid] += red_k[tid + s];
      }
      workgroupBarrier();
    }
    let q_scale = 1.0 / max(sqrt(red_q[0]), P.eps);
    let k_scale = 1.0 / max(sqrt(red_k[0]), P.eps);
    let b = 1.0 / (1.0 + exp(-beta[P.beta_offset + t * P.beta_stride + hv]));
    let g = softplus(alpha[P.alpha_offset + t * P.alpha_stride + hv] + bias) * a;
    let decay = exp(g);
    if (j < d) {
      // decay, and u = Sᵀk for column j
      var u = 0.0;
      for (var i = 0u; i < d; i++) {
        let idx = s0 + i * d + j;
        let sv = state[idx] * decay;
        state[idx] = sv;
        u += sv * (ks[i] * k_scale);
      }
      let delta = b * (qkv[vo + j] - u);
      // rank-1 update, then the readout Sᵀq
      var o = 0.0;
      for (var i = 0u; i < d; i++) {
        let idx = s0 + i * d + j;
        let sv = state[idx] + (ks[i] * k_scale) * delta;
        state[idx] = sv;
        o += sv * (qs[i] * q_scale);
      }
      out[P.out_offset + t * P.out_stride + hv * d + j] = o * P.scale;
    }
    workgroupBarrier(); // qs, ks and red_* are reused by the next token
  }
}
#endif
