// Chat on top of Session.generate: renders the GGUF's chat template (Jinja, through
// @huggingface/jinja; plain ChatML when the file has none), reuses the KV cache across turns by
// matching the rendered conversation's tokens against the session's, and splits Qwen3-style
// `<think>…</think>` reasoning from the answer while streaming.
//
// Rendering follows llama.cpp's chat path (common/chat.cpp, common_chat_templates_apply_jinja):
// variables `messages`, `add_generation_prompt`, `bos_token` / `eos_token` (the tokens' text),
// `date_string` ('%d %b %Y') and `datetime` ('%b %d %Y') of today, the functions `raise_exception`
// and `strftime_now` (English month and day names, whatever the locale); a leading system message is
// merged into the next message ("\n" between) when the template has no system role (Mistral
// Instruct v0.1 raises for one); when the GGUF asks for BOS (add_bos_token) a BOS the template wrote
// at the start is cut before tokenizing and the tokenizer adds it, so there is exactly one (likewise
// a trailing EOS with add_eos_token).
//
// KV reuse: the conversation is re-rendered and re-tokenized every turn; the session keeps the
// longest common prefix of its tokens and the new ones and evaluates only the rest. Qwen3's template
// drops the think blocks of earlier turns, so after a thinking turn the prefix ends where the last
// answer's `<think>` began: the answer is evaluated again (without its thinking), as llama-server does.
//
// Harmony (gpt-oss): a template that writes `<|channel|>` is OpenAI's harmony format, as llama.cpp
// decides it (common_chat_params_init_gpt_oss). Its rendering differs in what llama.cpp does for it: a
// `developer` message keeps its role (other templates get it as `system`), an assistant turn's
// reasoningContent goes to the template as `thinking` (and `reasoning_content`), `reasoning_effort`
// is passed when asked for, and without the generation prompt the last `<|return|>` becomes
// `<|end|>`. The output after the prompt's `<|start|>assistant` is a sequence of messages
// (`<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…<|return|>`),
// split by HarmonySplitter: analysis is 'thinking', final (and any other channel, commentary
// preambles included) is 'content', a message with a recipient (`to=functions.x`, a tool call, ended
// by `<|call|>`) is neither: it is kept in ChatResult.toolCalls. The earlier turns' analysis is dropped
// by the template, so the KV cache is reused up to the last answer's `<|start|>assistant`.
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { ContextOverflowError, MoetError } from './errors.js';
import type { GenerateOptions, GenerationTimings, StopReason } from './model.js';
import type { Tokenizer } from './tokenizer/index.js';

/** One message of a conversation. */
export interface ChatMessage {
  /**
   * 'system', 'user', 'assistant' (or 'tool', where the template knows it); 'developer' is passed as
   * 'system', except to a harmony template (gpt-oss), which has a developer role of its own
   */
  role: string;
  content: string;
  /**
   * thinking of an earlier assistant turn, passed to the template as `reasoning_content` (Qwen3's
   * template shows it only for assistant turns after the last user message). An assistant `content`
   * that starts with `<think>…</think>` works too. A harmony template (gpt-oss) gets it as `thinking`
   * as well (llama.cpp's name for it there); that template drops it for every turn but a tool call's.
   */
  reasoningContent?: string;
}

/** Options of chat template rendering. */
export interface ChatTemplateOptions {
  /**
   * passed to the template as `enable_thinking`. Qwen3: false adds an empty think block to the
   * generation prompt, so the model answers directly. Default: left undefined (the template's default;
   * Qwen3 thinks)
   */
  enableThinking?: boolean;
  /**
   * passed to the template as `reasoning_effort` (gpt-oss's harmony template writes
   * "Reasoning: low | medium | high" into its system message; its default is medium). Default: left
   * undefined
   */
  reasoningEffort?: string;
  /** end with the assistant's generation prompt. Default true */
  addGenerationPrompt?: boolean;
  /** a Jinja chat template to use instead of the GGUF's `tokenizer.chat_template` */
  template?: string;
  /**
   * the time the template sees: `strftime_now(format)`, `date_string` and `datetime` (Llama 3.1 /
   * 3.2 write "Today Date: …" into the system header). Default: now
   */
  now?: Date;
}

/** Options of Session.chat: generation options plus template options. */
export interface ChatOptions extends GenerateOptions, Omit<ChatTemplateOptions, 'addGenerationPrompt'> {}

/** Whether a piece of chat output is reasoning or answer. */
export type ChatChunkKind = 'thinking' | 'content';

/** One piece of streamed chat output. */
export interface ChatChunk {
  /** text, never empty; the `<think>` / `</think>` tags (harmony: the message headers and ends) are never emitted */
  text: string;
  kind: ChatChunkKind;
  /** id of the sampled token that completed this text (absent for text flushed at the end) */
  id?: number;
}

/** What a chat turn produced: the return value of the Session.chat generator. */
export interface ChatResult {
  /** the answer (without thinking) */
  content: string;
  /**
   * the reasoning between `<think>` and `</think>` (trimmed), '' when there was none. Harmony: the
   * analysis messages' text as written (several joined by "\n")
   */
  thinking: string;
  /**
   * harmony only, and only when the model wrote one: the messages addressed to a recipient (tool calls,
   * `<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{…}<|call|>`),
   * which are neither content nor thinking. Generation stops at `<|call|>` (an end-of-generation token)
   */
  toolCalls?: ChatToolCall[];
  stopReason: StopReason;
  /** tokens of the rendered prompt */
  promptTokens: number;
  /** prompt tokens that were already in the session's KV cache and were not evaluated again */
  cachedTokens: number;
  /** tokens sampled, including a final end-of-generation token */
  generatedTokens: number;
  timings: GenerationTimings;
}

/** A harmony message with a recipient: a tool call (ChatResult.toolCalls). */
export interface ChatToolCall {
  /** the recipient, e.g. 'functions.get_weather' or 'browser.search' */
  recipient: string;
  /** the channel the call went to ('commentary' for functions, 'analysis' for built-in tools) */
  channel: string;
  /** the content type after the channel or `<|constrain|>` ('json'), when given */
  contentType?: string;
  /** the message text: the call's arguments as the model wrote them */
  arguments: string;
}

/** Plain ChatML, used when the GGUF has no `tokenizer.chat_template`. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** A parsed template and what it supports (found out by rendering probes, once). */
interface CompiledTemplate {
  template: Template;
  /** the template shows a leading system message (llama.cpp's caps.supports_system_role) */
  systemRole?: boolean;
}

const compiled = new Map<string, CompiledTemplate>();

function compile(source: string): CompiledTemplate {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = { template: new Template(source) };
    } catch (e) {
      throw new MoetError(`cannot parse the chat template: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (compiled.size > 16) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/**
 * C-locale strftime of local time (what Python's datetime.strftime and llama.cpp's std::put_time give
 * for these directives); other directives are left as written. @internal
 * @throws nothing
 */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return format.replace(/%[aAbBdeHIjmMpSyY%]/g, (d) => {
    switch (d) {
      case '%a': return DAYS[date.getDay()]!.slice(0, 3);
      case '%A': return DAYS[date.getDay()]!;
      case '%b': return MONTHS[date.getMonth()]!.slice(0, 3);
      case '%B': return MONTHS[date.getMonth()]!;
      case '%d': return pad(date.getDate());
      case '%e': return String(date.getDate()).padStart(2, ' ');
      case '%H': return pad(date.getHours());
      case '%I': return pad(((date.getHours() + 11) % 12) + 1);
      case '%j': {
        const start = new Date(date.getFullYear(), 0, 1);
        const day = Math.round((new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime() - start.getTime()) / 86400000);
        return pad(day + 1, 3);
      }
      case '%m': return pad(date.getMonth() + 1);
      case '%M': return pad(date.getMinutes());
      case '%p': return date.getHours() < 12 ? 'AM' : 'PM';
      case '%S': return pad(date.getSeconds());
      case '%y': return pad(date.getFullYear() % 100);
      case '%Y': return String(date.getFullYear());
      default: return '%';
    }
  });
}

/** Python's range() (as @huggingface/jinja's own global) */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
  else for (let i = start; i > stop; i += step) out.push(i);
  return out;
}

/**
 * Renders `template` with `vars`: Template.render's globals, but with `strftime_now` at `now` in the
 * C locale (Template.render's own reads the clock and names months in the default locale, and
 * cannot be replaced: its globals are declared before the variables).
 */
function render(template: Template, vars: Record<string, unknown>, now: Date): string {
  const env = new Environment();
  for (const [k, v] of [['false', false], ['true', true], ['none', null], ['True', true], ['False', false], ['None', null]] as const) env.set(k, v);
  env.set('raise_exception', (message: unknown) => {
    throw new Error(String(message));
  });
  env.set('range', range);
  env.set('strftime_now', (format: unknown) => strftime(now, String(format)));
  for (const [k, v] of Object.entries(vars)) env.set(k, v);
  const out = new Interpreter(env).run(template.parsed).value;
  return typeof out === 'string' ? out : String(out);
}

/** llama.cpp's extra context (common_chat_extra_context): today's date in two formats */
function dateVars(now: Date): Record<string, unknown> {
  return { date_string: strftime(now, '%d %b %Y'), datetime: strftime(now, '%b %d %Y') };
}

const PROBE_SYSTEM = 'System message';
const PROBE_DATE = new Date(2024, 0, 1);

/**
 * Whether the template shows a leading system message, as llama.cpp's caps_get decides it: render
 * [system, user] (empty BOS / EOS, generation prompt); the system role is supported when the
 * system message's text shows in the output. (llama.cpp asks whether the template read the text;
 * @huggingface/jinja cannot tell, so a template that raises for the pair is asked again without the
 * system message: when that raises too, the failure has nothing to do with the system role.)
 */
function supportsSystemRole(t: CompiledTemplate): boolean {
  if (t.systemRole === undefined) {
    const probe = (messages: { role: string; content: string }[]): string | null => {
      try {
        return render(t.template, { messages, add_generation_prompt: true, bos_token: '', eos_token: '', ...dateVars(PROBE_DATE) }, PROBE_DATE);
      } catch {
        return null;
      }
    };
    const user = { role: 'user', content: 'User message' };
    const out = probe([{ role: 'system', content: PROBE_SYSTEM }, user]);
    t.systemRole = out !== null ? out.includes(PROBE_SYSTEM) : probe([user]) === null;
  }
  return t.systemRole;
}

/** The text of a special token as llama.cpp's common_token_to_piece(…, special = true) gives it. */
function tokenPiece(tokenizer: Tokenizer, id: number | undefined): string {
  return id === undefined ? '' : new TextDecoder().decode(tokenizer.tokenToBytes(id));
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new RangeError('messages must be a non-empty array');
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw new RangeError(`messages[${i}] must be an object`);
    if (typeof m.role !== 'string' || m.role === '') throw new RangeError(`messages[${i}].role must be a non-empty string`);
    if (typeof m.content !== 'string') throw new RangeError(`messages[${i}].content must be a string`);
    if (m.reasoningContent !== undefined && typeof m.reasoningContent !== 'string') {
      throw new RangeError(`messages[${i}].reasoningContent must be a string`);
    }
  });
}

/**
 * Renders a conversation with a chat template: `opts.template`, else the tokenizer's
 * `tokenizer.chat_template`, else plain ChatML. The string is what the template renders (a BOS it
 * writes included; tokenizeChatPrompt deals with that). A template without a system role gets a
 * leading system message merged into the next message (llama.cpp's workaround), or dropped when it
 * is the only one. @internal exposed as Model.applyChatTemplate
 * @throws RangeError for malformed messages; MoetError when the template cannot be parsed or rendered
 *   (a `raise_exception` of the template, e.g. for roles that do not alternate, comes with its message)
 */
export function applyChatTemplate(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  checkMessages(messages);
  if (opts.now !== undefined && !(opts.now instanceof Date && Number.isFinite(opts.now.getTime()))) {
    throw new RangeError('now must be a valid Date');
  }
  if (opts.reasoningEffort !== undefined && typeof opts.reasoningEffort !== 'string') throw new RangeError('reasoningEffort must be a string');
  const source = chatTemplateSource(tokenizer, opts.template);
  const harmony = isHarmonyTemplate(source);
  const t = compile(source);
  const now = opts.now ?? new Date();
  let msgs: Record<string, unknown>[] = messages.map((m) => {
    // llama.cpp's workaround::map_developer_role_to_system, for every template but gpt-oss's
    const o: Record<string, unknown> = { role: m.role === 'developer' && !harmony ? 'system' : m.role, content: m.content };
    if (m.reasoningContent !== undefined) {
      o.reasoning_content = m.reasoningContent;
      // common_chat_params_init_gpt_oss: "Copy reasoning to the 'thinking' field as expected by the gpt-oss template"
      if (harmony) o.thinking = m.reasoningContent;
    }
    return o;
  });
  if (msgs[0]!.role === 'system' && !supportsSystemRole(t)) {
    // llama.cpp's workaround::system_message_not_supported
    const [system, next, ...rest] = msgs;
    msgs = next ? [{ ...next, content: `${system!.content as string}\n${next.content as string}` }, ...rest] : [];
  }
  const vars: Record<string, unknown> = {
    messages: msgs,
    add_generation_prompt: opts.addGenerationPrompt ?? true,
    bos_token: tokenPiece(tokenizer, tokenizer.bosId),
    eos_token: tokenPiece(tokenizer, tokenizer.eosId),
    ...dateVars(now),
  };
  if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
  if (opts.reasoningEffort !== undefined) vars.reasoning_effort = opts.reasoningEffort;
  try {
    const out = render(t.template, vars, now);
    if (harmony && !vars.add_generation_prompt) {
      // llama.cpp (inference without a generation prompt, its issue 15417): the template ends the last
      // assistant turn with <|return|>, which is never an input; the conversation continues after <|end|>
      const at = out.lastIndexOf(HARMONY_RETURN);
      if (at >= 0) return out.slice(0, at) + HARMONY_END + out.slice(at + HARMONY_RETURN.length);
    }
    return out;
  } catch (e) {
    throw new MoetError(`cannot render the chat template: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/**
 * The chat template a tokenizer renders with: `override`, else the GGUF's `tokenizer.chat_template`,
 * else plain ChatML. @internal
 * @throws nothing
 */
export function chatTemplateSource(tokenizer: Tokenizer, override?: string): string {
  return override ?? tokenizer.chatTemplate ?? CHATML_TEMPLATE;
}

/**
 * Whether a chat template is OpenAI's harmony format (gpt-oss): it writes `<|channel|>`, the test
 * llama.cpp's common_chat_try_specialized_template makes. @internal
 * @throws nothing
 */
export function isHarmonyTemplate(source: string): boolean {
  return source.includes(HARMONY_CHANNEL);
}

/**
 * Tokens of a rendered chat prompt, control tokens parsed, as llama.cpp's chat path makes them
 * (common_chat_template_direct_apply, then tokenization with add_special): when the GGUF asks for
 * BOS (add_bos_token), a BOS the template wrote at the start is cut and the tokenizer adds one, so
 * the prompt starts with exactly one BOS; when it asks for EOS (add_eos_token), likewise for an EOS
 * the template wrote at the end. Without add_bos_token, a BOS the template writes stays (OLMoE's
 * template writes its `<|endoftext|>`). @internal
 * @throws nothing for a string prompt
 */
export function tokenizeChatPrompt(tokenizer: Tokenizer, prompt: string): number[] {
  let text = prompt;
  const bos = tokenPiece(tokenizer, tokenizer.bosId);
  if (tokenizer.addBos && bos !== '' && text.startsWith(bos)) text = text.slice(bos.length);
  const eos = tokenPiece(tokenizer, tokenizer.eosId);
  if (tokenizer.addEos && eos !== '' && text.endsWith(eos)) text = text.slice(0, text.length - eos.length);
  return tokenizer.encode(text, { special: true });
}

/**
 * true when the prompt leaves a `<think>` open (the template started the reasoning itself)
 * @throws nothing
 */
export function promptOpensThinking(prompt: string): boolean {
  const open = prompt.lastIndexOf(THINK_OPEN);
  return open >= 0 && open > prompt.lastIndexOf(THINK_CLOSE);
}

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';

/** length of the longest suffix of `text` that is a proper prefix of `tag` */
function partialTagAt(text: string, tag: string): number {
  for (let l = Math.min(tag.length - 1, text.length); l > 0; l--) {
    if (text.endsWith(tag.slice(0, l))) return l;
  }
  return 0;
}

/**
 * Streaming splitter of `<think>…</think>` reasoning from the answer. Text is pushed as it is
 * generated (tags may arrive split over several pushes); out come chunks labelled 'thinking' or
 * 'content', without the tags. Whitespace right after `<think>`, right before `</think>` and right
 * after `</think>` is dropped (Qwen3 writes `<think>\n…\n</think>\n\n`), as is whitespace before
 * the answer. `<think>` is recognized only at the start of the output. @internal
 */
export class ThinkSplitter {
  private mode: 'start' | 'thinking' | 'content';
  /** text not emitted yet (a possible partial tag, or whitespace that may be dropped) */
  private held = '';
  /** in 'thinking': nothing emitted since the tag, so leading whitespace is dropped */
  private thinkingFresh = true;
  /** thinking text emitted so far, and content */
  thinking = '';
  content = '';

  /**
   * @param inThinking the prompt already opened `<think>`: the output starts as reasoning
   * @throws nothing (nor do push and flush)
   */
  constructor(inThinking = false) {
    this.mode = inThinking ? 'thinking' : 'start';
  }

  /** Adds generated text; returns the chunks that became final. */
  push(text: string, id?: number): ChatChunk[] {
    this.held += text;
    const out: ChatChunk[] = [];
    for (;;) {
      if (this.mode === 'start') {
        const s = this.held.replace(/^\s+/, '');
        if (s.startsWith(THINK_OPEN)) {
          this.held = s.slice(THINK_OPEN.length);
          this.mode = 'thinking';
          this.thinkingFresh = true;
          continue;
        }
        if (s.length === 0 || THINK_OPEN.startsWith(s)) return out; // whitespace or a partial tag
        this.held = s;
        this.mode = 'content';
        continue;
      }
      if (this.mode === 'thinking') {
        if (this.thinkingFresh) {
          this.held = this.held.replace(/^\s+/, '');
          if (this.held.length === 0) return out;
        }
        const close = this.held.indexOf(THINK_CLOSE);
        if (close >= 0) {
          this.emit(out, 'thinking', this.held.slice(0, close).replace(/\s+$/, ''), id);
          this.held = this.held.slice(close + THINK_CLOSE.length);
          this.mode = 'start';
          continue;
        }
        const keepTag = partialTagAt(this.held, THINK_CLOSE);
        const body = this.held.slice(0, this.held.length - keepTag);
        const trimmed = body.replace(/\s+$/, '');
        this.emit(out, 'thinking', trimmed, id);
        this.held = this.held.slice(trimmed.length);
        return out;
      }
      this.emit(out, 'content', this.held, id);
      this.held = '';
      return out;
    }
  }

  /** Emits whatever is held (generation ended): partial tags become text of the current kind. */
  flush(): ChatChunk[] {
    const out: ChatChunk[] = [];
    if (this.mode === 'thinking') this.emit(out, 'thinking', this.held.replace(/\s+$/, ''));
    else if (this.mode === 'content') this.emit(out, 'content', this.held);
    else this.emit(out, 'content', this.held.replace(/^\s+/, ''));
    this.held = '';
    return out;
  }

  private emit(out: ChatChunk[], kind: ChatChunkKind, text: string, id?: number): void {
    if (text.length === 0) return;
    if (kind === 'thinking') {
      this.thinking += text;
      this.thinkingFresh = false;
    } else {
      this.content += text;
    }
    const last = out[out.length - 1];
    if (last && last.kind === kind && last.id === id) last.text += text;
    else out.push(id === undefined ? { text, kind } : { text, kind, id });
  }
}

const HARMONY_START = '<|start|>';
const HARMONY_CHANNEL = '<|channel|>';
const HARMONY_MESSAGE = '<|message|>';
const HARMONY_END = '<|end|>';
const HARMONY_RETURN = '<|return|>';
const HARMONY_CALL = '<|call|>';
const HARMONY_CONSTRAIN = '<|constrain|>';
/** what ends a message body: its end tokens, or the start of the next message */
const HARMONY_BODY_ENDS = [HARMONY_END, HARMONY_RETURN, HARMONY_CALL, HARMONY_START];
/**
 * a header longer than this without `<|message|>` is not one: the output is not harmony, and the
 * rest of it is content (a model that ignores the format still streams)
 */
const HARMONY_MAX_HEADER = 256;

/** What a harmony message header says: `[role][ to=recipient]<|channel|>name[ type | <|constrain|>type][ to=recipient]`. */
interface HarmonyHeader {
  channel: string;
  recipient?: string;
  contentType?: string;
}

/** Parses a message header (the text before `<|message|>`, the `<|start|>` and role included or not). */
function parseHarmonyHeader(text: string): HarmonyHeader {
  // the last channel counts: gpt-oss-20b sometimes prefixes a stray `<|channel|>commentary[ to=assistant]`
  const at = text.lastIndexOf(HARMONY_CHANNEL);
  let channel = '';
  let contentType: string | undefined;
  if (at >= 0) {
    const rest = text.slice(at + HARMONY_CHANNEL.length);
    const m = /^([^\s<]*)(?:\s+(?!to=)([^\s<]+))?/.exec(rest)!;
    channel = m[1]!;
    contentType = m[2];
  }
  const constrain = text.indexOf(HARMONY_CONSTRAIN);
  if (constrain >= 0) contentType = /^\s*([^\s<]*)/.exec(text.slice(constrain + HARMONY_CONSTRAIN.length))![1] || contentType;
  // a recipient other than the assistant itself makes the message a tool call
  let recipient: string | undefined;
  for (const m of text.matchAll(/(?:^|[\s>])to=([^\s<]+)/g)) {
    if (m[1] !== 'assistant') {
      recipient = m[1];
      break;
    }
  }
  const h: HarmonyHeader = { channel };
  if (recipient !== undefined) h.recipient = recipient;
  if (contentType) h.contentType = contentType;
  return h;
}

/**
 * Streaming splitter of harmony output (gpt-oss): the text after the prompt, which ends in a message
 * header (`<|start|>assistant`), is a sequence of messages `header<|message|>body` ended by `<|end|>`
 * (then `<|start|>` and the next header), `<|return|>` or `<|call|>` (both end generation). Text may
 * arrive split anywhere. Out come 'thinking' chunks for the analysis channel and 'content' for the
 * others (final; commentary preambles) without headers or end tags; messages with a recipient (tool
 * calls) are collected in `toolCalls` instead. Bodies are kept verbatim; the bodies of consecutive
 * messages of the same kind are joined by "\n". Output that never writes `<|message|>` within
 * HARMONY_MAX_HEADER characters is not harmony: it is content, as written. @internal
 */
export class HarmonySplitter {
  private mode: 'header' | 'body' = 'header';
  /** in 'header': the header so far; in 'body': text not emitted yet (a possible partial end tag) */
  private held = '';
  /** header text that came from the prompt (never emitted) */
  private promptHeader = '';
  private kind: ChatChunkKind | 'tool' = 'content';
  private call: ChatToolCall | null = null;
  /** the current message has emitted text (for the "\n" between messages of one kind) */
  private started = false;
  thinking = '';
  content = '';
  readonly toolCalls: ChatToolCall[] = [];

  /**
   * @param prompt the rendered prompt (its last message header, or open message, is where the output starts)
   * @throws nothing (nor do push and flush)
   */
  constructor(prompt = '') {
    const at = prompt.lastIndexOf(HARMONY_START);
    if (at < 0) return;
    const tail = prompt.slice(at);
    const msg = tail.indexOf(HARMONY_MESSAGE);
    if (msg >= 0 && !HARMONY_BODY_ENDS.some((e) => tail.indexOf(e, msg) >= 0)) this.open(tail.slice(0, msg));
    else if (!HARMONY_BODY_ENDS.some((e) => e !== HARMONY_START && tail.includes(e))) this.promptHeader = tail;
  }

  /** Adds generated text; returns the chunks that became final. */
  push(text: string, id?: number): ChatChunk[] {
    this.held += text;
    const out: ChatChunk[] = [];
    for (;;) {
      if (this.mode === 'header') {
        const msg = this.held.indexOf(HARMONY_MESSAGE);
        if (msg >= 0) {
          this.open(this.promptHeader + this.held.slice(0, msg));
          this.held = this.held.slice(msg + HARMONY_MESSAGE.length);
          continue;
        }
        if (this.held.length > HARMONY_MAX_HEADER) {
          // not harmony: what was held, and all that follows, is content
          this.mode = 'body';
          this.kind = 'content';
          this.call = null;
          this.started = false;
          this.bodyEnds = [];
          continue;
        }
        return out;
      }
      let end = -1;
      let tag = '';
      for (const e of this.bodyEnds) {
        const i = this.held.indexOf(e);
        if (i >= 0 && (end < 0 || i < end)) {
          end = i;
          tag = e;
        }
      }
      if (end >= 0) {
        this.emit(out, this.held.slice(0, end), id);
        // <|start|> belongs to the next header; the end tokens are dropped
        this.held = this.held.slice(tag === HARMONY_START ? end : end + tag.length);
        this.mode = 'header';
        this.promptHeader = '';
        continue;
      }
      let keep = 0;
      for (const e of this.bodyEnds) keep = Math.max(keep, partialTagAt(this.held, e));
      this.emit(out, this.held.slice(0, this.held.length - keep), id);
      this.held = this.held.slice(this.held.length - keep);
      return out;
    }
  }

  /** Emits whatever is held (generation ended): a partial end tag is body text; an unfinished header is content. */
  flush(): ChatChunk[] {
    const out: ChatChunk[] = [];
    if (this.mode === 'header') {
      // a header that never got its <|message|>: the model did not write harmony
      // (one cut short by the token limit, which holds a harmony tag or the start of one, is dropped)
      const text = this.held.trim();
      const partial = /<\|(?:start|channel|constrain)\|>/.test(text) || (text.startsWith('<|') && [HARMONY_START, HARMONY_CHANNEL].some((t) => t.startsWith(text)));
      if (text.length > 0 && !partial) {
        this.kind = 'content';
        this.call = null;
        this.started = false;
        this.emit(out, this.held);
      }
    } else {
      this.emit(out, this.held);
    }
    this.held = '';
    return out;
  }

  /** the tags that end the current body (none once the output turned out not to be harmony) */
  private bodyEnds: readonly string[] = HARMONY_BODY_ENDS;

  /** Starts a message body after its header. */
  private open(header: string): void {
    const h = parseHarmonyHeader(header);
    this.mode = 'body';
    this.started = false;
    this.bodyEnds = HARMONY_BODY_ENDS;
    if (h.recipient !== undefined) {
      this.kind = 'tool';
      this.call = { recipient: h.recipient, channel: h.channel, ...(h.contentType ? { contentType: h.contentType } : {}), arguments: '' };
      this.toolCalls.push(this.call);
    } else {
      this.kind = h.channel === 'analysis' ? 'thinking' : 'content';
      this.call = null;
    }
  }

  private emit(out: ChatChunk[], text: string, id?: number): void {
    if (text.length === 0) return;
    if (this.kind === 'tool') {
      this.call!.arguments += text;
      return;
    }
    const kind = this.kind;
    if (!this.started) {
      this.started = true;
      if ((kind === 'thinking' ? this.thinking : this.content).length > 0) text = '\n' + text;
    }
    if (kind === 'thinking') this.thinking += text;
    else this.content += text;
    const last = out[out.length - 1];
    if (last && last.kind === kind && last.id === id) last.text += text;
    else out.push(id === undefined ? { text, kind } : { text, kind, id });
  }
}

/**
 * length of the common prefix of two token lists
 * @throws nothing
 */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * resolves after pending I/O callbacks have run
 * @throws nothing
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** What chat needs from a session; Session implements it. @internal */
export interface ChatHost {
  readonly tokens: number[];
  readonly contextLength: number;
  lastTimings: GenerationTimings | null;
  truncate(length: number): void;
  generate(prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<{ id: number; text: string }, void, undefined>;
}

/**
 * Runs one chat turn on `host` for a prompt already tokenized: keeps the common prefix of the
 * session's tokens, evaluates the rest and streams the split output. @internal used by Session.chat
 * and the server
 * @throws ContextOverflowError when the prompt does not fit (the context is left as it was);
 *   RangeError for an empty prompt; whatever `host.generate` throws (AbortError, MoetError, …)
 */
export async function* chatTurn(
  host: ChatHost,
  promptIds: readonly number[],
  opts: GenerateOptions & {
    /** the prompt opened `<think>`: the output starts as thinking */
    inThinking?: boolean;
    /** the rendered prompt of a harmony template (gpt-oss): the output is split by HarmonySplitter */
    harmonyPrompt?: string;
    /** no splitting: every chunk is 'content', tags included (ChatResult.content is the raw text) */
    raw?: boolean;
  },
): AsyncGenerator<ChatChunk, ChatResult, undefined> {
  if (promptIds.length === 0) throw new RangeError('the rendered chat prompt is empty');
  if (promptIds.length > host.contextLength) throw new ContextOverflowError(host.contextLength, promptIds.length);
  // at least one token is evaluated, so that the logits belong to the prompt
  const keep = Math.min(commonPrefixLength(host.tokens, promptIds), promptIds.length - 1);
  host.truncate(keep);
  const { inThinking, harmonyPrompt, raw, ...genOpts } = opts;
  const harmony = !raw && harmonyPrompt !== undefined ? new HarmonySplitter(harmonyPrompt) : null;
  const splitter = raw ? null : harmony ?? new ThinkSplitter(inThinking ?? false);
  let text = '';
  for await (const t of host.generate(promptIds.slice(keep), genOpts)) {
    // let I/O run between tokens (a CPU backend computes in microtasks only): sockets flush, a
    // disconnect or Ctrl-C can fire `signal`
    await yieldToEventLoop();
    if (splitter) {
      for (const c of splitter.push(t.text, t.id)) yield c;
    } else if (t.text) {
      text += t.text;
      yield { text: t.text, kind: 'content', id: t.id };
    }
  }
  if (splitter) for (const c of splitter.flush()) yield c;
  const timings = host.lastTimings!;
  return {
    content: splitter ? splitter.content : text,
    thinking: splitter ? splitter.thinking : '',
    stopReason: timings.stopReason,
    ...(harmony && harmony.toolCalls.length > 0 ? { toolCalls: harmony.toolCalls } : {}),
    promptTokens: promptIds.length,
    // a token left pending by the previous turn sits in the kept prefix but is evaluated now:
    // cached = the prompt's tokens that were not evaluated in this turn
    cachedTokens: promptIds.length - timings.promptTokens,
    generatedTokens: timings.generatedTokens,
    timings,
  };
}
