// The SVG pictures and the HTML page, checked structurally: well-formed XML, a viewBox, the
// expected number of cells, a legend, a title and axis labels, and hostile token text escaped.
import { describe, expect, it } from 'vitest';
import { routingStats, type RoutingTrace } from '../../src/index.js';
import {
  coactivationSvg,
  escapeXml,
  expertColour,
  loadHeatmapSvg,
  routesHtml,
  routesSvg,
  tokenLabel,
  top1GridSvg,
  viridis,
} from '../../src/trace/svg.js';
import { parseXml, type XmlElement } from './xml.js';

/** A deterministic trace: nTok tokens, nLayer layers, k of nExpert. */
function synthTrace(nTok: number, nLayer: number, k: number, nExpert: number): RoutingTrace {
  const ids = new Uint16Array(nTok * nLayer * k);
  const weights = new Float32Array(nTok * nLayer * k);
  for (let t = 0; t < nTok; t++) {
    for (let l = 0; l < nLayer; l++) {
      for (let j = 0; j < k; j++) {
        ids[(t * nLayer + l) * k + j] = (t * 7 + l * 3 + j * 5) % nExpert;
        weights[(t * nLayer + l) * k + j] = (k - j) / ((k * (k + 1)) / 2);
      }
    }
  }
  return { nLayer, k, nExpert, start: 0, tokens: Array.from({ length: nTok }, (_, i) => i), ids, weights };
}

const cells = (els: XmlElement[]) => els.filter((e) => e.name === 'rect' && e.attrs.class === 'cell');
const texts = (els: XmlElement[]) => els.filter((e) => e.name === 'text').map((e) => e.text);

function checkPicture(svg: string): XmlElement[] {
  const els = parseXml(svg);
  const root = els[0]!;
  expect(root.name).toBe('svg');
  expect(root.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
  expect(root.attrs.viewBox).toMatch(/^0 0 \d+ \d+$/);
  const [, , w, h] = root.attrs.viewBox!.split(' ').map(Number);
  expect(root.attrs.width).toBe(String(w));
  expect(root.attrs.height).toBe(String(h));
  // a legend: gradient + bar + at least two tick labels
  const legend = els.filter((e) => e.name === 'g' && e.attrs.class === 'legend');
  expect(legend).toHaveLength(1);
  expect(els.some((e) => e.name === 'linearGradient' && e.attrs.id)).toBe(true);
  expect(els.filter((e) => e.name === 'stop').length).toBeGreaterThanOrEqual(2);
  expect(els.filter((e) => e.name === 'line').length).toBeGreaterThanOrEqual(2);
  // every cell inside the viewBox, with a tooltip
  for (const c of cells(els)) {
    expect(Number(c.attrs.x) + Number(c.attrs.width)).toBeLessThanOrEqual(w!);
    expect(Number(c.attrs.y) + Number(c.attrs.height)).toBeLessThanOrEqual(h!);
  }
  expect(els.filter((e) => e.name === 'title').length).toBeGreaterThanOrEqual(cells(els).length);
  return els;
}

describe('the XML checker', () => {
  it('rejects what is not well-formed', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow(/does not match/);
    expect(() => parseXml('<svg><text>a < b</text></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow(/unescaped/);
    expect(() => parseXml('<svg a="1" a="2"/>')).toThrow(/duplicate/);
    expect(() => parseXml('<svg a=1/>')).toThrow(/unquoted/);
    expect(() => parseXml('<svg><g>')).toThrow(/unclosed/);
    expect(() => parseXml('<svg/><svg/>')).toThrow(/second root/);
    expect(() => parseXml('<svg>\u0001</svg>')).toThrow(/not allowed/);
    expect(parseXml('<?xml version="1.0"?><svg x="&lt;&amp;"><t>&#65;&#x42;</t></svg>').map((e) => [e.name, e.attrs.x, e.text])).toEqual([
      ['svg', '<&', ''],
      ['t', undefined, 'AB'],
    ]);
  });
});

describe('escaping', () => {
  it('escapeXml escapes markup and drops characters XML forbids', () => {
    expect(escapeXml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    expect(escapeXml('a\u0000b\u001Fc\uFFFF')).toBe('a\uFFFDb\uFFFDc\uFFFD');
    expect(escapeXml('lone \uD800 high, \uDC00 low, pair 🦊')).toBe('lone \uFFFD high, \uFFFD low, pair 🦊');
    expect(escapeXml('tab\tnl\n')).toBe('tab\tnl\n');
  });

  it('tokenLabel shows whitespace and broken UTF-8 visibly', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(tokenLabel(enc(' the'))).toBe('␣the');
    expect(tokenLabel(enc('\n\t'))).toBe('↵⇥');
    expect(tokenLabel(enc('ü'))).toBe('ü');
    expect(tokenLabel(Uint8Array.of(0xe2, 0x82))).toBe('\\xE2\\x82'); // first two bytes of €
    expect(tokenLabel(Uint8Array.of(0x01, 0x7f))).toBe('\\x01\\x7F');
  });

  it('colour scales', () => {
    expect(viridis(0)).toBe('#440154');
    expect(viridis(1)).toBe('#fde725');
    expect(viridis(2)).toBe('#fde725');
    expect(viridis(Number.NaN)).toBe('#440154');
    expect(viridis(0.5)).toBe('#21918c');
    expect(expertColour(0, 8)).toBe('hsl(0,70%,62%)');
    expect(expertColour(4, 8)).toBe('hsl(180,70%,62%)');
  });
});

describe('pictures', () => {
  const stats = routingStats(synthTrace(12, 5, 3, 16));

  it('load heatmap: layers × experts cells, axis labels, title', () => {
    const els = checkPicture(loadHeatmapSvg(stats).svg);
    expect(cells(els)).toHaveLength(5 * 16);
    const t = texts(els);
    expect(t).toContain('expert');
    expect(t).toContain('layer');
    expect(t).toContain('load ÷ mean');
    expect(t.some((s) => s.startsWith('Expert load per layer: 12 tokens, 3 of 16'))).toBe(true);
    // a cell's tooltip carries its count
    const tip = els.find((e) => e.name === 'title' && e.text.startsWith('layer 0, expert 0:'))!;
    expect(tip.text).toContain(`${stats.layers[0]!.load[0]} tokens`);
  });

  it('top-1 grid: tokens × layers, token text on the axis, escaped', () => {
    const labels = stats.tokens.map((_, i) => (i === 3 ? `<script>&"'\u0001` : `tok${i}`));
    const els = checkPicture(top1GridSvg(stats, { labels }).svg);
    expect(cells(els)).toHaveLength(12 * 5);
    const t = texts(els);
    expect(t).toContain('0  tok0');
    expect(t).toContain(`3  <script>&"'\uFFFD`); // decoded back from the escapes
    expect(t).toContain('layer');
    expect(t).toContain('expert id');
    // the cell number is the top-1 expert
    const e = stats.tokens[2]!.experts[4]![0]!;
    expect(els.find((x) => x.name === 'title' && x.text.includes('position 2 ') && x.text.includes('layer 4:'))!.text).toContain(`expert ${e},`);
  });

  it('top-1 grid caps long texts and says so', () => {
    const big = routingStats(synthTrace(40, 3, 2, 8));
    const els = checkPicture(top1GridSvg(big, { maxTokens: 10 }).svg);
    expect(cells(els)).toHaveLength(10 * 3);
    expect(texts(els).some((s) => s.includes('30 more tokens not drawn'))).toBe(true);
    expect(texts(els).some((s) => s.includes('first 10 of 40 tokens'))).toBe(true);
  });

  it('co-activation matrix: nExpert² cells, layer checked', () => {
    const els = checkPicture(coactivationSvg(stats, 2).svg);
    expect(cells(els)).toHaveLength(16 * 16);
    expect(texts(els).some((s) => s.startsWith('Expert co-activation in layer 2'))).toBe(true);
    expect(() => coactivationSvg(stats, 5)).toThrow(RangeError);
    expect(() => coactivationSvg(stats, -1)).toThrow(RangeError);
  });

  it('one SVG document with the three pictures and unique ids', () => {
    const doc = routesSvg(stats, { layer: 1, labels: stats.tokens.map((t) => `t${t.token}`) });
    expect(doc.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    const els = parseXml(doc);
    expect(els[0]!.attrs.viewBox).toMatch(/^0 0 \d+ \d+$/);
    expect(els.filter((e) => e.name === 'svg' && e.depth === 1)).toHaveLength(3);
    expect(cells(els)).toHaveLength(5 * 16 + 12 * 5 + 16 * 16);
    const ids = els.map((e) => e.attrs.id).filter(Boolean);
    expect(new Set(ids).size).toBe(ids.length);
    expect(els.filter((e) => e.name === 'g' && e.attrs.class === 'legend')).toHaveLength(3);
  });

  it('HTML page: a per-layer table and three well-formed inline SVGs', () => {
    const html = routesHtml(stats, { title: 'A <model> & "co"', notes: ['text: 12 tokens'] });
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<title>A &lt;model&gt; &amp; &quot;co&quot;</title>');
    expect(html.match(/<tr>/g)).toHaveLength(1 + 5);
    const svgs = html.match(/<svg [\s\S]*?<\/svg>/g)!;
    expect(svgs).toHaveLength(3);
    for (const s of svgs) checkPicture(s);
    expect(html.match(/class="pic"/g)).toHaveLength(3);
  });
});
