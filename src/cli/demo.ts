// moet demo: writes a tiny random-weight qwen3moe GGUF (about 0.6 MB, fixed seed) to a temporary
// file and runs `moet run` on it. The text is gibberish by construction; the point is to show the
// whole path (GGUF writer → reader → tokenizer → backend → sampler → streaming) with no download.
// Self-contained on purpose: the test fixtures (tests/fixtures/) are not part of the package; the
// model comes from src/synth/ (preset `tiny`), which needs no devDependency.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSynthModel } from '../synth/model.js';
import { runGeneration } from './run.js';
import { backendFrom } from './sampling.js';
import { COMMON_OPTIONS, numberOpt, parse, type CliIO } from './util.js';

export const DEMO_HELP = `usage: moet demo [-p PROMPT] [-n N] [--seed S] [--temp T] [--backend cpu|webgpu] [--keep]

Generates a tiny random-weight qwen3moe model (2 layers, 8 experts, 2 used, byte-level vocabulary;
fixed seed, about 0.6 MB) in a temporary directory and runs \`moet run\` on it. The output is
gibberish by construction (restricted to printable ASCII by a logit bias): it shows the engine
working end to end without downloading anything.

options:
  -p, --prompt TEXT      prompt (default "Once upon a time")
  -n, --n-predict N      tokens to generate (default 48)
  --seed S               sampler seed (default 42)
  --temp T               temperature (default 0.8)
  --backend cpu|webgpu   compute backend (default: the library's default)
  --keep                 keep the generated model file and print its path
  -h, --help             this help
  --verbose              print stack traces on errors
`;

/** Writes the demo model to `path`: the synthetic generator's `tiny` preset (src/synth/). */
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
      keep: { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(DEMO_HELP);
    return 0;
  }
  const backend = backendFrom('demo', values.backend);
  const dir = await mkdtemp(join(tmpdir(), 'moet-demo-'));
  const path = join(dir, 'moet-demo-qwen3moe-f32.gguf');
  try {
    await writeDemoModel(path);
    if (values.keep) io.stderr.write(`demo model: ${path}\n`);
    return await runGeneration(
      {
        model: path,
        prompt: values.prompt ?? 'Once upon a time',
        backend,
        displayPrompt: true,
        generate: {
          maxTokens: numberOpt('demo', 'n-predict', values['n-predict'], { integer: true, min: 0 }) ?? 48,
          seed: numberOpt('demo', 'seed', values.seed, { integer: true, min: 0 }) ?? 42,
          temperature: numberOpt('demo', 'temp', values.temp) ?? 0.8,
          logitBias: printableBias(),
        },
      },
      io,
    );
  } finally {
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}
