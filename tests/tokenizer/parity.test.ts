// Parity with llama.cpp (node-llama-cpp's CPU build): the real Qwen3 vocabulary is written to a GGUF
// that llama.cpp loads vocabulary-only, and both tokenizers see the same few thousand strings.
import { beforeAll, describe, expect, it } from 'vitest';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { kv } from '../../gguf/writer.js';
import type { Tokenizer } from '../../src/tokenizer/index.js';
import { UNICODE_EXCEPTIONS } from '../../src/tokenizer/unicode.js';
import { qwen3VocabMetadata, QWEN3_VOCAB_SIZE } from '../fixtures/vocab.js';
import { mulberry32 } from '../helpers/random.js';
import { llamaVocabLoader, probeVocab, same, withKey, withPre } from './llama-vocab.js';

// ---------------------------------------------------------------------------------------------
// Deterministic corpus

const WHITESPACE = [' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r', ' \n', '\n ', ' \t\n ',
  '\v', '\f', '\u00a0', '\u3000', '\u2003', '\u2009', '\u0085', '\u2028', '\u2029', '\u202f', '\u205f', '\u1680',
  '\u180e', '\u200b', '\ufeff', '\u001c', '\u001f', ' \u00a0 ', '\n\u3000\n'];
const WORDS = ['Hello', 'world', 'the', 'The', 'quick', 'brown', 'fox', 'a', 'I', 'tokenizer', 'Mixture-of-Experts',
  'GPU', 'WebGPU', 'llama.cpp', 'Qwen3', 'don\'t', 'HTTPS', 'camelCase', 'snake_case', 'URL', 'e.g.', 'naïve',
  'façade', 'Zürich', 'São', 'Ångström', 'œuvre', 'straße', 'İstanbul', 'ǅ', 'ﬁ'];
const NUMBERS = ['0', '7', '42', '100', '2024', '3.14159', '1,000,000', '-273.15', '1e-6', '0x1F', '0b1011',
  '12345678901234567890', '007', '٣٤٥', '१२३', '１２３', '²³', '½', 'Ⅻ', '𝟙𝟚', '10⁻³', '№5', '3rd', '1st', '99%'];
const CODE = [
  'function add(a, b) {\n  return a + b;\n}\n',
  'def f(x):\n    if x > 0:\n        return x ** 2\n    return -x\n',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }',
  'fn main() -> Result<(), Box<dyn Error>> {\n\tlet v: Vec<u8> = vec![0; 16];\n\tOk(())\n}',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
  'const re = /[^\\s\\p{L}]+/gu; // regex\n',
  '<div class="a">&nbsp;&lt;tag&gt;</div>',
  '{"key": [1, 2.5, null, true], "nested": {"x": "y"}}',
  '    x = [i*i for i in range(10) if i % 2 == 0]\n\n\n',
  'if (a && b || !c) { x += 1; y -= 2; z <<= 3; }',
  '```ts\nexport const x: number = 1;\n```',
  '$ npm run build && ./bin/moet --help 2>&1 | grep -i usage',
  'a\\tb\\nc',
  '    \n\t\t\n  \t  end',
];
const EMOJI = ['😀', '👍', '👍🏽', '👍🏿', '👨‍👩‍👧‍👦', '🧑🏾‍💻', '🏳️‍🌈', '🏴‍☠️', '❤️', '❤️‍🔥', '🇯🇵', '🇺🇸🇫🇷', '1️⃣', '#️⃣',
  '🦙', '🚀', '🫠', '👩🏻‍❤️‍💋‍👨🏼', '✅', '☕', '😶‍🌫️', '🙇‍♀️'];
const SCRIPTS = ['我想在apple工作1314151天～', '日本語のテキストです。カタカナ、ひらがな。', '한국어 문장입니다.',
  'Привет, как дела? Ёжик в тумане.', 'нещо на Български', 'مرحبا بالعالم، كيف حالك؟', 'שלום עולם',
  'नमस्ते दुनिया, यह हिंदी है।', 'क्षत्रिय द्वारा', 'กรุงเทพมหานคร', 'Γειά σου Κόσμε', 'ქართული ენა',
  'Հայերեն', 'ትግርኛ', 'ꯃꯩꯇꯩ', 'កាន់តែពិសេសអាច', 'தமிழ் மொழி', 'বাংলা ভাষা', 'ພາສາລາວ', '𐌰𐌱𐌲 gothic',
  'Tiếng Việt có dấu', 'cafe\u0301 vs café', 'n\u0303', 'A\u030a\u0301', '각'];
const CONTRACTIONS = ["I'm", "you're", "WE'LL", "it's", "IT'S", "they've", "He'D", "can't", "'s", "'S", "'re",
  "'LL", "'ll", "'Ve", "'m", "'d", "y'all", "rock 'n' roll", "’s", "''", "'''", "' ", " 'tis", "o'clock",
  "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"];
const SPECIALS = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<tool_call>', '</tool_call>',
  '<tool_response>', '</tool_response>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>',
  '<|repo_name|>', '<|file_sep|>', '<|object_ref_start|>', '<|vision_pad|>', '<|image_pad|>', '<|box_end|>',
  '</s>', '<s>', '[PAD151700]', '<|im_sta', 'rt|>', '<|', '|>', '<<|im_start|>>', '<think><think>',
  '<|im_start|><|im_end|>', '<|im_start|im_end|>', '<|endoftext|>'.repeat(3), '</think\n>', '<THINK>'];
const PUNCT = ['.', ',', '!', '?', '...', '!!!', '???', '?!', '—', '–', '-', '--', '---', '(', ')', '[', ']', '{', '}',
  '"', '“', '”', '«', '»', '…', '·', '•', '§', '¶', '©', '®', '™', '°', '±', '×', '÷', '€', '$', '£', '¥', '₿',
  '@', '#', '%', '^', '&', '*', '_', '+', '=', '|', '\\', '/', '<', '>', '~', '`', ':', ';', '¡', '¿',
  '″', '‰', '∑', '√', '∞', '≠', '≤', '→', '⇒', '∀x∈ℝ', '♠', '♥', '🀄', '☃'];
const CONTROL_CHARS = ['\u0000', '\u0001', '\u0007', '\u0008', '\u001b[31m', '\u007f', '\u0080', '\u009f', '\u00ad',
  '\u200c', '\u200d', '\u200e', '\u200f', '\u2060', '\u2066', '\ufffd', '\ufffe', '\uffff', '\ue000', '\udb80\udc00',
  '\uDBFF\uDFFF', '\u{e0001}', '\u{e0041}', '\u0301'];
const LONE = ['\ud800', '\udfff', 'a\ud83d', '\ude00b', '\ud83d\ud83d', 'x\udc00\ud800y'];

/** Unicode from several planes, including unassigned and private-use code points (never surrogates). */
function randomCodePoint(rand: () => number): number {
  const r = rand();
  let cp: number;
  if (r < 0.3) cp = 0x20 + Math.floor(rand() * 0x60); // ASCII
  else if (r < 0.45) cp = 0xa0 + Math.floor(rand() * 0x2000); // Latin … General Punctuation
  else if (r < 0.6) cp = Math.floor(rand() * 0x10000); // any BMP
  else if (r < 0.7) cp = 0x4e00 + Math.floor(rand() * 0x5200); // CJK
  else if (r < 0.8) cp = 0x1f300 + Math.floor(rand() * 0x700); // emoji & symbols
  else if (r < 0.9) cp = 0x10000 + Math.floor(rand() * 0x10000); // SMP
  else if (r < 0.95) cp = 0x20000 + Math.floor(rand() * 0x20000); // SIP / TIP
  else cp = 0x30000 + Math.floor(rand() * 0xe0000); // planes 3-16 (mostly unassigned, private use)
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x20 + (cp & 0x3f);
  return cp;
}

interface Sample {
  text: string;
  /** lone surrogates: llama.cpp (via N-API) and moet read them as U+FFFD, so text cannot round-trip */
  lone: boolean;
}

function buildCorpus(): Sample[] {
  const rand = mulberry32(0x5eed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const out: string[] = [
    'Hello world', ' Hello world', '\n\n', '', ' ', 'a', '\u0000', 'Hello', '  Hello', 'Hello  world  ',
    // convert_hf_to_gguf.py's pre-tokenizer fingerprint text
    '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL',
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n',
    ' '.repeat(300) + 'x', '\n'.repeat(100), '\t'.repeat(64) + 'y', '1'.repeat(500), 'ab'.repeat(1000),
    '😀'.repeat(200), '\u3000'.repeat(50), '.'.repeat(333), 'x '.repeat(800),
  ];
  const pools = [WHITESPACE, WORDS, NUMBERS, CODE, EMOJI, SCRIPTS, CONTRACTIONS, SPECIALS, PUNCT, CONTROL_CHARS];
  for (const pool of [...pools, LONE]) for (const s of pool) out.push(s);
  // single categories with surroundings
  for (const pool of pools) for (const s of pool) out.push(`x${s}y`, ` ${s} `, `${s}\n${s}`, `1${s}2`);
  // random mixtures
  while (out.length < 2400) {
    const n = 1 + Math.floor(rand() * 12);
    let s = '';
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.82) s += pick(pick(pools));
      else if (r < 0.95) {
        const m = 1 + Math.floor(rand() * 8);
        for (let k = 0; k < m; k++) s += String.fromCodePoint(randomCodePoint(rand));
      } else s += pick(LONE);
      if (rand() < 0.5) s += pick(WHITESPACE.slice(0, 14));
    }
    out.push(s);
  }
  // a few long documents
  for (let d = 0; d < 6; d++) {
    let s = '';
    while (s.length < 6000) s += pick(pick(pools)) + pick([' ', '\n', '', '  ']);
    out.push(s);
  }
  return out.map((text) => ({ text, lone: /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text) }));
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one GGUF per vocabulary variant, loaded by both sides

const load = llamaVocabLoader('moet-tok-');

const corpus = buildCorpus();
let qwen: { tok: Tokenizer; model: LlamaModel };

beforeAll(async () => {
  qwen = await load('qwen3-vocab', qwen3VocabMetadata());
});

const show = (s: string) => JSON.stringify(s.length > 120 ? s.slice(0, 120) + '…' : s);

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
describe.each(['llama-bpe', 'gpt-2', 'default'])('pre-tokenizer %s vs llama.cpp', (pre) => {
  it('encodes and decodes like llama.cpp', async () => {
    const { tok, model } = await load(`qwen3-${pre}`, withPre(qwen3VocabMetadata(), pre));
    const failures: string[] = [];
    let total = 0;
    corpus.forEach(({ text }, i) => {
      if (i % 3 !== 0 && i > 40) return;
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
