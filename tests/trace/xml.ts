// A small XML well-formedness checker for the SVG tests (no DOM in Node): tags balanced and
// properly nested, attributes quoted and unique per element, only the five predefined entities or
// character references, no raw '<' or '&' in text, no characters XML 1.0 forbids. Returns the
// elements in document order so tests can count them.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  /** depth below the root (root = 0) */
  depth: number;
  /** text content directly inside (entities decoded) */
  text: string;
}

const NAME = /^[A-Za-z_][\w.:-]*/;
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function decodeEntities(s: string, where: string): string {
  if (/<|&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(s)) throw new Error(`unescaped < or & in ${where}: ${JSON.stringify(s.slice(0, 80))}`);
  return s.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) =>
    e === 'amp' ? '&' : e === 'lt' ? '<' : e === 'gt' ? '>' : e === 'quot' ? '"' : e === 'apos' ? "'" : String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
}

/**
 * Parses `src` as an XML document (an optional XML declaration, one root element).
 * @throws Error naming the problem and its offset
 */
export function parseXml(src: string): XmlElement[] {
  const bad = FORBIDDEN.exec(src);
  if (bad) throw new Error(`character U+${bad[0].charCodeAt(0).toString(16)} not allowed in XML at ${bad.index}`);
  let i = 0;
  if (src.startsWith('<?xml')) {
    i = src.indexOf('?>');
    if (i < 0) throw new Error('unterminated XML declaration');
    i += 2;
  }
  const stack: XmlElement[] = [];
  const out: XmlElement[] = [];
  let roots = 0;
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const textEnd = lt < 0 ? src.length : lt;
    const txt = src.slice(i, textEnd);
    if (stack.length === 0) {
      if (txt.trim() !== '') throw new Error(`text outside the root element at ${i}`);
    } else {
      stack[stack.length - 1]!.text += decodeEntities(txt, `text at ${i}`);
    }
    if (lt < 0) break;
    i = lt;
    if (src.startsWith('<!--', i)) {
      const e = src.indexOf('-->', i);
      if (e < 0) throw new Error(`unterminated comment at ${i}`);
      i = e + 3;
      continue;
    }
    if (src.startsWith('</', i)) {
      const m = NAME.exec(src.slice(i + 2));
      if (!m) throw new Error(`bad end tag at ${i}`);
      const top = stack.pop();
      if (!top || top.name !== m[0]) throw new Error(`end tag </${m[0]}> at ${i} does not match <${top?.name ?? '(none)'}>`);
      i += 2 + m[0].length;
      while (/\s/.test(src[i] ?? '')) i++;
      if (src[i] !== '>') throw new Error(`bad end tag at ${i}`);
      i++;
      continue;
    }
    const m = NAME.exec(src.slice(i + 1));
    if (!m) throw new Error(`bad tag at ${i}: ${JSON.stringify(src.slice(i, i + 20))}`);
    const el: XmlElement = { name: m[0], attrs: {}, depth: stack.length, text: '' };
    if (stack.length === 0 && roots++ > 0) throw new Error(`second root element at ${i}`);
    i += 1 + m[0].length;
    for (;;) {
      const ws = /^\s*/.exec(src.slice(i))![0].length;
      i += ws;
      if (src.startsWith('/>', i)) {
        i += 2;
        out.push(el);
        break;
      }
      if (src[i] === '>') {
        i++;
        out.push(el);
        stack.push(el);
        break;
      }
      if (ws === 0) throw new Error(`missing space before attribute at ${i}`);
      const a = NAME.exec(src.slice(i));
      if (!a) throw new Error(`bad attribute at ${i}: ${JSON.stringify(src.slice(i, i + 20))}`);
      i += a[0].length;
      if (src[i] !== '=') throw new Error(`attribute ${a[0]} without value at ${i}`);
      const q = src[i + 1];
      if (q !== '"' && q !== "'") throw new Error(`unquoted attribute ${a[0]} at ${i}`);
      const end = src.indexOf(q, i + 2);
      if (end < 0) throw new Error(`unterminated attribute ${a[0]} at ${i}`);
      if (a[0] in el.attrs) throw new Error(`duplicate attribute ${a[0]} at ${i}`);
      el.attrs[a[0]] = decodeEntities(src.slice(i + 2, end), `attribute ${a[0]}`);
      i = end + 1;
    }
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  if (roots !== 1) throw new Error('no root element');
  return out;
}
