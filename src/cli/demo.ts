// moet demo: writes a tiny random-weight qwen3moe GGUF (about 0.6 MB, fixed seed) to a temporary
// file and runs `moet run` on it. The text is gibberish by construction; the point is to show the
// whole path (GGUF writer → reader → tokenizer → backend → sampler → streaming) with no download.
// Self-contained on purpose: the test fixtures (tests/fixtures/) are not part of the package.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GGMLType, GGUFValueType, type GGUFMetadataEntry } from '../../gguf/types.js';
import { kv, writeGGUF, type GGUFWriteTensor } from '../../gguf/writer.js';
import { expectedTensors, type ModelConfig } from '../config.js';
import { Xoshiro128 } from '../sampler.js';
import { runGeneration } from './run.js';
import { COMMON_OPTIONS, numberOpt, parse, UsageError, type CliIO } from './util.js';

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

/** GPT-2's byte order: printable bytes keep their code point, the rest map to U+0100 onwards. */
function byteTokens(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const set = new Set(printable);
  const tokens = printable.map((b) => String.fromCodePoint(b));
  let n = 0;
  for (let b = 0; b < 256; b++) if (!set.has(b)) tokens.push(String.fromCodePoint(256 + n++));
  return tokens;
}

const DEMO_MERGES = ['Ġ t', 'h e', 'Ġt he', 'i n', 'e r', 'a n', 'o n', 'Ġ a', 'r e', 'e n', 'Ġ s', 'o u'];

const DEMO_CONFIG: ModelConfig = {
  arch: 'qwen3moe', nLayer: 2, nEmbd: 64, nHead: 4, nHeadKv: 2, headDimK: 16, headDimV: 16, nRot: 16,
  ropeBase: 1e6, rmsEps: 1e-6, nVocab: 0, nCtxTrain: 1024, nFf: 96, nExpert: 8, nExpertUsed: 2, nFfExp: 32,
  normTopKProb: true, tiedEmbeddings: false, ropeScalingType: null,
};

/** Writes the demo model to `path`. */
export async function writeDemoModel(path: string): Promise<void> {
  const tokens = byteTokens();
  for (const m of DEMO_MERGES) tokens.push(m.replace(' ', ''));
  const types = tokens.map(() => 1);
  const bos = tokens.length;
  tokens.push('<|endoftext|>', '<|im_start|>', '<|im_end|>');
  types.push(3, 3, 3);
  const c: ModelConfig = { ...DEMO_CONFIG, nVocab: tokens.length };
  const a = c.arch;
  const metadata: GGUFMetadataEntry[] = [
    kv.str('general.architecture', a),
    kv.str('general.name', 'moet demo (random weights)'),
    kv.u32(`${a}.block_count`, c.nLayer),
    kv.u32(`${a}.context_length`, c.nCtxTrain),
    kv.u32(`${a}.embedding_length`, c.nEmbd),
    kv.u32(`${a}.feed_forward_length`, c.nFf),
    kv.u32(`${a}.attention.head_count`, c.nHead),
    kv.u32(`${a}.attention.head_count_kv`, c.nHeadKv),
    kv.u32(`${a}.attention.key_length`, c.headDimK),
    kv.u32(`${a}.attention.value_length`, c.headDimV),
    kv.f32(`${a}.rope.freq_base`, c.ropeBase),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, c.rmsEps),
    kv.u32(`${a}.expert_count`, c.nExpert),
    kv.u32(`${a}.expert_used_count`, c.nExpertUsed),
    kv.u32(`${a}.expert_feed_forward_length`, c.nFfExp),
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', 'qwen2'),
    kv.strs('tokenizer.ggml.tokens', tokens),
    kv.i32s('tokenizer.ggml.token_type', types),
    kv.strs('tokenizer.ggml.merges', DEMO_MERGES),
    kv.u32('tokenizer.ggml.eos_token_id', bos + 2),
    kv.u32('tokenizer.ggml.padding_token_id', bos),
    kv.u32('tokenizer.ggml.bos_token_id', bos),
    { key: 'tokenizer.ggml.add_bos_token', type: GGUFValueType.BOOL, value: false },
  ];
  const rng = new Xoshiro128(0x5eed);
  const tensors: GGUFWriteTensor[] = expectedTensors(c).map(({ name, shape }) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const v = new Float32Array(n);
    if (name.endsWith('norm.weight')) {
      for (let i = 0; i < n; i++) v[i] = 1 + 0.05 * (rng.nextFloat() - 0.5);
    } else {
      // uniform with variance 1/fan_in (the LM head a little hotter, for a livelier distribution)
      const scale = Math.sqrt(12 / shape[0]!) * (name === 'output.weight' ? 2 : 1);
      for (let i = 0; i < n; i++) v[i] = (rng.nextFloat() - 0.5) * scale;
    }
    return { name, type: GGMLType.F32, shape, data: new Uint8Array(v.buffer) };
  });
  await writeGGUF(path, metadata, tensors);
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
  const backend = values.backend;
  if (backend !== undefined && backend !== 'cpu' && backend !== 'webgpu') {
    throw new UsageError(`demo: --backend must be cpu or webgpu, got "${backend}"`);
  }
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
