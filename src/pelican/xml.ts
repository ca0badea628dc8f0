// A small, strict XML 1.0 well-formedness checker for the SVGs a model writes (moet pelican). It
// builds a light element tree (names, attributes with references decoded, direct text) and refuses,
// with the line and column, what an XML parser must refuse: characters outside XML's Char set,
// malformed names, unquoted or duplicate attributes, `<` in an attribute value, references to
// entities XML does not predefine (`&nbsp;`: there is no DTD to declare them), a bare `&`, `--` in a
// comment, `]]>` in text, mismatched or unclosed tags, text or a second element outside the root, an
// XML declaration anywhere but the start. A DOCTYPE is accepted (its external DTD is never read) but
// not one with an internal subset: that is where entity declarations (and "billion laughs") live.
//
// It stops at limits on size, element count and nesting depth, so that nothing a model writes can
// make it (or the renderer after it) work for long. Namespaces are left to the caller (svg.ts):
// prefixes are kept in the names.

/** A well-formedness error, with its position (1-based). */
export class XmlSyntaxError extends Error {
  override name = 'XmlSyntaxError';
  constructor(readonly reason: string, readonly line: number, readonly column: number) {
    super(`${reason} (line ${line}, column ${column})`);
  }
}

/** One element of the tree. */
export interface XmlElement {
  /** the qualified name as written (`svg`, `xlink:href` style prefixes kept) */
  name: string;
  /** attributes in document order, values with references decoded and whitespace normalized */
  attrs: [name: string, value: string][];
  children: XmlElement[];
  /** the element's direct text (CDATA included), concatenated */
  text: string;
  /** 1-based line of its start tag */
  line: number;
  /** offsets in the source: of its `<` and of the end of its name (where an attribute can be inserted) */
  start: number;
  nameEnd: number;
}

/** A parsed document. */
export interface XmlDocument {
  root: XmlElement;
  /** elements in the whole tree */
  elementCount: number;
  /** the deepest nesting (the root is 1) */
  depth: number;
  /** the DOCTYPE as written, when there is one */
  doctype?: string;
}

/** Limits of parseXml. */
export interface XmlLimits {
  /** characters of the source. Default 1,000,000 */
  maxChars?: number;
  /** elements. Default 50,000 */
  maxElements?: number;
  /** nesting depth. Default 256 */
  maxDepth?: number;
}

const NAME_START = ':A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD';
const NAME_CHAR = NAME_START + '\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040';
const NAME = new RegExp(`[${NAME_START}][${NAME_CHAR}]*`, 'y');
const SPACE = /[ \t\r\n]*/y;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** whether a code point is an XML 1.0 Char */
function isXmlChar(c: number): boolean {
  return c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/**
 * Parses `src` as an XML document and returns its element tree.
 * @throws XmlSyntaxError when it is not well-formed or passes a limit
 */
export function parseXml(src: string, limits: XmlLimits = {}): XmlDocument {
  const maxChars = limits.maxChars ?? 1_000_000;
  const maxElements = limits.maxElements ?? 50_000;
  const maxDepth = limits.maxDepth ?? 256;
  let i = 0;

  const fail = (reason: string, at = i): never => {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < at && k < src.length; k++) {
      if (src.charCodeAt(k) === 10) {
        line++;
        lineStart = k + 1;
      }
    }
    throw new XmlSyntaxError(reason, line, at - lineStart + 1);
  };
  const lineAt = (at: number): number => {
    let line = 1;
    for (let k = 0; k < at; k++) if (src.charCodeAt(k) === 10) line++;
    return line;
  };

  if (src.length > maxChars) fail(`the document has ${src.length} characters, over the limit of ${maxChars}`, 0);
  for (let k = 0; k < src.length; k++) {
    const c = src.codePointAt(k)!;
    if (c > 0xffff) k++;
    else if (c >= 0xd800 && c <= 0xdfff) fail('a lone UTF-16 surrogate', k);
    if (!isXmlChar(c)) fail(`the character U+${c.toString(16).toUpperCase().padStart(4, '0')} is not allowed in XML`, k);
  }

  const skipSpace = (): boolean => {
    SPACE.lastIndex = i;
    SPACE.exec(src);
    const moved = SPACE.lastIndex > i;
    i = SPACE.lastIndex;
    return moved;
  };
  const name = (what: string): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(src);
    if (!m) fail(i >= src.length ? `the document ends where ${what} should be` : `expected ${what}, found ${JSON.stringify(src.slice(i, i + 12))}`);
    i = NAME.lastIndex;
    return m![0];
  };
  /** decodes the references of text or an attribute value found at `at` */
  const decode = (s: string, at: number): string => {
    if (!s.includes('&')) return s;
    return s.replace(/&([^;&<\s]*)(;?)/g, (whole, ref: string, semi: string, off: number) => {
      const where = at + off;
      if (!semi) fail(ref ? `the reference &${ref} has no ";" (a bare & must be written &amp;)` : 'a bare & (write &amp;)', where);
      if (ref.startsWith('#')) {
        const hex = ref[1] === 'x';
        const digits = ref.slice(hex ? 2 : 1);
        if (!(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) fail(`malformed character reference &${ref};`, where);
        const c = parseInt(digits, hex ? 16 : 10);
        if (!isXmlChar(c)) fail(`the character reference &${ref}; is not an XML character`, where);
        return String.fromCodePoint(c);
      }
      const v = PREDEFINED[ref];
      if (v === undefined) fail(`the entity &${ref}; is not defined (XML predefines only lt, gt, amp, quot, apos)`, where);
      return v!;
    });
  };
  const expect = (s: string, what: string): void => {
    if (!src.startsWith(s, i)) fail(i >= src.length ? `the document ends where ${what} should be` : `expected ${what}`);
    i += s.length;
  };
  const comment = (): void => {
    const start = i;
    const end = src.indexOf('-->', i + 4);
    if (end < 0) fail('unclosed comment', start);
    const body = src.slice(i + 4, end);
    if (body.includes('--') || body.endsWith('-')) fail('"--" inside a comment', start);
    i = end + 3;
  };
  const pi = (): void => {
    const start = i;
    i += 2;
    const target = name('a processing instruction target');
    if (target.toLowerCase() === 'xml') fail('an XML declaration is allowed only at the very start of the document', start);
    const end = src.indexOf('?>', i);
    if (end < 0) fail('unclosed processing instruction', start);
    if (end > i && !/^[ \t\r\n]/.test(src.slice(i, i + 1))) fail('malformed processing instruction', start);
    i = end + 2;
  };

  // prolog
  if (src.charCodeAt(0) === 0xfeff) i = 1;
  if (/^<\?xml[ \t\r\n?]/.test(src.slice(i, i + 6))) {
    const end = src.indexOf('?>', i);
    if (end < 0) fail('unclosed XML declaration');
    const decl = src.slice(i + 5, end);
    if (!/^[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])1\.[0-9]+\1([ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])[A-Za-z][A-Za-z0-9._-]*\3)?([ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(yes|no)\5)?[ \t\r\n]*$/.test(decl)) {
      fail('malformed XML declaration');
    }
    i = end + 2;
  }
  let doctype: string | undefined;
  const misc = (allowDoctype: boolean): void => {
    for (;;) {
      skipSpace();
      if (src.startsWith('<!--', i)) comment();
      else if (src.startsWith('<?', i)) pi();
      else if (src.startsWith('<!DOCTYPE', i)) {
        if (!allowDoctype || doctype !== undefined) fail('a DOCTYPE is allowed only once, before the root element');
        const start = i;
        let q = '';
        let k = i + 9;
        for (; k < src.length; k++) {
          const ch = src[k]!;
          if (q) {
            if (ch === q) q = '';
          } else if (ch === '"' || ch === "'") q = ch;
          else if (ch === '[') fail('a DOCTYPE with an internal subset (entity declarations are not accepted)', start);
          else if (ch === '>') break;
        }
        if (k >= src.length) fail('unclosed DOCTYPE', start);
        doctype = src.slice(start, k + 1);
        i = k + 1;
      } else return;
    }
  };
  misc(true);
  if (i >= src.length) fail('no root element');
  if (src[i] !== '<') fail('text before the root element');

  let elementCount = 0;
  let depth = 0;
  let root: XmlElement | null = null;
  const stack: XmlElement[] = [];

  /** parses a start tag at i (src[i] === '<'); returns the element and whether it was empty (`/>`) */
  const startTag = (): { el: XmlElement; empty: boolean } => {
    const start = i;
    i++;
    const n = name('an element name');
    const el: XmlElement = { name: n, attrs: [], children: [], text: '', line: lineAt(start), start, nameEnd: i };
    if (++elementCount > maxElements) fail(`more than ${maxElements} elements`, start);
    const seen = new Set<string>();
    for (;;) {
      const spaced = skipSpace();
      if (src.startsWith('/>', i)) {
        i += 2;
        return { el, empty: true };
      }
      if (src[i] === '>') {
        i++;
        return { el, empty: false };
      }
      if (i >= src.length) fail(`unclosed start tag <${n}`, start);
      if (!spaced) fail(`expected whitespace, ">" or "/>" in the start tag <${n}`);
      const attrAt = i;
      const a = name(`an attribute name or the end of <${n}>`);
      skipSpace();
      expect('=', `"=" after the attribute ${a}`);
      skipSpace();
      const q = src[i];
      if (q !== '"' && q !== "'") fail(`the value of ${a} is not quoted`);
      const end = src.indexOf(q!, i + 1);
      if (end < 0) fail(`unclosed value of the attribute ${a}`, attrAt);
      const raw = src.slice(i + 1, end);
      const lt = raw.indexOf('<');
      if (lt >= 0) fail(`"<" in the value of the attribute ${a}`, i + 1 + lt);
      if (seen.has(a)) fail(`the attribute ${a} appears twice on <${n}>`, attrAt);
      seen.add(a);
      el.attrs.push([a, decode(raw, i + 1).replace(/[\t\r\n]/g, ' ')]);
      i = end + 1;
    }
  };

  for (;;) {
    if (stack.length === 0) {
      // the root element
      const { el, empty } = startTag();
      root = el;
      depth = 1;
      if (empty) break;
      stack.push(el);
      continue;
    }
    const top = stack[stack.length - 1]!;
    if (i >= src.length) fail(`unclosed <${top.name}> (opened on line ${top.line})`);
    if (src.startsWith('</', i)) {
      const at = i;
      i += 2;
      const n = name('an element name after "</"');
      skipSpace();
      if (src[i] !== '>') fail(`expected ">" to end </${n}`);
      i++;
      if (n !== top.name) fail(`</${n}> does not close <${top.name}> (opened on line ${top.line})`, at);
      stack.pop();
      if (stack.length === 0) break;
    } else if (src.startsWith('<!--', i)) comment();
    else if (src.startsWith('<![CDATA[', i)) {
      const end = src.indexOf(']]>', i + 9);
      if (end < 0) fail('unclosed CDATA section');
      top.text += src.slice(i + 9, end);
      i = end + 3;
    } else if (src.startsWith('<?', i)) pi();
    else if (src.startsWith('<!', i)) fail('"<!" inside an element (only comments and CDATA sections may start so)');
    else if (src[i] === '<') {
      const { el, empty } = startTag();
      top.children.push(el);
      if (!empty) {
        stack.push(el);
        if (stack.length > maxDepth) fail(`elements nested deeper than ${maxDepth}`, el.start);
        depth = Math.max(depth, stack.length);
      }
    } else {
      const at = i;
      const lt = src.indexOf('<', i);
      const end = lt < 0 ? src.length : lt;
      const raw = src.slice(i, end);
      const cdataEnd = raw.indexOf(']]>');
      if (cdataEnd >= 0) fail('"]]>" in text', at + cdataEnd);
      top.text += decode(raw, at);
      i = end;
    }
  }
  misc(false);
  if (i < src.length) fail(src[i] === '<' ? 'a second element after the root element (a document has one root)' : 'text after the root element');
  return { root: root!, elementCount, depth, ...(doctype !== undefined ? { doctype } : {}) };
}
