// The `qwen35` pre-tokenizer (Qwen3.5 / 3.6): Qwen2's pattern with combining marks (\p{M}) kept in
// letter runs and out of punctuation runs. Checked against llama.cpp (node-llama-cpp's CPU build) on
// the real Qwen3 vocabulary relabelled `qwen35` (moet has no Qwen3.5 vocabulary; the split is what
// differs) and on a probe vocabulary that makes every mark's class visible.
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '../../src/tokenizer/index.js';
import { findPreTokenizer, preTokenize } from '../../src/tokenizer/pretokenizer.js';
import { NEW_MARK_RANGES } from '../../src/tokenizer/unicode.js';
import { qwen3VocabMetadata } from '../fixtures/vocab.js';
import { mulberry32 } from '../helpers/random.js';
import { llamaVocabLoader, probeVocab, same, withPre } from './llama-vocab.js';

const MARKS = ['\u0301', '\u0300', '\u0308', '\u0327', '\u0303', '\u20e3', '\ufe0f', '\u093f', '\u094d', '\u0e31', '\u0e49',
  '\u064e', '\u0651', '\u05b7', '\u05bc', '\u0f72', '\u1ab0', '\u1dc0', '\u20d0', '\ufe20', '\u{1d167}', '\u{e0100}', '\u0489',
  '\u0897', '\u{113b8}', '\u1acf'];
const BASES = ['a', 'e', 'Z', 'x', ' ', '  ', '1', '9', '!', '.', "'", '\n', '\r\n', '\t', '_', '-', '(', '😀', '中', 'क', 'ก',
  'ب', 'ש', '\u00a0', '', '\u0000', 'ß', 'İ'];
const WORDS = ['naïve', 'cafe\u0301', 'Tiếng Việt có dấu', 'नमस्ते दुनिया', 'क्षत्रिय द्वारा', 'กรุงเทพมหานคร', 'ภาษาไทย', 'مَرْحَبًا',
  'שָׁלוֹם', 'ཀྲུང་གོ', 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇', '1️⃣ #️⃣ ❤️', "don't", "I'M", 'x\u0301\u0302\u0303y', '\u0301start', 'end\u0301',
  ' \u0301', '!\u0301!', '3\u03014', "'\u0301s", 'A\u030a\u0301', 'n\u0303o', 'o\u0308\u0332', 'ü'.normalize('NFD').repeat(5),
  'हिन्दी123', 'ሰላም', 'ᏣᎳᎩ', '\u1100\u1161\u11a8', '𝒜\u0301', 'Ω\u0342'];

function corpus(): string[] {
  const rand = mulberry32(0x35);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const out: string[] = [...WORDS];
  for (const b of BASES) for (const m of MARKS) out.push(b + m, m + b, `${b}${m}${m}${b}`, ` ${m}${b}`);
  while (out.length < 2500) {
    let s = '';
    const n = 1 + Math.floor(rand() * 10);
    for (let i = 0; i < n; i++) {
      const r = rand();
      s += r < 0.35 ? pick(WORDS) : r < 0.65 ? pick(BASES) : pick(MARKS);
      if (rand() < 0.3) s += pick([' ', '\n', '  ', '']);
    }
    out.push(s);
  }
  return out;
}

const load = llamaVocabLoader('moet-q35tok-');

describe('qwen35 pre-tokenizer', () => {
  it('splits combining marks into letter runs, not punctuation runs', () => {
    const passes = findPreTokenizer('qwen35')!.passes;
    const qwen2 = findPreTokenizer('qwen2')!.passes;
    expect(preTokenize('cafe\u0301 naïve', passes)).toEqual(['cafe\u0301', ' naïve']);
    expect(preTokenize('cafe\u0301 naïve', qwen2)).toEqual(['cafe', '\u0301', ' naïve']);
    expect(preTokenize('नमस्ते', passes)).toEqual(['नमस्ते']);
    expect(preTokenize('!\u0301!', passes)).toEqual(['!\u0301', '!']); // the optional non-letter prefix takes the '!'
    expect(preTokenize(' \u0301x 12', passes)).toEqual([' \u0301x', ' ', '1', '2']);
    expect(preTokenize("it's", passes)).toEqual(['it', "'s"]);
  });

  it('encodes like llama.cpp on the Qwen3 vocabulary relabelled qwen35 (marks, scripts, emoji, zalgo)', async () => {
    const { tok, model } = await load('qwen3-as-qwen35', withPre(qwen3VocabMetadata(), 'qwen35'));
    expect(tok.pre).toBe('qwen35');
    const texts = corpus();
    const mismatches: string[] = [];
    let differsFromQwen2 = 0;
    const qwen2 = findPreTokenizer('qwen2')!.passes;
    const qwen35 = findPreTokenizer('qwen35')!.passes;
    for (const text of texts) {
      const ours = tok.encode(text);
      const theirs = Array.from(model.tokenize(text, false));
      if (!same(ours, theirs)) mismatches.push(`${JSON.stringify(text)}\n  moet  ${ours.join(' ')}\n  llama ${theirs.join(' ')}`);
      if (preTokenize(text, qwen2).length !== preTokenize(text, qwen35).length) differsFromQwen2++;
    }
    console.log(`qwen35 tokenizer parity: ${texts.length - mismatches.length}/${texts.length} identical; ${differsFromQwen2} split differently from qwen2`);
    expect(differsFromQwen2).toBeGreaterThan(texts.length / 4);
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('classifies every combining mark as llama.cpp does (probe vocabulary joining x + c)', async () => {
    const cps: number[] = [];
    for (let cp = 0x80; cp < 0x110000; cp++) {
      if (!(cp >= 0xd800 && cp <= 0xdfff) && /^\p{M}$/u.test(String.fromCodePoint(cp))) cps.push(cp);
    }
    for (const [a, b] of NEW_MARK_RANGES) cps.push(a - 1, b + 1);
    const { tok, model } = await load('probe-qwen35', probeVocab(cps, (s) => [['x', s]])('qwen35'));
    const failures: string[] = [];
    for (const cp of cps) {
      for (const text of ['x' + String.fromCodePoint(cp), `!${String.fromCodePoint(cp)}x`]) {
        const ours = tok.encode(text);
        const theirs = Array.from(model.tokenize(text, false));
        if (!same(ours, theirs)) failures.push(`U+${cp.toString(16)} ${JSON.stringify(text)}: ${ours.join(' ')} vs ${theirs.join(' ')}`);
      }
    }
    console.log(`qwen35 mark probe: ${2 * cps.length - failures.length}/${2 * cps.length} identical over ${cps.length} code points`);
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('Qwen3.5 special tokens: <|im_end|> (eos) and <|endoftext|> end generation; the chat template is exposed', async () => {
    const meta = withPre(qwen3VocabMetadata(), 'qwen35');
    const tok = Tokenizer.fromGGUF(new Map(meta.map((e) => [e.key, e])));
    const imEnd = tok.encode('<|im_end|>', { special: true });
    const eot = tok.encode('<|endoftext|>', { special: true });
    expect(imEnd).toHaveLength(1);
    expect(eot).toHaveLength(1);
    expect(tok.isEog(imEnd[0]!)).toBe(true);
    expect(tok.isEog(eot[0]!)).toBe(true);
    expect(tok.encode('<think>', { special: true })).toHaveLength(1);
    expect(typeof tok.chatTemplate).toBe('string');
    expect(tok.chatTemplate).toContain('<|im_start|>');
  });
});
