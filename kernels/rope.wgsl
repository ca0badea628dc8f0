// rope.wgsl — RoPE's angle reduction, shared by norm.wgsl (qk_norm_rope) and mla.wgsl
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
