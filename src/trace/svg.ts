// Pictures of routing statistics as standalone SVG (and an HTML page bundling them), written by hand:
// no dependency. Every picture has a title, axis labels and a colour-scale legend; every cell a
// <title> tooltip. Text from the model (token pieces) is XML-escaped and stripped of characters
// XML 1.0 forbids. See docs/moe-internals.md.
import { coactivationPairs, type RoutingStats } from './stats.js';

// ------------------------------------------------------------------------------------------------
// Text
// ------------------------------------------------------------------------------------------------

/** Escapes text for XML content and attribute values; drops characters XML 1.0 cannot hold. */
export function escapeXml(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * A token's bytes as a readable label: UTF-8 text with spaces shown as ␣, newlines as ↵, tabs as
 * ⇥, other control characters and bytes that are not complete UTF-8 (a byte-level token may hold
 * part of a character) as \xNN.
 */
export function tokenLabel(bytes: Uint8Array): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    text = Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
  }
  return text
    .replace(/ /g, '␣')
    .replace(/\n/g, '↵')
    .replace(/\t/g, '⇥')
    .replace(/[\u0000-\u001F\u007F]/g, (c) => `\\x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** At most `max` characters (code points), with an ellipsis when cut. */
function clip(s: string, max: number): string {
  const cps = Array.from(s);
  return cps.length <= max ? s : cps.slice(0, max - 1).join('') + '…';
}

// ------------------------------------------------------------------------------------------------
// Colours
// ------------------------------------------------------------------------------------------------

/** matplotlib's viridis, sampled at 9 points (a perceptually uniform sequential scale). */
const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];

function hexRgb(h: string): [number, number, number] {
  return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
}

/** Colour of x in [0, 1] on the viridis scale (clamped). */
export function viridis(x: number): string {
  const t = Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t));
  const f = t - i;
  const a = hexRgb(VIRIDIS[i]!);
  const b = hexRgb(VIRIDIS[i + 1]!);
  return '#' + a.map((v, j) => Math.round(v + (b[j]! - v) * f).toString(16).padStart(2, '0')).join('');
}

/** Categorical-ish colour of expert e of n: hue around the circle. */
export function expertColour(e: number, n: number): string {
  return `hsl(${Math.round((360 * e) / Math.max(1, n))},70%,62%)`;
}

const fmt = (x: number, d = 2) => (Number.isInteger(x) ? String(x) : x.toFixed(d));

/** A tick step from {1, 2, 5}·10^i so labels are at least `minPx` apart with `px` per unit. */
function tickStep(px: number, minPx: number): number {
  const raw = minPx / Math.max(px, 1e-9);
  for (let p = 1; ; p *= 10) for (const m of [1, 2, 5]) if (m * p >= raw) return m * p;
}

// ------------------------------------------------------------------------------------------------
// Building blocks
// ------------------------------------------------------------------------------------------------

/** One finished picture: its markup (an <svg> element) and size. */
export interface SvgPicture {
  width: number;
  height: number;
  /** a complete <svg> element (no XML declaration) */
  svg: string;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function svgOpen(w: number, h: number, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeXml(label)}" ${FONT} font-size="11">\n` +
    `<rect class="background" x="0" y="0" width="${w}" height="${h}" fill="#ffffff"/>\n`;
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${fmt(x, 1)}" y="${fmt(y, 1)}"${attrs ? ' ' + attrs : ''}>${escapeXml(s)}</text>`;
}

/**
 * A vertical colour-scale legend at (x, y), `h` high: a gradient bar from `stops` (bottom → top)
 * with tick labels. `id` must be unique in the document.
 */
function legend(id: string, x: number, y: number, h: number, title: string, stops: string[], ticks: { at: number; label: string }[]): string {
  const grad = stops.map((c, i) => `<stop offset="${fmt(i / (stops.length - 1), 4)}" stop-color="${c}"/>`).join('');
  const out = [
    `<g class="legend">`,
    `<defs><linearGradient id="${id}" x1="0" y1="1" x2="0" y2="0">${grad}</linearGradient></defs>`,
    text(x, y - 8, title, 'font-weight="600"'),
    `<rect x="${x}" y="${y}" width="14" height="${h}" fill="url(#${id})" stroke="#555" stroke-width="0.5"/>`,
  ];
  for (const t of ticks) {
    const ty = y + h - t.at * h;
    out.push(`<line x1="${x + 14}" y1="${fmt(ty, 1)}" x2="${x + 18}" y2="${fmt(ty, 1)}" stroke="#333"/>`);
    out.push(text(x + 21, ty + 4, t.label));
  }
  out.push('</g>');
  return out.join('\n');
}

/** Five evenly spaced ticks over [0, max] (integers when max is an integer count). */
function scaleTicks(max: number, integer: boolean): { at: number; label: string }[] {
  if (!(max > 0)) return [{ at: 0, label: '0' }];
  const out: { at: number; label: string }[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    if (integer && i > 0 && i < 4 && !Number.isInteger(v)) continue;
    out.push({ at: i / 4, label: integer ? String(Math.round(v)) : v.toFixed(2) });
  }
  return out;
}

const viridisStops = () => VIRIDIS.slice();

/** Rough width of a title line (14 px semibold): keeps short pictures from clipping their title. */
const titleWidth = (t: string, x: number) => x + Math.ceil(Array.from(t).length * 8) + 20;

/** Legend bar height for a grid `gh` high: at least 120 px, at most 240. */
const legendHeight = (gh: number) => Math.max(120, Math.min(gh - 10, 240));

// ------------------------------------------------------------------------------------------------
// Pictures
// ------------------------------------------------------------------------------------------------

export interface PictureOptions {
  /** prefix for element ids (gradients), to keep several pictures in one document apart */
  idPrefix?: string;
}

/**
 * Layers × experts heatmap of the load: cell (layer l, expert e) coloured by load / mean load
 * (1 = the share a perfectly balanced router would give it).
 */
export function loadHeatmapSvg(stats: RoutingStats, opts: PictureOptions = {}): SvgPicture {
  const { nLayer, nExpert, k, nTokens } = stats;
  const cw = Math.max(4, Math.min(24, Math.floor(900 / nExpert)));
  const ch = Math.max(6, Math.min(20, Math.floor(560 / nLayer)));
  const left = 60;
  const top = 58;
  const gw = cw * nExpert;
  const gh = ch * nLayer;
  const mean = (nTokens * k) / nExpert;
  let maxRel = 0;
  for (const L of stats.layers) for (const c of L.load) maxRel = Math.max(maxRel, c / mean);
  const title = `Expert load per layer: ${nTokens} token${nTokens === 1 ? '' : 's'}, ${k} of ${nExpert} experts each`;
  const lh = legendHeight(gh);
  const width = Math.max(left + gw + 130, titleWidth(title, left));
  const height = Math.max(top + gh + 50, top + 10 + lh + 20);
  const out = [svgOpen(width, height, title), text(left, 22, title, 'font-size="14" font-weight="600"'),
    text(left, 40, 'colour: tokens routed to the expert ÷ the mean (1 = balanced)', 'fill="#555"')];
  out.push('<g class="cells">');
  for (const L of stats.layers) {
    for (let e = 0; e < nExpert; e++) {
      const c = L.load[e]!;
      const rel = c / mean;
      out.push(`<rect class="cell" x="${left + e * cw}" y="${top + L.layer * ch}" width="${cw}" height="${ch}" fill="${viridis(maxRel > 0 ? rel / maxRel : 0)}">` +
        `<title>${escapeXml(`layer ${L.layer}, expert ${e}: ${c} tokens (${rel.toFixed(2)}× mean)`)}</title></rect>`);
    }
  }
  out.push('</g>');
  out.push(`<rect x="${left}" y="${top}" width="${gw}" height="${gh}" fill="none" stroke="#333" stroke-width="0.5"/>`);
  // axes
  out.push('<g class="axis x">');
  const xs = tickStep(cw, 22);
  for (let e = 0; e < nExpert; e += xs) out.push(text(left + e * cw + cw / 2, top + gh + 14, String(e), 'text-anchor="middle"'));
  out.push(text(left + gw / 2, top + gh + 36, 'expert', 'text-anchor="middle" font-weight="600"'), '</g>');
  out.push('<g class="axis y">');
  const ys = tickStep(ch, 13);
  for (let l = 0; l < nLayer; l += ys) out.push(text(left - 6, top + l * ch + ch / 2 + 4, String(l), 'text-anchor="end"'));
  out.push(text(16, top + gh / 2, 'layer', `text-anchor="middle" font-weight="600" transform="rotate(-90 16 ${fmt(top + gh / 2, 1)})"`), '</g>');
  out.push(legend(`${opts.idPrefix ?? ''}load-scale`, left + gw + 24, top + 10, lh, 'load ÷ mean', viridisStops(),
    scaleTicks(maxRel, false)));
  out.push('</svg>');
  return { width, height, svg: out.join('\n') };
}

export interface Top1GridOptions extends PictureOptions {
  /** the tokens' display text (e.g. tokenLabel of their bytes), one per traced token */
  labels?: readonly string[];
  /** rows drawn at most (default 256); a note says how many were left out */
  maxTokens?: number;
}

/**
 * Tokens × layers grid of the top-1 expert: row = token (its text on the axis), column = layer,
 * cell coloured by the expert id (hue) and labelled with it when there is room.
 */
export function top1GridSvg(stats: RoutingStats, opts: Top1GridOptions = {}): SvgPicture {
  const { nLayer, nExpert, nTokens } = stats;
  const shown = Math.min(nTokens, Math.max(1, opts.maxTokens ?? 256));
  const cw = Math.max(10, Math.min(26, Math.floor(1000 / nLayer)));
  const ch = 15;
  const left = 190;
  const top = 62;
  const gw = cw * nLayer;
  const gh = ch * shown;
  const title = `Top-1 expert of each token in each layer${shown < nTokens ? ` (first ${shown} of ${nTokens} tokens)` : ''}`;
  const lh = legendHeight(gh);
  const width = Math.max(left + gw + 130, titleWidth(title, 12));
  const height = Math.max(top + gh + 58, top + 10 + lh + 20);
  const out = [svgOpen(width, height, title), text(12, 22, title, 'font-size="14" font-weight="600"'),
    text(12, 40, 'colour and number: the expert with the highest router probability', 'fill="#555"')];
  const numbers = cw >= 16;
  out.push('<g class="cells">');
  for (let t = 0; t < shown; t++) {
    const tr = stats.tokens[t]!;
    const label = opts.labels?.[t] ?? `#${tr.token}`;
    for (let l = 0; l < nLayer; l++) {
      const e = tr.experts[l]![0]!;
      const w = tr.weights[l]![0]!;
      const x = left + l * cw;
      const y = top + t * ch;
      out.push(`<rect class="cell" x="${x}" y="${y}" width="${cw}" height="${ch}" fill="${expertColour(e, nExpert)}" stroke="#fff" stroke-width="0.5">` +
        `<title>${escapeXml(`position ${tr.position} "${label}" (id ${tr.token}), layer ${l}: expert ${e}, weight ${w.toFixed(3)}; top-${stats.k}: ${tr.experts[l]!.join(', ')}`)}</title></rect>`);
      if (numbers) out.push(text(x + cw / 2, y + ch - 4, String(e), 'text-anchor="middle" font-size="9" fill="#111" pointer-events="none"'));
    }
  }
  out.push('</g>');
  // axes: token text on the left, layers along the top and bottom
  out.push('<g class="axis y">');
  for (let t = 0; t < shown; t++) {
    const tr = stats.tokens[t]!;
    const label = clip(opts.labels?.[t] ?? `#${tr.token}`, 20);
    out.push(text(left - 8, top + t * ch + ch - 4, `${tr.position}  ${label}`, 'text-anchor="end" font-family="ui-monospace, Menlo, Consolas, monospace"'));
  }
  out.push(text(12, top - 8, 'position  token', 'font-weight="600"'), '</g>');
  out.push('<g class="axis x">');
  const xs = tickStep(cw, 18);
  for (let l = 0; l < nLayer; l += xs) {
    out.push(text(left + l * cw + cw / 2, top - 6, String(l), 'text-anchor="middle"'));
    out.push(text(left + l * cw + cw / 2, top + gh + 14, String(l), 'text-anchor="middle"'));
  }
  out.push(text(left + gw / 2, top + gh + 34, 'layer', 'text-anchor="middle" font-weight="600"'));
  if (shown < nTokens) out.push(text(left, top + gh + 50, `… ${nTokens - shown} more tokens not drawn (see the JSON output)`, 'fill="#a00"'));
  out.push('</g>');
  const stops = Array.from({ length: 13 }, (_, i) => `hsl(${Math.round((360 * i) / 12)},70%,62%)`);
  const tickIds = [...new Set([0, Math.round(nExpert / 4), Math.round(nExpert / 2), Math.round((3 * nExpert) / 4), nExpert - 1])].filter((e) => e < nExpert);
  const legendTicks = tickIds.map((e) => ({ at: e / nExpert, label: String(e) }));
  out.push(legend(`${opts.idPrefix ?? ''}expert-hue`, left + gw + 24, top + 10, lh, 'expert id', stops, legendTicks));
  out.push('</svg>');
  return { width, height, svg: out.join('\n') };
}

/**
 * nExpert × nExpert co-activation matrix of one layer: cell (a, b) coloured by the number of tokens
 * that chose both a and b, on a square-root scale (a few frequent pairs would otherwise leave every
 * other cell dark); the diagonal is grey.
 */
export function coactivationSvg(stats: RoutingStats, layer: number, opts: PictureOptions = {}): SvgPicture {
  const { nExpert, nLayer } = stats;
  if (!(Number.isInteger(layer) && layer >= 0 && layer < nLayer)) throw new RangeError(`layer ${layer} is not in 0..${nLayer - 1}`);
  const L = stats.layers[layer]!;
  const c = Math.max(3, Math.min(30, Math.floor(640 / nExpert)));
  const left = 60;
  const top = 58;
  const g = c * nExpert;
  let max = 0;
  for (const v of L.coactivation) max = Math.max(max, v);
  const title = `Expert co-activation in layer ${layer}: tokens that chose both experts`;
  const lh = legendHeight(g);
  const width = Math.max(left + g + 130, titleWidth(title, left));
  const height = Math.max(top + g + 50, top + 10 + lh + 20);
  const out = [svgOpen(width, height, title), text(left, 22, title, 'font-size="14" font-weight="600"'),
    text(left, 40, `${coactivationPairs(L, nExpert).length} distinct pairs over ${stats.nTokens} tokens; diagonal grey`, 'fill="#555"')];
  out.push('<g class="cells">');
  for (let a = 0; a < nExpert; a++) {
    for (let b = 0; b < nExpert; b++) {
      const v = L.coactivation[a * nExpert + b]!;
      const fill = a === b ? '#d0d0d0' : viridis(max > 0 ? Math.sqrt(v / max) : 0);
      out.push(`<rect class="cell" x="${left + b * c}" y="${top + a * c}" width="${c}" height="${c}" fill="${fill}">` +
        `<title>${escapeXml(a === b ? `expert ${a}: load ${L.load[a]}` : `experts ${a} and ${b}: ${v} tokens`)}</title></rect>`);
    }
  }
  out.push('</g>');
  out.push(`<rect x="${left}" y="${top}" width="${g}" height="${g}" fill="none" stroke="#333" stroke-width="0.5"/>`);
  const s = tickStep(c, 22);
  out.push('<g class="axis x">');
  for (let e = 0; e < nExpert; e += s) out.push(text(left + e * c + c / 2, top + g + 14, String(e), 'text-anchor="middle"'));
  out.push(text(left + g / 2, top + g + 36, 'expert', 'text-anchor="middle" font-weight="600"'), '</g>');
  out.push('<g class="axis y">');
  for (let e = 0; e < nExpert; e += s) out.push(text(left - 6, top + e * c + c / 2 + 4, String(e), 'text-anchor="end"'));
  out.push(text(16, top + g / 2, 'expert', `text-anchor="middle" font-weight="600" transform="rotate(-90 16 ${fmt(top + g / 2, 1)})"`), '</g>');
  // square-root scale: ticks at values max·f² sit at height f
  const ticks = max > 0
    ? [...new Map([0, 0.25, 0.5, 0.75, 1].map((f) => [Math.round(max * f * f), f])).entries()].map(([v, f]) => ({ at: f === 1 ? 1 : Math.sqrt(v / max), label: String(v) }))
    : [{ at: 0, label: '0' }];
  out.push(legend(`${opts.idPrefix ?? ''}coact-scale`, left + g + 24, top + 10, lh, 'tokens (√ scale)', viridisStops(), ticks));
  out.push('</svg>');
  return { width, height, svg: out.join('\n') };
}

// ------------------------------------------------------------------------------------------------
// Documents
// ------------------------------------------------------------------------------------------------

export interface RoutesPicturesOptions {
  /** token display texts (one per traced token) for the top-1 grid */
  labels?: readonly string[];
  /** layer of the co-activation matrix (default: the middle layer) */
  layer?: number;
  /** rows of the top-1 grid drawn at most (default 256) */
  maxTokens?: number;
}

/** The three pictures: load heatmap, top-1 grid, co-activation matrix. */
export function routesPictures(stats: RoutingStats, opts: RoutesPicturesOptions = {}): SvgPicture[] {
  const layer = opts.layer ?? Math.floor(stats.nLayer / 2);
  return [
    loadHeatmapSvg(stats, { idPrefix: 'p1-' }),
    top1GridSvg(stats, { idPrefix: 'p2-', labels: opts.labels, maxTokens: opts.maxTokens }),
    coactivationSvg(stats, layer, { idPrefix: 'p3-' }),
  ];
}

/** One standalone SVG document holding the three pictures one below the other. */
export function routesSvg(stats: RoutingStats, opts: RoutesPicturesOptions = {}): string {
  const pics = routesPictures(stats, opts);
  const gap = 16;
  const width = Math.max(...pics.map((p) => p.width));
  const height = pics.reduce((s, p) => s + p.height, 0) + gap * (pics.length - 1);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`];
  let y = 0;
  for (const p of pics) {
    // nested <svg>: position with x/y (its own viewBox keeps its coordinates)
    out.push(p.svg.replace(/^<svg /, `<svg x="0" y="${y}" `));
    y += p.height + gap;
  }
  out.push('</svg>', '');
  return out.join('\n');
}

export interface RoutesHtmlOptions extends RoutesPicturesOptions {
  /** page heading, e.g. the model name */
  title?: string;
  /** lines shown under the heading (model, text, backend …) */
  notes?: readonly string[];
}

/** An HTML page with a per-layer table and the three pictures inline (each scrolls on its own). */
export function routesHtml(stats: RoutingStats, opts: RoutesHtmlOptions = {}): string {
  const pics = routesPictures(stats, opts);
  const title = opts.title ?? 'MoE routing';
  const rows = stats.layers.map((L) =>
    `<tr><td>${L.layer}</td><td>${L.maxOverMean.toFixed(2)}</td><td>${L.cv.toFixed(3)}</td><td>${L.unused}</td>` +
    `<td>${L.entropy.toFixed(3)}</td><td>${L.entropyNormalized.toFixed(3)}</td><td>${L.top1Change === null ? '–' : L.top1Change.toFixed(3)}</td></tr>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(title)}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #111; }
.pic { overflow: auto; max-height: 90vh; border: 1px solid #ddd; margin: 16px 0; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
.notes { color: #444; }
</style>
</head>
<body>
<h1>${escapeXml(title)}</h1>
<div class="notes">${(opts.notes ?? []).map((n) => `<div>${escapeXml(n)}</div>`).join('\n')}</div>
<p>${stats.nTokens} tokens, ${stats.nLayer} layers, ${stats.k} of ${stats.nExpert} experts per token. Entropy in nats from
${stats.entropySource === 'probs' ? 'the full router distribution' : 'the renormalized top-k weights'}. Formulas: docs/moe-internals.md.</p>
<table>
<tr><th>layer</th><th>max/mean load</th><th>CV of load</th><th>unused experts</th><th>entropy</th><th>entropy / max</th><th>top-1 changed</th></tr>
${rows.join('\n')}
</table>
${pics.map((p) => `<div class="pic">\n${p.svg}\n</div>`).join('\n')}
</body>
</html>
`;
}
