// Routing traces from Session.eval / Session.generate on the CPU backend (qwen3moe-f32 fixture):
// shape, agreement with the forward's own intermediates, chunking, generate's token accounting,
// and that tracing changes nothing else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromGGUF } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { loadModel, MoetError, type Model, type RoutingTrace } from '../../src/index.js';
import { RoutingTraceRecorder } from '../../src/trace/recorder.js';
import { openGGUF } from '../../gguf/reader.js';
import { fixturePath, fixtureSpec } from '../fixtures/make.js';

const TEXT = 'The quick brown fox jumps over the lazy dog, again and again.';

let model: Model;
beforeAll(async () => {
  model = await loadModel(await fixturePath('qwen3moe-f32'), { backend: 'cpu' });
});
afterAll(async () => {
  await model?.dispose();
});

/** The forward's own routing intermediates of one eval, gathered per layer through onTensor. */
async function forwardRouting(ids: number[]): Promise<{ topk: Int32Array[]; wnorm: Float32Array[]; probs: Float32Array[] }> {
  const file = await openGGUF(await fixturePath('qwen3moe-f32'));
  try {
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    const backend = (await CpuBackend.load(file, cfg)) as CpuBackend;
    const got = { topk: [] as Int32Array[], wnorm: [] as Float32Array[], probs: [] as Float32Array[] };
    const seq = backend.createSequence(64, {
      onTensor: (name, layer, data) => {
        if (name === 'ffn_moe_topk') got.topk[layer] = data as Int32Array;
        if (name === 'ffn_moe_weights_norm') got.wnorm[layer] = data as Float32Array;
        if (name === 'ffn_moe_probs') got.probs[layer] = data as Float32Array;
      },
    });
    await seq.eval(ids);
    return got;
  } finally {
    await file.close();
  }
}

function expectShape(t: RoutingTrace, n: number, probs: boolean): void {
  const spec = fixtureSpec('qwen3moe-f32');
  expect(t.nLayer).toBe(spec.nLayer);
  expect(t.k).toBe(spec.nExpertUsed);
  expect(t.nExpert).toBe(spec.nExpert);
  expect(t.tokens).toHaveLength(n);
  expect(t.ids).toBeInstanceOf(Uint16Array);
  expect(t.ids).toHaveLength(n * t.nLayer * t.k);
  expect(t.weights).toHaveLength(n * t.nLayer * t.k);
  if (probs) expect(t.probs).toHaveLength(n * t.nLayer * t.nExpert);
  else expect(t.probs).toBeUndefined();
}

describe('routing traces on the CPU backend', () => {
  it('eval records ids, weights and probs equal to the forward intermediates', async () => {
    const ids = model.tokenize(TEXT);
    const s = model.createSession();
    await s.eval(ids, { trace: { routing: true, probs: true } });
    const t = s.lastTrace!;
    expectShape(t, ids.length, true);
    expect(t.tokens).toEqual(ids);
    expect(t.start).toBe(0);
    const ref = await forwardRouting(ids);
    const { nLayer, k, nExpert } = t;
    for (let tk = 0; tk < ids.length; tk++) {
      for (let l = 0; l < nLayer; l++) {
        const o = (tk * nLayer + l) * k;
        expect(Array.from(t.ids.subarray(o, o + k))).toEqual(Array.from(ref.topk[l]!.subarray(tk * k, (tk + 1) * k)));
        expect(Array.from(t.weights.subarray(o, o + k))).toEqual(Array.from(ref.wnorm[l]!.subarray(tk * k, (tk + 1) * k)));
        const p = t.probs!.subarray((tk * nLayer + l) * nExpert, (tk * nLayer + l + 1) * nExpert);
        expect(Array.from(p)).toEqual(Array.from(ref.probs[l]!.subarray(tk * nExpert, (tk + 1) * nExpert)));
        // consistency: weights sum to 1, ids are the top-k of probs in descending order
        let sum = 0;
        for (let j = 0; j < k; j++) sum += t.weights[o + j]!;
        expect(sum).toBeCloseTo(1, 5);
        const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
        expect(Array.from(t.ids.subarray(o, o + k))).toEqual(order.slice(0, k));
      }
    }
    s.dispose();
  });

  it('tracing changes no logits; without a trace lastTrace is null', async () => {
    const ids = model.tokenize(TEXT);
    const a = model.createSession();
    const b = model.createSession();
    const la = await a.eval(ids, { trace: { routing: true } });
    const lb = await b.eval(ids);
    expect(Array.from(la)).toEqual(Array.from(lb));
    expect(a.lastTrace).not.toBeNull();
    expect(b.lastTrace).toBeNull();
    expectShape(a.lastTrace!, ids.length, false);
    // a later call without trace clears it
    await a.eval([ids[0]!]);
    expect(a.lastTrace).toBeNull();
    a.dispose();
    b.dispose();
  });

  it('a second eval traces only its own tokens, from its position; same routing as one eval', async () => {
    const ids = model.tokenize(TEXT);
    const cut = 5;
    const one = model.createSession();
    await one.eval(ids, { trace: { routing: true } });
    const whole = one.lastTrace!;
    const two = model.createSession();
    await two.eval(ids.slice(0, cut));
    await two.eval(ids.slice(cut), { trace: { routing: true } });
    const tail = two.lastTrace!;
    expect(tail.start).toBe(cut);
    expect(tail.tokens).toEqual(ids.slice(cut));
    const per = whole.nLayer * whole.k;
    expect(Array.from(tail.ids)).toEqual(Array.from(whole.ids.subarray(cut * per)));
    for (let i = 0; i < tail.weights.length; i++) expect(tail.weights[i]).toBeCloseTo(whole.weights[cut * per + i]!, 5);
    one.dispose();
    two.dispose();
  });

  it('generate traces every token it evaluates (the last sampled one is not evaluated)', async () => {
    const s = model.createSession();
    const prompt = model.tokenize('Once upon a time');
    const out: number[] = [];
    for await (const g of s.generate(prompt, { maxTokens: 4, temperature: 0, trace: { routing: true } })) out.push(g.id);
    const t = s.lastTrace!;
    expect(out).toHaveLength(4);
    expect(t.start).toBe(0);
    expect(t.tokens).toEqual([...prompt, ...out.slice(0, 3)]);
    expectShape(t, prompt.length + 3, false);
    // continuing: the pending token comes first, at its position
    for await (const g of s.generate('', { maxTokens: 2, temperature: 0, trace: { routing: true, probs: true } })) out.push(g.id);
    const t2 = s.lastTrace!;
    expect(t2.start).toBe(prompt.length + 3);
    expect(t2.tokens).toEqual([out[3], out[4]]);
    expectShape(t2, 2, true);
    s.dispose();
  });

  it('a long eval (more than one internal batch of 512) is traced whole', async () => {
    const ids = Array.from({ length: 520 }, (_, i) => 3 + ((i * 37) % 200));
    const s = model.createSession();
    await s.eval(ids, { trace: { routing: true } });
    const t = s.lastTrace!;
    expectShape(t, 520, false);
    // every row was written: each token's k ids distinct, weights sum to 1
    for (let r = 0; r < 520 * t.nLayer; r++) {
      const row = t.ids.subarray(r * t.k, (r + 1) * t.k);
      expect(new Set(row).size).toBe(t.k);
      let sum = 0;
      for (let j = 0; j < t.k; j++) sum += t.weights[r * t.k + j]!;
      expect(sum).toBeCloseTo(1, 5);
    }
    s.dispose();
  });

  it('bad trace options', async () => {
    const s = model.createSession();
    await expect(s.eval([1], { trace: { routing: false, probs: true } })).rejects.toThrow(RangeError);
    await s.eval([1], { trace: { routing: false } });
    expect(s.lastTrace).toBeNull();
    s.dispose();
    const dense = await loadModel(await fixturePath('qwen3-f32'), { backend: 'cpu' });
    try {
      await expect(dense.createSession().eval([1], { trace: { routing: true } })).rejects.toThrow(/no experts/);
    } finally {
      await dense.dispose();
    }
  });

  it('a backend without tracesRouting is refused before evaluating', async () => {
    const backend = (model as unknown as { backend: { tracesRouting?: boolean } }).backend;
    const saved = Object.getOwnPropertyDescriptor(backend, 'tracesRouting');
    Object.defineProperty(backend, 'tracesRouting', { value: false, configurable: true });
    try {
      const s = model.createSession();
      await expect(s.eval([1, 2], { trace: { routing: true } })).rejects.toThrow(MoetError);
      expect(s.length).toBe(0);
    } finally {
      if (saved) Object.defineProperty(backend, 'tracesRouting', saved);
    }
  });

  it('the recorder is filled once per eval call', async () => {
    const ids = model.tokenize(TEXT);
    const file = await openGGUF(await fixturePath('qwen3moe-f32'));
    try {
      const cfg = configFromGGUF(file.metadata, file.tensorByName);
      const backend = (await CpuBackend.load(file, cfg)) as CpuBackend;
      const seq = backend.createSequence(64);
      const rec = new RoutingTraceRecorder({ nLayer: cfg.nLayer, k: cfg.nExpertUsed, nExpert: cfg.nExpert }, false);
      let calls = 0;
      const sink = { probs: false, add: (b: Parameters<RoutingTraceRecorder['add']>[0]) => (calls++, rec.add(b)) };
      await seq.eval(ids.slice(0, 4), { trace: sink });
      await seq.eval(ids.slice(4), { trace: sink });
      expect(calls).toBe(2);
      expect(rec.trace().tokens).toEqual(ids);
    } finally {
      await file.close();
    }
  });
});
