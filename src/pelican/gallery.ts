// The gallery page of moet pelican (index.html in the output folder): one row per run, one column
// per engine (moet, and llama.cpp with --compare-llama), each cell the rendered PNG (linked to its
// SVG), the status, the counts and the speeds, and the parity line under a compared run. It shows
// the PNGs, never the SVGs inline, and escapes every text the model wrote.
import type { EngineResult, PelicanRun, PelicanSummary } from './run.js';
import { parityLine } from './run.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** a relative file path as a URL (each segment percent-encoded) */
const href = (path: string): string => path.split('/').map(encodeURIComponent).join('/');

function cell(r: EngineResult | undefined): string {
  if (!r) return '<td class="none">—</td>';
  const cls = r.status === 'ok' ? 'ok' : r.status === 'no svg' ? 'nosvg' : 'bad';
  const pic = r.files['png']
    ? `<a href="${href(r.files['svg'] ?? r.files['png'])}"><img src="${href(r.files['png'])}" alt="${esc(r.engine)} rendering" width="${r.png?.width ?? 256}" height="${r.png?.height ?? 256}"></a>`
    : `<div class="nopic">${esc(r.status === 'ok' ? 'no picture' : r.status.split(':')[0]!)}</div>`;
  const counts = r.svg?.elements !== undefined ? `${r.svg.elements} elements, ${r.svg.paths} paths` : '';
  const lines = [
    `<div class="status ${cls}">${esc(r.status)}</div>`,
    r.note ? `<div class="note">${esc(r.note)}</div>` : '',
    ...r.warnings.map((w) => `<div class="warn">${esc(w)}</div>`),
    counts ? `<div>${esc(counts)}</div>` : '',
    `<div class="speed">prompt ${r.promptTps ?? '–'} t/s (${r.promptTokens} tokens) · gen ${r.genTps ?? '–'} t/s (${r.generatedTokens} tokens, ${esc(r.stopReason)})</div>`,
    `<div class="files">${Object.entries(r.files).map(([k, f]) => `<a href="${href(f)}">${esc(k)}</a>`).join(' ')}</div>`,
  ];
  return `<td class="cell">${pic}${lines.filter(Boolean).join('')}</td>`;
}

function row(run: PelicanRun, llama: boolean): string {
  const head = `<th><div class="pid">${esc(run.promptId)} #${run.run}</div><div class="prompt">${esc(run.prompt)}</div><div class="seed">seed ${run.seed} · <a href="${href(run.dir + '/prompt.txt')}">prompt</a></div></th>`;
  const parity = run.parity ? `<tr class="parity ${run.parity.identical ? 'same' : run.parity.greedy ? 'diff' : 'sampled'}"><td></td><td colspan="2">${esc(parityLine(run.parity))}</td></tr>` : '';
  return `<tr>${head}${cell(run.moet)}${llama ? cell(run.llama) : ''}</tr>${parity}`;
}

/** mean of the non-null values, or '–' */
function mean(xs: (number | null | undefined)[]): string {
  const v = xs.filter((x): x is number => typeof x === 'number');
  return v.length ? (v.reduce((a, b) => a + b, 0) / v.length).toFixed(2) : '–';
}

/**
 * The gallery page for a summary (file paths in it are relative to the output folder).
 * @throws nothing
 */
export function galleryHtml(s: PelicanSummary): string {
  const llama = s.llama !== undefined;
  const engines: ['moet' | 'llama.cpp', (r: PelicanRun) => EngineResult | undefined][] = [['moet', (r) => r.moet]];
  if (llama) engines.push(['llama.cpp', (r) => r.llama]);
  const totals = engines
    .map(([name, get]) => {
      const t = s.totals[name];
      const rs = s.runs.map(get);
      return `<tr><th>${esc(name)}</th><td>${t.ok} ok · ${t.noSvg} no svg · ${t.invalid} invalid${t.error ? ` · ${t.error} error` : ''}</td><td>prompt ${mean(rs.map((r) => r?.promptTps))} t/s</td><td>gen ${mean(rs.map((r) => r?.genTps))} t/s</td></tr>`;
    })
    .join('');
  const set = s.settings;
  const sampling = Object.entries(set.sampling).map(([k, v]) => `${k} ${v}`).join(', ') || 'defaults';
  const parity = s.parity
    ? `<p class="${s.parity.pass ? 'same' : 'diff'}">token parity: ${s.parity.identical} of ${s.parity.compared} runs identical${s.parity.greedy ? (s.parity.pass ? ' — greedy: PASS' : ' — greedy: FAIL') : ' (sampled: different random number generators, not expected to match)'}</p>`
    : '';
  const title = `moet pelican: ${s.model.name ?? s.model.path}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #f4f4f4; }
table { border-collapse: collapse; }
td, th { vertical-align: top; padding: 8px; text-align: left; }
table.runs > tbody > tr > td.cell, table.runs > tbody > tr > th { background: #fff; border: 1px solid #ddd; }
td.cell { width: 520px; }
td.cell img { display: block; max-width: 512px; height: auto; background: #fff; border: 1px solid #eee; }
.nopic { width: 256px; height: 128px; display: flex; align-items: center; justify-content: center; background: #eee; color: #777; font-size: 18px; }
.status { font-weight: 600; margin-top: 4px; } .ok { color: #1a7f37; } .nosvg { color: #777; } .bad { color: #b42318; }
.note, .warn { color: #8a6d00; font-size: 12px; } .speed, .seed, .files { color: #555; font-size: 12px; }
.pid { font-weight: 600; } .prompt { font-weight: 400; max-width: 220px; }
tr.parity td { font: 12px ui-monospace, monospace; padding-top: 0; } .same { color: #1a7f37; } .diff { color: #b42318; font-weight: 600; } .sampled { color: #555; }
</style></head><body>
<h1>${esc(title)}</h1>
<p>${esc(s.model.architecture)} · backend ${esc(s.model.backend)} · context ${s.model.contextLength}${llama ? ` · llama.cpp via node-llama-cpp ${esc(s.llama!.nodeLlamaCppVersion)} (${esc(s.llama!.gpu)}, ${s.llama!.threads} threads)` : ''}</p>
<p>prompt set ${esc(set.promptSet)} · ${set.runs} run(s) per prompt · seed ${set.seed} (+ run − 1) · max ${set.maxTokens} tokens · thinking ${set.enableThinking === null ? 'template default' : set.enableThinking ? 'on' : 'off'} · sampling: ${esc(sampling)}${set.greedy ? ' (greedy)' : ''}</p>
<table class="totals">${totals}</table>
${parity}
<table class="runs"><thead><tr><th>prompt</th><th>moet</th>${llama ? '<th>llama.cpp</th>' : ''}</tr></thead><tbody>
${s.runs.map((r) => row(r, llama)).join('\n')}
</tbody></table>
<p class="seed">written ${esc(s.createdAt)} · summary.json has every figure</p>
</body></html>
`;
}
