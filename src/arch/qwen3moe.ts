// qwen3moe on the GPU: the shared transformer (transformer.ts) with the MoE FFN below
// (shared/docs/qwen3moe.md steps 2.8–2.10; CPU twin: src/cpu/qwen3moe.ts):
//   router logits → softmax → top-k → renormalize   (moe_route.wgsl, ids stay on the GPU)
//   x += Σ_j w_j · W_down[e_j] · (silu(W_gate[e_j]·h) ⊙ W_up[e_j]·h)
// Prefill groups the (token, slot) pairs by expert and runs tiled matmuls per expert
// (moe_group.wgsl + moe_mm.wgsl); decode runs the k experts' matvecs reading the ids from the
// router's output (moe_ffn.wgsl). Only the chosen experts' weights are read.
// Decode, with gate/up co-located (the loader's default), is 3 dispatches:
//   [RMSNorm + router matvec]  matvec_fused with a norm prologue; writes h too
//   [route + gate|up + SwiGLU] every workgroup routes the token itself (topk.wgsl), rounds h to
//                              gate/up's vec_dot type in its prologue (numerics 'llamacpp')
//   [down + Σ w + residual]    the k activation rows rounded to down's vec_dot type in its prologue
import { actQuantFor, type ActQuantType } from '../gpu/actquant.js';
import { createMoeFfnDecode, createMoeFfnPrefill, createMoePrefillScratch, createMoeRoute, type MoeFfnDecodeArgs, type MoePrefillScratch } from '../gpu/moe.js';
import { FusedKernelUnsupported } from '../gpu/ops.js';
import type { GpuLayerWeights } from '../gpu/weights.js';
import { routingTraceHook } from '../trace/gpu.js';
import { createMoeRouteGeneral } from '../gpu/mla.js';
import { expertSlotsOf } from '../gpu/expert-cache.js';
import { recordOffloaded } from './expert-offload.js';
import { createAdd } from '../gpu/elementwise.js';
import type { GpuMoeWeights } from '../gpu/weights.js';
import type { ModelConfig } from '../config.js';

/** gpt-oss's expert biases and swiglu_oai constants (llama.cpp: α 1.702, limit 7) for createMoeFfnDecode. */
function oaiOf(f: GpuMoeWeights): NonNullable<MoeFfnDecodeArgs['oai']> {
  const b = f.expertBias!;
  return { gateBias: b.gate, upBias: b.up, downBias: b.down, alpha: 1.702, limit: 7 };
}

/**
 * The decode expert launch with h's round trip (xRound) inside the fused gate/up dispatch; where
 * that does not fit (FusedKernelUnsupported), h goes through the round trip in a dispatch of its own
 * (recorded into p) and the launch reads the rounded copy.
 */
export async function decodeExperts(g: Graph, p: Program, args: MoeFfnDecodeArgs, xRound: ActQuantType | undefined): Promise<Launch> {
  try {
    return await createMoeFfnDecode(g.ctx, { ...args, xRound });
  } catch (e) {
    if (!(e instanceof FusedKernelUnsupported) || xRound === undefined) throw e;
    const round = await g.roundTrip('decode', xRound, g.act.h, g.cfg.nEmbd);
    p.run(round.launch);
    return createMoeFfnDecode(g.ctx, { ...args, x: round.out });
  }
}

/** The routing trace's shape; its probabilities are the router's sigmoid for sigmoid routers. */
export function traceShape(cfg: ModelConfig) {
  return { nLayer: cfg.nLayer, k: cfg.nExpertUsed, nExpert: cfg.nExpert, gating: cfg.router.gating === 'sigmoid' ? ('sigmoid' as const) : ('softmax' as const) };
}

/** A router moe_route.wgsl does not cover (sigmoid, a selection bias, groups, a scale: DeepSeek): moe_route_general.wgsl. */
export function generalRouter(cfg: ModelConfig): boolean {
  const r = cfg.router;
  return r.gating !== 'softmax' || r.selectionBias || r.groups > 1 || r.scale !== 1;
}
import type { FfnBlock, FfnNormInput, Graph, Mode, Rounded } from './transformer.js';
import type { Program } from './program.js';
import type { Launch } from '../runtime/pipelines.js';

/**
 * moe_ffn's geometry on software adapters: one thread per row (moe_ffn.wgsl ROW_THREADS), 8 rows
 * each. Every workgroup repeats the prologue (routing, norm, round trip), so fewer, fuller
 * workgroups pay (lavapipe, interleaved runs of the 4-layer 30B file: tg8 1.75–2.32 → 2.15–2.49 t/s
 * against 4 rows). bench/kernels.ts measures moe_ffn with it too.
 */
export const MOE_FFN_SOFTWARE = { threadPerRow: { workgroupSize: 32, rowsPerThread: 8 } } as const;

const scratchOf = new WeakMap<Graph, MoePrefillScratch>();

/** The prefill MoE scratch of a sequence (moeFfn.alloc made it; its act also serves decode). */
export function moePrefillScratch(g: Graph): MoePrefillScratch {
  return scratchOf.get(g)!;
}

export const moeFfn: FfnBlock = {
  alloc(g: Graph): void {
    const { nExpert, nExpertUsed: K, nEmbd, nFfExp } = g.cfg;
    const U = g.ubatch;
    g.ffnBufs.set('router', g.arena.alloc('ffn_moe_logits', U * nExpert * 4)); // f32 [ubatch, nExpert]
    g.ffnBufs.set('ids', g.arena.alloc('ffn_moe_topk', U * K * 4)); // u32 [ubatch, k] chosen experts
    g.ffnBufs.set('weights', g.arena.alloc('ffn_moe_weights', U * K * 4)); // f32 [ubatch, k] their weights
    // grouping + activations of the prefill experts, shared by every layer (decode uses act too)
    const s = createMoePrefillScratch(g.ctx, { maxTokens: U, k: K, nEmbd, nFf: nFfExp, nExpert });
    g.arena.buffers.push(s.sorted, s.tiles, s.args, s.act, s.ye);
    scratchOf.set(g, s);
    // numerics 'llamacpp': the SwiGLU activations rounded for the down projection
    if (g.numerics === 'llamacpp') g.ffnBufs.set('act_q', g.arena.alloc('ffn_moe_act_q', U * K * nFfExp * 4)); // f32 [ubatch·k, nFfExp]
  },

  inputs(L: Pick<GpuLayerWeights, 'ffn'>) {
    return L.ffn.kind === 'moe' ? [L.ffn.gateExps, L.ffn.upExps] : [];
  },

  // decode: the router's matvec normalizes x itself (the expert kernels then read its h)
  fusesNorm: (_g: Graph, L: Pick<GpuLayerWeights, 'ffn'>) => L.ffn.kind === 'moe',

  async record(g: Graph, p: Program, mode: Mode, L: GpuLayerWeights, hq?: Rounded | null, norm?: FfnNormInput): Promise<void> {
    if (L.ffn.kind !== 'moe') throw new Error('qwen3moe: layer without MoE weights');
    // experts in host memory, a pool of GPU slots (src/gpu/expert-cache.ts)
    const slots = expertSlotsOf(L.ffn);
    if (slots) return recordOffloaded(g, p, mode, L, slots, hq ?? null, norm);
    if (mode === 'decode') return recordDecode(g, p, L, hq ?? null, norm);
    const f = L.ffn;
    const { ctx, cfg, act: a } = g;
    const { nExpert, nExpertUsed: K } = cfg;
    const N = g.rows(mode);
    const router = g.buf('router');
    const ids = g.buf('ids');
    const weights = g.buf('weights');
    const scratch = scratchOf.get(g)!;

    // z = W_gate_inp · h (+ b_gate_inp: gpt-oss)               z [n, nExpert] (f32)
    p.run(await g.linear(mode, f.router, a.h, router));
    if (f.routerBias) p.run(await g.sized(mode, createAdd(ctx, { b: f.routerBias, out: router, n: N * nExpert, bWidth: nExpert }), nExpert));
    p.tap('ffn_moe_logits', router, (n) => n * nExpert);

    // ids, w = top-k(softmax(z)) renormalized                  ids u32 [n, k], w f32 [n, k]
    // (DeepSeek: sigmoid | softmax, + exp_probs_b for the selection, group-limited, renormalized, scaled)
    const route = generalRouter(cfg)
      ? createMoeRouteGeneral(ctx, { logits: router, ids, weights, selectionBias: f.selectionBias ?? null, router: cfg.router, nExpert, k: K, nTokens: N })
      : createMoeRoute(ctx, { logits: router, ids, weights, nExpert, k: K, normalize: cfg.normTopKProb, nTokens: N });
    p.run(await g.sized(mode, route));
    p.tap('ffn_moe_topk', ids, (n) => n * K, { type: 'u32' });
    p.tap('ffn_moe_weights_norm', weights, (n) => n * K);
    // routing trace (src/trace/gpu.ts): encodes nothing unless an eval call asked for a trace
    p.run(routingTraceHook(g, ctx, traceShape(cfg), p.layer, { logits: router, ids, weights }));

    // x += Σ_j w[t,j] · down_e(silu(gate_e·h) ⊙ up_e·h),  e = ids[t,j]
    // (numerics 'llamacpp': h through gate's round trip — hq, from the norm, when it is that one —
    // the activations through down's)
    let x = a.h;
    let actQuant: { type: NonNullable<ReturnType<typeof actQuantFor>>; out: GPUBuffer } | undefined;
    if (g.numerics === 'llamacpp') {
      const tIn = actQuantFor(f.gateExps.type);
      if (tIn !== null && tIn === actQuantFor(f.upExps.type) && hq?.type === tIn) {
        x = hq.out;
      } else if (tIn !== null && tIn === actQuantFor(f.upExps.type)) {
        const round = await g.roundTrip(mode, tIn, a.h, cfg.nEmbd);
        p.run(await g.sized(mode, Promise.resolve(round.launch)));
        x = round.out;
      }
      const tAct = actQuantFor(f.downExps.type);
      if (tAct !== null) actQuant = { type: tAct, out: g.buf('act_q') };
    }
    const experts = { gate: f.gateExps, up: f.upExps, down: f.downExps, x, out: a.x, ids, weights, k: K, actQuant };
    if (f.expertBias) {
      // gpt-oss: biased experts with the clamped SwiGLU, through the per-slot expert kernels for the
      // whole batch (moe_ffn.wgsl + moe_bias.wgsl; the grouped matmuls have no biases yet)
      p.run(await g.sized(mode, createMoeFfnDecode(ctx, { ...experts, nTokens: N, maxTokens: N, act: scratch.act, oai: oaiOf(f) })));
      return;
    }
    p.run(await g.sized(mode, createMoeFfnPrefill(ctx, { ...experts, nTokens: N, maxTokens: N, scratch })));
  },
};

/**
 * The decode MoE FFN of one token. With `norm`: h = RMSNorm(x) ⊙ ffn_norm inside the router's
 * matvec (which writes h). The routing runs inside the expert launch (createMoeFfnDecode `route`:
 * in the fused gate/up dispatch when gate and up are co-located, else a moe_route dispatch), and
 * under numerics 'llamacpp' the round trips of h and of the activations inside the expert kernels
 * where they fit (else act_quant dispatches, as before).
 */
async function recordDecode(g: Graph, p: Program, L: GpuLayerWeights, hq: Rounded | null, norm?: FfnNormInput): Promise<void> {
  if (L.ffn.kind !== 'moe') throw new Error('qwen3moe: layer without MoE weights');
  const f = L.ffn;
  const { ctx, cfg, act: a } = g;
  const { nExpert, nExpertUsed: K, nEmbd: E } = cfg;
  const router = g.buf('router');
  const ids = g.buf('ids');
  const weights = g.buf('weights');

  // h = RMSNorm(x) ⊙ ffn_norm, z = W_gate_inp · h                h [1, nEmbd], z [1, nExpert] (f32)
  if (norm) {
    const fused = await g.normMatVecs(norm.x, norm.weight, a.h, [f.router], [router]);
    if (fused) {
      for (const l of fused) p.run(l);
    } else {
      const n = await g.rmsNorm('decode', norm.x, norm.weight, a.h, moeFfn.inputs!(L));
      p.run(n.launch);
      hq = n.hq;
    }
    p.tap('ffn_norm', a.h, (n) => n * E);
  }
  if (!norm) p.run(await g.linear('decode', f.router, a.h, router));
  // (gpt-oss) z += b_gate_inp
  if (f.routerBias) p.run(await createAdd(ctx, { b: f.routerBias, out: router, n: nExpert }));
  p.tap('ffn_moe_logits', router, (n) => n * nExpert);

  // ids, w = top-k(softmax(z)) renormalized;  x += Σ_j w_j · down_e(silu(gate_e·h) ⊙ up_e·h),  e = ids_j
  // (numerics 'llamacpp': h through gate/up's round trip — hq when the norm wrote it, else in the
  // gate/up dispatch — and the activations through down's)
  let x: GPUBuffer = a.h;
  let xRound: ActQuantType | undefined;
  let actQuant: MoeFfnDecodeArgs['actQuant'];
  if (g.numerics === 'llamacpp') {
    const tIn = actQuantFor(f.gateExps.type);
    if (tIn !== null && tIn === actQuantFor(f.upExps.type)) {
      if (hq?.type === tIn) x = hq.out;
      else xRound = tIn;
    }
    const tAct = actQuantFor(f.downExps.type);
    if (tAct !== null) actQuant = { type: tAct, out: g.buf('act_q') };
  }
  // DeepSeek's router in a dispatch of its own (the expert kernels then read its ids)
  const general = generalRouter(cfg);
  if (general) p.run(await createMoeRouteGeneral(ctx, { logits: router, ids, weights, selectionBias: f.selectionBias ?? null, router: cfg.router, nExpert, k: K }));
  const args: MoeFfnDecodeArgs = {
    gate: f.gateExps, up: f.upExps, down: f.downExps, x, out: a.x, ids, weights, k: K, actQuant,
    route: general ? undefined : { logits: router, nExpert, normalize: cfg.normTopKProb },
    nTokens: 1, act: scratchOf.get(g)!.act,
    software: MOE_FFN_SOFTWARE,
    ...(f.expertBias ? { oai: oaiOf(f) } : {}),
  };
  p.run(await decodeExperts(g, p, args, xRound));
  p.tap('ffn_moe_topk', ids, (n) => n * K, { type: 'u32' });
  p.tap('ffn_moe_weights_norm', weights, (n) => n * K);
  // routing trace (src/trace/gpu.ts): encodes nothing unless an eval call asked for a trace
  p.run(routingTraceHook(g, ctx, traceShape(cfg), p.layer, { logits: router, ids, weights }));
}
