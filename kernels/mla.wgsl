// mla.wgsl — deepseek2's multi-head latent attention: the one step the other kernels do not cover.
// (The rest of MLA on the GPU: matvec/matmul for the projections, rms_norm over strided rows for the
// latent, qk_norm_rope for k_pe, attn_kv_write, matvec_id for the per-head W_k_b / W_v_b, the
// attention kernels as MQA; src/arch/mla.ts.)
//
// Entry point mla_q_rope (launcher createMlaQRope, src/gpu/mla.ts): the rope part of each query
// head, rotated (adjacent pairs 2i, 2i + 1, as llama.cpp's deepseek2) and written into its place at
// the end of the assembled query [q_abs | q_pe]:
//   0 P    uniform             MlaRopeParams
//   1 q    storage read        f32; head h of token t at t·q_stride + h·q_head_stride, its rope
//                              part (n_rot values) at + q_rope_offset
//   2 pos  storage read        u32 [n_tokens] positions
//   3 out  storage read_write  f32; head h of token t's rope part at t·out_stride + h·out_head_stride + out_offset
//   θ_i = freq_scale · pos · theta_scale^i (repeated f32 multiplication, as ggml), YaRN-mixed and
//   × mscale by rope.wgsl's rope_cos_sin; out[2i] = a·cos − b·sin, out[2i+1] = a·sin + b·cos.
//   Dispatch (n_heads, n_tokens, 1): one workgroup per head and token, threads over the pairs.
// Override: WG.

struct MlaRopeParams {
  n_heads: u32,
  n_tokens: u32,
  n_rot: u32,
  q_stride: u32,
  q_head_stride: u32,
  q_rope_offset: u32,
  out_stride: u32,
  out_head_stride: u32,
  out_offset: u32,
  theta_scale: f32,
  freq_scale: f32,
  ext_factor: f32,
  corr_lo: f32,
  corr_hi: f32,
  mscale: f32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
  _pad3: u32,
  _pad4: u32,
}

@group(0) @binding(0) var<uniform> P: MlaRopeParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 32u;

#include "rope.wgsl"

@compute @workgroup_size(WG)
fn mla_q_rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let t = wid.y;
  let src = t * P.q_stride + h * P.q_head_stride + P.q_rope_offset;
  let dst = t * P.out_stride + h * P.out_head_stride + P.out_offset;
  let p = f32(pos[t]);
  for (var i = tid; i < P.n_rot / 2u; i += WG) {
    var theta = p;
    for (var j = 0u; j < i; j++) {
      theta = theta * P.theta_scale;
    }
    let cs = rope_cos_sin(theta, i, P.freq_scale, P.ext_factor, P.corr_lo, P.corr_hi, P.mscale);
    let c = cs.x;
    let sn = cs.y;
    let a = q[src + 2u * i];
    let b = q[src + 2u * i + 1u];
    out[dst + 2u * i] = a * c - b * sn;
    out[dst + 2u * i + 1u] = a * sn + b * c;
  }
}
