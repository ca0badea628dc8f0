// GPT-2 byte-level alphabet: every byte gets a printable code point so that BPE vocabularies can be
// stored as text. Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to themselves; the remaining 68 bytes,
// in ascending order, map to U+0100, U+0101, … (space → 'Ġ' U+0120, newline → 'Ċ' U+010A).

/** byte → the one-character string that stands for it in the vocabulary */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return out;
})();

/** UTF-16 code unit of a byte-level character → its byte, or -1 (indexed 0..0x143) */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const out = new Int16Array(0x144).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => {
    out[c.charCodeAt(0)] = b;
  });
  return out;
})();

/** Maps UTF-8 bytes to their byte-level string. */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}
