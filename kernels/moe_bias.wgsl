// moe_bias.wgsl — gpt-oss's additions to the expert FFN (llama.cpp build_moe_ffn with biased experts
// and LLM_FFN_SWIGLU_OAI_MOE), around moe_ffn.wgsl's unfused projections. Launcher: the `oai` option
// of createMoeFfnDecode (src/gpu/moe.ts). slot s = t·k + j is token t's j-th expert, e_s = ids[ids_offset + s].
//   ADD_ID:    y[s] += bias[e_s]                                   (ggml add_id: gate's and up's biases)
//   OAI:       y[i] = x·σ(α·x)·(clamp(u[i], −limit, limit) + 1), x = min(y[i], limit)
//              (ggml swiglu_oai: y holds the gate projection, u the up projection)
//   DOWN_BIAS: y[t] += Σ_j w[t·k + j] · bias[e_{t·k+j}]             (down's bias, weighted like its
//              output; the residual stream already holds Σ_j w·W_down·act from moe_ffn's DOWN)
//
// Bindings (@group(0)):
//   0 P     uniform             MoeBiasParams
//   1 y     storage read_write  f32: ADD_ID, OAI: slot s's [rows] at y_offset + s·y_stride;
//                               DOWN_BIAS: token t's [rows] at y_offset + t·y_stride
//   2 ids   storage read        u32 [n_tokens, k] expert ids at ids_offset (ADD_ID, DOWN_BIAS)
//   3 bias  storage read        f32 [n_expert, rows]: expert e's bias at e·rows (ADD_ID, DOWN_BIAS)
//   4 rw    storage read        f32 [n_tokens, k] expert weights at rw_offset (DOWN_BIAS)
//   5 u     storage read        f32: slot s's up projection [rows] at u_offset + s·y_stride (OAI)
// Dispatch: (gx, gy, 1) workgroups of WG threads (grid2d) with gx·gy·WG ≥ n·rows, n = slots
// (ADD_ID, OAI) or tokens (DOWN_BIAS); thread i takes element (i / rows, i mod rows).
// Defines: ADD_ID | OAI | DOWN_BIAS. Overrides: WG.

struct MoeBiasParams {
  n: u32,          // slots (ADD_ID, OAI) or tokens (DOWN_BIAS)
  rows: u32,       // elements per row
  k: u32,          // experts per token
  ids_offset: u32,
  rw_offset: u32,
  y_offset: u32,
  y_stride: u32,
  u_offset: u32,
  alpha: f32,      // OAI: 1.702 in gpt-oss
  limit: f32,      // OAI: 7
  _pad0: u32,
  _pad1: u32,
}

@group(0) @binding(0) var<uniform> P: MoeBiasParams;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
#if ADD_ID || DOWN_BIAS
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
#endif
#if DOWN_BIAS
@group(0) @binding(4) var<storage, read> rw: array<f32>;
#endif
#if OAI
@group(0) @binding(5) var<storage, read> u: array<f32>;
#endif

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + tid;
  if (i >= P.n * P.rows) {
    return;
  }
  let s = i / P.rows; // slot (ADD_ID, OAI) or token (DOWN_BIAS)
  let r = i - s * P.rows;
  let yi = P.y_offset + s * P.y_stride + r;
#if ADD_ID
  y[yi] += bias[ids[P.ids_offset + s] * P.rows + r];
#elif OAI
  let x = min(y[yi], P.limit);
  let up = clamp(u[P.u_offset + s * P.y_stride + r], -P.limit, P.limit);
  y[yi] = (x / (1.0 + exp(P.alpha * -x))) * (up + 1.0);
#elif DOWN_BIAS
  var acc = 0.0;
  for (var j = 0u; j < P.k; j++) {
    let slot = s * P.k + j;
    acc += rw[P.rw_offset + slot] * bias[ids[P.ids_offset + slot] * P.rows + r];
  }
  y[yi] += acc;
#endif
}
