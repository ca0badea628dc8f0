// SentencePiece-style tokenization of GGUF vocabularies with `tokenizer.ggml.model = llama` (Llama 2,
// Mistral, Mixtral …), as llama.cpp's llm_tokenizer_spm_session does it (src/llama-vocab.cpp):
//
//   - the text (already escaped: spaces are U+2581 '▁') is split into code points, one symbol each;
//   - every adjacent pair whose concatenation is a token of the vocabulary is a candidate; the
//     candidate whose token has the highest score (`tokenizer.ggml.scores`) is merged first, the
//     leftmost one among equal scores; merging makes new candidates with the neighbours;
//   - a final symbol that is a token is emitted as it; any other (a single code point missing from the
//     vocabulary) is emitted byte by byte as the `<0xXX>` byte tokens (llama.cpp's byte_to_token).
//
// Candidates are any pair that forms a token, whatever the token's type (llama.cpp does not look at
// it), and the merge order depends only on the scores, never on merge lists.
import { TokenizerError } from './errors.js';

const encoder = new TextEncoder();
const HEX = '0123456789ABCDEF';

/** The vocabulary the SPM merge loop needs. */
export interface SpmVocab {
  /** token text → id */
  tokenToId: ReadonlyMap<string, number>;
  /** score of each token (f32, as llama.cpp stores it) */
  scores: Float32Array;
}

/** A candidate merge of symbols `left` and `right` (their texts are `size` UTF-16 units together). */
interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** llama.cpp's llm_bigram_spm comparator: a before b if its score is higher, or equal with a smaller left. */
function before(a: Bigram, b: Bigram): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

/** A binary max-heap of bigrams in `before` order. */
class BigramQueue {
  private readonly items: Bigram[] = [];

  get size(): number {
    return this.items.length;
  }

  push(b: Bigram): void {
    const h = this.items;
    let i = h.length;
    h.push(b);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(b, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = b;
  }

  pop(): Bigram {
    const h = this.items;
    const top = h[0]!;
    const last = h.pop()!;
    const n = h.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r]!, h[l]!) ? r : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

/**
 * The SPM tokenizer over one vocabulary. `byteIds[b]` is the token llama.cpp's byte_to_token gives for
 * byte b (`<0xXX>`, else the one-character token for an ASCII byte), or -1 when the vocabulary has none.
 */
export class SpmModel {
  private readonly byteIds: Int32Array;

  constructor(private readonly vocab: SpmVocab) {
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) {
      const id = vocab.tokenToId.get(`<0x${HEX[b >> 4]}${HEX[b & 15]}>`) ??
        (b < 0x80 ? vocab.tokenToId.get(String.fromCharCode(b)) : undefined);
      if (id !== undefined) this.byteIds[b] = id;
    }
  }

  /** Whether every byte value has a byte-fallback token. */
  get hasAllBytes(): boolean {
    return !this.byteIds.includes(-1);
  }

  /**
   * Appends the tokens of `text` (whitespace already escaped to U+2581) to `out`.
   * @throws TokenizerError when a character is not in the vocabulary and one of its UTF-8 bytes has no
   *   byte token (llama.cpp throws std::out_of_range there).
   */
  tokenize(text: string, out: number[]): void {
    if (text === '') return;
    const { tokenToId, scores } = this.vocab;
    // symbols: one per code point, as a doubly linked list over their UTF-16 offsets
    const start: number[] = [];
    for (let i = 0; i < text.length; i++) {
      start.push(i);
      const c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) i++;
    }
    const n = start.length;
    const len = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      len[i] = (i + 1 < n ? start[i + 1]! : text.length) - start[i]!;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }

    const queue = new BigramQueue();
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const size = len[left]! + len[right]!;
      const id = tokenToId.get(text.substr(start[left]!, size));
      if (id === undefined) return;
      queue.push({ left, right, score: scores[id]!, size });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);

    while (queue.size > 0) {
      const b = queue.pop();
      const l = b.left;
      const r = b.right;
      // stale: one side was merged away or has grown since the candidate was made
      if (len[l] === 0 || len[r] === 0 || len[l]! + len[r]! !== b.size) continue;
      len[l] = b.size;
      len[r] = 0;
      next[l] = next[r]!;
      if (next[r]! >= 0) prev[next[r]!] = l;
      tryAdd(prev[l]!, l);
      tryAdd(l, next[l]!);
    }

    // A merged symbol is always a token; what is left over is single code points that are not.
    for (let i = 0; i !== -1; i = next[i]!) {
      const piece = text.substr(start[i]!, len[i]!);
      const id = tokenToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const byte of encoder.encode(piece)) {
        const bid = this.byteIds[byte]!;
        if (bid < 0) {
          const hex = `<0x${HEX[byte >> 4]}${HEX[byte & 15]}>`;
          throw new TokenizerError(
            `cannot encode ${JSON.stringify(piece)} (U+${piece.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}): ` +
              `it is not in the vocabulary and the vocabulary has no byte-fallback token ${hex}`,
          );
        }
        out.push(bid);
      }
    }
  }
}
