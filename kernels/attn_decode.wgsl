#if KV_F16
enable f16;
#endif
// attn_decode.wgsl — attention of ONE query token over the KV cache, flash-decoding style.
// Launcher: createAttnDecode (src/gpu/attention.ts). Both entry points share one binding layout
// (and one bind group); `reduce` ignores q / k_cache / v_cache.
//
// Bindings (@group(0)):
//   0 P        uniform             DecodeParams
//   1 q        storage read        f32 [n_head, DK] at q_offset (after Q norm and RoPE)
//   2 k_cache  storage read        kv_t [n_ctx, n_head_kv, DK]; positions 0 .. n_kv-1 are visible
//   3 v_cache  storage read        kv_t [n_ctx, n_head_kv, DV]: position j, head h's V at j·v_pos + h·v_head
//                                  (MLA: the K cache itself, V the first DV values of each K row)
//   4 part     storage read_write  f32 [n_head, n_chunks, DV + 2]: per chunk the unnormalized
//                                  Σ_j e^(s_j − m) v_j, then m (chunk max) and l (Σ_j e^(s_j − m))
//   5 out      storage read_write  f32 [n_head, DV] at out_offset
//   6 sinks    storage read        f32 [n_head] (SINKS): a logit per head that joins the softmax's
//                                  max and sum without a value (gpt-oss's attention sinks)
// kv_t is f16 with KV_F16, f32 otherwise. Query head h reads KV head h / group (GQA).
// s_j = scale · q·k_j; out = softmax(s) · V over kv_first ≤ j < n_kv (causal by construction),
// kv_first = n_kv − window when window > 0 and n_kv > window (a sliding-window layer), else 0.
//
// Entry `partial` — dispatch (n_chunks, n_head, 1): workgroup (c, h) takes positions
//   [kv_first + c·chunk, min(kv_first + (c+1)·chunk, n_kv)). Threads score one key each (q in workgroup memory,
//   pre-scaled), reduce the chunk's max and sum in workgroup memory, then stride over the DV
//   output dims (coalesced V reads). With n_chunks = 1 it normalizes and writes `out` directly and
//   the launcher skips `reduce`.
// Entry `reduce` — dispatch (n_head, 1, 1): M = max_c m_c, L = Σ_c l_c e^(m_c − M),
//   out = Σ_c o_c e^(m_c − M) / L; threads stride over DV. SINKS: M includes the head's sink and
//   L gains e^(sink − M) (in `partial` when n_chunks = 1).
//
// LLAMA_SOFTMAX (numerics 'llamacpp' with an f16 cache: llama.cpp's non-flash attention takes the
// softmax in f16 for the KQ·V product): s = (q·k)·scale, scale after the dot, and with one chunk
// out = Σ_j f16(e^(s_j − m) · (1/l))·v_j. The launcher then uses one chunk up to MAX_CHUNK
// positions; beyond that the chunks' partial sums stay unrounded (the f16 probabilities need the
// global max and sum).
//
// Defines: KV_F16, LLAMA_SOFTMAX, SINKS.
// Overrides: WG (threads, power of two), DK, DV (head dims, ≤ 256 each in practice),
// MAX_CHUNK (largest `chunk` the launcher may pass: size of the score array).

#if KV_F16
alias kv_t = f16;
#else
alias kv_t = f32;
#endif

#if LLAMA_SOFTMAX
#include "round.wgsl"
#endif

struct DecodeParams {
  n_kv: u32,       // visible positions
  chunk: u32,      // positions per workgroup (≤ MAX_CHUNK)
  n_chunks: u32,   // ceil(n_kv / chunk)
  group: u32,      // n_head / n_head_kv
  n_head_kv: u32,
  q_offset: u32,
  out_offset: u32,
  scale: f32,
  window: u32,     // sliding window (0: every position)
  v_pos: u32,      // v_cache elements between positions (n_head_kv·DV; V inside the K rows: n_head_kv·DK)
  v_head: u32,     // v_cache elements between KV heads (DV; V inside the K rows: DK)
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: DecodeParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<kv_t>;
@group(0) @binding(3) var<storage, read> v_cache: array<kv_t>;
@group(0) @binding(4) var<storage, read_write> part: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
#if SINKS
@group(0) @binding(6) var<storage, read> sinks: array<f32>;
#endif

// the first visible position
fn kv_first() -> u32 {
  return select(0u, P.n_kv - P.window, P.window > 0u && P.n_kv > P.window);
}

override WG: u32 = 64u;
override DK: u32 = 128u;
override DV: u32 = 128u;
override MAX_CHUNK: u32 = 256u;

const NEG: f32 = -3.0e38;

var<workgroup> sq: array<f32, DK>;
var<workgroup> ss: array<f32, MAX_CHUNK>;
var<workgroup> red: array<f32, WG>;

fn wg_max(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      red[tid] = max(red[tid], red[tid + s]);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

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

@compute @workgroup_size(WG)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let c = wid.x;
  let h = wid.y;
  let kvh = h / P.group;
  let j0 = kv_first() + c * P.chunk;
  let n = min(P.chunk, P.n_kv - j0);

  let qo = P.q_offset + h * DK;
  for (var d = tid; d < DK; d += WG) {
#if LLAMA_SOFTMAX
    sq[d] = q[qo + d];
#else
    sq[d] = q[qo + d] * P.scale;
#endif
  }
  workgroupBarrier();

  // scores: one key per thread
  let ks = P.n_head_kv * DK;
  var m = NEG;
  for (var jj = tid; jj < n; jj += WG) {
    let kb = (j0 + jj) * ks + kvh * DK;
    var s = 0.0;
    for (var d = 0u; d < DK; d++) {
      s += sq[d] * f32(k_cache[kb + d]);
    }
#if LLAMA_SOFTMAX
    s *= P.scale;
#endif
    ss[jj] = s;
    m = max(m, s);
  }
  m = wg_max(m, tid);
  let single = P.n_chunks == 1u;
#if SINKS
  if (single) {
    m = max(m, sinks[h]);
  }
#endif

  var l = 0.0;
  for (var jj = tid; jj < n; jj += WG) {
    let p = exp(ss[jj] - m);
    ss[jj] = p;
    l += p;
  }
  l = wg_sum(l, tid); // its barriers also publish ss
#if SINKS
  if (single) {
    l += exp(sinks[h] - m);
  }
#endif

  // weighted V: threads over the output dims
  let vs = P.v_pos;
  let inv_l = 1.0 / l;
  let po = (h * P.n_chunks + c) * (DV + 2u);
#if LLAMA_SOFTMAX
  if (single) {
    let inv_l_rn = div_rn(1.0, l); // llama.cpp: (float)(1.0/sum), rounded
    for (var jj = tid; jj < n; jj += WG) {
      ss[jj] = f16_bits_to_f32(f32_to_f16_bits(ss[jj] * inv_l_rn));
    }
  }
  workgroupBarrier();
#endif
  for (var d = tid; d < DV; d += WG) {
    var acc = 0.0;
    var vb = j0 * vs + kvh * P.v_head + d;
    for (var jj = 0u; jj < n; jj++) {
      acc += ss[jj] * f32(v_cache[vb]);
      vb += vs;
    }
    if (single) {
#if LLAMA_SOFTMAX
      out[P.out_offset + h * DV + d] = acc;
#else
      out[P.out_offset + h * DV + d] = acc * inv_l;
#endif
    } else {
      part[po + d] = acc;
    }
  }
  if (!single && tid == 0u) {
    part[po + DV] = m;
    part[po + DV + 1u] = l;
  }
}

@compute @workgroup_size(WG)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let h = wid.x;
  let nc = P.n_chunks;
  let stride = DV + 2u;
  let base = h * nc * stride;
  var mx = NEG;
  for (var c = 0u; c < nc; c++) {
    mx = max(mx, part[base + c * stride + DV]);
  }
  var l = 0.0;
#if SINKS
  mx = max(mx, sinks[h]);
  l = exp(sinks[h] - mx);
#endif
  for (var c = 0u; c < nc; c++) {
    let o = base + c * stride + DV;
    l += part[o + 1u] * exp(part[o] - mx);
  }
  let inv_l = 1.0 / l;
  for (var d = tid; d < DV; d += WG) {
    var acc = 0.0;
    for (var c = 0u; c < nc; c++) {
      let o = base + c * stride;
      acc += part[o + d] * exp(part[o + DV] - mx);
    }
    out[P.out_offset + h * DV + d] = acc * inv_l;
  }
}
