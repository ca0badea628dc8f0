// Session.chat: template rendering (Qwen3's Jinja template from the real-vocabulary fixture, ChatML
// fallback), KV-cache reuse across turns, and the streaming <think> split.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ThinkSplitter } from '../../src/chat.js';
import {
  AbortError,
  ContextOverflowError,
  MoetError,
  loadModel,
  type ChatChunk,
  type ChatMessage,
  type ChatOptions,
  type ChatResult,
  type Model,
  type Session,
} from '../../src/index.js';
import { fixturePath } from '../fixtures/make.js';

async function turn(session: Session, messages: ChatMessage[], opts: ChatOptions): Promise<{ chunks: ChatChunk[]; result: ChatResult }> {
  const chunks: ChatChunk[] = [];
  const it = session.chat(messages, opts);
  for (;;) {
    const r = await it.next();
    if (r.done) return { chunks, result: r.value };
    chunks.push(r.value);
  }
}

/** bans every end-of-generation token, so that a turn runs to maxTokens */
function noEog(model: Model): Map<number, number> {
  return new Map([...model.tokenizer.eogIds].map((id) => [id, -Infinity]));
}

const CONVO: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2+2?' },
];

describe('Qwen3 chat template (real vocabulary fixture)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await fixturePath('qwen3moe-q4_k_m-realvocab'), { backend: 'cpu', contextLength: 256 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('renders ChatML with the generation prompt', () => {
    expect(model.tokenizer.chatTemplate).toContain('enable_thinking');
    expect(model.applyChatTemplate(CONVO)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it('adds an empty think block when thinking is disabled', () => {
    expect(model.applyChatTemplate(CONVO, { enableThinking: false })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
        '<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
    expect(model.applyChatTemplate(CONVO, { enableThinking: true })).toBe(model.applyChatTemplate(CONVO));
  });

  it("drops earlier turns' think blocks, keeps the reasoning of turns after the last user message", () => {
    const history: ChatMessage[] = [
      ...CONVO,
      { role: 'assistant', content: '<think>\nEasy.\n</think>\n\n4' },
      { role: 'user', content: 'And 3+3?' },
    ];
    expect(model.applyChatTemplate(history, { addGenerationPrompt: false })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
        '<|im_start|>assistant\n4<|im_end|>\n' +
        '<|im_start|>user\nAnd 3+3?<|im_end|>\n',
    );
    const last = [...history, { role: 'assistant', content: '6', reasoningContent: 'Also easy.' }];
    expect(model.applyChatTemplate(last, { addGenerationPrompt: false }).endsWith(
      '<|im_start|>assistant\n<think>\nAlso easy.\n</think>\n\n6<|im_end|>\n',
    )).toBe(true);
  });

  it('tokenizes the rendered prompt with control tokens and <think> as single tokens', () => {
    const ids = model.tokenize(model.applyChatTemplate(CONVO, { enableThinking: false }), { special: true });
    expect(ids[0]).toBe(151644); // <|im_start|>
    expect(ids).toContain(151667); // <think>
    expect(ids).toContain(151668); // </think>
  });

  it('with thinking disabled, streams content only', async () => {
    const s = model.createSession();
    const { chunks, result } = await turn(s, CONVO, { enableThinking: false, maxTokens: 3, temperature: 0, logitBias: noEog(model) });
    expect(chunks.every((c) => c.kind === 'content')).toBe(true);
    expect(result.thinking).toBe('');
    expect(chunks.map((c) => c.text).join('')).toBe(result.content);
    expect(result.generatedTokens).toBe(3);
    s.dispose();
  });

  it('after a thinking turn, re-evaluates from where the dropped think block began, and matches a fresh session', async () => {
    // the context holds turn 1 as generated, think block included
    const answered: ChatMessage[] = [...CONVO, { role: 'assistant', content: '<think>\nEasy.\n</think>\n\n4' }];
    const asGenerated = model.applyChatTemplate(answered, { addGenerationPrompt: false }).replace(/\n$/, '');
    expect(asGenerated).toContain('<think>\nEasy.\n</think>\n\n4<|im_end|>');
    const next: ChatMessage[] = [...answered, { role: 'user', content: 'And 3+3?' }];
    const opts = { enableThinking: false, maxTokens: 2, temperature: 0, logitBias: noEog(model) };

    const s = model.createSession();
    await s.eval(model.tokenize(asGenerated, { special: true }));
    const { result } = await turn(s, next, opts);
    const prompt = model.tokenize(model.applyChatTemplate(next, { enableThinking: false }), { special: true });
    const shared = model.tokenize(model.applyChatTemplate(CONVO), { special: true }).length; // up to "assistant\n"
    expect(result.cachedTokens).toBe(shared);
    expect(result.timings.promptTokens).toBe(prompt.length - shared);
    expect(s.tokens.slice(0, prompt.length)).toEqual(prompt);

    const fresh = model.createSession();
    const f = await turn(fresh, next, opts);
    expect(f.result.cachedTokens).toBe(0);
    expect(s.tokens).toEqual(fresh.tokens);
    expect(result.content).toBe(f.result.content);
    s.dispose();
    fresh.dispose();
  });
});

describe('chat on a model without a template (ChatML fallback)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await fixturePath('qwen3moe-f32'), { backend: 'cpu', contextLength: 512 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('renders plain ChatML', () => {
    expect(model.tokenizer.chatTemplate).toBeUndefined();
    expect(model.applyChatTemplate([{ role: 'user', content: 'hi' }])).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('reuses the KV cache across turns: only new tokens are evaluated, same tokens as a fresh session', async () => {
    const opts = { maxTokens: 5, temperature: 0, logitBias: noEog(model) };
    const s = model.createSession();
    const messages: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }];
    const t1 = await turn(s, messages, opts);
    expect(t1.result.cachedTokens).toBe(0);
    expect(t1.result.timings.promptTokens).toBe(t1.result.promptTokens);

    messages.push({ role: 'assistant', content: t1.result.content }, { role: 'user', content: 'Tell me more' });
    const t2 = await turn(s, messages, opts);
    // at least the whole first prompt is reused; what the model generated is reused as far as it
    // tokenizes back to the same ids
    expect(t2.result.cachedTokens).toBeGreaterThanOrEqual(t1.result.promptTokens);
    expect(t2.result.timings.promptTokens).toBe(t2.result.promptTokens - t2.result.cachedTokens);

    const fresh = model.createSession();
    const f2 = await turn(fresh, messages, opts);
    expect(f2.result.content).toBe(t2.result.content);
    expect(fresh.tokens).toEqual(s.tokens);

    // the same conversation again: everything but the last prompt token is reused
    const again = await turn(s, messages, opts);
    expect(again.result.cachedTokens).toBe(again.result.promptTokens - 1);
    expect(again.result.content).toBe(t2.result.content);
  });

  it('reuses a session after an aborted turn', async () => {
    const s = model.createSession();
    const ac = new AbortController();
    const messages: ChatMessage[] = [{ role: 'user', content: 'Go on' }];
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of s.chat(messages, { signal: ac.signal, temperature: 0, logitBias: noEog(model) })) if (++n === 2) ac.abort();
      })(),
    ).rejects.toThrow(AbortError);
    const t = await turn(s, messages, { maxTokens: 3, temperature: 0 });
    const fresh = await turn(model.createSession(), messages, { maxTokens: 3, temperature: 0 });
    expect(t.result.content).toBe(fresh.result.content);
  });

  it('streams thinking when the template opens <think> in the prompt', async () => {
    const template =
      "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}" +
      "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif %}";
    const s = model.createSession();
    const { chunks, result } = await turn(s, [{ role: 'user', content: 'hi' }], { template, maxTokens: 6, temperature: 0, logitBias: noEog(model) });
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.every((c) => c.kind === 'thinking')).toBe(true);
    expect(result.content).toBe('');
    expect(result.thinking).toBe(chunks.map((c) => c.text).join(''));
  });

  it('throws ContextOverflowError for a conversation that does not fit, keeping the context', async () => {
    const s = model.createSession();
    await turn(s, [{ role: 'user', content: 'hi' }], { maxTokens: 2, temperature: 0 });
    const before = s.tokens;
    await expect(turn(s, [{ role: 'user', content: 'word '.repeat(600) }], {})).rejects.toThrow(ContextOverflowError);
    expect(s.tokens).toEqual(before);
  });

  it('rejects malformed messages and templates', async () => {
    const s = model.createSession();
    await expect(turn(s, [], {})).rejects.toThrow(RangeError);
    await expect(turn(s, [{ role: 'user' } as unknown as ChatMessage], {})).rejects.toThrow(RangeError);
    await expect(turn(s, [{ role: 'user', content: 'x' }], { template: '{% for %}' })).rejects.toThrow(MoetError);
  });

  it('Session.truncate keeps a prefix and continues exactly like a fresh evaluation', async () => {
    const ids = model.tokenize('The quick brown fox jumps over the lazy dog');
    const s = model.createSession();
    await s.eval(ids);
    s.truncate(4);
    expect(s.tokens).toEqual(ids.slice(0, 4));
    const a = await s.eval(ids.slice(4, 6));
    const fresh = model.createSession();
    const b = await fresh.eval(ids.slice(0, 6));
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(() => s.truncate(-1)).toThrow(RangeError);
    s.truncate(100); // beyond the end: nothing happens
    expect(s.length).toBe(6);
  });
});

describe('ThinkSplitter', () => {
  function split(pieces: string[], inThinking = false): { thinking: string; content: string; kinds: string[] } {
    const sp = new ThinkSplitter(inThinking);
    const out: ChatChunk[] = [];
    for (const p of pieces) out.push(...sp.push(p));
    out.push(...sp.flush());
    for (const c of out) expect(c.text.length).toBeGreaterThan(0);
    const thinking = out.filter((c) => c.kind === 'thinking').map((c) => c.text).join('');
    const content = out.filter((c) => c.kind === 'content').map((c) => c.text).join('');
    expect(thinking).toBe(sp.thinking);
    expect(content).toBe(sp.content);
    return { thinking, content, kinds: out.map((c) => c.kind) };
  }
  const chars = (s: string) => [...s];
  const QWEN = '<think>\nLet me think.\nOK.\n</think>\n\nThe answer is 4.';

  it('splits Qwen3 output, trimming the newlines around the tags', () => {
    for (const pieces of [[QWEN], chars(QWEN), ['<th', 'ink>\nLet me', ' think.\nOK.\n</', 'think>', '\n\nThe answer is 4.']]) {
      const r = split(pieces);
      expect(r.thinking).toBe('Let me think.\nOK.');
      expect(r.content).toBe('The answer is 4.');
      expect(r.kinds[0]).toBe('thinking');
      expect(r.kinds.at(-1)).toBe('content');
    }
  });

  it('starts in thinking when the prompt opened <think>', () => {
    const r = split(chars('Hmm.\n</think>\n\nYes.'), true);
    expect(r).toMatchObject({ thinking: 'Hmm.', content: 'Yes.' });
  });

  it('passes plain answers through; <think> only counts at the start', () => {
    expect(split(chars('Hello <think> world'))).toMatchObject({ thinking: '', content: 'Hello <think> world' });
    expect(split(['\n\nHi'])).toMatchObject({ thinking: '', content: 'Hi' });
    expect(split(['<thin'])).toMatchObject({ thinking: '', content: '<thin' }); // a partial tag at the end is text
  });

  it('handles an empty think block (thinking disabled) and an unfinished one', () => {
    expect(split(['<think>\n\n</think>\n\n', 'Direct.'])).toMatchObject({ thinking: '', content: 'Direct.' });
    expect(split(chars('<think>\nStill going </thi'))).toMatchObject({ thinking: 'Still going </thi', content: '' });
  });

  it('keeps whitespace inside the reasoning', () => {
    expect(split(chars('<think>\na\n\nb  \n</think>c'))).toMatchObject({ thinking: 'a\n\nb', content: 'c' });
  });
});
