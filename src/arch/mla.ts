// deepseek2 on the GPU: multi-head latent attention (config.ts MlaConfig; CPU twin src/cpu/mla.ts)
// and the FFN of the layer (dense in the leading layers, routed + ungated shared experts after).
// The KV cache is the MQA cache of the transformer (src/gpu/attention.ts) with one "head" of
// kvLora + qkRope for K and kvLora for V. Per layer:
//
//   h  = RMSNorm(x) ⊙ attn_norm                                         h  [n, E]
//   q  = W_q·h, or W_q_b·(RMSNorm(W_q_a·h) ⊙ q_a_norm)                   q  [n, nHead, qkNope + qkRope]
//   kv = W_kv_a·h                                                       kv [n, kvLora + qkRope]
//   K[:, :R] = RMSNorm(kv[:, :R]) ⊙ kv_a_norm   (rms_norm over strided rows)
//   K[:, R:] = RoPE(kv[:, R:])                  (mla_q_rope with one head)  K [n, R + qkRope]
//   cache[pos0 + t] = K[t], V = K[t, :R]        (attn_kv_write)
//   Q[:, h, R:] = RoPE(q[:, h, qkNope:])        (mla_q_rope)               Q  [n, nHead, R + qkRope]
//   Q[:, h, :R] = W_k_b[h]·q[:, h, :qkNope]     (matvec_id, one slot per (token, head), id = head)
//   o_c = attention(Q, cache) as MQA, scale 1/√(qkNope + qkRope)          o_c [n, nHead, R]
//   o[:, h] = W_v_b[h]·o_c[:, h]                (matvec_id)                o  [n, nHead, vHead]
//   x += W_o·o
// Under numerics 'llamacpp' every product's input takes its weight's round trip (act_quant.wgsl)
// and, with an f16 cache, Q is rounded to f16 before the attention, as on the other paths.
// Unfused on purpose: a prefill of n tokens runs the per-head matvecs as n·nHead slots, and decode
// is ~14 dispatches per layer; fusions like qwen3moe's are for when it matters (docs/performance.md).
import { actQuantBlock, actQuantFor, createActQuant } from '../gpu/actquant.js';
import { createAttnDecode, createAttnPrefill, createKvWrite } from '../gpu/attention.js';
import { GGMLType } from '../../gguf/types.js';
import { createMlaQRope } from '../gpu/mla.js';
import { createMatVecId, createRmsNorm, type BufferRef } from '../gpu/ops.js';
import type { GpuMlaLayer } from '../gpu/weights.js';
import { createStorage } from '../runtime/buffers.js';
import type { Launch } from '../runtime/pipelines.js';
import type { Program } from './program.js';
import { ffnHalf, type Graph, type Mode } from './transformer.js';

/** MLA's activations, one set per Graph (shapes for n ≤ ubatch tokens). */
interface MlaBuffers {
  q: GPUBuffer; // f32 [ubatch, nHead, qkNope + qkRope] the projected query
  qa: GPUBuffer; // f32 [ubatch, qLora] (q_lora_rank > 0)
  qaNormed: GPUBuffer; // f32 [ubatch, qLora]
  kv: GPUBuffer; // f32 [ubatch, kvLora + qkRope] W_kv_a·h
  k: GPUBuffer; // f32 [ubatch, kvLora + qkRope] the cache row: [c | k_pe]
  o: GPUBuffer; // f32 [ubatch, nHead, vHead] after W_v_b
  heads: GPUBuffer; // u32 [ubatch·nHead] slot (t, h) → h: the "expert" of each per-head product
  xq: GPUBuffer; // f32 [ubatch·nHead, max(qkNope, kvLora)] per-head inputs through their round trip
}

const buffersOf = new WeakMap<Graph, MlaBuffers>();

function mlaBuffers(g: Graph): MlaBuffers {
  let b = buffersOf.get(g);
  if (b) return b;
  const { cfg } = g;
  const m = cfg.mla!;
  const U = g.ubatch;
  const KR = m.kvLoraRank + m.qkRope;
  const heads = new Uint32Array(U * cfg.nHead).map((_, s) => s % cfg.nHead);
  const headsBuf = createStorage(g.ctx, heads.byteLength, 'mla.heads');
  g.ctx.queue.writeBuffer(headsBuf, 0, heads);
  g.arena.buffers.push(headsBuf);
  b = {
    q: g.arena.alloc('mla.q', U * cfg.nHead * (m.qkNope + m.qkRope) * 4),
    qa: g.arena.alloc('mla.q_a', U * Math.max(1, m.qLoraRank) * 4),
    qaNormed: g.arena.alloc('mla.q_a_normed', U * Math.max(1, m.qLoraRank) * 4),
    kv: g.arena.alloc('mla.kv', U * KR * 4),
    k: g.arena.alloc('mla.k', U * KR * 4),
    o: g.arena.alloc('mla.o', U * cfg.nHead * m.vHead * 4),
    heads: headsBuf,
    xq: g.arena.alloc('mla.xq', U * cfg.nHead * Math.max(m.qkNope, m.kvLoraRank) * 4),
  };
  buffersOf.set(g, b);
  return b;
}

/**
 * y[t, h] = W[h]·x[t, h] for the n·nHead slots (matvec_id with id = h): x of slot s at s·xStride
 * (xStride the head's stride in x), y at s·yStride. Under numerics 'llamacpp' x goes through W's
 * round trip first (into the xq scratch, contiguous rows of W.cols).
 */
async function perHead(g: Graph, mode: Mode, w: GpuMlaLayer['wkB'], x: BufferRef, xStride: number, y: BufferRef, yStride: number): Promise<Launch[]> {
  const b = mlaBuffers(g);
  const nHead = g.cfg.nHead;
  const slots = g.rows(mode) * nHead;
  const out: Launch[] = [];
  const type = g.numerics === 'llamacpp' ? actQuantFor(w.type) : null;
  let xin = x;
  let stride = xStride;
  if (type !== null && w.cols % actQuantBlock(type) === 0) {
    out.push(await g.sized(mode, createActQuant(g.ctx, { type, x, out: b.xq, n: w.cols, rows: slots, xStride }), nHead));
    xin = b.xq;
    stride = w.cols;
  }
  out.push(await g.sized(mode, createMatVecId(g.ctx, { w, x: xin, xStride: stride, y, yStride, ids: b.heads, nSlots: slots }), nHead));
  return out;
}

/** The MLA attention of layer il: x += W_o · MLA(RMSNorm(x) ⊙ attn_norm). */
async function mlaAttention(g: Graph, p: Program, mode: Mode, L: GpuMlaLayer, il: number): Promise<void> {
  const { ctx, cfg, act: a } = g;
  const m = cfg.mla!;
  const b = mlaBuffers(g);
  const N = g.rows(mode);
  const E = cfg.nEmbd;
  const nHead = cfg.nHead;
  const kHead = m.qkNope + m.qkRope;
  const R = m.kvLoraRank;
  const KR = R + m.qkRope;
  const rows = (w: number) => (n: number) => n * w;

  // h = RMSNorm(x) ⊙ attn_norm (+ its round trip for the two products that read it)   h [n, E]
  const first = L.wq ?? L.wqA!;
  const norm = await g.rmsNorm(mode, a.x, L.attnNorm, a.h, [first, L.wkvA]);
  p.run(norm.launch);
  p.tap('attn_norm', a.h, rows(E));

  // q = W_q·h, or W_q_b·(RMSNorm(W_q_a·h) ⊙ q_a_norm)                  q [n, nHead, kHead]
  if (L.wq) {
    p.run(await g.linear(mode, L.wq, a.h, b.q, false, {}, norm.hq));
  } else {
    p.run(await g.linear(mode, L.wqA!, a.h, b.qa, false, {}, norm.hq));
    p.run(await g.sized(mode, createRmsNorm(ctx, { x: b.qa, weight: L.qANorm!, out: b.qaNormed, n: m.qLoraRank, rows: N, eps: cfg.rmsEps })));
    p.run(await g.linear(mode, L.wqB!, b.qaNormed, b.q));
  }
  p.tap('q', b.q, rows(nHead * kHead));

  // kv = W_kv_a·h;  K = [RMSNorm(kv[:, :R]) ⊙ kv_a_norm | RoPE(kv[:, R:])]   kv, K [n, R + qkRope]
  p.run(await g.linear(mode, L.wkvA, a.h, b.kv, false, {}, norm.hq));
  p.run(await g.sized(mode, createRmsNorm(ctx, { x: b.kv, weight: L.kvANorm, out: b.k, n: R, rows: N, eps: cfg.rmsEps, xStride: KR, outStride: KR })));
  const rope = { nRot: m.qkRope, base: cfg.ropeBase, freqScale: cfg.attention.ropeFreqScale, yarn: cfg.attention.yarn, positions: a.pos, nTokens: N };
  p.run(await g.sized(mode, createMlaQRope(ctx, { ...rope, q: b.kv, out: b.k, nHeads: 1, qStride: KR, qHeadStride: 0, qRopeOffset: R, outStride: KR, outHeadStride: 0, outOffset: R })));
  p.tap('Kcur', b.k, rows(KR));

  // cache[pos0 + t] = K[t]; V = K[t, :R]
  const cache = g.kv[g.kvSlot[il]!]!;
  const kvw = await createKvWrite(ctx, { cache, k: b.k, v: b.k, vStride: KR, nTokens: N });
  g.kvWrites[mode].push(kvw);
  p.run(kvw);

  // Q[:, h] = [W_k_b[h]·q[:, h, :qkNope] | RoPE(q[:, h, qkNope:])]     Q [n, nHead, R + qkRope] (act.q)
  p.run(await g.sized(mode, createMlaQRope(ctx, { ...rope, q: b.q, out: a.q, nHeads: nHead, qStride: nHead * kHead, qHeadStride: kHead, qRopeOffset: m.qkNope, outStride: nHead * KR, outHeadStride: KR, outOffset: R })));
  for (const l of await perHead(g, mode, L.wkB, b.q, kHead, a.q, KR)) p.run(l);
  p.tap('Qcur', a.q, rows(nHead * KR));

  // (numerics 'llamacpp', f16 cache: Q rounded to f16, as llama.cpp's F16 K·q)
  let q: BufferRef = a.q;
  const f16 = g.numerics === 'llamacpp' && cache.f16;
  if (f16) {
    const qr = g.roundScratch(nHead * KR);
    p.run(await g.sized(mode, createActQuant(ctx, { type: GGMLType.F16, x: a.q, out: qr, n: nHead * KR, rows: N })));
    q = qr;
  }

  // o_c = softmax(Q·Kᵀ · scale) · V over positions 0 ..= pos0 + t (MQA)    o_c [n, nHead, R] (act.o)
  if (mode === 'prefill') {
    const att = await createAttnPrefill(ctx, { cache, q, out: a.o, nHead, nTokens: N, pos0: 0, qStride: nHead * KR, scale: cfg.attention.scale, llamaSoftmax: f16 });
    g.attnPrefill.push(att);
    p.run(att);
  } else {
    const att = await createAttnDecode(ctx, { cache, q, out: a.o, nHead, nKv: 1, scale: cfg.attention.scale, scratch: a.attnScratch, llamaSoftmax: f16 });
    g.attnDecode.push(att);
    p.run(att);
  }
  p.tap('kqv_out', a.o, rows(nHead * R));

  // o[:, h] = W_v_b[h]·o_c[:, h];  x += W_o·o                             o [n, nHead, vHead]
  for (const l of await perHead(g, mode, L.wvB, a.o, R, b.o, m.vHead)) p.run(l);
  p.tap('attn_v', b.o, rows(nHead * m.vHead));
  p.run(await g.linear(mode, L.wo, b.o, a.x, true));
}

/** One deepseek2 block:  x += MLA(x);  x += FFN(RMSNorm(x) ⊙ ffn_norm). */
export async function mlaBlock(g: Graph, p: Program, mode: Mode, il: number): Promise<void> {
  const L = g.w.mla![il]!;
  await mlaAttention(g, p, mode, L, il);
  await ffnHalf(g, p, mode, L);
}
