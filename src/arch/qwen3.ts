// qwen3 (dense) on the GPU: the shared transformer (transformer.ts) with a SwiGLU FFN
// (CPU twin: src/cpu/qwen3.ts):
//   g = W_gate·h;  u = W_up·h;  g = silu(g) ⊙ u;  x += W_down·g
import type { GpuLayerWeights } from '../gpu/weights.js';
import { createSwiglu } from '../gpu/ops.js';
import type { FfnBlock, Graph, Mode, Rounded } from './transformer.js';
import type { Program } from './program.js';

export const denseFfn: FfnBlock = {
  alloc(g: Graph): void {
    const U = g.ubatch;
    g.ffnBufs.set('gate', g.arena.alloc('ffn_gate', U * g.cfg.nFf * 4)); // f32 [ubatch, nFf]
    g.ffnBufs.set('up', g.arena.alloc('ffn_up', U * g.cfg.nFf * 4)); // f32 [ubatch, nFf]
  },

  inputs(L: Pick<GpuLayerWeights, 'ffn'>) {
    return L.ffn.kind === 'dense' ? [L.ffn.gate, L.ffn.up] : [];
  },

  async record(g: Graph, p: Program, mode: Mode, L: GpuLayerWeights, hq?: Rounded | null): Promise<void> {
    if (L.ffn.kind !== 'dense') throw new Error('qwen3: layer without dense FFN weights');
    const f = L.ffn;
    const F = g.cfg.nFf;
    const gate = g.buf('gate');
    const up = g.buf('up');

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
