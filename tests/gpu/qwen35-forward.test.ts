// The GPU forward pass of the Qwen3.5 hybrids (src/arch/qwen35.ts, qwen35moe.ts) against the CPU
// reference (src/cpu/qwen35.ts, 'exact' numerics), intermediate by intermediate, on every qwen35moe /
// qwen35 fixture: a 7-token prompt (prefill: matmuls, tiled attention, grouped expert matmuls,
// the DeltaNet kernels looping over the tokens) and 3 decode steps (matvecs, flash-decoding, expert
// matvecs, the recurrent state resident on the GPU). Normalized MSE ≤ 5e-4 for every tensor, expert
// ids identical for ≥ 99% of (token, layer) pairs. Then, on one fixture: token-by-token decoding
// equals the prefill, and truncate / reset (recurrent-state snapshots) give the logits of a fresh
// sequence; split weights (fused and permuted rows across parts, unaligned rows streamed in small
// chunks) give the same logits; decode allocates nothing; dispose frees everything; loadModel's
// default backend runs the hybrid and Session.reset clears KV cache and recurrent state.
import { afterAll, describe, expect, it } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import { configFromGGUF } from '../../src/config.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { loadModel } from '../../src/index.js';
import { FIXTURES, fixturePath, fixtureSpec } from '../fixtures/make.js';
import { compareForward, key, openOnBoth } from './compare-forward.js';
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

describe.skipIf(!ctx)('Qwen3.5 hybrids: GPU forward pass vs the CPU reference, per intermediate', () => {
  for (const name of HYBRID_FIXTURES) {
    it(`${name}: prefill of 7 tokens, then 3 decode steps`, async () => {
      const { cfg, cpu, gpu } = await openOnBoth(ctx!, name);
      try {
        const names = [...COMMON, ...ATTENTION, ...DELTANET, ...(cfg.arch === 'qwen35moe' ? MOE : DENSE)];
        const recurrent = cfg.qwen35!.recurrent;
        const { gpuT, compared, worst, idRows, idSame } = await compareForward(cfg, cpu, gpu, names, {
          moe: cfg.arch === 'qwen35moe',
          // the GPU derives the mixer's output as a residual difference, named attn_out on every layer
          cpuName: (n, il) => (n === 'attn_out' && il >= 0 && recurrent[il] ? 'linear_attn_out' : n),
        });
        // every layer type was compared: attention and DeltaNet intermediates of each layer
        for (let il = 0; il < cfg.nLayer; il++) expect(recurrent[il] ? gpuT.has(key('final_output', il)) : gpuT.has(key('attn_gated', il))).toBe(true);
        console.log(`${name}: ${compared} tensors compared, worst normalized MSE ${worst.nmse.toExponential(2)} (${worst.at})` +
          (idRows ? `; expert ids identical ${idSame}/${idRows}` : ''));
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

describe.skipIf(!ctx)('Qwen3.5 hybrids on the GPU: loading, memory, public API', () => {
  it('qwen35moe-q8_0: weights split into parts and streamed in 1000-byte chunks give the same logits (102-byte rows)', async () => {
    const path = await fixturePath('qwen35moe-q8_0');
    const file = await openGGUF(path);
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    const base = await WebGPUBackend.load(file, cfg, { context: ctx!, warmup: false });
    const split = await WebGPUBackend.load(file, cfg, { context: ctx!, warmup: false, maxPartBytes: 16 << 10, chunkBytes: 1000 });
    await file.close();
    try {
      const layers = split.weights.hybrid!;
      const dn = layers.find((l) => l.mixer.kind === 'deltanet')!.mixer;
      const at = layers.find((l) => l.mixer.kind === 'attention')!.mixer;
      if (dn.kind !== 'deltanet' || at.kind !== 'attention') throw new Error('fixture without both layer types');
      expect(dn.proj.length, 'attn_qkv | attn_gate | ssm_beta | ssm_alpha fused (all Q8_0)').toBe(1);
      expect(dn.proj[0]!.w.parts.length).toBeGreaterThan(1);
      expect(at.wq.parts.length).toBeGreaterThan(1);
      expect(layers[0]!.shared!.gateUp.length).toBe(1);
      const toks = [5, 77, 3, 140, 9, 9, 250, 1, 64];
      const a = await split.createSequence(32).eval(toks, { allLogits: true });
      const b = await base.createSequence(32).eval(toks, { allLogits: true });
      expect(nmse(a, b)).toBeLessThan(1e-10);
      const sa = split.createSequence(32);
      const sb = base.createSequence(32);
      await sa.eval(toks.slice(0, 3));
      await sb.eval(toks.slice(0, 3));
      expect(nmse(await sa.eval([4]), await sb.eval([4]))).toBeLessThan(1e-10);

      // a decode step allocates nothing (the snapshots were made by the prefill); dispose frees all
      const before = ctx!.allocatedBytes;
      for (let i = 0; i < 3; i++) await sa.evalTopK([i + 2], 2);
      await sa.eval([7]);
      expect(ctx!.allocatedBytes).toBe(before);
      const loaded = ctx!.allocatedBytes;
      sa.dispose();
      expect(ctx!.allocatedBytes).toBeLessThan(loaded);
    } finally {
      const b0 = ctx!.allocatedBytes;
      const w = split.weightBytes + base.weightBytes;
      await split.dispose();
      await base.dispose();
      expect(b0 - ctx!.allocatedBytes).toBeGreaterThanOrEqual(w);
    }
  });

  it("loadModel's default backend runs qwen35; Session.reset clears the KV cache and the recurrent state", async () => {
    const model = await loadModel(await fixturePath('qwen35-q8_0'), { contextLength: 64 });
    try {
      expect(model.backend.name).toBe('webgpu');
      const session = model.createSession();
      const prompt = [11, 5, 42, 8, 19];
      const first = await session.eval(prompt);
      const gen: number[] = [];
      for await (const t of session.generate([], { maxTokens: 6, temperature: 0 })) gen.push(t.id);
      expect(gen.length).toBe(6);
      session.reset();
      expect(session.length).toBe(0);
      expect(nmse(await session.eval(prompt), first)).toBeLessThan(1e-10);
      // generate again from the same point: the same tokens (state and cache rebuilt identically)
      const again: number[] = [];
      for await (const t of session.generate([], { maxTokens: 6, temperature: 0 })) again.push(t.id);
      expect(again).toEqual(gen);
      // keep the prompt, drop the answer: truncate restores the snapshot at the prompt's end
      session.truncate(prompt.length);
      const regen: number[] = [];
      for await (const t of session.generate([], { maxTokens: 6, temperature: 0 })) regen.push(t.id);
      expect(regen).toEqual(gen);
      session.dispose();
    } finally {
      await model.dispose();
    }
  });
});
