// Validation of OpenAI-style request bodies (/v1/chat/completions, /v1/completions, /tokenize,
// /detokenize) into moet's options. Every problem is an HttpError 400 naming the field (`param`).
import type { ChatMessage } from '../chat.js';
import type { GenerateOptions } from '../model.js';
import { HttpError } from './http.js';

type Body = Record<string, unknown>;

function bad(param: string, message: string, code: string | null = 'invalid_value'): HttpError {
  return new HttpError(400, message, param, code);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** a number field (null and absent mean "default") */
function num(body: Body, key: string, opts: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw bad(key, `'${key}' must be ${opts.integer ? 'an integer' : 'a number'}, got ${typeName(v)}`, 'invalid_type');
  }
  if (opts.integer && !Number.isInteger(v)) throw bad(key, `'${key}' must be an integer, got ${v}`, 'invalid_type');
  if (opts.min !== undefined && v < opts.min) throw bad(key, `'${key}' must be ≥ ${opts.min}, got ${v}`);
  if (opts.max !== undefined && v > opts.max) throw bad(key, `'${key}' must be ≤ ${opts.max}, got ${v}`);
  return v;
}

function bool(body: Body, key: string, param = key): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(param, `'${param}' must be a boolean, got ${typeName(v)}`, 'invalid_type');
  return v;
}

function str(body: Body, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(key, `'${key}' must be a string, got ${typeName(v)}`, 'invalid_type');
  return v;
}

function obj(body: Body, key: string): Body | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(key, `'${key}' must be an object, got ${typeName(v)}`, 'invalid_type');
  return v as Body;
}

/** Fields shared by both completion endpoints. */
export interface CommonRequest {
  /** the `model` field as sent (informational: the server has one model) */
  model: string | undefined;
  stream: boolean;
  /** stream_options.include_usage */
  includeUsage: boolean;
  /** sampling and stopping options for Session.generate */
  generate: GenerateOptions;
}

export interface ChatCompletionRequest extends CommonRequest {
  messages: ChatMessage[];
  /** chat_template_kwargs.enable_thinking (false also for reasoning_effort "none") */
  enableThinking: boolean | undefined;
  /** reasoning_effort, else chat_template_kwargs.reasoning_effort (gpt-oss's template reads it) */
  reasoningEffort: string | undefined;
  /** 'deepseek' (default): thinking in reasoning_content; 'none': left in content with its tags */
  reasoningFormat: 'deepseek' | 'none';
}

export interface CompletionRequest extends CommonRequest {
  /** text, or token ids */
  prompt: string | number[];
}

function unsupported(body: Body, key: string, isUnset: (v: unknown) => boolean, what: string): void {
  const v = body[key];
  if (v !== undefined && v !== null && !isUnset(v)) throw bad(key, `'${key}' is not supported by moet: ${what}`, 'unsupported_parameter');
}

function common(body: Body): CommonRequest {
  const model = str(body, 'model');
  const stream = bool(body, 'stream') ?? false;
  const so = obj(body, 'stream_options');
  const includeUsage = so ? (bool(so, 'include_usage', 'stream_options.include_usage') ?? false) : false;
  const n = num(body, 'n', { integer: true });
  if (n !== undefined && n !== 1) throw bad('n', `only n=1 is supported, got n=${n}`, 'unsupported_value');
  unsupported(body, 'logprobs', (v) => v === false, 'log probabilities are not returned');
  unsupported(body, 'top_logprobs', (v) => v === 0, 'log probabilities are not returned');
  unsupported(body, 'best_of', (v) => v === 1, 'only best_of=1');

  const maxTokens = num(body, 'max_completion_tokens', { integer: true, min: 0 }) ?? num(body, 'max_tokens', { integer: true, min: 0 });
  const nPredict = num(body, 'n_predict', { integer: true, min: -1 });

  let stop: string[] = [];
  const s = body.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    s.forEach((x, i) => {
      if (typeof x !== 'string') throw bad('stop', `'stop[${i}]' must be a string, got ${typeName(x)}`, 'invalid_type');
    });
    stop = s as string[];
  } else if (s !== undefined && s !== null) {
    throw bad('stop', `'stop' must be a string or an array of strings, got ${typeName(s)}`, 'invalid_type');
  }

  let logitBias: Map<number, number> | undefined;
  const lb = obj(body, 'logit_bias');
  if (lb) {
    logitBias = new Map();
    for (const [k, v] of Object.entries(lb)) {
      const id = Number(k);
      if (!Number.isInteger(id) || id < 0) throw bad('logit_bias', `'logit_bias' keys must be token ids, got "${k}"`);
      if (typeof v !== 'number' || Number.isNaN(v)) throw bad('logit_bias', `'logit_bias["${k}"]' must be a number`, 'invalid_type');
      logitBias.set(id, v);
    }
  }

  const seed = num(body, 'seed', { integer: true });
  const generate: GenerateOptions = {
    maxTokens: maxTokens ?? (nPredict !== undefined && nPredict >= 0 ? nPredict : undefined),
    stop,
    temperature: num(body, 'temperature', { min: 0 }),
    topP: num(body, 'top_p', { min: 0, max: 1 }),
    topK: num(body, 'top_k', { integer: true }),
    minP: num(body, 'min_p', { min: 0, max: 1 }),
    // the sampler takes an unsigned 32-bit seed; OpenAI's is any integer
    seed: seed === undefined ? undefined : seed >>> 0,
    presencePenalty: num(body, 'presence_penalty', { min: -2, max: 2 }),
    frequencyPenalty: num(body, 'frequency_penalty', { min: -2, max: 2 }),
    repeatPenalty: num(body, 'repeat_penalty', { min: 0 }),
    repeatLastN: num(body, 'repeat_last_n', { integer: true, min: -1 }),
    logitBias,
  };
  for (const k of Object.keys(generate) as (keyof GenerateOptions)[]) if (generate[k] === undefined) delete generate[k];
  return { model, stream, includeUsage, generate };
}

/** the text of a message's content: a string, null, or an array of text parts */
function contentText(v: unknown, param: string): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    return v
      .map((part, j) => {
        const p = part as Body;
        if (p === null || typeof p !== 'object' || Array.isArray(p)) throw bad(`${param}[${j}]`, `'${param}[${j}]' must be an object`, 'invalid_type');
        if (p.type !== 'text') throw bad(`${param}[${j}].type`, `content parts of type '${String(p.type)}' are not supported (text only)`, 'unsupported_value');
        if (typeof p.text !== 'string') throw bad(`${param}[${j}].text`, `'${param}[${j}].text' must be a string`, 'invalid_type');
        return p.text;
      })
      .join('');
  }
  throw bad(param, `'${param}' must be a string or an array of text parts, got ${typeName(v)}`, 'invalid_type');
}

/**
 * Parses a /v1/chat/completions body.
 * @throws HttpError 400 naming the offending field
 */
export function parseChatRequest(body: Body): ChatCompletionRequest {
  const c = common(body);
  const raw = body.messages;
  if (raw === undefined || raw === null) throw bad('messages', "'messages' is required", 'missing_required_parameter');
  if (!Array.isArray(raw)) throw bad('messages', `'messages' must be an array, got ${typeName(raw)}`, 'invalid_type');
  if (raw.length === 0) throw bad('messages', "'messages' must not be empty");
  const messages = raw.map((m, i): ChatMessage => {
    const p = `messages[${i}]`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw bad(p, `'${p}' must be an object, got ${typeName(m)}`, 'invalid_type');
    const mm = m as Body;
    if (typeof mm.role !== 'string') throw bad(`${p}.role`, `'${p}.role' must be a string, got ${typeName(mm.role)}`, 'invalid_type');
    if (!['system', 'developer', 'user', 'assistant', 'tool'].includes(mm.role)) {
      throw bad(`${p}.role`, `'${p}.role' must be one of system, developer, user, assistant, tool; got "${mm.role}"`);
    }
    if (mm.content === undefined && mm.role !== 'assistant') throw bad(`${p}.content`, `'${p}.content' is required`, 'missing_required_parameter');
    // 'developer' stays: applyChatTemplate passes it as 'system' except to gpt-oss's template (llama.cpp)
    const msg: ChatMessage = { role: mm.role, content: contentText(mm.content, `${p}.content`) };
    if (mm.reasoning_content !== undefined && mm.reasoning_content !== null) {
      if (typeof mm.reasoning_content !== 'string') throw bad(`${p}.reasoning_content`, `'${p}.reasoning_content' must be a string`, 'invalid_type');
      msg.reasoningContent = mm.reasoning_content;
    }
    return msg;
  });
  unsupported(body, 'tools', (v) => Array.isArray(v) && v.length === 0, 'tool calling is not implemented');
  const kwargs = obj(body, 'chat_template_kwargs');
  let enableThinking = kwargs ? bool(kwargs, 'enable_thinking', 'chat_template_kwargs.enable_thinking') : undefined;
  const kwEffort = kwargs?.reasoning_effort;
  if (kwEffort !== undefined && kwEffort !== null && typeof kwEffort !== 'string') {
    throw bad('chat_template_kwargs.reasoning_effort', `'chat_template_kwargs.reasoning_effort' must be a string, got ${typeName(kwEffort)}`, 'invalid_type');
  }
  let reasoningEffort = typeof kwEffort === 'string' ? kwEffort : undefined;
  // llama.cpp's server: the OpenAI field overrides the kwarg; "none" turns thinking off and drops it
  const effort = str(body, 'reasoning_effort');
  if (effort === 'none') {
    enableThinking = false;
    reasoningEffort = undefined;
  } else if (effort) {
    reasoningEffort = effort;
  }
  const rf = str(body, 'reasoning_format') ?? 'deepseek';
  if (rf !== 'deepseek' && rf !== 'none' && rf !== 'auto') throw bad('reasoning_format', `'reasoning_format' must be 'none', 'auto' or 'deepseek', got "${rf}"`);
  return { ...c, messages, enableThinking, reasoningEffort, reasoningFormat: rf === 'none' ? 'none' : 'deepseek' };
}

function tokenArray(v: unknown[], param: string): number[] {
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw bad(param, `'${param}[${i}]' must be a token id (an integer ≥ 0)`, 'invalid_type');
  });
  return v as number[];
}

/**
 * Parses a /v1/completions body. `prompt` is a string, an array of token ids, or a one-element array
 * of either.
 * @throws HttpError 400 naming the offending field
 */
export function parseCompletionRequest(body: Body): CompletionRequest {
  const c = common(body);
  let p = body.prompt;
  if (p === undefined || p === null) throw bad('prompt', "'prompt' is required", 'missing_required_parameter');
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let prompt: string | number[];
  if (typeof p === 'string') prompt = p;
  else if (Array.isArray(p)) {
    if (p.some((x) => typeof x === 'string' || Array.isArray(x))) {
      throw bad('prompt', 'only one prompt per request is supported (n=1)', 'unsupported_value');
    }
    prompt = tokenArray(p, 'prompt');
  } else throw bad('prompt', `'prompt' must be a string or an array of token ids, got ${typeName(p)}`, 'invalid_type');
  unsupported(body, 'echo', (v) => v === false, 'the prompt is not echoed');
  unsupported(body, 'suffix', (v) => v === '', 'no fill-in-the-middle');
  return { ...c, prompt };
}

/**
 * /tokenize body (llama-server): `{ content, add_special?, parse_special?, with_pieces? }`
 * @throws HttpError 400 naming the offending field
 */
export function parseTokenizeRequest(body: Body): { content: string; addSpecial: boolean; parseSpecial: boolean; withPieces: boolean } {
  const content = str(body, 'content');
  if (content === undefined) throw bad('content', "'content' is required", 'missing_required_parameter');
  return {
    content,
    addSpecial: bool(body, 'add_special') ?? false,
    parseSpecial: bool(body, 'parse_special') ?? true,
    withPieces: bool(body, 'with_pieces') ?? false,
  };
}

/**
 * /detokenize body (llama-server): `{ tokens: [id, ...] }`
 * @throws HttpError 400 for a missing or malformed list, or an id outside the vocabulary
 */
export function parseDetokenizeRequest(body: Body, nVocab: number): number[] {
  const t = body.tokens;
  if (t === undefined || t === null) throw bad('tokens', "'tokens' is required", 'missing_required_parameter');
  if (!Array.isArray(t)) throw bad('tokens', `'tokens' must be an array of token ids, got ${typeName(t)}`, 'invalid_type');
  const ids = tokenArray(t, 'tokens');
  for (const id of ids) if (id >= nVocab) throw bad('tokens', `token id ${id} is outside the vocabulary 0..${nVocab - 1}`);
  return ids;
}
