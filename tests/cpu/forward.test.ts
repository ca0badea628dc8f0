import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantize } from '../../gguf/quants.js';
import { openGGUF } from '../../gguf/reader.js';
import { GGMLType } from '../../gguf/types.js';
import type { Numerics } from '../../src/backend.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { normalizedMSE } from '../../src/cpu/ops.js';
import { AbortError, ContextOverflowError, DisposedError, ModelFormatError, UnsupportedArchitectureError } from '../../src/errors.js';
import { buildTinyModel, type TinyModel, type TinyOptions } from './tiny-model.js';

async function load(o: TinyOptions, numerics?: Numerics): Promise<{ m: TinyModel; cfg: ModelConfig; backend: CpuBackend }> {
  const m = await buildTinyModel(o);
  const cfg = configFromGGUF(m.metadata, m.tensorByName);
  return { m, cfg, backend: await CpuBackend.load(m.source, cfg, { numerics }) };
}

/**
 * An independent, deliberately naive forward pass (f64, one token at a time, whole matrices
 * dequantized up front, exact RoPE angles, no f16 KV rounding). Returns the logits of every token.
 */
function naiveForward(m: TinyModel, c: ModelConfig, tokens: number[]): number[][] {
  const W = (name: string): Float32Array => {
    const t = m.tensorByName.get(name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    return dequantize(t.type, m.bytes.subarray(t.offset, t.offset + t.byteLength), n);
  };
  const mv = (w: Float32Array, x: number[], rows: number, off = 0) => {
    const cols = x.length;
    return Array.from({ length: rows }, (_, r) => x.reduce((s, xc, col) => s + w[off + r * cols + col]! * xc, 0));
  };
  const norm = (x: number[], w: Float32Array) => {
    const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
    return x.map((v, i) => (v / Math.sqrt(ms + c.rmsEps)) * w[i]!);
  };
  const heads = (x: number[], d: number) => Array.from({ length: x.length / d }, (_, h) => x.slice(h * d, (h + 1) * d));
  const rope = (x: number[], p: number) => {
    const y = x.slice();
    const half = c.nRot / 2;
    for (let i = 0; i < half; i++) {
      const th = p * Math.pow(c.ropeBase, (-2 * i) / c.nRot);
      y[i] = x[i]! * Math.cos(th) - x[i + half]! * Math.sin(th);
      y[i + half] = x[i]! * Math.sin(th) + x[i + half]! * Math.cos(th);
    }
    return y;
  };
  const silu = (a: number) => a / (1 + Math.exp(-a));
  const ffnSwiglu = (h: number[], g: Float32Array, u: Float32Array, d: Float32Array, nff: number, off1: number, off2: number) => {
    const gg = mv(g, h, nff, off1);
    const uu = mv(u, h, nff, off1);
    return mv(d, gg.map((a, i) => silu(a) * uu[i]!), c.nEmbd, off2);
  };

  const kCache: number[][][][] = Array.from({ length: c.nLayer }, () => []); // [layer][pos][kvHead][d]
  const vCache: number[][][][] = Array.from({ length: c.nLayer }, () => []);
  const emb = W('token_embd.weight');
  const out: number[][] = [];
  tokens.forEach((tok, p) => {
    let x = Array.from(emb.subarray(tok * c.nEmbd, (tok + 1) * c.nEmbd));
    for (let l = 0; l < c.nLayer; l++) {
      const b = `blk.${l}.`;
      const h = norm(x, W(b + 'attn_norm.weight'));
      const q = heads(mv(W(b + 'attn_q.weight'), h, c.nHead * c.headDimK), c.headDimK).map((qh) => rope(norm(qh, W(b + 'attn_q_norm.weight')), p));
      const k = heads(mv(W(b + 'attn_k.weight'), h, c.nHeadKv * c.headDimK), c.headDimK).map((kh) => rope(norm(kh, W(b + 'attn_k_norm.weight')), p));
      const v = heads(mv(W(b + 'attn_v.weight'), h, c.nHeadKv * c.headDimV), c.headDimV);
      kCache[l]!.push(k);
      vCache[l]!.push(v);
      const o = q.flatMap((qh, hh) => {
        const g = Math.floor((hh * c.nHeadKv) / c.nHead);
        const s = kCache[l]!.map((kj) => qh.reduce((acc, qi, d) => acc + qi * kj[g]![d]!, 0) / Math.sqrt(c.headDimK));
        const mx = Math.max(...s);
        const e = s.map((z) => Math.exp(z - mx));
        const sum = e.reduce((a1, a2) => a1 + a2, 0);
        return Array.from({ length: c.headDimV }, (_, d) => e.reduce((acc, ej, j) => acc + (ej / sum) * vCache[l]![j]![g]![d]!, 0));
      });
      x = x.map((xi, i) => xi + mv(W(b + 'attn_output.weight'), o, c.nEmbd)[i]!);
      const h2 = norm(x, W(b + 'ffn_norm.weight'));
      let f: number[];
      if (c.arch === 'qwen3moe') {
        const z = mv(W(b + 'ffn_gate_inp.weight'), h2, c.nExpert);
        const mx = Math.max(...z);
        const pr = z.map((zi) => Math.exp(zi - mx));
        const ps = pr.reduce((a1, a2) => a1 + a2, 0);
        const probs = pr.map((q1) => q1 / ps);
        const sel = probs.map((pp, e) => [pp, e] as const).sort((a1, a2) => a2[0] - a1[0] || a1[1] - a2[1]).slice(0, c.nExpertUsed);
        const wsum = sel.reduce((s, [pp]) => s + pp, 0);
        f = new Array(c.nEmbd).fill(0);
        const [g, u, d] = [W(b + 'ffn_gate_exps.weight'), W(b + 'ffn_up_exps.weight'), W(b + 'ffn_down_exps.weight')];
        for (const [pp, e] of sel) {
          const y = ffnSwiglu(h2, g, u, d, c.nFfExp, e * c.nFfExp * c.nEmbd, e * c.nEmbd * c.nFfExp);
          f = f.map((fi, i) => fi + (pp / wsum) * y[i]!);
        }
      } else {
        f = ffnSwiglu(h2, W(b + 'ffn_gate.weight'), W(b + 'ffn_up.weight'), W(b + 'ffn_down.weight'), c.nFf, 0, 0);
      }
      x = x.map((xi, i) => xi + f[i]!);
    }
    const outW = c.tiedEmbeddings ? emb : W('output.weight');
    out.push(mv(outW, norm(x, W('output_norm.weight')), c.nVocab));
  });
  return out;
}

const TOKENS = [3, 17, 42, 0, 49, 8, 8, 21];

describe('CPU forward pass vs a naive independent implementation', () => {
  const cases: [string, TinyOptions][] = [
    ['qwen3moe F32', { arch: 'qwen3moe' }],
    ['qwen3moe Q8_0, 8 heads / 2 KV heads, tied', { arch: 'qwen3moe', type: GGMLType.Q8_0, nHead: 8, tied: true, seed: 5 }],
    ['qwen3 Q8_0, partial rope, tied', { arch: 'qwen3', type: GGMLType.Q8_0, nRot: 16, tied: true, seed: 2 }],
    ['qwen3 F32, MHA', { arch: 'qwen3', nHeadKv: 4, seed: 3 }],
  ];
  for (const [label, o] of cases) {
    it(label, async () => {
      const { m, cfg, backend } = await load(o, 'exact'); // the naive implementation multiplies exactly
      const seq = backend.createSequence(64, { kvF16: false });
      const logits = await seq.eval(TOKENS, { allLogits: true });
      const ref = naiveForward(m, cfg, TOKENS);
      for (let t = 0; t < TOKENS.length; t++) {
        const row = logits.subarray(t * cfg.nVocab, (t + 1) * cfg.nVocab);
        const err = normalizedMSE(row, ref[t]!);
        if (!(err < 1e-9)) throw new Error(`token ${t}: normalized MSE ${err}`);
      }
      // the logits are not degenerate
      const spread = Math.max(...ref[0]!) - Math.min(...ref[0]!);
      expect(spread).toBeGreaterThan(0.5);
    });
  }
});

describe('CpuSequence', () => {
  let cfg: ModelConfig;
  let backend: CpuBackend;
  beforeAll(async () => {
    ({ cfg, backend } = await load({ arch: 'qwen3moe', type: GGMLType.Q8_0, seed: 9 }));
  });

  it('one token at a time equals the whole batch at once', async () => {
    const a = backend.createSequence(32);
    const batch = await a.eval(TOKENS, { allLogits: true });
    expect(a.nPast).toBe(TOKENS.length);
    const b = backend.createSequence(32);
    for (let t = 0; t < TOKENS.length; t++) {
      const logits = await b.eval([TOKENS[t]!]);
      expect(Array.from(logits)).toEqual(Array.from(batch.subarray(t * cfg.nVocab, (t + 1) * cfg.nVocab)));
    }
    // without allLogits: the last row only
    const c = backend.createSequence(32);
    const last = await c.eval(TOKENS);
    expect(last.length).toBe(cfg.nVocab);
    expect(Array.from(last)).toEqual(Array.from(batch.subarray((TOKENS.length - 1) * cfg.nVocab)));
  });

  it('truncate forgets positions: [a,b,c] → truncate(1) → [d,e] equals [a,d,e]', async () => {
    const s = backend.createSequence(16);
    await s.eval([1, 2, 3]);
    s.truncate(1);
    expect(s.nPast).toBe(1);
    const after = await s.eval([4, 5], { allLogits: true });
    const fresh = await backend.createSequence(16).eval([1, 4, 5], { allLogits: true });
    expect(Array.from(after)).toEqual(Array.from(fresh.subarray(cfg.nVocab)));
    expect(() => s.truncate(4)).toThrow(RangeError);
  });

  it('rounds the KV cache to f16 by default (small but real difference)', async () => {
    const { backend: exact } = await load({ arch: 'qwen3moe', type: GGMLType.Q8_0, seed: 9 }, 'exact');
    const f16 = await exact.createSequence(16).eval(TOKENS.slice(0, 5));
    const f32 = await exact.createSequence(16, { kvF16: false }).eval(TOKENS.slice(0, 5));
    const err = normalizedMSE(f16, f32);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(1e-5);
  });

  it("numerics: 'llamacpp' by default (activations rounded like llama.cpp), 'exact' on request", async () => {
    expect(backend.numerics).toBe('llamacpp');
    const { backend: exact } = await load({ arch: 'qwen3moe', type: GGMLType.Q8_0, seed: 9 }, 'exact');
    expect(exact.numerics).toBe('exact');
    const a = await backend.createSequence(16).eval(TOKENS.slice(0, 5));
    const b = await exact.createSequence(16).eval(TOKENS.slice(0, 5));
    const err = normalizedMSE(a, b);
    expect(err).toBeGreaterThan(0); // Q8_0 activations: about 1e-5 here
    expect(err).toBeLessThan(1e-3);
  });

  it('throws ContextOverflowError, RangeError for bad ids, DisposedError after dispose', async () => {
    const s = backend.createSequence(4);
    await s.eval([1, 2, 3]);
    await expect(s.eval([4, 5])).rejects.toBeInstanceOf(ContextOverflowError);
    expect(s.nPast).toBe(3);
    await s.eval([4]);
    await expect(s.eval([])).rejects.toBeInstanceOf(RangeError);
    await expect(backend.createSequence(4).eval([cfg.nVocab])).rejects.toBeInstanceOf(RangeError);
    s.dispose();
    await expect(s.eval([1])).rejects.toBeInstanceOf(DisposedError);
  });

  it('reports intermediates named like llama.cpp', async () => {
    const seen = new Map<string, Float32Array | Int32Array>();
    const s = backend.createSequence(16, { onTensor: (name, layer, data) => seen.set(`${name}-${layer}`, data) });
    await s.eval([7, 8, 9]);
    for (const name of ['inp_embd--1', 'attn_norm-0', 'Qcur-0', 'Kcur_normed-1', 'Qcur_rope-0', 'kqv_out-1', 'attn_out-0',
      'ffn_moe_logits-0', 'ffn_moe_probs-1', 'ffn_moe_topk-0', 'ffn_moe_weights-0', 'ffn_moe_weights_norm-0', 'ffn_moe_down-1',
      'ffn_out-1', 'l_out-1', 'result_norm--1', 'result_output--1']) {
      expect(seen.has(name), name).toBe(true);
    }
    const topk = seen.get('ffn_moe_topk-0')!;
    expect(topk).toBeInstanceOf(Int32Array);
    expect(topk.length).toBe(3 * cfg.nExpertUsed);
    expect(seen.get('Qcur-0')!.length).toBe(3 * cfg.nHead * cfg.headDimK);
    const w = seen.get('ffn_moe_weights_norm-0')!;
    for (let t = 0; t < 3; t++) {
      const sum = Array.from(w.subarray(t * cfg.nExpertUsed, (t + 1) * cfg.nExpertUsed)).reduce((a, b) => a + b, 0);
      expect(sum).toBeCloseTo(1, 5);
    }
    expect(seen.get('result_output--1')!.length).toBe(cfg.nVocab);
  });
});

describe('CpuBackend.load', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moet-cpu-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('works through openGGUF + configFromGGUF and reports progress', async () => {
    const m = await buildTinyModel({ arch: 'qwen3moe', type: GGMLType.Q8_0, seed: 4 });
    const path = join(dir, 'tiny.gguf');
    await writeFile(path, m.bytes);
    const file = await openGGUF(path);
    try {
      const cfg = configFromGGUF(file.metadata, file.tensorByName);
      const progress: number[] = [];
      const backend = await CpuBackend.load(file, cfg, { onProgress: (f) => progress.push(f) });
      expect(progress.at(-1)).toBe(1);
      const fromFile = await backend.createSequence(8).eval([1, 2, 3]);
      const fromMemory = await (await CpuBackend.load(m.source, cfg)).createSequence(8).eval([1, 2, 3]);
      expect(Array.from(fromFile)).toEqual(Array.from(fromMemory));
      await backend.dispose();
      expect(() => backend.createSequence(8)).toThrow(DisposedError);
    } finally {
      await file.close();
    }
  });

  it('throws ModelFormatError naming a mis-shaped or missing tensor', async () => {
    const good = await buildTinyModel({ arch: 'qwen3moe' });
    const cfg = configFromGGUF(good.metadata, good.tensorByName);
    const bad = await buildTinyModel({
      arch: 'qwen3moe',
      mutate: (ts) => ts.map((t) => (t.name === 'blk.1.attn_k.weight' ? { ...t, shape: [64, 24], data: new Uint8Array(64 * 24 * 4) } : t)),
    });
    await expect(CpuBackend.load(bad.source, cfg)).rejects.toThrow(ModelFormatError);
    await expect(CpuBackend.load(bad.source, cfg)).rejects.toThrow(/blk\.1\.attn_k\.weight has shape \[64, 24\], expected \[64, 48\]/);
    const missing = await buildTinyModel({ arch: 'qwen3moe', mutate: (ts) => ts.filter((t) => t.name !== 'blk.0.ffn_up_exps.weight') });
    await expect(CpuBackend.load(missing.source, cfg)).rejects.toThrow(/blk\.0\.ffn_up_exps\.weight is missing/);
  });

  it('honours an aborted signal and rejects rope scaling', async () => {
    const { m, cfg } = await load({ arch: 'qwen3' });
    const ac = new AbortController();
    ac.abort();
    await expect(CpuBackend.load(m.source, cfg, { signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
    await expect(CpuBackend.load(m.source, { ...cfg, ropeScalingType: 'yarn' })).rejects.toBeInstanceOf(UnsupportedArchitectureError);
  });
});
