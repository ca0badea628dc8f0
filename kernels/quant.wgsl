// quant.wgsl — weight decoding shared by matvec.wgsl, matmul.wgsl and embed.wgsl (via #include).
//
// Contract with the including kernel:
//   - it declares `w: array<u32>`: a weight's raw GGUF bytes (rows back to back, row r at byte
//     r·row_bytes; padded to 4 bytes). Blocks need not be 4-byte aligned (Q8_0 34 B, Q4_0 18 B,
//     Q5_0 22 B, Q6_K 210 B): every field read goes through ld64/ld32/ld16/ld8, which take byte
//     offsets (all block fields lie at even offsets, so at worst a u32 straddles two words by 2
//     bytes; ld64 reads 8 bytes from 3 words where two ld32 would take 4), without a branch on the
//     alignment (see funnel). MXFP4's 17-byte blocks lie at any byte: ld32b;
//   - exactly one type define is set: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K MXFP4.
//
// Provides:
//   const UNIT: u32   elements a matvec thread takes per step (32 for block types, 8 for floats)
//   fn dq8(rb: u32, k: u32, n: u32) -> D8
//       elements k .. k+7 of the row that starts at byte rb, dequantized to f32 (k a multiple of
//       8; n = row length; float types return 0 for elements ≥ n, block types need n % 32 == 0).
//   fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr    (k a multiple of UNIT)
//   fn unit_dq8(h: Hdr, g: u32) -> D8              (g < UNIT / 8)
//       the same values split in two: unit_hdr decodes a unit's scales / mins / offsets once,
//       unit_dq8 gives its 8-element group g (elements k + 8g ..). matvec hoists unit_hdr.
//   const UNIT_G: u32 = UNIT / 8   8-element groups per unit (a plain const: wgsl_reflect cannot
//       parse an expression in a parameter's array type)
//   fn unit_dot(rb: u32, k: u32, n: u32, xv: ptr<function, array<D8, UNIT_G>>) -> f32
//       the unit's dot with x: Σ_g (dot(d.a, xv[g].a) + dot(d.b, xv[g].b)), d = unit_dq8(unit_hdr(rb,
//       k, n), g), summed in g order from 0.0 (f32). The dot loop of matvec.wgsl and moe_ffn.wgsl,
//       which load xv once per unit for several rows. Q6_K has its own unit_dot, which reads each
//       weight word of the unit once (unit_dq8 per group re-reads the words shared by neighbours).
//   struct XQ, fn unit_dot_q(rb: u32, k: u32, n: u32, xq: ptr<function, XQ>) -> f32   (Q4_K, Q6_K)
//       values k .. k+127 (a unit of 128, k a multiple of 128: half a super-block, in which every
//       weight word is read once — Q4_K: two pairs of sub-blocks sharing their qs words; Q6_K: the
//       four sub-blocks of a half, sharing ql and qh words) dotted with an input already rounded to
//       Q8_K (int8 q_x, block scale d_x), in integers as llama.cpp's vec_dot_q4_K_q8_K / q6_K_q8_K:
//       Σ q_w·q_x per sub-block with dot4I8Packed, then d_x·(d·sc·Σ q_w·q_x − dmin·m·Σ q_x) (Q6_K:
//       d_x·d·Σ sc·(Σ q_w·q_x − 32·Σ q_x), the outer sum in integers too). The same value as
//       unit_dot on the rounded f32 input up to f32 rounding (the int sums are exact); 4–7
//       operations fewer per weight, which is what bounds a software adapter. Used by the
//       thread-per-row kernels with a Q8_K prologue (define INT_DOT).
// Values are computed in f32 as ggml's dequantize_row_* does (d·sc formed first, then ·q − dmin·m).

struct D8 {
  a: vec4<f32>,
  b: vec4<f32>,
}

// What unit_hdr decodes once per UNIT elements (the meaning of each field is per type)
struct Hdr {
  o: u32,  // offset of the quants (bytes, or words for 4-aligned blocks)
  x: u32,  // type-specific: qh word / offset
  j: u32,  // type-specific: sub-block, shift
  d: f32,  // scale (for K-quants d·sc)
  m: f32,  // min / second scale
}

// Loads at 2-aligned byte offsets are branch-free funnel shifts of the next word: with sh = 0 or 16,
// (a >> sh) | ((b << 16) << (16 - sh)) is a, or a's high half under b's low half (WGSL masks a shift
// by 32, hence the two shifts). A branch on the alignment would diverge between the rows or units of
// neighbouring lanes, and a software adapter (llvmpipe) runs both sides of a divergent branch, masked:
// the branch-free form took a Q6_K row dot from 1.2 to 1.9 G weights/s there. The extra word read at
// an aligned offset may lie past the buffer's end; robust access bounds it and the shift discards it.
fn funnel(a: u32, b: u32, sh: u32) -> u32 {
  return (a >> sh) | ((b << 16u) << (16u - sh));
}

// 4 bytes at a 2-aligned byte offset
fn ld32(byte: u32) -> u32 {
  let i = byte >> 2u;
  return funnel(w[i], w[i + 1u], (byte & 2u) * 8u);
}

// 8 bytes at a 2-aligned byte offset: ld32(byte), ld32(byte + 4) from 3 word loads
fn ld64(byte: u32) -> vec2<u32> {
  let i = byte >> 2u;
  let sh = (byte & 2u) * 8u;
  let a = w[i];
  let b = w[i + 1u];
  let c = w[i + 2u];
  return vec2<u32>(funnel(a, b, sh), funnel(b, c, sh));
}

// 4 bytes at any byte offset: (a >> sh) | (b << (32 − sh)), the second shift split in two so
// that sh = 0 shifts b out entirely (WGSL masks a shift by 32)
fn ld32b(byte: u32) -> u32 {
  let i = byte >> 2u;
  let sh = (byte & 3u) * 8u;
  return (w[i] >> sh) | ((w[i + 1u] << 1u) << (31u - sh));
}

// 2 bytes at a 2-aligned byte offset
fn ld16(byte: u32) -> u32 {
  return (w[byte >> 2u] >> ((byte & 2u) * 8u)) & 0xffffu;
}

fn ld8(byte: u32) -> u32 {
  return (w[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
}

fn ldf16(byte: u32) -> f32 {
  return unpack2x16float(ld16(byte)).x;
}

// the 4 bytes of v as u32 lanes
fn bytes4(v: u32) -> vec4<u32> {
  return vec4<u32>(v, v >> 8u, v >> 16u, v >> 24u) & vec4<u32>(0xffu);
}

// the 4 bytes of v as sign-extended i8 → f32
fn i8x4(v: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v << 24u, v << 16u, v << 8u, v)) >> vec4<u32>(24u));
}

// byte i (0..11) of the K-quant scales, held in three words
fn kscale_byte(s: vec3<u32>, i: u32) -> u32 {
  return (s[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

// 6-bit scale and min of sub-block j (ggml get_scale_min_k4)
fn kscale_min(s: vec3<u32>, j: u32) -> vec2<f32> {
  if (j < 4u) {
    return vec2<f32>(f32(kscale_byte(s, j) & 63u), f32(kscale_byte(s, j + 4u) & 63u));
  }
  let sc = (kscale_byte(s, j + 4u) & 15u) | ((kscale_byte(s, j - 4u) >> 6u) << 4u);
  let m = (kscale_byte(s, j + 4u) >> 4u) | ((kscale_byte(s, j) >> 6u) << 4u);
  return vec2<f32>(f32(sc), f32(m));
}

#if F32
const UNIT: u32 = 8u;
fn f32_at(rb: u32, e: u32, n: u32) -> f32 {
  if (e < n) {
    return bitcast<f32>(w[(rb >> 2u) + e]);
  }
  return 0.0;
}
fn dq8(rb: u32, k: u32, n: u32) -> D8 {
  return D8(vec4<f32>(f32_at(rb, k, n), f32_at(rb, k + 1u, n), f32_at(rb, k + 2u, n), f32_at(rb, k + 3u, n)),
            vec4<f32>(f32_at(rb, k + 4u, n), f32_at(rb, k + 5u, n), f32_at(rb, k + 6u, n), f32_at(rb, k + 7u, n)));
}
#elif F16
const UNIT: u32 = 8u;
fn f16_at(rb: u32, e: u32, n: u32) -> f32 {
  if (e < n) {
    return ldf16(rb + 2u * e);
  }
  return 0.0;
}
fn dq8(rb: u32, k: u32, n: u32) -> D8 {
  if (k + 8u <= n) {
    // four whole words (2-aligned when the row length is odd)
    let o = rb + 2u * k;
    let p0 = unpack2x16float(ld32(o));
    let p1 = unpack2x16float(ld32(o + 4u));
    let p2 = unpack2x16float(ld32(o + 8u));
    let p3 = unpack2x16float(ld32(o + 12u));
    return D8(vec4<f32>(p0, p1), vec4<f32>(p2, p3));
  }
  return D8(vec4<f32>(f16_at(rb, k, n), f16_at(rb, k + 1u, n), f16_at(rb, k + 2u, n), f16_at(rb, k + 3u, n)),
            vec4<f32>(f16_at(rb, k + 4u, n), f16_at(rb, k + 5u, n), f16_at(rb, k + 6u, n), f16_at(rb, k + 7u, n)));
}
#elif BF16
const UNIT: u32 = 8u;
fn bf16_at(rb: u32, e: u32, n: u32) -> f32 {
  if (e < n) {
    return bitcast<f32>(ld16(rb + 2u * e) << 16u);
  }
  return 0.0;
}
fn bf16x2(v: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xffff0000u));
}
fn dq8(rb: u32, k: u32, n: u32) -> D8 {
  if (k + 8u <= n) {
    let o = rb + 2u * k;
    return D8(vec4<f32>(bf16x2(ld32(o)), bf16x2(ld32(o + 4u))), vec4<f32>(bf16x2(ld32(o + 8u)), bf16x2(ld32(o + 12u))));
  }
  return D8(vec4<f32>(bf16_at(rb, k, n), bf16_at(rb, k + 1u, n), bf16_at(rb, k + 2u, n), bf16_at(rb, k + 3u, n)),
            vec4<f32>(bf16_at(rb, k + 4u, n), bf16_at(rb, k + 5u, n), bf16_at(rb, k + 6u, n), bf16_at(rb, k + 7u, n)));
}
#elif Q8_0
// block: half d; i8 qs[32]  (34 bytes)
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bb = rb + (k >> 5u) * 34u;
  return Hdr(bb + 2u, 0u, 0u, ldf16(bb), 0.0);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let q = ld64(h.o + 8u * g);
  return D8(h.d * i8x4(q.x), h.d * i8x4(q.y));
}
#elif Q4_0
// block: half d; u8 qs[16]  (18 bytes); y[j] = d·((qs[j] & 15) − 8), y[j+16] = d·((qs[j] >> 4) − 8)
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bb = rb + (k >> 5u) * 18u;
  return Hdr(bb + 2u, 0u, 0u, ldf16(bb), 0.0);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let o = h.o + 8u * (g & 1u);
  let sh = vec4<u32>((g >> 1u) * 4u);
  let q = ld64(o);
  let q0 = (bytes4(q.x) >> sh) & vec4<u32>(15u);
  let q1 = (bytes4(q.y) >> sh) & vec4<u32>(15u);
  return D8((vec4<f32>(q0) - 8.0) * h.d, (vec4<f32>(q1) - 8.0) * h.d);
}
#elif Q4_1
// block: half d; half m; u8 qs[16]  (20 bytes, 4-aligned); y[j] = d·(qs[j] & 15) + m, y[j+16] = d·(qs[j] >> 4) + m
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bw = (rb + (k >> 5u) * 20u) >> 2u;
  let dm = unpack2x16float(w[bw]);
  return Hdr(bw + 1u, 0u, 0u, dm.x, dm.y);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let qw = h.o + 2u * (g & 1u);
  let sh = vec4<u32>((g >> 1u) * 4u);
  let q0 = (bytes4(w[qw]) >> sh) & vec4<u32>(15u);
  let q1 = (bytes4(w[qw + 1u]) >> sh) & vec4<u32>(15u);
  return D8(vec4<f32>(q0) * h.d + h.m, vec4<f32>(q1) * h.d + h.m);
}
#elif Q5_0
// block: half d; u32 qh; u8 qs[16]  (22 bytes); bit j of qh is bit 4 of element j; value − 16
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bb = rb + (k >> 5u) * 22u;
  return Hdr(bb + 6u, ld32(bb + 2u), 0u, ldf16(bb), 0.0);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let o = h.o + 8u * (g & 1u);
  let sh = vec4<u32>((g >> 1u) * 4u);
  let p = 8u * g;
  let h0 = ((vec4<u32>(h.x) >> (vec4<u32>(0u, 1u, 2u, 3u) + p)) & vec4<u32>(1u)) << vec4<u32>(4u);
  let h1 = ((vec4<u32>(h.x) >> (vec4<u32>(4u, 5u, 6u, 7u) + p)) & vec4<u32>(1u)) << vec4<u32>(4u);
  let q = ld64(o);
  let q0 = ((bytes4(q.x) >> sh) & vec4<u32>(15u)) | h0;
  let q1 = ((bytes4(q.y) >> sh) & vec4<u32>(15u)) | h1;
  return D8((vec4<f32>(q0) - 16.0) * h.d, (vec4<f32>(q1) - 16.0) * h.d);
}
#elif Q5_1
// block: half d; half m; u32 qh; u8 qs[16]  (24 bytes, 4-aligned); as Q5_0 without the −16, y = d·q + m
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bw = (rb + (k >> 5u) * 24u) >> 2u;
  let dm = unpack2x16float(w[bw]);
  return Hdr(bw + 2u, w[bw + 1u], 0u, dm.x, dm.y);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let qw = h.o + 2u * (g & 1u);
  let sh = vec4<u32>((g >> 1u) * 4u);
  let p = 8u * g;
  let h0 = ((vec4<u32>(h.x) >> (vec4<u32>(0u, 1u, 2u, 3u) + p)) & vec4<u32>(1u)) << vec4<u32>(4u);
  let h1 = ((vec4<u32>(h.x) >> (vec4<u32>(4u, 5u, 6u, 7u) + p)) & vec4<u32>(1u)) << vec4<u32>(4u);
  let q0 = ((bytes4(w[qw]) >> sh) & vec4<u32>(15u)) | h0;
  let q1 = ((bytes4(w[qw + 1u]) >> sh) & vec4<u32>(15u)) | h1;
  return D8(vec4<f32>(q0) * h.d + h.m, vec4<f32>(q1) * h.d + h.m);
}
#elif MXFP4
// block (17 bytes, any alignment; gpt-oss's experts): u8 e (E8M0 scale) @0; u8 qs[16] @1 (E2M1 codes:
// element j in the low nibble of qs[j], element j + 16 in the high one); y = kvalue(q) · 2^(e − 128),
// kvalues = 2 × the E2M1 values {0, 1, 2, 3, 4, 6, 8, 12, −0, −1, …, −12} (ggml kvalues_mxfp4, with
// ggml_e8m0_to_fp32_half: the half scale; a denormal below e = 2)
const UNIT: u32 = 32u;
fn mxfp4_values(c: vec4<u32>) -> vec4<f32> {
  let m = c & vec4<u32>(7u);
  // 0, 1, 2, 3, then 4 << ((m & 3) >> 1) = 4, 4, 8, 8, × 1.5 for odd m: 4, 6, 8, 12
  let big = vec4<f32>(vec4<u32>(4u) << ((m & vec4<u32>(3u)) >> vec4<u32>(1u))) * select(vec4<f32>(1.0), vec4<f32>(1.5), (m & vec4<u32>(1u)) == vec4<u32>(1u));
  let mag = select(vec4<f32>(m), big, m >= vec4<u32>(4u));
  return select(mag, -mag, (c & vec4<u32>(8u)) != vec4<u32>(0u));
}
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bb = rb + (k >> 5u) * 17u;
  let e = ld8(bb);
  let d = bitcast<f32>(select((e - 1u) << 23u, 0x00200000u << e, e < 2u));
  return Hdr(bb + 1u, 0u, 0u, d, 0.0);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let o = h.o + 8u * (g & 1u);
  let sh = vec4<u32>((g >> 1u) * 4u);
  let q0 = (bytes4(ld32b(o)) >> sh) & vec4<u32>(15u);
  let q1 = (bytes4(ld32b(o + 4u)) >> sh) & vec4<u32>(15u);
  return D8(mxfp4_values(q0) * h.d, mxfp4_values(q1) * h.d);
}
#elif Q4_K
// block (144 bytes, 4-aligned): half d @0; half dmin @2; u8 scales[12] @4; u8 qs[128] @16
// sub-block j (32 values): qs bytes 32·(j/2) .. +32, low nibbles for even j, high for odd
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bw = (rb + (k >> 8u) * 144u) >> 2u;
  let dm = unpack2x16float(w[bw]);
  let j = (k >> 5u) & 7u;
  let sm = kscale_min(vec3<u32>(w[bw + 1u], w[bw + 2u], w[bw + 3u]), j);
  return Hdr(bw + 4u + (j >> 1u) * 8u, 0u, (j & 1u) * 4u, dm.x * sm.x, dm.y * sm.y);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let qw = h.o + 2u * g;
  let sh = vec4<u32>(h.j);
  let q0 = vec4<f32>((bytes4(w[qw]) >> sh) & vec4<u32>(15u));
  let q1 = vec4<f32>((bytes4(w[qw + 1u]) >> sh) & vec4<u32>(15u));
  return D8(h.d * q0 - h.m, h.d * q1 - h.m);
}
#elif Q5_K
// block (176 bytes, 4-aligned): half d @0; half dmin @2; u8 scales[12] @4; u8 qh[32] @16; u8 qs[128] @48
// element l of sub-block j: Q4_K nibble + 16 if bit j of qh[l]
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bw = (rb + (k >> 8u) * 176u) >> 2u;
  let dm = unpack2x16float(w[bw]);
  let j = (k >> 5u) & 7u;
  let sm = kscale_min(vec3<u32>(w[bw + 1u], w[bw + 2u], w[bw + 3u]), j);
  return Hdr(bw + 12u + (j >> 1u) * 8u, bw + 4u, j, dm.x * sm.x, dm.y * sm.y);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let qw = h.o + 2u * g;
  let hw = h.x + 2u * g;
  let sh = vec4<u32>((h.j & 1u) * 4u);
  let hj = vec4<u32>(h.j);
  let q0 = ((bytes4(w[qw]) >> sh) & vec4<u32>(15u)) | (((bytes4(w[hw]) >> hj) & vec4<u32>(1u)) << vec4<u32>(4u));
  let q1 = ((bytes4(w[qw + 1u]) >> sh) & vec4<u32>(15u)) | (((bytes4(w[hw + 1u]) >> hj) & vec4<u32>(1u)) << vec4<u32>(4u));
  return D8(h.d * vec4<f32>(q0) - h.m, h.d * vec4<f32>(q1) - h.m);
}
#elif Q6_K
// block (210 bytes, 2-aligned): u8 ql[128] @0; u8 qh[64] @128; i8 scales[16] @192; half d @208
// sub-block j = 4h + q (h: half of 128, q: quarter): element l (0..31) is
//   ((ql[64h + l + 32·(q&1)] >> 4·(q>>1)) & 15) | ((qh[32h + l] >> 2q) & 3) << 4, minus 32,
//   times d·scales[8h + l/16 + 2q]
const UNIT: u32 = 32u;
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  let bb = rb + (k >> 8u) * 210u;
  let j = (k >> 5u) & 7u;
  let h = j >> 2u;
  let q = j & 3u;
  let d = ldf16(bb + 208u);
  let sc = ld16(bb + 192u + 8u * h + 2u * q); // scales[8h + 2q] (l < 16) and [8h + 2q + 1] (l ≥ 16)
  let s0 = f32(bitcast<i32>(sc << 24u) >> 24u);
  let s1 = f32(bitcast<i32>(sc << 16u) >> 24u);
  return Hdr(bb + 64u * h + 32u * (q & 1u), bb + 128u + 32u * h, q, d * s0, d * s1);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  let lo = h.o + 8u * g;
  let hi = h.x + 8u * g;
  let sl = vec4<u32>((h.j >> 1u) * 4u);
  let sh = vec4<u32>(2u * h.j);
  let ds = select(h.d, h.m, g >= 2u);
  let l = ld64(lo);
  let m = ld64(hi);
  let q0 = ((bytes4(l.x) >> sl) & vec4<u32>(15u)) | (((bytes4(m.x) >> sh) & vec4<u32>(3u)) << vec4<u32>(4u));
  let q1 = ((bytes4(l.y) >> sl) & vec4<u32>(15u)) | (((bytes4(m.y) >> sh) & vec4<u32>(3u)) << vec4<u32>(4u));
  return D8(ds * (vec4<f32>(q0) - 32.0), ds * (vec4<f32>(q1) - 32.0));
}
// 8 words from byte offset `byte` (2-aligned): 9 loads, funnel-shifted. Filled into an array before
// the dot loop: the same loop with the shifts carried from one iteration to the next (each word
// loaded once, as here) took 25–40% longer on llvmpipe (alternating runs of the LM-head kernel).
fn q6k_words(byte: u32) -> array<u32, 8> {
  var v: array<u32, 8>;
  let i = byte >> 2u;
  let sh = (byte & 2u) * 8u;
  var a = w[i];
  for (var g = 0u; g < 8u; g++) {
    let b = w[i + g + 1u];
    v[g] = funnel(a, b, sh);
    a = b;
  }
  return v;
}
// unit_dot with each weight word read once: the unit's 32 ql bytes (at h.o) and 32 qh bytes (at
// h.x) both lie at the block's offset + a multiple of 32, so are equally aligned: 8 words each
// from 9 loads (q6k_words; unit_dq8's ld64 reads 3 words per 2). Same values and the same f32 sum
// as the generic unit_dot.
fn q6k_group(s: ptr<function, f32>, h: Hdr, g: u32, l: vec2<u32>, m: vec2<u32>, x: D8) {
  let sl = vec4<u32>((h.j >> 1u) * 4u);
  let sh = vec4<u32>(2u * h.j);
  let ds = select(h.d, h.m, g >= 2u);
  let q0 = ((bytes4(l.x) >> sl) & vec4<u32>(15u)) | (((bytes4(m.x) >> sh) & vec4<u32>(3u)) << vec4<u32>(4u));
  let q1 = ((bytes4(l.y) >> sl) & vec4<u32>(15u)) | (((bytes4(m.y) >> sh) & vec4<u32>(3u)) << vec4<u32>(4u));
  *s += dot(ds * (vec4<f32>(q0) - 32.0), x.a) + dot(ds * (vec4<f32>(q1) - 32.0), x.b);
}
fn unit_dot(rb: u32, k: u32, n: u32, xv: ptr<function, array<D8, UNIT_G>>) -> f32 {
  let h = unit_hdr(rb, k, n);
  let l = q6k_words(h.o);
  let m = q6k_words(h.x);
  var s = 0.0;
  for (var g = 0u; g < UNIT_G; g++) {
    q6k_group(&s, h, g, vec2<u32>(l[2u * g], l[2u * g + 1u]), vec2<u32>(m[2u * g], m[2u * g + 1u]), (*xv)[g]);
  }
  return s;
}
#endif

// 128 input values rounded to Q8_K (unit_dot_q's unit): int8 ×4 per word (low byte first), the
// block's scale d_x, and the sums of q_x over each 16 values
struct XQ {
  q: array<u32, 32>,
  d: f32,
  s: array<i32, 8>,
}

#if Q4_K
// values k .. k+63 of the unit (k a multiple of 64): sub-blocks 2p and 2p+1 (p = k/64 mod 4), the
// low and high nibbles of the same 8 qs words; o = the unit's first word in xq (0 or 16)
fn q4k_dot64(bw: u32, p: u32, xq: ptr<function, XQ>, o: u32) -> f32 {
  let dm = unpack2x16float(w[bw]);
  let sv = vec3<u32>(w[bw + 1u], w[bw + 2u], w[bw + 3u]);
  let m0 = kscale_min(sv, 2u * p);
  let m1 = kscale_min(sv, 2u * p + 1u);
  let qo = bw + 4u + 8u * p;
  var i0 = 0;
  var i1 = 0;
  for (var g = 0u; g < 8u; g++) {
    let q = w[qo + g];
    i0 += dot4I8Packed(q & 0x0f0f0f0fu, (*xq).q[o + g]);
    i1 += dot4I8Packed((q >> 4u) & 0x0f0f0f0fu, (*xq).q[o + 8u + g]);
  }
  let s = o / 4u;
  let sx0 = (*xq).s[s] + (*xq).s[s + 1u];
  let sx1 = (*xq).s[s + 2u] + (*xq).s[s + 3u];
  return ((dm.x * m0.x) * f32(i0) - (dm.y * m0.y) * f32(sx0)) + ((dm.x * m1.x) * f32(i1) - (dm.y * m1.y) * f32(sx1));
}
fn unit_dot_q(rb: u32, k: u32, n: u32, xq: ptr<function, XQ>) -> f32 {
  let bw = (rb + (k >> 8u) * 144u) >> 2u;
  let p = (k >> 6u) & 3u;
  return (*xq).d * (q4k_dot64(bw, p, xq, 0u) + q4k_dot64(bw, p + 1u, xq, 16u));
}
#elif Q6_K
// values k .. k+127 (k a multiple of 128): half h of the super-block, its four sub-blocks q = 0..3
// (q: ql bytes 32·(q&1) .. +31, nibble q>>1; qh bits 2q), 16 ql words and 8 qh words each read
// once, 8 scales, one per 16 values, summed in integers
fn unit_dot_q(rb: u32, k: u32, n: u32, xq: ptr<function, XQ>) -> f32 {
  let bb = rb + (k >> 8u) * 210u;
  let h = (k >> 7u) & 1u;
  let d = ldf16(bb + 208u);
  let sc = ld64(bb + 192u + 8u * h); // scales[8h .. 8h + 7], one per 16 values of the half
  var i = array<i32, 8>(0, 0, 0, 0, 0, 0, 0, 0); // Σ q_w·q_x per 16 values, in value order
  let ql0 = q6k_words(bb + 64u * h);       // ql bytes 0 .. 31 of the half (sub-blocks 0 and 2)
  let ql1 = q6k_words(bb + 64u * h + 32u); // ql bytes 32 .. 63 (sub-blocks 1 and 3)
  let qh = q6k_words(bb + 128u + 32u * h); // qh bytes 0 .. 31 (all four)
  for (var g = 0u; g < 8u; g++) {
    let l0 = ql0[g];
    let l1 = ql1[g];
    let m = qh[g];
    let gi = g >> 2u;            // values 4g .. 4g+3 lie in the first or second 16 of a sub-block
    i[gi] += dot4I8Packed((l0 & 0x0f0f0f0fu) | ((m << 4u) & 0x30303030u), (*xq).q[g]);
    i[2u + gi] += dot4I8Packed((l1 & 0x0f0f0f0fu) | ((m << 2u) & 0x30303030u), (*xq).q[8u + g]);
    i[4u + gi] += dot4I8Packed(((l0 >> 4u) & 0x0f0f0f0fu) | (m & 0x30303030u), (*xq).q[16u + g]);
    i[6u + gi] += dot4I8Packed(((l1 >> 4u) & 0x0f0f0f0fu) | ((m >> 2u) & 0x30303030u), (*xq).q[24u + g]);
  }
  // value 16j .. 16j+15 of the half has scale scales[8h + j]
  let s0 = bitcast<vec4<i32>>(vec4<u32>(sc.x << 24u, sc.x << 16u, sc.x << 8u, sc.x)) >> vec4<u32>(24u);
  let s1 = bitcast<vec4<i32>>(vec4<u32>(sc.y << 24u, sc.y << 16u, sc.y << 8u, sc.y)) >> vec4<u32>(24u);
  var t = 0;
  for (var j = 0u; j < 4u; j++) {
    t += s0[j] * (i[j] - 32 * (*xq).s[j]) + s1[j] * (i[4u + j] - 32 * (*xq).s[4u + j]);
  }
  return (*xq).d * (d * f32(t));
}
#endif

#if F32 || F16 || BF16
// float types: a unit is 8 elements, nothing to hoist
fn unit_hdr(rb: u32, k: u32, n: u32) -> Hdr {
  return Hdr(rb, n, k, 0.0, 0.0);
}
fn unit_dq8(h: Hdr, g: u32) -> D8 {
  return dq8(h.o, h.j + 8u * g, h.x);
}
#else
// block types: elements k .. k+7 through the unit of 32 that holds them
fn dq8(rb: u32, k: u32, n: u32) -> D8 {
  return unit_dq8(unit_hdr(rb, k & ~31u, n), (k & 31u) >> 3u);
}
#endif

const UNIT_G: u32 = UNIT / 8u;

#if !Q6_K
// the dot of elements k .. k + UNIT of the row at byte rb with xv (see the header)
fn unit_dot(rb: u32, k: u32, n: u32, xv: ptr<function, array<D8, UNIT_G>>) -> f32 {
  let h = unit_hdr(rb, k, n);
  var s = 0.0;
  for (var g = 0u; g < UNIT_G; g++) {
    let d = unit_dq8(h, g);
    s += dot(d.a, (*xv)[g].a) + dot(d.b, (*xv)[g].b);
  }
  return s;
}
#endif
