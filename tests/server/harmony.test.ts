// The server on a harmony model (gpt-oss, issue 15): the gpt-oss fixture with the real template and
// o200k_harmony tokens (tests/chat/family-fixtures.ts), CPU backend. The analysis channel goes to
// reasoning_content and the final channel to content, like Qwen3's thinking; reasoning_effort (the
// OpenAI field, or chat_template_kwargs) reaches the template; a developer message is the template's
// developer message; generation stops at <|return|>.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenizeChatPrompt } from '../../src/chat.js';
import { startServer, type ChatMessage, type MoetServer } from '../../src/index.js';
import { parseChatRequest } from '../../src/server/openai.js';
import { GPT_OSS_TEMPLATE, familyModelPath } from '../chat/family-fixtures.js';

const MESSAGES = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Say hello.' },
];
const opening = (channel: string) => GPT_OSS_TEMPLATE.replace('<|start|>assistant\n{%- endif -%}', `<|start|>assistant<|channel|>${channel}<|message|>\n{%- endif -%}`);

let server: MoetServer;
let client: OpenAI;
/** bans the end-of-generation tokens and the harmony tokens that would end a message */
let keepGoing: Record<string, number>;
let idOf: (text: string) => number;

beforeAll(async () => {
  server = await startServer({ model: await familyModelPath('gptoss'), backend: 'cpu', port: 0, contextLength: 1024 });
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  const tok = server.model!.tokenizer;
  idOf = (text) => tok.encode(text, { special: true, addBos: false })[0]!;
  keepGoing = Object.fromEntries([...tok.eogIds, idOf('<|end|>'), idOf('<|start|>')].map((id) => [String(id), -100]));
}, 120_000);
afterAll(async () => {
  await server?.close();
});

/** prompt tokens of `messages` as the server renders them (today's date) */
function promptTokens(messages: ChatMessage[], reasoningEffort?: string): number {
  const m = server.model!;
  return tokenizeChatPrompt(m.tokenizer, m.applyChatTemplate(messages, { reasoningEffort })).length;
}

describe('chat completions with the harmony template', () => {
  it('stops at <|return|> (finish_reason stop, nothing written); a developer message is the system one; reasoning_effort reaches the template', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 4, temperature: 0, logit_bias: { [idOf('<|return|>')]: 100 } });
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.choices[0]!.message.content).toBe('');
    expect((r.choices[0]!.message as any).reasoning_content).toBeUndefined();
    expect(r.usage!.completion_tokens).toBe(1);
    expect(r.usage!.prompt_tokens).toBe(promptTokens(MESSAGES));

    const dev = await client.chat.completions.create({
      model: 'm', messages: [{ role: 'developer', content: 'You are terse.' }, MESSAGES[1]!], max_tokens: 1, temperature: 0, logit_bias: { [idOf('<|return|>')]: 100 },
    });
    expect(dev.usage!.prompt_tokens).toBe(r.usage!.prompt_tokens);

    const high = await client.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 1, temperature: 0, reasoning_effort: 'high' });
    expect(high.usage!.prompt_tokens).toBe(promptTokens(MESSAGES, 'high'));
    const kw = await client.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 1, temperature: 0, chat_template_kwargs: { reasoning_effort: 'low' } } as any);
    expect(kw.usage!.prompt_tokens).toBe(promptTokens(MESSAGES, 'low'));
  });

  it('the analysis channel goes to reasoning_content, streaming and not; reasoning_format none leaves it in content', async () => {
    const s = await startServer({ model: server.model!, port: 0, chatTemplate: opening('analysis') });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const req = { model: 'm', messages: MESSAGES, max_tokens: 6, temperature: 0, logit_bias: keepGoing };
      const r = await c.chat.completions.create(req);
      const msg = r.choices[0]!.message as any;
      expect(msg.reasoning_content.length).toBeGreaterThan(0);
      expect(msg.content).toBe('');
      let reasoning = '';
      let content = '';
      for await (const ch of await c.chat.completions.create({ ...req, stream: true })) {
        reasoning += (ch.choices[0]?.delta as any)?.reasoning_content ?? '';
        content += ch.choices[0]?.delta?.content ?? '';
      }
      expect([reasoning, content]).toEqual([msg.reasoning_content, '']);
      const raw = await c.chat.completions.create({ ...req, reasoning_format: 'none' } as any);
      expect(raw.choices[0]!.message.content).toBe(msg.reasoning_content);
      expect((raw.choices[0]!.message as any).reasoning_content).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it('the final channel goes to content', async () => {
    const s = await startServer({ model: server.model!, port: 0, chatTemplate: opening('final') });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const r = await c.chat.completions.create({ model: 'm', messages: MESSAGES, max_tokens: 6, temperature: 0, logit_bias: keepGoing });
      expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
      expect((r.choices[0]!.message as any).reasoning_content).toBeUndefined();
      expect(r.choices[0]!.finish_reason).toBe('length');
    } finally {
      await s.close();
    }
  });
});

describe('reasoning_effort in the request', () => {
  const body = (extra: object) => ({ messages: [{ role: 'user', content: 'x' }], ...extra });
  it('the OpenAI field overrides chat_template_kwargs; "none" turns thinking off (llama-server)', () => {
    expect(parseChatRequest(body({ reasoning_effort: 'high' })).reasoningEffort).toBe('high');
    expect(parseChatRequest(body({ chat_template_kwargs: { reasoning_effort: 'low' } })).reasoningEffort).toBe('low');
    expect(parseChatRequest(body({ reasoning_effort: 'high', chat_template_kwargs: { reasoning_effort: 'low' } })).reasoningEffort).toBe('high');
    const none = parseChatRequest(body({ reasoning_effort: 'none', chat_template_kwargs: { reasoning_effort: 'low' } }));
    expect([none.reasoningEffort, none.enableThinking]).toEqual([undefined, false]);
    expect(() => parseChatRequest(body({ reasoning_effort: 3 }))).toThrow(/reasoning_effort/);
    expect(() => parseChatRequest(body({ chat_template_kwargs: { reasoning_effort: 3 } }))).toThrow(/chat_template_kwargs.reasoning_effort/);
    // developer stays developer (applyChatTemplate decides per template)
    expect(parseChatRequest({ messages: [{ role: 'developer', content: 'd' }] }).messages[0]!.role).toBe('developer');
  });
});
