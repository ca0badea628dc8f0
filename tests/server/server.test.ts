// The OpenAI-compatible server, driven by the official `openai` npm client (and plain fetch for
// what the client cannot send) on 127.0.0.1, over a tiny fixture on the CPU backend.
import { request } from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type Model, type MoetServer } from '../../src/index.js';
import { FifoLock } from '../../src/server/http.js';
import { fixturePath } from '../fixtures/make.js';

let server: MoetServer;
let client: OpenAI;
/** logit_bias that bans every end-of-generation token: generation runs until max_tokens */
let noEog: Record<string, number>;

beforeAll(async () => {
  const path = await fixturePath('qwen3moe-f32');
  server = await startServer({ model: path, backend: 'cpu', port: 0, metrics: true, contextLength: 2048 });
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  noEog = Object.fromEntries([...server.model!.tokenizer.eogIds].map((id) => [String(id), -100]));
});
afterAll(async () => {
  await server?.close();
});

async function post(path: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const r = await fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, json, text };
}

function expectOpenAIError(json: any, param?: string | null): void {
  expect(json.error).toBeTypeOf('object');
  expect(json.error.message).toBeTypeOf('string');
  expect(json.error.type).toBe('invalid_request_error');
  expect(json.error).toHaveProperty('code');
  expect(json.error).toHaveProperty('param');
  if (param !== undefined) expect(json.error.param).toBe(param);
}

const MESSAGES = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: 'Say hello.' },
];

describe('chat completions', () => {
  it('answers without streaming: message, finish_reason, usage, llama-server timings', async () => {
    const r = await client.chat.completions.create({ model: 'whatever', messages: MESSAGES, max_tokens: 6, temperature: 0, logit_bias: noEog });
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(typeof r.choices[0]!.message.content).toBe('string');
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(6);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(5);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + 6);
    const t = (r as any).timings;
    for (const k of ['prompt_n', 'prompt_ms', 'prompt_per_second', 'predicted_n', 'predicted_ms', 'predicted_per_second']) {
      expect(t[k], k).toBeTypeOf('number');
    }
    expect(t.predicted_n).toBe(6);
  });

  it('streams the same answer as SSE, with usage when include_usage', async () => {
    const req = { messages: MESSAGES, max_tokens: 8, temperature: 0, logit_bias: noEog, model: 'm' };
    const whole = await client.chat.completions.create(req);
    const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let role: string | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (!c) continue;
      role ??= c.delta.role;
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    expect(role).toBe('assistant');
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe('length');
    expect(usage!.completion_tokens).toBe(8);
    expect(usage!.prompt_tokens).toBe(whole.usage!.prompt_tokens);
  });

  it('ends the raw SSE stream with data: [DONE]', async () => {
    const r = await post('/v1/chat/completions', { messages: MESSAGES, max_tokens: 3, stream: true });
    expect(r.status).toBe(200);
    const events = r.text.split('\n\n').filter(Boolean);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
  });

  it('reuses the KV cache for a follow-up turn (cached prompt tokens)', async () => {
    const first = await client.chat.completions.create({ model: 'moet', messages: MESSAGES, max_tokens: 4, temperature: 0, logit_bias: noEog });
    const answer = first.choices[0]!.message.content!;
    const second = await client.chat.completions.create({
      model: 'moet',
      messages: [...MESSAGES, { role: 'assistant', content: answer }, { role: 'user', content: 'Again.' }],
      max_tokens: 4,
      temperature: 0,
    });
    const cached = second.usage!.prompt_tokens_details!.cached_tokens!;
    expect(cached).toBeGreaterThanOrEqual(first.usage!.prompt_tokens);
    expect((second as any).timings.cache_n).toBe(cached);
    expect((second as any).timings.prompt_n).toBe(second.usage!.prompt_tokens - cached);
  });

  it('honours stop and seed', async () => {
    const base = { model: 'moet', messages: MESSAGES, max_tokens: 12, temperature: 1, seed: 1234, logit_bias: noEog };
    const a = await client.chat.completions.create(base);
    const b = await client.chat.completions.create(base);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content);
    const text = a.choices[0]!.message.content!;
    expect(text.length).toBeGreaterThanOrEqual(5);
    const stop = text.slice(3, 5);
    const c = await client.chat.completions.create({ ...base, stop: [stop] });
    expect(c.choices[0]!.message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(c.choices[0]!.finish_reason).toBe('stop');
  });

  it('puts thinking in reasoning_content when the template opens <think>', async () => {
    const thinking = await startServer({
      model: server.model!,
      port: 0,
      chatTemplate:
        "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}" +
        "{{ '<|im_start|>assistant\\n<think>\\n' }}",
    });
    try {
      const c = new OpenAI({ baseURL: `${thinking.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const r = await c.chat.completions.create({ model: 'moet', messages: MESSAGES, max_tokens: 6, temperature: 0, logit_bias: noEog });
      const msg = r.choices[0]!.message as any;
      expect(msg.reasoning_content.length).toBeGreaterThan(0);
      expect(msg.content).toBe('');
      const s = await c.chat.completions.create({ model: 'moet', messages: MESSAGES, max_tokens: 6, temperature: 0, logit_bias: noEog, stream: true });
      let reasoning = '';
      for await (const ch of s) reasoning += (ch.choices[0]?.delta as any)?.reasoning_content ?? '';
      expect(reasoning).toBe(msg.reasoning_content);
      const raw = await c.chat.completions.create({ model: 'moet', messages: MESSAGES, max_tokens: 6, temperature: 0, logit_bias: noEog, reasoning_format: 'none' } as any);
      expect(raw.choices[0]!.message.content!.startsWith('<think>\n')).toBe(true);
    } finally {
      await thinking.close();
    }
  });
});

describe('completions', () => {
  it('completes a prompt, non-streaming and streaming', async () => {
    const req = { model: 'm', prompt: 'Once upon a time', max_tokens: 5, temperature: 0, logit_bias: noEog };
    const r = await client.completions.create(req);
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(5);
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const ch of await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
      text += ch.choices[0]?.text ?? '';
      if (ch.usage) usage = ch.usage;
    }
    expect(text).toBe(r.choices[0]!.text);
    expect(usage!.completion_tokens).toBe(5);
  });

  it('takes token ids as the prompt', async () => {
    const ids = server.model!.tokenize('Once upon a time');
    const a = await client.completions.create({ model: 'm', prompt: ids, max_tokens: 4, temperature: 0, logit_bias: noEog });
    const b = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 4, temperature: 0, logit_bias: noEog });
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect(a.usage!.prompt_tokens).toBe(ids.length);
  });
});

describe('queueing and aborts', () => {
  it('aborts a stream when the client goes away and serves the next request promptly', async () => {
    const long = await client.chat.completions.create({
      model: 'moet',
      messages: [{ role: 'user', content: 'Tell me a very long story.' }],
      max_tokens: 100_000,
      logit_bias: noEog,
      stream: true,
    });
    let chunks = 0;
    const t = performance.now();
    for await (const _ of long) {
      // the openai client's way to cancel a stream: abort its controller (breaking the loop does too)
      if (++chunks === 3) long.controller.abort();
    }
    // the stream ended at once, not after the thousands of tokens the whole context would take
    expect(performance.now() - t).toBeLessThan(3000);
    expect(chunks).toBeGreaterThanOrEqual(3);
    expect(chunks).toBeLessThan(20);
    const t0 = performance.now();
    const next = await client.chat.completions.create({ model: 'moet', messages: MESSAGES, max_tokens: 3 });
    expect(next.choices[0]!.finish_reason).toBeDefined();
    // the aborted one would need thousands of tokens (the whole context); the next one must not wait for them
    expect(performance.now() - t0).toBeLessThan(3000);
    const m = await (await fetch(`${server.url}/metrics`)).text();
    expect(m).toMatch(/^moet_requests_deferred 0$/m);
    expect(m).toMatch(/^moet_requests_processing 0$/m);
  });

  it('completes 50 concurrent requests', async () => {
    const all = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client.chat.completions.create({ model: 'moet', messages: [{ role: 'user', content: `Request ${i}` }], max_tokens: 2, temperature: 0, logit_bias: noEog }),
      ),
    );
    expect(all).toHaveLength(50);
    expect(new Set(all.map((r) => r.id)).size).toBe(50);
    for (const r of all) expect(r.usage!.completion_tokens).toBe(2);
  });
});

describe('errors', () => {
  it('bad JSON → 400', async () => {
    const r = await post('/v1/chat/completions', '{"messages": [');
    expect(r.status).toBe(400);
    expectOpenAIError(r.json);
  });

  it('a body that is not an object → 400', async () => {
    const r = await post('/v1/completions', '[1, 2]');
    expect(r.status).toBe(400);
    expectOpenAIError(r.json);
  });

  it('a field of the wrong type → 400 naming it', async () => {
    const r = await post('/v1/chat/completions', { messages: MESSAGES, temperature: 'hot' });
    expect(r.status).toBe(400);
    expectOpenAIError(r.json, 'temperature');
    const m = await post('/v1/chat/completions', { messages: 'hello' });
    expect(m.status).toBe(400);
    expectOpenAIError(m.json, 'messages');
    const role = await post('/v1/chat/completions', { messages: [{ role: 3, content: 'x' }] });
    expectOpenAIError(role.json, 'messages[0].role');
    // the official client surfaces it as a BadRequestError
    await expect(client.chat.completions.create({ model: 'moet', messages: MESSAGES, max_tokens: 'ten' as unknown as number })).rejects.toMatchObject({
      status: 400,
      param: 'max_tokens',
    });
  });

  it('n > 1 → 400', async () => {
    await expect(client.chat.completions.create({ model: 'moet', messages: MESSAGES, n: 2 })).rejects.toMatchObject({ status: 400, param: 'n' });
  });

  it('a prompt longer than the context → 400 context_length_exceeded', async () => {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'word '.repeat(3000) }] });
    expect(r.status).toBe(400);
    expectOpenAIError(r.json, 'messages');
    expect(r.json.error.code).toBe('context_length_exceeded');
  });

  it('a body over the limit (8 MiB) → 413', async () => {
    const big = JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(9 << 20) }] });
    const r = await post('/v1/chat/completions', big);
    expect(r.status).toBe(413);
    expect(r.json.error.message).toMatch(/too large/);
    // the server is still fine
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('a chunked body (no Content-Length) that grows over the limit → 413, and the server lives on', async () => {
    const small = await startServer({ model: server.model!, port: 0, maxBodyBytes: 1 << 20 });
    try {
      const r = await new Promise<{ status?: number; body: string }>((resolve) => {
        const req = request(`${small.url}/v1/chat/completions`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode, body }));
        });
        req.on('error', () => {}); // the server may close while we still write
        const chunk = Buffer.alloc(64 << 10, 'x');
        let n = 0;
        const write = () => {
          while (n++ < 40) if (!req.write(chunk)) return void req.once('drain', write);
          req.end();
        };
        write();
      });
      expect(r.status).toBe(413);
      expect(JSON.parse(r.body).error.code).toBe('request_too_large');
      expect((await fetch(`${small.url}/health`)).status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('unknown route → 404, wrong method → 405', async () => {
    const r = await fetch(`${server.url}/v1/nothing`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/no route/);
    const g = await fetch(`${server.url}/v1/chat/completions`);
    expect(g.status).toBe(405);
  });
});

describe('other endpoints', () => {
  it('GET /health and /v1/models', async () => {
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const list = await client.models.list();
    expect(list.data).toHaveLength(1);
    expect(list.data[0]!.id).toMatch(/^qwen3moe-f32.*\.gguf$/);
    expect(list.data[0]!.object).toBe('model');
  });

  it('/tokenize and /detokenize round trip (llama-server shapes)', async () => {
    const text = 'Hello world, the quick brown fox.';
    const t = await post('/tokenize', { content: text });
    expect(t.status).toBe(200);
    expect(t.json.tokens).toEqual(server.model!.tokenize(text));
    const d = await post('/detokenize', { tokens: t.json.tokens });
    expect(d.json.content).toBe(text);
    const p = await post('/tokenize', { content: 'Hello', with_pieces: true });
    expect(p.json.tokens.map((x: { piece: string }) => x.piece).join('')).toBe('Hello');
    expect((await post('/detokenize', { tokens: [1e9] })).status).toBe(400);
  });

  it('GET /metrics in Prometheus text format', async () => {
    const r = await fetch(`${server.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await r.text();
    expect(text).toMatch(/^# TYPE moet_prompt_tokens_total counter$/m);
    expect(Number(/^moet_tokens_predicted_total (\d+)$/m.exec(text)![1])).toBeGreaterThan(0);
    expect(Number(/^moet_requests_total (\d+)$/m.exec(text)![1])).toBeGreaterThan(50);
  });
});

describe('startup', () => {
  it('listens before the model is loaded: /health is 503 loading, then 200', async () => {
    let resolve!: (m: Model) => void;
    const pending = new Promise<Model>((r) => (resolve = r));
    const s = await startServer({ model: pending, port: 0 });
    try {
      const h = await fetch(`${s.url}/health`);
      expect(h.status).toBe(503);
      expect(await h.json()).toEqual({ status: 'loading' });
      const c = await post2(s.url, '/v1/chat/completions', { messages: MESSAGES });
      expect(c.status).toBe(503);
      resolve(server.model!);
      await s.ready;
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    } finally {
      await s.close();
    }
    expect(server.model!.isDisposed).toBe(false); // a model given to the server is not disposed by it
  });

  it('metrics are off unless asked for; binds loopback by default', async () => {
    const s = await startServer({ model: server.model!, port: 0 });
    try {
      expect(s.host).toBe('127.0.0.1');
      expect((await fetch(`${s.url}/metrics`)).status).toBe(404);
    } finally {
      await s.close();
    }
  });

  it('with an API key, everything but /health needs it', async () => {
    const s = await startServer({ model: server.model!, port: 0, apiKey: 'sesame' });
    try {
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      const denied = await fetch(`${s.url}/v1/models`);
      expect(denied.status).toBe(401);
      expect(((await denied.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
      await expect(new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list()).rejects.toMatchObject({ status: 401 });
      const ok = await new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sesame', maxRetries: 0 }).models.list();
      expect(ok.data).toHaveLength(1);
    } finally {
      await s.close();
    }
  });

  it('reports a model that fails to load', async () => {
    const s = await startServer({ model: '/nonexistent/model.gguf', port: 0 });
    try {
      await expect(s.ready).rejects.toThrow(/ENOENT|no such file/);
      expect((await fetch(`${s.url}/health`)).status).toBe(500);
    } finally {
      await s.close();
    }
  });
});

async function post2(base: string, path: string, body: object): Promise<{ status: number }> {
  const r = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
  await r.arrayBuffer();
  return { status: r.status };
}

describe('FifoLock', () => {
  it('grants in arrival order, one holder at a time; an aborted waiter leaves the queue', async () => {
    const lock = new FifoLock();
    const order: number[] = [];
    const first = await lock.acquire();
    const ac = new AbortController();
    const waiters = [1, 2, 3].map((i) =>
      lock.acquire(i === 2 ? ac.signal : undefined).then(
        (release) => {
          order.push(i);
          release();
        },
        () => order.push(-i),
      ),
    );
    expect(lock.waiting).toBe(3);
    ac.abort();
    await Promise.resolve();
    expect(lock.waiting).toBe(2);
    first();
    await Promise.all(waiters);
    expect(order).toEqual([-2, 1, 3]);
    expect(lock.busy).toBe(false);
  });
});
