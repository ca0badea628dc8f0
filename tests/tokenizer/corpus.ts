// The deterministic corpus of the tokenizer parity tests (parity.test.ts, spm.test.ts, llama3.test.ts):
// whitespace, words, numbers, code, emoji, scripts, contractions, special-token look-alikes,
// punctuation, control characters and lone surrogates, alone, in context and in random mixtures.
import { mulberry32 } from '../helpers/random.js';

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
export const SPECIALS = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<tool_call>', '</tool_call>',
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

export interface Sample {
  text: string;
  /** lone surrogates: llama.cpp (via N-API) and moet read them as U+FFFD, so text cannot round-trip */
  lone: boolean;
}

export function buildCorpus(): Sample[] {
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

/** a string shortened for a failure message */
export const show = (s: string) => JSON.stringify(s.length > 120 ? s.slice(0, 120) + '…' : s);
