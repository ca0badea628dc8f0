// The Qwen3.5 / 3.6 hybrids on the GPU: qwen35moe (Qwen3.6-35B-A3B) and qwen35 (dense)
// (shared/docs/qwen35moe.md; CPU twin: src/cpu/qwen35.ts + src/cpu/deltanet.ts, same tap names).
// Every layer is
//
//   h = x + Mixer(RMSNorm(x) ⊙ attn_norm)           Mixer = Gated DeltaNet (below) on recurrent
//                                                     layers, gated attention (transformer.ts
//                                                     attentionBlock with `gated`) on the others
//   x = h + FFN(RMSNorm(h) ⊙ post_attention_norm)    FFN = routed experts + sigmoid-gated shared
//                                                     expert (qwen35moe.ts), dense SwiGLU (qwen3.ts)
//
// recorded by transformer.ts recordBody with qwen35Block; the embedding and the head are shared.
// MTP blocks are not part of the trunk and are never read.
//
// Sequence state on the GPU: the KV cache of the attention layers (Graph.kv, Graph.kvSlot) and,
// per DeltaNet layer, one state buffer [conv (K−1)·C | delta H_v·d·d] (f32) that the kernels of
// src/gpu/deltanet.ts update in place. A recurrent state cannot be rewound: RecurrentState keeps
// copies (copyBufferToBuffer) taken at the end of the last MAX_SNAPSHOTS multi-token evaluations,
// exactly as the CPU backend does (src/cpu/qwen35.ts); GpuForward.rewind restores one (or zeroes
// the state) and re-evaluates the tokens from there.
import { isQwen35, type ModelConfig, type Qwen35Config } from '../config.js';
import { createGatedDeltaNet, createSsmConv } from '../gpu/deltanet.js';
import { createGatedRmsNorm } from '../gpu/gated.js';
import { deltaNetProjWidth, type GpuDeltaNetWeights, type GpuQwen35Layer } from '../gpu/qwen35-weights.js';
import type { GPUContext } from '../runtime/device.js';
import type { Program } from './program.js';
import { attentionBlock, type Arena, type Graph, type Mode } from './transformer.js';

type Qwen35ModelConfig = ModelConfig & { qwen35: Qwen35Config };

/** Recurrent-state copies kept for rewinding (as the CPU backend's MAX_SNAPSHOTS). */
export const MAX_SNAPSHOTS = 2;

/**
 * The DeltaNet layers' states of one sequence, on the GPU, with the copies that let `truncate`
 * come back to a recent position. Buffers are f32 [conv (K−1)·C | delta H_v·d·d], one per DeltaNet
 * layer; all GPU work (copies, clears) is encoded and submitted in queue order with the passes.
 */
export class RecurrentState {
  /** per DeltaNet layer, in layer order */
  readonly layers: GPUBuffer[] = [];
  /** the conv state's length in floats: the delta state starts there */
  readonly convFloats: number;
  readonly floats: number;
  private readonly snaps: { pos: number; bufs: GPUBuffer[] }[] = [];
  private readonly spare: GPUBuffer[][] = [];

  constructor(private readonly ctx: GPUContext, private readonly arena: Arena, h: Qwen35Config, count: number) {
    this.convFloats = (h.convKernel - 1) * h.convChannels;
    this.floats = this.convFloats + h.nVHeads * h.stateSize * h.stateSize;
    for (let i = 0; i < count; i++) this.layers.push(arena.alloc(`recurrent.${i}`, this.floats * 4)); // zeroed at creation
  }

  /** Positions where a copy is kept (besides 0, the zero state). */
  get positions(): number[] {
    return this.snaps.map((s) => s.pos);
  }

  /** Copies the states as they are once the submitted work is done: position `pos` can be restored. */
  snapshot(pos: number): void {
    if (this.layers.length === 0) return;
    const bufs = this.snaps.length >= MAX_SNAPSHOTS ? this.snaps.shift()!.bufs : (this.spare.pop() ?? this.layers.map((_, i) => this.arena.alloc(`recurrent.${i}.snapshot`, this.floats * 4)));
    const enc = this.ctx.device.createCommandEncoder({ label: 'recurrent snapshot' });
    this.layers.forEach((b, i) => enc.copyBufferToBuffer(b, 0, bufs[i]!, 0, this.floats * 4));
    this.ctx.submit([enc.finish()]);
    this.snaps.push({ pos, bufs });
  }

  /**
   * Restores the latest copy at or before nPast (later copies describe forgotten tokens and are
   * dropped), or zeroes the states when there is none. Returns the position restored.
   */
  restore(nPast: number): number {
    while (this.snaps.length && this.snaps[this.snaps.length - 1]!.pos > nPast) this.spare.push(this.snaps.pop()!.bufs);
    const snap = this.snaps[this.snaps.length - 1];
    if (this.layers.length === 0) return nPast; // no recurrent layer: nothing to restore
    const enc = this.ctx.device.createCommandEncoder({ label: 'recurrent restore' });
    this.layers.forEach((b, i) => (snap ? enc.copyBufferToBuffer(snap.bufs[i]!, 0, b, 0, this.floats * 4) : enc.clearBuffer(b)));
    this.ctx.submit([enc.finish()]);
    return snap ? snap.pos : 0;
  }
}

/** The hybrid's per-sequence buffers (besides Graph's), shared by both shape classes. */
interface HybridBuffers {
  /** f32 [ubatch, P]: the fused DeltaNet projection [qkv C | z V | β H_v | α H_v] */
  proj: GPUBuffer;
  /** f32 [ubatch, C]: conv output after SiLU */
  conv: GPUBuffer;
  /** f32 [ubatch, V]: the delta rule's output */
  core: GPUBuffer;
  /** f32 [ubatch, V]: after the gated norm */
  y: GPUBuffer;
  state: RecurrentState;
  /** per layer: its index in state.layers (−1: attention) */
  slot: number[];
}

const hybridOf = new WeakMap<Graph, HybridBuffers>();

function hybridBuffers(g: Graph): HybridBuffers {
  let b = hybridOf.get(g);
  if (b) return b;
  const h = (g.cfg as Qwen35ModelConfig).qwen35;
  const U = g.ubatch;
  let n = 0;
  const slot = h.recurrent.map((r) => (r ? n++ : -1));
  b = {
    proj: g.arena.alloc('deltanet.proj', U * deltaNetProjWidth(h) * 4),
    conv: g.arena.alloc('conv_output_silu', U * h.convChannels * 4),
    core: g.arena.alloc('deltanet.core', U * h.innerSize * 4),
    y: g.arena.alloc('deltanet.y', U * h.innerSize * 4),
    state: new RecurrentState(g.ctx, g.arena, h, n),
    slot,
  };
  hybridOf.set(g, b);
  return b;
}

/** The recurrent state of a hybrid's sequence (undefined for other architectures). */
export function recurrentStateOf(g: Graph): RecurrentState | undefined {
  return isQwen35(g.cfg) ? hybridBuffers(g).state : undefined;
}

const rowsOf = (width: number) => (n: number) => n * width;

/**
 * One hybrid block (transformer.ts LayerBlock):
 *   x += Mixer(RMSNorm(x) ⊙ attn_norm);  x += FFN(RMSNorm(x) ⊙ post_attention_norm)
 */
export async function qwen35Block(g: Graph, p: Program, mode: Mode, il: number): Promise<void> {
  const { act: a } = g;
  const E = g.cfg.nEmbd;
  const L = g.w.hybrid![il]!;
  if (L.mixer.kind === 'attention') {
    await attentionBlock(g, p, mode, { attnNorm: L.attnNorm, ...L.mixer }, il, { gated: true }); // x += Wo · (attention ⊙ σ(gate))
  } else {
    await deltaNetBlock(g, p, mode, L, L.mixer, il); // x += W_out · GatedDeltaNet
  }
  p.tap('attn_residual', a.x, rowsOf(E));

  // h = RMSNorm(x) ⊙ post_attention_norm  (+ hq, h through the FFN input's round trip)   h, hq [n, E]
  const norm = await g.rmsNorm(mode, a.x, L.postAttnNorm, a.h, g.ffn.inputs?.(L) ?? []);
  p.run(norm.launch);
  p.tap('attn_post_norm', a.h, rowsOf(E));

  await g.ffn.record(g, p, mode, L, norm.hq); // x += FFN(h)
  p.tap('l_out', a.x, rowsOf(E));
}

/**
 * Gated DeltaNet of layer il (shared/docs/qwen35moe.md "Gated DeltaNet"; src/cpu/deltanet.ts):
 *   h = RMSNorm(x) ⊙ attn_norm
 *   [mix | z | b | a] = W·h;  c = silu(conv(state ++ mix));  o = delta rule(c, b, a; S)
 *   x += W_out · (RMSNorm(o_h) ⊙ ssm_norm ⊙ silu(z_h))
 */
async function deltaNetBlock(g: Graph, p: Program, mode: Mode, L: GpuQwen35Layer, m: GpuDeltaNetWeights, il: number): Promise<void> {
  const { ctx, cfg, act: a } = g;
  const h = (cfg as Qwen35ModelConfig).qwen35;
  const hb = hybridBuffers(g);
  const E = cfg.nEmbd;
  const N = g.rows(mode);
  const C = h.convChannels;
  const V = h.innerSize;
  const Hv = h.nVHeads;
  const P = deltaNetProjWidth(h);
  const state = hb.state.layers[hb.slot[il]!]!;

  // h = RMSNorm(x) ⊙ attn_norm  (+ hq, h through the projections' round trip)   h, hq [n, E]
  const norm = await g.rmsNorm(mode, a.x, L.attnNorm, a.h, m.proj.map((pr) => pr.w));
  p.run(norm.launch);
  p.tap('attn_norm', a.h, rowsOf(E));

  // [mix | z | b | a] = [W_qkv; W_z; W_β; W_α] · h               proj [n, P] = [n, C + V + 2·H_v]
  for (const pr of m.proj) p.run(await g.linear(mode, pr.w, a.h, { buffer: hb.proj, offset: pr.offset }, false, { yStride: P }, norm.hq));
  p.tap('linear_attn_qkv_mixed', hb.proj, rowsOf(C), { row: { width: C, stride: P } });
  p.tap('z', hb.proj, rowsOf(V), { firstElem: () => C, row: { width: V, stride: P } });

  // c = silu(causal depthwise conv over (conv state ++ mix)); the state keeps the last K−1 mix rows   c [n, C]
  p.run(await g.sized(mode, createSsmConv(ctx, {
    x: hb.proj, xStride: P, w: m.conv, state: { buffer: state, offset: 0 }, out: hb.conv, channels: C, kernel: h.convKernel, nTokens: N,
  })));
  p.tap('conv_output_silu', hb.conv, rowsOf(C));

  // per token, V head hv with q/k head hv mod H_k: q, k L2-normed; β = σ(b); g = softplus(a + dt_bias)·ssm_a;
  // S ← e^g·S;  S ← S + k·(β(v − Sᵀk))ᵀ;  o = Sᵀq / √d               o [n, H_v·d], S [H_v, d, d] resident
  p.run(await g.sized(mode, createGatedDeltaNet(ctx, {
    qkv: hb.conv, beta: { buffer: hb.proj, offset: C + V }, alpha: { buffer: hb.proj, offset: C + V + Hv }, betaStride: P, alphaStride: P,
    dtBias: m.dtBias, a: m.a, state: { buffer: state, offset: hb.state.convFloats }, out: hb.core,
    nKHeads: h.nKHeads, nVHeads: Hv, headDim: h.stateSize, eps: cfg.rmsEps, nTokens: N,
  })));
  p.tap('attn_output', hb.core, rowsOf(V));

  // y_h = RMSNorm(o_h) ⊙ ssm_norm ⊙ silu(z_h)                     y [n, H_v·d]
  p.run(await g.sized(mode, createGatedRmsNorm(ctx, {
    x: hb.core, z: { buffer: hb.proj, offset: C }, zStride: P, weight: m.norm, out: hb.y, nHeads: Hv, headDim: h.stateSize, eps: cfg.rmsEps, nTokens: N,
  })));
  p.tap('final_output', hb.y, rowsOf(V));

  // x += W_out · y                                                x [n, E] (residual fused)
  p.run(await g.linear(mode, m.wOut, hb.y, a.x, true));
}
