// moet bench -m FILE [-p 512] [-n 128] [-r 5] [-d DEPTH] [-ub 512] [-o md|json|jsonl]: llama-bench's
// tests and output on moet's backends (src/bench/harness.ts).
import { formatProfile } from '../bench/profile.js';
import { buildLine, jsonObject, mdExpertCache, mdExtras, mdHeader, mdRow, type OutputFormat } from '../bench/format.js';
import { expertOptions, parseGpuMemory } from './gpu-memory.js';
import { runBench, type BenchResult } from '../bench/harness.js';
import { backendFrom } from './sampling.js';
import { numberOpt, parse, UsageError, COMMON_OPTIONS, type CliIO } from './util.js';

export const BENCH_HELP = `usage: moet bench -m FILE [options]

Measures prompt processing (pp) and token generation (tg) speed like llama-bench, with the same
tests, columns and JSON fields, so the numbers sit next to llama.cpp's (bench/compare.ts runs both).
Token ids are synthetic and deterministic; tokenization and sampling are not timed; one warm-up run
per test is not counted. pp = N tokens evaluated after D tokens of context; tg = N single-token
evaluations, each producing the full logits. Values may be comma lists (-p 128,512).

options:
  -m, --model FILE[,FILE]   GGUF file(s)
  -p, --n-prompt N          prompt lengths (default 512; 0 skips pp)
  -n, --n-gen N             generation lengths (default 128; 0 skips tg)
  -d, --n-depth D           context depth before each test (default 0)
  -ub, --ubatch-size N      tokens per prefill batch (default 512)
  -r, --repetitions N       timed repetitions (default 5)
  -o, --output FMT          md | json | jsonl (default md)
  --backend cpu|webgpu      compute backend (default: the library's default)
  --no-warmup               skip the warm-up run
  --seed S                  seed of the synthetic token ids (default 1234)
  --profile                 WebGPU: one extra repetition per test with per-kernel GPU times from
                            timestamp queries (kernel, calls, total ms, share), printed after the table
  --gpu-memory B[,B…]       WebGPU: GPU memory budgets for the weights (BYTES with K/M/G, auto, or
                            P% = P% of each layer's experts on the GPU, the rest read from the file);
                            the model is loaded once per budget; an expert cache table follows
  --expert-policy lru|lfu|prior, --expert-prior ROUTES.json
                            the expert cache's eviction policy and calibration (see moet run --help)
  -h, --help                this help

Besides llama-bench's columns moet reports dispatches per token and per layer, the weight bytes one
decoded token reads (attention + router + the k used experts + LM head + norms) and the bandwidth
achieved (those bytes × t/s), and the model load time, rate and process RSS peak.
`;

function list(name: string, v: string | string[] | undefined, dflt: number[], min = 0): number[] {
  if (v === undefined) return dflt;
  const parts = (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(','));
  return parts.map((s) => numberOpt('bench', name, s.trim(), { integer: true, min })!);
}

/** llama-bench spells the ubatch option `-ub`; parseArgs knows only one-letter short options. */
function normalize(argv: string[]): string[] {
  return argv.map((a) => (a === '-ub' ? '--ubatch-size' : a.startsWith('-ub=') ? `--ubatch-size=${a.slice(4)}` : a));
}

/**
 * @throws UsageError for bad arguments; model loading and backend errors
 */
export async function benchCommand(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse('bench', {
    args: normalize(argv),
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      model: { type: 'string', short: 'm', multiple: true },
      'n-prompt': { type: 'string', short: 'p', multiple: true },
      'n-gen': { type: 'string', short: 'n', multiple: true },
      'n-depth': { type: 'string', short: 'd', multiple: true },
      'ubatch-size': { type: 'string', multiple: true },
      repetitions: { type: 'string', short: 'r' },
      output: { type: 'string', short: 'o' },
      backend: { type: 'string' },
      'no-warmup': { type: 'boolean' },
      seed: { type: 'string' },
      profile: { type: 'boolean' },
      'gpu-memory': { type: 'string', multiple: true },
      'expert-policy': { type: 'string' },
      'expert-prior': { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout.write(BENCH_HELP);
    return 0;
  }
  const models = (values.model ?? []).flatMap((m) => m.split(',')).filter((m) => m.length > 0);
  if (models.length === 0) throw new UsageError('bench: -m FILE is required (see moet bench --help)');
  const output = (values.output ?? 'md') as OutputFormat;
  if (!['md', 'json', 'jsonl'].includes(output)) throw new UsageError(`bench: -o must be md, json or jsonl, got "${values.output}"`);
  const backend = backendFrom('bench', values.backend);
  const reps = numberOpt('bench', 'repetitions', values.repetitions, { integer: true, min: 1 }) ?? 5;
  const nPrompt = list('n-prompt', values['n-prompt'], [512]);
  const nGen = list('n-gen', values['n-gen'], [128]);
  const nDepth = list('n-depth', values['n-depth'], [0]);
  const nUbatch = list('ubatch-size', values['ubatch-size'], [512], 1);
  const gpuMemory = (values['gpu-memory'] ?? []).flatMap((v) => v.split(',')).map((v) => parseGpuMemory('bench', v.trim()));
  // (the policy and prior need a budget: the first one stands for all)
  const { experts } = await expertOptions('bench', { 'gpu-memory': values['gpu-memory']?.[0]?.split(',')[0], 'expert-policy': values['expert-policy'], 'expert-prior': values['expert-prior'] });

  const results: BenchResult[] = [];
  let headerDone = false;
  if (output === 'json') io.stdout.write('[\n');
  await runBench({
    models,
    nPrompt,
    nGen,
    nDepth,
    nUbatch,
    reps,
    backend,
    warmup: !values['no-warmup'],
    seed: numberOpt('bench', 'seed', values.seed, { integer: true, min: 0 }),
    profile: !!values.profile,
    gpuMemory,
    experts,
    onProgress: (msg) => io.stderr.write(`bench: ${msg}\n`),
    onResult: (r) => {
      if (output === 'md') {
        if (!headerDone) io.stdout.write(mdHeader());
        headerDone = true;
        io.stdout.write(mdRow(r));
      } else if (output === 'jsonl') {
        io.stdout.write(JSON.stringify(jsonObject(r)) + '\n');
      } else {
        io.stdout.write((results.length ? ',\n' : '') + JSON.stringify(jsonObject(r), null, 2).replace(/^/gm, '  '));
      }
      results.push(r);
    },
  });
  if (output === 'json') io.stdout.write('\n]\n');
  if (output === 'md') {
    io.stdout.write(mdExtras(results));
    io.stdout.write(mdExpertCache(results));
    for (const r of results) {
      if (r.profile) {
        const perToken = r.n_gen > 0 ? r.n_gen : r.n_prompt;
        io.stdout.write(formatProfile(r.profile, `GPU time per kernel, ${r.test} (one profiled repetition; ms/token over ${perToken} tokens)`, perToken));
      }
    }
    io.stdout.write(buildLine(results[0]));
  }
  return 0;
}
