// Character classes of llama.cpp's pre-tokenizers, for JavaScript regexes (`v` flag).
//
// llama.cpp classifies code points with a table generated from Unicode 15.1 (src/unicode-data.cpp);
// V8 answers \p{L}, \p{N} and \p{P} from its own ICU, Unicode 17 in Node 20.20. Code points assigned
// since 15.1 are unassigned for llama.cpp, so they must not count as letters, numbers or punctuation
// here. The ranges below were measured against llama.cpp itself (node-llama-cpp 3.22.1, CPU build): a
// probe vocabulary whose merges join 'x'+c, c+c and c+'!' into single tokens reveals, for each code
// point c that V8 puts in L, N or P but Unicode 14 left unassigned, whether llama.cpp keeps 'x'+c in
// one pre-token (letter), splits c+c (number) or groups c+'!' under the `default` pre-tokenizer
// (punctuation). tests/tokenizer/parity.test.ts re-checks them. A runtime with Unicode 18 or later
// will know more code points that llama.cpp does not; those are not excluded.

type Range = readonly [number, number];

/** Letters (\p{L}) for V8, unassigned for llama.cpp: Unicode 16.0 and 17.0 additions. */
const NEW_LETTERS: readonly Range[] = [
  [0x88f, 0x88f], [0xc5c, 0xc5c], [0xcdc, 0xcdc], [0x1c89, 0x1c8a], [0xa7cb, 0xa7cf], [0xa7d2, 0xa7d2],
  [0xa7d4, 0xa7d4], [0xa7da, 0xa7dc], [0xa7f1, 0xa7f1], [0x105c0, 0x105f3], [0x10940, 0x10959],
  [0x10d4a, 0x10d65], [0x10d6f, 0x10d85], [0x10ec2, 0x10ec7], [0x11380, 0x11389], [0x1138b, 0x1138b],
  [0x1138e, 0x1138e], [0x11390, 0x113b5], [0x113b7, 0x113b7], [0x113d1, 0x113d1], [0x113d3, 0x113d3],
  [0x11bc0, 0x11be0], [0x11db0, 0x11ddb], [0x13460, 0x143fa], [0x16100, 0x1611d], [0x16d40, 0x16d6c],
  [0x16ea0, 0x16eb8], [0x16ebb, 0x16ed3], [0x16ff2, 0x16ff3], [0x187f8, 0x187ff], [0x18cff, 0x18cff],
  [0x18d09, 0x18d1e], [0x18d80, 0x18df2], [0x1e5d0, 0x1e5ed], [0x1e5f0, 0x1e5f0], [0x1e6c0, 0x1e6de],
  [0x1e6e0, 0x1e6e2], [0x1e6e4, 0x1e6e5], [0x1e6e7, 0x1e6ed], [0x1e6f0, 0x1e6f4], [0x1e6fe, 0x1e6ff],
  [0x2b73a, 0x2b73f], [0x2cea2, 0x2cead], [0x323b0, 0x33479],
];

/** Numbers (\p{N}) for V8, unassigned for llama.cpp. */
const NEW_NUMBERS: readonly Range[] = [
  [0x10d40, 0x10d49], [0x116d0, 0x116e3], [0x11bf0, 0x11bf9], [0x11de0, 0x11de9], [0x16130, 0x16139],
  [0x16d70, 0x16d79], [0x16ff4, 0x16ff6], [0x1ccf0, 0x1ccf9], [0x1e5f1, 0x1e5fa],
];

/** Punctuation (\p{P}) for V8, unassigned for llama.cpp. */
const NEW_PUNCTUATION: readonly Range[] = [
  [0x1b4e, 0x1b4f], [0x1b7f, 0x1b7f], [0x10d6e, 0x10d6e], [0x10ed0, 0x10ed0], [0x113d4, 0x113d5],
  [0x113d7, 0x113d8], [0x11be1, 0x11be1], [0x16d6d, 0x16d6f], [0x1e5ff, 0x1e5ff],
];

function rangeClass(ranges: readonly Range[]): string {
  const hex = (cp: number) => `\\u{${cp.toString(16)}}`;
  return `[${ranges.map(([a, b]) => (a === b ? hex(a) : `${hex(a)}-${hex(b)}`)).join('')}]`;
}

/** \p{L} as llama.cpp sees it (a `v`-mode class). */
export const LETTER = `[\\p{L}--${rangeClass(NEW_LETTERS)}]`;
/** \p{N} as llama.cpp sees it (a `v`-mode class). */
export const NUMBER = `[\\p{N}--${rangeClass(NEW_NUMBERS)}]`;
/** \p{P} as llama.cpp sees it (a `v`-mode class). */
export const PUNCTUATION = `[\\p{P}--${rangeClass(NEW_PUNCTUATION)}]`;

/**
 * Whitespace as llama.cpp's pre-tokenizers see it, as class contents: Unicode White_Space. U+FEFF is
 * not whitespace here (JavaScript's \s says it is), and neither are U+001C-U+001F (Python's
 * str.isspace says they are).
 */
export const WHITESPACE = '\\t\\n\\v\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';

/**
 * Combining marks (\p{M}) for V8, unassigned for llama.cpp (Unicode 16 and 17 additions): measured the
 * same way with the `qwen35` pre-tokenizer, whose letter runs are [\p{L}\p{M}]+ ('x'+c stays one
 * pre-token only if c is a mark there). tests/tokenizer/qwen35.test.ts re-checks them.
 */
const NEW_MARKS: readonly Range[] = [
  [0x897, 0x897], [0x1acf, 0x1add], [0x1ae0, 0x1aeb], [0x10d69, 0x10d6d], [0x10efa, 0x10efc], [0x113b8, 0x113c0],
  [0x113c2, 0x113c2], [0x113c5, 0x113c5], [0x113c7, 0x113ca], [0x113cc, 0x113d0], [0x113d2, 0x113d2],
  [0x113e1, 0x113e2], [0x11b60, 0x11b67], [0x11f5a, 0x11f5a], [0x1611e, 0x1612f], [0x1e5ee, 0x1e5ef],
  [0x1e6e3, 0x1e6e3], [0x1e6e6, 0x1e6e6], [0x1e6ee, 0x1e6ef], [0x1e6f5, 0x1e6f5],
];

/** \p{M} as llama.cpp sees it (a `v`-mode class). */
export const MARK = `[\\p{M}--${rangeClass(NEW_MARKS)}]`;

/** Marks that V8 knows and llama.cpp does not (for tests). */
export const NEW_MARK_RANGES = NEW_MARKS;

/** Code points whose class differs between V8 and llama.cpp (for tests). */
export const UNICODE_EXCEPTIONS = { letters: NEW_LETTERS, numbers: NEW_NUMBERS, punctuation: NEW_PUNCTUATION };
