#if KV_F16
enable f16;
#endif
// attn_prefill.wgsl — causal attention of a batch of query tokens over the KV cache (prefill),
// tiled over query blocks × key blocks with an online softmax (flash-attention style).
// Launcher: createAttnPrefill (src/gpu/attention.ts).
//
// Bindings (@group(0)):
//   0 P        uniform             PrefillParams
//   1 q        storage read        f32; query t, head h: [DK] at q_offset + t·q_stride + h·DK
//   2 k_cache  storage read        kv_t [n_ctx, n_head_kv, DK] (the new tokens already written)
//   3 v_cache  storage read        kv_t [n_ctx, n_head_kv, DV]: position j, head h's V at j·v_pos + h·v_head
//                                  (MLA: the K cache itself, V the first DV values of each K row)
//   4 out      storage read_write  f32; query t, head h: [DV] at out_offset + t·out_stride + h·DV
//   5 sinks    storage read        f32 [n_head] (SINKS): a logit per head that joins every row's
//                                  softmax max and sum without a value (gpt-oss)
// kv_t is f16 with KV_F16, f32 otherwise. Query t sits at position p0 + t and sees keys
// 0 ..= p0 + t (window > 0, a sliding-window layer: only the last `window` of them, keys
// > p0 + t − window). Query head h reads KV head h / group (GQA). s = scale · q·k.
//
// Dispatch: (ceil(n_q / BQ), n_head, 1). Workgroup (b, h) holds BQ query rows (pre-scaled) and
// their BQ × DV output accumulators in workgroup memory and walks key blocks of BK positions up to
// the last visible key of its last row: load K tile → BQ × BK scores (causal mask) → per-row
// online softmax update (running max m, sum l, rescale α = e^(m_old − m_new)) while the V tile
// loads over the K tile → O = α·O + P·V. Finally out = O / l.
// Workgroup memory: 4·BQ·DK + sizeof(kv_t)·BK·max(DK + KPAD, DV) + 4·BQ·BK + 4·BQ·DV + 12·BQ bytes
// (the launcher picks BQ, BK to fit the device limit).
//
// LLAMA_SOFTMAX (numerics 'llamacpp' with an f16 cache: llama.cpp's non-flash attention, whose
// KQ·V product takes the softmax in f16, V's vec_dot_type): s = (q·k)·scale, scale after the dot;
// two passes over the key blocks: the first finds each row's max m and sum l (online), the second
// recomputes the scores and accumulates O += f16(e^(s − m) · (1/l))·v; out = O.
//
// SINKS: each row's running max starts at the head's sink and its sum at 1 (= e^(sink − sink)),
// the online update then treats the sink as one more score without a V row.
//
// Defines: KV_F16, LLAMA_SOFTMAX, SINKS.
// Overrides: WG (threads, ≥ BQ), BQ (query rows per workgroup), BK (keys per step), DK, DV.

#if KV_F16
alias kv_t = f16;
const KPAD: u32 = 2u; // K tile row stride DK + KPAD: an odd number of 32-bit words
#else
alias kv_t = f32;
const KPAD: u32 = 1u;
#endif

#if LLAMA_SOFTMAX
#include "round.wgsl"
#endif

struct PrefillParams {
  n_q: u32,
  p0: u32,         // position of query 0
  group: u32,      // n_head / n_head_kv
  n_head_kv: u32,
  q_offset: u32,
  q_stride: u32,
  out_offset: u32,
  out_stride: u32,
  scale: f32,
  window: u32,     // sliding window (0: every earlier position)
  v_pos: u32,      // v_cache elements between positions (n_head_kv·DV; V inside the K rows: n_head_kv·DK)
  v_head: u32,     // v_cache elements between KV heads (DV; V inside the K rows: DK)
}

@group(0) @binding(0) var<uniform> P: PrefillParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<kv_t>;
@group(0) @binding(3) var<storage, read> v_cache: array<kv_t>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
#if SINKS
@group(0) @binding(5) var<storage, read> sinks: array<f32>;
#endif

override WG: u32 = 64u;
override BQ: u32 = 16u;
override BK: u32 = 16u;
override DK: u32 = 128u;
override DV: u32 = 128u;
override KST: u32 = DK + KPAD;      // K tile row stride
override KVS: u32 = max(KST, DV);  // K/V tile row capacity

const NEG: f32 = -3.0e38;

var<workgroup> sq: array<f32, BQ * DK>;
var<workgroup> skv: array<kv_t, BK * KVS>;
var<workgroup> ss: array<f32, BQ * BK>;
var<workgroup> so: array<f32, BQ * DV>;
var<workgroup> sm: array<f32, BQ>;
var<workgroup> sl: array<f32, BQ>;
var<workgroup> sa: array<f32, BQ>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let q0 = wid.x * BQ;
  let h = wid.y;
  let nq = min(BQ, P.n_q - q0);
  let kvh = h / P.group;
  let ks = P.n_head_kv * DK;
  let vs = P.v_pos;

  for (var i = tid; i < BQ * DK; i += WG) {
    let r = i / DK;
    var v = 0.0;
    if (r < nq) {
      v = q[P.q_offset + (q0 + r) * P.q_stride + h * DK + (i - r * DK)];
#if !LLAMA_SOFTMAX
      v *= P.scale;
#endif
    }
    sq[i] = v;
  }
  for (var i = tid; i < BQ * DV; i += WG) {
    so[i] = 0.0;
  }
  if (tid < BQ) {
#if SINKS
    sm[tid] = sinks[h];
    sl[tid] = 1.0;
#else
    sm[tid] = NEG;
    sl[tid] = 0.0;
#endif
  }

  // keys [0, kv_end) are visible to at least one row of this block
  let kv_end = P.p0 + q0 + nq;
  let last = P.p0 + q0; // row r sees keys ≤ last + r (and, with a window, > last + r − window)
  // the first key block any row of this block sees
  var kb0 = 0u;
  if (P.window > 0u && last + 1u > P.window) {
    kb0 = ((last + 1u - P.window) / BK) * BK;
  }
#if LLAMA_SOFTMAX
  let n_pass = 2u; // pass 0: m and l; pass 1: O with the normalized f16 probabilities
#else
  let n_pass = 1u;
#endif
  for (var sweep = 0u; sweep < n_pass; sweep++) {
  let final_pass = sweep + 1u == n_pass;
  for (var kb = kb0; kb < kv_end; kb += BK) {
    let nk = min(BK, kv_end - kb);
    // K tile (zero past nk)
    for (var i = tid; i < BK * DK; i += WG) {
      let j = i / DK;
      let d = i - j * DK;
      var v = kv_t(0.0);
      if (j < nk) {
        v = k_cache[(kb + j) * ks + kvh * DK + d];
      }
      skv[j * KST + d] = v;
    }
    workgroupBarrier();
    // scores
    for (var i = tid; i < BQ * BK; i += WG) {
      let r = i / BK;
      let j = i - r * BK;
      var s = NEG;
      if (j < nk && kb + j <= last + r && (P.window == 0u || kb + j + P.window > last + r)) {
        s = 0.0;
        let qo = r * DK;
        let ko = j * KST;
        for (var d = 0u; d < DK; d++) {
          s += sq[qo + d] * f32(skv[ko + d]);
        }
#if LLAMA_SOFTMAX
        s *= P.scale;
#endif
      }
      ss[i] = s;
    }
    workgroupBarrier();
    // V tile over the K tile, and the online-softmax update of each row
    for (var i = tid; i < BK * DV; i += WG) {
      let j = i / DV;
      let d = i - j * DV;
      var v = kv_t(0.0);
      if (j < nk) {
        v = v_cache[(kb + j) * vs + kvh * P.v_head + d];
      }
      skv[i] = v;
    }
#if LLAMA_SOFTMAX
    if (final_pass && tid < BQ) {
      // m and l are final: the probabilities themselves, rounded to f16
      let o = tid * BK;
      let inv_l = div_rn(1.0, sl[tid]); // llama.cpp: (float)(1.0/sum), rounded
      for (var j = 0u; j < BK; j++) {
        ss[o + j] = f16_bits_to_f32(f32_to_f16_bits(exp(ss[o + j] - sm[tid]) * inv_l));
      }
      sa[tid] = 1.0;
    }
    if (!final_pass && tid < BQ) {
#else
    if (tid < BQ) {
#endif
      let o = tid * BK;
      let m_old = sm[tid];
      var mx = m_old;
      for (var j = 0u; j < BK; j++) {
        mx = max(mx, ss[o + j]);
      }
      let alpha = exp(m_old - mx);
      var sum = 0.0;
      for (var j = 0u; j < BK; j++) {
        // masked: 0 (e^(−3e38 − mx) = 0 once mx is a real score; a sliding window can mask a row's
        // whole first block, where mx is still −3e38)
        let p = select(0.0, exp(ss[o + j] - mx), ss[o + j] > NEG);
        ss[o + j] = p;
        sum += p;
      }
      sl[tid] = sl[tid] * alpha + sum;
      sm[tid] = mx;
      sa[tid] = alpha;
    }
    workgroupBarrier();
    // O = α·O + P·V (LLAMA_SOFTMAX: in the final pass only)
    for (var i = select(BQ * DV, tid, final_pass); i < BQ * DV; i += WG) {
      let r = i / DV;
      let d = i - r * DV;
      var acc = so[i] * sa[r];
      let po = r * BK;
      for (var j = 0u; j < nk; j++) {
        acc += ss[po + j] * f32(skv[j * DV + d]);
      }
      so[i] = acc;
    }
    workgroupBarrier();
  }
  }

  for (var i = tid; i < BQ * DV; i += WG) {
    let r = i / DV;
    if (r < nq) {
#if LLAMA_SOFTMAX
      out[P.out_offset + (q0 + r) * P.out_stride + h * DV + (i - r * DV)] = so[i];
#else
      out[P.out_offset + (q0 + r) * P.out_stride + h * DV + (i - r * DV)] = so[i] / sl[r];
#endif
    }
  }
}
