import { stat, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortError,
  ContextOverflowError,
  DisposedError,
  GGUFFormatError,
  MoetError,
  UnsupportedArchitectureError,
  loadModel,
  type GeneratedToken,
  type GenerateOptions,
  type Model,
  type Session,
} from '../../src/index.js';
import { fixturePath, fixtureSpec } from '../fixtures/make.js';

async function collect(session: Session, prompt: string | number[], opts: GenerateOptions): Promise<GeneratedToken[]> {
  const out: GeneratedToken[] = [];
  for await (const t of session.generate(prompt, opts)) out.push(t);
  return out;
}

function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const PROMPT = 'The quick brown fox jumps over';
const GREEDY = { temperature: 0 } as const;

describe('loadModel on qwen3moe-f32', () => {
  let path: string;
  let model: Model;

  beforeAll(async () => {
    path = await fixturePath('qwen3moe-f32');
    model = await loadModel(path, { backend: 'cpu' });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('describes the model', async () => {
    const spec = fixtureSpec('qwen3moe-f32');
    const info = model.info;
    expect(info.architecture).toBe('qwen3moe');
    expect(info.name).toBe('moet fixture qwen3moe-f32');
    expect(info.backend).toBe('cpu');
    expect(info.layers).toBe(spec.nLayer);
    expect(info.embeddingLength).toBe(spec.nEmbd);
    expect(info.heads).toBe(spec.nHead);
    expect(info.kvHeads).toBe(spec.nHeadKv);
    expect(info.headDimK).toBe(spec.headDim);
    expect(info.headDimV).toBe(spec.headDim);
    expect(info.experts).toEqual({ count: spec.nExpert, used: spec.nExpertUsed, feedForwardLength: spec.nFfExp });
    expect(info.vocabSize).toBe(model.tokenizer.vocabSize);
    expect(info.contextTrained).toBe(spec.contextLength);
    expect(info.contextLength).toBe(2048);
    expect(info.fileSize).toBe((await stat(path)).size);
    expect(Object.keys(info.quantMix)).toEqual(['F32']);
    const nTensors = 1 + spec.nLayer * 12 + 2;
    expect(info.quantMix.F32!.tensors).toBe(nTensors);
    expect(info.quantMix.F32!.bytes).toBe(info.parameterCount * 4);
    expect(info.parameterCount).toBeGreaterThan(0);
  });

  it('tokenize / detokenize round-trip', () => {
    const text = 'Hello world, the quick brown fox! 123 «ünïcødé» 🦊\n\ttabs';
    const ids = model.tokenize(text);
    expect(ids.length).toBeGreaterThan(5);
    expect(model.detokenize(ids)).toBe(text);
    // control tokens are parsed only with special
    const eos = model.tokenizer.eosId;
    expect(model.tokenize('<|im_end|>', { special: true })).toEqual([eos]);
    expect(model.tokenize('<|im_end|>').length).toBeGreaterThan(1);
    expect(model.detokenize([eos])).toBe('');
    expect(model.detokenize([eos], { special: true })).toBe('<|im_end|>');
  });

  it('eval returns the next-token logits and generate continues the same context', async () => {
    const ids = model.tokenize(PROMPT);
    const a = model.createSession();
    const logits = await a.eval(ids);
    expect(logits.length).toBe(model.info.vocabSize);
    expect(a.length).toBe(ids.length);
    const fromEval = await collect(a, '', { ...GREEDY, maxTokens: 6 });
    expect(fromEval[0]!.id).toBe(argmax(logits));

    const b = model.createSession();
    const direct = await collect(b, ids, { ...GREEDY, maxTokens: 6 });
    expect(direct.map((t) => t.id)).toEqual(fromEval.map((t) => t.id));

    // generate in two steps = generate in one
    const c = model.createSession();
    const first = await collect(c, PROMPT, { ...GREEDY, maxTokens: 3 });
    const second = await collect(c, '', { ...GREEDY, maxTokens: 3 });
    expect([...first, ...second].map((t) => t.id)).toEqual(direct.map((t) => t.id));
    expect(c.tokens).toEqual([...ids, ...direct.map((t) => t.id)]);

    // the last generated token is pending: eval([]) evaluates it
    const cont = await c.eval([]);
    const d = model.createSession();
    const ref = await d.eval([...ids, ...direct.map((t) => t.id)]);
    expect(maxAbsDiff(cont, ref)).toBeLessThan(1e-3);
    for (const s of [a, b, c, d]) s.dispose();
  });

  it('streamed text equals detokenize of the ids, and timings are recorded', async () => {
    const s = model.createSession();
    const toks = await collect(s, PROMPT, { seed: 11, temperature: 1, maxTokens: 12 });
    expect(toks.length).toBe(12);
    expect(toks.map((t) => t.text).join('')).toBe(model.detokenize(toks.map((t) => t.id)));
    const t = s.lastTimings!;
    expect(t.promptTokens).toBe(model.tokenize(PROMPT).length);
    expect(t.generatedTokens).toBe(12);
    expect(t.evalRuns).toBe(11);
    expect(t.stopReason).toBe('length');
    expect(t.promptMs).toBeGreaterThan(0);
    expect(t.genMs).toBeCloseTo(t.evalMs + t.sampleMs, 6);
    s.dispose();
  });

  it('a seed reproduces the same tokens', async () => {
    const s = model.createSession();
    const opts = { seed: 1234, temperature: 1.2, topK: 0, topP: 1, minP: 0, maxTokens: 10 };
    const x = (await collect(s, PROMPT, opts)).map((t) => t.id);
    s.reset();
    expect(s.length).toBe(0);
    const y = (await collect(s, PROMPT, opts)).map((t) => t.id);
    expect(y).toEqual(x);
    s.dispose();
  });

  it('stops at a stop string: the text before it is emitted, the stop string not', async () => {
    const s = model.createSession();
    const all = await collect(s, PROMPT, { ...GREEDY, maxTokens: 24 });
    const text = all.map((t) => t.text).join('');
    expect(text.length).toBeGreaterThan(8);
    const stop = text.slice(5, 8);
    const expected = text.slice(0, text.indexOf(stop));
    s.reset();
    const cut = await collect(s, PROMPT, { ...GREEDY, maxTokens: 24, stop: ['never-appears-XYZ', stop] });
    expect(cut.map((t) => t.text).join('')).toBe(expected);
    expect(s.lastTimings!.stopReason).toBe('stop');
    expect(cut.length).toBeLessThan(all.length);

    // a partial match that never completes is held back, then released at the end
    s.reset();
    const partial = text.slice(3, 6) + '\u0007never';
    const held = await collect(s, PROMPT, { ...GREEDY, maxTokens: 24, stop: [partial] });
    expect(held.map((t) => t.text).join('')).toBe(text);
    expect(s.lastTimings!.stopReason).toBe('length');
    s.dispose();
  });

  it('stops on end-of-generation tokens without emitting their text', async () => {
    const s = model.createSession();
    const eos = model.tokenizer.eosId;
    expect(model.tokenizer.eogIds.has(eos)).toBe(true);
    const out = await collect(s, PROMPT, { ...GREEDY, maxTokens: 10, logitBias: { [eos]: 1000 } });
    expect(out).toEqual([]);
    expect(s.lastTimings!.stopReason).toBe('eog');
    expect(s.lastTimings!.generatedTokens).toBe(1);
    // the eog token is in the context (pending), so a chat can continue after it
    expect(s.tokens.at(-1)).toBe(eos);
    const next = await collect(s, ' and', { ...GREEDY, maxTokens: 2 });
    expect(next.length).toBe(2);
    expect(s.lastTimings!.promptTokens).toBe(1 + model.tokenize(' and').length);
    s.dispose();
  });

  it('aborts between tokens with AbortError', async () => {
    const s = model.createSession();
    const ac = new AbortController();
    const got: GeneratedToken[] = [];
    await expect(
      (async () => {
        for await (const t of s.generate(PROMPT, { ...GREEDY, maxTokens: 50, signal: ac.signal })) {
          got.push(t);
          if (got.length === 3) ac.abort();
        }
      })(),
    ).rejects.toBeInstanceOf(AbortError);
    expect(got.length).toBe(3);
    expect(s.lastTimings!.stopReason).toBe('abort');
    // the session stays usable and holds what was generated
    expect(s.tokens.slice(-3)).toEqual(got.map((t) => t.id));
    expect((await collect(s, '', { ...GREEDY, maxTokens: 1 })).length).toBe(1);

    const pre = new AbortController();
    pre.abort();
    await expect(collect(s, 'x', { signal: pre.signal })).rejects.toBeInstanceOf(AbortError);
    s.dispose();
  });

  it('breaking out of the loop ends generation cleanly', async () => {
    const s = model.createSession();
    let n = 0;
    for await (const _ of s.generate(PROMPT, { ...GREEDY, maxTokens: 50 })) if (++n === 2) break;
    expect(s.lastTimings!.generatedTokens).toBe(2);
    expect((await collect(s, '', { ...GREEDY, maxTokens: 2 })).length).toBe(2);
    s.dispose();
  });

  it('a call that changes the context supersedes a suspended generate', async () => {
    const s = model.createSession();
    const it = s.generate(PROMPT, { ...GREEDY, maxTokens: 10 });
    await it.next();
    await s.eval(model.tokenize(' x'));
    await expect(it.next()).rejects.toBeInstanceOf(MoetError);
    s.dispose();
  });

  it('rejects bad token ids', async () => {
    const s = model.createSession();
    await expect(s.eval([model.info.vocabSize])).rejects.toBeInstanceOf(RangeError);
    await expect(s.eval([-1])).rejects.toBeInstanceOf(RangeError);
    await expect(s.eval([])).rejects.toBeInstanceOf(RangeError); // empty session, nothing to evaluate
    s.dispose();
  });
});

describe('context limits', () => {
  it('throws ContextOverflowError for a prompt that does not fit, and stops generation at a full context', async () => {
    const model = await loadModel(await fixturePath('qwen3moe-f32'), { backend: 'cpu', contextLength: 12 });
    try {
      expect(model.contextLength).toBe(12);
      const s = model.createSession();
      const long = model.tokenize('one two three four five six seven eight nine ten eleven twelve thirteen');
      expect(long.length).toBeGreaterThan(12);
      await expect(s.eval(long)).rejects.toBeInstanceOf(ContextOverflowError);
      expect(s.length).toBe(0);
      const ids = long.slice(0, 8);
      const out = await collect(s, ids, { ...GREEDY, maxTokens: 100 });
      expect(s.lastTimings!.stopReason).toBe('context');
      // 8 prompt tokens + 4 evaluated generated tokens fill 12 positions; the 5th is pending
      expect(out.length).toBe(5);
    } finally {
      await model.dispose();
    }
  });
});

describe('errors and lifetime', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'moet-api-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a file that is not GGUF → GGUFFormatError', async () => {
    const p = join(dir, 'not.gguf');
    await writeFile(p, 'this is not a gguf file at all, just some text');
    await expect(loadModel(p)).rejects.toBeInstanceOf(GGUFFormatError);
  });

  it('a missing file → ENOENT', async () => {
    await expect(loadModel(join(dir, 'missing.gguf'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('an unsupported architecture → UnsupportedArchitectureError', async () => {
    const { writeGGUF, kv } = await import('../../gguf/writer.js');
    const p = join(dir, 'llama.gguf');
    await writeGGUF(p, [kv.str('general.architecture', 'llama')], []);
    await expect(loadModel(p)).rejects.toBeInstanceOf(UnsupportedArchitectureError);
  });

  it('bad options → RangeError; a pre-aborted signal → AbortError', async () => {
    const p = await fixturePath('qwen3moe-f32');
    // @ts-expect-error testing a bad backend name
    await expect(loadModel(p, { backend: 'tpu' })).rejects.toBeInstanceOf(RangeError);
    await expect(loadModel(p, { backend: 'cpu', contextLength: 0 })).rejects.toBeInstanceOf(RangeError);
    const ac = new AbortController();
    ac.abort();
    await expect(loadModel(p, { backend: 'cpu', signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
  });

  it('reports loading progress', async () => {
    const seen: number[] = [];
    const m = await loadModel(await fixturePath('qwen3moe-f32'), { backend: 'cpu', onProgress: (f) => seen.push(f) });
    await m.dispose();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)).toBe(1);
  });

  it('use after dispose → DisposedError', async () => {
    const m = await loadModel(await fixturePath('qwen3moe-f32'), { backend: 'cpu' });
    const s = m.createSession();
    const s2 = m.createSession();
    s2.dispose();
    await expect(s2.eval([1])).rejects.toBeInstanceOf(DisposedError);
    await m[Symbol.asyncDispose]();
    expect(() => m.tokenize('x')).toThrow(DisposedError);
    expect(() => m.detokenize([1])).toThrow(DisposedError);
    expect(() => m.createSession()).toThrow(DisposedError);
    await expect(s.eval([1])).rejects.toBeInstanceOf(DisposedError);
    await expect(collect(s, 'x', {})).rejects.toBeInstanceOf(DisposedError);
    expect(() => s.reset()).toThrow(DisposedError);
    await m.dispose(); // idempotent
  });
});

describe('real Qwen3 vocabulary (qwen3moe-q4_k_m-realvocab)', () => {
  it('tokenizes like llama.cpp and generates', async () => {
    const m = await loadModel(await fixturePath('qwen3moe-q4_k_m-realvocab'), { backend: 'cpu', contextLength: 64 });
    try {
      expect(m.tokenize('Hello world')).toEqual([9707, 1879]);
      expect(m.tokenize('\n\n')).toEqual([271]);
      expect(m.info.vocabSize).toBe(151936);
      expect(Object.keys(m.info.quantMix).sort()).toEqual(expect.arrayContaining(['Q4_K', 'Q6_K']));
      const s = m.createSession();
      const out = await collect(s, '<|im_start|>user\nHi<|im_end|>\n', { seed: 3, maxTokens: 4 });
      expect(s.lastTimings!.promptTokens).toBe(6);
      expect(out.length).toBeGreaterThan(0);
    } finally {
      await m.dispose();
    }
  });
});
