// HTTP plumbing of the server on node:http: bounded JSON bodies, OpenAI-style error bodies,
// server-sent events, and a FIFO lock so that one generation runs at a time.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AbortError } from '../errors.js';

/** An error answered with an HTTP status and an OpenAI-style body. @throws nothing */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : status === 404 ? 'not_found_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** `{ error: { message, type, param, code } }`, OpenAI's error body. @throws nothing */
export function errorBody(e: HttpError): { error: { message: string; type: string; param: string | null; code: string | number | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** Writes a JSON response (unless the connection is gone or headers were sent). @throws TypeError for a body JSON cannot encode (BigInt, cycles) */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Writes an HttpError as JSON. @throws nothing */
export function sendError(res: ServerResponse, e: HttpError): void {
  sendJson(res, e.status, errorBody(e), e.status === 413 ? { Connection: 'close' } : {});
}

/**
 * Reads a request body of at most `limit` bytes and parses it as a JSON object.
 * @throws HttpError 413 when the body is larger than `limit` (the declared Content-Length is checked
 *   before anything is read); 400 for a body that is not JSON or not a JSON object
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const tooLarge = () => new HttpError(413, `request body too large: the limit is ${limit} bytes`, null, 'request_too_large');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks, size).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new HttpError(400, `the request body is not valid JSON: ${why}`, null, 'invalid_json');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'the request body must be a JSON object', null, 'invalid_json');
  }
  return body as Record<string, unknown>;
}

/**
 * Server-sent events on a response: `data: <json>` lines, ended by `data: [DONE]`. Writes after the
 * client went away are dropped.
 * @throws nothing (send: TypeError for data JSON cannot encode)
 */
export class EventStream {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
  }

  /** false once the client went away */
  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  send(data: unknown): void {
    if (this.open) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Sends `data: [DONE]` and ends the response. */
  done(): void {
    if (this.open) this.res.end('data: [DONE]\n\n');
  }

  /** Ends the response without [DONE] (after an error event). */
  end(): void {
    if (this.open) this.res.end();
  }
}

/** A first-in first-out lock: one holder at a time, waiters served in arrival order. @throws nothing */
export class FifoLock {
  private held = false;
  private readonly waiters: { grant: () => void }[] = [];

  /** requests waiting for the lock */
  get waiting(): number {
    return this.waiters.length;
  }

  /** true while someone holds the lock */
  get busy(): boolean {
    return this.held;
  }

  /**
   * Waits for the lock; resolves with its release function.
   * @throws AbortError when `signal` fires while waiting (the place in the queue is given up)
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(new AbortError('the request was aborted while queued'));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next.grant();
      else this.held = false;
    };
    if (!this.held) {
      this.held = true;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new AbortError('the request was aborted while queued'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }
}
