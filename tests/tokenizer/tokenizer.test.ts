// Unit tests of the tokenizer on the real Qwen3 vocabulary (no llama.cpp needed; parity.test.ts
// compares against it).
import { beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../../gguf/writer.js';
import type { GGUFMetadataEntry } from '../../gguf/types.js';
import { Tokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import { BYTE_TO_CHAR } from '../../src/tokenizer/bytes.js';
import { findPreTokenizer, preTokenize } from '../../src/tokenizer/pretokenizer.js';
import { qwen3VocabMetadata } from '../fixtures/vocab.js';

const IM_START = 151644;
const IM_END = 151645;
const ENDOFTEXT = 151643;
const THINK = 151667;
const THINK_END = 151668;

const toMap = (meta: GGUFMetadataEntry[]) => new Map(meta.map((e) => [e.key, e]));
const withKey = (meta: GGUFMetadataEntry[], entry: GGUFMetadataEntry) => meta.map((e) => (e.key === entry.key ? entry : e));

let tok: Tokenizer;
/** id of the one-byte token for each byte value */
const byteId = new Array<number>(256);

beforeAll(() => {
  const t0 = performance.now();
  tok = Tokenizer.fromGGUF(toMap(qwen3VocabMetadata()));
  console.log(`Tokenizer.fromGGUF on 151936 tokens: ${(performance.now() - t0).toFixed(0)} ms (vocabulary fixture included)`);
  const t1 = performance.now();
  Tokenizer.fromGGUF(toMap(qwen3VocabMetadata()));
  console.log(`Tokenizer.fromGGUF, fixture cached: ${(performance.now() - t1).toFixed(0)} ms`);
  const byText = new Map<string, number>();
  for (let id = 0; id < tok.vocabSize; id++) byText.set(tok.tokenText(id), id);
  for (let b = 0; b < 256; b++) byteId[b] = byText.get(BYTE_TO_CHAR[b]!)!;
});

describe('properties', () => {
  it('reads the special ids, flags and template', () => {
    expect(tok.vocabSize).toBe(151936);
    expect(tok.model).toBe('gpt2');
    expect(tok.pre).toBe('qwen2');
    expect(tok.eosId).toBe(IM_END);
    expect(tok.bosId).toBe(ENDOFTEXT);
    expect(tok.addBos).toBe(false);
    expect(tok.addEos).toBe(false);
    expect(tok.chatTemplate).toContain('<|im_start|>');
    // llama.cpp's end-of-generation set: eos, eot, the FIM pad/repo/file-sep tokens, and every token
    // whose text is an end marker ('</s>' is one, and a normal token in Qwen's vocabulary)
    expect([...tok.eogIds].sort((a, b) => a - b)).toEqual([128247, ENDOFTEXT, IM_END, 151662, 151663, 151664]);
    expect(tok.isEog(IM_END)).toBe(true);
    expect(tok.isEog(THINK)).toBe(false);
  });

  it('builds from 151k tokens and merges quickly, and encodes fast', () => {
    const meta = toMap(qwen3VocabMetadata());
    const t0 = performance.now();
    const t = Tokenizer.fromGGUF(meta);
    const built = performance.now() - t0;
    const text = 'The quick brown fox jumps over the lazy dog. 12345 — 日本語のテキスト 🦙\n'.repeat(2000);
    const t1 = performance.now();
    const ids = t.encode(text);
    const encoded = performance.now() - t1;
    console.log(`construct ${built.toFixed(0)} ms; encode ${text.length} chars → ${ids.length} ids in ${encoded.toFixed(0)} ms`);
    expect(built).toBeLessThan(2000);
    expect(encoded).toBeLessThan(2000);
  });
});

describe('special tokens', () => {
  it('CONTROL tokens are parsed only with special, USER_DEFINED always', () => {
    const text = '<|im_start|>user\nhi<think>x</think><|im_end|>';
    const on = tok.encode(text, { special: true });
    expect(on).toEqual([IM_START, 872, 198, 6023, THINK, 87, THINK_END, IM_END]);
    const off = tok.encode(text);
    expect(off).not.toContain(IM_START);
    expect(off).not.toContain(IM_END);
    expect(off).toContain(THINK);
    expect(off).toContain(THINK_END);
    expect(off.slice(0, 6)).toEqual(tok.encode('<|im_start|>'));
  });

  it('CONTROL tokens decode to nothing unless special; USER_DEFINED and normal ones always render', () => {
    const ids = [IM_START, 872, 198, THINK, 87, THINK_END, IM_END];
    expect(tok.decode(ids)).toBe('user\n<think>x</think>');
    expect(tok.decode(ids, { special: true })).toBe('<|im_start|>user\n<think>x</think><|im_end|>');
    expect(tok.isControl(IM_START)).toBe(true);
    expect(tok.isControl(THINK)).toBe(false);
    expect(tok.isControl(9707)).toBe(false);
  });

  it("treats '</s>' as llama.cpp does: an end-of-generation token, hence CONTROL", () => {
    expect(tok.isControl(128247)).toBe(true);
    expect(tok.encode('</s>', { special: true })).toEqual([128247]);
    expect(tok.encode('</s>')).not.toContain(128247);
    expect(tok.decode([128247])).toBe('');
    expect(tok.decode([128247], { special: true })).toBe('</s>');
  });

  it('FIM tokens shaped like <|…|> are CONTROL; unused [PAD] slots decode to nothing', () => {
    expect(tok.isControl(151659)).toBe(true); // <|fim_prefix|>
    expect(tok.encode('<|fim_prefix|>', { special: true })).toEqual([151659]);
    expect(tok.decode([151700], { special: true })).toBe('');
    expect(tok.tokenToBytes(151700)).toEqual(new Uint8Array(0));
    expect(tok.tokenText(151700)).toBe('[PAD151700]');
  });

  it('adjacent and repeated specials, partial specials stay text', () => {
    expect(tok.encode('<|im_end|><|im_end|><think><think>', { special: true })).toEqual([IM_END, IM_END, THINK, THINK]);
    const partial = tok.encode('<|im_sta', { special: true });
    expect(partial.some((id) => id >= 151643)).toBe(false);
    expect(tok.decode(partial)).toBe('<|im_sta');
  });

  it('adds BOS / EOS on request', () => {
    expect(tok.encode('Hello', { addBos: true })).toEqual([ENDOFTEXT, 9707]);
    expect(tok.encode('Hello', { addEos: true })).toEqual([9707, IM_END]);
    expect(tok.encode('', { addBos: true })).toEqual([ENDOFTEXT]);
    expect(tok.encode('')).toEqual([]);
  });

  it('tokenToBytes renders CONTROL tokens as text and byte tokens as raw bytes', () => {
    expect(new TextDecoder().decode(tok.tokenToBytes(IM_START))).toBe('<|im_start|>');
    expect(tok.tokenToBytes(byteId[0xe4]!)).toEqual(Uint8Array.of(0xe4));
    expect(tok.tokenToBytes(220)).toEqual(Uint8Array.of(0x20)); // 'Ġ'
  });
});

describe('stream decoder', () => {
  it('holds back a character split across byte tokens', () => {
    const d = tok.createStreamDecoder();
    const bytes = new TextEncoder().encode('é😀中');
    const out = Array.from(bytes, (b) => d.push(byteId[b]!));
    expect(out).toEqual(['', 'é', '', '', '', '😀', '', '', '中']);
    expect(d.flush()).toBe('');
  });

  it('never emits a broken character while streaming emoji, CJK and ZWJ sequences', () => {
    const text = '👨‍👩‍👧‍👦 家族 🧑🏾‍💻 नमस्ते Привет 🇯🇵 ok';
    const ids = tok.encode(text);
    expect(ids.length).toBeGreaterThan(10);
    const d = tok.createStreamDecoder();
    let acc = '';
    for (const id of ids) {
      const piece = d.push(id);
      expect(piece).not.toContain('\uFFFD');
      expect(/[\uD800-\uDFFF]/.test(piece.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''))).toBe(false);
      acc += piece;
      expect(text.startsWith(acc)).toBe(true);
    }
    acc += d.flush();
    expect(acc).toBe(text);
  });

  it('matches decode() on any id sequence, invalid UTF-8 included', () => {
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 300; i++) {
      const ids = Array.from({ length: 1 + Math.floor(rand() * 12) }, () =>
        rand() < 0.5 ? byteId[Math.floor(rand() * 256)]! : Math.floor(rand() * tok.vocabSize),
      );
      for (const special of [false, true]) {
        const d = tok.createStreamDecoder({ special });
        const streamed = ids.map((id) => d.push(id)).join('') + d.flush();
        expect(streamed).toBe(tok.decode(ids, { special }));
      }
    }
  });

  it('replaces invalid bytes at once and an unfinished character on flush', () => {
    const d = tok.createStreamDecoder();
    expect(d.push(byteId[0x80]!)).toBe('\uFFFD'); // a stray continuation byte
    expect(d.push(byteId[0xf0]!)).toBe('');
    expect(d.push(byteId[0x41]!)).toBe('\uFFFDA'); // the 4-byte character never completed
    expect(d.push(byteId[0xe4]!)).toBe('');
    expect(d.flush()).toBe('\uFFFD');
    expect(d.push(9707)).toBe('Hello'); // usable after flush
  });

  it('hides CONTROL tokens unless special', () => {
    const ids = [IM_START, 9707, IM_END];
    const plain = tok.createStreamDecoder();
    expect(ids.map((id) => plain.push(id)).join('')).toBe('Hello');
    const special = tok.createStreamDecoder({ special: true });
    expect(ids.map((id) => special.push(id)).join('')).toBe('<|im_start|>Hello<|im_end|>');
  });
});

describe('pre-tokenizer qwen2', () => {
  const qwen2 = findPreTokenizer('qwen2')!.passes;
  it('splits like the qwen2 pattern', () => {
    expect(preTokenize('Hello world', qwen2)).toEqual(['Hello', ' world']);
    expect(preTokenize('2024 is 1/2', qwen2)).toEqual(['2', '0', '2', '4', ' is', ' ', '1', '/', '2']);
    expect(preTokenize("WE'LL it's", qwen2)).toEqual(['WE', "'LL", ' it', "'s"]);
    expect(preTokenize('a  \n\n  b', qwen2)).toEqual(['a', '  \n\n', ' ', ' b']);
    expect(preTokenize('x   ', qwen2)).toEqual(['x', '   ']);
    expect(preTokenize('...!!\n\nx', qwen2)).toEqual(['...!!\n\n', 'x']);
    // U+FEFF is not whitespace for llama.cpp (it is for JavaScript's \s)
    expect(preTokenize('a\ufeffb', qwen2)).toEqual(['a', '\ufeffb']);
  });
});

describe('errors', () => {
  const base = () => qwen3VocabMetadata();
  it('names what is supported for an unsupported model or pre-tokenizer', () => {
    expect(() => Tokenizer.fromGGUF(toMap(withKey(base(), kv.str('tokenizer.ggml.model', 't5'))))).toThrow(TokenizerError);
    expect(() => Tokenizer.fromGGUF(toMap(withKey(base(), kv.str('tokenizer.ggml.model', 't5'))))).toThrow(
      /unsupported tokenizer model 't5'.*gpt2.*llama.*qwen2/,
    );
    // 'llama' (SPM) is supported, but needs scores, which a BPE vocabulary does not have
    expect(() => Tokenizer.fromGGUF(toMap(withKey(base(), kv.str('tokenizer.ggml.model', 'llama'))))).toThrow(
      /no tokenizer\.ggml\.scores/,
    );
    expect(() => Tokenizer.fromGGUF(toMap(withKey(base(), kv.str('tokenizer.ggml.pre', 'tekken'))))).toThrow(/unsupported pre-tokenizer 'tekken'.*qwen2/);
  });

  it('rejects a GGUF without tokenizer keys', () => {
    expect(() => Tokenizer.fromGGUF(new Map())).toThrow(TokenizerError);
    const noTokens = base().filter((e) => e.key !== 'tokenizer.ggml.tokens');
    expect(() => Tokenizer.fromGGUF(toMap(noTokens))).toThrow(/tokenizer.ggml.tokens/);
    const noMerges = base().filter((e) => e.key !== 'tokenizer.ggml.merges');
    expect(() => Tokenizer.fromGGUF(toMap(noMerges))).toThrow(/merges/);
  });

  it('falls back to the default pre-tokenizer when the key is missing, as llama.cpp does', () => {
    const t = Tokenizer.fromGGUF(toMap(base().filter((e) => e.key !== 'tokenizer.ggml.pre')));
    expect(t.pre).toBe('default');
    expect(t.decode(t.encode('Hello world'))).toBe('Hello world');
  });

  it('throws RangeError for ids outside the vocabulary', () => {
    expect(() => tok.decode([151936])).toThrow(RangeError);
    expect(() => tok.decode([-1])).toThrow(RangeError);
    expect(() => tok.isControl(1.5)).toThrow(RangeError);
  });
});
