// Weight loading for the WebGPU backend: every tensor streamed from the GGUF file to GPU buffers
// through one reused host staging buffer, bytes kept exactly as in the file (the kernels dequantize).
//
//   file ──readTensor(chunk)──▶ staging (host, reused) ──queue.writeBuffer──▶ GPU part buffer
//
// Host memory stays bounded whatever the model size: one staging chunk (default 16 MiB) plus what
// Dawn copies internally for writeBuffer, which is released by waiting for the queue every
// `syncBytes` (default 64 MiB). Tensors larger than maxStorageBufferBindingSize are split along
// rows into parts (expert stacks only on expert boundaries, so the MoE kernels can address every
// expert in one part), with the same layout as runtime/buffers.ts uploadWeight.
import { dequantize } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName, rowBytes, type GGUFTensorInfo } from '../../gguf/types.js';
import { checkTensor, expectedTensors, isQwen35, validateTensors, type ModelConfig } from '../config.js';
import { AbortError, UnsupportedArchitectureError, UnsupportedQuantError } from '../errors.js';
import { KERNEL_TYPES, type WeightPart, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { loadQwen35Layer, type GpuQwen35Layer } from './qwen35-weights.js';

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
}

/** One transformer block's weights on the GPU. Norms are f32 vectors; matrices stay quantized. */
export interface GpuLayerWeights {
  attnNorm: GPUBuffer; // f32 [nEmbd]
  wq: WeightTensor; // [nEmbd, nHead·headDimK]
  wk: WeightTensor; // [nEmbd, nHeadKv·headDimK]
  wv: WeightTensor; // [nEmbd, nHeadKv·headDimV]
  wo: WeightTensor; // [nHead·headDimV, nEmbd]
  qNorm: GPUBuffer; // f32 [headDimK]
  kNorm: GPUBuffer; // f32 [headDimK]
  ffnNorm: GPUBuffer; // f32 [nEmbd]
  ffn: GpuMoeWeights | GpuDenseWeights;
}

export interface GpuMoeWeights {
  kind: 'moe';
  router: WeightTensor; // ffn_gate_inp [nEmbd, nExpert]
  gateExps: WeightTensor; // [nEmbd, nFfExp, nExpert]
  upExps: WeightTensor; // [nEmbd, nFfExp, nExpert]
  downExps: WeightTensor; // [nFfExp, nEmbd, nExpert]
}

export interface GpuDenseWeights {
  kind: 'dense';
  gate: WeightTensor; // [nEmbd, nFf]
  up: WeightTensor; // [nEmbd, nFf]
  down: WeightTensor; // [nFf, nEmbd]
}

export interface GpuWeights {
  tokEmbd: WeightTensor; // [nEmbd, nVocab]
  /** the transformer blocks (qwen3moe, qwen3); empty for the hybrids */
  layers: GpuLayerWeights[];
  /** qwen35moe / qwen35: the hybrid's blocks (src/gpu/qwen35-weights.ts) */
  hybrid?: GpuQwen35Layer[];
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
  const total = [...infos.values()].reduce((s, t) => s + t.byteLength, 0);
  const chunkBytes = Math.max(4, Math.floor((opts.chunkBytes ?? 16 << 20) / 4) * 4);
  const syncBytes = opts.syncBytes ?? 64 << 20;
  const maxPart = Math.min(opts.maxPartBytes ?? Infinity, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const staging = new Uint8Array(chunkBytes);
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
  /** Streams bytes [from, from + length) of a tensor into `dst` at 0. */
  const stream = async (info: GGUFTensorInfo, dst: GPUBuffer, from: number, length: number): Promise<void> => {
    for (let off = 0; off < length; off += chunkBytes) {
      checkAbort();
      const len = Math.min(chunkBytes, length - off);
      await file.readTensor(info, staging, from + off, len);
      const padded = Math.ceil(len / 4) * 4;
      staging.fill(0, len, padded);
      ctx.assertUsable();
      ctx.queue.writeBuffer(dst, off, staging.buffer, staging.byteOffset, padded);
      done += len;
      sinceSync += padded;
      if (sinceSync >= syncBytes) {
        sinceSync = 0;
        ctx.queue.submit([]);
        await ctx.track(ctx.queue.onSubmittedWorkDone());
      }
      opts.onProgress?.(total ? done / total : 1);
    }
  };

  /** Streams byte ranges of tensors, concatenated, into `dst` from 0 (any alignment of the ranges). */
  const streamSegments = async (segs: { info: GGUFTensorInfo; from: number; length: number }[], dst: GPUBuffer): Promise<void> => {
    let fill = 0;
    let at = 0;
    const flush = async () => {
      const padded = Math.ceil(fill / 4) * 4; // only the last flush is not a whole chunk
      staging.fill(0, fill, padded);
      ctx.assertUsable();
      ctx.queue.writeBuffer(dst, at, staging.buffer, staging.byteOffset, padded);
      at += padded;
      sinceSync += padded;
      fill = 0;
      if (sinceSync >= syncBytes) {
        sinceSync = 0;
        ctx.queue.submit([]);
        await ctx.track(ctx.queue.onSubmittedWorkDone());
      }
    };
    for (const s of segs) {
      for (let off = 0; off < s.length; ) {
        checkAbort();
        const len = Math.min(chunkBytes - fill, s.length - off);
        await file.readTensor(s.info, staging.subarray(fill, fill + len), s.from + off, len);
        fill += len;
        off += len;
        done += len;
        opts.onProgress?.(total ? done / total : 1);
        if (fill === chunkBytes) await flush();
      }
    }
    if (fill > 0) await flush();
  };

  /** See TensorLoader.rows: split into parts along rows when larger than one binding. */
  const rows = async (label: string, pieces: RowPiece[]): Promise<WeightTensor> => {
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
    const rowsPerPart = Math.floor((maxPart - 4) / rb);
    if (rowsPerPart < 1) throw new RangeError(`${label}: a row of ${rb} bytes exceeds the largest binding (${maxPart} bytes)`);
    const parts: WeightPart[] = [];
    let pi = 0;
    let used = 0; // rows of pieces[pi] already placed
    for (let r0 = 0; r0 < total; r0 += rowsPerPart) {
      const nRows = Math.min(rowsPerPart, total - r0);
      const segs: { info: GGUFTensorInfo; from: number; length: number }[] = [];
      for (let left = nRows; left > 0; ) {
        const p = pieces[pi]!;
        const take = Math.min(left, p.nRows - used);
        segs.push({ info: infos.get(p.name)!, from: (p.firstRow + used) * rb, length: take * rb });
        used += take;
        left -= take;
        if (used === p.nRows) {
          pi++;
          used = 0;
        }
      }
      const buffer = newBuffer(`${label}[${r0}:${r0 + nRows}]`, nRows * rb);
      await streamSegments(segs, buffer);
      parts.push({ buffer, offset: 0, firstRow: r0, nRows, byteLength: nRows * rb });
    }
    return { name: label, type, shape: [cols, total], cols, rows: total, rowBytes: rb, parts, splitRows: 1 };
  };

  /** A matrix or expert stack, split into parts along rows when larger than one binding. */
  const matrix = async (name: string): Promise<WeightTensor> => {
    const info = infos.get(name)!;
    const shape = [...info.shape];
    const cols = shape[0] ?? 1;
    const rows = shape.slice(1).reduce((a, b) => a * b, 1);
    const rb = rowBytes(info.type, cols);
    const splitRows = shape.length >= 3 ? shape[1]! : 1;
    const unitsPerPart = Math.floor((maxPart - 4) / (rb * splitRows));
    if (unitsPerPart < 1) throw new RangeError(`tensor ${name}: ${splitRows} row(s) of ${rb} bytes exceed the largest binding (${maxPart} bytes)`);
    const rowsPerPart = unitsPerPart * splitRows;
    const parts: WeightPart[] = [];
    for (let first = 0; first < rows; first += rowsPerPart) {
      const nRows = Math.min(rowsPerPart, rows - first);
      const byteLength = nRows * rb;
      const buffer = newBuffer(`${name}[${first}:${first + nRows}]`, byteLength);
      await stream(info, buffer, first * rb, byteLength);
      parts.push({ buffer, offset: 0, firstRow: first, nRows, byteLength });
    }
    return { name, type: info.type, shape, cols, rows, rowBytes: rb, parts, splitRows };
  };
  /** A norm weight as f32 [n] (dequantized on the host when the file stores another type). */
  const vector = async (name: string): Promise<GPUBuffer> => {
    const info = infos.get(name)!;
    const n = info.shape.reduce((a, b) => a * b, 1);
    const buffer = newBuffer(name, n * 4);
    if (info.type === GGMLType.F32) {
      await stream(info, buffer, 0, n * 4);
    } else {
      checkAbort();
      const values = dequantize(info.type, await file.readTensor(info), n);
      ctx.queue.writeBuffer(buffer, 0, values.buffer, values.byteOffset, round4(n * 4));
      done += info.byteLength;
      opts.onProgress?.(total ? done / total : 1);
    }
    return buffer;
  };

  try {
    const tokEmbd = await matrix('token_embd.weight');
    const layers: GpuLayerWeights[] = [];
    let hybrid: GpuQwen35Layer[] | undefined;
    if (isQwen35(config)) {
      const loader: TensorLoader = { info: (name) => infos.get(name)!, matrix, vector, rows };
      hybrid = [];
      for (let i = 0; i < config.nLayer; i++) hybrid.push(await loadQwen35Layer(loader, config, i));
    }
    for (let i = 0; i < (hybrid ? 0 : config.nLayer); i++) {
      const b = `blk.${i}.`;
      layers.push({
        attnNorm: await vector(b + 'attn_norm.weight'),
        wq: await matrix(b + 'attn_q.weight'),
        wk: await matrix(b + 'attn_k.weight'),
        wv: await matrix(b + 'attn_v.weight'),
        wo: await matrix(b + 'attn_output.weight'),
        qNorm: await vector(b + 'attn_q_norm.weight'),
        kNorm: await vector(b + 'attn_k_norm.weight'),
        ffnNorm: await vector(b + 'ffn_norm.weight'),
        ffn:
          config.arch === 'qwen3moe'
            ? {
                kind: 'moe',
                router: await matrix(b + 'ffn_gate_inp.weight'),
                gateExps: await matrix(b + 'ffn_gate_exps.weight'),
                upExps: await matrix(b + 'ffn_up_exps.weight'),
                downExps: await matrix(b + 'ffn_down_exps.weight'),
              }
            : {
                kind: 'dense',
                gate: await matrix(b + 'ffn_gate.weight'),
                up: await matrix(b + 'ffn_up.weight'),
                down: await matrix(b + 'ffn_down.weight'),
              },
      });
    }
    const outputNorm = await vector('output_norm.weight');
    const output = config.tiedEmbeddings ? tokEmbd : await matrix('output.weight');
    ctx.queue.submit([]);
    await ctx.track(ctx.queue.onSubmittedWorkDone());
    checkAbort();
    return { tokEmbd, layers, ...(hybrid ? { hybrid } : {}), outputNorm, output, bytes: buffers.reduce((s, b) => s + b.size, 0), buffers };
  } catch (e) {
    if (!ctx.isLost) for (const b of buffers) ctx.destroyBuffer(b);
    throw e;
  }
}
