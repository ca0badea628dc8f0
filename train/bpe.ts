// Byte-level BPE training (GPT-2 style) over moet's own `qwen2` pre-tokenizer, so that the merges
// are learned on exactly the pieces that moet's and llama.cpp's tokenizers will later merge.
import { findPreTokenizer, preTokenize } from '../src/tokenizer/pretokenizer.js';

/** GPT-2's byte → character map: printable bytes keep their code point, the others U+0100 on. */
export function byteChars(): string[] {
  const map = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map[b] = printable ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  }
  return map;
}

/** The 256 byte tokens in GPT-2's vocabulary order (printable first, then the remapped ones). */
export function byteTokenOrder(): number[] {
  const chars = byteChars();
  return Array.from({ length: 256 }, (_, b) => b).sort((a, b) => chars[a]!.codePointAt(0)! - chars[b]!.codePointAt(0)!);
}

/** Binary max-heap of (count, key), largest count first, smaller key on ties. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];
  private before(i: number, j: number): boolean {
    return this.c[i]! > this.c[j]! || (this.c[i] === this.c[j] && this.k[i]! < this.k[j]!);
  }
  private swap(i: number, j: number): void {
    [this.c[i], this.c[j]] = [this.c[j]!, this.c[i]!];
    [this.k[i], this.k[j]] = [this.k[j]!, this.k[i]!];
  }
  get size(): number {
    return this.c.length;
  }
  push(count: number, key: number): void {
    this.c.push(count);
    this.k.push(key);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  top(): [number, number] {
    return [this.c[0]!, this.k[0]!];
  }
  pop(): void {
    const last = this.c.length - 1;
    this.swap(0, last);
    this.c.pop();
    this.k.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.c.length && this.before(l, m)) m = l;
      if (r < this.c.length && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
}

export interface BpeResult {
  /** token strings: the 256 byte tokens, then one per merge */
  tokens: string[];
  /** "left right", rank = index */
  merges: string[];
}

const KEY = 1 << 14;

/**
 * Learns `nMerges` merges from `texts`, pre-tokenized with the `qwen2` pattern. A merge needs a pair
 * seen at least twice; ties go to the pair of lower symbol ids (deterministic).
 */
export function trainBpe(texts: Iterable<string>, nMerges: number, log: (s: string) => void = () => {}): BpeResult {
  if (256 + nMerges > KEY) throw new RangeError(`at most ${KEY - 256} merges`);
  const pre = findPreTokenizer('qwen2')!;
  const enc = new TextEncoder();
  const wordCounts = new Map<string, number>();
  for (const t of texts) for (const piece of preTokenize(t, pre.passes)) wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + 1);
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [w, c] of wordCounts) {
    const b = enc.encode(w);
    if (b.length < 2) continue;
    words.push(Array.from(b));
    counts.push(c);
  }
  log(`bpe: ${wordCounts.size} distinct pieces, ${words.length} of 2+ bytes`);
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const add = (key: number, wi: number, c: number) => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + c);
    if (c > 0) {
      let s = pairWords.get(key);
      if (!s) pairWords.set(key, (s = new Set()));
      s.add(wi);
    }
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) add(w[i]! * KEY + w[i + 1]!, wi, counts[wi]!);
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);
  const chars = byteChars();
  const symText: string[] = [...chars];
  const merges: string[] = [];
  const changed = new Set<number>();
  while (merges.length < nMerges && heap.size > 0) {
    const [c, key] = heap.top();
    heap.pop();
    if (pairCount.get(key) !== c) continue; // stale entry
    if (c < 2) break;
    const a = Math.floor(key / KEY);
    const b = key % KEY;
    const id = 256 + merges.length;
    merges.push(`${symText[a]} ${symText[b]}`);
    symText.push(symText[a]! + symText[b]!);
    changed.clear();
    for (const wi of pairWords.get(key) ?? []) {
      const w = words[wi]!;
      const wc = counts[wi]!;
      let has = false;
      for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) has = true;
      if (!has) continue;
      for (let i = 0; i + 1 < w.length; i++) {
        const k = w[i]! * KEY + w[i + 1]!;
        pairCount.set(k, pairCount.get(k)! - wc);
        changed.add(k);
      }
      const next: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          next.push(id);
          i++;
        } else next.push(w[i]!);
      }
      words[wi] = next;
      for (let i = 0; i + 1 < next.length; i++) {
        const k = next[i]! * KEY + next[i + 1]!;
        add(k, wi, wc);
        changed.add(k);
      }
    }
    pairWords.delete(key);
    pairCount.delete(key);
    changed.delete(key);
    for (const k of changed) {
      const n = pairCount.get(k)!;
      if (n > 0) heap.push(n, k);
      else {
        pairCount.delete(k);
        pairWords.delete(k);
      }
    }
    if (merges.length % 500 === 0) log(`bpe: ${merges.length} merges (last "${merges.at(-1)}" ×${c})`);
  }
  const order = byteTokenOrder();
  return { tokens: [...order.map((b) => chars[b]!), ...symText.slice(256)], merges };
}
