// The FFN with a shared expert on the GPU (qwen35moe: shared/docs/qwen35moe.md "MoE with shared
// expert"; qwen2moe: other-moe-archs.md; CPU twin: src/cpu/qwen3moe.ts sharedMoeFfn): the routed experts exactly as qwen3moe (qwen3moe.ts moeFfn,
// ids on the GPU) plus a shared expert whose output is scaled by one sigmoid gate per token:
//   x += Σ_j w_j · down_e(silu(gate_e·h) ⊙ up_e·h)                          (moeFfn)
//   x += down_sh(silu(gate_sh·h) ⊙ up_sh·h · σ(ffn_gate_inp_shexp·h))       (below)
// The gate is folded into the activation (down is linear), so the shared down projection
// accumulates straight into the residual stream: three dispatches (gate|up fused when the two
// weights share a type, the gated SwiGLU with its dot product, down). The routed experts' decode
// fusions (router + norm, routing inside gate|up, round trips inside the expert kernels) are
// moeFfn's; with `norm` (fusesNorm) h comes from the router's dispatch and the shared expert's
// products round it themselves.
import { createSwigluShexp } from '../gpu/gated.js';
import type { GpuSharedExpertWeights } from '../gpu/qwen35-weights.js';
import type { GpuLayerWeights } from '../gpu/weights.js';

/** A layer with routed experts and a shared expert (qwen2moe's transformer block, qwen35moe's hybrid one). */
type SharedExpertLayer = Pick<GpuLayerWeights, 'ffn'> & { shared?: GpuSharedExpertWeights };
import type { Program } from './program.js';
import { moeFfn } from './qwen3moe.js';
import type { FfnBlock, FfnNormInput, Graph, Mode, Rounded } from './transformer.js';

export const sharedMoeFfn: FfnBlock = {
  alloc(g: Graph): void {
    moeFfn.alloc(g);
    const F = g.cfg.nFfShexp;
    const U = g.ubatch;
    g.ffnBufs.set('shexp_gu', g.arena.alloc('ffn_shexp_gate_up', U * 2 * F * 4)); // f32 [ubatch, 2, F]: gate | up
    g.ffnBufs.set('shexp_act', g.arena.alloc('ffn_shexp_act', U * F * 4)); // f32 [ubatch, F]
    g.ffnBufs.set('shexp_gate', g.arena.alloc('shared_expert_gate', U * 4)); // f32 [ubatch]
  },

  inputs(L: SharedExpertLayer) {
    return [...moeFfn.inputs!(L), ...(L.shared?.gateUp.map((pr) => pr.w) ?? [])];
  },

  fusesNorm: moeFfn.fusesNorm,

  async record(g: Graph, p: Program, mode: Mode, L: SharedExpertLayer, hq?: Rounded | null, norm?: FfnNormInput): Promise<void> {
    const s = L.shared;
    if (!s) throw new Error('moe+shared FFN: layer without a shared expert');
    await moeFfn.record(g, p, mode, L, hq, norm); // x += routed experts (with norm: and h = RMSNorm(x) ⊙ ffn_norm)
    if (norm) hq = null; // the norm's round trip of h is not there: the products below round h themselves

    const { ctx, cfg, act: a } = g;
    const E = cfg.nEmbd;
    const F = cfg.nFfShexp;
    const gu = g.buf('shexp_gu');
    const act = g.buf('shexp_act');
    const gate = g.buf('shexp_gate');

    // [g | u] = [W_gate_sh; W_up_sh] · h                            gu [n, 2F]
    for (const pr of s.gateUp) p.run(await g.linear(mode, pr.w, a.h, { buffer: gu, offset: pr.offset }, false, { yStride: 2 * F }, hq));

    // s = σ(w_gate_inp_shexp · h);  act = silu(g) ⊙ u · s          act [n, F], s [n]
    // (deepseek2: no gate, act = silu(g) ⊙ u)
    p.run(await g.sized(mode, createSwigluShexp(ctx, { x: a.h, w: s.gateInp ?? a.unused, ungated: !s.gateInp, gu, act, gate, nEmbd: E, nFf: F, nTokens: g.rows(mode) })));
    p.tap('shared_expert_gate', gate, (n) => n);

    // x += W_down_sh · act                                          x [n, E] (residual fused)
    // (decode: act's round trip in the matvec's prologue when the fused matvec takes it)
    const fused = mode === 'decode' ? await g.fusedMatVec([s.down], [a.x], act, { accumulate: true }) : null;
    p.run(fused ?? (await g.linear(mode, s.down, act, a.x, true)));
  },
};
