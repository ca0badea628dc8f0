// Weight loading for the WebGPU backend: every tensor streamed from the GGUF file to GPU buffers
// through two reused host staging buffers, bytes kept exactly as in the file (the kernels dequantize).
//
//   file ──readTensor(chunk k+1)──▶ staging B      (libuv's thread pool, while…)
//        staging A (chunk k) ──queue.writeBuffer──▶ GPU buffer at an offset   (…this thread copies)
//
// Host memory stays bounded whatever the model size: two staging chunks (default 16 MiB each) plus
// what Dawn copies internally for writeBuffer, which is released by waiting for the queue every
// `syncBytes` (default 64 MiB).
//
// Layout. A weight is a list of parts (runtime/buffers.ts WeightPart: rows [firstRow, +nRows) at a
// byte offset of a buffer, bound through partBinding). Tensors larger than one binding
// (maxStorageBufferBindingSize, or the maxPartBytes option) are split along rows, expert stacks
// only on expert boundaries so the MoE kernels find every expert whole in one part. Tensors that
// one fused kernel reads together are co-located, because WGSL cannot choose among bindings:
//
//   Wq | Wk | Wv       one buffer, at 256-aligned offsets (coLocatedLayout), one part each, when the
//                      three have one type and fit one binding; otherwise the longest prefix that
//                      does (Q4_K_M: V is Q6_K in half the layers → Wq | Wk, V alone). Qwen3.5's
//                      gated attention likewise, with Wq's rows permuted (qwen35-weights.ts).
//   gate | up          expert stacks (ffn_gate_exps, ffn_up_exps) and dense FFNs of one type and
//                      shape: buffer i holds the SAME rows (whole experts) of both, gate at 0 and
//                      up at the next 256-aligned offset, as many experts as fit one binding
//                      together. Unsplit, coLocated(gate, up) holds; split, part i of each still
//                      shares buffer i, so a fused kernel can run part by part.
//
// Every other tensor gets buffers of its own at offset 0. The layout changes no tensor's bytes or
// WeightTensor fields; it adds at most 255 bytes of alignment padding per co-located part. Each
// buffer is listed once in GpuWeights.buffers (freeWeights destroys them).
import { dequantize } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName, rowBytes, type GGUFTensorInfo } from '../../gguf/types.js';
import { checkTensor, expertTensorNames, expectedTensors, isQwen35, layerFfnKind, validateTensors, type ModelConfig } from '../config.js';
import { AbortError, ModelFormatError, UnsupportedArchitectureError, UnsupportedQuantError } from '../errors.js';
import { coLocatedLayout, KERNEL_TYPES, pairUnitsThatFit, type WeightPart, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { fusedProjections, loadQwen35Layer, type GpuQwen35Layer, type GpuSharedExpertWeights } from './qwen35-weights.js';

/** What the loader needs from an opened GGUF file (gguf/reader.ts GGUFFile satisfies it). */
export interface GGUFTensorReader {
  tensorByName: Map<string, GGUFTensorInfo>;
  readTensor(tensor: GGUFTensorInfo, dst?: Uint8Array, byteOffset?: number, byteLength?: number): Promise<Uint8Array>;
}

export interface LoadWeightsOptions {
  signal?: AbortSignal;
  /** fraction of tensor bytes uploaded so far, 0..1 */
  onProgress?: (fraction: number) => void;
  /** host staging chunk in bytes (a multiple of 4), default 16 MiB */
  chunkBytes?: number;
  /** wait for the queue after this many bytes written, default 64 MiB */
  syncBytes?: number;
  /** largest part in bytes (default: the device's binding limit); tests lower it to force splits */
  maxPartBytes?: number;
  /**
   * Experts for GPUs smaller than the model (src/gpu/expert-cache.ts): the experts layer `il`'s
   * stacks start with, one per GPU slot (null: every expert, as without the option). The layer's
   * expert stacks then hold only those, in that order ([cols, rows, slots]); the others stay in the file.
   */
  expertSlots?: (il: number) => readonly number[] | null;
}

/** One transformer block's weights on the GPU. Norms are f32 vectors; matrices stay quantized. */
export interface GpuLayerWeights {
  attnNorm: GPUBuffer; // f32 [nEmbd]
  wq: WeightTensor; // [nEmbd, nHead·headDimK]
  wk: WeightTensor; // [nEmbd, nHeadKv·headDimK]
  wv: WeightTensor; // [nEmbd, nHeadKv·headDimV]
  wo: WeightTensor; // [nHead·headDimV, nEmbd]
  /** attn_q_norm / attn_k_norm: f32 [headDimK] (qkNorm 'head'), [nHead·headDimK] / [nHeadKv·headDimK] ('full'); null ('none') */
  qNorm: GPUBuffer | null;
  kNorm: GPUBuffer | null;
  /** attn_q/k/v.bias f32 [nHead·headDimK] / [nHeadKv·headDimK] / [nHeadKv·headDimV] (qkvBias); null otherwise */
  bq: GPUBuffer | null;
  bk: GPUBuffer | null;
  bv: GPUBuffer | null;
  /** attn_output.bias f32 [nEmbd] (outBias); null otherwise */
  bo: GPUBuffer | null;
  /** attn_sinks f32 [nHead] (gpt-oss's attention sinks); absent otherwise */
  sinks?: GPUBuffer | null;
  ffnNorm: GPUBuffer; // f32 [nEmbd] (gpt-oss: post_attention_norm)
  ffn: GpuMoeWeights | GpuDenseWeights;
  /** the shared expert (ffnKind 'moe+shared': qwen2moe) */
  shared?: GpuSharedExpertWeights;
}

/** A deepseek2 block on the GPU: multi-head latent attention (src/arch/mla.ts) and its FFN. */
export interface GpuMlaLayer {
  attnNorm: GPUBuffer; // f32 [E]
  wq: WeightTensor | null; // attn_q [E, nHead·(qkNope + qkRope)] (q_lora_rank 0)
  wqA: WeightTensor | null; // attn_q_a [E, qLora]
  qANorm: GPUBuffer | null; // f32 [qLora]
  wqB: WeightTensor | null; // attn_q_b [qLora, nHead·(qkNope + qkRope)]
  wkvA: WeightTensor; // attn_kv_a_mqa [E, kvLora + qkRope]
  kvANorm: GPUBuffer; // f32 [kvLora]
  wkB: WeightTensor; // attn_k_b [qkNope, kvLora, nHead] (one "expert" per head)
  wvB: WeightTensor; // attn_v_b [kvLora, vHead, nHead]
  wo: WeightTensor; // attn_output [nHead·vHead, E]
  ffnNorm: GPUBuffer; // f32 [E]
  ffn: GpuMoeWeights | GpuDenseWeights;
  /** the ungated shared experts of the MoE layers */
  shared?: GpuSharedExpertWeights;
}

export interface GpuMoeWeights {
  kind: 'moe';
  router: WeightTensor; // ffn_gate_inp [nEmbd, nExpert]
  gateExps: WeightTensor; // [nEmbd, nFfExp, nExpert]
  upExps: WeightTensor; // [nEmbd, nFfExp, nExpert]
  downExps: WeightTensor; // [nFfExp, nEmbd, nExpert]
  /** exp_probs_b f32 [nExpert] (DeepSeek-V3's selection bias), when the router has one */
  selectionBias?: GPUBuffer | null;
  /** ffn_gate_inp.bias f32 [nExpert] (gpt-oss: added to the router logits) */
  routerBias?: GPUBuffer | null;
  /** gpt-oss: ffn_{gate,up}_exps.bias f32 [nExpert, nFfExp], ffn_down_exps.bias f32 [nExpert, nEmbd] */
  expertBias?: { gate: GPUBuffer; up: GPUBuffer; down: GPUBuffer } | null;
}

export interface GpuDenseWeights {
  kind: 'dense';
  gate: WeightTensor; // [nEmbd, nFf]
  up: WeightTensor; // [nEmbd, nFf]
  down: WeightTensor; // [nFf, nEmbd]
}

export interface GpuWeights {
  tokEmbd: WeightTensor; // [nEmbd, nVocab]
  /** rope_freqs f32 [nRot/2] (llama3's frequency factors), when the file has it */
  ropeFreqs?: GPUBuffer | null;
  /** the transformer blocks (qwen3moe, qwen3); empty for the hybrids */
  layers: GpuLayerWeights[];
  /** qwen35moe / qwen35: the hybrid's blocks (src/gpu/qwen35-weights.ts) */
  hybrid?: GpuQwen35Layer[];
  /** deepseek2: the MLA blocks */
  mla?: GpuMlaLayer[];
  outputNorm: GPUBuffer; // f32 [nEmbd]
  /** LM head [nEmbd, nVocab]; the same object as tokEmbd when the embeddings are tied */
  output: WeightTensor;
  /** GPU bytes held by the weights */
  bytes: number;
  /** every buffer, for freeWeights */
  buffers: GPUBuffer[];
}

const storageUsage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const round4 = (n: number) => Math.max(4, Math.ceil(n / 4) * 4);

/** Rows [firstRow, firstRow + nRows) of a tensor, as a piece of a composite weight (TensorLoader.rows). */
export interface RowPiece {
  name: string;
  firstRow: number;
  nRows: number;
}

/** A weight made of pieces of tensors' rows (TensorLoader.rows), as a member of TensorLoader.group. */
export interface RowsSpec {
  label: string;
  pieces: RowPiece[];
}

/** What an architecture's own layer loader may ask of loadWeights (src/gpu/qwen35-weights.ts). */
export interface TensorLoader {
  info(name: string): GGUFTensorInfo;
  /** a matrix or expert stack, as uploaded for the transformer blocks */
  matrix(name: string): Promise<WeightTensor>;
  /** a tensor of any shape as f32 [all its elements] (norms, biases, conv taps) */
  vector(name: string): Promise<GPUBuffer>;
  /**
   * One weight whose rows are the pieces' rows in order (pieces of one type and row length): row
   * permutations (q | gate) and projections sharing an input fused into one matvec.
   */
  rows(label: string, pieces: RowPiece[]): Promise<WeightTensor>;
  /**
   * Weights read together by one fused kernel (Wq, Wk, Wv): the longest prefix of the same type
   * that fits one binding shares one buffer, one part each at 256-aligned offsets; the others are
   * loaded as matrix / rows would.
   */
  group(members: (string | RowsSpec)[]): Promise<WeightTensor[]>;
  /**
   * Two matrices or expert stacks of the same type and shape read together (gate and up): part i
   * of each holds the same rows (whole experts) and both share part i's buffer.
   */
  pair(a: string, b: string): Promise<[WeightTensor, WeightTensor]>;
  /** Layer il's routed expert stacks, gate and up paired (only the slots' experts with LoadWeightsOptions.expertSlots). */
  experts(il: number): Promise<Pick<GpuMoeWeights, 'gateExps' | 'upExps' | 'downExps'>>;
}

/** Bytes [from, from + length) of a tensor's data in the file. */
interface Segment {
  info: GGUFTensorInfo;
  from: number;
  length: number;
}

/** Splits the concatenation of `segs` into chunks of `chunkBytes` (the last shorter), as pieces of segments. */
function chunkPieces(segs: Segment[], chunkBytes: number): Segment[][] {
  const chunks: Segment[][] = [];
  let cur: Segment[] = [];
  let fill = 0;
  for (const s of segs) {
    for (let off = 0; off < s.length; ) {
      const length = Math.min(chunkBytes - fill, s.length - off);
      cur.push({ info: s.info, from: s.from + off, length });
      fill += length;
      off += length;
      if (fill === chunkBytes) {
        chunks.push(cur);
        cur = [];
        fill = 0;
      }
    }
  }
  if (fill > 0) chunks.push(cur);
  return chunks;
}

/**
 * A weight to place, before it has buffers: the geometry its WeightTensor will have (the same
 * fields, documented there) and where each row range lies in the file.
 */
interface Source extends Omit<WeightTensor, 'parts'> {
  /** the file ranges holding rows [firstRow, firstRow + nRows), in order */
  segments(firstRow: number, nRows: number): Segment[];
}

/** One part of a buffer being placed: rows [firstRow, firstRow + nRows) of a source. */
interface Member {
  src: Source;
  firstRow: number;
  nRows: number;
}

/** Destroys every buffer of the weights. */
export function freeWeights(ctx: GPUContext, w: GpuWeights): void {
  for (const b of w.buffers) ctx.destroyBuffer(b);
  w.buffers = [];
}

/**
 * Streams the tensors the model needs to the GPU.
 * @throws ModelFormatError for a missing or mis-shaped tensor; UnsupportedQuantError for a type no
 *   kernel decodes; UnsupportedArchitectureError for rope scaling; AbortError when `signal` aborts
 *   (everything allocated so far is freed first)
 */
export async function loadWeights(ctx: GPUContext, file: GGUFTensorReader, config: ModelConfig, opts: LoadWeightsOptions = {}): Promise<GpuWeights> {
  if (config.ropeScalingType !== null) {
    throw new UnsupportedArchitectureError(`rope scaling "${config.ropeScalingType}" is not implemented; use a model without rope.scaling`);
  }
  validateTensors(config, file.tensorByName);
  const infos = new Map(expectedTensors(config).map((e) => [e.name, checkTensor(file.tensorByName, e)]));
  for (const info of infos.values()) {
    const vector = info.shape.length === 1;
    if (!vector && !KERNEL_TYPES.includes(info.type)) {
      throw new UnsupportedQuantError(
        `tensor ${info.name}: type ${ggmlTypeName(info.type)} has no GPU kernel (supported: ${KERNEL_TYPES.map(ggmlTypeName).join(', ')})`,
        info.type,
      );
    }
  }
  let total = [...infos.values()].reduce((s, t) => s + t.byteLength, 0);
  // (expertSlots: the experts left in the file are not loaded)
  for (let il = 0; il < config.nLayer && opts.expertSlots; il++) {
    const slots = layerFfnKind(config, il) === 'dense' ? null : opts.expertSlots(il);
    if (!slots) continue;
    for (const w of ['gate', 'up', 'down'] as const) {
      for (const name of expertTensorNames(config, il, w)) total -= infos.get(name)!.byteLength * (1 - slots.length / config.nExpert);
    }
  }
  const chunkBytes = Math.max(4, Math.floor((opts.chunkBytes ?? 16 << 20) / 4) * 4);
  const syncBytes = opts.syncBytes ?? 64 << 20;
  const maxPart = Math.min(opts.maxPartBytes ?? Infinity, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const stagings = [new Uint8Array(chunkBytes), new Uint8Array(chunkBytes)];
  const buffers: GPUBuffer[] = [];
  let done = 0;
  let sinceSync = 0;

  const checkAbort = () => {
    if (opts.signal?.aborted) {
      const r = opts.signal.reason;
      throw new AbortError(`model loading was aborted${r instanceof Error ? `: ${r.message}` : ''}`, { cause: r });
    }
  };
  const newBuffer = (label: string, bytes: number): GPUBuffer => {
    const b = ctx.createBuffer({ label, size: round4(bytes), usage: storageUsage() });
    buffers.push(b);
    return b;
  };

  /**
   * Streams byte ranges of tensors, concatenated, into `dst` from byte `at` (a multiple of 4), in
   * chunks of `chunkBytes`. Double-buffered: chunk k+1 is read from the file (libuv's thread pool)
   * while chunk k is handed to writeBuffer, whose copy runs on this thread and, on a unified-memory
   * device such as lavapipe, is where the fresh device memory is first touched (the slow part).
   */
  const streamSegments = async (segs: Segment[], dst: GPUBuffer, at: number): Promise<void> => {
    const chunks = chunkPieces(segs, chunkBytes);
    const read = (k: number, into: Uint8Array): Promise<unknown> => {
      let fill = 0;
      return Promise.all(
        chunks[k]!.map((p) => {
          const to = into.subarray(fill, (fill += p.length));
          return file.readTensor(p.info, to, p.from, p.length);
        }),
      );
    };
    let next: Promise<unknown> | null = chunks.length ? read(0, stagings[0]) : null;
    for (let k = 0; k < chunks.length; k++) {
      const staging = stagings[k & 1]!;
      await next;
      checkAbort();
      next = k + 1 < chunks.length ? read(k + 1, stagings[(k + 1) & 1]!) : null;
      next?.catch(() => {}); // awaited on the next iteration; a failure there is not unhandled here
      const fill = chunks[k]!.reduce((n, p) => n + p.length, 0);
      const padded = Math.ceil(fill / 4) * 4; // only the last chunk is not whole
      staging.fill(0, fill, padded);
      ctx.assertUsable();
      ctx.queue.writeBuffer(dst, at, staging.buffer, staging.byteOffset, padded);
      at += padded;
      done += fill;
      opts.onProgress?.(total ? done / total : 1);
      sinceSync += padded;
      if (sinceSync >= syncBytes) {
        sinceSync = 0;
        ctx.queue.submit([]);
        await ctx.track(ctx.queue.onSubmittedWorkDone());
      }
    }
  };

  /** One buffer holding the members at 256-aligned offsets (the first at 0); one part each. */
  const place = async (label: string, members: Member[]): Promise<WeightPart[]> => {
    const lengths = members.map((m) => m.nRows * m.src.rowBytes);
    const { offsets, size } = coLocatedLayout(lengths);
    const buffer = newBuffer(label, size);
    const parts: WeightPart[] = [];
    for (const [i, m] of members.entries()) {
      await streamSegments(m.src.segments(m.firstRow, m.nRows), buffer, offsets[i]!);
      parts.push({ buffer, offset: offsets[i]!, firstRow: m.firstRow, nRows: m.nRows, byteLength: lengths[i]! });
    }
    return parts;
  };
  const tensorOf = (s: Source, parts: WeightPart[]): WeightTensor => ({
    name: s.name,
    type: s.type,
    shape: s.shape,
    cols: s.cols,
    rows: s.rows,
    rowBytes: s.rowBytes,
    parts,
    splitRows: s.splitRows,
  });
  const rangeLabel = (s: Source, first: number, n: number) => `${s.name}[${first}:${first + n}]`;

  /** A tensor as a source: rows are its own (expert stacks split on whole experts). */
  const tensorSource = (name: string): Source => {
    const info = infos.get(name)!;
    const shape = [...info.shape];
    const cols = shape[0] ?? 1;
    const rb = rowBytes(info.type, cols);
    return {
      name,
      type: info.type,
      shape,
      cols,
      rows: shape.slice(1).reduce((a, b) => a * b, 1),
      rowBytes: rb,
      splitRows: shape.length >= 3 ? shape[1]! : 1,
      segments: (first, n) => [{ info, from: first * rb, length: n * rb }],
    };
  };
  /** See TensorLoader.rows: the pieces' rows in order, as one source. */
  const rowsSource = (label: string, pieces: RowPiece[]): Source => {
    const first = infos.get(pieces[0]!.name)!;
    const type = first.type;
    const cols = first.shape[0]!;
    for (const p of pieces) {
      const info = infos.get(p.name)!;
      const nRows = info.shape.slice(1).reduce((a, b) => a * b, 1);
      if (info.type !== type || info.shape[0] !== cols) throw new RangeError(`${label}: ${p.name} differs in type or row length from ${first.name}`);
      if (!(p.firstRow >= 0 && p.nRows >= 1 && p.firstRow + p.nRows <= nRows)) throw new RangeError(`${label}: rows ${p.firstRow}+${p.nRows} outside ${p.name}`);
    }
    const rb = rowBytes(type, cols);
    const total = pieces.reduce((s, p) => s + p.nRows, 0);
    return {
      name: label,
      type,
      shape: [cols, total],
      cols,
      rows: total,
      rowBytes: rb,
      splitRows: 1,
      segments: (r0, n) => {
        // the pieces' ranges that rows [r0, r0 + n) of the concatenation cover
        const segs: Segment[] = [];
        let base = 0;
        for (const p of pieces) {
          const lo = Math.max(r0, base);
          const hi = Math.min(r0 + n, base + p.nRows);
          if (lo < hi) segs.push({ info: infos.get(p.name)!, from: (p.firstRow + lo - base) * rb, length: (hi - lo) * rb });
          base += p.nRows;
        }
        return segs;
      },
    };
  };

  /** Mixtral's older per-expert matrices as one expert stack [cols, rows, nExpert] (splits on whole experts). */
  const stackSource = (label: string, names: string[]): Source => {
    const first = infos.get(names[0]!)!;
    for (const n of names) {
      const info = infos.get(n)!;
      if (info.type !== first.type || info.shape.join() !== first.shape.join()) {
        throw new ModelFormatError(`tensor ${n} differs in type or shape from ${first.name}: the experts of one layer must match`);
      }
    }
    const perExpert = first.shape[1]!;
    const src = rowsSource(label, names.map((name) => ({ name, firstRow: 0, nRows: perExpert })));
    return { ...src, shape: [first.shape[0]!, perExpert, names.length], splitRows: perExpert };
  };
  /**
   * An expert stack by its tensor names: one stacked tensor, or one matrix per expert. With `slots`,
   * only those experts, in that order (the expert cache's slot stack [cols, rows, slots.length]).
   */
  const expertSource = (names: string[], slots?: readonly number[] | null): Source => {
    const label = names.length === 1 ? names[0]! : names[0]!.replace(/\.0\.weight$/, '_exps(per expert)');
    if (!slots) return names.length === 1 ? tensorSource(names[0]!) : stackSource(label, names);
    const info = infos.get(names[0]!)!;
    const rows = info.shape[1]!;
    const pieces = slots.map((e) => (names.length === 1 ? { name: names[0]!, firstRow: e * rows, nRows: rows } : { name: names[e]!, firstRow: 0, nRows: rows }));
    return { ...rowsSource(`${label}(slots)`, pieces), shape: [info.shape[0]!, rows, slots.length], splitRows: rows };
  };
  /** See TensorLoader.experts. */
  const experts = async (il: number): Promise<Pick<GpuMoeWeights, 'gateExps' | 'upExps' | 'downExps'>> => {
    const slots = opts.expertSlots?.(il) ?? null;
    const [gateExps, upExps] = await pair(expertSource(expertTensorNames(config, il, 'gate'), slots), expertSource(expertTensorNames(config, il, 'up'), slots));
    const downExps = await solo(expertSource(expertTensorNames(config, il, 'down'), slots));
    return { gateExps, upExps, downExps };
  };

  /** Rows per part of one source alone, split on multiples of splitRows. */
  const rowsPerPart = (s: Source): number => {
    const units = Math.floor((maxPart - 4) / (s.rowBytes * s.splitRows));
    if (units < 1) throw new RangeError(`tensor ${s.name}: ${s.splitRows} row(s) of ${s.rowBytes} bytes exceed the largest binding (${maxPart} bytes)`);
    return units * s.splitRows;
  };
  /** A source in buffers of its own, split into parts along rows when larger than one binding. */
  const solo = async (s: Source): Promise<WeightTensor> => {
    const step = rowsPerPart(s);
    const parts: WeightPart[] = [];
    for (let first = 0; first < s.rows; first += step) {
      const n = Math.min(step, s.rows - first);
      parts.push(...(await place(rangeLabel(s, first, n), [{ src: s, firstRow: first, nRows: n }])));
    }
    return tensorOf(s, parts);
  };
  /** See TensorLoader.group. */
  const group = async (srcs: Source[]): Promise<WeightTensor[]> => {
    const fits = (k: number) => coLocatedLayout(srcs.slice(0, k).map((s) => s.rows * s.rowBytes)).size <= maxPart;
    let k = 1;
    while (k < srcs.length && srcs[k]!.type === srcs[0]!.type) k++;
    while (k > 1 && !fits(k)) k--;
    const out: WeightTensor[] = [];
    if (k > 1) {
      const members = srcs.slice(0, k).map((src) => ({ src, firstRow: 0, nRows: src.rows }));
      const parts = await place(srcs.slice(0, k).map((s) => s.name).join('+'), members);
      members.forEach((m, i) => out.push(tensorOf(m.src, [parts[i]!])));
    }
    for (const s of srcs.slice(out.length)) out.push(await solo(s));
    return out;
  };
  /** See TensorLoader.pair. */
  const pair = async (a: Source, b: Source): Promise<[WeightTensor, WeightTensor]> => {
    if (a.type !== b.type || a.shape.join() !== b.shape.join()) return [await solo(a), await solo(b)];
    const unit = a.rowBytes * a.splitRows;
    const units = pairUnitsThatFit(unit, maxPart);
    if (units < 1) return [await solo(a), await solo(b)];
    const step = units * a.splitRows;
    const pa: WeightPart[] = [];
    const pb: WeightPart[] = [];
    for (let first = 0; first < a.rows; first += step) {
      const n = Math.min(step, a.rows - first);
      const [x, y] = await place(`${rangeLabel(a, first, n)}+${b.name}`, [
        { src: a, firstRow: first, nRows: n },
        { src: b, firstRow: first, nRows: n },
      ]);
      pa.push(x!);
      pb.push(y!);
    }
    return [tensorOf(a, pa), tensorOf(b, pb)];
  };

  const matrix = (name: string): Promise<WeightTensor> => solo(tensorSource(name));
  const rows = (label: string, pieces: RowPiece[]): Promise<WeightTensor> => solo(rowsSource(label, pieces));
  /** A norm weight as f32 [n] (dequantized on the host when the file stores another type). */
  const vector = async (name: string): Promise<GPUBuffer> => {
    const info = infos.get(name)!;
    const n = info.shape.reduce((a, b) => a * b, 1);
    const buffer = newBuffer(name, n * 4);
    if (info.type === GGMLType.F32) {
      await streamSegments([{ info, from: 0, length: n * 4 }], buffer, 0);
    } else {
      checkAbort();
      const values = dequantize(info.type, await file.readTensor(info), n);
      ctx.queue.writeBuffer(buffer, 0, values.buffer, values.byteOffset, round4(n * 4));
      done += info.byteLength;
      opts.onProgress?.(total ? done / total : 1);
    }
    return buffer;
  };
  const loader: TensorLoader = {
    info: (name) => infos.get(name)!,
    matrix,
    vector,
    rows,
    group: (members) => group(members.map((m) => (typeof m === 'string' ? tensorSource(m) : rowsSource(m.label, m.pieces)))),
    pair: (a, b) => pair(tensorSource(a), tensorSource(b)),
    experts,
  };

  try {
    const tokEmbd = await matrix('token_embd.weight');
    const layers: GpuLayerWeights[] = [];
    let hybrid: GpuQwen35Layer[] | undefined;
    if (isQwen35(config)) {
      hybrid = [];
      for (let i = 0; i < config.nLayer; i++) hybrid.push(await loadQwen35Layer(loader, config, i));
    }
    const at = config.attention;
    const ropeFreqs = at.ropeFreqs ? await vector('rope_freqs.weight') : null;
    /** the FFN of layer i (dense for deepseek2's leading layers), with its shared expert */
    const ffnOf = async (i: number): Promise<{ ffn: GpuMoeWeights | GpuDenseWeights; shared?: GpuSharedExpertWeights }> => {
      const b = `blk.${i}.`;
      const kind = layerFfnKind(config, i);
      if (kind === 'dense') {
        const [gate, up] = await loader.pair(b + 'ffn_gate.weight', b + 'ffn_up.weight');
        return { ffn: { kind: 'dense', gate, up, down: await matrix(b + 'ffn_down.weight') } };
      }
      const router = await matrix(b + 'ffn_gate_inp.weight');
      const { gateExps, upExps, downExps } = await experts(i);
      const selectionBias = config.router.selectionBias ? await vector(b + 'exp_probs_b.bias') : null;
      const routerBias = config.router.logitBias ? await vector(b + 'ffn_gate_inp.bias') : null;
      const expertBias = config.expertBiases
        ? { gate: await vector(b + 'ffn_gate_exps.bias'), up: await vector(b + 'ffn_up_exps.bias'), down: await vector(b + 'ffn_down_exps.bias') }
        : null;
      const ffn: GpuMoeWeights = { kind: 'moe', router, gateExps, upExps, downExps, selectionBias, routerBias, expertBias };
      if (kind !== 'moe+shared') return { ffn };
      const shared: GpuSharedExpertWeights = {
        gateUp: await fusedProjections(loader, b + 'shexp', [b + 'ffn_gate_shexp.weight', b + 'ffn_up_shexp.weight']),
        gateInp: config.sharedExpertGated ? await vector(b + 'ffn_gate_inp_shexp.weight') : null,
        down: await matrix(b + 'ffn_down_shexp.weight'),
      };
      return { ffn, shared };
    };
    let mla: GpuMlaLayer[] | undefined;
    if (config.mla) {
      mla = [];
      const lora = config.mla.qLoraRank > 0;
      for (let i = 0; i < config.nLayer; i++) {
        const b = `blk.${i}.`;
        const attnNorm = await vector(b + 'attn_norm.weight');
        const wq = lora ? null : await matrix(b + 'attn_q.weight');
        const wqA = lora ? await matrix(b + 'attn_q_a.weight') : null;
        const qANorm = lora ? await vector(b + 'attn_q_a_norm.weight') : null;
        const wqB = lora ? await matrix(b + 'attn_q_b.weight') : null;
        const wkvA = await matrix(b + 'attn_kv_a_mqa.weight');
        const kvANorm = await vector(b + 'attn_kv_a_norm.weight');
        const wkB = await matrix(b + 'attn_k_b.weight');
        const wvB = await matrix(b + 'attn_v_b.weight');
        const wo = await matrix(b + 'attn_output.weight');
        const ffnNorm = await vector(b + 'ffn_norm.weight');
        mla.push({ attnNorm, wq, wqA, qANorm, wqB, wkvA, kvANorm, wkB, wvB, wo, ffnNorm, ...(await ffnOf(i)) });
      }
    }
    for (let i = 0; i < (hybrid || mla ? 0 : config.nLayer); i++) {
      const b = `blk.${i}.`;
      const attnNorm = await vector(b + 'attn_norm.weight');
      const [wq, wk, wv] = (await group([b + 'attn_q.weight', b + 'attn_k.weight', b + 'attn_v.weight'].map(tensorSource))) as [WeightTensor, WeightTensor, WeightTensor];
      const bias = async (name: string, has: boolean) => (has ? vector(b + name) : null);
      const [bq, bk, bv] = [await bias('attn_q.bias', at.qkvBias), await bias('attn_k.bias', at.qkvBias), await bias('attn_v.bias', at.qkvBias)];
      const wo = await matrix(b + 'attn_output.weight');
      const bo = await bias('attn_output.bias', at.outBias);
      const qNorm = await bias('attn_q_norm.weight', at.qkNorm !== 'none');
      const kNorm = await bias('attn_k_norm.weight', at.qkNorm !== 'none');
      const sinks = await bias('attn_sinks.weight', at.sinks);
      const ffnNorm = await vector(b + config.ffnNormName + '.weight');
      const { ffn, shared } = await ffnOf(i);
      layers.push({ attnNorm, wq, wk, wv, bq, bk, bv, wo, bo, qNorm, kNorm, sinks, ffnNorm, ffn, ...(shared ? { shared } : {}) });
    }
    const outputNorm = await vector('output_norm.weight');
    const output = config.tiedEmbeddings ? tokEmbd : await matrix('output.weight');
    ctx.queue.submit([]);
    await ctx.track(ctx.queue.onSubmittedWorkDone());
    checkAbort();
    return { tokEmbd, ropeFreqs, layers, ...(hybrid ? { hybrid } : {}), ...(mla ? { mla } : {}), outputNorm, output, bytes: buffers.reduce((s, b) => s + b.size, 0), buffers };
  } catch (e) {
    if (!ctx.isLost) for (const b of buffers) ctx.destroyBuffer(b);
    throw e;
  }
}
