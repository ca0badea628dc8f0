// moet demo: runs the tiny MoE that ships with moet (models/tiny-moe.gguf, docs/tiny-moe.md) on one
// prompt per domain it was trained on (English prose, Python, SVG), or on the prompt given, and
// reports the time from the start of the process to the first generated token. No download.
// `--random` keeps the old demo: a random-weight model written by src/synth/ (gibberish by
// construction, restricted to printable ASCII), which shows the whole path with no trained weights.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type GenerateOptions } from '../model.js';
import { writeSynthModel } from '../synth/model.js';
import { tinyModelPath } from '../tiny.js';
import { formatTimings } from './run.js';
import { progressBar, tick } from './progress.js';
import { backendFrom } from './sampling.js';
import { COMMON_OPTIONS, numberOpt, parse, type CliIO } from './util.js';

export const DEMO_HELP = `usage: moet demo [-p PROMPT] [-n N] [--seed S] [--temp T] [--backend cpu|webgpu] [-m FILE | --random [--keep]]

Runs the tiny Mixture-of-Experts model that ships with moet (models/tiny-moe.gguf: qwen3moe, 4 layers,
8 experts, 2 used, 7 MB; trained from scratch on English prose, Python source, SVG icons and JSON;
docs/tiny-moe.md) on one prompt per domain (prose, code, SVG), or on PROMPT, and prints the time from
the start of the process to the first generated token. Nothing is downloaded.

options:
  -p, --prompt TEXT      one prompt instead of the three domain prompts
  -n, --n-predict N      tokens to generate per prompt (default 64)
  --seed S               sampler seed (default 42)
  --temp T               temperature (default 0.7)
  --backend cpu|webgpu   compute backend (default: the library's default)
  -m, --model FILE       another GGUF file instead of the shipped model
  --random               a random-weight model instead (src/synth preset \`tiny\`: gibberish by
                         construction, restricted to printable ASCII)
  --keep                 with --random: keep the generated model file and print its path
  -h, --help             this help
  --verbose              print stack traces on errors, and the timings of each prompt
`;

/** One prompt per training domain of the shipped model (docs/tiny-moe.md). */
export const DEMO_PROMPTS: readonly { domain: string; prompt: string }[] = [
  { domain: 'prose', prompt: 'The module provides' },
  { domain: 'code', prompt: 'def read_config(path):\n' },
  { domain: 'svg', prompt: '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">\n' },
];

/** Writes the random demo model to `path`: the synthetic generator's `tiny` preset (src/synth/). */
export async function writeDemoModel(path: string): Promise<void> {
  await writeSynthModel(path, { preset: 'tiny', seed: 'moet-demo', name: 'moet demo (random weights)' });
}

/**
 * Logit bias that keeps the random model to printable ASCII, space and newline: byte tokens 94..255
 * are the bytes outside 0x21..0x7E (GPT-2 byte order), where 220 is the space and 198 the newline.
 * Without it, random weights mostly produce invalid UTF-8 (printed as U+FFFD).
 */
function printableBias(): Map<number, number> {
  const bias = new Map<number, number>();
  for (let id = 94; id < 256; id++) if (id !== 220 && id !== 198) bias.set(id, -Infinity);
  return bias;
}

/**
 * @throws UsageError for bad arguments; model loading and generation errors
 */
export async function demoCommand(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse('demo', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      prompt: { type: 'string', short: 'p' },
      'n-predict': { type: 'string', short: 'n' },
      seed: { type: 'string' },
      temp: { type: 'string' },
      backend: { type: 'string' },
      model: { type: 'string', short: 'm' },
      random: { type: 'boolean' },
      keep: { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(DEMO_HELP);
    return 0;
  }
  const backend = backendFrom('demo', values.backend);
  const generate: GenerateOptions = {
    maxTokens: numberOpt('demo', 'n-predict', values['n-predict'], { integer: true, min: 0 }) ?? 64,
    seed: numberOpt('demo', 'seed', values.seed, { integer: true, min: 0 }) ?? 42,
    temperature: numberOpt('demo', 'temp', values.temp) ?? 0.7,
  };
  let dir: string | null = null;
  let path = values.model ?? tinyModelPath;
  if (values.random) {
    dir = await mkdtemp(join(tmpdir(), 'moet-demo-'));
    path = join(dir, 'moet-demo-qwen3moe-f32.gguf');
    await writeDemoModel(path);
    if (values.keep) io.stderr.write(`demo model: ${path}\n`);
    generate.logitBias = printableBias();
  }
  const prompts = values.prompt !== undefined ? [{ domain: '', prompt: values.prompt }] : values.random ? [{ domain: '', prompt: 'Once upon a time' }] : DEMO_PROMPTS;
  try {
    const bar = progressBar(io.stderr, 'loading model');
    const t0 = performance.now();
    let model: Awaited<ReturnType<typeof loadModel>>;
    try {
      model = await loadModel(path, { backend, onProgress: (f) => bar.update(f) });
    } finally {
      bar.done();
    }
    const loadMs = performance.now() - t0;
    try {
      io.stderr.write(`model: ${model.info.name ?? path} (${model.info.architecture}, backend ${model.info.backend}, context ${model.contextLength})\n`);
      let firstTokenS: number | null = null;
      for (const [i, { domain, prompt }] of prompts.entries()) {
        if (domain) io.stderr.write(`\n--- ${domain} ---\n`);
        const session = model.createSession();
        try {
          io.stdout.write(prompt);
          for await (const t of session.generate(prompt, { ...generate, seed: (generate.seed ?? 42) + i })) {
            // performance.now() counts from the start of the process
            firstTokenS ??= performance.now() / 1000;
            io.stdout.write(t.text);
            await tick();
          }
          io.stdout.write('\n');
          if (values.verbose && session.lastTimings) io.stderr.write(formatTimings(session.lastTimings) + '\n');
        } finally {
          session.dispose();
        }
      }
      io.stderr.write(`\nload ${(loadMs / 1000).toFixed(2)} s; first token ${firstTokenS === null ? '-' : firstTokenS.toFixed(2) + ' s'} after the process started\n`);
      return 0;
    } finally {
      await model.dispose();
    }
  } finally {
    if (dir && !values.keep) await rm(dir, { recursive: true, force: true });
  }
}
