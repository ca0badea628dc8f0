// The GPU forward pass of the Qwen3.5 hybrids (src/arch/qwen35.ts, qwen35moe.ts) against the CPU
// reference (src/cpu/qwen35.ts, 'exact' numerics), intermediate by intermediate, on every qwen35moe /
// qwen35 fixture: a 7-token prompt (prefill: matmuls, tiled attention, grouped expert matmuls,
// the DeltaNet kernels looping over the tokens) and 3 decode steps (matvecs, flash-decoding, expert
// matvecs, the recurrent state resident on the GPU). Normalized MSE ≤ 5e-4 for every tensor, expert
// ids identical for ≥ 99% of (token, layer) pairs. Then, on one fixture: token-by-token decoding
// equals the prefill, and truncate / reset (recurrent-state snapshots) give the logits of a fresh
// sequence.
import { afterAll, describe, expect, it } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { Qwen35CpuBackend } from '../../src/cpu/qwen35.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { FIXTURES, fixturePath, fixtureSpec, type FixtureName } from '../fixtures/make.js';
import { nmse, openTestGPU } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

const HYBRID_FIXTURES = FIXTURES.filter((f) => ['qwen35moe', 'qwen35'].includes(fixtureSpec(f).arch));

/** tensors compared by normalized MSE (names as src/cpu/qwen35.ts / deltanet.ts) */
const COMMON = ['inp_embd', 'attn_norm', 'attn_residual', 'attn_post_norm', 'ffn_out', 'l_out', 'result_norm', 'result_output'];
const ATTENTION = ['Vcur', 'Qcur_rope', 'attn_pregate', 'attn_gated', 'attn_out'];
const DELTANET = ['linear_attn_qkv_mixed', 'z', 'conv_output_silu', 'attn_output', 'final_output'];
const MOE = ['ffn_moe_logits', 'ffn_moe_weights_norm', 'shared_expert_gate'];
const DENSE = ['ffn_gate', 'ffn_up', 'ffn_swiglu'];
const MAX_NMSE = 5e-4;

type Tensors = Map<string, Float32Array | Int32Array>;
const key = (name: string, layer: number) => `${name}@${layer}`;

async function open(name: FixtureName): Promise<{ cfg: ModelConfig; cpu: Qwen35CpuBackend; gpu: WebGPUBackend }> {
  const file = await openGGUF(await fixturePath(name));
  try {
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    // the GPU multiplies in f32, like the CPU reference's 'exact' numerics
    const cpu = await Qwen35CpuBackend.load(file, cfg, { numerics: 'exact' });
    const gpu = await WebGPUBackend.load(file, cfg, { context: ctx! });
    return { cfg, cpu, gpu };
  } finally {
    await file.close();
  }
}

describe.skipIf(!ctx)('Qwen3.5 hybrids: GPU forward pass vs the CPU reference, per intermediate', () => {
  for (const name of HYBRID_FIXTURES) {
    it(`${name}: prefill of 7 tokens, then 3 decode steps`, async () => {
      const { cfg, cpu, gpu } = await open(name);
      try {
        let cpuT: Tensors = new Map();
        let gpuT: Tensors = new Map();
        const cs = cpu.createSequence(32, { onTensor: (n, l, d) => void cpuT.set(key(n, l), d) });
        const gs = gpu.createSequence(32, { onTensor: (n, l, d) => void gpuT.set(key(n, l), d) });
        const V = cfg.nVocab;
        const prompt = [3, 17, V - 1, 42, 5, 99 % V, 7];
        const steps = [[11], [V - 2], [0]];
        const names = [...COMMON, ...ATTENTION, ...DELTANET, ...(cfg.arch === 'qwen35moe' ? MOE : DENSE)];
        const recurrent = cfg.qwen35!.recurrent;
        let worst = { nmse: 0, at: '' };
        let compared = 0;
        let idRows = 0;
        let idSame = 0;
        for (const [phase, tokens] of [['prefill', prompt], ...steps.map((s, i) => [`decode ${i}`, s] as const)] as const) {
          cpuT = new Map();
          gpuT = new Map();
          const cl = await cs.eval([...tokens]);
          const gl = await gs.eval([...tokens]);
          expect(nmse(gl, cl), `${phase}: logits`).toBeLessThanOrEqual(MAX_NMSE);
          for (const n of names) {
            for (let il = -1; il < cfg.nLayer; il++) {
              // the GPU derives the mixer's output as a residual difference, named attn_out on every layer
              const c = cpuT.get(key(n === 'attn_out' && il >= 0 && recurrent[il] ? 'linear_attn_out' : n, il));
              if (!c) continue;
              const g = gpuT.get(key(n, il));
              expect(g, `${phase}: the GPU pass emits ${n} of layer ${il}`).toBeDefined();
              expect(g!.length, `${phase}: ${n}@${il} length`).toBe(c.length);
              const e = nmse(g!, c);
              compared++;
              if (!(e <= worst.nmse)) worst = { nmse: e, at: `${phase} ${n}@${il}` };
              expect(e, `${phase}: ${n} of layer ${il}: normalized MSE`).toBeLessThanOrEqual(MAX_NMSE);
            }
          }
          if (cfg.arch === 'qwen35moe') {
            const K = cfg.nExpertUsed;
            for (let il = 0; il < cfg.nLayer; il++) {
              const c = cpuT.get(key('ffn_moe_topk', il)) as Int32Array;
              const g = gpuT.get(key('ffn_moe_topk', il)) as Int32Array;
              expect(g, `${phase}: ffn_moe_topk@${il}`).toBeInstanceOf(Int32Array);
              expect(g.length).toBe(c.length);
              for (let t = 0; t < c.length / K; t++) {
                idRows++;
                if (c.subarray(t * K, (t + 1) * K).every((e, j) => e === g[t * K + j])) idSame++;
              }
            }
          }
        }
        // every layer type was compared: attention and DeltaNet intermediates of each layer
        for (let il = 0; il < cfg.nLayer; il++) expect(recurrent[il] ? gpuT.has(key('final_output', il)) : gpuT.has(key('attn_gated', il))).toBe(true);
        if (cfg.arch === 'qwen35moe') {
          expect(idRows).toBe((prompt.length + steps.length) * cfg.nLayer);
          expect(idSame / idRows, 'expert ids identical per (token, layer)').toBeGreaterThanOrEqual(0.99);
        }
        console.log(`${name}: ${compared} tensors compared, worst normalized MSE ${worst.nmse.toExponential(2)} (${worst.at})` +
          (idRows ? `; expert ids identical ${idSame}/${idRows}` : ''));
        cs.dispose();
        gs.dispose();
      } finally {
        await gpu.dispose();
        await cpu.dispose();
      }
    });
  }
});

/** max |a − b| / max |b| */
function relMax(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

describe.skipIf(!ctx)('Qwen3.5 hybrids on the GPU: decode vs prefill, truncate, reset', () => {
  it('qwen35moe-q8_0: token by token equals one prefill; truncate restores the recurrent state; dispatches per layer type', async () => {
    const file = await openGGUF(await fixturePath('qwen35moe-q8_0'));
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    const gpu = await WebGPUBackend.load(file, cfg, { context: ctx! });
    await file.close();
    try {
      const V = cfg.nVocab;
      const toks = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % V);
      // reference: all positions from one prefill
      const ref = gpu.createSequence(64);
      const all = await ref.eval(toks, { allLogits: true });
      const row = (i: number) => all.subarray(i * V, (i + 1) * V);

      // token by token (decode path only), then the decode counters
      const s = gpu.createSequence(64);
      for (let i = 0; i < toks.length; i++) {
        const l = await s.eval([toks[i]!]);
        expect(relMax(l, row(i)), `decode step ${i} vs prefill row`).toBeLessThan(1e-3);
      }
      const per = s.stats!.last.perLayer;
      const rec = cfg.qwen35!.recurrent;
      const dn = per.filter((_, il) => il < cfg.nLayer && rec[il]);
      const at = per.filter((_, il) => il < cfg.nLayer && !rec[il]);
      console.log(`qwen35moe-q8_0 decode: ${s.stats!.last.dispatches} dispatches, ${s.stats!.last.submits} submit(s); per DeltaNet layer ${[...new Set(dn)].join('/')}, per attention layer ${[...new Set(at)].join('/')}, outside ${per[cfg.nLayer]}`);
      expect(s.stats!.last.submits).toBe(1);

      // mixed: prefill 5, decode 2, prefill 5 → snapshots at 5 and 12
      const m = gpu.createSequence(64);
      await m.eval(toks.slice(0, 5));
      await m.eval([toks[5]!]);
      await m.eval([toks[6]!]);
      const l12 = await m.eval(toks.slice(7, 12));
      expect(relMax(l12, row(11))).toBeLessThan(1e-3);
      expect(m.snapshotPositions).toEqual([5, 12]);

      // truncate to a snapshot (free), to a gap (replay) and to 0 (reset): the next token's logits
      // are those of a fresh sequence
      for (const cut of [5, 8, 3, 0]) {
        m.truncate(cut);
        expect(m.nPast).toBe(cut);
        const l = await m.eval(cut === 0 ? [toks[0]!] : [toks[cut]!]);
        expect(relMax(l, row(cut)), `after truncate(${cut})`).toBeLessThan(1e-3);
        await m.eval(toks.slice(cut + 1, 12));
      }
      expect(m.nPast).toBe(12);
      // only the snapshot at 12 is left: truncate(11) replays 11 tokens from the zero state
      expect(m.snapshotPositions).toEqual([12]);
      m.truncate(12 - 1);
      const l11 = await m.eval([toks[11]!]);
      expect(relMax(l11, row(11))).toBeLessThan(1e-3);
      for (const q of [ref, s, m]) q.dispose();
    } finally {
      await gpu.dispose();
    }
  });
});
