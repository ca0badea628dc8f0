// ModelConfig: the hyperparameters of a model, read from GGUF metadata with the defaults llama.cpp
// applies (src/llama-model.cpp load_hparams), plus the tensors each architecture expects.
import { GGUFValueType, type GGUFMetadataEntry, type GGUFTensorInfo, type GGUFValue } from '../gguf/types.js';
import { ModelFormatError, UnsupportedArchitectureError } from './errors.js';

/** Architectures (`general.architecture`) moet runs. */
export const SUPPORTED_ARCHITECTURES = ['qwen3moe', 'qwen3', 'qwen35moe', 'qwen35', 'llama', 'olmoe', 'qwen2moe', 'deepseek2', 'gpt-oss'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/**
 * The variation points of a transformer block (the "block library"): every architecture of the
 * plain transformer family is one entry of ARCH_SPECS, and the CPU forward (src/cpu/forward.ts) and
 * the GPU recording (src/arch/transformer.ts) read only this, never the architecture's name.
 */
export interface AttentionSpec {
  /** RoPE pairs: 'neox' (i, i + n_rot/2: Qwen, OLMoE) or 'norm' (2i, 2i + 1: llama, Mixtral) */
  rope: 'neox' | 'norm';
  /**
   * RMSNorm of q and k before RoPE: 'head' (per head, weight [head_dim]: Qwen3), 'full' (over the
   * whole projection before the head split, weight [n_head·head_dim] / [n_head_kv·head_dim]:
   * OLMoE), 'none' (llama, qwen2moe)
   */
  qkNorm: 'head' | 'full' | 'none';
  /** attn_q.bias / attn_k.bias / attn_v.bias added after the projections (qwen2moe; llama when present) */
  qkvBias: boolean;
  /** attn_output.bias added after Wo (llama when present) */
  outBias: boolean;
  /**
   * the factor of q·k: 1/√head_dim (llama.cpp reads `attention.scale` only for granite-family
   * architectures, not for llama, so neither does moet: a llama file's llama.attention.scale is ignored)
   */
  scale: number;
  /** rope_freqs.weight [n_rot/2]: llama3's per-frequency divisors of θ (llama, when present) */
  ropeFreqs: boolean;
  /** 1 / rope.scaling.factor (linear or YaRN scaling), else 1 */
  ropeFreqScale: number;
  /**
   * YaRN (rope.scaling.type = yarn), as ggml's rope_yarn: extFactor 1 (0: no YaRN), the ramp between
   * the correction dims [lo, hi] (pair indices, from original_context_length and β_fast 32 / β_slow 1),
   * and the factor every cos/sin is multiplied by (llama.cpp's attn_factor · (1 + 0.1·ln factor))
   */
  yarn: { extFactor: number; corrDims: [number, number]; mscale: number };
  /** attn_sinks [nHead]: a learned logit per head that joins every softmax (gpt-oss) */
  sinks: boolean;
  /**
   * sliding-window layers (gpt-oss: every other one, from layer 0): a query at position p sees
   * positions > p − window only; the other layers see everything. window 0: none.
   */
  slidingWindow: number;
  swaLayers: boolean[];
  /** rope.freq_base_swa for the sliding-window layers (default rope.freq_base) */
  ropeBaseSwa: number;
}

/**
 * The router of an MoE FFN (llama.cpp build_moe_ffn): p = softmax(z) or sigmoid(z) over all experts;
 * selection by top-k of p + bias (exp_probs_b, DeepSeek-V3) within the best `groupsUsed` of `groups`
 * expert groups (a group scores the sum of its two best); weights = the chosen p, divided by
 * their sum when `normalize`, times `scale`.
 */
export interface RouterSpec {
  /** softmax | sigmoid over all experts; 'softmax_weight' (gpt-oss): top-k of the logits, weights = softmax over those k */
  gating: 'softmax' | 'sigmoid' | 'softmax_weight';
  /** ffn_gate_inp.bias [nExpert] added to the logits (gpt-oss) */
  logitBias: boolean;
  /** weights = the k chosen probabilities divided by their sum (qwen3moe, Mixtral), or raw (olmoe, qwen2moe) */
  normalize: boolean;
  /** exp_probs_b.bias [nExpert] added for the selection only (DeepSeek-V3) */
  selectionBias: boolean;
  /** expert_group_count (0 or 1: no groups) and expert_group_used_count */
  groups: number;
  groupsUsed: number;
  /** expert_weights_scale (1 when absent or 0) */
  scale: number;
}

/**
 * Multi-head latent attention (deepseek2, in the absorbed form llama.cpp runs, attn_k_b / attn_v_b):
 *   q = W_q·h (or W_q_b·RMSNorm(W_q_a·h), q_lora_rank > 0)             [nHead, qkNope + qkRope]
 *   [c | k_pe] = W_kv_a·h;  c = RMSNorm(c) ⊙ kv_a_norm                  [kvLora], [qkRope]
 *   per head: q_abs = W_k_b[h]·q_nope[h]   [kvLora];  q_pe, k_pe roped (adjacent pairs)
 *   MQA over the cache of K = [c | k_pe] (kvLora + qkRope per token) with V = c, scale 1/√(qkNope + qkRope)
 *   per head: o[h] = W_v_b[h]·(Σ softmax · c)   [vHead];  out = W_o·o
 * In the config, headDimK = kvLora + qkRope and headDimV = kvLora (the cache rows), nHeadKv = 1.
 */
export interface MlaConfig {
  /** attention.q_lora_rank (0: plain attn_q, as DeepSeek-V2-Lite) */
  qLoraRank: number;
  /** attention.kv_lora_rank */
  kvLoraRank: number;
  /** key_length_mla − rope.dimension_count */
  qkNope: number;
  /** rope.dimension_count */
  qkRope: number;
  /** value_length_mla */
  vHead: number;
}

/** The FFN of a block: dense SwiGLU, routed experts, or routed experts + a sigmoid-gated shared expert (qwen2moe). */
export type FfnKind = 'dense' | 'moe' | 'moe+shared';

/** What an architecture of the transformer family fixes, and what it reads from the file. */
interface ArchSpec {
  rope: AttentionSpec['rope'];
  qkNorm: AttentionSpec['qkNorm'];
  /** 'required': attn_q/k/v.bias must be there; 'optional': used when the file has them; 'none' */
  qkvBias: 'required' | 'optional' | 'none';
  /** attn_output.bias: 'required' (gpt-oss), 'optional' (llama) or 'none' */
  outBias: 'required' | 'optional' | 'none';
  /** the FFN: fixed, or 'by-expert-count' (llama: experts when expert_count > 0 — Mixtral) */
  ffn: FfnKind | 'by-expert-count';
  normalizeRouter: boolean;
  /**
   * the experts' width: 'ff/k' = expert_feed_forward_length, else feed_forward_length / k (Qwen);
   * 'ff' = feed_forward_length, the key ignored (llama.cpp's llama and olmoe)
   */
  ffExpDefault: 'ff' | 'ff/k';
  /** reads rope_freqs.weight when the file has it (llama's llama3 frequency factors) */
  llamaExtras: boolean;
  /** output.weight may be absent (then token_embd.weight is the LM head) */
  tiedAllowed: boolean;
  /** gpt-oss: attention sinks, sliding windows, biased experts with the clamped SwiGLU, softmax over the top-k logits */
  gptOss?: boolean;
}

/**
 * The transformer-family architectures (llama.cpp's src/models/*.cpp). Adding one that is built
 * from these blocks is an entry here (plus fixtures and tests).
 */
const ARCH_SPECS: Partial<Record<Architecture, ArchSpec>> = {
  qwen3moe: { rope: 'neox', qkNorm: 'head', qkvBias: 'none', outBias: 'none', ffn: 'moe', normalizeRouter: true, ffExpDefault: 'ff/k', llamaExtras: false, tiedAllowed: true },
  qwen3: { rope: 'neox', qkNorm: 'head', qkvBias: 'none', outBias: 'none', ffn: 'dense', normalizeRouter: false, ffExpDefault: 'ff', llamaExtras: false, tiedAllowed: true },
  llama: { rope: 'norm', qkNorm: 'none', qkvBias: 'optional', outBias: 'optional', ffn: 'by-expert-count', normalizeRouter: true, ffExpDefault: 'ff', llamaExtras: true, tiedAllowed: true },
  olmoe: { rope: 'neox', qkNorm: 'full', qkvBias: 'none', outBias: 'none', ffn: 'moe', normalizeRouter: false, ffExpDefault: 'ff', llamaExtras: false, tiedAllowed: false },
  qwen2moe: { rope: 'neox', qkNorm: 'none', qkvBias: 'optional', outBias: 'none', ffn: 'moe+shared', normalizeRouter: false, ffExpDefault: 'ff/k', llamaExtras: false, tiedAllowed: false },
  'gpt-oss': { rope: 'neox', qkNorm: 'none', qkvBias: 'optional', outBias: 'required', ffn: 'moe', normalizeRouter: false, ffExpDefault: 'ff/k', llamaExtras: false, tiedAllowed: false, gptOss: true },
};

export interface ModelConfig {
  arch: Architecture;
  /** block_count */
  nLayer: number;
  /** embedding_length */
  nEmbd: number;
  /** attention.head_count */
  nHead: number;
  /** attention.head_count_kv (default nHead) */
  nHeadKv: number;
  /** attention.key_length (default nEmbd / nHead) */
  headDimK: number;
  /** attention.value_length (default nEmbd / nHead) */
  headDimV: number;
  /** rope.dimension_count (default headDimK) */
  nRot: number;
  /** rope.freq_base (default 10000) */
  ropeBase: number;
  /** attention.layer_norm_rms_epsilon (required) */
  rmsEps: number;
  /** vocab_size, else the length of tokenizer.ggml.tokens, else token_embd.weight's ne1 */
  nVocab: number;
  /** context_length: the context the model was trained with */
  nCtxTrain: number;
  /** feed_forward_length: the dense FFN width (qwen3); informational for qwen3moe (0 if absent) */
  nFf: number;
  /** expert_count (0 for dense models) */
  nExpert: number;
  /** expert_used_count (0 for dense models) */
  nExpertUsed: number;
  /** expert_feed_forward_length (default nFf / nExpertUsed, as llama.cpp); 0 for dense models */
  nFfExp: number;
  /** renormalize the selected experts' probabilities (qwen3moe, Mixtral: yes; olmoe, qwen2moe: no) */
  normTopKProb: boolean;
  /** the block's variation points (transformer family; the Qwen3.5 hybrids keep theirs in qwen35) */
  attention: AttentionSpec;
  ffnKind: FfnKind;
  /** expert_shared_feed_forward_length (qwen2moe, qwen35moe; default feed_forward_length); 0 without a shared expert */
  nFfShexp: number;
  /** Mixtral's older layout: blk.N.ffn_{gate,up,down}.E.weight per expert instead of stacked ffn_*_exps */
  perExpertTensors: boolean;
  /** the router (RouterSpec); normTopKProb is router.normalize */
  router: RouterSpec;
  /** leading_dense_block_count: layers 0 .. nLayerDenseLead − 1 have a dense FFN of nFf (deepseek2) */
  nLayerDenseLead: number;
  /** the shared expert's output is scaled by σ(ffn_gate_inp_shexp·h) (qwen2moe, qwen35moe) or not (deepseek2) */
  sharedExpertGated: boolean;
  /** deepseek2: multi-head latent attention */
  mla?: MlaConfig;
  /** the FFN norm's tensor: blk.N.ffn_norm, or blk.N.post_attention_norm (gpt-oss) */
  ffnNormName: 'ffn_norm' | 'post_attention_norm';
  /** ffn_{gate,up,down}_exps.bias [rows, nExpert] added after each expert product (gpt-oss) */
  expertBiases: boolean;
  /** llama.cpp selects the output rows after the last layer instead of before its FFN (gpt-oss) */
  outputRowsAfterLastLayer: boolean;
  /** the experts' gated unit: silu(g) ⊙ u, or gpt-oss's clamped min(g, 7)·σ(1.702·min(g, 7)) ⊙ (clamp(u, ±7) + 1) */
  expertActivation: 'swiglu' | 'swiglu_oai';
  /** output.weight is absent: token_embd.weight is the LM head */
  tiedEmbeddings: boolean;
  /** rope.scaling.type when present and neither "none" nor "linear" (moet does not implement it: YaRN, longrope …) */
  ropeScalingType: string | null;
  /** the Qwen3.5 hybrid's extra hyperparameters (qwen35moe, qwen35 only; see Qwen35Config) */
  qwen35?: Qwen35Config;
}

/**
 * Hyperparameters of the Qwen3.5 / 3.6 hybrids (`qwen35moe`, `qwen35`): Gated DeltaNet layers
 * interleaved with gated full attention (shared/docs/qwen35moe.md). For these architectures
 * ModelConfig.nLayer is the trunk (block_count − nextn_predict_layers); nRot is the partial rotary
 * width; nFfExp / nExpert / nExpertUsed describe the routed experts of qwen35moe (0 for qwen35).
 */
export interface Qwen35Config {
  /** per trunk layer: true = Gated DeltaNet (recurrent), false = gated full attention */
  recurrent: boolean[];
  /** full_attention_interval (default 4); informational when attention.recurrent_layers is given */
  fullAttentionInterval: number;
  /** block_count as written, including multi-token-prediction blocks (not run by moet) */
  nLayerAll: number;
  /** nextn_predict_layers (default 0): MTP blocks appended after the trunk, skipped */
  nLayerNextn: number;
  /** ssm.conv_kernel: taps of the causal depthwise convolution */
  convKernel: number;
  /** ssm.state_size: head dim of the linear-attention K and V (S_k = S_v) */
  stateSize: number;
  /** ssm.group_count: linear Q/K heads (H_k) */
  nKHeads: number;
  /** ssm.time_step_rank: linear V heads (H_v), a multiple of H_k */
  nVHeads: number;
  /** ssm.inner_size = stateSize · nVHeads */
  innerSize: number;
  /** conv channels = 2·H_k·stateSize + innerSize (q, k, v) */
  convChannels: number;
  /** rope.dimension_sections (4 values; IMROPE: all equal for text, so it is partial NEOX RoPE) */
  ropeSections: number[];
  /** expert_shared_feed_forward_length (default feed_forward_length); 0 for qwen35 */
  nFfShexp: number;
}

/** Whether the config is one of the Qwen3.5 hybrids (qwen35moe, qwen35). */
export function isQwen35(c: ModelConfig): c is ModelConfig & { qwen35: Qwen35Config } {
  return c.qwen35 !== undefined;
}

type Metadata = Map<string, GGUFMetadataEntry>;

function toNumber(v: GGUFValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

/** A numeric key; a per-layer array is accepted when all its values are equal (like get_key_or_arr). */
function num(md: Metadata, key: string, arch: string): number | undefined {
  const e = md.get(key);
  if (!e) return undefined;
  if (Array.isArray(e.value)) {
    const vals = e.value.map((x) => toNumber(x));
    if (vals.length === 0 || vals.some((x) => x === undefined)) {
      throw new UnsupportedArchitectureError(`${arch}: metadata key ${key} is not a number or a non-empty array of numbers`);
    }
    if (vals.some((x) => x !== vals[0])) {
      throw new UnsupportedArchitectureError(`${arch}: per-layer values of ${key} differ; moet supports only uniform layers`);
    }
    return vals[0]!;
  }
  const n = toNumber(e.value);
  if (n === undefined) throw new UnsupportedArchitectureError(`${arch}: metadata key ${key} is not a number (type ${GGUFValueType[e.type]})`);
  return n;
}

function required(md: Metadata, key: string, arch: string): number {
  const n = num(md, key, arch);
  if (n === undefined) {
    throw new UnsupportedArchitectureError(`${arch}: required metadata key ${key} is missing; the file was not written by a known converter`);
  }
  return n;
}

function positiveInt(n: number, key: string, arch: string): number {
  if (!Number.isInteger(n) || n <= 0) throw new UnsupportedArchitectureError(`${arch}: ${key} must be a positive integer, got ${n}`);
  return n;
}

/**
 * Builds the ModelConfig of a qwen3moe, qwen3, qwen35moe or qwen35 GGUF.
 * @throws UnsupportedArchitectureError for another architecture (the message lists the supported
 *   ones), a missing required key (named in the message) or inconsistent values
 */
export function configFromGGUF(metadata: Metadata, tensors: Map<string, GGUFTensorInfo>): ModelConfig {
  const archValue = metadata.get('general.architecture')?.value;
  if (typeof archValue !== 'string') {
    throw new UnsupportedArchitectureError(
      `general.architecture is missing; supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
    );
  }
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(archValue)) {
    throw new UnsupportedArchitectureError(
      `architecture "${archValue}" is not supported; supported architectures: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
    );
  }
  const arch = archValue as Architecture;
  const k = (name: string) => `${arch}.${name}`;
  const int = (name: string) => positiveInt(required(metadata, k(name), arch), k(name), arch);

  const nLayer = int('block_count');
  const nEmbd = int('embedding_length');
  const nCtxTrain = int('context_length');
  const nHead = int('attention.head_count');
  const rmsEps = required(metadata, k('attention.layer_norm_rms_epsilon'), arch);
  const nHeadKv = positiveInt(num(metadata, k('attention.head_count_kv'), arch) ?? nHead, k('attention.head_count_kv'), arch);
  if (nHead % nHeadKv !== 0) {
    throw new UnsupportedArchitectureError(`${arch}: head_count ${nHead} is not a multiple of head_count_kv ${nHeadKv}`);
  }
  const headDimK = positiveInt(num(metadata, k('attention.key_length'), arch) ?? nEmbd / nHead, k('attention.key_length'), arch);
  const headDimV = positiveInt(num(metadata, k('attention.value_length'), arch) ?? nEmbd / nHead, k('attention.value_length'), arch);
  const nRot = positiveInt(num(metadata, k('rope.dimension_count'), arch) ?? headDimK, k('rope.dimension_count'), arch);
  if (nRot > headDimK || nRot % 2 !== 0) {
    throw new UnsupportedArchitectureError(`${arch}: rope.dimension_count ${nRot} must be even and at most key_length ${headDimK}`);
  }
  const ropeBase = num(metadata, k('rope.freq_base'), arch) ?? 10000;

  const scalingType = metadata.get(k('rope.scaling.type'))?.value;
  const scalingFactor = num(metadata, k('rope.scaling.factor'), arch);
  // linear and YaRN scaling are implemented (attention.ropeFreqScale, attention.yarn); any other type is reported here
  const ropeScalingType =
    typeof scalingType === 'string' && !['none', 'linear', 'yarn'].includes(scalingType) && scalingFactor !== undefined && scalingFactor !== 0 && scalingFactor !== 1
      ? scalingType
      : null;

  // Vocabulary: explicit key, else the token list, else the embedding's shape.
  let nVocab = num(metadata, k('vocab_size'), arch);
  if (nVocab === undefined) {
    const toks = metadata.get('tokenizer.ggml.tokens')?.value;
    if (Array.isArray(toks)) nVocab = toks.length;
  }
  if (nVocab === undefined) nVocab = tensors.get('token_embd.weight')?.shape[1];
  if (nVocab === undefined) {
    throw new UnsupportedArchitectureError(`${arch}: cannot tell the vocabulary size: no ${k('vocab_size')}, no tokenizer.ggml.tokens and no token_embd.weight`);
  }
  positiveInt(nVocab, 'vocabulary size', arch);

  const spec = ARCH_SPECS[arch];
  let nFf = num(metadata, k('feed_forward_length'), arch) ?? 0;
  let nExpert = 0;
  let nExpertUsed = 0;
  let nFfExp = 0;
  const expertCount = num(metadata, k('expert_count'), arch) ?? 0;
  const isDeepseek = arch === 'deepseek2';
  const ffnKind: FfnKind = spec ? (spec.ffn === 'by-expert-count' ? (expertCount > 0 ? 'moe' : 'dense') : spec.ffn) : arch === 'qwen35' ? 'dense' : 'moe+shared';
  if (ffnKind === 'dense') {
    nFf = int('feed_forward_length');
  } else {
    nExpert = int('expert_count');
    nExpertUsed = int('expert_used_count');
    if (nExpertUsed > nExpert) {
      throw new UnsupportedArchitectureError(`${arch}: expert_used_count ${nExpertUsed} exceeds expert_count ${nExpert}`);
    }
    if (spec?.ffExpDefault === 'ff') {
      nFfExp = int('feed_forward_length');
    } else {
      const ffExp = num(metadata, k('expert_feed_forward_length'), arch);
      if (ffExp === undefined && nFf === 0) {
        throw new UnsupportedArchitectureError(`${arch}: required metadata key ${k('expert_feed_forward_length')} is missing (and no feed_forward_length to derive it from)`);
      }
      nFfExp = positiveInt(ffExp ?? Math.floor(nFf / nExpertUsed), k('expert_feed_forward_length'), arch);
    }
  }
  const router: RouterSpec = routerConfig(metadata, arch, nExpert, nExpertUsed, spec ? spec.normalizeRouter : arch === 'qwen35moe', isDeepseek, !!spec?.gptOss);
  const shexp = num(metadata, k('expert_shared_feed_forward_length'), arch);
  let nFfShexp = ffnKind === 'moe+shared' ? positiveInt(shexp ?? nFf, k('expert_shared_feed_forward_length'), arch) : 0;
  let nLayerDenseLead = 0;
  let mla: MlaConfig | undefined;
  if (isDeepseek) {
    // deepseek2 (llama.cpp src/models/deepseek2.cpp): shared experts = expert_shared_count × the expert width, ungated
    const nShared = int('expert_shared_count');
    nFfShexp = nShared * nFfExp;
    nLayerDenseLead = num(metadata, k('leading_dense_block_count'), arch) ?? 0;
    if (!(Number.isInteger(nLayerDenseLead) && nLayerDenseLead >= 0 && nLayerDenseLead <= nLayer)) {
      throw new UnsupportedArchitectureError(`${arch}: leading_dense_block_count ${nLayerDenseLead} must be within 0..block_count ${nLayer}`);
    }
    if (nLayerDenseLead > 0) nFf = int('feed_forward_length');
    mla = mlaConfig(metadata, arch, nRot, headDimK, headDimV, nHeadKv, tensors);
    router.selectionBias = tensors.has(`blk.${nLayerDenseLead}.exp_probs_b.bias`);
  }

  // The block's variation points (the hybrids record their own blocks; their attention is Qwen3's).
  const has = (name: string) => tensors.has(name);
  const bias = spec?.qkvBias ?? 'none';
  const qkvBias = bias === 'required' || (bias === 'optional' && has('blk.0.attn_q.bias'));
  const rope = ropeScaling(metadata, arch, typeof scalingType === 'string' ? scalingType : 'linear', scalingFactor, nRot, ropeBase, nCtxTrain, isDeepseek);
  const ropeFreqScale = rope.freqScale;
  const attention: AttentionSpec = {
    rope: spec?.rope ?? (isDeepseek ? 'norm' : 'neox'),
    qkNorm: spec?.qkNorm ?? (isDeepseek ? 'none' : 'head'),
    qkvBias,
    outBias: spec?.outBias === 'required' || (spec?.outBias === 'optional' && has('blk.0.attn_output.bias')),
    // MLA: the scale of the uncompressed head (qk_nope + qk_rope), not of the cache row, times
    // deepseek2's YaRN mscale² (1 without YaRN)
    scale: Math.fround(Math.fround(rope.kqMscale * rope.kqMscale) / Math.fround(Math.sqrt(mla ? mla.qkNope + mla.qkRope : headDimK))),
    ropeFreqs: !!spec?.llamaExtras && has('rope_freqs.weight'),
    ropeFreqScale,
    yarn: rope.yarn,
    ...slidingWindows(metadata, arch, !!spec?.gptOss, nLayer, ropeBase),
  };
  if (spec && !spec.tiedAllowed && !has('output.weight')) {
    throw new ModelFormatError(`tensor output.weight is missing (${arch} has no tied embeddings; expected shape [${nEmbd}, ${nVocab}])`);
  }
  const perExpertTensors = ffnKind !== 'dense' && !has('blk.0.ffn_gate_exps.weight') && has('blk.0.ffn_gate.0.weight');

  const qwen35 = arch === 'qwen35moe' || arch === 'qwen35' ? qwen35Config(metadata, arch, nLayer, nFf, headDimK, headDimV, nRot) : undefined;

  return {
    arch, nLayer: qwen35 ? nLayer - qwen35.nLayerNextn : nLayer, nEmbd, nHead, nHeadKv, headDimK, headDimV, nRot, ropeBase, rmsEps, nVocab, nCtxTrain,
    nFf, nExpert, nExpertUsed, nFfExp,
    normTopKProb: router.normalize,
    tiedEmbeddings: !tensors.has('output.weight'),
    ropeScalingType,
    attention, ffnKind, nFfShexp, perExpertTensors, router, nLayerDenseLead,
    sharedExpertGated: ffnKind === 'moe+shared' && !isDeepseek,
    ffnNormName: spec?.gptOss ? 'post_attention_norm' : 'ffn_norm',
    expertBiases: !!spec?.gptOss,
    outputRowsAfterLastLayer: !!spec?.gptOss,
    expertActivation: spec?.gptOss ? 'swiglu_oai' : 'swiglu',
    ...(mla ? { mla } : {}),
    ...(qwen35 ? { qwen35 } : {}),
  };
}

/**
 * RoPE scaling as llama.cpp sets it up (llama-model.cpp load_hparams, llama-context.cpp cparams,
 * ggml_rope_yarn_corr_dims; deepseek2.cpp for its attention factor): the frequency scale
 * 1/rope.scaling.factor (a type of "none" disables it), and for YaRN the ramp, the cos/sin factor and
 * — deepseek2 only — the mscale its kq_scale is multiplied by twice. f32 throughout, as llama.cpp.
 */
function ropeScaling(
  md: Metadata, arch: Architecture, type: string, factorKey: number | undefined, nRot: number, base: number, nCtxTrain: number, deepseek: boolean,
): { freqScale: number; yarn: AttentionSpec['yarn']; kqMscale: number } {
  const f = Math.fround;
  const F01 = f(0.1); // C's 0.1f
  const key = (name: string) => `${arch}.${name}`;
  const freqScale = type === 'none' || !factorKey ? 1 : f(1 / factorKey);
  const ropeAttnFactor = f(num(md, key('rope.scaling.attn_factor'), arch) ?? 1);
  if (type !== 'yarn') return { freqScale, yarn: { extFactor: 0, corrDims: [0, 0], mscale: ropeAttnFactor }, kqMscale: 1 };
  const nCtxOrig = num(md, key('rope.scaling.original_context_length'), arch) ?? nCtxTrain;
  const [betaFast, betaSlow] = [32, 1];
  const corrDim = (beta: number) => f(f(nRot * f(Math.log(f(nCtxOrig / f(beta * 2 * f(Math.PI)))))) / f(2 * f(Math.log(base))));
  const corrDims: [number, number] = [Math.max(0, Math.floor(corrDim(betaFast))), Math.min(nRot - 1, Math.ceil(corrDim(betaSlow)))];
  const factor = f(1 / freqScale);
  const getMscale = (scale: number, m: number) => (scale <= 1 ? 1 : f(f(f(F01 * m) * f(Math.log(scale))) + 1));
  const logMulKey = deepseek ? num(md, key('rope.scaling.yarn_log_multiplier'), arch) : undefined;
  const logMul = logMulKey !== undefined ? f(logMulKey / F01) : 0; // llama.cpp cancels the converter's 0.1
  let attn: number;
  if (logMul !== 0) {
    const m = deepseek && logMul !== 1 ? logMul : 1;
    attn = f(getMscale(factor, m) / getMscale(factor, logMul));
  } else {
    attn = getMscale(factor, 1);
  }
  attn = f(attn * f(1 / f(1 + f(F01 * f(Math.log(factor))))));
  attn = f(attn * ropeAttnFactor);
  const lnInv = f(Math.log(f(1 / freqScale)));
  const mscale = f(attn * f(1 + f(F01 * lnInv)));
  // deepseek2.cpp: attn_factor_org = attn_factor · (1 + 0.1·ln(1/freq_scale)); mscale = attn_factor_org · (1 + 0.1·log_mul·ln(1/freq_scale))
  const kqMscale = deepseek ? f(mscale * f(1 + f(f(F01 * logMul) * lnInv))) : 1;
  return { freqScale, yarn: { extFactor: 1, corrDims, mscale }, kqMscale };
}

/**
 * gpt-oss's attention extras (llama.cpp openai-moe.cpp: load_swa_pattern(ml, 2)): the window,
 * which layers use it (attention.sliding_window_pattern as a per-layer array or a period n: layer
 * il slides when il mod n < n − 1; default 2), the sliding layers' rope base, and the sinks.
 */
function slidingWindows(md: Metadata, arch: Architecture, gptOss: boolean, nLayer: number, ropeBase: number): Pick<AttentionSpec, 'sinks' | 'slidingWindow' | 'swaLayers' | 'ropeBaseSwa'> {
  if (!gptOss) return { sinks: false, slidingWindow: 0, swaLayers: new Array<boolean>(nLayer).fill(false), ropeBaseSwa: ropeBase };
  const key = (name: string) => `${arch}.${name}`;
  const window = positiveInt(required(md, key('attention.sliding_window'), arch), key('attention.sliding_window'), arch);
  const pat = md.get(key('attention.sliding_window_pattern'))?.value;
  let swaLayers: boolean[];
  if (Array.isArray(pat)) {
    if (pat.length < nLayer) throw new UnsupportedArchitectureError(`${arch}: attention.sliding_window_pattern has ${pat.length} entries for ${nLayer} layers`);
    swaLayers = pat.slice(0, nLayer).map((x) => x === true || toNumber(x as GGUFValue) === 1);
  } else {
    const n = pat === undefined ? 2 : toNumber(pat as GGUFValue) ?? 2;
    swaLayers = Array.from({ length: nLayer }, (_, il) => n === 0 || il % n < n - 1);
  }
  return { sinks: true, slidingWindow: window, swaLayers, ropeBaseSwa: num(md, key('rope.freq_base_swa'), arch) ?? ropeBase };
}

/**
 * The router's keys (llama.cpp load_hparams / deepseek2's load_arch_hparams): expert_gating_func
 * (1 softmax, 2 sigmoid; deepseek2 files without it are V2: softmax), expert_weights_norm
 * (deepseek2; the other architectures fix it), expert_weights_scale, expert_group_count /
 * expert_group_used_count. Other architectures accept only what they implement.
 */
function routerConfig(md: Metadata, arch: Architecture, nExpert: number, k: number, normalize: boolean, deepseek: boolean, gptOss: boolean): RouterSpec {
  // gpt-oss: openai-moe.cpp passes LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX_WEIGHT whatever the file's
  // expert_gating_func says (its files write 3): the top-k of the biased logits, weights = softmax over those k
  if (gptOss) return { gating: 'softmax_weight', logitBias: true, normalize: false, selectionBias: false, groups: 0, groupsUsed: 0, scale: 1 };
  const key = (name: string) => `${arch}.${name}`;
  const gatingFunc = num(md, key('expert_gating_func'), arch) ?? 0;
  if (![0, 1, 2].includes(gatingFunc)) {
    throw new UnsupportedArchitectureError(`${arch}: expert_gating_func ${gatingFunc} is not implemented (1 softmax, 2 sigmoid)`);
  }
  const gating = gatingFunc === 2 ? 'sigmoid' : 'softmax';
  const scaleKey = num(md, key('expert_weights_scale'), arch);
  const scale = scaleKey === undefined || scaleKey === 0 ? 1 : scaleKey;
  const groups = num(md, key('expert_group_count'), arch) ?? 0;
  const groupsUsed = num(md, key('expert_group_used_count'), arch) ?? 0;
  if (!deepseek) {
    if (gating !== 'softmax') throw new UnsupportedArchitectureError(`${arch}: expert_gating_func ${gatingFunc} is not implemented for ${arch}`);
    if (scale !== 1) throw new UnsupportedArchitectureError(`${arch}: expert_weights_scale ${scale} is not implemented for ${arch} (only 1)`);
    if (groups > 1) throw new UnsupportedArchitectureError(`${arch}: expert groups are not implemented for ${arch}`);
    return { gating, logitBias: false, normalize, selectionBias: false, groups: 0, groupsUsed: 0, scale: 1 };
  }
  const norm = md.get(key('expert_weights_norm'))?.value;
  if (groups > 1) {
    if (!(Number.isInteger(groups) && nExpert % groups === 0 && groupsUsed >= 1 && groupsUsed < groups)) {
      throw new UnsupportedArchitectureError(`${arch}: expert_group_count ${groups} must divide expert_count ${nExpert}, with 1 ≤ expert_group_used_count ${groupsUsed} < ${groups}`);
    }
    if ((nExpert / groups) * groupsUsed < k) {
      throw new UnsupportedArchitectureError(`${arch}: ${groupsUsed} groups of ${nExpert / groups} experts cannot hold expert_used_count ${k}`);
    }
    if (nExpert / groups < 2) throw new UnsupportedArchitectureError(`${arch}: a group scores its two best experts; groups of ${nExpert / groups} are too small`);
  }
  return { gating, logitBias: false, normalize: norm === true || norm === 1, selectionBias: true, groups: groups > 1 ? groups : 0, groupsUsed: groups > 1 ? groupsUsed : 0, scale };
}

/** deepseek2's MLA geometry (MlaConfig). Only the absorbed form (attn_k_b / attn_v_b) is run. */
function mlaConfig(md: Metadata, arch: Architecture, nRot: number, headDimK: number, headDimV: number, nHeadKv: number, tensors: Map<string, GGUFTensorInfo>): MlaConfig {
  const key = (name: string) => `${arch}.${name}`;
  const kvLoraRank = positiveInt(required(md, key('attention.kv_lora_rank'), arch), key('attention.kv_lora_rank'), arch);
  const qLoraRank = num(md, key('attention.q_lora_rank'), arch) ?? 0;
  const kMla = num(md, key('attention.key_length_mla'), arch);
  const vMla = num(md, key('attention.value_length_mla'), arch);
  if (kMla === undefined || vMla === undefined) {
    const legacy = tensors.has('blk.0.attn_kv_b.weight');
    throw new UnsupportedArchitectureError(
      `${arch}: ${key('attention.key_length_mla')} / value_length_mla are missing` +
        (legacy ? ': this is an older conversion with attn_kv_b; moet runs the absorbed MLA form (attn_k_b / attn_v_b): re-convert it with a current convert_hf_to_gguf.py' : ''),
    );
  }
  const qkNope = kMla - nRot;
  if (!(qkNope >= 1)) throw new UnsupportedArchitectureError(`${arch}: key_length_mla ${kMla} must exceed rope.dimension_count ${nRot}`);
  if (headDimK !== kvLoraRank + nRot || headDimV !== kvLoraRank || nHeadKv !== 1) {
    throw new UnsupportedArchitectureError(
      `${arch}: MLA files have key_length = kv_lora_rank + rope dims (${kvLoraRank + nRot}), value_length = kv_lora_rank (${kvLoraRank}) and head_count_kv 1; got ${headDimK}, ${headDimV}, ${nHeadKv}`,
    );
  }
  return { qLoraRank, kvLoraRank, qkNope, qkRope: nRot, vHead: positiveInt(vMla, key('attention.value_length_mla'), arch) };
}

/** The qwen35moe / qwen35 keys (llama.cpp's load_arch_hparams for LLM_ARCH_QWEN35MOE / QWEN35). */
function qwen35Config(
  md: Metadata, arch: Architecture, nLayerAll: number, nFf: number, headDimK: number, headDimV: number, nRot: number,
): Qwen35Config {
  const k = (name: string) => `${arch}.${name}`;
  const int = (name: string) => positiveInt(required(md, k(name), arch), k(name), arch);
  if (headDimK !== headDimV) {
    throw new UnsupportedArchitectureError(`${arch}: attention.key_length ${headDimK} must equal value_length ${headDimV}`);
  }
  const sections = md.get(k('rope.dimension_sections'))?.value;
  if (!Array.isArray(sections) || sections.length < 4 || sections.some((x) => toNumber(x) === undefined)) {
    throw new UnsupportedArchitectureError(`${arch}: required metadata key ${k('rope.dimension_sections')} is missing or not an array of 4 numbers`);
  }
  const ropeSections = sections.slice(0, 4).map((x) => toNumber(x)!);
  const convKernel = int('ssm.conv_kernel');
  const innerSize = int('ssm.inner_size');
  const stateSize = int('ssm.state_size');
  const nVHeads = int('ssm.time_step_rank');
  const nKHeads = int('ssm.group_count');
  if (innerSize !== stateSize * nVHeads) {
    throw new UnsupportedArchitectureError(`${arch}: ssm.inner_size ${innerSize} must equal ssm.state_size ${stateSize} × ssm.time_step_rank ${nVHeads}`);
  }
  if (nVHeads % nKHeads !== 0) {
    throw new UnsupportedArchitectureError(`${arch}: ssm.time_step_rank ${nVHeads} must be a multiple of ssm.group_count ${nKHeads}`);
  }
  const nLayerNextn = num(md, k('nextn_predict_layers'), arch) ?? 0;
  if (!Number.isInteger(nLayerNextn) || nLayerNextn < 0 || nLayerNextn >= nLayerAll) {
    throw new UnsupportedArchitectureError(`${arch}: nextn_predict_layers ${nLayerNextn} must be below block_count ${nLayerAll}`);
  }
  const nTrunk = nLayerAll - nLayerNextn;
  const fullAttentionInterval = positiveInt(num(md, k('full_attention_interval'), arch) ?? 4, k('full_attention_interval'), arch);
  let recurrent: boolean[];
  const rl = md.get(k('attention.recurrent_layers'))?.value;
  if (Array.isArray(rl)) {
    if (rl.length < nTrunk) {
      throw new UnsupportedArchitectureError(`${arch}: attention.recurrent_layers has ${rl.length} entries for ${nTrunk} layers`);
    }
    recurrent = rl.slice(0, nTrunk).map((x) => x === true || toNumber(x as GGUFValue) === 1);
  } else if (rl !== undefined) {
    // a scalar applies to every layer (get_key_or_arr)
    recurrent = Array.from({ length: nTrunk }, () => rl === true || toNumber(rl) === 1);
  } else {
    recurrent = Array.from({ length: nTrunk }, (_, i) => (i + 1) % fullAttentionInterval !== 0);
  }
  if (nRot > headDimK) throw new UnsupportedArchitectureError(`${arch}: rope.dimension_count ${nRot} exceeds key_length ${headDimK}`);
  const isMoe = arch === 'qwen35moe';
  const shexp = num(md, k('expert_shared_feed_forward_length'), arch);
  const nFfShexp = isMoe ? positiveInt(shexp ?? nFf, k('expert_shared_feed_forward_length'), arch) : 0;
  return {
    recurrent, fullAttentionInterval, nLayerAll, nLayerNextn, convKernel, stateSize, nKHeads, nVHeads, innerSize,
    convChannels: 2 * nKHeads * stateSize + innerSize, ropeSections, nFfShexp,
  };
}

/** One tensor the architecture needs, with its ggml-order shape. */
export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** Every tensor the model needs, in file order, with its expected shape (ggml order, ne0 first). */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  if (isQwen35(c)) return expectedTensorsQwen35(c);
  if (c.mla) return expectedTensorsDeepseek2(c, c.mla);
  const out: ExpectedTensor[] = [{ name: 'token_embd.weight', shape: [c.nEmbd, c.nVocab] }];
  const at = c.attention;
  const q = c.nHead * c.headDimK;
  const kv = c.nHeadKv * c.headDimK;
  const v = c.nHeadKv * c.headDimV;
  if (at.ropeFreqs) out.push({ name: 'rope_freqs.weight', shape: [c.nRot / 2] });
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: b + 'attn_norm.weight', shape: [c.nEmbd] },
      { name: b + 'attn_q.weight', shape: [c.nEmbd, q] },
      { name: b + 'attn_k.weight', shape: [c.nEmbd, kv] },
      { name: b + 'attn_v.weight', shape: [c.nEmbd, v] },
    );
    if (at.qkvBias) out.push({ name: b + 'attn_q.bias', shape: [q] }, { name: b + 'attn_k.bias', shape: [kv] }, { name: b + 'attn_v.bias', shape: [v] });
    out.push({ name: b + 'attn_output.weight', shape: [c.nHead * c.headDimV, c.nEmbd] });
    if (at.outBias) out.push({ name: b + 'attn_output.bias', shape: [c.nEmbd] });
    if (at.sinks) out.push({ name: b + 'attn_sinks.weight', shape: [c.nHead] });
    if (at.qkNorm === 'head') out.push({ name: b + 'attn_q_norm.weight', shape: [c.headDimK] }, { name: b + 'attn_k_norm.weight', shape: [c.headDimK] });
    if (at.qkNorm === 'full') out.push({ name: b + 'attn_q_norm.weight', shape: [q] }, { name: b + 'attn_k_norm.weight', shape: [kv] });
    out.push({ name: b + c.ffnNormName + '.weight', shape: [c.nEmbd] });
    if (c.ffnKind === 'dense') {
      out.push(
        { name: b + 'ffn_gate.weight', shape: [c.nEmbd, c.nFf] },
        { name: b + 'ffn_up.weight', shape: [c.nEmbd, c.nFf] },
        { name: b + 'ffn_down.weight', shape: [c.nFf, c.nEmbd] },
      );
      continue;
    }
    out.push({ name: b + 'ffn_gate_inp.weight', shape: [c.nEmbd, c.nExpert] });
    if (c.router.logitBias) out.push({ name: b + 'ffn_gate_inp.bias', shape: [c.nExpert] });
    out.push(...expertTensors(c, i));
    if (c.expertBiases) {
      out.push(
        { name: b + 'ffn_gate_exps.bias', shape: [c.nFfExp, c.nExpert] },
        { name: b + 'ffn_up_exps.bias', shape: [c.nFfExp, c.nExpert] },
        { name: b + 'ffn_down_exps.bias', shape: [c.nEmbd, c.nExpert] },
      );
    }
    if (c.ffnKind === 'moe+shared') {
      out.push(
        { name: b + 'ffn_gate_inp_shexp.weight', shape: [c.nEmbd] },
        { name: b + 'ffn_gate_shexp.weight', shape: [c.nEmbd, c.nFfShexp] },
        { name: b + 'ffn_up_shexp.weight', shape: [c.nEmbd, c.nFfShexp] },
        { name: b + 'ffn_down_shexp.weight', shape: [c.nFfShexp, c.nEmbd] },
      );
    }
  }
  out.push({ name: 'output_norm.weight', shape: [c.nEmbd] });
  if (!c.tiedEmbeddings) out.push({ name: 'output.weight', shape: [c.nEmbd, c.nVocab] });
  return out;
}

/** deepseek2 (src/models/deepseek2.cpp load_arch_tensors), absorbed MLA form; MTP blocks are not listed. */
function expectedTensorsDeepseek2(c: ModelConfig, m: MlaConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = [{ name: 'token_embd.weight', shape: [c.nEmbd, c.nVocab] }];
  const kHead = m.qkNope + m.qkRope;
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push({ name: b + 'attn_norm.weight', shape: [c.nEmbd] });
    if (m.qLoraRank > 0) {
      out.push(
        { name: b + 'attn_q_a.weight', shape: [c.nEmbd, m.qLoraRank] },
        { name: b + 'attn_q_a_norm.weight', shape: [m.qLoraRank] },
        { name: b + 'attn_q_b.weight', shape: [m.qLoraRank, c.nHead * kHead] },
      );
    } else {
      out.push({ name: b + 'attn_q.weight', shape: [c.nEmbd, c.nHead * kHead] });
    }
    out.push(
      { name: b + 'attn_kv_a_mqa.weight', shape: [c.nEmbd, m.kvLoraRank + m.qkRope] },
      { name: b + 'attn_kv_a_norm.weight', shape: [m.kvLoraRank] },
      { name: b + 'attn_k_b.weight', shape: [m.qkNope, m.kvLoraRank, c.nHead] },
      { name: b + 'attn_v_b.weight', shape: [m.kvLoraRank, m.vHead, c.nHead] },
      { name: b + 'attn_output.weight', shape: [c.nHead * m.vHead, c.nEmbd] },
      { name: b + 'ffn_norm.weight', shape: [c.nEmbd] },
    );
    if (i < c.nLayerDenseLead) {
      out.push(
        { name: b + 'ffn_gate.weight', shape: [c.nEmbd, c.nFf] },
        { name: b + 'ffn_up.weight', shape: [c.nEmbd, c.nFf] },
        { name: b + 'ffn_down.weight', shape: [c.nFf, c.nEmbd] },
      );
      continue;
    }
    out.push({ name: b + 'ffn_gate_inp.weight', shape: [c.nEmbd, c.nExpert] });
    // exp_probs_b: optional (V2 has none, V3 / R1 do); when the first MoE layer has it, every one must
    if (c.router.selectionBias) out.push({ name: b + 'exp_probs_b.bias', shape: [c.nExpert] });
    out.push(...expertTensors(c, i));
    out.push(
      { name: b + 'ffn_gate_shexp.weight', shape: [c.nEmbd, c.nFfShexp] },
      { name: b + 'ffn_up_shexp.weight', shape: [c.nEmbd, c.nFfShexp] },
      { name: b + 'ffn_down_shexp.weight', shape: [c.nFfShexp, c.nEmbd] },
    );
  }
  out.push({ name: 'output_norm.weight', shape: [c.nEmbd] });
  if (!c.tiedEmbeddings) out.push({ name: 'output.weight', shape: [c.nEmbd, c.nVocab] });
  return out;
}

/** The FFN of layer il: dense for deepseek2's leading dense layers, else the model's FfnKind. */
export function layerFfnKind(c: ModelConfig, il: number): FfnKind {
  return il < c.nLayerDenseLead ? 'dense' : c.ffnKind;
}

/**
 * The routed experts of layer il: the stacks ffn_{gate,up,down}_exps [.., .., nExpert], or, in
 * Mixtral's older layout (perExpertTensors), one matrix per expert blk.il.ffn_{gate,up,down}.E.weight.
 */
export function expertTensors(c: ModelConfig, il: number): ExpectedTensor[] {
  const b = `blk.${il}.`;
  if (!c.perExpertTensors) {
    return [
      { name: b + 'ffn_gate_exps.weight', shape: [c.nEmbd, c.nFfExp, c.nExpert] },
      { name: b + 'ffn_up_exps.weight', shape: [c.nEmbd, c.nFfExp, c.nExpert] },
      { name: b + 'ffn_down_exps.weight', shape: [c.nFfExp, c.nEmbd, c.nExpert] },
    ];
  }
  const out: ExpectedTensor[] = [];
  for (const [name, shape] of [['gate', [c.nEmbd, c.nFfExp]], ['up', [c.nEmbd, c.nFfExp]], ['down', [c.nFfExp, c.nEmbd]]] as const) {
    for (let e = 0; e < c.nExpert; e++) out.push({ name: `${b}ffn_${name}.${e}.weight`, shape: [...shape] });
  }
  return out;
}

/** The names of layer il's expert tensors for `which` (one stack, or nExpert matrices in the older layout). */
export function expertTensorNames(c: ModelConfig, il: number, which: 'gate' | 'up' | 'down'): string[] {
  if (!c.perExpertTensors) return [`blk.${il}.ffn_${which}_exps.weight`];
  return Array.from({ length: c.nExpert }, (_, e) => `blk.${il}.ffn_${which}.${e}.weight`);
}

/**
 * The tensors of a qwen35moe / qwen35 trunk (shared/docs/qwen35moe.md): per layer attn_norm,
 * post_attention_norm, the mixer's tensors (Gated DeltaNet or gated attention), then the FFN (routed
 * experts + gated shared expert, or dense). MTP blocks (blk.nLayer and above) are not listed.
 */
function expectedTensorsQwen35(c: ModelConfig & { qwen35: Qwen35Config }): ExpectedTensor[] {
  const h = c.qwen35;
  const out: ExpectedTensor[] = [{ name: 'token_embd.weight', shape: [c.nEmbd, c.nVocab] }];
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push({ name: b + 'attn_norm.weight', shape: [c.nEmbd] }, { name: b + 'post_attention_norm.weight', shape: [c.nEmbd] });
    if (h.recurrent[i]) {
      out.push(
        { name: b + 'attn_qkv.weight', shape: [c.nEmbd, h.convChannels] },
        { name: b + 'attn_gate.weight', shape: [c.nEmbd, h.innerSize] },
        { name: b + 'ssm_conv1d.weight', shape: [h.convKernel, h.convChannels] },
        { name: b + 'ssm_dt.bias', shape: [h.nVHeads] },
        { name: b + 'ssm_a', shape: [h.nVHeads] },
        { name: b + 'ssm_beta.weight', shape: [c.nEmbd, h.nVHeads] },
        { name: b + 'ssm_alpha.weight', shape: [c.nEmbd, h.nVHeads] },
        { name: b + 'ssm_norm.weight', shape: [h.stateSize] },
        { name: b + 'ssm_out.weight', shape: [h.innerSize, c.nEmbd] },
      );
    } else {
      out.push(
        { name: b + 'attn_q.weight', shape: [c.nEmbd, 2 * c.nHead * c.headDimK] },
        { name: b + 'attn_k.weight', shape: [c.nEmbd, c.nHeadKv * c.headDimK] },
        { name: b + 'attn_v.weight', shape: [c.nEmbd, c.nHeadKv * c.headDimV] },
        { name: b + 'attn_output.weight', shape: [c.nHead * c.headDimV, c.nEmbd] },
        { name: b + 'attn_q_norm.weight', shape: [c.headDimK] },
        { name: b + 'attn_k_norm.weight', shape: [c.headDimK] },
      );
    }
    if (c.arch === 'qwen35moe') {
      out.push(
        { name: b + 'ffn_gate_inp.weight', shape: [c.nEmbd, c.nExpert] },
        { name: b + 'ffn_gate_exps.weight', shape: [c.nEmbd, c.nFfExp, c.nExpert] },
        { name: b + 'ffn_up_exps.weight', shape: [c.nEmbd, c.nFfExp, c.nExpert] },
        { name: b + 'ffn_down_exps.weight', shape: [c.nFfExp, c.nEmbd, c.nExpert] },
        { name: b + 'ffn_gate_inp_shexp.weight', shape: [c.nEmbd] },
        { name: b + 'ffn_gate_shexp.weight', shape: [c.nEmbd, h.nFfShexp] },
        { name: b + 'ffn_up_shexp.weight', shape: [c.nEmbd, h.nFfShexp] },
        { name: b + 'ffn_down_shexp.weight', shape: [h.nFfShexp, c.nEmbd] },
      );
    } else {
      out.push(
        { name: b + 'ffn_gate.weight', shape: [c.nEmbd, c.nFf] },
        { name: b + 'ffn_up.weight', shape: [c.nEmbd, c.nFf] },
        { name: b + 'ffn_down.weight', shape: [c.nFf, c.nEmbd] },
      );
    }
  }
  out.push({ name: 'output_norm.weight', shape: [c.nEmbd] });
  if (!c.tiedEmbeddings) out.push({ name: 'output.weight', shape: [c.nEmbd, c.nVocab] });
  return out;
}

/** Shape equality ignoring trailing 1s (ggml pads shapes with 1). */
function sameShape(a: readonly number[], b: readonly number[]): boolean {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if ((a[i] ?? 1) !== (b[i] ?? 1)) return false;
  return true;
}

/**
 * Looks up one expected tensor and checks its shape.
 * @throws ModelFormatError naming the tensor when it is missing or has another shape
 */
export function checkTensor(tensors: Map<string, GGUFTensorInfo>, expected: ExpectedTensor): GGUFTensorInfo {
  const t = tensors.get(expected.name);
  if (!t) throw new ModelFormatError(`tensor ${expected.name} is missing (expected shape [${expected.shape.join(', ')}])`);
  if (!sameShape(t.shape, expected.shape)) {
    throw new ModelFormatError(
      `tensor ${expected.name} has shape [${t.shape.join(', ')}], expected [${expected.shape.join(', ')}]`,
    );
  }
  return t;
}

/**
 * Checks that every tensor the model needs is present with the right shape.
 * @throws ModelFormatError naming the first tensor that is missing or mis-shaped
 */
export function validateTensors(c: ModelConfig, tensors: Map<string, GGUFTensorInfo>): void {
  for (const e of expectedTensors(c)) checkTensor(tensors, e);
}
