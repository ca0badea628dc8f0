// Shared by the tokenizer parity tests (parity.test.ts, qwen35.test.ts): a vocabulary is written to a
// GGUF without tensors that llama.cpp (node-llama-cpp's CPU build) loads vocabulary-only, next to
// moet's Tokenizer built from the same keys; and byte-level probe vocabularies that make the
// pre-tokenizer's classes visible.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import type { GGUFMetadataEntry } from '../../gguf/types.js';
import { kv, writeGGUF } from '../../gguf/writer.js';
import { BYTE_TO_CHAR } from '../../src/tokenizer/bytes.js';
import { Tokenizer } from '../../src/tokenizer/index.js';

/** the architecture keys llama.cpp needs to load a vocabulary-only file */
const ARCH = [
  kv.str('general.architecture', 'qwen3'),
  kv.u32('qwen3.context_length', 4096),
  kv.u32('qwen3.embedding_length', 64),
  kv.u32('qwen3.block_count', 1),
  kv.u32('qwen3.feed_forward_length', 128),
  kv.u32('qwen3.attention.head_count', 4),
  kv.u32('qwen3.attention.head_count_kv', 2),
  kv.u32('qwen3.attention.key_length', 16),
  kv.u32('qwen3.attention.value_length', 16),
  kv.f32('qwen3.rope.freq_base', 1e6),
  kv.f32('qwen3.attention.layer_norm_rms_epsilon', 1e-6),
];

export type LoadVocab = (name: string, meta: GGUFMetadataEntry[]) => Promise<{ tok: Tokenizer; model: LlamaModel }>;

/**
 * Registers the test file's hooks (a temporary folder named `prefix`…, node-llama-cpp without GPU,
 * and their disposal with every model loaded) and returns `load`: writes the `tokenizer.*` keys
 * `meta` as `<name>.gguf` and gives moet's Tokenizer of them and llama.cpp's vocabulary-only model.
 * Call it at the top level of the test file, before its own hooks.
 */
export function llamaVocabLoader(prefix: string): LoadVocab {
  let dir: string;
  let llama: Llama;
  const loaded: LlamaModel[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    llama = await getLlama({
      gpu: false,
      build: 'never',
      logLevel: LlamaLogLevel.error,
      // a vocabulary-only file has no tensors; node-llama-cpp's memory estimate complains about that
      logger: () => {},
    });
  });
  afterAll(async () => {
    for (const m of loaded) await m.dispose();
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return async (name, meta) => {
    const path = join(dir, `${name}.gguf`);
    await writeGGUF(path, [...ARCH, ...meta], []);
    const tok = Tokenizer.fromGGUF(new Map(meta.map((e) => [e.key, e])));
    const model = await llama.loadModel({ modelPath: path, vocabOnly: true, gpuLayers: 0 });
    loaded.push(model);
    return { tok, model };
  };
}

/** `meta` with the entry of `entry`'s key replaced by `entry` */
export function withKey(meta: GGUFMetadataEntry[], entry: GGUFMetadataEntry): GGUFMetadataEntry[] {
  return meta.map((e) => (e.key === entry.key ? entry : e));
}

/** `meta` relabelled with pre-tokenizer `pre` */
export const withPre = (meta: GGUFMetadataEntry[], pre: string) => withKey(meta, kv.str('tokenizer.ggml.pre', pre));

export const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * A byte-level BPE probe vocabulary over the code points `cps`: the 256 byte tokens, merges that join
 * each code point's UTF-8 bytes into one token, then the merges `pairs(c)` of each (c the code point's
 * byte-level string), and <|endoftext|> (CONTROL, eos). Returns its `tokenizer.*` keys under a given
 * pre-tokenizer: a text then encodes to a merged token only where the pre-tokenizer keeps the pair in
 * one piece.
 */
export function probeVocab(cps: readonly number[], pairs: (c: string) => [string, string][]): (pre: string) => GGUFMetadataEntry[] {
  const byteLevel = (s: string) => Array.from(new TextEncoder().encode(s), (b) => BYTE_TO_CHAR[b]).join('');
  const tokens: string[] = [...BYTE_TO_CHAR];
  const seen = new Set(tokens);
  const chain: string[] = [];
  const combos: string[] = [];
  const merge = (list: string[], a: string, b: string) => {
    if (seen.has(a + b)) return;
    seen.add(a + b);
    tokens.push(a + b);
    list.push(`${a} ${b}`);
  };
  for (const cp of cps) {
    const s = byteLevel(String.fromCodePoint(cp));
    for (let i = 1; i < s.length; i++) merge(chain, s.slice(0, i), s[i]!);
    for (const [a, b] of pairs(s)) merge(combos, a, b);
  }
  tokens.push('<|endoftext|>');
  return (pre) => [
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', pre),
    kv.strs('tokenizer.ggml.tokens', tokens),
    kv.i32s('tokenizer.ggml.token_type', tokens.map((t) => (t === '<|endoftext|>' ? 3 : 1))),
    kv.strs('tokenizer.ggml.merges', [...chain, ...combos]),
    kv.u32('tokenizer.ggml.eos_token_id', tokens.length - 1),
    kv.bool('tokenizer.ggml.add_bos_token', false),
  ];
}
