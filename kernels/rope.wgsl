// rope.wgsl — RoPE's angle (YaRN included) and its reduction, shared by norm.wgsl (qk_norm_rope) and mla.wgsl
// (mla_q_rope). θ is reduced modulo 2π in three parts (Cody–Waite) before cos/sin, so that large
// positions keep their precision on devices whose sin/cos reduce poorly. Included with
// `#include "rope.wgsl"`; no bindings.

// 2π = C1 + C2 + C3 with C1, C2 of 8 significant bits: n·C1 and n·C2 are exact for n < 2^16
const INV_2PI: f32 = 0.15915494309189535;
const C1: f32 = 6.28125;
const C2: f32 = 0.00193023681640625;
const C3: f32 = 5.0703633905e-6;

fn reduce_angle(t: f32) -> f32 {
  let n = round(t * INV_2PI);
  return ((t - n * C1) - n * C2) - n * C3;
}

// cos and sin of pair i's angle, × mscale, as ggml's rope_yarn: θ = freq_scale · extrap (extrap =
// pos · theta_scale^i / freq_factor_i), mixed back towards extrap by the YaRN ramp when
// ext_factor ≠ 0: ramp = (1 − clamp((i − corr_lo) / max(0.001, corr_hi − corr_lo), 0, 1)) · ext_factor.
fn rope_cos_sin(extrap: f32, i: u32, freq_scale: f32, ext_factor: f32, corr_lo: f32, corr_hi: f32, mscale: f32) -> vec2<f32> {
  var t = freq_scale * extrap;
  if (ext_factor != 0.0) {
    let y = (f32(i) - corr_lo) / max(0.001, corr_hi - corr_lo);
    let ramp = (1.0 - min(1.0, max(0.0, y))) * ext_factor;
    t = t * (1.0 - ramp) + extrap * ramp;
  }
  let r = reduce_angle(t);
  return vec2<f32>(cos(r) * mscale, sin(r) * mscale);
}
