// moet pelican [-m FILE] [--prompt-set default|tiny|FILE] [--runs N] [--seed S] [--temp T] [--no-think]
// [--out DIR] [--compare-llama]: the seeds' "SVG of a pelican riding a bicycle" test (src/pelican/).
import { runPelican } from '../pelican/run.js';
import { loadPromptSet, PROMPT_SETS } from '../pelican/prompts.js';
import { tinyModelPath } from '../tiny.js';
import { backendFrom, samplingFrom } from './sampling.js';
import { COMMON_OPTIONS, numberOpt, parse, UsageError, type CliIO } from './util.js';

export const PELICAN_HELP = `usage: moet pelican [-m FILE] [options]

The pelican test: asks the model, through its chat template, for "an SVG of a pelican riding a
bicycle" (Simon Willison's prompt) and a few of the same kind, extracts the SVG from each answer
(a fenced \`\`\`svg / \`\`\`xml block or a bare <svg>…</svg>), validates it (well-formed XML, an <svg>
root with a usable viewBox or width/height, no scripts, event handlers, <foreignObject> or external
references, no absurd size), renders the valid ones to PNG (resvg) and writes everything, with
timings, into the output folder: summary.json, a gallery page (index.html), and per run the prompt,
the raw answer, the SVG and the PNG. An answer with no SVG, or an invalid one, is a recorded result
("no svg", "invalid: <reason>"). docs/pelican.md has the details.

options:
  -m, --model FILE          GGUF file (default: the shipped tiny model, models/tiny-moe.gguf)
  --prompt-set SET          default (the pelican and 3 variations), tiny (the same, each answer
                            started as "<svg …>" for a model that is not a chat model), or a FILE:
                            one prompt per line, or JSON / JSON lines of {id?, prompt, system?,
                            prefill?} (default: default; tiny when -m is not given)
  --runs N                  runs per prompt; run r samples with seed S + r - 1 (default 1)
  -s, --seed S              sampler seed (default 42)
  --temp T                  temperature; 0 is greedy (default 0.8)
  --top-k N                 (default 40)
  --top-p P                 (default 0.95)
  --min-p P                 (default 0.05)
  --presence-penalty P      (default 0)
  --repeat-penalty R        (default 1.0)
  -n, --max-tokens N        tokens per answer, thinking included (default 8192; the context
                            is min(the trained context, N + 1024) unless -c is given)
  -c, --ctx-size N          context length
  --no-think                the chat template's enable_thinking = false (Qwen3: answer directly)
  --think                   enable_thinking = true (default: the template's own default)
  -o, --out DIR             output folder (default pelican-out; files in it are overwritten)
  --backend cpu|webgpu      compute backend (default: the library's default)
  --compare-llama           also run llama.cpp (node-llama-cpp, a devDependency) on the same prompt
                            tokens with the same settings and seeds; the gallery shows both. With
                            --temp 0 the two must generate the same tokens: the first difference is
                            reported and the exit code is 1 if any run differs (it is 1 too
                            when every run failed)
  --llama-threads N         llama.cpp's CPU threads (default: all cores)
  -h, --help                this help
  --verbose                 print stack traces on errors
`;

/**
 * @throws UsageError for bad arguments; model loading errors; LlamaCppUnavailableError
 */
export async function pelicanCommand(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse('pelican', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      model: { type: 'string', short: 'm' },
      'prompt-set': { type: 'string' },
      runs: { type: 'string' },
      seed: { type: 'string', short: 's' },
      temp: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'min-p': { type: 'string' },
      'presence-penalty': { type: 'string' },
      'repeat-penalty': { type: 'string' },
      'max-tokens': { type: 'string', short: 'n' },
      'ctx-size': { type: 'string', short: 'c' },
      'no-think': { type: 'boolean' },
      think: { type: 'boolean' },
      out: { type: 'string', short: 'o' },
      backend: { type: 'string' },
      'compare-llama': { type: 'boolean' },
      'llama-threads': { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout.write(PELICAN_HELP);
    return 0;
  }
  if (values.model === '') throw new UsageError('pelican: -m needs a file name');
  if (values.out === '') throw new UsageError('pelican: --out needs a folder name');
  if (values['no-think'] && values.think) throw new UsageError('pelican: give at most one of --think and --no-think');
  const backend = backendFrom('pelican', values.backend);
  const runs = numberOpt('pelican', 'runs', values.runs, { integer: true, min: 1 }) ?? 1;
  const maxTokens = numberOpt('pelican', 'max-tokens', values['max-tokens'], { integer: true, min: 1 }) ?? 8192;
  const contextLength = numberOpt('pelican', 'ctx-size', values['ctx-size'], { integer: true, min: 1 });
  const llamaThreads = numberOpt('pelican', 'llama-threads', values['llama-threads'], { integer: true, min: 1 });
  const { seed: randomSeed, ...sampling } = samplingFrom('pelican', {
    temp: values.temp, seed: values.seed, 'top-k': values['top-k'], 'top-p': values['top-p'], 'min-p': values['min-p'],
    'presence-penalty': values['presence-penalty'], 'repeat-penalty': values['repeat-penalty'],
  });
  const seed = values.seed === undefined ? 42 : randomSeed;
  const model = values.model ?? tinyModelPath;
  const promptSet = values['prompt-set'] ?? (values.model === undefined ? 'tiny' : 'default');
  if (promptSet === '') throw new UsageError(`pelican: --prompt-set needs ${Object.keys(PROMPT_SETS).join(', ')} or a file`);
  const prompts = await loadPromptSet(promptSet);
  const outDir = values.out ?? 'pelican-out';

  const summary = await runPelican({
    model, prompts, promptSet, runs, seed, sampling, maxTokens, contextLength, backend, outDir,
    enableThinking: values['no-think'] ? false : values.think ? true : undefined,
    compareLlama: !!values['compare-llama'],
    llamaThreads,
    onProgress: (line) => io.stderr.write(`pelican: ${line}\n`),
  });
  const lines: string[] = [];
  for (const [name, t] of Object.entries(summary.totals)) {
    if (name === 'llama.cpp' && !summary.llama) continue;
    lines.push(`${name}: ${t.ok} ok, ${t.noSvg} no svg, ${t.invalid} invalid${t.error ? `, ${t.error} error` : ''} (of ${summary.runs.length})`);
  }
  const p = summary.parity;
  if (p) {
    lines.push(
      `parity: ${p.identical} of ${p.compared} runs identical` +
        (p.greedy ? (p.pass ? ' (greedy: PASS)' : ' (greedy: FAIL, see the runs above)') : ' (sampled: not expected to match)'),
    );
  }
  lines.push(`gallery: ${outDir}/index.html`);
  io.stdout.write(lines.join('\n') + '\n');
  if (summary.totals.moet.error === summary.runs.length) {
    io.stderr.write('moet: error: pelican: every run failed (see the errors above)\n');
    return 1;
  }
  return p && p.greedy && !p.pass ? 1 : 0;
}
