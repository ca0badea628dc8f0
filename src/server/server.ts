// An OpenAI-compatible HTTP server on node:http, shaped like llama-server: /v1/chat/completions,
// /v1/completions, /v1/models, /health, /tokenize, /detokenize and (optionally) /metrics.
//
// One model, one session, one generation at a time: requests wait in a FIFO. The session's KV cache
// is reused across requests for the prompt prefix they share (a follow-up turn of the same
// conversation evaluates only its new tokens). A client that disconnects aborts its generation (or
// leaves the queue) through an AbortController, freeing the slot for the next request.
//
// The server listens before the model is loaded: /health answers 503 {"status":"loading"} until it is.
import type { ExpertCacheOptions, GpuMemoryBudget } from '../gpu/expert-cache.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { applyChatTemplate, chatTemplateSource, chatTurn, isHarmonyTemplate, promptOpensThinking, tokenizeChatPrompt, type ChatResult } from '../chat.js';
import { AbortError, ContextOverflowError, MoetError } from '../errors.js';
import { loadModel, type BackendName, type GenerateOptions, type Model, type Session, type StopReason } from '../model.js';
import { errorBody, EventStream, FifoLock, HttpError, readJsonBody, sendError, sendJson } from './http.js';
import {
  parseChatRequest,
  parseCompletionRequest,
  parseDetokenizeRequest,
  parseTokenizeRequest,
  type CommonRequest,
} from './openai.js';

/** Default request body limit: 8 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 8 << 20;

/** Options of startServer. */
export interface ServerOptions {
  /**
   * a GGUF path (loaded after the server starts listening), a model already loaded, or a promise of
   * one (the server listens at once and says 'loading' until it resolves). The server disposes a model
   * it loaded itself, not one it was given
   */
  model: string | Model | Promise<Model>;
  /** interface to listen on. Default '127.0.0.1' (loopback only) */
  host?: string;
  /** port; 0 picks a free one. Default 8080 */
  port?: number;
  /** loadModel's backend, when `model` is a path */
  backend?: BackendName;
  /** loadModel's contextLength, when `model` is a path */
  contextLength?: number;
  /** loadModel's gpuMemoryBudget and expert cache options, when `model` is a path */
  gpuMemoryBudget?: GpuMemoryBudget;
  experts?: ExpertCacheOptions;
  /** called with the loading progress (0..1), when `model` is a path */
  onProgress?: (fraction: number) => void;
  /** serve GET /metrics (Prometheus text format). Default false */
  metrics?: boolean;
  /** largest request body accepted; larger ones get 413. Default 8 MiB */
  maxBodyBytes?: number;
  /** the model id in /v1/models and in responses. Default: the file name, or the model's name */
  modelAlias?: string;
  /** a Jinja chat template to use instead of the GGUF's (llama-server's --chat-template-file) */
  chatTemplate?: string;
  /** when set, every route but /health needs `Authorization: Bearer <apiKey>` (401 otherwise) */
  apiKey?: string;
  /** called with one line per request (method, path, status, milliseconds) */
  log?: (line: string) => void;
}

/** A running server. */
export interface MoetServer {
  /** `http://host:port` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** resolves when the model is loaded; rejects when loading fails */
  readonly ready: Promise<void>;
  /** the model, once loaded (null before) */
  readonly model: Model | null;
  /** Stops listening, aborts running and queued requests and disposes the model if the server loaded it. */
  close(): Promise<void>;
}

/** Running totals for /metrics. */
interface Stats {
  requests: number;
  requestsFailed: number;
  promptTokens: number;
  promptCachedTokens: number;
  promptMs: number;
  predictedTokens: number;
  predictedMs: number;
  decodeRuns: number;
}

function finishReason(r: StopReason): 'stop' | 'length' {
  return r === 'eog' || r === 'stop' || r === 'abort' ? 'stop' : 'length';
}

/** llama-server's `timings` object. */
function timingsOf(r: ChatResult): Record<string, number> {
  const t = r.timings;
  const perTok = (ms: number, n: number) => (n > 0 ? ms / n : 0);
  const perSec = (ms: number, n: number) => (ms > 0 ? (1000 * n) / ms : 0);
  return {
    cache_n: r.cachedTokens,
    prompt_n: t.promptTokens,
    prompt_ms: t.promptMs,
    prompt_per_token_ms: perTok(t.promptMs, t.promptTokens),
    prompt_per_second: perSec(t.promptMs, t.promptTokens),
    predicted_n: t.generatedTokens,
    predicted_ms: t.genMs,
    predicted_per_token_ms: perTok(t.genMs, t.generatedTokens),
    predicted_per_second: perSec(t.genMs, t.generatedTokens),
  };
}

function usageOf(r: ChatResult): Record<string, unknown> {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.generatedTokens,
    total_tokens: r.promptTokens + r.generatedTokens,
    prompt_tokens_details: { cached_tokens: r.cachedTokens },
  };
}

/**
 * Starts an OpenAI-compatible server. Resolves once it listens; when `model` is a path the model is
 * loaded afterwards (see `ready`; /health says 'loading' meanwhile).
 * @throws RangeError for bad options; Node's listen errors (EADDRINUSE, EACCES)
 */
export async function startServer(opts: ServerOptions): Promise<MoetServer> {
  const host = opts.host ?? '127.0.0.1';
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!(Number.isInteger(maxBody) && maxBody > 0)) throw new RangeError(`maxBodyBytes must be a positive integer, got ${opts.maxBodyBytes}`);
  const port = opts.port ?? 8080;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new RangeError(`port must be an integer in 0..65535, got ${opts.port}`);

  const given = opts.model;
  let model: Model | null = typeof given === 'string' || given instanceof Promise ? null : given;
  const ownsModel = typeof given === 'string';
  let loadError: Error | null = null;
  let session: Session | null = null;
  const aliasOf = (m: Model | null) =>
    opts.modelAlias ?? (typeof given === 'string' ? basename(given) : (m?.info.name ?? 'model'));
  const created = Math.floor(Date.now() / 1000);
  const lock = new FifoLock();
  const inflight = new Set<AbortController>();
  const stats: Stats = { requests: 0, requestsFailed: 0, promptTokens: 0, promptCachedTokens: 0, promptMs: 0, predictedTokens: 0, predictedMs: 0, decodeRuns: 0 };
  let closing = false;

  const requireModel = (): Model => {
    if (model) return model;
    if (loadError) throw new HttpError(500, `the model failed to load: ${loadError.message}`, null, 'model_load_failed');
    throw new HttpError(503, 'Loading model', null, 'model_loading', 'unavailable_error');
  };

  // ---- generation -------------------------------------------------------------------------------

  /** Runs one generation in the FIFO; `onChunk` gets the streamed pieces. */
  async function generate(
    ids: number[],
    req: CommonRequest,
    mode: { raw: boolean; inThinking: boolean; harmonyPrompt?: string },
    signal: AbortSignal,
    onChunk: (kind: 'thinking' | 'content', text: string) => void,
  ): Promise<ChatResult> {
    const m = requireModel();
    if (ids.length === 0) throw new HttpError(400, 'the prompt is empty', 'prompt', 'invalid_value');
    if (ids.length > m.contextLength) {
      throw new HttpError(
        400,
        `the prompt has ${ids.length} tokens, more than the context length of ${m.contextLength}`,
        'messages' in req ? 'messages' : 'prompt',
        'context_length_exceeded',
      );
    }
    const release = await lock.acquire(signal);
    try {
      session ??= m.createSession();
      const gen: GenerateOptions = { ...req.generate, signal };
      const it = chatTurn(session, ids, { ...gen, ...mode });
      for (;;) {
        const r = await it.next();
        if (r.done) {
          const res = r.value;
          stats.promptTokens += res.timings.promptTokens;
          stats.promptCachedTokens += res.cachedTokens;
          stats.promptMs += res.timings.promptMs;
          stats.predictedTokens += res.timings.generatedTokens;
          stats.predictedMs += res.timings.genMs;
          stats.decodeRuns += res.timings.evalRuns + (res.timings.promptTokens > 0 ? 1 : 0);
          return res;
        }
        onChunk(r.value.kind, r.value.text);
      }
    } finally {
      release();
    }
  }

  function completionId(prefix: string): string {
    return `${prefix}-${randomBytes(12).toString('base64url')}`;
  }

  // ---- routes -----------------------------------------------------------------------------------

  async function chatCompletions(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const body = await readJsonBody(req, maxBody);
    const m = requireModel();
    const r = parseChatRequest(body);
    let prompt: string;
    try {
      prompt = applyChatTemplate(m.tokenizer, r.messages, { enableThinking: r.enableThinking, reasoningEffort: r.reasoningEffort, template: opts.chatTemplate });
    } catch (e) {
      if (e instanceof RangeError) throw new HttpError(400, e.message, 'messages');
      throw e;
    }
    const ids = tokenizeChatPrompt(m.tokenizer, prompt);
    // harmony (gpt-oss): analysis → reasoning_content, final → content, tool calls dropped (tools are
    // not implemented; llama.cpp's parser drops such unsolicited calls too)
    const harmony = isHarmonyTemplate(chatTemplateSource(m.tokenizer, opts.chatTemplate));
    const mode = { raw: r.reasoningFormat === 'none', inThinking: !harmony && promptOpensThinking(prompt), ...(harmony ? { harmonyPrompt: prompt } : {}) };
    // with reasoning_format 'none' and a template that opened <think>, the content starts inside it
    const rawPrefix = mode.raw && mode.inThinking ? '<think>\n' : '';
    const id = completionId('chatcmpl');
    const createdAt = Math.floor(Date.now() / 1000);
    const base = { id, created: createdAt, model: aliasOf(m), system_fingerprint: `moet-${m.info.backend}` };

    if (!r.stream) {
      const result = await generate(ids, r, mode, signal, () => {});
      const message: Record<string, unknown> = { role: 'assistant', content: rawPrefix + result.content };
      if (result.thinking) message.reasoning_content = result.thinking;
      sendJson(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(result.stopReason) }],
        usage: usageOf(result),
        timings: timingsOf(result),
      });
      return;
    }

    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) => ({
      ...base,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(r.includeUsage ? { usage: null } : {}),
      ...extra,
    });
    // headers go out only once the request holds the model (errors before that are plain JSON)
    let sse: EventStream | null = null;
    const open = () => {
      if (!sse) {
        sse = new EventStream(res);
        sse.send(chunk({ role: 'assistant', content: rawPrefix }, null));
      }
      return sse;
    };
    try {
      const result = await generate(ids, r, mode, signal, (kind, text) => {
        open().send(chunk(kind === 'thinking' ? { reasoning_content: text } : { content: text }, null));
      });
      const s = open();
      s.send(chunk({}, finishReason(result.stopReason), { timings: timingsOf(result) }));
      if (r.includeUsage) s.send({ ...base, object: 'chat.completion.chunk', choices: [], usage: usageOf(result) });
      s.done();
    } catch (e) {
      if (!sse) throw e;
      streamError(sse, e);
    }
  }

  async function completions(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const body = await readJsonBody(req, maxBody);
    const m = requireModel();
    const r = parseCompletionRequest(body);
    let ids: number[];
    if (typeof r.prompt === 'string') {
      ids = m.tokenizer.encode(r.prompt, { special: true, addBos: m.tokenizer.addBos });
    } else {
      ids = r.prompt;
      const bad = ids.find((t) => t >= m.config.nVocab);
      if (bad !== undefined) throw new HttpError(400, `token id ${bad} is outside the vocabulary 0..${m.config.nVocab - 1}`, 'prompt');
    }
    const mode = { raw: true, inThinking: false };
    const id = completionId('cmpl');
    const base = { id, created: Math.floor(Date.now() / 1000), model: aliasOf(m), system_fingerprint: `moet-${m.info.backend}` };
    const choice = (text: string, finish: string | null) => ({ text, index: 0, logprobs: null, finish_reason: finish });

    if (!r.stream) {
      const result = await generate(ids, r, mode, signal, () => {});
      sendJson(res, 200, {
        ...base,
        object: 'text_completion',
        choices: [choice(result.content, finishReason(result.stopReason))],
        usage: usageOf(result),
        timings: timingsOf(result),
      });
      return;
    }
    let sse: EventStream | null = null;
    const open = () => (sse ??= new EventStream(res));
    const usageNull = r.includeUsage ? { usage: null } : {};
    try {
      const result = await generate(ids, r, mode, signal, (_kind, text) => {
        open().send({ ...base, object: 'text_completion', choices: [choice(text, null)], ...usageNull });
      });
      const s = open();
      s.send({ ...base, object: 'text_completion', choices: [choice('', finishReason(result.stopReason))], ...usageNull, timings: timingsOf(result) });
      if (r.includeUsage) s.send({ ...base, object: 'text_completion', choices: [], usage: usageOf(result) });
      s.done();
    } catch (e) {
      if (!sse) throw e;
      streamError(sse, e);
    }
  }

  /** an error after the stream started: one `data: {"error": …}` event, then the end */
  function streamError(sse: EventStream, e: unknown): void {
    if (e instanceof AbortError) {
      sse.end();
      return;
    }
    stats.requestsFailed++;
    const he = toHttpError(e);
    sse.send(errorBody(he));
    sse.end();
  }

  function models(res: ServerResponse): void {
    const m = requireModel();
    sendJson(res, 200, {
      object: 'list',
      data: [
        {
          id: aliasOf(m),
          object: 'model',
          created,
          owned_by: 'moet',
          meta: {
            name: m.info.name,
            architecture: m.info.architecture,
            backend: m.info.backend,
            n_vocab: m.info.vocabSize,
            n_ctx_train: m.info.contextTrained,
            n_ctx: m.contextLength,
            n_embd: m.info.embeddingLength,
            n_params: m.info.parameterCount,
            size: m.info.fileSize,
            experts: m.info.experts,
          },
        },
      ],
    });
  }

  async function tokenize(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, maxBody);
    const m = requireModel();
    const r = parseTokenizeRequest(body);
    const ids = m.tokenizer.encode(r.content, { special: r.parseSpecial, addBos: r.addSpecial && m.tokenizer.addBos });
    if (!r.withPieces) {
      sendJson(res, 200, { tokens: ids });
      return;
    }
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    const tokens = ids.map((id) => {
      const bytes = m.tokenizer.tokenToBytes(id);
      try {
        return { id, piece: utf8.decode(bytes) };
      } catch {
        return { id, piece: [...bytes] }; // not valid UTF-8 on its own: the bytes, as llama-server does
      }
    });
    sendJson(res, 200, { tokens });
  }

  async function detokenize(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, maxBody);
    const m = requireModel();
    const ids = parseDetokenizeRequest(body, m.config.nVocab);
    sendJson(res, 200, { content: m.tokenizer.decode(ids, { special: true }) });
  }

  function health(res: ServerResponse): void {
    if (model) sendJson(res, 200, { status: 'ok' });
    else if (loadError) sendJson(res, 500, { status: 'error', error: { message: loadError.message, type: 'server_error', code: 500 } });
    else sendJson(res, 503, { status: 'loading' });
  }

  function metrics(res: ServerResponse): void {
    const lines: string[] = [];
    const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number) => {
      lines.push(`# HELP moet_${name} ${help}`, `# TYPE moet_${name} ${type}`, `moet_${name} ${Number.isFinite(value) ? value : 0}`);
    };
    metric('requests_total', 'counter', 'Generation requests answered.', stats.requests);
    metric('requests_failed_total', 'counter', 'Generation requests that ended in an error.', stats.requestsFailed);
    metric('prompt_tokens_total', 'counter', 'Prompt tokens evaluated.', stats.promptTokens);
    metric('prompt_tokens_cached_total', 'counter', 'Prompt tokens reused from the KV cache.', stats.promptCachedTokens);
    metric('prompt_seconds_total', 'counter', 'Prompt evaluation time.', stats.promptMs / 1000);
    metric('tokens_predicted_total', 'counter', 'Tokens generated.', stats.predictedTokens);
    metric('tokens_predicted_seconds_total', 'counter', 'Generation time.', stats.predictedMs / 1000);
    metric('n_decode_total', 'counter', 'Backend evaluation calls.', stats.decodeRuns);
    metric('prompt_tokens_seconds', 'gauge', 'Average prompt throughput in tokens/s.', stats.promptMs > 0 ? (1000 * stats.promptTokens) / stats.promptMs : 0);
    metric('predicted_tokens_seconds', 'gauge', 'Average generation throughput in tokens/s.', stats.predictedMs > 0 ? (1000 * stats.predictedTokens) / stats.predictedMs : 0);
    metric('requests_processing', 'gauge', 'Requests generating now.', lock.busy ? 1 : 0);
    metric('requests_deferred', 'gauge', 'Requests waiting in the queue.', lock.waiting);
    metric('kv_cache_tokens', 'gauge', 'Tokens in the KV cache.', session ? session.length : 0);
    metric('model_loaded', 'gauge', '1 once the model is loaded.', model ? 1 : 0);
    const text = lines.join('\n') + '\n';
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  type Handler = (req: IncomingMessage, res: ServerResponse, signal: AbortSignal) => Promise<void> | void;
  const routes: Record<string, { method: 'GET' | 'POST'; handler: Handler; generation?: boolean }> = {
    '/health': { method: 'GET', handler: (_q, s) => health(s) },
    '/v1/health': { method: 'GET', handler: (_q, s) => health(s) },
    '/v1/models': { method: 'GET', handler: (_q, s) => models(s) },
    '/models': { method: 'GET', handler: (_q, s) => models(s) },
    '/v1/chat/completions': { method: 'POST', handler: chatCompletions, generation: true },
    '/chat/completions': { method: 'POST', handler: chatCompletions, generation: true },
    '/v1/completions': { method: 'POST', handler: completions, generation: true },
    '/completions': { method: 'POST', handler: completions, generation: true },
    '/tokenize': { method: 'POST', handler: tokenize },
    '/detokenize': { method: 'POST', handler: detokenize },
  };
  if (opts.metrics) routes['/metrics'] = { method: 'GET', handler: (_q, s) => metrics(s) };

  function toHttpError(e: unknown): HttpError {
    if (e instanceof HttpError) return e;
    if (e instanceof ContextOverflowError) return new HttpError(400, e.message, null, 'context_length_exceeded');
    if (e instanceof RangeError) return new HttpError(400, e.message, null, 'invalid_value');
    const msg = e instanceof Error ? `${e.name === 'Error' ? '' : e.name + ': '}${e.message}` : String(e);
    return new HttpError(500, msg, null, 'internal_error');
  }

  const keyDigest = opts.apiKey !== undefined ? createHash('sha256').update(opts.apiKey).digest() : null;
  /** the request carries the API key (compared in constant time) */
  function authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    const given = /^Bearer\s+(.+)$/i.exec(h)?.[1] ?? (typeof req.headers['x-api-key'] === 'string' ? req.headers['x-api-key'] : '');
    return keyDigest !== null && timingSafeEqual(createHash('sha256').update(given).digest(), keyDigest);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const ac = new AbortController();
    inflight.add(ac);
    // 'close' before the response finished: the client went away
    res.on('close', () => {
      inflight.delete(ac);
      if (!res.writableFinished) ac.abort(new Error('the client disconnected'));
    });
    if (opts.log) {
      res.on('close', () => {
        const status = res.writableFinished ? String(res.statusCode) : 'aborted by the client';
        opts.log!(`${req.method} ${req.url} ${status} ${(performance.now() - t0).toFixed(0)} ms`);
      });
    }
    let route: (typeof routes)[string] | undefined;
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      route = Object.hasOwn(routes, path) ? routes[path] : undefined;
      if (!route) throw new HttpError(404, `no route ${req.method} ${path}`, null, 'not_found');
      if (req.method !== route.method) {
        res.setHeader('Allow', route.method);
        throw new HttpError(405, `${path} takes ${route.method}, not ${req.method}`, null, 'method_not_allowed');
      }
      if (opts.apiKey !== undefined && path !== '/health' && path !== '/v1/health' && !authorized(req)) {
        res.setHeader('WWW-Authenticate', 'Bearer');
        throw new HttpError(401, 'Invalid API Key', null, 'invalid_api_key', 'authentication_error');
      }
      if (closing) throw new HttpError(503, 'the server is shutting down', null, 'shutting_down', 'unavailable_error');
      if (route.generation) stats.requests++;
      await route.handler(req, res, ac.signal);
    } catch (e) {
      if (e instanceof AbortError && ac.signal.aborted) return; // the client is gone
      const he = toHttpError(e);
      if (route?.generation && he.status >= 500) stats.requestsFailed++;
      // a 413 leaves the rest of the body unread: close the connection once the answer is out
      const socket = req.socket;
      if (he.status === 413 && socket) res.once('finish', () => socket.destroySoon());
      if (res.headersSent) res.end();
      else sendError(res, he);
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      // never expected (handle answers its own errors); keep the server alive regardless
      opts.log?.(`internal error: ${e instanceof Error ? e.message : String(e)}`);
      res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  const loading: Promise<Model> | null =
    typeof given === 'string'
      ? loadModel(given, { backend: opts.backend, contextLength: opts.contextLength, onProgress: opts.onProgress, gpuMemoryBudget: opts.gpuMemoryBudget, experts: opts.experts })
      : given instanceof Promise
        ? given
        : null;
  const ready: Promise<void> = loading
    ? loading.then(
        async (m) => {
          if (closing) {
            if (ownsModel) await m.dispose();
            throw new MoetError('the server was closed while the model was loading');
          }
          model = m;
        },
        (e: unknown) => {
          loadError = e instanceof Error ? e : new Error(String(e));
          throw e;
        },
      )
    : Promise.resolve();
  ready.catch(() => {}); // reported through `ready` and /health; never an unhandled rejection

  return {
    url: `http://${urlHost}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    ready,
    get model() {
      return model;
    },
    async close() {
      if (closing) return;
      closing = true;
      for (const ac of inflight) ac.abort(new Error('the server is closing'));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 1000).unref();
      await closed;
      await ready.catch(() => {});
      if (ownsModel && model) await model.dispose();
    },
  };
}
