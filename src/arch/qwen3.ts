// qwen3 (dense) on the GPU: the shared transformer (transformer.ts) with a SwiGLU FFN
// (CPU twin: src/cpu/qwen3.ts):
//   g = W_gate·h;  u = W_up·h;  g = silu(g) ⊙ u;  x += W_down·g
// Decode fuses it into 2–3 dispatches (createMatVecFused): RMSNorm + gate|up (one dispatch when the
// loader co-located them, else two), then down with silu(g) ⊙ u and its round trip computed in the
// matvec's prologue — no norm, swiglu or act_quant dispatch. Prefill (and any weight the fused
// kernel cannot take) records the plain chain.
import type { GpuLayerWeights } from '../gpu/weights.js';
import { createSwiglu } from '../gpu/ops.js';
import type { FfnBlock, FfnNormInput, Graph, Mode, Rounded } from './transformer.js';
import type { Program } from './program.js';

export const denseFfn: FfnBlock = {
  alloc(g: Graph): void {
    const U = g.ubatch;
    g.ffnBufs.set('gate', g.arena.alloc('ffn_gate', U * g.cfg.nFf * 4)); // f32 [ubatch, nFf]
    g.ffnBufs.set('up', g.arena.alloc('ffn_up', U * g.cfg.nFf * 4)); // f32 [ubatch, nFf]
    // debug: silu(g) ⊙ u of the fused decode (the down projection writes it for the tap)
    if (g.debug) g.ffnBufs.set('swiglu', g.arena.alloc('ffn_swiglu', g.cfg.nFf * 4)); // f32 [nFf]
  },

  inputs(L: Pick<GpuLayerWeights, 'ffn'>) {
    return L.ffn.kind === 'dense' ? [L.ffn.gate, L.ffn.up] : [];
  },

  fusesNorm: (_g: Graph, L: Pick<GpuLayerWeights, 'ffn'>) => L.ffn.kind === 'dense',

  async record(g: Graph, p: Program, mode: Mode, L: GpuLayerWeights, hq?: Rounded | null, norm?: FfnNormInput): Promise<void> {
    if (L.ffn.kind !== 'dense') throw new Error('qwen3: layer without dense FFN weights');
    const f = L.ffn;
    const F = g.cfg.nFf;
    const E = g.cfg.nEmbd;
    const gate = g.buf('gate');
    const up = g.buf('up');

    if (norm) {
      // decode, fused: h = RMSNorm(x) ⊙ ffn_norm inside gate|up; silu(g) ⊙ u and its round trip inside down
      const gateUp = await g.normMatVecs(norm.x, norm.weight, g.act.h, [f.gate, f.up], [gate, up]);
      const swiglu = g.debug ? g.buf('swiglu') : undefined;
      const down = gateUp ? await g.fusedMatVec([f.down], [g.act.x], gate, { swiglu: { up }, accumulate: true, out: swiglu }) : null;
      if (gateUp && down) {
        for (const l of gateUp) p.run(l);
        p.tap('ffn_norm', g.act.h, (n) => n * E);
        p.tap('ffn_gate', gate, (n) => n * F);
        p.tap('ffn_up', up, (n) => n * F);
        p.run(down);
        if (swiglu) p.tap('ffn_swiglu', swiglu, (n) => n * F);
        return;
      }
      for (const l of gateUp ?? []) l.dispose();
      down?.dispose();
      // the unfused chain, with the norm this block was asked to do
      const n = await g.rmsNorm(mode, norm.x, norm.weight, g.act.h, [f.gate, f.up]);
      p.run(n.launch);
      p.tap('ffn_norm', g.act.h, (r) => r * E);
      hq = n.hq;
    }

    // g = W_gate·h, u = W_up·h                                g, u [n, nFf]
    p.run(await g.linear(mode, f.gate, g.act.h, gate, false, {}, hq));
    p.run(await g.linear(mode, f.up, g.act.h, up, false, {}, hq));
    p.tap('ffn_gate', gate, (n) => n * F);
    p.tap('ffn_up', up, (n) => n * F);

    // g = silu(g) ⊙ u                                         (in place)
    p.run(await g.sized(mode, createSwiglu(g.ctx, { b: up, out: gate, n: g.rows(mode) * F }), F));
    p.tap('ffn_swiglu', gate, (n) => n * F);

    // x += W_down·g                                           x [n, nEmbd] (residual fused)
    p.run(await g.linear(mode, f.down, gate, g.act.x, true));
  },
};
