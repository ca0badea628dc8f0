// moet pelican's SVG checks: find the SVG in a model's answer, then decide whether it is a picture
// moet will render. Both are pure functions of text; rendering is render.ts.
//
// Extraction (extractSvg): fenced code blocks first (```svg, ```xml, ```html, or no language), the
// first one holding `<svg`; without one, the first bare `<svg …>…</svg>` in the text, matched by
// depth (an inner <svg> does not end it). An `<svg` with no end is taken to the end of its block or
// of the answer, so that validation can say it is unclosed. The first SVG is the one judged (a model
// that writes a draft and then a "better" one is judged on what it wrote first); `count` says how many
// there were.
//
// Validation (validateSvg), in order:
//   - well-formed XML (xml.ts: strict; no internal DTD subset) within size limits;
//   - the root is `<svg>` in the SVG namespace. Two slips that every browser would also refuse, but
//     that say nothing about the drawing, are repaired and noted as warnings: a root with no xmlns gets
//     xmlns="http://www.w3.org/2000/svg", and an undeclared `xlink:` prefix gets its namespace
//     declared on the root. Any other undeclared prefix, or another root namespace, is invalid;
//   - a usable size: a viewBox of four numbers with a positive width and height, or an absolute width
//     and height (px, pt, pc, mm, cm, in, em, ex); a width or height over MAX_DIMENSION px, zero,
//     negative or not a number is invalid ("absurd size");
//   - nothing active or external: no `<script>`, no `<foreignObject>` (HTML inside SVG), no
//     event-handler attribute (`on…`), no reference outside the document: every `href` / `xlink:href`
//     must be a fragment (`#id`), every `url(…)` in an attribute or a `<style>` too, and `<style>` may
//     not `@import`. data: URIs are refused as well: the test is of drawing with vector shapes, an
//     embedded raster is not a drawing, and a nested data:image/svg+xml would escape these checks.
// Then it counts elements (all, paths, and per name).
import { parseXml, XmlSyntaxError, type XmlElement } from './xml.js';

/** The SVG namespace. */
export const SVG_NS = 'http://www.w3.org/2000/svg';
/** The XLink namespace (SVG 1.1's `xlink:href`). */
export const XLINK_NS = 'http://www.w3.org/1999/xlink';
/** Largest width or height (in px) an SVG may declare. */
export const MAX_DIMENSION = 16384;
/** Largest SVG source, in characters. */
export const MAX_SVG_CHARS = 1_000_000;
/** Most elements an SVG may have. */
export const MAX_ELEMENTS = 50_000;

/** What extractSvg found. */
export interface ExtractedSvg {
  /** the SVG source (from `<svg` to its `</svg>`, or to the end of its block when it has none) */
  svg: string;
  /** 'fenced' when it came from a ``` code block, 'bare' otherwise */
  source: 'fenced' | 'bare';
  /** the fence's language tag ('svg', 'xml', …; '' for none), when fenced */
  lang?: string;
  /** whether its `</svg>` was found */
  closed: boolean;
  /** how many SVGs the answer holds (fenced blocks with one, or bare ones) */
  count: number;
}

/** `<svg` as the start of a tag (not `<svgfoo`) */
const SVG_OPEN = /<svg(?=[\s>/])/g;

/** The first `<svg …>…</svg>` in `text` from `from`, by depth; null when there is no `<svg`. */
function bareSvgAt(text: string, from = 0): { start: number; end: number; closed: boolean } | null {
  SVG_OPEN.lastIndex = from;
  const first = SVG_OPEN.exec(text);
  if (!first) return null;
  let depth = 0;
  const tags = /<svg(?=[\s>/])|<\/svg\s*>/g;
  tags.lastIndex = first.index;
  for (let m = tags.exec(text); m; m = tags.exec(text)) {
    if (m[0].startsWith('</')) {
      depth--;
      if (depth === 0) return { start: first.index, end: m.index + m[0].length, closed: true };
    } else {
      // a self-closing <svg … /> opens nothing (">" inside an attribute value is not looked for)
      const gt = text.indexOf('>', m.index);
      const selfClosing = gt > 0 && text[gt - 1] === '/';
      if (selfClosing && depth === 0) return { start: first.index, end: gt + 1, closed: true };
      if (!selfClosing) depth++;
    }
  }
  return { start: first.index, end: text.length, closed: false };
}

/** Every ``` fenced block: language tag and body. An unterminated fence runs to the end. */
function fencedBlocks(text: string): { lang: string; body: string }[] {
  const blocks: { lang: string; body: string }[] = [];
  const open = /^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n/gm;
  for (let m = open.exec(text); m; m = open.exec(text)) {
    const fence = m[1]!;
    const bodyStart = m.index + m[0].length;
    const close = new RegExp(`^[ \\t]*${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*$`, 'gm');
    close.lastIndex = bodyStart;
    const c = close.exec(text);
    const bodyEnd = c ? c.index : text.length;
    blocks.push({ lang: m[2]!.toLowerCase(), body: text.slice(bodyStart, bodyEnd) });
    open.lastIndex = c ? c.index + c[0].length : text.length;
  }
  return blocks;
}

/** Counts the bare SVGs in a text (consecutive, non-overlapping). */
function countBare(text: string): number {
  let n = 0;
  let at = 0;
  for (let s = bareSvgAt(text, at); s; s = bareSvgAt(text, at)) {
    n++;
    at = s.end;
  }
  return n;
}

/**
 * Finds the SVG in a model's answer (see the file comment for the rules).
 * @returns null when the answer holds no `<svg`
 * @throws nothing
 */
export function extractSvg(answer: string): ExtractedSvg | null {
  const withSvg = fencedBlocks(answer).filter((b) => /<svg(?=[\s>/])/.test(b.body));
  if (withSvg.length > 0) {
    const b = withSvg[0]!;
    const s = bareSvgAt(b.body)!;
    const count = withSvg.reduce((n, blk) => n + countBare(blk.body), 0);
    return { svg: b.body.slice(s.start, s.end).trimEnd(), source: 'fenced', lang: b.lang, closed: s.closed, count };
  }
  const s = bareSvgAt(answer);
  if (!s) return null;
  return { svg: answer.slice(s.start, s.end).trimEnd(), source: 'bare', closed: s.closed, count: countBare(answer) };
}

/** What validateSvg decided. */
export type SvgCheck =
  | {
      valid: true;
      /** the SVG to render and save (the input, or the input with a namespace declaration added) */
      svg: string;
      /** slips that were repaired ("added xmlns …") */
      warnings: string[];
      /** intrinsic size in px (from width/height, or the viewBox's size) */
      width: number;
      height: number;
      viewBox: [number, number, number, number] | null;
      /** elements in all, `<path>` elements, and per local name */
      elements: number;
      paths: number;
      elementCounts: Record<string, number>;
      /** deepest nesting (the root is 1) */
      depth: number;
    }
  | { valid: false; reason: string; warnings: string[] };

const UNITS: Record<string, number> = { '': 1, px: 1, pt: 96 / 72, pc: 16, mm: 96 / 25.4, cm: 96 / 2.54, in: 96, em: 16, ex: 8 };

/** An SVG length in px; 'relative' for a percentage; null when it is not a length. */
function parseLength(v: string): number | 'relative' | null {
  const m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|pt|pc|mm|cm|in|em|ex|%)?\s*$/.exec(v);
  if (!m) return null;
  if (m[2] === '%') return 'relative';
  return Number(m[1]) * UNITS[m[2] ?? '']!;
}

const localName = (qname: string): string => qname.slice(qname.indexOf(':') + 1);
const prefixOf = (qname: string): string | null => (qname.includes(':') ? qname.slice(0, qname.indexOf(':')) : null);

/** Inserts ` ${attr}` after the root element's name. */
function addRootAttribute(svg: string, root: XmlElement, attr: string): string {
  return svg.slice(0, root.nameEnd) + ' ' + attr + svg.slice(root.nameEnd);
}

/** The first url(…) target in a CSS-ish value that is not a fragment, or null. */
function externalUrl(v: string): string | null {
  const re = /url\(\s*(['"]?)\s*([^'")]*?)\s*\1\s*\)/gi;
  for (let m = re.exec(v); m; m = re.exec(v)) if (!m[2]!.startsWith('#')) return m[2]!;
  return null;
}

const short = (s: string, n = 60): string => (s.length > n ? s.slice(0, n) + '…' : s);

/**
 * Decides whether `svg` is a well-formed, self-contained, reasonably sized SVG (see the file comment).
 * @throws nothing: every problem is a `{ valid: false, reason }`
 */
export function validateSvg(svg: string): SvgCheck {
  const warnings: string[] = [];
  const invalid = (reason: string): SvgCheck => ({ valid: false, reason, warnings });
  let doc;
  try {
    doc = parseXml(svg, { maxChars: MAX_SVG_CHARS, maxElements: MAX_ELEMENTS });
  } catch (e) {
    if (e instanceof XmlSyntaxError) return invalid(`not well-formed XML: ${e.message}`);
    throw e;
  }
  let root = doc.root;
  if (localName(root.name) !== 'svg') return invalid(`the root element is <${root.name}>, not <svg>`);

  // namespaces: resolve every prefix; repair the two common slips on the root
  const rootAttr = (n: string) => root.attrs.find(([a]) => a === n)?.[1];
  const rootPrefix = prefixOf(root.name);
  let text = svg;
  if (rootPrefix === null && rootAttr('xmlns') === undefined) {
    text = addRootAttribute(text, root, `xmlns="${SVG_NS}"`);
    warnings.push(`the root <svg> had no xmlns: added xmlns="${SVG_NS}"`);
  }
  const usesXlink = (el: XmlElement): boolean =>
    prefixOf(el.name) === 'xlink' || el.attrs.some(([a]) => prefixOf(a) === 'xlink') || el.children.some(usesXlink);
  const declaresXlink = (el: XmlElement): boolean => el.attrs.some(([a]) => a === 'xmlns:xlink') || el.children.some(declaresXlink);
  if (usesXlink(root) && !declaresXlink(root)) {
    text = addRootAttribute(text, root, `xmlns:xlink="${XLINK_NS}"`);
    warnings.push(`the xlink: prefix was used undeclared: added xmlns:xlink="${XLINK_NS}" to the root`);
  }
  if (text !== svg) {
    try {
      doc = parseXml(text, { maxChars: MAX_SVG_CHARS + 200, maxElements: MAX_ELEMENTS });
    } catch (e) {
      if (e instanceof XmlSyntaxError) return invalid(`not well-formed XML: ${e.message}`);
      throw e;
    }
    root = doc.root;
  }
  const counts: Record<string, number> = {};
  let problem: string | null = null;
  const walk = (el: XmlElement, scope: Map<string, string>): void => {
    if (problem) return;
    let ns = scope;
    for (const [a, v] of el.attrs) {
      if (a === 'xmlns' || a.startsWith('xmlns:')) {
        if (ns === scope) ns = new Map(scope);
        ns.set(a === 'xmlns' ? '' : a.slice(6), v);
      }
    }
    const elPrefix = prefixOf(el.name) ?? '';
    if (!ns.has(elPrefix) && elPrefix !== '') return void (problem = `the namespace prefix ${elPrefix} of <${el.name}> (line ${el.line}) is not declared`);
    for (const [a] of el.attrs) {
      const p = prefixOf(a);
      if (p !== null && p !== 'xmlns' && !ns.has(p)) return void (problem = `the namespace prefix ${p} of the attribute ${a} on <${el.name}> (line ${el.line}) is not declared`);
    }
    const local = localName(el.name);
    const lower = local.toLowerCase();
    if (lower === 'script') return void (problem = `a <${el.name}> element (line ${el.line}): scripts are not allowed`);
    if (lower === 'foreignobject') return void (problem = `a <${el.name}> element (line ${el.line}): HTML inside SVG is not allowed`);
    for (const [a, v] of el.attrs) {
      const la = localName(a).toLowerCase();
      if (la.startsWith('on')) return void (problem = `the event-handler attribute ${a} on <${el.name}> (line ${el.line}) is not allowed`);
      if (la === 'href' && v.trim() !== '' && !v.trim().startsWith('#')) {
        return void (problem = `the external reference ${a}="${short(v.trim())}" on <${el.name}> (line ${el.line}): only #fragment references are allowed`);
      }
      if (prefixOf(a) !== 'xmlns' && a !== 'xmlns') {
        const u = externalUrl(v);
        if (u !== null) return void (problem = `the external reference url(${short(u)}) in ${a} on <${el.name}> (line ${el.line}): only url(#id) is allowed`);
      }
    }
    if (lower === 'style') {
      if (/@import/i.test(el.text)) return void (problem = `an @import in <style> (line ${el.line}): external style sheets are not allowed`);
      const u = externalUrl(el.text);
      if (u !== null) return void (problem = `the external reference url(${short(u)}) in <style> (line ${el.line}): only url(#id) is allowed`);
    }
    counts[local] = (counts[local] ?? 0) + 1;
    for (const c of el.children) walk(c, ns);
  };
  walk(root, new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]));
  if (problem) return invalid(problem);
  const rootNs = root.attrs.find(([a]) => a === (rootPrefix === null ? 'xmlns' : `xmlns:${rootPrefix}`))?.[1];
  if (rootNs !== SVG_NS) return invalid(`the root <${root.name}> is in the namespace "${rootNs ?? ''}", not SVG's (${SVG_NS})`);

  // size
  const attr = (n: string) => root.attrs.find(([a]) => a === n)?.[1];
  let viewBox: [number, number, number, number] | null = null;
  const vb = attr('viewBox');
  if (vb !== undefined) {
    const parts = vb.trim().split(/[\s,]+/).map(Number);
    if (parts.length !== 4 || !parts.every(Number.isFinite)) return invalid(`malformed viewBox="${short(vb)}": it needs four numbers`);
    if (!(parts[2]! > 0 && parts[3]! > 0)) return invalid(`viewBox="${short(vb)}" has a width or height that is not positive`);
    viewBox = parts as [number, number, number, number];
  }
  const dims: Record<'width' | 'height', number | null> = { width: null, height: null };
  for (const d of ['width', 'height'] as const) {
    const v = attr(d);
    if (v === undefined || v.trim() === 'auto') continue;
    const px = parseLength(v);
    if (px === null) return invalid(`${d}="${short(v)}" is not a length`);
    if (px === 'relative') continue;
    if (!Number.isFinite(px) || px <= 0) return invalid(`${d}="${short(v)}" is not positive`);
    if (px > MAX_DIMENSION) return invalid(`${d}="${short(v)}" (${Math.round(px)} px) is over the limit of ${MAX_DIMENSION} px`);
    dims[d] = px;
  }
  let { width, height } = dims;
  if (viewBox) {
    const aspect = viewBox[2] / viewBox[3];
    if (width === null && height === null) {
      [width, height] = [viewBox[2], viewBox[3]];
    } else if (width === null) width = height! * aspect;
    else if (height === null) height = width / aspect;
  }
  if (width === null || height === null) return invalid('no usable size: give a viewBox, or an absolute width and height');
  if (width > MAX_DIMENSION * 64 || height > MAX_DIMENSION * 64) return invalid(`the size ${Math.round(width)}×${Math.round(height)} is absurd`);

  const elements = Object.values(counts).reduce((a, b) => a + b, 0);
  return { valid: true, svg: text, warnings, width, height, viewBox, elements, paths: counts['path'] ?? 0, elementCounts: counts, depth: doc.depth };
}
