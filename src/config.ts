// ModelConfig: the hyperparameters of a model, read from GGUF metadata with the defaults llama.cpp
// applies (src/llama-model.cpp load_hparams), plus the tensors each architecture expects.
import { GGUFValueType, type GGUFMetadataEntry, type GGUFTensorInfo, type GGUFValue } from '../gguf/types.js';
import { ModelFormatError, UnsupportedArchitectureError } from './errors.js';

/** Architectures (`general.architecture`) moet runs. */
export const SUPPORTED_ARCHITECTURES = ['qwen3moe', 'qwen3'] as const;
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
 * Builds the ModelConfig of a qwen3moe or qwen3 GGUF.
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
  if (arch === 'qwen3') {
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

  return {
    arch, nLayer, nEmbd, nHead, nHeadKv, headDimK, headDimV, nRot, ropeBase, rmsEps, nVocab, nCtxTrain,
    nFf, nExpert, nExpertUsed, nFfExp,
    normTopKProb: arch === 'qwen3moe',
    tiedEmbeddings: !tensors.has('output.weight'),
    ropeScalingType,
  };
}

/** One tensor the architecture needs, with its ggml-order shape. */
export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** Every tensor the model needs, in file order, with its expected shape (ggml order, ne0 first). */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
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
