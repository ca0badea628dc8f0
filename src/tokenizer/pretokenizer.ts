// Pre-tokenizers of llama.cpp's byte-level BPE path (`tokenizer.ggml.pre`), reproduced as JavaScript
// regular expressions with the same leftmost-first semantics.
//
// llama.cpp runs `qwen2`'s pattern through std::regex over a "collapsed" copy of the text in which
// every non-ASCII code point is replaced by one byte standing for its class (letter, number,
// whitespace, …); ASCII keeps its own identity, and `\s` means C's isspace. `gpt-2` and `llama-bpe`
// use hand-written scanners that follow the same patterns; `default` chains four regexes. What each
// of them calls a letter, number, punctuation or whitespace is in unicode.ts.
// Each regex runs on one piece at a time, so a lookahead never sees past the piece's end, as in
// llama.cpp's `unicode_regex_split`.
import { LETTER as L, MARK as M, NUMBER as N, PUNCTUATION as P, WHITESPACE as WS } from './unicode.js';

const CONTRACTIONS_ANY_CASE = `(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;

/**
 * Qwen2's pattern `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
 * with `digits` = `{1,3}` it is Llama 3's.
 */
function qwen2Pattern(digits: string): RegExp {
  return new RegExp(
    `${CONTRACTIONS_ANY_CASE}|[^\\r\\n${L}${N}]?${L}+|${N}${digits}| ?[^${WS}${L}${N}]+[\\r\\n]*` +
      `|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
    'gv',
  );
}

/**
 * Qwen3.5's pattern (`tokenizer.ggml.pre` = "qwen35"): Qwen2's with combining marks kept in letter
 * runs and out of punctuation runs:
 * `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
 * (llama.cpp runs it through a hand-written scanner with the is_whitespace flag for \s).
 */
function qwen35Pattern(): RegExp {
  return new RegExp(
    `${CONTRACTIONS_ANY_CASE}|[^\\r\\n${L}${N}]?[${L}${M}]+|${N}| ?[^${WS}${L}${M}${N}]+[\\r\\n]*` +
      `|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
    'gv',
  );
}

/**
 * GPT-4o's pattern (`tokenizer.ggml.pre` = "gpt-4o": o200k, gpt-oss's o200k_harmony), as llama.cpp
 * writes it for std::regex:
 * `[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?`
 * `|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:…)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
 * (tokenizer.json's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+…` rewritten without
 * case classes). "A letter that is not a-z" and "a letter that is not A-Z": llama.cpp runs it over the
 * collapsed text, where every non-ASCII letter is the same LETTER byte, so a non-ASCII letter of any
 * case counts as both upper and lower case, and combining marks are not letters.
 */
function gpt4oPattern(): RegExp {
  const upper = `[${L}--[a-z]]`;
  const lower = `[${L}--[A-Z]]`;
  return new RegExp(
    `[^\\r\\n${L}${N}]?${upper}*${lower}+${CONTRACTIONS_ANY_CASE}?|[^\\r\\n${L}${N}]?${upper}+${lower}*${CONTRACTIONS_ANY_CASE}?` +
      `|${N}{1,3}| ?[^${WS}${L}${N}]+[\\r\\n\\/]*|[${WS}]*[\\r\\n]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
    'gv',
  );
}

/** GPT-2's pattern: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` */
const GPT2 = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?${L}+| ?${N}+| ?[^${WS}${L}${N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gv',
);

export interface PreTokenizer {
  /** `tokenizer.ggml.pre` names that select it */
  names: readonly string[];
  /** regexes applied in turn; each splits every piece the previous one produced */
  passes: readonly RegExp[];
  /** a pre-token that is itself in the vocabulary is emitted whole, before any merge */
  ignoreMerges: boolean;
  /** default of add_bos when `tokenizer.ggml.add_bos_token` is absent */
  addBos: boolean;
  /** detokenize applies llama.cpp's clean_up_tokenization_spaces passes */
  cleanSpaces: boolean;
}

/** The pre-tokenizers moet implements (llama.cpp `llm_tokenizer_bpe` and `llama_vocab::impl::load`). */
export const PRE_TOKENIZERS: readonly PreTokenizer[] = [
  {
    names: ['qwen2', 'deepseek-r1-qwen', 'kormo', 'f2llmv2', 'hunyuan', 'solar-open'],
    passes: [qwen2Pattern('')],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: false,
  },
  {
    names: ['qwen35'],
    passes: [qwen35Pattern()],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: false,
  },
  {
    names: ['stablelm2', 'megrez'],
    passes: [qwen2Pattern('')],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: true,
  },
  {
    names: ['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral', 'midm-2.0', 'lfm2'],
    passes: [qwen2Pattern('{1,3}')],
    ignoreMerges: true,
    addBos: true,
    cleanSpaces: true,
  },
  {
    names: ['dbrx', 'smaug-bpe'],
    passes: [qwen2Pattern('{1,3}')],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: true,
  },
  {
    names: ['gpt-4o', 'llama4', 'kanana2', 'talkie'],
    passes: [gpt4oPattern()],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: false,
  },
  {
    names: ['gpt-2', 'phi-2', 'mpt', 'olmo'],
    passes: [GPT2],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: true,
  },
  {
    // also used when the key is missing (llama.cpp warns "GENERATION QUALITY WILL BE DEGRADED")
    names: ['default'],
    passes: [new RegExp(`[${P}$+<=>^~\\|]+`, 'gv'), GPT2, new RegExp(`${N}+`, 'gv'), /[0-9][0-9][0-9]/g],
    ignoreMerges: false,
    addBos: false,
    cleanSpaces: true,
  },
];

/** The pre-tokenizer named `name`, or undefined. */
export function findPreTokenizer(name: string): PreTokenizer | undefined {
  return PRE_TOKENIZERS.find((p) => p.names.includes(name));
}

/** Splits `text` into pre-tokens; the pieces concatenate back to `text`. */
export function preTokenize(text: string, passes: readonly RegExp[]): string[] {
  let pieces = [text];
  for (const re of passes) {
    const next: string[] = [];
    for (const piece of pieces) {
      let last = 0;
      for (const m of piece.matchAll(re)) {
        if (m.index > last) next.push(piece.slice(last, m.index));
        next.push(m[0]);
        last = m.index + m[0].length;
      }
      if (last < piece.length) next.push(piece.slice(last));
    }
    pieces = next;
  }
  return pieces;
}
