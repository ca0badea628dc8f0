// Output of `moet bench` in llama-bench's formats: a markdown table printed row by row
// (model | size | params | backend | test | t/s, cells "mean ± std"), then moet's own columns in a
// second table; JSON (one array) and JSONL (one object per line) with llama-bench's field names.
import type { BenchResult } from './harness.js';
import { mdTable } from './profile.js';

export type OutputFormat = 'md' | 'json' | 'jsonl';

interface Col {
  head: string;
  width: number;
  right: boolean;
  get: (r: BenchResult) => string;
}

const GiB = 1024 ** 3;

export const MD_COLUMNS: Col[] = [
  { head: 'model', width: 30, right: false, get: (r) => r.model_type },
  { head: 'size', width: 10, right: true, get: (r) => `${(r.model_size / GiB).toFixed(2)} GiB` },
  { head: 'params', width: 10, right: true, get: (r) => `${(r.model_n_params / 1e9).toFixed(2)} B` },
  { head: 'backend', width: 10, right: false, get: (r) => r.backends },
  { head: 'test', width: 15, right: true, get: (r) => r.test },
  { head: 't/s', width: 20, right: true, get: (r) => `${r.avg_ts.toFixed(2)} ± ${r.stddev_ts.toFixed(2)}` },
];

function row(cols: Col[], cells: string[]): string {
  return `| ${cells.map((c, i) => (cols[i]!.right ? c.padStart(cols[i]!.width) : c.padEnd(cols[i]!.width))).join(' | ')} |\n`;
}

/** The markdown header (printed before the first result). */
export function mdHeader(cols: Col[] = MD_COLUMNS): string {
  return row(cols, cols.map((c) => c.head)) + `| ${cols.map((c) => (c.right ? '-'.repeat(c.width - 1) + ':' : '-'.repeat(c.width))).join(' | ')} |\n`;
}

/** One markdown row. */
export function mdRow(r: BenchResult, cols: Col[] = MD_COLUMNS): string {
  return row(cols, cols.map((c) => c.get(r)));
}

function fmt(n: number | null, digits: number, unit = ''): string {
  return n === null ? '-' : `${n.toFixed(digits)}${unit}`;
}

/** moet's own figures: dispatches, weight bytes per token, bandwidth achieved, load. */
export function mdExtras(results: readonly BenchResult[]): string {
  if (results.length === 0) return '';
  const rows = results.map((r) => [
    r.test,
    fmt(r.dispatches_per_token, 1),
    fmt(r.dispatches_per_layer, 1),
    r.weight_bytes_per_token === null ? '-' : `${(r.weight_bytes_per_token / 1e6).toFixed(1)} MB`,
    fmt(r.bandwidth_gbs, 2, ' GB/s'),
    `${r.load_avg[0].toFixed(1)}/${r.load_avg[1].toFixed(1)}`,
  ]);
  const r0 = results[0]!;
  return (
    '\n' +
    mdTable(['test', 'dispatches/token', 'dispatches/layer', 'weights read/token', 'bandwidth', 'load avg'], rows, [true, true, true, true, true, true]) +
    `\nload: ${(r0.load_ms / 1000).toFixed(2)} s, ${r0.load_gbs.toFixed(2)} GB/s, process RSS peak ${(r0.load_rss_peak_bytes / GiB).toFixed(2)} GiB` +
    (r0.device_weight_bytes !== null ? `, device weights ${(r0.device_weight_bytes / GiB).toFixed(2)} GiB` : '') +
    // a software adapter keeps "device" buffers in the process: the host overhead is the difference
    (r0.device_weight_bytes !== null && /llvmpipe|lavapipe|swiftshader/i.test(r0.gpu_info)
      ? ` (RSS beyond the device weights, which a software adapter holds in host memory: ${((r0.load_rss_peak_bytes - r0.device_weight_bytes) / GiB).toFixed(2)} GiB)`
      : '') +
    (r0.gpu_info ? `; adapter: ${r0.gpu_info}` : '') +
    '\n'
  );
}

/**
 * The expert cache's figures (runs with --gpu-memory that left experts in host memory): t/s against
 * the share of experts on the GPU, hit rates, uploads; empty when no run had a cache.
 */
export function mdExpertCache(results: readonly BenchResult[]): string {
  const rows = results.filter((r) => r.gpu_memory !== undefined && r.gpu_memory !== null);
  if (rows.length === 0) return '';
  const cells = rows.map((r) => {
    const c = r.expert_cache;
    const b = r.device_weight_bytes;
    const dev = b === null ? '-' : b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
    if (!c) return [r.test, r.gpu_memory!, dev, 'all', '-', '-', '-', '-', `${r.avg_ts.toFixed(2)} ± ${r.stddev_ts.toFixed(2)}`];
    const perLayer = c.hit_rate_per_layer.map((h) => (100 * h).toFixed(0)).join('/');
    return [
      r.test,
      r.gpu_memory!,
      dev,
      `${c.slots}/${c.n_expert} (${(100 * c.resident_fraction).toFixed(0)}%)`,
      `${(100 * c.hit_rate).toFixed(1)}%`,
      perLayer.length > 40 ? `${perLayer.slice(0, 37)}…` : perLayer,
      `${(c.upload_bytes_per_token / 1e6).toFixed(2)} MB`,
      `${c.readbacks_per_token.toFixed(1)} (${c.wait_ms_per_token.toFixed(1)} ms)`,
      `${r.avg_ts.toFixed(2)} ± ${r.stddev_ts.toFixed(2)}`,
    ];
  });
  return (
    '\nexperts in host memory (' + (rows.find((r) => r.expert_cache)?.expert_cache?.policy ?? 'lru') + '):\n' +
    mdTable(['test', 'gpu memory', 'device weights', 'experts on GPU', 'hit rate', 'per layer %', 'uploaded/token', 'id readbacks/token (wait)', 't/s'], cells, [true, true, true, true, true, false, true, true, true])
  );
}

/** The trailing line llama-bench prints. */
export function buildLine(r: BenchResult | undefined): string {
  return r ? `\nbuild: ${r.build_commit} (${r.build_number})\n` : '';
}

/** A result as llama-bench's JSON object (moet's fields follow llama-bench's). */
export function jsonObject(r: BenchResult): Record<string, unknown> {
  return { ...r };
}
