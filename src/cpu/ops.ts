// The plain TypeScript reference of every op the forward pass uses. f32 (Float32Array) in and out;
// sums are accumulated in f64 (JS numbers) and rounded to f32 when stored. These functions are the
// oracle the WebGPU kernels are tested against: keep them small, obvious and allocation-light.
//
// Matrix convention (shared/docs/qwen3moe.md): a weight of ggml shape [cols, rows] (ne0 = cols) is
// row-major; y[r] = Σ_c W[r][c]·x[c]; row r lives at byte r·rowBytes(type, cols).
//
// Numerics (src/backend.ts Numerics): a matrix marked `numerics: 'llamacpp'` rounds its input the
// way llama.cpp's CPU backend does (the activation through the weight type's vec_dot_type, gguf/
// quants.ts activationRoundTrip) before the f64 dot products; unmarked matrices multiply exactly.
// attention() does the same for an F16 KV cache when asked (q and the softmax weights to f16).
import { activationRoundTrip, dequantize, f16ToF32, f32ToF16 } from '../../gguf/quants.js';
import { GGMLType, rowBytes } from '../../gguf/types.js';
import type { Numerics } from '../backend.js';
import { fmaf, hasLlamaKernel, llamaAttention, llamaMatMul } from './llamacpp.js';

/** A 2-D weight, still quantized: `rows` rows of `cols` (= ne0) elements each. */
export interface QuantMatrix {
  type: GGMLType;
  /** ne1 */
  rows: number;
  /** ne0, the row length (the dimension summed over) */
  cols: number;
  /** exactly rows · rowBytes(type, cols) bytes */
  data: Uint8Array;
  /** how products round their input (default 'exact'); see the header */
  numerics?: Numerics;
  /** one matrix of a 3-D stack (an expert): llama.cpp multiplies it with mul_mat_id, row by row */
  mulMatId?: boolean;
}

/** A stack of `count` matrices of the same shape: a 3-D ggml tensor [cols, rows, count] (experts). */
export interface QuantMatrixStack {
  type: GGMLType;
  rows: number;
  cols: number;
  /** ne2, e.g. n_expert */
  count: number;
  data: Uint8Array;
  numerics?: Numerics;
}

/** Matrix e of a stack (a view, no copy): bytes e·rows·rowBytes .. (e+1)·rows·rowBytes. */
export function expertSlice(w: QuantMatrixStack, e: number): QuantMatrix {
  if (!(e >= 0 && e < w.count)) throw new RangeError(`expert ${e} out of range 0..${w.count - 1}`);
  const bytes = w.rows * rowBytes(w.type, w.cols);
  return { type: w.type, rows: w.rows, cols: w.cols, data: w.data.subarray(e * bytes, (e + 1) * bytes), numerics: w.numerics, mulMatId: true };
}

// One scratch row shared by matVec/matMul/embedRow (single-threaded, never re-entered).
let scratch = new Float32Array(0);

/**
 * Row r of w as f32. F32 rows are returned as a view when aligned; other types are dequantized into
 * a scratch buffer that the next call overwrites.
 */
export function dequantizeRow(w: QuantMatrix, r: number): Float32Array {
  if (!(r >= 0 && r < w.rows)) throw new RangeError(`row ${r} out of range 0..${w.rows - 1}`);
  const rb = rowBytes(w.type, w.cols);
  const bytes = w.data.subarray(r * rb, (r + 1) * rb);
  if (w.type === GGMLType.F32 && (bytes.byteOffset & 3) === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, w.cols);
  }
  if (scratch.length < w.cols) scratch = new Float32Array(w.cols);
  const dst = scratch.subarray(0, w.cols);
  dequantize(w.type, bytes, w.cols, dst);
  return dst;
}

/** Σ_i a[i]·b[bOff+i] for i < n, accumulated in f64 (four partial sums, for speed). */
export function dot(a: Float32Array, b: Float32Array, bOff: number, n: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    s0 += a[i]! * b[bOff + i]!;
    s1 += a[i + 1]! * b[bOff + i + 1]!;
    s2 += a[i + 2]! * b[bOff + i + 2]!;
    s3 += a[i + 3]! * b[bOff + i + 3]!;
  }
  for (; i < n; i++) s0 += a[i]! * b[bOff + i]!;
  return s0 + s1 + (s2 + s3);
}

// The rounded copy of the activations (single-threaded, never re-entered).
let actScratch = new Float32Array(0);

/**
 * The n values of x that w multiplies: x itself, or (numerics 'llamacpp', weights other than F32)
 * their round trip through the weight's vec_dot_type in a scratch buffer the next call overwrites.
 */
export function productInput(w: QuantMatrix, x: Float32Array, n: number): Float32Array {
  if (w.numerics !== 'llamacpp' || w.type === GGMLType.F32) return x;
  if (actScratch.length < n) actScratch = new Float32Array(n);
  return activationRoundTrip(w.type, x.subarray(0, n), actScratch.subarray(0, n));
}

/** out[r] = Σ_c W[r][c]·x[c].  out: [rows], x: [cols]. */
export function matVec(out: Float32Array, w: QuantMatrix, x: Float32Array): void {
  if (w.numerics === 'llamacpp' && hasLlamaKernel(w.type)) return llamaMatMul(out, w, x, 1, w.mulMatId);
  const xin = productInput(w, x, w.cols);
  for (let r = 0; r < w.rows; r++) out[r] = dot(dequantizeRow(w, r), xin, 0, w.cols);
}

/** out[t][r] = Σ_c W[r][c]·x[t][c].  x: [nTokens, cols], out: [nTokens, rows] (row-major). */
export function matMul(out: Float32Array, w: QuantMatrix, xRaw: Float32Array, nTokens: number): void {
  if (w.numerics === 'llamacpp' && hasLlamaKernel(w.type)) return llamaMatMul(out, w, xRaw, nTokens, w.mulMatId);
  const { rows, cols } = w;
  const x = productInput(w, xRaw, nTokens * cols);
  for (let r = 0; r < rows; r++) {
    const row = dequantizeRow(w, r); // each row dequantized once, used by every token
    for (let t = 0; t < nTokens; t++) out[t * rows + r] = dot(row, x, t * cols, cols);
  }
}

/** out = row `row` of w (an embedding lookup), dequantized. out: [cols]. */
export function embedRow(out: Float32Array, w: QuantMatrix, row: number): void {
  out.set(dequantizeRow(w, row).subarray(0, w.cols));
}

/**
 * RMSNorm per row: out = x / sqrt(mean(x²) + eps) ⊙ weight (ggml: each square rounded to f32, summed
 * in f64 in order; the scale 1/sqrt is an f32, the weight multiply a separate f32 op). Row length is weight.length, or x.length / rows without a
 * weight. out may be x.
 */
export function rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array | null, eps: number, rows = 1): void {
  const n = weight ? weight.length : x.length / rows;
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.fround(x[o + i]! * x[o + i]!);
    const mean = Math.fround(sum / n); // ggml: f64 sum of f32 squares, f32 mean, scale = 1.0f / sqrtf(mean + eps)
    const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(mean + Math.fround(eps)))));
    for (let i = 0; i < n; i++) {
      const y = Math.fround(x[o + i]! * scale);
      out[o + i] = weight ? y * weight[i]! : y;
    }
  }
}

/**
 * NEOX RoPE of one token, in place. x: [nHeads, headDim]; in each head, element i (< nRot/2) pairs
 * with i + nRot/2; elements ≥ nRot are left unchanged. θ_i = pos · base^(−2i/nRot), computed like
 * ggml: theta_scale = powf(base, −2/nRot) in f32 and θ_{i+1} = θ_i · theta_scale in f32.
 */
export function ropeNeox(x: Float32Array, nHeads: number, headDim: number, nRot: number, pos: number, base: number): void {
  const half = nRot / 2;
  const thetaScale = Math.fround(Math.pow(Math.fround(base), Math.fround(-2 / nRot)));
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  let theta = Math.fround(pos);
  for (let i = 0; i < half; i++) {
    cos[i] = Math.cos(theta);
    sin[i] = Math.sin(theta);
    theta = Math.fround(theta * thetaScale);
  }
  for (let h = 0; h < nHeads; h++) {
    const o = h * headDim;
    for (let i = 0; i < half; i++) {
      const a = x[o + i]!;
      const b = x[o + i + half]!;
      // ggml (compiled with FMA): fmaf(a, cos, −(b·sin)) and fmaf(a, sin, b·cos)
      x[o + i] = fmaf(a, cos[i]!, -Math.fround(b * sin[i]!));
      x[o + i + half] = fmaf(a, sin[i]!, Math.fround(b * cos[i]!));
    }
  }
}

/** How RoPE rotates (config.ts AttentionSpec): pair style, frequencies, scaling. */
export interface RopeSpec {
  nRot: number;
  base: number;
  /** 'neox': element i pairs with i + nRot/2; 'norm': 2i pairs with 2i + 1 (llama) */
  style: 'neox' | 'norm';
  /** rope_freqs [nRot/2]: θ_i is divided by freqFactors[i] (llama3) */
  freqFactors?: Float32Array | null;
  /** θ multiplied by this (linear rope scaling: 1/factor); default 1 */
  freqScale?: number;
  /** YaRN (config.ts AttentionSpec.yarn); default none */
  yarn?: { extFactor: number; corrDims: [number, number]; mscale: number };
}

/**
 * RoPE of one token, in place, in either pair style. x: [nHeads, headDim]; elements ≥ nRot are left
 * unchanged. θ_i = freqScale · (pos · base^(−2i/nRot) / freqFactors[i]), in f32 as ggml's
 * ggml_rope_cache_init / rope_yarn (no YaRN ramp) compute it; the rotation as ggml's rotate_pairs.
 */
export function rope(x: Float32Array, nHeads: number, headDim: number, pos: number, r: RopeSpec): void {
  const y = r.yarn ?? { extFactor: 0, corrDims: [0, 0], mscale: 1 };
  if (r.style === 'neox' && !r.freqFactors && (r.freqScale ?? 1) === 1 && y.extFactor === 0 && y.mscale === 1) return ropeNeox(x, nHeads, headDim, r.nRot, pos, r.base);
  const f = Math.fround;
  const half = r.nRot / 2;
  const thetaScale = f(Math.pow(f(r.base), f(-2 / r.nRot)));
  const freqScale = f(r.freqScale ?? 1);
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  let theta = f(pos);
  const [lo, hi] = y.corrDims;
  for (let i = 0; i < half; i++) {
    const ff = r.freqFactors ? r.freqFactors[i]! : 1;
    const extrap = f(theta / ff);
    let t = f(freqScale * extrap);
    if (y.extFactor !== 0) {
      // ggml rope_yarn: ramp = (1 − clamp((i − lo) / max(0.001, hi − lo), 0, 1)) · ext_factor
      const ramp = f(f(1 - Math.min(1, Math.max(0, f(f(i - lo) / Math.max(f(0.001), f(hi - lo)))))) * y.extFactor);
      t = fmaf(t, f(1 - ramp), f(extrap * ramp));
    }
    cos[i] = f(f(Math.cos(t)) * y.mscale);
    sin[i] = f(f(Math.sin(t)) * y.mscale);
    theta = f(theta * thetaScale);
  }
  const [step, offset] = r.style === 'neox' ? [1, half] : [2, 1]; // element of pair i: i·step, its partner + offset
  for (let h = 0; h < nHeads; h++) {
    const o = h * headDim;
    for (let i = 0; i < half; i++) {
      const j = o + i * step;
      const a = x[j]!;
      const b = x[j + offset]!;
      x[j] = fmaf(a, cos[i]!, -Math.fround(b * sin[i]!));
      x[j + offset] = fmaf(a, sin[i]!, Math.fround(b * cos[i]!));
    }
  }
}

/** out[t, i] += bias[i] for n rows (llama.cpp's ggml_add of a bias row). */
export function addBias(out: Float32Array, bias: Float32Array, n: number): void {
  const w = bias.length;
  for (let t = 0; t < n; t++) for (let i = 0; i < w; i++) out[t * w + i] = out[t * w + i]! + bias[i]!;
}

/** In-place softmax of x[0..n) with max subtraction (f64 sum). */
export function softmax(x: Float32Array, n = x.length): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[i]! - max);
    x[i] = e;
    sum += x[i]!;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[i] = x[i]! * inv;
}

/**
 * Causal attention of ONE query token with grouped-query heads.
 * q: [nHead, headDimK]; kCache: [nKvMax, nHeadKv, headDimK] (position-major, the first nKv
 * positions are visible); vCache: [nKvMax, nHeadKv, headDimV]; out: [nHead, headDimV].
 * Query head h reads KV head ⌊h / (nHead / nHeadKv)⌋. s_j = scale · q·k_j; a = softmax(s); o = Σ a_j v_j.
 * With `llamaF16` (an F16 cache under numerics 'llamacpp'), as llama.cpp's non-flash path does it
 * (llamacpp.ts llamaAttention; `batch` = tokens in this evaluation, which picks llama.cpp's kernel).
 */
export function attention(
  out: Float32Array,
  q: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  nHead: number,
  nHeadKv: number,
  headDimK: number,
  headDimV: number,
  nKv: number,
  scale: number,
  llamaF16 = false,
  batch = 1,
  extras: AttentionExtras = {},
): void {
  if (llamaF16) return llamaAttention(out, q, kCache, vCache, nHead, nHeadKv, headDimK, headDimV, nKv, scale, batch, extras);
  const first = extras.first ?? 0;
  const group = nHead / nHeadKv;
  const kStride = nHeadKv * headDimK;
  const vStride = nHeadKv * headDimV;
  const scores = new Float32Array(nKv); // [nKv]
  for (let h = 0; h < nHead; h++) {
    const kvh = Math.floor(h / group);
    const qo = h * headDimK;
    for (let j = 0; j < nKv; j++) {
      if (j < first) {
        scores[j] = -Infinity; // outside the sliding window
        continue;
      }
      const ko = j * kStride + kvh * headDimK;
      let s = 0;
      for (let d = 0; d < headDimK; d++) s += q[qo + d]! * kCache[ko + d]!;
      scores[j] = s * scale;
    }
    if (extras.sinks) softmaxWithSink(scores, nKv, extras.sinks[h]!);
    else softmax(scores, nKv);
    const oo = h * headDimV;
    for (let d = 0; d < headDimV; d++) {
      let acc = 0;
      for (let j = 0; j < nKv; j++) acc += scores[j]! * vCache[j * vStride + kvh * headDimV + d]!;
      out[oo + d] = acc;
    }
  }
}

/** What a few architectures add to attention (gpt-oss). */
export interface AttentionExtras {
  /** first visible cache position (a sliding window: positions before it are masked) */
  first?: number;
  /** per query head, a logit that joins the softmax's denominator (attention sinks) */
  sinks?: Float32Array | null;
}

/** softmax of x[0..n) with one more logit `sink` in the denominator (max over x and the sink), as ggml's soft_max with sinks. */
export function softmaxWithSink(x: Float32Array, n: number, sink: number): void {
  let max = sink;
  for (let i = 0; i < n; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[i]! - max);
    x[i] = e;
    sum += x[i]!;
  }
  sum += Math.fround(Math.exp(sink - max));
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[i] = x[i]! * inv;
}

/** silu(a) = a / (1 + e^(−a)) */
export function silu(a: number): number {
  return a / (1 + Math.exp(-a));
}

/** out[i] = silu(gate[i]) · up[i]. out may alias gate or up. */
export function swiglu(out: Float32Array, gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(silu(gate[i]!)) * up[i]!;
}

/** Smallest denominator of the renormalization (llama.cpp clamps the sum to 2^-14). */
export const MOE_RENORM_MIN = 6.103515625e-5;

/**
 * The MoE router of one token: P = softmax(logits) over all experts; the k largest P in descending
 * order (ties → the lower expert id); with `normalize`, w_e = P_e / max(Σ_S P, 6.103515625e-5),
 * else w_e = P_e. logits is not modified.
 */
export function moeRoute(logits: Float32Array, k: number, normalize: boolean): { ids: Int32Array; weights: Float32Array; probs: Float32Array } {
  const n = logits.length;
  if (!(k >= 1 && k <= n)) throw new RangeError(`top-k ${k} out of range 1..${n}`);
  const probs = Float32Array.from(logits); // [nExpert]
  softmax(probs);
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => probs[b]! - probs[a]! || a - b);
  const ids = Int32Array.from(order.slice(0, k)); // [k]
  const weights = new Float32Array(k); // [k]
  let sum = 0;
  for (let i = 0; i < k; i++) {
    weights[i] = probs[ids[i]!]!;
    sum += weights[i]!;
  }
  if (normalize) {
    const denom = Math.fround(Math.max(Math.fround(sum), MOE_RENORM_MIN));
    for (let i = 0; i < k; i++) weights[i] = weights[i]! / denom;
  }
  return { ids, weights, probs };
}

/** How a router turns logits into the chosen experts and their weights (config.ts RouterSpec). */
export interface RouteSpec {
  gating: 'softmax' | 'sigmoid' | 'softmax_weight';
  normalize: boolean;
  /** expert groups (0: none) and how many of them the selection may use */
  groups: number;
  groupsUsed: number;
  /** weights × scale (1: none) */
  scale: number;
}

/**
 * The general router of llama.cpp's build_moe_ffn for one token: p = softmax(z) or sigmoid(z);
 * selection scores s = p + bias (bias: exp_probs_b, may be null); with groups, only the experts of
 * the `groupsUsed` groups whose two best s sum highest stay eligible (the rest are −∞); ids = top-k
 * of s (descending, ties → lower id); weights = p[ids], divided by max(Σ, 6.1e-5) when `normalize`,
 * times `scale`. `moeRoute` is the softmax case without bias or groups.
 */
export function moeRouteGeneral(logits: Float32Array, k: number, r: RouteSpec, bias: Float32Array | null): { ids: Int32Array; weights: Float32Array; probs: Float32Array } {
  if (r.gating === 'softmax' && !bias && !(r.groups > 1) && r.scale === 1) return moeRoute(logits, k, r.normalize);
  const n = logits.length;
  if (!(k >= 1 && k <= n)) throw new RangeError(`top-k ${k} out of range 1..${n}`);
  const probs = Float32Array.from(logits); // [nExpert] (softmax_weight: the logits themselves)
  if (r.gating === 'softmax') softmax(probs);
  else if (r.gating === 'sigmoid') for (let i = 0; i < n; i++) probs[i] = sigmoid(probs[i]!);
  const sel = Float32Array.from(probs); // [nExpert] selection scores
  if (bias) for (let i = 0; i < n; i++) sel[i] = sel[i]! + bias[i]!;
  if (r.groups > 1) {
    const per = n / r.groups;
    const score = new Float32Array(r.groups); // [groups] sum of each group's two best
    for (let g = 0; g < r.groups; g++) {
      let a = -Infinity;
      let b = -Infinity;
      for (let i = g * per; i < (g + 1) * per; i++) {
        const v = sel[i]!;
        if (v > a) [a, b] = [v, a];
        else if (v > b) b = v;
      }
      score[g] = a + b;
    }
    const order = Array.from({ length: r.groups }, (_, g) => g).sort((x, y) => score[y]! - score[x]! || x - y);
    const keep = new Set(order.slice(0, r.groupsUsed));
    for (let g = 0; g < r.groups; g++) if (!keep.has(g)) sel.fill(-Infinity, g * per, (g + 1) * per);
  }
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => sel[b]! - sel[a]! || a - b);
  const ids = Int32Array.from(order.slice(0, k)); // [k]
  const weights = new Float32Array(k); // [k]
  for (let i = 0; i < k; i++) weights[i] = probs[ids[i]!]!;
  if (r.gating === 'softmax_weight') softmax(weights); // gpt-oss: softmax over the chosen logits
  let sum = 0;
  for (let i = 0; i < k; i++) sum = Math.fround(sum + weights[i]!);
  if (r.normalize) {
    const denom = Math.max(sum, MOE_RENORM_MIN);
    for (let i = 0; i < k; i++) weights[i] = weights[i]! / denom;
  }
  if (r.scale !== 1) for (let i = 0; i < k; i++) weights[i] = weights[i]! * Math.fround(r.scale);
  return { ids, weights, probs };
}

/**
 * gpt-oss's clamped SwiGLU (ggml swiglu_oai, α = 1.702, limit = 7):
 * out = x / (1 + e^(−α·x)) · (clamp(up, −limit, limit) + 1) with x = min(gate, limit), in f32.
 */
export function swigluOai(out: Float32Array, gate: Float32Array, up: Float32Array, alpha = 1.702, limit = 7): void {
  const f = Math.fround;
  const a = f(alpha);
  for (let i = 0; i < out.length; i++) {
    const x = Math.min(gate[i]!, limit);
    const y = Math.min(Math.max(up[i]!, -limit), limit);
    const glu = f(x / f(1 + f(Math.exp(f(a * -x)))));
    out[i] = glu * f(y + 1);
  }
}

/** out[i] = a[i] + b[i]. out may alias a or b. */
export function add(out: Float32Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! + b[i]!;
}

/** out[i] += s · x[i] */
export function addScaled(out: Float32Array, x: Float32Array, s: number): void {
  for (let i = 0; i < out.length; i++) out[i] = out[i]! + Math.fround(s * x[i]!);
}

/** Rounds every element to the nearest f16 value (round-to-nearest-even), in place: an F16 KV cache. */
export function roundToF16(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = f16ToF32(f32ToF16(x[i]!));
}

/** Σ(a−b)² / Σb²: llama.cpp's test-backend-ops error metric (b is the reference). */
export function normalizedMSE(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length mismatch ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : num / den;
}

// ---------------------------------------------------------------------------------------------
// Ops of the Qwen3.5 hybrid (qwen35moe, qwen35): Gated DeltaNet and the gated attention output.
// See shared/docs/qwen35moe.md and src/cpu/deltanet.ts.

/** sigmoid(a) = 1 / (1 + e^(−a)) */
export function sigmoid(a: number): number {
  return 1 / (1 + Math.exp(-a));
}

/** softplus(a) = log(1 + e^a), and a itself above 20 (ggml's threshold). */
export function softplus(a: number): number {
  return a > 20 ? a : Math.log1p(Math.exp(a));
}

/**
 * L2 normalization per row: out = x / max(‖x‖₂, eps) (ggml_l2_norm: the sum of squares in f64, the
 * scale 1/max(sqrt, eps) an f32). Rows of `n` elements; out may be x.
 */
export function l2Norm(out: Float32Array, x: Float32Array, n: number, eps: number, rows = 1): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[o + i]! * x[o + i]!;
    const scale = Math.fround(1 / Math.max(Math.fround(Math.sqrt(sum)), Math.fround(eps)));
    for (let i = 0; i < n; i++) out[o + i] = x[o + i]! * scale;
  }
}

/**
 * Causal depthwise convolution over time (ggml_ssm_conv), with its state, for nTokens tokens.
 *   x:      [nTokens, channels]  the new raw inputs
 *   state:  [kernel−1, channels] the previous kernel−1 raw inputs (oldest first; zeros at sequence
 *           start); updated in place to the last kernel−1 raw inputs
 *   w:      [channels, kernel]   tap j of channel c at c·kernel + j; tap 0 multiplies the oldest input
 *   out:    [nTokens, channels]  out[t][c] = Σ_j in[t+j][c]·w[c][j], in = state ++ x
 * No bias, no activation (the caller applies SiLU).
 */
export function ssmConv(out: Float32Array, x: Float32Array, state: Float32Array, w: Float32Array, channels: number, kernel: number, nTokens: number): void {
  const past = kernel - 1;
  const win = new Float32Array((past + nTokens) * channels); // [kernel−1+nTokens, channels]
  win.set(state.subarray(0, past * channels), 0);
  win.set(x.subarray(0, nTokens * channels), past * channels);
  for (let t = 0; t < nTokens; t++) {
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let j = 0; j < kernel; j++) s += win[(t + j) * channels + c]! * w[c * kernel + j]!;
      out[t * channels + c] = s;
    }
  }
  state.set(win.subarray(nTokens * channels, (nTokens + past) * channels));
}

/**
 * One token of the gated delta rule for one value head, in place on the state.
 *   S: [dk, dv] row-major (S[i][j], i the key dim, j the value dim), f32
 *   q, k: [dk] (already L2-normalized); v: [dv]; g ≤ 0 the log-decay; beta in (0, 1)
 *   out: [dv]
 * S ← e^g·S;  u = Sᵀk;  δ = β·(v − u);  S ← S + k δᵀ;  out = Sᵀq · scale.
 * qOff/kOff/vOff/outOff index into the arrays (heads packed along one row).
 */
export function deltaRuleStep(
  S: Float32Array, q: Float32Array, qOff: number, k: Float32Array, kOff: number, v: Float32Array, vOff: number,
  g: number, beta: number, out: Float32Array, outOff: number, dk: number, dv: number, scale: number,
): void {
  const decay = Math.fround(Math.exp(g));
  const delta = new Float64Array(dv); // [dv]
  // decay, then u[j] = Σ_i S[i][j]·k[i]
  for (let i = 0; i < dk; i++) {
    const row = i * dv;
    const ki = k[kOff + i]!;
    for (let j = 0; j < dv; j++) {
      const s = Math.fround(S[row + j]! * decay);
      S[row + j] = s;
      delta[j] += s * ki;
    }
  }
  for (let j = 0; j < dv; j++) delta[j] = Math.fround(beta * Math.fround(v[vOff + j]! - Math.fround(delta[j]!)));
  // S[i][j] += k[i]·δ[j]; then out[j] = Σ_i S[i][j]·q[i]
  const o = new Float64Array(dv); // [dv]
  for (let i = 0; i < dk; i++) {
    const row = i * dv;
    const ki = k[kOff + i]!;
    const qi = q[qOff + i]!;
    for (let j = 0; j < dv; j++) {
      const s = Math.fround(S[row + j]! + Math.fround(ki * delta[j]!));
      S[row + j] = s;
      o[j] += s * qi;
    }
  }
  for (let j = 0; j < dv; j++) out[outOff + j] = o[j]! * scale;
}

/**
 * Gated RMSNorm per row: out = RMSNorm(x) ⊙ weight ⊙ silu(z) (Qwen3.5's norm(o, gate)). Rows of
 * weight.length elements; weight is shared by every row. out may be x.
 */
export function gatedRmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, z: Float32Array, eps: number, rows = 1): void {
  rmsNorm(out, x, weight, eps, rows);
  for (let i = 0; i < rows * weight.length; i++) out[i] = out[i]! * Math.fround(silu(z[i]!));
}
