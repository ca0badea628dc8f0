// gpt-oss's harmony chat format (issue 15): the real template (templates/openai-gpt-oss-120b.jinja)
// rendered by @huggingface/jinja as llama.cpp's chat path renders it (compared with llama.cpp's own
// Jinja engine, node-llama-cpp's native renderer, on the variables common_chat_params_init_gpt_oss
// passes), the o200k_harmony special tokens as llama.cpp reads them (single ids; <|channel|>,
// <|message|>, <|start|>, <|constrain|> and <|end|> user-defined; <|return|> and <|call|> end
// generation, <|end|> does not), the streaming splitter of the output over arbitrary splits, and
// session.chat on the gpt-oss fixture carrying the template and vocabulary (family-fixtures.ts).
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyChatTemplate, chatTurn, HarmonySplitter, isHarmonyTemplate, strftime, tokenizeChatPrompt, type ChatHost, type ChatToolCall } from '../../src/chat.js';
import { MoetError, loadModel, type ChatChunk, type ChatMessage, type ChatOptions, type ChatResult, type Model, type Session } from '../../src/index.js';
import type { Tokenizer } from '../../src/tokenizer/index.js';
import { mulberry32 } from '../helpers/random.js';
import { GPT_OSS_TEMPLATE, familyModelPath } from './family-fixtures.js';

const NOW = new Date(2025, 2, 7, 12, 0, 0);
const SYSTEM = (effort = 'medium', date = '2025-03-07') =>
  '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n' +
  `Current date: ${date}\n\nReasoning: ${effort}\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>`;

const CONVO: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4', reasoningContent: 'Simple arithmetic.' },
  { role: 'user', content: 'And 3+3?' },
];

const EXPECTED =
  SYSTEM() +
  '<|start|>developer<|message|># Instructions\n\nYou are a helpful assistant.\n\n<|end|>' +
  '<|start|>user<|message|>What is 2+2?<|end|>' +
  '<|start|>assistant<|channel|>final<|message|>4<|end|>' +
  '<|start|>user<|message|>And 3+3?<|end|>' +
  '<|start|>assistant';

/** the generation prompt opens the analysis channel: the whole output is thinking until <|end|> */
const OPEN_ANALYSIS = GPT_OSS_TEMPLATE.replace('<|start|>assistant\n{%- endif -%}', '<|start|>assistant<|channel|>analysis<|message|>\n{%- endif -%}');

let model: Model;
let tok: Tokenizer;
let llama: Llama;
let lm: LlamaModel;

beforeAll(async () => {
  const path = await familyModelPath('gptoss');
  model = await loadModel(path, { backend: 'cpu', contextLength: 1024 });
  tok = model.tokenizer;
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, logger: () => {} });
  lm = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
}, 120_000);

afterAll(async () => {
  await model?.dispose();
  await lm?.dispose();
  await llama?.dispose();
});

const idOf = (text: string) => {
  const ids = tok.encode(text, { special: true, addBos: false });
  expect(ids, text).toHaveLength(1);
  return ids[0]!;
};

/** llama.cpp's own Jinja engine (common/jinja, through node-llama-cpp's addon) */
function llamaRender(template: string, vars: Record<string, unknown>): string {
  const bindings = (llama as unknown as { _bindings: { AddonJinjaRenderer: new (t: string) => { render(v: Record<string, unknown>): string } } })._bindings;
  return new bindings.AddonJinjaRenderer(template).render(vars);
}

/**
 * llama.cpp's chat path for this template (common_chat_templates_apply_jinja → common_chat_params_init_gpt_oss →
 * common_chat_template_direct_apply_impl): developer kept, reasoning_content copied to thinking, bos / eos
 * tokens, enable_thinking, today's date_string / datetime, the kwargs, add_generation_prompt only when set; the
 * last <|return|> → <|end|> without a generation prompt. strftime_now is the engine's own (now).
 */
function llamaChatPath(messages: ChatMessage[], opts: { addGenerationPrompt?: boolean; reasoningEffort?: string } = {}): string {
  const now = new Date();
  const vars: Record<string, unknown> = {
    messages: messages.map((m) => ({
      role: m.role,
      content: m.content,
      ...(m.reasoningContent !== undefined ? { reasoning_content: m.reasoningContent, thinking: m.reasoningContent } : {}),
    })),
    bos_token: '<|startoftext|>',
    eos_token: '<|return|>',
    enable_thinking: true,
    date_string: strftime(now, '%d %b %Y'),
    datetime: strftime(now, '%b %d %Y'),
  };
  if (opts.reasoningEffort !== undefined) vars.reasoning_effort = opts.reasoningEffort;
  if (opts.addGenerationPrompt ?? true) vars.add_generation_prompt = true;
  let out = llamaRender(GPT_OSS_TEMPLATE, vars);
  if (!(opts.addGenerationPrompt ?? true)) {
    const at = out.lastIndexOf('<|return|>');
    if (at >= 0) out = out.slice(0, at) + '<|end|>' + out.slice(at + '<|return|>'.length);
  }
  return out;
}

describe('the harmony template', () => {
  it('is recognized as harmony (it writes <|channel|>), the others are not', () => {
    expect(tok.chatTemplate).toBe(GPT_OSS_TEMPLATE);
    expect(isHarmonyTemplate(GPT_OSS_TEMPLATE)).toBe(true);
    expect(isHarmonyTemplate('{{ messages[0].content }}<|im_start|>')).toBe(false);
  });

  it('renders a conversation: system block with the date, developer instructions, earlier analysis dropped, <|start|>assistant at the end', () => {
    expect(model.applyChatTemplate(CONVO, { now: NOW })).toBe(EXPECTED);
    // 'developer' is the same first message (the template reads either)
    expect(model.applyChatTemplate([{ ...CONVO[0]!, role: 'developer' }, ...CONVO.slice(1)], { now: NOW })).toBe(EXPECTED);
    // no system message: no developer block
    expect(model.applyChatTemplate(CONVO.slice(1), { now: NOW })).toBe(SYSTEM() + EXPECTED.slice(EXPECTED.indexOf('<|start|>user')));
    expect(model.applyChatTemplate(CONVO, { now: NOW, reasoningEffort: 'high' })).toBe(SYSTEM('high') + EXPECTED.slice(SYSTEM().length));
    expect(model.applyChatTemplate(CONVO, { now: new Date(2024, 11, 31) })).toContain('Current date: 2024-12-31\n');
  });

  it('without the generation prompt the last turn keeps its analysis and ends with <|end|>, not <|return|> (llama.cpp)', () => {
    const history: ChatMessage[] = [...CONVO.slice(0, 2), { role: 'assistant', content: '4', reasoningContent: 'Simple arithmetic.' }];
    expect(model.applyChatTemplate(history, { now: NOW, addGenerationPrompt: false })).toBe(
      EXPECTED.slice(0, EXPECTED.indexOf('<|start|>assistant')) +
        '<|start|>assistant<|channel|>analysis<|message|>Simple arithmetic.<|end|><|start|>assistant<|channel|>final<|message|>4<|end|>',
    );
  });

  it("surfaces the template's raise_exception for channel tags in a message", () => {
    const bad: ChatMessage[] = [{ role: 'user', content: 'x' }, { role: 'assistant', content: '<|channel|>final<|message|>y' }, { role: 'user', content: 'z' }];
    expect(() => model.applyChatTemplate(bad)).toThrow(MoetError);
    expect(() => model.applyChatTemplate(bad)).toThrow(/You have passed a message containing <\|channel\|> tags in the content field/);
  });

  it("renders exactly as llama.cpp's own Jinja engine on llama.cpp's chat-path variables", () => {
    const cases: { messages: ChatMessage[]; opts?: { addGenerationPrompt?: boolean; reasoningEffort?: string } }[] = [
      { messages: CONVO },
      { messages: [{ ...CONVO[0]!, role: 'developer' }, ...CONVO.slice(1)] },
      { messages: CONVO.slice(1), opts: { reasoningEffort: 'low' } },
      { messages: CONVO.slice(0, 3), opts: { addGenerationPrompt: false } },
      { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'Bye' }], opts: { reasoningEffort: 'high' } },
      { messages: [{ role: 'user', content: 'Unicode: été, 東京, 🙂\n\nnewlines  and  spaces ' }] },
    ];
    for (const { messages, opts } of cases) {
      let ours = applyChatTemplate(tok, messages, opts);
      let theirs = llamaChatPath(messages, opts);
      if (ours !== theirs) {
        // the day may have turned between the two renderings
        ours = applyChatTemplate(tok, messages, opts);
        theirs = llamaChatPath(messages, opts);
      }
      expect(ours).toBe(theirs);
    }
  });
});

describe('o200k_harmony special tokens (as llama.cpp reads them)', () => {
  it('are single ids; <|return|> and <|call|> end generation, <|end|> does not; the EOG set equals llama.cpp for every token', () => {
    for (const t of ['<|start|>', '<|channel|>', '<|message|>', '<|end|>', '<|return|>', '<|call|>', '<|constrain|>']) idOf(t);
    expect(tok.isEog(idOf('<|return|>'))).toBe(true);
    expect(tok.isEog(idOf('<|call|>'))).toBe(true);
    expect(tok.isEog(idOf('<|end|>'))).toBe(false);
    expect(tok.eosId).toBe(idOf('<|return|>'));
    expect([tok.pre, tok.addBos]).toEqual(['gpt-4o', false]);
    // llama_vocab_is_eog itself: node-llama-cpp's LlamaModel.isEogToken adds the EOT token, which
    // llama.cpp's text detection makes <|end|> here (the workaround takes it out of the EOG set only)
    const native = (lm as unknown as { _model: { isEogToken(t: Token): boolean } })._model;
    for (let id = 0; id < tok.vocabSize; id++) expect(tok.isEog(id), `${id} ${tok.tokenText(id)}`).toBe(native.isEogToken(id as Token));
    expect(lm.tokens.eot).toBe(idOf('<|end|>'));
  });

  it("tokenize the prompt like llama.cpp: the header tokens even without special parsing (llama.cpp makes them user-defined); decode shows them, not <|return|>", () => {
    const ids = tokenizeChatPrompt(tok, EXPECTED);
    expect(ids).toEqual(Array.from(lm.tokenize(EXPECTED, true)));
    expect(ids.filter((t) => t === idOf('<|start|>'))).toHaveLength(6);
    // user-defined: matched in plain text too; <|return|> (control) only with special parsing
    const plain = '<|start|>assistant<|channel|>final<|message|>4<|end|><|return|>';
    expect(tok.encode(plain, { special: false })).toEqual(Array.from(lm.tokenize(plain, false)));
    expect(tok.encode(plain, { special: false })).toContain(idOf('<|channel|>'));
    expect(tok.encode(plain, { special: false })).not.toContain(idOf('<|return|>'));
    const all = tok.encode(plain, { special: true });
    expect(tok.decode(all)).toBe(lm.detokenize(all as Token[], false));
    expect(tok.decode(all)).toBe('<|start|>assistant<|channel|>final<|message|>4<|end|>');
  });
});

// ---- the splitter ----

interface Case {
  name: string;
  prompt?: string;
  text: string;
  thinking: string;
  content: string;
  toolCalls?: ChatToolCall[];
}

const PROMPT = EXPECTED;
const CASES: Case[] = [
  {
    name: 'analysis then final (the usual answer; <|return|> ends it and is no text)',
    text: '<|channel|>analysis<|message|>User asks 2+2. Answer: 4.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = **4**.',
    thinking: 'User asks 2+2. Answer: 4.',
    content: '2 + 2 = **4**.',
  },
  {
    name: 'fed with the end tokens as text',
    text: '<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b<|return|>',
    thinking: 'a',
    content: 'b',
  },
  {
    name: 'a tool call (recipient in the channel header, <|constrain|>): not content, in toolCalls',
    text: '<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>',
    thinking: 'Need the weather.',
    content: '',
    toolCalls: [{ recipient: 'functions.get_weather', channel: 'commentary', contentType: 'json', arguments: '{"city":"Paris"}' }],
  },
  {
    name: 'a tool call with the recipient in the role header (the template writes it so)',
    text: ' to=functions.lookup<|channel|>commentary json<|message|>{"q": 1}',
    thinking: '',
    content: '',
    toolCalls: [{ recipient: 'functions.lookup', channel: 'commentary', contentType: 'json', arguments: '{"q": 1}' }],
  },
  {
    name: 'a commentary preamble is content, joined to the final answer by a newline',
    text: '<|channel|>commentary<|message|>Checking…<|end|><|start|>assistant<|channel|>final<|message|>Done.',
    thinking: '',
    content: 'Checking…\nDone.',
  },
  {
    name: "gpt-oss-20b's stray commentary prefix before final",
    text: '<|channel|>commentary to=assistant<|channel|>final<|message|>Hi',
    thinking: '',
    content: 'Hi',
  },
  {
    name: 'two analysis messages',
    text: '<|channel|>analysis<|message|>one<|end|><|start|>assistant<|channel|>analysis<|message|>two<|end|><|start|>assistant<|channel|>final<|message|>x',
    thinking: 'one\ntwo',
    content: 'x',
  },
  {
    name: 'output that is not harmony is content',
    text: 'Hello there, no tags at all.',
    thinking: '',
    content: 'Hello there, no tags at all.',
  },
  {
    name: 'cut short inside a header: the header is dropped',
    text: '<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>fin',
    thinking: 'x',
    content: '',
  },
  {
    name: 'cut short inside a body: a partial end tag is text',
    text: '<|channel|>final<|message|>abc<|en',
    thinking: '',
    content: 'abc<|en',
  },
  {
    name: 'a prompt that opens the analysis channel',
    prompt: PROMPT + '<|channel|>analysis<|message|>',
    text: 'Thinking here.<|end|><|start|>assistant<|channel|>final<|message|>ok',
    thinking: 'Thinking here.',
    content: 'ok',
  },
];

function runSplitter(c: Case, pieces: string[]): { s: HarmonySplitter; chunks: ChatChunk[] } {
  const s = new HarmonySplitter(c.prompt ?? PROMPT);
  const chunks: ChatChunk[] = [];
  pieces.forEach((p, i) => chunks.push(...s.push(p, i)));
  chunks.push(...s.flush());
  return { s, chunks };
}

function splits(text: string, rand: () => number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const n = 1 + Math.floor(rand() * 7);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('HarmonySplitter', () => {
  it.each(CASES)('$name', (c) => {
    const rand = mulberry32(c.text.length);
    const ways = [[c.text], [...c.text], ...Array.from({ length: 40 }, () => splits(c.text, rand))];
    for (const pieces of ways) {
      const { s, chunks } = runSplitter(c, pieces);
      expect([s.thinking, s.content], JSON.stringify(pieces)).toEqual([c.thinking, c.content]);
      expect(chunks.filter((k) => k.kind === 'thinking').map((k) => k.text).join('')).toBe(c.thinking);
      expect(chunks.filter((k) => k.kind === 'content').map((k) => k.text).join('')).toBe(c.content);
      expect(chunks.every((k) => k.text.length > 0)).toBe(true);
      if (!c.name.includes('partial end tag')) expect(chunks.some((k) => k.text.includes('<|'))).toBe(false);
      expect(s.toolCalls).toEqual(c.toolCalls ?? []);
    }
  });

  it('streams: analysis text comes out before the message ends, and long output without a header streams as content', () => {
    const s = new HarmonySplitter(PROMPT);
    expect(s.push('<|channel|>analysis<|message|>')).toEqual([]);
    expect(s.push('Let me think', 7)).toEqual([{ text: 'Let me think', kind: 'thinking', id: 7 }]);
    expect(s.push('<|e', 8)).toEqual([]);
    expect(s.push('nd|>', 9)).toEqual([]);
    const plain = new HarmonySplitter(PROMPT);
    const long = 'word '.repeat(60);
    const early = plain.push(long, 1);
    expect(early.map((k) => k.text).join('')).toBe(long);
    expect(early.every((k) => k.kind === 'content')).toBe(true);
  });
});

// ---- chat turns ----

async function turn(session: Session, messages: ChatMessage[], opts: ChatOptions): Promise<{ result: ChatResult; chunks: ChatChunk[] }> {
  const it = session.chat(messages, { now: NOW, ...opts });
  const chunks: ChatChunk[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { result: r.value, chunks };
    chunks.push(r.value);
  }
}

describe('session.chat on the gpt-oss fixture (harmony template, CPU backend)', () => {
  it('the prompt is the rendered template; <|return|> ends the turn; the next turn reuses the cache up to <|start|>assistant', async () => {
    const ret = idOf('<|return|>');
    const s = model.createSession();
    const { result: t1 } = await turn(s, CONVO.slice(0, 2), { maxTokens: 4, temperature: 0, logitBias: new Map([[ret, 100]]) });
    const want = tokenizeChatPrompt(tok, model.applyChatTemplate(CONVO.slice(0, 2), { now: NOW }));
    expect(t1.promptTokens).toBe(want.length);
    expect(s.tokens).toEqual([...want, ret]);
    expect([t1.stopReason, t1.generatedTokens, t1.content, t1.thinking, t1.toolCalls]).toEqual(['eog', 1, '', '', undefined]);

    const next: ChatMessage[] = [...CONVO.slice(0, 2), { role: 'assistant', content: '4', reasoningContent: 'easy' }, { role: 'user', content: 'And 3+3?' }];
    const banned = new Map([...tok.eogIds].map((id) => [id, -Infinity]));
    const { result: t2 } = await turn(s, next, { maxTokens: 2, temperature: 0, logitBias: banned });
    // the first prompt ends with <|start|>assistant: all of it was cached; the answer's tokens after it are new
    expect(t2.cachedTokens).toBe(want.length);
    expect(t2.stopReason).toBe('length');
    s.dispose();
  });

  it('<|call|> ends generation as well; <|end|> and the header tokens do not', async () => {
    const s = model.createSession();
    const { result: r } = await turn(s, CONVO, { maxTokens: 4, temperature: 0, logitBias: new Map([[idOf('<|call|>'), 100]]) });
    expect([r.stopReason, r.generatedTokens]).toEqual(['eog', 1]);
    const banned = new Map([...tok.eogIds].map((id) => [id, -Infinity]));
    for (const t of ['<|end|>', '<|start|>', '<|channel|>']) {
      const { result } = await turn(model.createSession(), CONVO, { maxTokens: 2, temperature: 0, logitBias: new Map([...banned, [idOf(t), 100]]) });
      expect([result.stopReason, result.generatedTokens], t).toEqual(['length', 2]);
    }
    s.dispose();
  });

  it('a generation prompt that opens the analysis channel streams the model output as thinking', async () => {
    const s = model.createSession();
    const stop = new Map([...tok.eogIds, idOf('<|end|>'), idOf('<|start|>')].map((id) => [id, -Infinity]));
    const { result, chunks } = await turn(s, CONVO, { template: OPEN_ANALYSIS, maxTokens: 6, temperature: 0, logitBias: stop });
    const prompt = tokenizeChatPrompt(tok, model.applyChatTemplate(CONVO, { template: OPEN_ANALYSIS, now: NOW }));
    const generated = tok.decode(s.tokens.slice(prompt.length));
    expect(result.generatedTokens).toBe(6);
    expect(result.thinking).toBe(generated);
    expect(result.content).toBe('');
    expect(chunks.every((c) => c.kind === 'thinking')).toBe(true);
    expect(chunks.map((c) => c.text).join('')).toBe(generated);
    s.dispose();
  });

  it('maps what the model writes, token by token, to chunks: analysis → thinking, final → content, a tool call → toolCalls', async () => {
    const answer = '<|channel|>analysis<|message|>The user wants 3+3.<|end|><|start|>assistant<|channel|>final<|message|>It is 6.';
    const call = '<|channel|>commentary to=functions.calc <|constrain|>json<|message|>{"expr":"3+3"}';
    for (const [text, end] of [[answer, '<|return|>'], [call, '<|call|>']] as const) {
      const ids = [...tok.encode(text, { special: true, addBos: false }), idOf(end)];
      const prompt = model.applyChatTemplate(CONVO, { now: NOW });
      const host: ChatHost = {
        tokens: [],
        contextLength: 1024,
        lastTimings: null,
        truncate() {},
        async *generate() {
          for (const id of ids) yield { id, text: tok.decode([id]) };
          host.lastTimings = { stopReason: 'eog', promptTokens: 1, generatedTokens: ids.length } as ChatHost['lastTimings'];
        },
      };
      const it = chatTurn(host, tokenizeChatPrompt(tok, prompt), { harmonyPrompt: prompt });
      const chunks: ChatChunk[] = [];
      let r = await it.next();
      while (!r.done) {
        chunks.push(r.value);
        r = await it.next();
      }
      const res = r.value;
      if (end === '<|return|>') {
        expect([res.thinking, res.content, res.toolCalls]).toEqual(['The user wants 3+3.', 'It is 6.', undefined]);
        expect(chunks.filter((c) => c.kind === 'content').map((c) => c.text).join('')).toBe('It is 6.');
        // each chunk carries the id of the token that completed it
        expect(chunks.every((c) => c.id !== undefined && ids.includes(c.id))).toBe(true);
      } else {
        expect([res.thinking, res.content]).toEqual(['', '']);
        expect(res.toolCalls).toEqual([{ recipient: 'functions.calc', channel: 'commentary', contentType: 'json', arguments: '{"expr":"3+3"}' }]);
        expect(chunks).toEqual([]);
      }
    }
  });
});
