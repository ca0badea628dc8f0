// GPU buffers: weights (GGUF bytes as-is, split along rows when too big for one binding),
// activations, readback and uniforms.
import { GGML_TYPE_INFO, GGMLType, ggmlTypeName, rowBytes } from '../../gguf/types.js';
import { UnsupportedQuantError } from '../errors.js';
import type { GPUContext } from './device.js';
import type { UniformSpec } from './pipelines.js';

/** Usage of every moet storage buffer (bindable, copyable both ways). A function: the
 * GPUBufferUsage global exists only once webgpu is loaded. */
const storageUsage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** One buffer of a weight: rows [firstRow, firstRow + nRows) of the (flattened) tensor. */
export interface WeightPart {
  buffer: GPUBuffer;
  /**
   * byte offset of this part's data in `buffer`: 0, or a multiple of 256 (WebGPU's
   * minStorageBufferOffsetAlignment) when several tensors are co-located in one buffer so that a
   * fused kernel can read them through one binding (src/gpu/weights.ts)
   */
  offset: number;
  firstRow: number;
  nRows: number;
  /** bytes of data (the buffer is this, rounded up to 4) */
  byteLength: number;
}

/**
 * A weight on the GPU, bytes exactly as in the GGUF file. Rows are ne0 = cols elements; a 3-D
 * tensor [cols, ne1, ne2] has rows = ne1·ne2 (row r of expert e is flat row e·ne1 + r).
 */
export interface WeightTensor {
  name: string;
  type: GGMLType;
  /** ggml order */
  shape: number[];
  cols: number;
  rows: number;
  rowBytes: number;
  /** parts in row order; splits fall on multiples of `splitRows` rows */
  parts: WeightPart[];
  /** split granularity in rows (1, or ne1 for expert stacks) */
  splitRows: number;
}

export interface UploadWeightOptions {
  /**
   * Splits may only fall on multiples of this many rows. Default: ne1 for a 3-D tensor (so each
   * expert lies whole in one part, which the MoE matvec needs), 1 otherwise.
   */
  splitRows?: number;
  /** largest part in bytes (default: the device's maxStorageBufferBindingSize); tests lower it */
  maxPartBytes?: number;
}

/** Weight types the kernels decode. */
export const KERNEL_TYPES: readonly GGMLType[] = [
  GGMLType.F32,
  GGMLType.F16,
  GGMLType.BF16,
  GGMLType.Q8_0,
  GGMLType.Q4_0,
  GGMLType.Q4_1,
  GGMLType.Q5_0,
  GGMLType.Q5_1,
  GGMLType.Q4_K,
  GGMLType.Q5_K,
  GGMLType.Q6_K,
  GGMLType.MXFP4,
];

/**
 * Uploads one tensor's GGUF bytes. Tensors larger than maxStorageBufferBindingSize are split into
 * several buffers along rows; launchers then dispatch once per part.
 * @throws UnsupportedQuantError for a type no kernel decodes
 */
export function uploadWeight(
  ctx: GPUContext,
  t: { name: string; type: GGMLType; shape: readonly number[]; data: Uint8Array },
  opts: UploadWeightOptions = {},
): WeightTensor {
  if (!KERNEL_TYPES.includes(t.type)) {
    throw new UnsupportedQuantError(`tensor ${t.name}: type ${ggmlTypeName(t.type)} has no GPU kernel (supported: ${KERNEL_TYPES.map(ggmlTypeName).join(', ')})`, t.type);
  }
  const cols = t.shape[0] ?? 1;
  let rows = 1;
  for (let i = 1; i < t.shape.length; i++) rows *= t.shape[i]!;
  const rb = rowBytes(t.type, cols);
  if (t.data.byteLength < rb * rows) throw new RangeError(`tensor ${t.name}: ${t.data.byteLength} bytes, expected ${rb * rows}`);
  const splitRows = opts.splitRows ?? (t.shape.length >= 3 ? t.shape[1]! : 1);
  const maxBytes = Math.min(opts.maxPartBytes ?? Infinity, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const unitBytes = rb * splitRows;
  // a part's size is rounded up to 4 bytes: keep room for that
  const unitsPerPart = Math.floor((maxBytes - 4) / unitBytes);
  if (unitsPerPart < 1) {
    throw new RangeError(`tensor ${t.name}: ${splitRows} row(s) of ${rb} bytes exceed the largest binding (${maxBytes} bytes)`);
  }
  const rowsPerPart = unitsPerPart * splitRows;
  const parts: WeightPart[] = [];
  for (let first = 0; first < rows; first += rowsPerPart) {
    const nRows = Math.min(rowsPerPart, rows - first);
    const byteLength = nRows * rb;
    const size = Math.max(4, Math.ceil(byteLength / 4) * 4);
    const buffer = ctx.createBuffer({ label: `${t.name}[${first}:${first + nRows}]`, size, usage: storageUsage(), mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(t.data.subarray(first * rb, first * rb + byteLength));
    buffer.unmap();
    parts.push({ buffer, offset: 0, firstRow: first, nRows, byteLength });
  }
  return { name: t.name, type: t.type, shape: [...t.shape], cols, rows, rowBytes: rb, parts, splitRows };
}

/** WebGPU's minStorageBufferOffsetAlignment (the largest value a device may require). */
export const PART_ALIGN = 256;

/** Offsets of consecutive blocks of these byte lengths in one buffer (each 256-aligned), and its size. */
export function coLocatedLayout(byteLengths: readonly number[]): { offsets: number[]; size: number } {
  const offsets: number[] = [];
  let end = 0;
  for (const n of byteLengths) {
    const at = Math.ceil(end / PART_ALIGN) * PART_ALIGN;
    offsets.push(at);
    end = at + n;
  }
  return { offsets, size: Math.max(4, Math.ceil(end / 4) * 4) };
}

/** The most whole units of `unitBytes` (experts, or rows) of two co-located blocks that fit `maxBytes` together (0: none). */
export function pairUnitsThatFit(unitBytes: number, maxBytes: number): number {
  let units = Math.floor((maxBytes - 4) / (2 * unitBytes));
  while (units > 0 && coLocatedLayout([units * unitBytes, units * unitBytes]).size > maxBytes) units--;
  return units;
}

/**
 * Two stacks of one type and shape [cols, rows, count] (an FFN's gate and up experts) uploaded
 * co-located as the loader places them (src/gpu/weights.ts): part i of both in ONE buffer, `a` at
 * offset 0 and `b` at the next 256-aligned offset, `expertsPerPart` whole experts per part (default:
 * as many as fit one binding together), so fused kernels read both through one binding.
 */
export function uploadCoLocatedPair(
  ctx: GPUContext,
  a: { name: string; type: GGMLType; shape: readonly [number, number, number]; data: Uint8Array },
  b: { name: string; data: Uint8Array },
  expertsPerPart?: number,
): [WeightTensor, WeightTensor] {
  const [cols, rows, count] = a.shape;
  const rb = rowBytes(a.type, cols);
  const per = rows * rb; // one expert
  const n = Math.max(1, Math.min(expertsPerPart ?? count, pairUnitsThatFit(per, Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize))));
  const tensor = (name: string): WeightTensor => ({ name, type: a.type, shape: [...a.shape], cols, rows: rows * count, rowBytes: rb, parts: [], splitRows: rows });
  const [ta, tb] = [tensor(a.name), tensor(b.name)];
  for (let e0 = 0; e0 < count; e0 += n) {
    const bytes = Math.min(n, count - e0) * per;
    const { offsets, size } = coLocatedLayout([bytes, bytes]);
    const buffer = ctx.createBuffer({ label: `${a.name}|${b.name}[${e0}]`, size, usage: storageUsage(), mappedAtCreation: true });
    const m = new Uint8Array(buffer.getMappedRange());
    m.set(a.data.subarray(e0 * per, e0 * per + bytes), offsets[0]);
    m.set(b.data.subarray(e0 * per, e0 * per + bytes), offsets[1]);
    buffer.unmap();
    ta.parts.push({ buffer, offset: offsets[0]!, firstRow: e0 * rows, nRows: bytes / rb, byteLength: bytes });
    tb.parts.push({ buffer, offset: offsets[1]!, firstRow: e0 * rows, nRows: bytes / rb, byteLength: bytes });
  }
  return [ta, tb];
}

/** What a bind group entry binds for a part: its bytes (rounded up to 4) at its offset. */
export function partBinding(p: WeightPart): GPUBufferBinding {
  return { buffer: p.buffer, offset: p.offset, size: Math.max(4, Math.ceil(p.byteLength / 4) * 4) };
}

/** A binding resource: a whole buffer, or a range of one (a co-located weight part). */
export type BindingBuffer = GPUBuffer | GPUBufferBinding;

/** The bind group resource for a BindingBuffer. */
export function bindingResource(b: BindingBuffer): GPUBufferBinding {
  return 'mapAsync' in b ? { buffer: b } : b;
}

/**
 * True when the tensors can be read through one binding by a fused kernel: each has exactly one
 * part, all parts live in the same buffer (at their own 256-aligned offsets), and all have the
 * same weight type. The loader (src/gpu/weights.ts) co-locates Wq/Wk/Wv and gate/up this way.
 */
export function coLocated(...ws: WeightTensor[]): boolean {
  if (ws.length === 0) return false;
  const p0 = ws[0]!.parts[0];
  return !!p0 && ws.every((w) => w.parts.length === 1 && w.parts[0]!.buffer === p0.buffer && w.type === ws[0]!.type);
}

/** Destroys a weight's buffers. */
export function freeWeight(ctx: GPUContext, w: WeightTensor): void {
  for (const b of new Set(w.parts.map((p) => p.buffer))) ctx.destroyBuffer(b);
  w.parts = [];
}

/** Block geometry of a kernel type: elements and bytes per block. */
export function blockInfo(type: GGMLType): { blockSize: number; typeSize: number } {
  const i = GGML_TYPE_INFO[type];
  if (!i) throw new UnsupportedQuantError(`unknown ggml type ${type}`, type);
  return i;
}

/** A storage buffer (STORAGE | COPY_SRC | COPY_DST) of at least `byteLength` bytes (rounded to 4). */
export function createStorage(ctx: GPUContext, byteLength: number, label = 'storage'): GPUBuffer {
  return ctx.createBuffer({ label, size: Math.max(4, Math.ceil(byteLength / 4) * 4), usage: storageUsage() });
}

/** A storage buffer holding `data` (f32, u32 or i32 elements, or bytes padded to 4). */
export function createStorageFrom(ctx: GPUContext, data: ArrayBufferView, label = 'storage'): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buf = ctx.createBuffer({ label, size, usage: storageUsage(), mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buf.unmap();
  return buf;
}

/** queue.writeBuffer of a typed array at a byte offset (its byte length must be a multiple of 4). */
export function writeBuffer(ctx: GPUContext, buf: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
  ctx.assertUsable();
  ctx.queue.writeBuffer(buf, byteOffset, data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A reusable readback staging buffer: read() copies from a GPU buffer, waits, and returns a copy of
 * the bytes. Making one per model (e.g. for the logits) keeps the decode step allocation-free on
 * the GPU side. Reads are serialised.
 */
export class ReadbackBuffer {
  readonly buffer: GPUBuffer;
  private busy: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: GPUContext,
    readonly capacity: number,
    label = 'readback',
  ) {
    this.buffer = ctx.createBuffer({ label, size: Math.max(4, Math.ceil(capacity / 4) * 4), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /**
   * Copies `byteLength` bytes of `src` from `byteOffset` (both multiples of 4) and returns them.
   * In debug mode, throws GPUErrorCaptured if WebGPU reported an error.
   * @throws DeviceLostError if the device is lost meanwhile; DisposedError after dispose()
   */
  read(src: GPUBuffer, byteOffset = 0, byteLength = src.size - byteOffset): Promise<ArrayBuffer> {
    const run = async (): Promise<ArrayBuffer> => {
      if (byteLength > this.capacity) throw new RangeError(`readback of ${byteLength} bytes exceeds the staging buffer (${this.capacity})`);
      const enc = this.ctx.device.createCommandEncoder({ label: 'readback' });
      enc.copyBufferToBuffer(src, byteOffset, this.buffer, 0, byteLength);
      this.ctx.submit([enc.finish()]);
      await this.ctx.track(this.buffer.mapAsync(GPUMapMode.READ, 0, byteLength));
      const out = this.buffer.getMappedRange(0, byteLength).slice(0);
      this.buffer.unmap();
      if (this.ctx.debug) this.ctx.throwCaptured();
      return out;
    };
    const p = this.busy.then(run, run);
    this.busy = p.catch(() => undefined);
    return p;
  }

  destroy(): void {
    this.ctx.destroyBuffer(this.buffer);
  }
}

/** One-off readback (allocates a staging buffer: tests and tools, not the decode loop). */
export async function readBuffer(ctx: GPUContext, src: GPUBuffer, byteOffset = 0, byteLength = src.size - byteOffset): Promise<ArrayBuffer> {
  const rb = new ReadbackBuffer(ctx, byteLength);
  try {
    return await rb.read(src, byteOffset, byteLength);
  } finally {
    if (!ctx.isLost) rb.destroy();
  }
}

/** One-off readback of `n` f32 starting at element `offset`. */
export async function readF32(ctx: GPUContext, src: GPUBuffer, n: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await readBuffer(ctx, src, offset * 4, n * 4));
}

/**
 * A uniform buffer laid out by a UniformSpec, with a CPU copy. set() changes the copy; flush()
 * (called by Launch.encode) writes it with queue.writeBuffer when it changed. No allocation after
 * construction.
 */
export class UniformBlock {
  readonly buffer: GPUBuffer;
  private readonly data: ArrayBuffer;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly f32: Float32Array;
  private readonly index = new Map<string, { word: number; type: string }>();
  private dirty = true;

  constructor(
    private readonly ctx: GPUContext,
    readonly spec: UniformSpec,
    values: Readonly<Record<string, number>> = {},
    label = spec.struct,
  ) {
    this.data = new ArrayBuffer(spec.size);
    this.u32 = new Uint32Array(this.data);
    this.i32 = new Int32Array(this.data);
    this.f32 = new Float32Array(this.data);
    for (const f of spec.fields) this.index.set(f.name, { word: f.offset / 4, type: f.type });
    this.buffer = ctx.createBuffer({ label, size: spec.size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
    for (const [k, v] of Object.entries(values)) this.set(k, v);
  }

  /** Sets a field (u32 fields must be integers in 0..2^32-1). */
  set(name: string, value: number): void {
    const f = this.index.get(name);
    if (!f) throw new RangeError(`${this.spec.struct} has no field ${name}`);
    if (f.type === 'f32') this.f32[f.word] = value;
    else if (f.type === 'i32') this.i32[f.word] = value;
    else {
      if (!(Number.isInteger(value) && value >= 0 && value <= 0xffffffff)) throw new RangeError(`${this.spec.struct}.${name} = ${value} is not a u32`);
      this.u32[f.word] = value;
    }
    this.dirty = true;
  }

  get(name: string): number {
    const f = this.index.get(name);
    if (!f) throw new RangeError(`${this.spec.struct} has no field ${name}`);
    return f.type === 'f32' ? this.f32[f.word]! : f.type === 'i32' ? this.i32[f.word]! : this.u32[f.word]!;
  }

  /** Writes the CPU copy to the GPU if it changed. */
  flush(): void {
    if (!this.dirty) return;
    this.ctx.queue.writeBuffer(this.buffer, 0, this.data);
    this.dirty = false;
  }

  destroy(): void {
    this.ctx.destroyBuffer(this.buffer);
  }
}
