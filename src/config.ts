// ModelConfig: the hyperparameters of a model, read from GGUF metadata with the defaults llama.cpp
// applies (src/llama-model.cpp load_hparams), plus the tensors each architecture expects.
import { GGUFValueType, type GGUFMetadataEntry, type GGUFTensorInfo, type GGUFValue } from '../gguf/types.js';
import { ModelFormatError, UnsupportedArchitectureError } from './errors.js';

/** Architectures (`general.architecture`) moet runs. */
export const SUPPORTED_ARCHITECTURES = ['qwen3moe', 'qwen3', 'qwen35moe', 'qwen35'] as const;
export type Architecture = (typeof SUPPORTED_ARCHITECTURES)[number];

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
  /** renormalize the selected experts' probabilities (qwen3moe: always) */
  normTopKProb: boolean;
  /** output.weight is absent: token_embd.weight is the LM head */
  tiedEmbeddings: boolean;
  /** rope.scaling.type when present and not "none" (moet does not implement rope scaling yet) */
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
  const ropeScalingType =
    typeof scalingType === 'string' && scalingType !== 'none' && scalingFactor !== undefined && scalingFactor !== 0 && scalingFactor !== 1
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

  let nFf = num(metadata, k('feed_forward_length'), arch) ?? 0;
  let nExpert = 0;
  let nExpertUsed = 0;
  let nFfExp = 0;
  if (arch === 'qwen3' || arch === 'qwen35') {
    nFf = int('feed_forward_length');
  } else {
    nExpert = int('expert_count');
    nExpertUsed = int('expert_used_count');
    if (nExpertUsed > nExpert) {
      throw new UnsupportedArchitectureError(`${arch}: expert_used_count ${nExpertUsed} exceeds expert_count ${nExpert}`);
    }
    const ffExp = num(metadata, k('expert_feed_forward_length'), arch);
    if (ffExp === undefined && nFf === 0) {
      throw new UnsupportedArchitectureError(`${arch}: required metadata key ${k('expert_feed_forward_length')} is missing (and no feed_forward_length to derive it from)`);
    }
    nFfExp = positiveInt(ffExp ?? Math.floor(nFf / nExpertUsed), k('expert_feed_forward_length'), arch);
  }

  const qwen35 = arch === 'qwen35moe' || arch === 'qwen35' ? qwen35Config(metadata, arch, nLayer, nFf, headDimK, headDimV, nRot) : undefined;

  return {
    arch, nLayer: qwen35 ? nLayer - qwen35.nLayerNextn : nLayer, nEmbd, nHead, nHeadKv, headDimK, headDimV, nRot, ropeBase, rmsEps, nVocab, nCtxTrain,
    nFf, nExpert, nExpertUsed, nFfExp,
    normTopKProb: arch === 'qwen3moe' || arch === 'qwen35moe',
    tiedEmbeddings: !tensors.has('output.weight'),
    ropeScalingType,
    ...(qwen35 ? { qwen35 } : {}),
  };
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
  const out: ExpectedTensor[] = [{ name: 'token_embd.weight', shape: [c.nEmbd, c.nVocab] }];
  const q = c.nHead * c.headDimK;
  const kv = c.nHeadKv * c.headDimK;
  const v = c.nHeadKv * c.headDimV;
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}.`;
    out.push(
      { name: b + 'attn_norm.weight', shape: [c.nEmbd] },
      { name: b + 'attn_q.weight', shape: [c.nEmbd, q] },
      { name: b + 'attn_k.weight', shape: [c.nEmbd, kv] },
      { name: b + 'attn_v.weight', shape: [c.nEmbd, v] },
      { name: b + 'attn_output.weight', shape: [c.nHead * c.headDimV, c.nEmbd] },
      { name: b + 'attn_q_norm.weight', shape: [c.headDimK] },
      { name: b + 'attn_k_norm.weight', shape: [c.headDimK] },
      { name: b + 'ffn_norm.weight', shape: [c.nEmbd] },
    );
    if (c.arch === 'qwen3moe') {
      out.push(
        { name: b + 'ffn_gate_inp.weight', shape: [c.nEmbd, c.nExpert] },
        { name: b + 'ffn_gate_exps.weight', shape: [c.nEmbd, c.nFfExp, c.nExpert] },
        { name: b + 'ffn_up_exps.weight', shape: [c.nEmbd, c.nFfExp, c.nExpert] },
        { name: b + 'ffn_down_exps.weight', shape: [c.nFfExp, c.nEmbd, c.nExpert] },
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
