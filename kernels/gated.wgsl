// gated.wgsl — the gates of the Qwen3.5 hybrids (qwen35moe, qwen35; shared/docs/qwen35moe.md).
// Reference: src/cpu/ops.ts gatedRmsNorm / sigmoid / swiglu, src/cpu/deltanet.ts, src/cpu/qwen35.ts.
// Launchers: src/gpu/gated.ts.
//
// Entry point gated_rms_norm (createGatedRmsNorm), define GATED_RMS_NORM — the DeltaNet output norm:
//   0 P       uniform  GatedNormParams
//   1 x       storage read        f32 head h of token t at x_offset + t·x_stride + h·d (the delta rule's output)
//   2 z       storage read        f32 head h of token t at z_offset + t·z_stride + h·d (the output gate)
//   3 weight  storage read        f32 [d] (ssm_norm, shared by every head)
//   4 out     storage read_write  f32 head h of token t at out_offset + t·out_stride + h·d
//   out = (x / sqrt(mean(x²) + eps)) ⊙ weight ⊙ silu(z), per head of d values.
//   Dispatch (n_heads, n_tokens, 1): one workgroup per (head, token).
//
// Entry point sigmoid_gate (createSigmoidGate), define SIGMOID_GATE — gated attention's output gate:
//   0 P       uniform  GateParams
//   1 gate    storage read        f32 token t's [width] at g_offset + t·g_stride
//   2 o       storage read_write  f32 token t's [width] at o_offset + t·o_stride (in place)
//   o ⊙= sigmoid(gate). Dispatch (gx, gy, 1), gx·gy ≥ ceil(width·n_tokens / WG): one element per thread.
//
// Entry point swiglu_shexp (createSwigluShexp), define SWIGLU_SHEXP — the qwen35moe shared expert's
// activation with its scalar sigmoid gate folded in (down(a)·s = down(a·s), so the down projection
// can accumulate straight into the residual stream):
//   0 P       uniform  ShexpParams
//   1 x       storage read        f32 token t's [n_embd] at x_offset + t·x_stride (post-attention-norm input)
//   2 w       storage read        f32 [n_embd] (ffn_gate_inp_shexp)
//   3 gu      storage read        f32 token t: gate [n_ff] at gu_offset + t·gu_stride, up [n_ff] at + up_offset
//   4 act     storage read_write  f32 token t's [n_ff] at act_offset + t·act_stride
//   5 gate    storage read_write  f32 [n_tokens] at gate_offset: s = sigmoid(w·x) (debug taps read it)
//   act = silu(gate) ⊙ up · s (override UNGATED: s = 1, w not read). Dispatch (gx, gy, 1), gx·gy ≥ n_tokens (grid2d): one workgroup per
//   token reduces w·x, then its threads stride over n_ff.
//
// Overrides: WG (threads, power of two).

struct GatedNormParams {
  n_tokens: u32,
  n_heads: u32,
  d: u32,
  x_offset: u32,
  x_stride: u32,
  z_offset: u32,
  z_stride: u32,
  out_offset: u32,
  out_stride: u32,
  eps: f32,
  _pad0: u32,
  _pad1: u32,
}

struct GateParams {
  width: u32,
  n_tokens: u32,
  g_offset: u32,
  g_stride: u32,
  o_offset: u32,
  o_stride: u32,
  _pad0: u32,
  _pad1: u32,
}

struct ShexpParams {
  n_embd: u32,
  n_ff: u32,
  n_tokens: u32,
  x_offset: u32,
  x_stride: u32,
  gu_offset: u32,
  gu_stride: u32,
  up_offset: u32,
  act_offset: u32,
  act_stride: u32,
  gate_offset: u32,
  _pad0: u32,
}

override WG: u32 = 64u;
override UNGATED: bool = false; // swiglu_shexp: no sigmoid gate (s = 1)

var<workgroup> red: array<f32, WG>;

// sum of v over the workgroup; every thread gets the result
fn wg_sum(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red[tid] += red[tid + s];
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn silu(v: f32) -> f32 {
  return v / (1.0 + exp(-v));
}

fn sigmoid(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-v));
}

#if GATED_RMS_NORM
@group(0) @binding(0) var<uniform> P: GatedNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn gated_rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let t = wid.y;
  if (t >= P.n_tokens) {
    return;
  }
  let d = P.d;
  let xo = P.x_offset + t * P.x_stride + h * d;
  let zo = P.z_offset + t * P.z_stride + h * d;
  let oo = P.out_offset + t * P.out_stride + h * d;
  var s = 0.0;
  for (var i = tid; i < d; i += WG) {
    let v = x[xo + i];
    s += v * v;
  }
  let total = wg_sum(s, tid);
  let scale = 1.0 / sqrt(total / f32(d) + P.eps);
  for (var i = tid; i < d; i += WG) {
    out[oo + i] = ((x[xo + i] * scale) * weight[i]) * silu(z[zo + i]);
  }
}
#endif

#if SIGMOID_GATE
@group(0) @binding(0) var<uniform> P: GateParams;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(WG)
fn sigmoid_gate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + tid;
  if (i >= P.width * P.n_tokens) {
    return;
  }
  let t = i / P.width;
  let c = i % P.width;
  let oi = P.o_offset + t * P.o_stride + c;
  o[oi] = o[oi] * sigmoid(gate[P.g_offset + t * P.g_stride + c]);
}
#endif

#if SWIGLU_SHEXP
@group(0) @binding(0) var<uniform> P: ShexpParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> gu: array<f32>;
@group(0) @binding(4) var<storage, read_write> act: array<f32>;
@group(0) @binding(5) var<storage, read_write> gate: array<f32>;

@compute @workgroup_size(WG)
fn swiglu_shexp(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= P.n_tokens) {
    return;
  }
  let xo = P.x_offset + t * P.x_stride;
  var sg = 1.0;
  if (!UNGATED) {
    var s = 0.0;
    for (var i = tid; i < P.n_embd; i += WG) {
      s += x[xo + i] * w[i];
    }
    sg = sigmoid(wg_sum(s, tid));
  }
  if (tid == 0u) {
    gate[P.gate_offset + t] = sg;
  }
  let go = P.gu_offset + t * P.gu_stride;
  let ao = P.act_offset + t * P.act_stride;
  for (var i = tid; i < P.n_ff; i += WG) {
    act[ao + i] = (silu(gu[go + i]) * gu[go + P.up_offset + i]) * sg;
  }
}
#endif
