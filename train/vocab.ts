// The tiny MoE's vocabulary as GGUF tokenizer metadata (byte-level BPE, llama.cpp's `gpt2` model with
// the `qwen2` pre-tokenizer), and moet's tokenizer over it.
import { readFileSync } from 'node:fs';
import { GGUFValueType, type GGUFMetadataEntry } from '../gguf/types.js';
import { kv } from '../gguf/writer.js';
import { Tokenizer } from '../src/tokenizer/index.js';

/** train/data/tokenizer.json */
export interface VocabFile {
  tokens: string[];
  merges: string[];
  /** id of <|endoftext|>: document separator, EOS, BOS and padding */
  eot: number;
}

export const EOT = '<|endoftext|>';

export function vocabMetadata(v: VocabFile): GGUFMetadataEntry[] {
  const types = v.tokens.map((_, i) => (i === v.eot ? 3 : 1));
  return [
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', 'qwen2'),
    kv.strs('tokenizer.ggml.tokens', v.tokens),
    kv.i32s('tokenizer.ggml.token_type', types),
    kv.strs('tokenizer.ggml.merges', v.merges),
    kv.u32('tokenizer.ggml.eos_token_id', v.eot),
    kv.u32('tokenizer.ggml.bos_token_id', v.eot),
    kv.u32('tokenizer.ggml.padding_token_id', v.eot),
    { key: 'tokenizer.ggml.add_bos_token', type: GGUFValueType.BOOL, value: false },
  ];
}

export function vocabTokenizer(v: VocabFile): Tokenizer {
  return Tokenizer.fromGGUF(new Map(vocabMetadata(v).map((e) => [e.key, e])));
}

export function readVocab(path: string): VocabFile {
  return JSON.parse(readFileSync(path, 'utf8')) as VocabFile;
}
