// prologue.wgsl — a fused product's input prologue: every workgroup of a dispatch prepares the
// input rows of its dot loop in workgroup memory, so that the RMSNorm and the activation round trip
// that used to be dispatches of their own (rms_norm / rms_norm_q, act_quant) cost none.
// Included by matvec.wgsl (FUSED) and moe_ffn.wgsl; no bindings of its own.
//
// For each input row r < n_rows of `cols` values, in order, each step optional:
//   raw    v_i = pro_raw(r, i)                         (the includer's hook: x[i], silu(g_i)·u_i, …)
//   norm   v_i = (v_i · s) · pro_weight(i),  s = 1 / sqrt(Σv² / cols + eps)          (PRE_NORM)
//          exactly kernels/norm.wgsl rms_norm's arithmetic: the sum of squares follows rms_norm's
//          reduction tree for a workgroup of PRO_NORM_WG threads (each thread of this workgroup
//          plays PRO_NORM_WG / WG of them, or threads ≥ PRO_NORM_WG idle), so s is bit-identical to
//          the rms_norm dispatch with WG = PRO_NORM_WG (moet's createRmsNorm default: 128)
//   round  llama.cpp's activation round trip of v to the weight's vec_dot type, bit for bit as
//          kernels/act_quant.wgsl (gguf/quants.ts activationRoundTrip), one define of:
//            PRE_Q8_K   blocks of 256 (cols a multiple of 256)
//            PRE_Q8_0   blocks of 32  (Q8_0 and Q8_1: same values; cols a multiple of 32)
//            PRE_F16, PRE_BF16        (any cols)
//          Stored compactly: int8 quants 4 per u32 + one f32 scale per block (Q8), or half / bf16
//          pairs per u32, so a 4096-wide row takes 4.5 KiB (Q8_0) / 4.1 KiB (Q8_K) / 8 KiB (F16).
//          Zeros lose their sign (q is an integer): harmless to a dot product whose accumulator
//          starts at +0, as every moet product's does.
// Without a round trip nothing is stored: pro_x4 / pro_value recompute v from the hook (and the
// row's norm scale), which costs no workgroup memory whatever cols is.
//
// The includer declares, before the include:
//   override WG: u32                       threads per workgroup (power of two)
//   fn pro_raw(row: u32, i: u32) -> f32    raw value i of input row `row` (i < cols)
//   fn pro_weight(i: u32) -> f32           (PRE_NORM) the norm weight
// and sets the defines above. Overrides declared here (the launcher sets them):
//   PRO_COLS     capacity of a row in workgroup memory (≥ cols; a multiple of 256 for PRE_Q8_K,
//                of 32 otherwise)
//   PRO_ROWS     input rows held (default 1; e.g. the k expert slots of a down projection)
//   PRO_NORM_WG  the rms_norm workgroup size whose reduction order is reproduced (power of two,
//                PRO_NORM_WG / WG ≤ 16; default 128)
// Workgroup memory (bytes; the launcher checks it against maxComputeWorkgroupStorageSize, see
// prologueConfig in src/gpu/prologue.ts):
//   PRE_NORM  4·WG + 4·PRO_ROWS
//   PRE_Q8_K  PRO_ROWS·(PRO_COLS + PRO_COLS/64) + PRO_COLS/4 + PRO_COLS/64
//   PRE_Q8_0  PRO_ROWS·(PRO_COLS + PRO_COLS/8)
//   PRE_F16 / PRE_BF16  2·PRO_ROWS·PRO_COLS
//
// Functions:
//   pro_prepare(tid, n_rows, cols, eps)   every thread of the workgroup, in uniform control flow
//                                         (barriers); n_rows ≤ PRO_ROWS; ends with a barrier
//   pro_x4(row, k, cols) -> vec4<f32>     prepared values k .. k+3 (k a multiple of 4), 0 past cols
//   pro_value(row, i) -> f32              prepared value i (i < cols)
//   pro_xq(row, k) -> XQ                  (INT_DOT) values k .. k+127 (k a multiple of 128) as
//                                         int8 words, scale and sums per 16 (pro_s, summed once by
//                                         pro_prepare; quant.wgsl unit_dot_q)
//   pro_dot_rows_q(wbase, r0, rows, row_bytes, cols, row, scale) -> array<f32, MAX_ROWS>
//                                         (INT_DOT) one thread's ROWS rows r0 .. of the matrix at
//                                         byte wbase dotted with prepared row `row`, unit by unit
//                                         in integers, each unit's dot times `scale`; the includer
//                                         declares MAX_ROWS ≥ ROWS and ROWS
//   pro_normed(row, i) -> f32             v before the round trip (the norm's output, as rms_norm
//                                         writes it; the raw value without PRE_NORM), for a tap
// (after pro_prepare; nothing here touches storage except through the includer's hooks).

#include "round.wgsl"

override PRO_COLS: u32 = 256u;
override PRO_ROWS: u32 = 1u;
override PRO_NORM_WG: u32 = 128u;

#if PRE_Q8_K
const PRO_PER_WORD: u32 = 4u; // values per u32 of pro_q
const PRO_BLK: u32 = 256u;    // values per scale of pro_d
#elif PRE_Q8_0
const PRO_PER_WORD: u32 = 4u;
const PRO_BLK: u32 = 32u;
#elif PRE_F16 || PRE_BF16
const PRO_PER_WORD: u32 = 2u;
#endif

#if PRE_Q8_K || PRE_Q8_0 || PRE_F16 || PRE_BF16
// row r's values: words [r·PRO_COLS/PRO_PER_WORD, …): int8 ×4 (Q8) or half / bf16 ×2, low first
var<workgroup> pro_q: array<u32, PRO_ROWS * (PRO_COLS / PRO_PER_WORD)>;
#endif
#if PRE_Q8_K || PRE_Q8_0
// row r's block scales d at r·PRO_COLS/PRO_BLK: value i = d[i / PRO_BLK] · q_i
var<workgroup> pro_d: array<f32, PRO_ROWS * (PRO_COLS / PRO_BLK)>;
#endif
#if PRE_Q8_K
// per row being prepared: each 32-value chunk's first largest |v| and its index; each block's iscale
var<workgroup> pro_cmax: array<f32, PRO_COLS / 32u>;
var<workgroup> pro_cidx: array<u32, PRO_COLS / 32u>;
var<workgroup> pro_is: array<f32, PRO_COLS / 256u>;
#endif
#if INT_DOT
// row r's sums of q over each 16 values at r·PRO_COLS/16 (llama.cpp's Q8_K bsums), for unit_dot_q
var<workgroup> pro_s: array<i32, PRO_ROWS * (PRO_COLS / 16u)>;
#endif
#if PRE_NORM
var<workgroup> pro_red: array<f32, WG>;
var<workgroup> pro_scale: array<f32, PRO_ROWS>; // 1 / sqrt(mean(v²) + eps) per row
#endif

// v_i before the round trip, with the row's norm scale `sc` (1 without PRE_NORM)
fn pro_val(row: u32, i: u32, sc: f32) -> f32 {
#if PRE_NORM
  return (pro_raw(row, i) * sc) * pro_weight(i);
#else
  return pro_raw(row, i);
#endif
}

#if PRE_NORM
// 1 / sqrt(mean(v²) + eps) of the raw row, summed as rms_norm's wg_sum with WG = PRO_NORM_WG:
// virtual thread t sums i = t, t + PRO_NORM_WG, …; then the tree red[t] += red[t + s] for
// s = PRO_NORM_WG/2 … 1 — the levels s ≥ WG inside each thread's registers (virtual threads
// tid + j·WG), the rest in pro_red. Every thread gets the result.
fn pro_row_scale(row: u32, cols: u32, eps: f32, tid: u32) -> f32 {
  let per = max(PRO_NORM_WG / WG, 1u);
  var p: array<f32, 16>;
  for (var j = 0u; j < per; j++) {
    let t = tid + j * WG;
    var s = 0.0;
    if (t < PRO_NORM_WG) {
      for (var i = t; i < cols; i += PRO_NORM_WG) {
        let v = pro_raw(row, i);
        s += v * v;
      }
    }
    p[j] = s;
  }
  for (var s = per / 2u; s > 0u; s >>= 1u) {
    for (var j = 0u; j < s; j++) {
      p[j] += p[j + s];
    }
  }
  pro_red[tid] = p[0];
  workgroupBarrier();
  for (var s = min(PRO_NORM_WG, WG) / 2u; s > 0u; s >>= 1u) {
    if (tid < s) {
      pro_red[tid] += pro_red[tid + s];
    }
    workgroupBarrier();
  }
  let total = pro_red[0];
  workgroupBarrier();
  return 1.0 / sqrt(total / f32(cols) + eps);
}
#endif

#if PRE_Q8_K || PRE_Q8_0
// the int8 q as the low byte of a word
fn pro_byte(q: f32, e: u32) -> u32 {
  return (bitcast<u32>(i32(q)) & 0xffu) << (8u * e);
}
#endif

#if PRE_Q8_K
// Q8_K (act_quant.wgsl q8_k): per block of 256 the first value of largest magnitude sets
// iscale = −127/max, q = min(127, round(v·iscale)), value = (1/iscale)·q. The first maximum is found
// per 32-value chunk, then over a block's 8 chunks in order (the same index as a serial scan).
fn pro_round_row(r: u32, cols: u32, sc: f32, tid: u32) {
  for (var c = tid; c < cols / 32u; c += WG) {
    var a = 0.0;
    var ai = c * 32u;
    for (var i = c * 32u; i < c * 32u + 32u; i++) {
      let v = abs(pro_val(r, i, sc));
      if (v > a) {
        a = v;
        ai = i;
      }
    }
    pro_cmax[c] = a;
    pro_cidx[c] = ai;
  }
  workgroupBarrier();
  for (var b = tid; b < cols / 256u; b += WG) {
    var a = 0.0;
    var ai = b * 256u;
    for (var c = b * 8u; c < b * 8u + 8u; c++) {
      if (pro_cmax[c] > a) {
        a = pro_cmax[c];
        ai = pro_cidx[c];
      }
    }
    var iscale = 0.0;
    var d = 0.0;
    if (a != 0.0) {
      let m = div_rn(127.0, a);
      iscale = select(m, -m, pro_val(r, ai, sc) > 0.0);
      let dm = div_rn(1.0, m);
      d = select(dm, -dm, iscale < 0.0);
    }
    pro_is[b] = iscale;
    pro_d[r * (PRO_COLS / PRO_BLK) + b] = d;
  }
  workgroupBarrier();
  for (var wi = tid; wi < cols / 4u; wi += WG) {
    let is = pro_is[wi / 64u];
    var word = 0u;
    for (var e = 0u; e < 4u; e++) {
      let q = select(min(127.0, round(pro_val(r, wi * 4u + e, sc) * is)), 0.0, is == 0.0);
      word |= pro_byte(q, e);
    }
    pro_q[r * (PRO_COLS / 4u) + wi] = word;
  }
#if INT_DOT
  workgroupBarrier();
  for (var c = tid; c < cols / 16u; c += WG) {
    var sum = 0;
    for (var g = 4u * c; g < 4u * c + 4u; g++) {
      sum += dot4I8Packed(pro_q[r * (PRO_COLS / 4u) + g], 0x01010101u);
    }
    pro_s[r * (PRO_COLS / 16u) + c] = sum;
  }
#endif
  workgroupBarrier(); // pro_cmax / pro_is are reused by the next row
}
#elif PRE_Q8_0
// Q8_0 / Q8_1 (act_quant.wgsl q8_0): per block of 32, one thread: amax = max|v|,
// d = f16(amax/127), q = clamp(round(v·127/amax), −128, 127), value = d·q
fn pro_round_row(r: u32, cols: u32, sc: f32, tid: u32) {
  for (var b = tid; b < cols / 32u; b += WG) {
    var a = 0.0;
    for (var i = b * 32u; i < b * 32u + 32u; i++) {
      a = max(a, abs(pro_val(r, i, sc)));
    }
    var d = 0.0;
    var id = 0.0;
    if (a != 0.0) {
      d = f16_bits_to_f32(f32_to_f16_bits(div_rn(a, 127.0)));
      id = div_rn(127.0, a);
    }
    pro_d[r * (PRO_COLS / PRO_BLK) + b] = d;
    for (var wi = b * 8u; wi < b * 8u + 8u; wi++) {
      var word = 0u;
      for (var e = 0u; e < 4u; e++) {
        word |= pro_byte(clamp(round(pro_val(r, wi * 4u + e, sc) * id), -128.0, 127.0), e);
      }
      pro_q[r * (PRO_COLS / 4u) + wi] = word;
    }
  }
}
#elif PRE_F16 || PRE_BF16
// F16: v rounded to half (nearest even); BF16: to bf16. Pairs (i, i+1) per word, low first; a
// missing odd last value is 0.
fn pro_bits(v: f32) -> u32 {
#if PRE_F16
  return f32_to_f16_bits(v);
#else
  return bitcast<u32>(round_bf16(v)) >> 16u;
#endif
}

fn pro_round_row(r: u32, cols: u32, sc: f32, tid: u32) {
  for (var wi = tid; wi < (cols + 1u) / 2u; wi += WG) {
    let i = wi * 2u;
    var word = pro_bits(pro_val(r, i, sc));
    if (i + 1u < cols) {
      word |= pro_bits(pro_val(r, i + 1u, sc)) << 16u;
    }
    pro_q[r * (PRO_COLS / 2u) + wi] = word;
  }
}
#endif

fn pro_prepare(tid: u32, n_rows: u32, cols: u32, eps: f32) {
  for (var r = 0u; r < n_rows; r++) {
    var sc = 1.0;
#if PRE_NORM
    sc = pro_row_scale(r, cols, eps, tid);
    if (tid == 0u) {
      pro_scale[r] = sc;
    }
#endif
#if PRE_Q8_K || PRE_Q8_0 || PRE_F16 || PRE_BF16
    pro_round_row(r, cols, sc, tid);
#endif
  }
  workgroupBarrier();
}

fn pro_normed(row: u32, i: u32) -> f32 {
#if PRE_NORM
  return pro_val(row, i, pro_scale[row]);
#else
  return pro_raw(row, i);
#endif
}

#if PRE_Q8_K || PRE_Q8_0
// the 4 int8 of a word, sign-extended, low byte first
fn pro_i8x4(word: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(word) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
#endif

#if INT_DOT
fn pro_xq(row: u32, k: u32) -> XQ {
  var xq: XQ;
  let base = row * (PRO_COLS / 4u) + k / 4u;
  for (var g = 0u; g < 32u; g++) {
    xq.q[g] = pro_q[base + g];
  }
  for (var c = 0u; c < 8u; c++) {
    xq.s[c] = pro_s[row * (PRO_COLS / 16u) + k / 16u + c];
  }
  xq.d = pro_d[row * (PRO_COLS / PRO_BLK) + k / PRO_BLK];
  return xq;
}

// Rows past `rows` recompute the last row (no divergent branch); the caller does not store them.
fn pro_dot_rows_q(wbase: u32, r0: u32, rows: u32, row_bytes: u32, cols: u32, row: u32, scale: f32) -> array<f32, MAX_ROWS> {
  // zeroed explicitly: Dawn on llvmpipe once kept a previous iteration's sums in an accumulator
  // array declared without an initializer inside a loop, though WGSL zero-initializes it
  var acc: array<f32, MAX_ROWS>;
  for (var r = 0u; r < MAX_ROWS; r++) {
    acc[r] = 0.0;
  }
  for (var k = 0u; k < cols; k += 128u) {
    var xq = pro_xq(row, k);
    for (var r = 0u; r < ROWS; r++) {
      acc[r] += scale * unit_dot_q(wbase + min(r0 + r, rows - 1u) * row_bytes, k, cols, &xq);
    }
  }
  return acc;
}
#endif

#if PRE_F16 || PRE_BF16
fn pro_half(h: u32) -> f32 {
#if PRE_F16
  return f16_bits_to_f32(h);
#else
  return bitcast<f32>(h << 16u);
#endif
}
#endif

fn pro_value(row: u32, i: u32) -> f32 {
#if PRE_Q8_K || PRE_Q8_0
  let q = pro_i8x4(pro_q[row * (PRO_COLS / 4u) + i / 4u]);
  return pro_d[row * (PRO_COLS / PRO_BLK) + i / PRO_BLK] * q[i % 4u];
#elif PRE_F16 || PRE_BF16
  return pro_half((pro_q[row * (PRO_COLS / 2u) + i / 2u] >> (16u * (i % 2u))) & 0xffffu);
#else
  return pro_normed(row, i);
#endif
}

fn pro_x4(row: u32, k: u32, cols: u32) -> vec4<f32> {
#if PRE_Q8_K || PRE_Q8_0
  // cols is a multiple of the block: all 4 exist
  return pro_d[row * (PRO_COLS / PRO_BLK) + k / PRO_BLK] * pro_i8x4(pro_q[row * (PRO_COLS / 4u) + k / 4u]);
#elif PRE_F16 || PRE_BF16
  let base = row * (PRO_COLS / 2u) + k / 2u;
  let w0 = pro_q[base]; // a missing odd last value was stored as 0
  var w1 = 0u;
  if (k + 2u < cols) {
    w1 = pro_q[base + 1u];
  }
  var v = vec4<f32>(pro_half(w0 & 0xffffu), pro_half(w0 >> 16u), pro_half(w1 & 0xffffu), pro_half(w1 >> 16u));
  if (k + 4u > cols) {
    v = select(vec4<f32>(0.0), v, vec4<u32>(k, k + 1u, k + 2u, k + 3u) < vec4<u32>(cols));
  }
  return v;
#else
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (k + e < cols) {
      v[e] = pro_normed(row, k + e);
    }
  }
  return v;
#endif
}
