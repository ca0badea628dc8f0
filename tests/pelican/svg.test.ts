// moet pelican's SVG path on hand-written answers: extraction (fenced, bare, several, none),
// validation (well-formedness, root, size, scripts, handlers, external references), rendering (resvg)
// and the recorded status of an answer.
import { describe, expect, it } from 'vitest';
import { judgeAnswer } from '../../src/pelican/judge.js';
import { renderSvg } from '../../src/pelican/render.js';
import { extractSvg, MAX_DIMENSION, validateSvg } from '../../src/pelican/svg.js';
import { parseXml, XmlSyntaxError } from '../../src/pelican/xml.js';
import { decodePng } from '../render/png-stats.js';

const NS = 'xmlns="http://www.w3.org/2000/svg"';

/** a small but real drawing: sky, wheels, a frame, a body and a beak */
const PELICAN = `<svg ${NS} viewBox="0 0 200 100" width="200" height="100">
  <rect x="0" y="0" width="200" height="100" fill="#ff0000"/>
  <g stroke="#222" stroke-width="3" fill="none">
    <circle cx="50" cy="75" r="20"/>
    <circle cx="150" cy="75" r="20"/>
    <path d="M50 75 L90 40 L150 75 M90 40 L110 40"/>
  </g>
  <ellipse cx="100" cy="30" rx="25" ry="12" fill="#fff"/>
  <path d="M120 28 L170 34 L120 36 Z" fill="#f5a623"/>
  <!-- a comment, &amp; an entity: -->
  <text x="5" y="95" font-size="8">Pelican &amp; bicycle</text>
</svg>`;

describe('extractSvg', () => {
  it('takes a fenced ```svg block from prose', () => {
    const e = extractSvg(`Here is your pelican:\n\n\`\`\`svg\n${PELICAN}\n\`\`\`\n\nEnjoy!`)!;
    expect(e).toMatchObject({ source: 'fenced', lang: 'svg', closed: true, count: 1 });
    expect(e.svg).toBe(PELICAN);
  });

  it('takes an ```xml block, from <svg on (the XML declaration is left out)', () => {
    const e = extractSvg(`\`\`\`xml\n<?xml version="1.0" encoding="UTF-8"?>\n${PELICAN}\n\`\`\``)!;
    expect(e).toMatchObject({ source: 'fenced', lang: 'xml', closed: true });
    expect(e.svg.startsWith('<svg ')).toBe(true);
  });

  it('finds a bare <svg>…</svg> and matches nested <svg> by depth', () => {
    const inner = `<svg ${NS} viewBox="0 0 10 10"><svg x="1" width="5" height="5"><rect width="5" height="5"/></svg><circle r="2"/></svg>`;
    const e = extractSvg(`Sure! ${inner} That is all.`)!;
    expect(e).toMatchObject({ source: 'bare', closed: true, count: 1 });
    expect(e.svg).toBe(inner);
  });

  it('judges the first of several SVGs and counts them', () => {
    const a = `<svg ${NS} width="10" height="10"><rect width="1" height="1"/></svg>`;
    const b = `<svg ${NS} width="20" height="20"><circle r="3"/></svg>`;
    expect(extractSvg(`\`\`\`svg\n${a}\n\`\`\`\nor better:\n\`\`\`svg\n${b}\n\`\`\``)).toMatchObject({ svg: a, count: 2, source: 'fenced' });
    expect(extractSvg(`first ${a} then ${b}`)).toMatchObject({ svg: a, count: 2, source: 'bare' });
  });

  it('prefers a fenced block to a bare SVG in the prose before it', () => {
    const a = `<svg ${NS} width="10" height="10"></svg>`;
    const b = `<svg ${NS} width="20" height="20"><circle r="3"/></svg>`;
    expect(extractSvg(`The tag ${a} is empty; here is the drawing:\n\`\`\`svg\n${b}\n\`\`\``)?.svg).toBe(b);
  });

  it('an <svg> with no end runs to the end of its block or of the answer', () => {
    expect(extractSvg('```svg\n<svg viewBox="0 0 1 1">\n<path d="M0 0"/>\n```\ntext')).toMatchObject({ closed: false, svg: '<svg viewBox="0 0 1 1">\n<path d="M0 0"/>' });
    expect(extractSvg('<svg viewBox="0 0 1 1"><g>')).toMatchObject({ closed: false, source: 'bare' });
  });

  it('no SVG: null (the word svg, <svgfoo> and other markup are not SVGs)', () => {
    expect(extractSvg('I cannot draw, but SVG stands for Scalable Vector Graphics.')).toBeNull();
    expect(extractSvg('<svgfoo/> <g><path d="M0 0"/></g> ```html\n<div>no</div>\n```')).toBeNull();
    expect(extractSvg('')).toBeNull();
  });
});

/** validateSvg's reason, or 'valid' */
function reason(svg: string): string {
  const c = validateSvg(svg);
  return c.valid ? 'valid' : c.reason;
}

describe('validateSvg', () => {
  it('accepts a good SVG and counts its elements and paths', () => {
    const c = validateSvg(PELICAN);
    expect(c.valid).toBe(true);
    if (!c.valid) return;
    expect(c).toMatchObject({ width: 200, height: 100, viewBox: [0, 0, 200, 100], elements: 9, paths: 2, warnings: [] });
    expect(c.elementCounts).toEqual({ svg: 1, rect: 1, g: 1, circle: 2, path: 2, ellipse: 1, text: 1 });
  });

  it('refuses XML that is not well-formed, saying where', () => {
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><g><path d="M0 0"/></svg>`)).toMatch(/<\/svg> does not close <g> \(opened on line 1\)/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1">\n<g>\n<path d="M0 0"/>`)).toMatch(/unclosed <g> \(opened on line 2\)/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><path d="M0 0></svg>`)).toMatch(/"<" in the value of the attribute d|unclosed value/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><rect width=5/></svg>`)).toMatch(/value of width is not quoted/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1" viewBox="0 0 2 2"/>`)).toMatch(/attribute viewBox appears twice/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><text>a&nbsp;b</text></svg>`)).toMatch(/entity &nbsp; is not defined/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><text>fish & chips</text></svg>`)).toMatch(/bare &/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><!-- a -- b --></svg>`)).toMatch(/"--" inside a comment/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"></svg><svg ${NS}/>`)).toMatch(/second element after the root/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"></svg> trailing words`)).toMatch(/text after the root/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1">\u0001</svg>`)).toMatch(/U\+0001 is not allowed/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><?xml version="1.0"?></svg>`)).toMatch(/XML declaration is allowed only at the very start/);
  });

  it('needs an <svg> root', () => {
    expect(reason('')).toMatch(/no root element/);
    expect(reason(`<g ${NS}><path d="M0 0"/></g>`)).toMatch(/the root element is <g>, not <svg>/);
    expect(reason(`hello <svg ${NS}/>`)).toMatch(/text before the root element/);
  });

  it('refuses a DOCTYPE with an internal subset (entity declarations)', () => {
    const laughs = `<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n<svg ${NS} viewBox="0 0 1 1"><text>&b;</text></svg>`;
    expect(reason(laughs)).toMatch(/DOCTYPE with an internal subset/);
    const plain = `<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg ${NS} viewBox="0 0 1 1"/>`;
    expect(reason(plain)).toBe('valid');
  });

  it('refuses scripts, event handlers and foreignObject', () => {
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><script>alert(1)</script></svg>`)).toMatch(/<script> element .*scripts are not allowed/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><SCRIPT/></svg>`)).toMatch(/scripts are not allowed/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1" onload="alert(1)"/>`)).toMatch(/event-handler attribute onload on <svg>/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><rect onClick="x()" width="1" height="1"/></svg>`)).toMatch(/event-handler attribute onClick/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><foreignObject><div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject></svg>`)).toMatch(/foreignObject.*HTML inside SVG/);
  });

  it('refuses references outside the document (http, file, data, relative), accepts #fragments', () => {
    const XL = 'xmlns:xlink="http://www.w3.org/1999/xlink"';
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><image href="http://example.com/pelican.png" width="1" height="1"/></svg>`)).toMatch(/external reference href="http:\/\/example.com\/pelican.png" on <image>/);
    expect(reason(`<svg ${NS} ${XL} viewBox="0 0 1 1"><use xlink:href="file:///etc/passwd"/></svg>`)).toMatch(/external reference xlink:href="file:/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><image href="data:image/png;base64,AAAA"/></svg>`)).toMatch(/external reference href="data:/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><use href="other.svg#a"/></svg>`)).toMatch(/external reference href="other.svg#a"/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><rect style="fill: url('http://x/y.svg#g')"/></svg>`)).toMatch(/url\(http:\/\/x\/y.svg#g\) in style/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><style>@import url(#x); rect { fill: red }</style></svg>`)).toMatch(/@import in <style>/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><style>rect { fill: url(https://x/p) }</style></svg>`)).toMatch(/url\(https:\/\/x\/p\) in <style>/);
    const local = `<svg ${NS} ${XL} viewBox="0 0 1 1"><defs><linearGradient id="g"><stop offset="0"/></linearGradient><circle id="c" r="1"/></defs><use xlink:href="#c" fill="url(#g)"/><rect style="fill:url( '#g' )"/></svg>`;
    expect(reason(local)).toBe('valid');
  });

  it('repairs a missing xmlns and an undeclared xlink: prefix (warnings); refuses other namespaces', () => {
    const c = validateSvg('<svg viewBox="0 0 10 10"><defs><circle id="c" r="1"/></defs><use xlink:href="#c"/></svg>');
    expect(c.valid).toBe(true);
    if (!c.valid) return;
    expect(c.warnings).toHaveLength(2);
    expect(c.svg).toBe('<svg xmlns:xlink="http://www.w3.org/1999/xlink" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><circle id="c" r="1"/></defs><use xlink:href="#c"/></svg>');
    expect(reason('<svg xmlns="http://example.com/not-svg" viewBox="0 0 1 1"/>')).toMatch(/in the namespace "http:\/\/example.com\/not-svg", not SVG's/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><rect inkscape:label="x"/></svg>`)).toMatch(/prefix inkscape of the attribute inkscape:label on <rect> \(line 1\) is not declared/);
  });

  it('needs a usable size and refuses absurd ones', () => {
    expect(reason(`<svg ${NS}><rect width="1" height="1"/></svg>`)).toMatch(/no usable size/);
    expect(reason(`<svg ${NS} width="100%" height="100%"/>`)).toMatch(/no usable size/);
    expect(reason(`<svg ${NS} width="100"/>`)).toMatch(/no usable size/);
    expect(reason(`<svg ${NS} width="100000" height="10"/>`)).toMatch(new RegExp(`width="100000" \\(100000 px\\) is over the limit of ${MAX_DIMENSION} px`));
    expect(reason(`<svg ${NS} width="1e9" height="1e9" viewBox="0 0 1 1"/>`)).toMatch(/over the limit/);
    expect(reason(`<svg ${NS} width="300in" height="1in"/>`)).toMatch(/28800 px\) is over the limit/);
    expect(reason(`<svg ${NS} width="0" height="10"/>`)).toMatch(/width="0" is not positive/);
    expect(reason(`<svg ${NS} width="ten" height="10"/>`)).toMatch(/width="ten" is not a length/);
    expect(reason(`<svg ${NS} viewBox="0 0 100"/>`)).toMatch(/malformed viewBox/);
    expect(reason(`<svg ${NS} viewBox="0 0 -5 5"/>`)).toMatch(/not positive/);
    const c = validateSvg(`<svg ${NS} viewBox="0 0 400 200" width="100%"/>`);
    expect(c.valid && [c.width, c.height]).toEqual([400, 200]);
    const d = validateSvg(`<svg ${NS} viewBox="0 0 400 200" width="100mm"/>`);
    expect(d.valid && Math.round(d.height)).toBe(189);
  });

  it('stops at its limits (nesting depth, size)', () => {
    expect(reason(`<svg ${NS} viewBox="0 0 1 1">${'<g>'.repeat(300)}${'</g>'.repeat(300)}</svg>`)).toMatch(/nested deeper than 256/);
    expect(reason(`<svg ${NS} viewBox="0 0 1 1"><!--${'x'.repeat(1_000_001)}--></svg>`)).toMatch(/over the limit of 1000000/);
  });

  it('parseXml reports line and column', () => {
    try {
      parseXml('<a>\n  <b>\n</a>');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(XmlSyntaxError);
      expect((e as XmlSyntaxError).line).toBe(3);
      expect((e as XmlSyntaxError).column).toBe(1);
    }
    expect(parseXml('<a x="&#65;&#x42;&lt;">t<![CDATA[<&>]]></a>').root).toMatchObject({ attrs: [['x', 'AB<']], text: 't<&>' });
  });
});

describe('rendering and the recorded status', () => {
  it('renders a valid SVG with resvg, the longer side 512 px, on white', async () => {
    const r = await renderSvg(PELICAN);
    if ('error' in r) throw new Error(r.error);
    expect([r.width, r.height]).toEqual([512, 256]);
    const { width, height, rgba } = decodePng(Buffer.from(r.png));
    expect([width, height]).toEqual([512, 256]);
    // the top-left corner is the red sky, the beak is orange
    expect([...rgba.subarray(0, 4)]).toEqual([255, 0, 0, 255]);
    const at = (x: number, y: number) => [...rgba.subarray((y * 512 + x) * 4, (y * 512 + x) * 4 + 3)];
    expect(at(Math.round(140 * 2.56), Math.round(32 * 2.56))).toEqual([0xf5, 0xa6, 0x23]);
    expect(r.ink).toBeGreaterThan(0.5);
  });

  it('a tall SVG is fitted by its height', async () => {
    const r = await renderSvg(`<svg ${NS} width="10" height="1000"><rect width="10" height="1000" fill="#00f"/></svg>`);
    if ('error' in r) throw new Error(r.error);
    expect([r.width, r.height]).toEqual([5, 512]); // 5.12, rounded by resvg
  });

  it('judgeAnswer: ok with counts and a PNG; fenced and bare alike', async () => {
    for (const answer of [`Here:\n\`\`\`svg\n${PELICAN}\n\`\`\``, `Here: ${PELICAN} done`]) {
      const j = await judgeAnswer(answer);
      expect(j.status).toBe('ok');
      expect(j.info).toMatchObject({ elements: 9, paths: 2 });
      expect(j.png!.png.subarray(1, 4)).toEqual(new Uint8Array([0x50, 0x4e, 0x47]));
    }
  });

  it('judgeAnswer: no svg, invalid, and notes on why', async () => {
    expect(await judgeAnswer('I am unable to draw.')).toEqual({ status: 'no svg', warnings: [] });
    expect(await judgeAnswer('', { truncated: true, thinking: 'Let me plan the pelican…' })).toMatchObject({ status: 'no svg', note: expect.stringMatching(/still thinking when it reached the token limit/) });
    const cut = await judgeAnswer(`\`\`\`svg\n<svg ${NS} viewBox="0 0 10 10">\n<g>\n<path d="M0 0`, { truncated: true });
    expect(cut.status).toMatch(/^invalid: not well-formed XML: unclosed value of the attribute d/);
    expect(cut.note).toMatch(/cut at the token limit/);
    expect(cut.png).toBeUndefined();
    expect((await judgeAnswer(`<svg ${NS} width="99999" height="99999"><rect width="5" height="5"/></svg>`)).status).toMatch(/^invalid: width="99999" \(99999 px\) is over the limit/);
    expect((await judgeAnswer(`<svg ${NS} viewBox="0 0 5 5"><script>alert(1)</script></svg>`)).status).toMatch(/^invalid: a <script> element/);
  });

  it('judgeAnswer: a blank picture is ok with a warning; several SVGs get a warning', async () => {
    const blank = `<svg ${NS} width="10" height="10"><rect width="10" height="10" fill="#fff"/></svg>`;
    const j = await judgeAnswer(`${blank}\n${PELICAN}`);
    expect(j.status).toBe('ok');
    expect(j.warnings).toEqual(['the answer holds 2 SVGs: the first was judged', 'the picture is blank (all white)']);
  });
});
