// Tiny random qwen3moe / qwen3 models built in memory as GGUF bytes, for the CPU tests.
import { parseGGUFHeader } from '../../gguf/reader.js';
import { quantize } from '../../gguf/quants.js';
import { GGMLType, type GGUFMetadataEntry, type GGUFTensorInfo } from '../../gguf/types.js';
import { encodeGGUF, kv, type GGUFWriteTensor } from '../../gguf/writer.js';
import type { GGUFTensorSource } from '../../src/cpu/backend.js';
import { mulberry32 as rng } from '../helpers/random.js';

/** Deterministic PRNG (mulberry32), uniform in [0, 1). */
export { rng };

export function randomArray(n: number, rand: () => number, scale = 1, offset = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = offset + (rand() * 2 - 1) * scale;
  return a;
}

export interface TinyOptions {
  arch?: 'qwen3moe' | 'qwen3';
  /** type of the 2-D/3-D matrices (norms and the router stay F32) */
  type?: GGMLType;
  tied?: boolean;
  seed?: number;
  nLayer?: number;
  nEmbd?: number;
  nHead?: number;
  nHeadKv?: number;
  headDim?: number;
  nRot?: number;
  nVocab?: number;
  nExpert?: number;
  nExpertUsed?: number;
  nFfExp?: number;
  nFf?: number;
  /** drop or replace tensors before encoding */
  mutate?: (tensors: GGUFWriteTensor[]) => GGUFWriteTensor[];
}

export interface TinyModel {
  bytes: Uint8Array;
  metadata: Map<string, GGUFMetadataEntry>;
  tensorByName: Map<string, GGUFTensorInfo>;
  /** the f32 values each tensor was built from (before quantization) */
  values: Map<string, Float32Array>;
  source: GGUFTensorSource;
}

export async function buildTinyModel(o: TinyOptions = {}): Promise<TinyModel> {
  const arch = o.arch ?? 'qwen3moe';
  const type = o.type ?? GGMLType.F32;
  const nLayer = o.nLayer ?? 2;
  const nEmbd = o.nEmbd ?? 64;
  const nHead = o.nHead ?? 4;
  const nHeadKv = o.nHeadKv ?? 2;
  const hd = o.headDim ?? 24;
  const nVocab = o.nVocab ?? 50;
  const nExpert = o.nExpert ?? 6;
  const nExpertUsed = o.nExpertUsed ?? 3;
  const nFfExp = o.nFfExp ?? 32;
  const nFf = o.nFf ?? 96;
  const rand = rng(o.seed ?? 1);

  const md: GGUFMetadataEntry[] = [
    kv.str('general.architecture', arch),
    kv.u32(`${arch}.block_count`, nLayer),
    kv.u32(`${arch}.context_length`, 256),
    kv.u32(`${arch}.embedding_length`, nEmbd),
    kv.u32(`${arch}.feed_forward_length`, nFf),
    kv.u32(`${arch}.attention.head_count`, nHead),
    kv.u32(`${arch}.attention.head_count_kv`, nHeadKv),
    kv.u32(`${arch}.attention.key_length`, hd),
    kv.u32(`${arch}.attention.value_length`, hd),
    kv.f32(`${arch}.rope.freq_base`, 10000),
    kv.f32(`${arch}.attention.layer_norm_rms_epsilon`, 1e-6),
    kv.strs('tokenizer.ggml.tokens', Array.from({ length: nVocab }, (_, i) => `t${i}`)),
  ];
  if (o.nRot !== undefined) md.push(kv.u32(`${arch}.rope.dimension_count`, o.nRot));
  if (arch === 'qwen3moe') {
    md.push(kv.u32(`${arch}.expert_count`, nExpert), kv.u32(`${arch}.expert_used_count`, nExpertUsed),
      kv.u32(`${arch}.expert_feed_forward_length`, nFfExp));
  }

  const values = new Map<string, Float32Array>();
  let tensors: GGUFWriteTensor[] = [];
  const add = (name: string, shape: number[], t: GGMLType, v: Float32Array) => {
    values.set(name, v);
    tensors.push({ name, shape, type: t, data: t === GGMLType.F32 ? new Uint8Array(v.buffer) : quantize(t, v) });
  };
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const matrix = (name: string, shape: number[], t = type) => add(name, shape, t, randomArray(count(shape), rand, 1 / Math.sqrt(shape[0]!)));
  const norm = (name: string, n: number) => add(name, [n], GGMLType.F32, randomArray(n, rand, 0.2, 1));

  matrix('token_embd.weight', [nEmbd, nVocab]);
  for (let i = 0; i < nLayer; i++) {
    const b = `blk.${i}.`;
    norm(b + 'attn_norm.weight', nEmbd);
    matrix(b + 'attn_q.weight', [nEmbd, nHead * hd]);
    matrix(b + 'attn_k.weight', [nEmbd, nHeadKv * hd]);
    matrix(b + 'attn_v.weight', [nEmbd, nHeadKv * hd]);
    matrix(b + 'attn_output.weight', [nHead * hd, nEmbd]);
    norm(b + 'attn_q_norm.weight', hd);
    norm(b + 'attn_k_norm.weight', hd);
    norm(b + 'ffn_norm.weight', nEmbd);
    if (arch === 'qwen3moe') {
      add(b + 'ffn_gate_inp.weight', [nEmbd, nExpert], GGMLType.F32, randomArray(nEmbd * nExpert, rand, 4 / Math.sqrt(nEmbd)));
      matrix(b + 'ffn_gate_exps.weight', [nEmbd, nFfExp, nExpert]);
      matrix(b + 'ffn_up_exps.weight', [nEmbd, nFfExp, nExpert]);
      matrix(b + 'ffn_down_exps.weight', [nFfExp, nEmbd, nExpert]);
    } else {
      matrix(b + 'ffn_gate.weight', [nEmbd, nFf]);
      matrix(b + 'ffn_up.weight', [nEmbd, nFf]);
      matrix(b + 'ffn_down.weight', [nFf, nEmbd]);
    }
  }
  norm('output_norm.weight', nEmbd);
  if (!o.tied) matrix('output.weight', [nEmbd, nVocab]);
  if (o.mutate) tensors = o.mutate(tensors);

  const bytes = await encodeGGUF(md, tensors);
  const header = parseGGUFHeader(bytes);
  return {
    bytes,
    metadata: header.metadata,
    tensorByName: header.tensorByName,
    values,
    source: {
      tensorByName: header.tensorByName,
      readTensor: async (t) => bytes.slice(t.offset, t.offset + t.byteLength),
    },
  };
}
