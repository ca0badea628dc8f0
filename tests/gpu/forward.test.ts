// The GPU forward pass (src/arch/) against the CPU reference (src/cpu/forward.ts), intermediate by
// intermediate, on every fixture of the transformer family (qwen3moe, qwen3, llama, Mixtral, olmoe, qwen2moe, deepseek2): a 7-token prompt (prefill path: matmuls, tiled
// attention, grouped expert matmuls) and then 3 decode steps (matvecs, flash-decoding, expert
// matvecs). Tolerances per shared/docs/matching-llamacpp.md: normalized MSE ≤ 5e-4 for every
// product-derived tensor, expert ids identical for ≥ 99% of (token, layer) pairs.
import { afterAll, describe, it } from 'vitest';
import { FIXTURES, fixtureSpec } from '../fixtures/make.js';
import { compareForward, openOnBoth } from './compare-forward.js';
import { openTestGPU } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** the architectures the GPU forward pass runs */
const GPU_FIXTURES = FIXTURES.filter((f) => !['qwen35moe', 'qwen35'].includes(fixtureSpec(f).arch));

/** tensors compared by normalized MSE (names as src/cpu/forward.ts) */
const COMMON = ['inp_embd', 'attn_norm', 'kqv_out', 'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_out', 'l_out', 'result_norm', 'result_output'];
const COMMON_ATTENTION = ['Vcur', 'Qcur_rope', 'Kcur_rope'];
/** deepseek2's latent attention (src/cpu/mla.ts names) */
const MLA = ['q', 'Kcur', 'Qcur', 'attn_v'];
const MOE = ['ffn_moe_logits', 'ffn_moe_weights_norm'];
const DENSE = ['ffn_gate', 'ffn_up', 'ffn_swiglu'];
/** olmoe's full-width Q/K norm (a dispatch of its own on the GPU) */
const FULL_QK_NORM = ['Qcur_normed', 'Kcur_normed'];

describe.skipIf(!ctx)('GPU forward pass vs the CPU reference, per intermediate', () => {
  for (const name of GPU_FIXTURES) {
    it(`${name}: prefill of 7 tokens, then 3 decode steps`, async () => {
      const { cfg, cpu, gpu } = await openOnBoth(ctx!, name);
      try {
        const moe = cfg.ffnKind !== 'dense';
        const attention = cfg.mla ? MLA : [...COMMON_ATTENTION, ...(cfg.attention.qkNorm === 'full' ? FULL_QK_NORM : [])];
        const names = [...COMMON, ...attention, ...(moe ? MOE : DENSE)];
        const { worst, idRows, idSame } = await compareForward(cfg, cpu, gpu, names, { moe });
        console.log(`${name}: worst normalized MSE ${worst.nmse.toExponential(2)} (${worst.at})` +
          (idRows ? `; expert ids identical ${idSame}/${idRows}` : ''));
      } finally {
        await gpu.dispose();
        await cpu.dispose();
      }
    });
  }
});
