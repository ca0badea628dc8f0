// moet routes -m FILE (-p TEXT | -f FILE): runs a text through a MoE model (evaluation only, no
// sampling), records the router's choices and writes statistics (JSON) and pictures (SVG / HTML).
import { readFile, writeFile } from 'node:fs/promises';
import { loadModel, type Model } from '../model.js';
import { concat } from '../trace/recorder.js';
import { coactivationPairs, routingStats, type RoutingStats } from '../trace/stats.js';
import { routesHtml, routesSvg, tokenLabel } from '../trace/svg.js';
import type { RoutingTrace } from '../trace/types.js';
import { backendFrom } from './sampling.js';
import { specializationCommand } from './specialization.js';
import { COMMON_OPTIONS, MODEL_TEXT_OPTIONS, numberOpt, parse, requireModelAndText, UsageError, type CliIO } from './util.js';

export const ROUTES_HELP = `usage: moet routes -m FILE (-p TEXT | -f TEXTFILE) [options]

Runs the text through a Mixture-of-Experts model (evaluation only: nothing is generated), records
which experts the router chose for every token in every layer, and reports per-layer statistics:
expert load, load imbalance (max/mean, coefficient of variation), router entropy, how often the
top-1 expert changes from one layer to the next, and expert co-activation. Control tokens written
in the text (<|im_start|>) are parsed. A text longer than the context is cut into windows of the
context length, each evaluated from an empty context (its first tokens then see less context).
Statistics and formulas: docs/moe-internals.md.

options:
  -m, --model FILE          GGUF file (a MoE model: qwen3moe, qwen35moe, Mixtral, olmoe, qwen2moe)
  -p, --prompt TEXT         the text
  -f, --file TEXTFILE       read the text from a file
  --json OUT                write statistics, per-token experts and weights as JSON (- for stdout)
  --svg OUT                 write the pictures (load heatmap, top-1 grid, co-activation) as one SVG
  --html OUT                write an HTML page with a per-layer table and the pictures
  --layer L                 layer of the co-activation matrix (default: the middle layer)
  --max-rows N              tokens drawn in the top-1 grid at most (default 256)
  --no-probs                do not record the full router distribution (entropy then comes from
                            the renormalized top-k weights; saves n_expert floats per token and layer)
  -c, --ctx-size N          context length (default min(2048, the trained context))
  --backend cpu|webgpu      compute backend (default: the library's default)
  -h, --help                this help
  --verbose                 print stack traces on errors

Without --json - a per-layer summary table is printed on stdout.

Expert specialization by domain (docs/moe-internals.md):
  moet routes --specialization [--domains SET.jsonl] [-m FILE] [--json OUT] [--svg OUT] [--backend B]
runs every text of a labelled set (JSON lines {"domain": …, "text": …}) and prints, per layer, the
mutual information between a token's domain and its chosen experts, and each expert's assignments
by domain. Defaults: the shipped tiny model (models/tiny-moe.gguf) and its held-out labelled set
(models/tiny-moe-heldout.jsonl).
`;

/** Token index ranges [start, end) evaluated from an empty context each. */
interface Window {
  start: number;
  end: number;
}

/** Joins the traces of consecutive windows; positions become indices into the whole text. */
function joinTraces(parts: RoutingTrace[]): RoutingTrace {
  if (parts.length === 1) return { ...parts[0]!, start: 0 };
  const first = parts[0]!;
  return {
    nLayer: first.nLayer,
    k: first.k,
    nExpert: first.nExpert,
    start: 0,
    tokens: parts.flatMap((p) => p.tokens),
    ids: concat(Uint16Array, parts.map((p) => p.ids)),
    weights: concat(Float32Array, parts.map((p) => p.weights)),
    ...(first.probs ? { probs: concat(Float32Array, parts.map((p) => p.probs!)) } : {}),
  };
}

/** Evaluates `tokens` window by window with tracing on. */
async function traceText(model: Model, tokens: number[], probs: boolean): Promise<{ trace: RoutingTrace; windows: Window[] }> {
  const ctx = model.contextLength;
  const session = model.createSession();
  try {
    const parts: RoutingTrace[] = [];
    const windows: Window[] = [];
    for (let s = 0; s < tokens.length; s += ctx) {
      const w = tokens.slice(s, s + ctx);
      session.reset();
      await session.eval(w, { trace: { routing: true, probs } });
      parts.push(session.lastTrace!);
      windows.push({ start: s, end: s + w.length });
    }
    return { trace: joinTraces(parts), windows };
  } finally {
    session.dispose();
  }
}

const round = (x: number) => Number(x.toPrecision(6));

/** The JSON document `--json` writes. */
function statsJson(model: Model, modelPath: string, stats: RoutingStats, labels: string[], windows: Window[]): unknown {
  return {
    model: { path: modelPath, name: model.info.name, architecture: model.info.architecture, backend: model.info.backend },
    contextLength: model.contextLength,
    windows,
    nTokens: stats.nTokens,
    nLayer: stats.nLayer,
    k: stats.k,
    nExpert: stats.nExpert,
    entropySource: stats.entropySource,
    layers: stats.layers.map((L) => ({
      layer: L.layer,
      dense: L.dense,
      load: L.load,
      weightLoad: L.weightLoad.map(round),
      unused: L.unused,
      maxOverMean: round(L.maxOverMean),
      cv: round(L.cv),
      entropy: round(L.entropy),
      entropyNormalized: round(L.entropyNormalized),
      top1Change: L.top1Change === null ? null : round(L.top1Change),
      coactivation: coactivationPairs(L, stats.nExpert),
    })),
    tokens: stats.tokens.map((t, i) => ({
      position: t.position,
      id: t.token,
      text: labels[i],
      experts: t.experts,
      weights: t.weights.map((ws) => ws.map(round)),
    })),
  };
}

/** The per-layer summary table. */
function summary(stats: RoutingStats, windows: Window[]): string {
  const lines = [
    `${stats.nTokens} tokens${windows.length > 1 ? ` in ${windows.length} windows` : ''}, ${stats.nLayer} layers, ${stats.k} of ${stats.nExpert} experts; entropy (nats) from ${stats.entropySource}`,
    'layer  max/mean      cv  unused  entropy  H/Hmax  top1-changed',
  ];
  for (const L of stats.layers) {
    lines.push(
      L.dense ? `${String(L.layer).padStart(5)}  dense FFN (no router)` :
      `${String(L.layer).padStart(5)}  ${L.maxOverMean.toFixed(2).padStart(8)}  ${L.cv.toFixed(3).padStart(6)}  ${String(L.unused).padStart(6)}  ` +
        `${L.entropy.toFixed(3).padStart(7)}  ${L.entropyNormalized.toFixed(3).padStart(6)}  ${(L.top1Change === null ? '-' : L.top1Change.toFixed(3)).padStart(12)}`,
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * @throws UsageError for bad arguments; model loading and evaluation errors
 */
export async function routesCommand(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse('routes', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      ...MODEL_TEXT_OPTIONS,
      json: { type: 'string' },
      svg: { type: 'string' },
      html: { type: 'string' },
      layer: { type: 'string' },
      'max-rows': { type: 'string' },
      'no-probs': { type: 'boolean' },
      'ctx-size': { type: 'string', short: 'c' },
      backend: { type: 'string' },
      specialization: { type: 'boolean' },
      domains: { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout.write(ROUTES_HELP);
    return 0;
  }
  if (values.specialization || values.domains !== undefined) {
    const contextLength = numberOpt('routes', 'ctx-size', values['ctx-size'], { integer: true, min: 1 });
    return specializationCommand({ model: values.model, domains: values.domains, backend: backendFrom('routes', values.backend), contextLength, json: values.json, svg: values.svg }, io);
  }
  const modelPath = requireModelAndText('routes', values);
  const backend = backendFrom('routes', values.backend);
  const layerOpt = numberOpt('routes', 'layer', values.layer, { integer: true, min: 0 });
  const maxRows = numberOpt('routes', 'max-rows', values['max-rows'], { integer: true, min: 1 });
  const contextLength = numberOpt('routes', 'ctx-size', values['ctx-size'], { integer: true, min: 1 });
  for (const o of ['json', 'svg', 'html'] as const) {
    if (values[o] === '') throw new UsageError(`routes: --${o} needs a file name`);
  }
  const text = values.prompt ?? (await readFile(values.file!, 'utf8'));

  const model = await loadModel(modelPath, { backend, contextLength });
  try {
    const cfg = model.config;
    if (!(cfg.nExpert > 0)) throw new UsageError(`routes: ${modelPath} is a dense ${cfg.arch} model: it has no experts to trace`);
    const layer = layerOpt ?? Math.floor(cfg.nLayer / 2);
    if (layer >= cfg.nLayer) throw new UsageError(`routes: --layer ${layer} is out of range; the model has layers 0..${cfg.nLayer - 1}`);
    const tokens = model.tokenize(text, { special: true });
    if (tokens.length === 0) throw new UsageError('routes: the text is empty');
    const { trace, windows } = await traceText(model, tokens, !values['no-probs']);
    const stats = routingStats(trace);
    const labels = tokens.map((id) => tokenLabel(model.tokenizer.tokenToBytes(id)));
    const name = model.info.name ?? modelPath;
    if (windows.length > 1) {
      io.stderr.write(`note: ${tokens.length} tokens exceed the context (${model.contextLength}): evaluated in ${windows.length} windows, each from an empty context (-c raises the context)\n`);
    }
    if (values.json !== undefined) {
      const json = JSON.stringify(statsJson(model, modelPath, stats, labels, windows)) + '\n';
      if (values.json === '-') io.stdout.write(json);
      else await writeFile(values.json, json);
    }
    const pictureOpts = { labels, layer, maxTokens: maxRows };
    if (values.svg !== undefined) await writeFile(values.svg, routesSvg(stats, pictureOpts));
    if (values.html !== undefined) {
      const notes = [
        `model: ${name} (${model.info.architecture}, backend ${model.info.backend}, context ${model.contextLength})`,
        `text: ${tokens.length} tokens${windows.length > 1 ? ` in ${windows.length} windows of at most ${model.contextLength}` : ''}`,
      ];
      await writeFile(values.html, routesHtml(stats, { ...pictureOpts, title: `MoE routing: ${name}`, notes }));
    }
    if (values.json !== '-') io.stdout.write(summary(stats, windows));
    return 0;
  } finally {
    await model.dispose();
  }
}
