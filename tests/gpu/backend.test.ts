// WebGPUBackend behind the Backend contract: prefill vs one-by-one decode, ubatch splitting, split
// weights and chunked streaming, truncate, context overflow, evalTopK vs the full logits, the work
// counters, generate through the GPU candidates, dispose (buffers freed, Node exits) and abort
// during load. The numerical match with the CPU reference is forward.test.ts; with llama.cpp,
// tests/golden.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGGUF, type GGUFFile } from '../../gguf/reader.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { AbortError, ContextOverflowError, DisposedError } from '../../src/errors.js';
import { WebGPUBackend, type WebGPULoadOptions } from '../../src/gpu/backend.js';
import { loadModel } from '../../src/index.js';
import { Sampler } from '../../src/sampler.js';
import { fixturePath } from '../fixtures/make.js';
import { IN_CI, nmse, openTestGPU, runChildScript } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** rows i of a [n, V] array */
const row = (a: Float32Array, i: number, V: number) => a.subarray(i * V, (i + 1) * V);

/** ids of the k largest values, ties → lower id */
function topK(x: Float32Array, k: number): number[] {
  return [...x.keys()].sort((a, b) => x[b]! - x[a]! || a - b).slice(0, k);
}

async function withFile<T>(path: string, fn: (f: GGUFFile, cfg: ModelConfig) => Promise<T>): Promise<T> {
  const f = await openGGUF(path);
  try {
    return await fn(f, configFromGGUF(f.metadata, f.tensorByName));
  } finally {
    await f.close();
  }
}

function load(path: string, opts: WebGPULoadOptions = {}): Promise<WebGPUBackend> {
  return withFile(path, (f, cfg) => WebGPUBackend.load(f, cfg, { context: ctx!, ...opts }));
}

describe.skipIf(!ctx)('WebGPUBackend', () => {
  let path = '';
  let be: WebGPUBackend;
  let V = 0;
  const tokens = [5, 77, 3, 140, 9, 9, 250, 1, 64, 33, 12];

  beforeAll(async () => {
    path = await fixturePath('qwen3moe-q8_0');
    be = await load(path);
    V = be.config.nVocab;
  });
  afterAll(async () => be?.dispose());

  it('one token at a time (decode path) gives the logits of one batch (prefill path); ubatches split a prompt transparently', async () => {
    const n = tokens.length;
    const batch = await be.createSequence(32).eval(tokens, { allLogits: true });
    expect(batch.length).toBe(n * V);
    const one = be.createSequence(32);
    for (let i = 0; i < n; i++) {
      const l = await one.eval([tokens[i]!]);
      expect(nmse(l, row(batch, i, V)), `position ${i}`).toBeLessThan(1e-8);
    }
    expect(one.nPast).toBe(n);
    // ubatch of 4: three batches, KV carried across them
    const small = be.createSequence(32, { ubatch: 4 });
    const split = await small.eval(tokens, { allLogits: true });
    expect(nmse(split, batch)).toBeLessThan(1e-8);
    expect(small.stats.last.submits).toBe(3 + 3); // 3 batches, each followed by its LM-head chunk
    // last-token logits of a split prompt = the batch's last row
    const last = await be.createSequence(32, { ubatch: 4 }).eval(tokens);
    expect(nmse(last, row(batch, n - 1, V))).toBeLessThan(1e-8);
  });

  it('truncate moves the position: re-evaluating gives the same logits', async () => {
    const s = be.createSequence(32);
    await s.eval(tokens.slice(0, 6));
    const a = await s.eval([tokens[6]!]);
    s.truncate(6);
    expect(s.nPast).toBe(6);
    const b = await s.eval([tokens[6]!]);
    expect(Array.from(b)).toEqual(Array.from(a)); // same kernels, same inputs: bit-identical
    s.truncate(2);
    const c = await s.eval(tokens.slice(2, 7)); // prefill over a truncated cache
    expect(nmse(c, a)).toBeLessThan(1e-8);
    expect(() => s.truncate(8)).toThrow(RangeError);
    s.truncate(0);
    expect(s.nPast).toBe(0);
  });

  it('going past the context length throws ContextOverflowError and keeps the position (no wrap)', async () => {
    const s = be.createSequence(8);
    await s.eval(tokens.slice(0, 6));
    await expect(s.eval(tokens.slice(0, 3))).rejects.toBeInstanceOf(ContextOverflowError);
    expect(s.nPast).toBe(6);
    await s.eval([1, 2]);
    expect(s.nPast).toBe(8);
    await expect(s.eval([1])).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(s.evalTopK([1], 1)).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(s.eval([])).rejects.toBeInstanceOf(RangeError);
    await expect(s.eval([V])).rejects.toBeInstanceOf(RangeError);
    expect(() => be.createSequence(0)).toThrow(RangeError);
  });

  it('evalTopK returns the k best of the same logits (ids and values), reading back 8·k bytes', async () => {
    const s = be.createSequence(32);
    await s.eval(tokens.slice(0, 5));
    const full = await s.eval([tokens[5]!]);
    expect(s.stats.last).toMatchObject({ tokens: 1, submits: 1, bytesRead: V * 4 });
    for (const k of [1, 7, 40, s.maxTopK]) {
      s.truncate(5);
      const r = await s.evalTopK([tokens[5]!], k);
      const want = topK(full, k);
      expect(Array.from(r.ids), `k ${k}`).toEqual(want);
      expect(Array.from(r.logits)).toEqual(want.map((i) => full[i]!));
      expect(s.stats.last).toMatchObject({ tokens: 1, submits: 1, bytesRead: 8 * k });
    }
    // a prompt can end in a top-k too
    const t = await be.createSequence(32).evalTopK(tokens.slice(0, 6), 3);
    expect(Array.from(t.ids)).toEqual(topK(full, 3));
    await expect(s.evalTopK([1], 0)).rejects.toBeInstanceOf(RangeError);
    await expect(s.evalTopK([1], s.maxTopK + 1)).rejects.toBeInstanceOf(RangeError);
  });

  it('counts the work of a decode step: one submit, the same dispatches in every layer', async () => {
    const s = be.createSequence(32);
    await s.eval(tokens.slice(0, 4));
    await s.evalTopK([1], 1);
    const { last, total } = s.stats;
    const layers = last.perLayer.slice(0, be.config.nLayer);
    expect(last.perLayer.length).toBe(be.config.nLayer + 1);
    expect(new Set(layers).size).toBe(1);
    // attn_norm + q|k|v (one fused matvec over the co-located weights), q+k norm + rope + KV write,
    // attention (1 chunk), wo (o's round trip in its prologue), ffn_norm + router, routing + gate|up
    // + SwiGLU, down + weighted sum + residual: 7 under both numerics (the llama.cpp round trips of
    // numerics 'llamacpp' happen inside the kernels' prologues)
    const perLayer = 7;
    expect(layers[0]).toBe(perLayer);
    // embedding, final norm (+ the LM head input's round trip), LM head, top-k (2)
    const outside = 5;
    expect(last.perLayer[be.config.nLayer]).toBe(outside);
    expect(last.dispatches).toBe(perLayer * be.config.nLayer + outside);
    expect(last.bytesRead).toBe(8);
    expect(total.evals).toBe(2);
    expect(total.tokens).toBe(5);
    // a decode step allocates no GPU memory
    const bytes = ctx!.allocatedBytes;
    for (let i = 0; i < 3; i++) await s.evalTopK([i + 2], 1);
    await s.eval([9]);
    expect(ctx!.allocatedBytes).toBe(bytes);
  });

  it('weights split into several buffers and streamed in small chunks give the same logits', async () => {
    const split = await load(path, { maxPartBytes: 16 << 10, chunkBytes: 1000, warmup: false });
    try {
      const w = split.weights;
      expect(w.tokEmbd.parts.length).toBeGreaterThan(1);
      const exps = w.layers[0]!.ffn.kind === 'moe' ? w.layers[0]!.ffn.gateExps : null;
      expect(exps!.parts.length).toBeGreaterThan(1);
      for (const p of exps!.parts) expect(p.nRows % exps!.shape[1]!).toBe(0); // whole experts per part
      const a = await split.createSequence(32).eval(tokens, { allLogits: true });
      const b = await be.createSequence(32).eval(tokens, { allLogits: true });
      expect(nmse(a, b)).toBeLessThan(1e-10);
      const sa = split.createSequence(32);
      const sb = be.createSequence(32);
      await sa.eval(tokens.slice(0, 3));
      await sb.eval(tokens.slice(0, 3));
      expect(nmse(await sa.eval([4]), await sb.eval([4]))).toBeLessThan(1e-10);
    } finally {
      await split.dispose();
    }
  });

  it('Session.generate reads back GPU candidates and picks the same tokens as sampling the full logits', async () => {
    const model = await loadModel(path, { backend: 'webgpu', contextLength: 64 });
    try {
      const prompt = tokens.slice(0, 5);
      const opts = { temperature: 0.8, topK: 20, topP: 0.9, seed: 1234, maxTokens: 12 };
      const s = model.createSession();
      const got: number[] = [];
      for await (const t of s.generate(prompt, opts)) got.push(t.id);
      expect(s.backendStats?.last.bytesRead).toBe(8 * 20);
      // the same chain over full logits, step by step
      const ref = model.createSession();
      const sampler = new Sampler(opts);
      let logits = await ref.eval(prompt);
      for (const t of prompt) sampler.accept(t);
      const want: number[] = [];
      for (let i = 0; i < got.length; i++) {
        const id = sampler.sample(logits);
        sampler.accept(id);
        want.push(id);
        if (i + 1 < got.length) logits = await ref.eval([id]);
      }
      expect(got).toEqual(want);
      // greedy: one candidate, 8 bytes per step
      const g = model.createSession();
      const greedy: number[] = [];
      for await (const t of g.generate(prompt, { temperature: 0, maxTokens: 6 })) greedy.push(t.id);
      expect(g.backendStats?.last.bytesRead).toBe(8);
      const ref2 = model.createSession();
      let l = await ref2.eval(prompt);
      for (const id of greedy) {
        expect(id).toBe(topK(l, 1)[0]);
        l = await ref2.eval([id]);
      }
      // after a candidates-only step the session can still hand out full logits
      const after = await g.eval([]);
      expect(after.length).toBe(V);
    } finally {
      await model.dispose();
    }
  });

  it('dispose frees every buffer: sequences, then the weights', async () => {
    const base = ctx!.allocatedBytes;
    const b2 = await load(path, { warmup: false });
    const loaded = ctx!.allocatedBytes;
    expect(loaded - base).toBeGreaterThanOrEqual(b2.weightBytes);
    const s = b2.createSequence(64);
    await s.eval(tokens);
    await s.evalTopK([1], 3);
    expect(ctx!.allocatedBytes).toBeGreaterThan(loaded);
    s.dispose();
    expect(ctx!.allocatedBytes).toBe(loaded);
    const s2 = b2.createSequence(64);
    await s2.eval(tokens, { allLogits: true });
    await b2.dispose(); // disposes s2 too
    expect(ctx!.allocatedBytes).toBe(base);
    await expect(s2.eval([1])).rejects.toBeInstanceOf(DisposedError);
    expect(() => b2.createSequence(8)).toThrow(DisposedError);
  });

  it('an abort during loading frees what was allocated and throws AbortError', async () => {
    const base = ctx!.allocatedBytes;
    const ac = new AbortController();
    const seen: number[] = [];
    await expect(
      load(path, {
        signal: ac.signal,
        chunkBytes: 4096,
        onProgress: (f) => {
          seen.push(f);
          if (f > 0.3) ac.abort();
        },
      }),
    ).rejects.toBeInstanceOf(AbortError);
    expect(seen.length).toBeGreaterThan(0);
    expect(ctx!.allocatedBytes).toBe(base);
    // progress reaches 1 on a complete load
    const fractions: number[] = [];
    const b3 = await load(path, { onProgress: (f) => fractions.push(f), warmup: false });
    expect(fractions.at(-1)).toBe(1);
    expect(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!)).toBe(true);
    await b3.dispose();
  });

  it('a process that loads, generates and disposes exits by itself', async () => {
    const { code, out, err } = await runChildScript('backend-child.ts', [path], IN_CI ? 90_000 : 60_000);
    expect(code, `stdout: ${out}\nstderr: ${err}`).toBe(0);
    expect(out).toMatch(/backend webgpu generated \d+,\d+,\d+,\d+ disposed/);
  }, 120_000);
});
