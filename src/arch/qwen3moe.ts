// qwen3moe on the GPU: the shared transformer (transformer.ts) with the MoE FFN below
// (shared/docs/qwen3moe.md steps 2.8–2.10; CPU twin: src/cpu/qwen3moe.ts):
//   router logits → softmax → top-k → renormalize   (moe_route.wgsl, ids stay on the GPU)
//   x += Σ_j w_j · W_down[e_j] · (silu(W_gate[e_j]·h) ⊙ W_up[e_j]·h)
// Prefill groups the (token, slot) pairs by expert and runs tiled matmuls per expert
// (moe_group.wgsl + moe_mm.wgsl); decode runs the k experts' matvecs reading the ids from the
// router's output (moe_ffn.wgsl). Only the chosen experts' weights are read.
import { actQuantFor } from '../gpu/actquant.js';
import { createMoeFfnDecode, createMoeFfnPrefill, createMoePrefillScratch, createMoeRoute, type MoePrefillScratch } from '../gpu/moe.js';
import type { GpuLayerWeights } from '../gpu/weights.js';
import { routingTraceHook } from '../trace/gpu.js';
import type { FfnBlock, Graph, Mode, Rounded } from './transformer.js';
import type { Program } from './program.js';

const scratchOf = new WeakMap<Graph, MoePrefillScratch>();

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

  async record(g: Graph, p: Program, mode: Mode, L: GpuLayerWeights, hq?: Rounded | null): Promise<void> {
    if (L.ffn.kind !== 'moe') throw new Error('qwen3moe: layer without MoE weights');
    const f = L.ffn;
    const { ctx, cfg, act: a } = g;
    const { nExpert, nExpertUsed: K } = cfg;
    const N = g.rows(mode);
    const router = g.buf('router');
    const ids = g.buf('ids');
    const weights = g.buf('weights');
    const scratch = scratchOf.get(g)!;

    // z = W_gate_inp · h                                      z [n, nExpert] (f32)
    p.run(await g.linear(mode, f.router, a.h, router));
    p.tap('ffn_moe_logits', router, (n) => n * nExpert);

    // ids, w = top-k(softmax(z)) renormalized                  ids u32 [n, k], w f32 [n, k]
    p.run(await g.sized(mode, createMoeRoute(ctx, { logits: router, ids, weights, nExpert, k: K, normalize: cfg.normTopKProb, nTokens: N })));
    p.tap('ffn_moe_topk', ids, (n) => n * K, { type: 'u32' });
    p.tap('ffn_moe_weights_norm', weights, (n) => n * K);
    // routing trace (src/trace/gpu.ts): encodes nothing unless an eval call asked for a trace
    p.run(routingTraceHook(g, ctx, { nLayer: cfg.nLayer, k: K, nExpert }, p.layer, { logits: router, ids, weights }));

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
    if (mode === 'prefill') {
      p.run(await g.sized(mode, createMoeFfnPrefill(ctx, { ...experts, nTokens: N, maxTokens: N, scratch })));
    } else {
      p.run(await createMoeFfnDecode(ctx, { ...experts, nTokens: 1, act: scratch.act }));
    }
  },
};
