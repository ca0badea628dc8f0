#if KV_F16
enable f16;
#endif
// norm.wgsl — RMSNorm, and per-head Q/K RMSNorm fused with NEOX RoPE.
//
// Entry point rms_norm (launcher createRmsNorm):
//   0 P       uniform  NormParams
//   1 x       storage read        f32 [rows, n]; row r at x_offset + r·x_stride
//   2 weight  storage read        f32 [n]
//   3 out     storage read_write  f32; row r at out_offset + r·out_stride
//   out = x / sqrt(mean(x²) + eps) ⊙ weight (the scale is an f32, then the weight multiply,
//   as ggml). Dispatch (gx, gy, 1) with gx·gy ≥ rows (grid2d): one workgroup per row.
//
// Entry point rms_norm_q (launcher createRmsNorm with `round`): rms_norm, and the same normed rows
// through llama.cpp's activation round trip (act_quant.wgsl, bit for bit) into
//   4 out_q   storage read_write  f32 [rows, n] (contiguous)
//   one define of ROUND_Q8_K (n a multiple of 256), ROUND_Q8_0 (of 32; Q8_1 too), ROUND_F16,
//   ROUND_BF16. The workgroup has the whole row, so it has every block's max: the round trip a
//   product's input needs costs no dispatch of its own. 8-bit types: one thread per block.
//
// Entry point qk_norm_rope (launcher createQKNormRope), in place:
//   0 P       uniform  RopeParams
//   1 x       storage read_write  f32 [n_tokens, n_heads, head_dim]; head h of token t at
//                                 x_offset + t·token_stride + h·head_dim
//   2 weight  storage read        f32 [head_dim] (attn_q_norm / attn_k_norm)
//   3 pos     storage read        u32 [n_tokens] positions; token t is at pos[pos_offset + t]
//   Per head: optional RMSNorm with weight (override NORM), then RoPE: NEOX, element i < n_rot/2
//   pairs with i + n_rot/2, or with override ROPE_NORM (llama) 2i with 2i + 1;
//   θ_i = freq_scale · (pos · theta_scale^i / freq_factors[i]) with theta_scale = base^(−2/n_rot)
//   computed on the CPU, YaRN-mixed and cos/sin × mscale (rope.wgsl rope_cos_sin); θ is built by repeated f32 multiplication as ggml does, reduced modulo 2π
//   in three parts (Cody–Waite) before cos/sin. Elements ≥ n_rot are only normalized.
//   FREQ_FACTORS (llama3's rope_freqs):
//   10 freq_factors storage read     f32 [n_rot/2]
//   Dispatch (n_heads, n_tokens, 1): one workgroup per head and token.
//   QK_PAIR (launcher createQKNormRope with `k`): Q and K in one dispatch, (n_heads + k_heads,
//   n_tokens, 1); K heads in
//   4 kx        storage read_write  f32; head h of token t at k_offset + t·k_stride + h·head_dim
//   5 k_weight  storage read        f32 [head_dim] (attn_k_norm)
//   Q_ROUND_F16 (with QK_PAIR; numerics 'llamacpp' with an f16 KV cache): each Q value also rounded
//   to f16 (act_quant.wgsl to_f16, bit for bit) into
//   6 q_r       storage read_write  f32 [n_tokens, n_heads·head_dim] (contiguous)
//   KV (with QK_PAIR; launcher createQKNormRope with `kv`): the same dispatch also writes the KV
//   cache, as attn_kv_write.wgsl does (the same kv_t conversion of the same f32 values, so the
//   same bits). Token t is at position pos0 + t (uniform; binding 3 `pos` is absent: one sequence,
//   contiguous positions), both for RoPE's θ and for the cache row. K head workgroup (h, t) stores
//   its roped values into k_cache[pos0 + t, h, :] as it writes them to kx, then copies V head h of
//   token t (head_dim_v elements, WG-strided: any head_dim_v) into v_cache[pos0 + t, h, :]:
//   7 v_new     storage read        f32; V head h of token t at v_offset + t·v_stride + h·head_dim_v
//   8 k_cache   storage read_write  kv_t [n_ctx, k_heads, head_dim] (position-major)
//   9 v_cache   storage read_write  kv_t [n_ctx, k_heads, head_dim_v]
//   kv_t is f16 with KV_F16 (device has shader-f16), f32 otherwise. The grid is unchanged.
//
// Defines: RMS_NORM, RMS_NORM_Q (+ a ROUND_* variant) or QK_NORM_ROPE (set by the spec: the entry
// points bind different types); with QK_NORM_ROPE: QK_PAIR, Q_ROUND_F16, KV, KV_F16 as above.
// Overrides: WG (threads, power of two), NORM (qk_norm_rope: normalize before rotating), ROPE_NORM
// (qk_norm_rope: adjacent pairs).

struct NormParams {
  n: u32,
  rows: u32,
  x_offset: u32,
  x_stride: u32,
  out_offset: u32,
  out_stride: u32,
  eps: f32,
  _pad0: u32,
}

struct RopeParams {
  n_heads: u32,
  head_dim: u32,
  n_rot: u32,
  n_tokens: u32,
  x_offset: u32,
  token_stride: u32,
  pos_offset: u32,
  eps: f32,
  theta_scale: f32,
  k_heads: u32,  // QK_PAIR: the K heads, after the n_heads Q heads
  k_offset: u32,
  k_stride: u32,
  pos0: u32,        // KV: position of token 0 (replaces pos[])
  head_dim_v: u32,  // KV
  v_offset: u32,    // KV
  v_stride: u32,    // KV
  freq_scale: f32,  // θ multiplied by this (linear / YaRN rope scaling; 1 otherwise)
  ext_factor: f32,  // YaRN (rope.wgsl rope_cos_sin): 0 = none
  corr_lo: f32,
  corr_hi: f32,
  mscale: f32,      // cos and sin × this (1 without YaRN)
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

override WG: u32 = 128u;
override NORM: bool = true;
override ROPE_NORM: bool = false;

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

#if RMS_NORM || RMS_NORM_Q
@group(0) @binding(0) var<uniform> P: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// 1 / sqrt(mean(x²) + eps) of row `row` (every thread gets it)
fn row_scale(xo: u32, n: u32, tid: u32) -> f32 {
  var s = 0.0;
  for (var i = tid; i < n; i += WG) {
    let v = x[xo + i];
    s += v * v;
  }
  let total = wg_sum(s, tid);
  return 1.0 / sqrt(total / f32(n) + P.eps);
}
#endif

#if RMS_NORM
@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= P.rows) {
    return;
  }
  let n = P.n;
  let xo = P.x_offset + row * P.x_stride;
  let scale = row_scale(xo, n, tid);
  let oo = P.out_offset + row * P.out_stride;
  for (var i = tid; i < n; i += WG) {
    out[oo + i] = (x[xo + i] * scale) * weight[i];
  }
}
#endif

#if RMS_NORM_Q
#include "round.wgsl"

@group(0) @binding(4) var<storage, read_write> out_q: array<f32>;

// the normed value i of the row, as rms_norm writes it (recomputed: the same expression, the same bits)
fn normed(xo: u32, i: u32, scale: f32) -> f32 {
  return (x[xo + i] * scale) * weight[i];
}

@compute @workgroup_size(WG)
fn rms_norm_q(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= P.rows) {
    return;
  }
  let n = P.n;
  let xo = P.x_offset + row * P.x_stride;
  let scale = row_scale(xo, n, tid);
  let oo = P.out_offset + row * P.out_stride;
  for (var i = tid; i < n; i += WG) {
    out[oo + i] = normed(xo, i, scale);
  }
  let qo = row * n; // out_q: contiguous rows of n
#if ROUND_Q8_K
  // one thread per block of 256 (act_quant.wgsl q8_k, serially): the first value of largest
  // magnitude sets iscale = −127/max, q = min(127, round(v·iscale)), out = (1/iscale)·q
  for (var b = tid * 256u; b < n; b += WG * 256u) {
    var a = 0.0;
    var ai = b;
    for (var i = b; i < b + 256u; i++) {
      let v = abs(normed(xo, i, scale));
      if (v > a) {
        a = v;
        ai = i;
      }
    }
    var iscale = 0.0;
    var d = 0.0;
    if (a != 0.0) {
      let m = div_rn(127.0, a);
      iscale = select(m, -m, normed(xo, ai, scale) > 0.0);
      let dm = div_rn(1.0, m);
      d = select(dm, -dm, iscale < 0.0);
    }
    for (var i = b; i < b + 256u; i++) {
      if (iscale == 0.0) {
        out_q[qo + i] = 0.0;
      } else {
        out_q[qo + i] = d * min(127.0, round(normed(xo, i, scale) * iscale));
      }
    }
  }
#elif ROUND_Q8_0
  // one thread per block of 32 (act_quant.wgsl q8_0): d = f16(max|v|/127), q = round(v·127/max)
  for (var b = tid * 32u; b < n; b += WG * 32u) {
    var a = 0.0;
    for (var i = b; i < b + 32u; i++) {
      a = max(a, abs(normed(xo, i, scale)));
    }
    var d = 0.0;
    var id = 0.0;
    if (a != 0.0) {
      d = f16_bits_to_f32(f32_to_f16_bits(div_rn(a, 127.0)));
      id = div_rn(127.0, a);
    }
    for (var i = b; i < b + 32u; i++) {
      out_q[qo + i] = select(d * clamp(round(normed(xo, i, scale) * id), -128.0, 127.0), 0.0, a == 0.0);
    }
  }
#elif ROUND_F16
  for (var i = tid; i < n; i += WG) {
    out_q[qo + i] = f16_bits_to_f32(f32_to_f16_bits(normed(xo, i, scale)));
  }
#else
  for (var i = tid; i < n; i += WG) {
    out_q[qo + i] = round_bf16(normed(xo, i, scale));
  }
#endif
}
#endif

#if QK_NORM_ROPE
@group(0) @binding(0) var<uniform> P: RopeParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
#if !KV
@group(0) @binding(3) var<storage, read> pos: array<u32>;
#endif
#if QK_PAIR
@group(0) @binding(4) var<storage, read_write> kx: array<f32>;
@group(0) @binding(5) var<storage, read> k_weight: array<f32>;
#endif
#if Q_ROUND_F16
#include "round.wgsl"
@group(0) @binding(6) var<storage, read_write> q_r: array<f32>;
#endif
#if FREQ_FACTORS
@group(0) @binding(10) var<storage, read> freq_factors: array<f32>;
#endif
#if KV
#if KV_F16
alias kv_t = f16;
#else
alias kv_t = f32;
#endif
@group(0) @binding(7) var<storage, read> v_new: array<f32>;
@group(0) @binding(8) var<storage, read_write> k_cache: array<kv_t>;
@group(0) @binding(9) var<storage, read_write> v_cache: array<kv_t>;
#endif

// element i of the head being rotated: Q (x, weight) or, with QK_PAIR, K (kx, k_weight)
fn ld(is_k: bool, i: u32) -> f32 {
#if QK_PAIR
  if (is_k) {
    return kx[i];
  }
#endif
  return x[i];
}

fn wt(is_k: bool, i: u32) -> f32 {
#if QK_PAIR
  if (is_k) {
    return k_weight[i];
  }
#endif
  return weight[i];
}

// stores v as element e of the head whose values start at xb (in x, or kx for a K head); a Q head
// also writes v rounded to f16 (Q_ROUND_F16) at q_r[qb + e], a K head v as kv_t at k_cache[cb + e] (KV)
fn st(is_k: bool, xb: u32, qb: u32, cb: u32, e: u32, v: f32) {
#if QK_PAIR
  if (is_k) {
    kx[xb + e] = v;
#if KV
    k_cache[cb + e] = kv_t(v);
#endif
    return;
  }
#endif
  x[xb + e] = v;
#if Q_ROUND_F16
  q_r[qb + e] = f16_bits_to_f32(f32_to_f16_bits(v));
#endif
}

#include "rope.wgsl"

@compute @workgroup_size(WG)
fn qk_norm_rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let is_k = wid.x >= P.n_heads; // QK_PAIR: workgroups n_heads.. are the K heads
  let h = select(wid.x, wid.x - P.n_heads, is_k);
  let t = wid.y;
  let hd = P.head_dim;
  let base = select(P.x_offset + t * P.token_stride, P.k_offset + t * P.k_stride, is_k) + h * hd;
  let qb = (t * P.n_heads + h) * hd; // this head in q_r
#if KV
  let p_t = P.pos0 + t;
  let cb = (p_t * P.k_heads + h) * hd; // this K head in k_cache
#else
  let p_t = pos[P.pos_offset + t];
  let cb = 0u;
#endif
  var scale = 1.0;
  if (NORM) {
    var s = 0.0;
    for (var i = tid; i < hd; i += WG) {
      let v = ld(is_k, base + i);
      s += v * v;
    }
    let total = wg_sum(s, tid);
    scale = 1.0 / sqrt(total / f32(hd) + P.eps);
  }
  let half = P.n_rot / 2u;
  let p = f32(p_t);
  for (var i = tid; i < half; i += WG) {
    var theta = p;
    for (var j = 0u; j < i; j++) {
      theta = theta * P.theta_scale;
    }
    var extrap = theta;
#if FREQ_FACTORS
    extrap = extrap / freq_factors[i];
#endif
    let cs = rope_cos_sin(extrap, i, P.freq_scale, P.ext_factor, P.corr_lo, P.corr_hi, P.mscale);
    let c = cs.x;
    let sn = cs.y;
    // the pair: (i, i + n_rot/2) NEOX, (2i, 2i + 1) with ROPE_NORM
    let ia = select(i, 2u * i, ROPE_NORM);
    let ib = select(i + half, 2u * i + 1u, ROPE_NORM);
    var a = ld(is_k, base + ia);
    var b = ld(is_k, base + ib);
    if (NORM) {
      a = (a * scale) * wt(is_k, ia);
      b = (b * scale) * wt(is_k, ib);
    }
    st(is_k, base, qb, cb, ia, a * c - b * sn);
    st(is_k, base, qb, cb, ib, a * sn + b * c);
  }
  for (var i = P.n_rot + tid; i < hd; i += WG) {
    var v = ld(is_k, base + i);
    if (NORM) {
      v = (v * scale) * wt(is_k, i);
    }
    st(is_k, base, qb, cb, i, v);
  }
#if KV
  // V head h of token t (K workgroups only: one per KV head and token)
  if (is_k) {
    let hdv = P.head_dim_v;
    let vs = P.v_offset + t * P.v_stride + h * hdv;
    let vc = (p_t * P.k_heads + h) * hdv;
    for (var e = tid; e < hdv; e += WG) {
      v_cache[vc + e] = kv_t(v_new[vs + e]);
    }
  }
#endif
}
#endif
