// The layers of the Qwen3.5 hybrids (qwen35moe, qwen35) on the GPU, as loadWeights (weights.ts)
// uploads them. Matrices keep their GGUF bytes; two layouts differ from the file:
//
//   attn_q      rows permuted at load: the file interleaves per head [query D | gate D]; on the GPU
//               the rows are [query of every head | gate of every head], so one matvec writes q
//               (contiguous heads, as the attention kernels read them) and the gate beside it.
//   projections that share an input and a type are fused by concatenating their rows: a DeltaNet
//               layer's attn_qkv | attn_gate | ssm_beta | ssm_alpha, the shared expert's gate | up.
//               Each Projection says where its rows land in the shared output row.
//
// Tensors one fused kernel reads together share a buffer (weights.ts header): gated attention's
// Wq (permuted) | Wk | Wv, the routed experts' gate | up, the dense FFN's gate | up.
import type { GGMLType } from '../../gguf/types.js';
import type { ModelConfig, Qwen35Config } from '../config.js';
import type { WeightTensor } from '../runtime/buffers.js';
import type { GpuDenseWeights, GpuMoeWeights, TensorLoader } from './weights.js';

/** One matrix of a fused projection: y[offset .. offset + w.rows) of the shared output row = w·x. */
export interface Projection {
  w: WeightTensor;
  /** first output column it writes */
  offset: number;
}

/** Gated full attention (shared/docs/qwen35moe.md "Gated attention"). */
export interface GpuGatedAttentionWeights {
  kind: 'attention';
  /** attn_q [E, 2·nHead·D], rows permuted to [query heads | gate heads] */
  wq: WeightTensor;
  wk: WeightTensor; // attn_k [E, nHeadKv·D]
  wv: WeightTensor; // attn_v [E, nHeadKv·D]
  wo: WeightTensor; // attn_output [nHead·D, E]
  qNorm: GPUBuffer; // f32 [D]
  kNorm: GPUBuffer; // f32 [D]
}

/** Gated DeltaNet (shared/docs/qwen35moe.md "Gated DeltaNet"). C conv channels, V = H_v·d. */
export interface GpuDeltaNetWeights {
  kind: 'deltanet';
  /** attn_qkv | attn_gate | ssm_beta | ssm_alpha: output row [qkv C | z V | β H_v | α H_v] */
  proj: Projection[];
  conv: GPUBuffer; // ssm_conv1d f32 [C, K]
  dtBias: GPUBuffer; // ssm_dt.bias f32 [H_v]
  a: GPUBuffer; // ssm_a f32 [H_v] (negative)
  norm: GPUBuffer; // ssm_norm f32 [d]
  wOut: WeightTensor; // ssm_out [V, E]
}

/** The shared expert with its scalar sigmoid gate (qwen35moe, qwen2moe). */
export interface GpuSharedExpertWeights {
  /** ffn_gate_shexp | ffn_up_shexp: output row [gate F | up F] */
  gateUp: Projection[];
  gateInp: GPUBuffer | null; // ffn_gate_inp_shexp f32 [E]; null: ungated (deepseek2)
  down: WeightTensor; // ffn_down_shexp [F, E]
}

export interface GpuQwen35Layer {
  attnNorm: GPUBuffer; // f32 [E]
  postAttnNorm: GPUBuffer; // f32 [E]
  mixer: GpuGatedAttentionWeights | GpuDeltaNetWeights;
  /** routed experts (qwen35moe, as qwen3moe) or the dense SwiGLU (qwen35) */
  ffn: GpuMoeWeights | GpuDenseWeights;
  /** qwen35moe only */
  shared?: GpuSharedExpertWeights;
}

/** Row widths of the fused DeltaNet projection output: [qkv C | z V | β H_v | α H_v]. */
export function deltaNetProjWidth(h: Qwen35Config): number {
  return h.convChannels + h.innerSize + 2 * h.nVHeads;
}

/**
 * Projections sharing one input: consecutive tensors of the same type are uploaded as one weight
 * (rows concatenated); each gets the offset of its rows in the shared output row.
 */
export async function fusedProjections(t: TensorLoader, label: string, names: string[]): Promise<Projection[]> {
  const rowsOf = (n: string) => t.info(n).shape.slice(1).reduce((a, b) => a * b, 1);
  const out: Projection[] = [];
  let offset = 0;
  let group: string[] = [];
  let groupType: GGMLType | undefined;
  let groupOffset = 0;
  const flush = async () => {
    if (!group.length) return;
    const w = group.length === 1 ? await t.matrix(group[0]!) : await t.rows(`${label}(${group.join('|')})`, group.map((name) => ({ name, firstRow: 0, nRows: rowsOf(name) })));
    out.push({ w, offset: groupOffset });
    group = [];
  };
  for (const n of names) {
    const ty = t.info(n).type;
    if (group.length && ty !== groupType) await flush();
    if (!group.length) {
      groupType = ty;
      groupOffset = offset;
    }
    group.push(n);
    offset += rowsOf(n);
  }
  await flush();
  return out;
}

/** Uploads layer i of a qwen35moe / qwen35 trunk. */
export async function loadQwen35Layer(t: TensorLoader, c: ModelConfig & { qwen35: Qwen35Config }, i: number): Promise<GpuQwen35Layer> {
  const b = `blk.${i}.`;
  const attnNorm = await t.vector(b + 'attn_norm.weight');
  const postAttnNorm = await t.vector(b + 'post_attention_norm.weight');
  let mixer: GpuGatedAttentionWeights | GpuDeltaNetWeights;
  if (c.qwen35.recurrent[i]) {
    mixer = {
      kind: 'deltanet',
      proj: await fusedProjections(t, b + 'deltanet_in', [b + 'attn_qkv.weight', b + 'attn_gate.weight', b + 'ssm_beta.weight', b + 'ssm_alpha.weight']),
      conv: await t.vector(b + 'ssm_conv1d.weight'),
      dtBias: await t.vector(b + 'ssm_dt.bias'),
      a: await t.vector(b + 'ssm_a'),
      norm: await t.vector(b + 'ssm_norm.weight'),
      wOut: await t.matrix(b + 'ssm_out.weight'),
    };
  } else {
    const D = c.headDimK;
    const q = b + 'attn_q.weight';
    const heads = Array.from({ length: c.nHead }, (_, h) => h);
    // per head [query D | gate D] in the file → [query heads | gate heads]; Wq, Wk, Wv co-located
    // (one buffer) when their types agree and they fit one binding
    const [wq, wk, wv] = (await t.group([
      { label: q, pieces: [...heads.map((h) => ({ name: q, firstRow: 2 * h * D, nRows: D })), ...heads.map((h) => ({ name: q, firstRow: 2 * h * D + D, nRows: D }))] },
      b + 'attn_k.weight',
      b + 'attn_v.weight',
    ])) as [WeightTensor, WeightTensor, WeightTensor];
    mixer = {
      kind: 'attention',
      wq,
      wk,
      wv,
      wo: await t.matrix(b + 'attn_output.weight'),
      qNorm: await t.vector(b + 'attn_q_norm.weight'),
      kNorm: await t.vector(b + 'attn_k_norm.weight'),
    };
  }
  if (c.arch === 'qwen35moe') {
    const router = await t.matrix(b + 'ffn_gate_inp.weight');
    const ffn: GpuMoeWeights = { kind: 'moe', router, ...(await t.experts(i)) };
    const shared: GpuSharedExpertWeights = {
      gateUp: await fusedProjections(t, b + 'shexp', [b + 'ffn_gate_shexp.weight', b + 'ffn_up_shexp.weight']),
      gateInp: await t.vector(b + 'ffn_gate_inp_shexp.weight'),
      down: await t.matrix(b + 'ffn_down_shexp.weight'),
    };
    return { attnNorm, postAttnNorm, mixer, ffn, shared };
  }
  const [gate, up] = await t.pair(b + 'ffn_gate.weight', b + 'ffn_up.weight');
  const ffn: GpuDenseWeights = { kind: 'dense', gate, up, down: await t.matrix(b + 'ffn_down.weight') };
  return { attnNorm, postAttnNorm, mixer, ffn };
}
