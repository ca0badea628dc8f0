// Parity with llama.cpp (node-llama-cpp's CPU build): the real Qwen3 vocabulary is written to a GGUF
// that llama.cpp loads vocabulary-only, and both tokenizers see the same few thousand strings.
import { beforeAll, describe, expect, it } from 'vitest';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { kv } from '../../gguf/writer.js';
import type { Tokenizer } from '../../src/tokenizer/index.js';
import { UNICODE_EXCEPTIONS } from '../../src/tokenizer/unicode.js';
import { qwen3VocabMetadata, QWEN3_VOCAB_SIZE } from '../fixtures/vocab.js';
import { mulberry32 } from '../helpers/random.js';
import { buildCorpus, show } from './corpus.js';
import { llamaVocabLoader, probeVocab, same, withKey, withPre } from './llama-vocab.js';

// ---------------------------------------------------------------------------------------------
// Fixtures: one GGUF per vocabulary variant, loaded by both sides

const load = llamaVocabLoader('moet-tok-');

const corpus = buildCorpus();
let qwen: { tok: Tokenizer; model: LlamaModel };

beforeAll(async () => {
  qwen = await load('qwen3-vocab', qwen3VocabMetadata());
});

describe('Qwen3 vocabulary vs llama.cpp', () => {
  it('documented examples', () => {
    const { tok, model } = qwen;
    expect(tok.encode('Hello world')).toEqual([9707, 1879]);
    expect(tok.encode(' Hello world')).toEqual([21927, 1879]);
    expect(tok.encode('\n\n')).toEqual([271]);
    expect(model.tokenize('Hello world', false)).toEqual([9707, 1879]);
    expect(tok.vocabSize).toBe(QWEN3_VOCAB_SIZE);
  });

  it(`encodes ${corpus.length} strings × {special off, on} exactly as llama.cpp`, () => {
    const { tok, model } = qwen;
    const mismatches: string[] = [];
    let total = 0;
    for (const { text } of corpus) {
      for (const special of [false, true]) {
        total++;
        const ours = tok.encode(text, { special });
        const theirs = Array.from(model.tokenize(text, special));
        if (!same(ours, theirs)) {
          mismatches.push(`special=${special} ${show(text)}\n  moet  ${ours.join(' ')}\n  llama ${theirs.join(' ')}`);
        }
      }
    }
    console.log(`tokenizer parity (qwen2): ${total - mismatches.length}/${total} identical`);
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('decode(encode(s)) == s without special parsing, and decode matches llama.cpp detokenize', () => {
    const { tok, model } = qwen;
    const failures: string[] = [];
    let roundTrips = 0;
    let excluded = 0;
    let decodes = 0;
    for (const { text, lone } of corpus) {
      const ids = tok.encode(text);
      if (lone) excluded++; // lone surrogates become U+FFFD on both sides
      else {
        roundTrips++;
        if (tok.decode(ids) !== text) failures.push(`round trip ${show(text)} → ${show(tok.decode(ids))}`);
      }
      for (const special of [false, true]) {
        const sIds = tok.encode(text, { special });
        for (const decSpecial of [false, true]) {
          decodes++;
          const ours = tok.decode(sIds, { special: decSpecial });
          const theirs = model.detokenize(sIds as Token[], decSpecial);
          if (ours !== theirs) failures.push(`decode(special=${decSpecial}) of ${show(text)}: ${show(ours)} vs ${show(theirs)}`);
        }
      }
    }
    console.log(`round trips: ${roundTrips} (${excluded} strings with lone surrogates excluded); decodes compared: ${decodes}`);
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('decodes random id sequences (partial UTF-8, control, unused ids) like llama.cpp', () => {
    const { tok, model } = qwen;
    const rand = mulberry32(77);
    const failures: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const n = 1 + Math.floor(rand() * 8);
      const ids = Array.from({ length: n }, () =>
        rand() < 0.15 ? 151643 + Math.floor(rand() * (QWEN3_VOCAB_SIZE - 151643)) : rand() < 0.3 ? Math.floor(rand() * 256) : Math.floor(rand() * 151643),
      );
      for (const special of [false, true]) {
        const ours = tok.decode(ids, { special });
        const theirs = model.detokenize(ids as Token[], special);
        if (ours !== theirs) failures.push(`[${ids.join(' ')}] special=${special}: ${show(ours)} vs ${show(theirs)}`);
      }
    }
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('token attributes (CONTROL), end-of-generation set and special ids match llama.cpp for every token', () => {
    const { tok, model } = qwen;
    const diff: number[] = [];
    for (let id = 0; id < tok.vocabSize; id++) {
      const a = model.getTokenAttributes(id as Token);
      if (tok.isControl(id) !== a.control || tok.isEog(id) !== model.isEogToken(id as Token)) diff.push(id);
    }
    expect(diff).toEqual([]);
    expect(tok.eosId).toBe(model.tokens.eos);
    expect(tok.bosId).toBe(model.tokens.bos);
    expect([...tok.eogIds].sort((a, b) => a - b)).toEqual([128247, 151643, 151645, 151662, 151663, 151664]);
  });

  it('overlapping special tokens: longest first over the whole text, as llama.cpp', async () => {
    // Three extra tokens in unused [PAD] slots: two USER_DEFINED that overlap, one CONTROL.
    const base = qwen3VocabMetadata();
    const tokens = [...(base.find((e) => e.key === 'tokenizer.ggml.tokens')!.value as string[])];
    const types = [...(base.find((e) => e.key === 'tokenizer.ggml.token_type')!.value as number[])];
    const extra: [number, string, number][] = [
      [151700, '«xyzzy', 4], [151701, 'zzy»plugh', 4], [151702, '<ctl>zz', 3], [151703, 'plugh»', 4],
    ];
    for (const [id, text, type] of extra) {
      tokens[id] = text;
      types[id] = type;
    }
    let meta = withKey(base, kv.strs('tokenizer.ggml.tokens', tokens));
    meta = withKey(meta, kv.i32s('tokenizer.ggml.token_type', types));
    const { tok, model } = await load('qwen3-overlap', meta);
    const texts = ['«xyzzy»plugh»', '«xyzzy', 'a«xyzzy b', '<ctl>zzy»plugh', '«xy<ctl>zzy»plugh»plugh»', 'zzy»plugh»«xyzzy'];
    for (const text of texts) {
      for (const special of [false, true]) {
        expect(tok.encode(text, { special }), `${text} special=${special}`).toEqual(Array.from(model.tokenize(text, special)));
      }
    }
    // the longer token wins although the shorter one starts first
    expect(tok.encode('«xyzzy»plugh').at(-1)).toBe(151701);
  });
});

// Unicode classes: llama.cpp's tables are Unicode 15.1, V8's are newer. Qwen's merges rarely reveal how
// a rare character was pre-tokenized, so a probe vocabulary makes it visible: its merges join 'x'+c
// (same pre-token only if c is a letter), c+c (split only if c is a number) and c+'!' (grouped by the
// default pre-tokenizer only if c is punctuation) into single tokens.
describe('Unicode classes vs llama.cpp (probe vocabulary)', () => {
  it('letters, numbers and punctuation of every Unicode version agree', async () => {
    const probe = new Set<number>();
    for (const ranges of Object.values(UNICODE_EXCEPTIONS)) {
      for (const [a, b] of ranges) for (let cp = a - 1; cp <= b + 1; cp++) probe.add(cp);
    }
    const lnp = /^[\p{L}\p{N}\p{P}]$/u;
    for (let cp = 0x80; cp < 0x110000; cp += 37) if (lnp.test(String.fromCodePoint(cp))) probe.add(cp);
    const cps = [...probe].filter((cp) => cp > 0x7f && !(cp >= 0xd800 && cp <= 0xdfff));

    const vocab = probeVocab(cps, (s) => [['x', s], [s, s], [s, '!']]);
    const failures: string[] = [];
    let total = 0;
    for (const [pre, probes] of [
      ['qwen2', (c: string) => ['x' + c, c + c, ` ${c}x`]],
      ['default', (c: string) => [c + '!']],
    ] as const) {
      const { tok, model } = await load(`probe-${pre}`, vocab(pre));
      for (const cp of cps) {
        for (const text of probes(String.fromCodePoint(cp))) {
          total++;
          const ours = tok.encode(text);
          const theirs = Array.from(model.tokenize(text, false));
          if (!same(ours, theirs)) failures.push(`${pre} U+${cp.toString(16)} ${show(text)}: ${ours.join(' ')} vs ${theirs.join(' ')}`);
        }
      }
    }
    console.log(`Unicode probe: ${total - failures.length}/${total} identical over ${cps.length} code points`);
    expect(failures.slice(0, 10)).toEqual([]);
  });
});

// The same vocabulary under other pre-tokenizers: llama-bpe (hand-written scanner in llama.cpp, \p{N}{1,3},
// ignore_merges), gpt-2 (hand-written scanner) and default (four regex passes); all three clean up spaces
// when detokenizing. A third of the corpus each, to keep the file fast.
// gpt-4o (o200k, gpt-oss): case runs (upper* lower+ | upper+ lower*), non-ASCII letters of either
// case in both, digits in groups of up to three, no space clean-up; with extra strings for the case split.
const CASE_TEXTS = [
  'HelloWorld', 'helloWORLD', 'HTTPServer', 'iPhone XMLHttpRequest', "DON'T don'T Don'tStop", 'ÉcoleNORMALE', 'straßeSTRASSE',
  'ÀÉÎõüÇ', 'ΑθήναΑΘΗΝΑ', 'МоскваМОСКВА', 'x1234567y', 'a/b/c\n/d', 'path/to/\n\nfile', ' camelCase snake_case', '日本語English',
];

describe.each(['llama-bpe', 'gpt-2', 'default', 'gpt-4o'])('pre-tokenizer %s vs llama.cpp', (pre) => {
  it('encodes and decodes like llama.cpp', async () => {
    const { tok, model } = await load(`qwen3-${pre}`, withPre(qwen3VocabMetadata(), pre));
    const failures: string[] = [];
    let total = 0;
    const texts = pre === 'gpt-4o' ? [...corpus, ...CASE_TEXTS.map((text) => ({ text }))] : corpus;
    texts.forEach(({ text }, i) => {
      if (i % 3 !== 0 && i > 40 && i < corpus.length) return;
      for (const special of [false, true]) {
        total++;
        const ours = tok.encode(text, { special });
        const theirs = Array.from(model.tokenize(text, special));
        if (!same(ours, theirs)) failures.push(`encode special=${special} ${show(text)}\n  moet  ${ours.join(' ')}\n  llama ${theirs.join(' ')}`);
        const decoded = tok.decode(ours, { special });
        const reference = model.detokenize(ours as Token[], special);
        if (decoded !== reference) failures.push(`decode ${show(text)}: ${show(decoded)} vs ${show(reference)}`);
      }
    });
    console.log(`tokenizer parity (${pre}): ${total - failures.length}/${total} identical`);
    expect(failures.slice(0, 10)).toEqual([]);
  });
});
