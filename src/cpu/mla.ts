// Multi-head latent attention (deepseek2: DeepSeek-V2 / V2-Lite / V3 / R1, Kimi K2), in the absorbed
// form llama.cpp runs (src/models/deepseek2.cpp, is_mla): the KV cache holds one compressed latent
// c (kv_lora_rank) and one roped key part k_pe (qk_rope) per token, shared by every head — MQA over
// rows of kvLora + qkRope, against GQA's 2·n_head_kv·head_dim. Shapes (config.ts MlaConfig):
//
//   q        = W_q·h  or  W_q_b·(RMSNorm(W_q_a·h) ⊙ q_a_norm)      [n, nHead, qkNope + qkRope]
//   [c|k_pe] = W_kv_a_mqa·h                                        [n, kvLora + qkRope]
//   k_pe     = RoPE(k_pe) (adjacent pairs, one "head"); c = RMSNorm(c) ⊙ kv_a_norm
//   q_pe     = RoPE(q[h, qkNope:]) per head
//   q_abs[h] = W_k_b[h]·q[h, :qkNope]                               [n, nHead, kvLora]
//   Q        = [q_abs | q_pe] per head, K = [c | k_pe], V = c       (cache rows: K kvLora + qkRope, V kvLora)
//   o_c      = softmax(Q·Kᵀ · 1/√(qkNope + qkRope), causal) · V     [n, nHead, kvLora]
//   o[h]     = W_v_b[h]·o_c[h]                                      [n, nHead, vHead]
//   out      = W_o·o                                                [n, nEmbd]
// Intermediates as llama.cpp's callbacks where they exist: attn_norm, q, kv_cmpr, k_pe, q_pe,
// q_nope_absorbed, Qcur, Kcur, kqv_out (o_c), attn_v (o, after W_v_b), attn_out.
import type { ModelConfig, MlaConfig } from '../config.js';
import type { Emit, KVCache } from './forward.js';
import { attention, expertSlice, matMul, rmsNorm, rope, type QuantMatrix, type QuantMatrixStack } from './ops.js';
import { ropeOf } from './forward.js';

/** One MLA layer's weights. */
export interface MlaWeights {
  kind: 'mla';
  wq: QuantMatrix | null; // attn_q [E → nHead·(qkNope + qkRope)] (q_lora_rank 0), else null
  wqA: QuantMatrix | null; // attn_q_a [E → qLora]
  qANorm: Float32Array | null; // attn_q_a_norm [qLora]
  wqB: QuantMatrix | null; // attn_q_b [qLora → nHead·(qkNope + qkRope)]
  wkvA: QuantMatrix; // attn_kv_a_mqa [E → kvLora + qkRope]
  kvANorm: Float32Array; // attn_kv_a_norm [kvLora]
  wkB: QuantMatrixStack; // attn_k_b [qkNope → kvLora] × nHead
  wvB: QuantMatrixStack; // attn_v_b [kvLora → vHead] × nHead
  wo: QuantMatrix; // attn_output [nHead·vHead → E]
}

/** y[t, h] = W[h]·x[t, h] for every token and head: x [n, nHead, cols] (row stride xStride), y [n, nHead, rows]. */
function perHead(w: QuantMatrixStack, x: Float32Array, n: number, nHead: number, xStride: number, xOffset: number): Float32Array {
  const cols = w.cols;
  const rows = w.rows;
  const y = new Float32Array(n * nHead * rows);
  for (let hd = 0; hd < nHead; hd++) {
    const xs = new Float32Array(n * cols); // [n, cols] head hd of every token
    for (let t = 0; t < n; t++) xs.set(x.subarray(t * xStride + hd * (xStride / nHead) + xOffset, t * xStride + hd * (xStride / nHead) + xOffset + cols), t * cols);
    const ys = new Float32Array(n * rows); // [n, rows]
    matMul(ys, expertSlice(w, hd), xs, n);
    for (let t = 0; t < n; t++) y.set(ys.subarray(t * rows, (t + 1) * rows), (t * nHead + hd) * rows);
  }
  return y;
}

/**
 * The MLA block of one layer for n tokens at positions pos0..pos0+n-1; writes their K/V rows into
 * the cache. x: [n, nEmbd] (the residual stream, not modified). Returns W_o·attention: [n, nEmbd].
 */
export function mlaAttentionBlock(
  cfg: ModelConfig, m: MlaConfig, attnNorm: Float32Array, L: MlaWeights, cache: KVCache, il: number, x: Float32Array, n: number, pos0: number, emit: Emit,
): Float32Array {
  const { nEmbd: E, nHead, rmsEps } = cfg;
  const kHead = m.qkNope + m.qkRope;
  const R = m.kvLoraRank;
  const h = new Float32Array(n * E); // [n, E]
  rmsNorm(h, x, attnNorm, rmsEps, n);
  emit('attn_norm', il, h);

  // q = W_q·h, or W_q_b·(RMSNorm(W_q_a·h) ⊙ q_a_norm)                [n, nHead, kHead]
  const q = new Float32Array(n * nHead * kHead);
  if (L.wq) {
    matMul(q, L.wq, h, n);
  } else {
    const qa = new Float32Array(n * m.qLoraRank); // [n, qLora]
    matMul(qa, L.wqA!, h, n);
    rmsNorm(qa, qa, L.qANorm, rmsEps, n);
    matMul(q, L.wqB!, qa, n);
  }
  emit('q', il, q);

  // [c | k_pe] = W_kv_a·h;  k_pe roped, c normed                    [n, R + qkRope]
  const kv = new Float32Array(n * (R + m.qkRope));
  matMul(kv, L.wkvA, h, n);
  const c = new Float32Array(n * R); // [n, R]
  const kPe = new Float32Array(n * m.qkRope); // [n, qkRope]
  for (let t = 0; t < n; t++) {
    c.set(kv.subarray(t * (R + m.qkRope), t * (R + m.qkRope) + R), t * R);
    kPe.set(kv.subarray(t * (R + m.qkRope) + R, (t + 1) * (R + m.qkRope)), t * m.qkRope);
  }
  const r = ropeOf(cfg);
  for (let t = 0; t < n; t++) rope(kPe.subarray(t * m.qkRope, (t + 1) * m.qkRope), 1, m.qkRope, pos0 + t, r);
  emit('k_pe', il, kPe);
  rmsNorm(c, c, L.kvANorm, rmsEps, n);
  emit('kv_cmpr', il, c);

  // q_pe roped per head; q_abs[h] = W_k_b[h]·q_nope[h]
  const qPe = new Float32Array(n * nHead * m.qkRope); // [n, nHead, qkRope]
  for (let t = 0; t < n; t++) {
    for (let hd = 0; hd < nHead; hd++) {
      const src = (t * nHead + hd) * kHead + m.qkNope;
      qPe.set(q.subarray(src, src + m.qkRope), (t * nHead + hd) * m.qkRope);
    }
    rope(qPe.subarray(t * nHead * m.qkRope, (t + 1) * nHead * m.qkRope), nHead, m.qkRope, pos0 + t, r);
  }
  emit('q_pe', il, qPe);
  const qAbs = perHead(L.wkB, q, n, nHead, nHead * kHead, 0); // [n, nHead, R]
  emit('q_nope_absorbed', il, qAbs);

  // Q = [q_abs | q_pe] per head; K = [c | k_pe] and V = c into the cache (rows of R + qkRope, R)
  const qRow = nHead * (R + m.qkRope);
  const Q = new Float32Array(n * qRow); // [n, nHead, R + qkRope]
  for (let t = 0; t < n; t++) {
    for (let hd = 0; hd < nHead; hd++) {
      const o = t * qRow + hd * (R + m.qkRope);
      Q.set(qAbs.subarray((t * nHead + hd) * R, (t * nHead + hd + 1) * R), o);
      Q.set(qPe.subarray((t * nHead + hd) * m.qkRope, (t * nHead + hd + 1) * m.qkRope), o + R);
    }
  }
  emit('Qcur', il, Q);
  const K = new Float32Array(n * (R + m.qkRope)); // [n, R + qkRope]
  for (let t = 0; t < n; t++) {
    K.set(c.subarray(t * R, (t + 1) * R), t * (R + m.qkRope));
    K.set(kPe.subarray(t * m.qkRope, (t + 1) * m.qkRope), t * (R + m.qkRope) + R);
  }
  emit('Kcur', il, K);
  cache.reserve(pos0 + n);
  for (let t = 0; t < n; t++) cache.write(il, pos0 + t, K.subarray(t * (R + m.qkRope), (t + 1) * (R + m.qkRope)), c.subarray(t * R, (t + 1) * R));

  // o_c = softmax(Q·Kᵀ · scale) · V (MQA: one KV head)            [n, nHead, R]
  const oc = new Float32Array(n * nHead * R);
  for (let t = 0; t < n; t++) {
    attention(oc.subarray(t * nHead * R, (t + 1) * nHead * R), Q.subarray(t * qRow, (t + 1) * qRow), cache.k[il]!, cache.v[il]!,
      nHead, 1, R + m.qkRope, R, pos0 + t + 1, cfg.attention.scale, cache.llamaF16, n);
  }
  emit('kqv_out', il, oc);

  // o[h] = W_v_b[h]·o_c[h];  out = W_o·o                              [n, nHead, vHead] → [n, E]
  const o = perHead(L.wvB, oc, n, nHead, nHead * R, 0);
  emit('attn_v', il, o);
  const out = new Float32Array(n * E);
  matMul(out, L.wo, o, n);
  emit('attn_out', il, out);
  return out;
}
