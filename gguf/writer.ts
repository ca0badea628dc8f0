// GGUF writer: produces files llama.cpp loads (v3, little-endian, tensors packed in info order,
// each tensor aligned). Tensor data may be given lazily so that large files stream to disk with
// bounded memory.
import { open } from 'node:fs/promises';
import {
  GGUFValueType,
  GGML_TYPE_INFO,
  tensorBytes,
  type GGMLType,
  type GGUFMetadataEntry,
  type GGUFScalar,
} from './types.js';

export interface GGUFWriteTensor {
  name: string;
  type: GGMLType;
  /** ggml order, shape[0] fastest */
  shape: number[];
  /** the encoded bytes (exactly tensorBytes(type, shape)), or a function producing them on demand */
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

export interface GGUFWriteOptions {
  /** GGUF version, 3 by default */
  version?: 2 | 3;
  /** data alignment, `general.alignment` if present in the metadata, else 32 */
  alignment?: number;
}

/** Shorthands for typed metadata entries. */
export const kv = {
  str: (key: string, value: string): GGUFMetadataEntry => ({ key, type: GGUFValueType.STRING, value }),
  u32: (key: string, value: number): GGUFMetadataEntry => ({ key, type: GGUFValueType.UINT32, value }),
  i32: (key: string, value: number): GGUFMetadataEntry => ({ key, type: GGUFValueType.INT32, value }),
  f32: (key: string, value: number): GGUFMetadataEntry => ({ key, type: GGUFValueType.FLOAT32, value }),
  bool: (key: string, value: boolean): GGUFMetadataEntry => ({ key, type: GGUFValueType.BOOL, value }),
  u64: (key: string, value: bigint | number): GGUFMetadataEntry => ({ key, type: GGUFValueType.UINT64, value: BigInt(value) }),
  strs: (key: string, value: string[]): GGUFMetadataEntry => ({
    key, type: GGUFValueType.ARRAY, arrayType: GGUFValueType.STRING, value,
  }),
  i32s: (key: string, value: number[]): GGUFMetadataEntry => ({
    key, type: GGUFValueType.ARRAY, arrayType: GGUFValueType.INT32, value,
  }),
  f32s: (key: string, value: number[]): GGUFMetadataEntry => ({
    key, type: GGUFValueType.ARRAY, arrayType: GGUFValueType.FLOAT32, value,
  }),
};

const encoder = new TextEncoder();

/** Growable little-endian byte sink for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number) { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number) { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number) { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number) { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number) { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number) { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number) { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number) { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: bigint | number) { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: bigint | number) { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array) { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  str(s: string) { const b = encoder.encode(s); this.u64(b.length); this.bytes(b); }
  pad(alignment: number) { while (this.length % alignment !== 0) this.u8(0); }
  result(): Uint8Array { return this.buf.slice(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GGUFValueType, v: GGUFScalar, key: string): void {
  switch (type) {
    case GGUFValueType.UINT8: sink.u8(Number(v)); break;
    case GGUFValueType.INT8: sink.i8(Number(v)); break;
    case GGUFValueType.UINT16: sink.u16(Number(v)); break;
    case GGUFValueType.INT16: sink.i16(Number(v)); break;
    case GGUFValueType.UINT32: sink.u32(Number(v)); break;
    case GGUFValueType.INT32: sink.i32(Number(v)); break;
    case GGUFValueType.FLOAT32: sink.f32(Number(v)); break;
    case GGUFValueType.FLOAT64: sink.f64(Number(v)); break;
    case GGUFValueType.BOOL: sink.u8(v ? 1 : 0); break;
    case GGUFValueType.UINT64: sink.u64(typeof v === 'bigint' ? v : BigInt(Number(v))); break;
    case GGUFValueType.INT64: sink.i64(typeof v === 'bigint' ? v : BigInt(Number(v))); break;
    case GGUFValueType.STRING: sink.str(String(v)); break;
    default: throw new TypeError(`metadata ${key}: cannot write value type ${type} as a scalar`);
  }
}

interface Layout {
  header: Uint8Array;
  /** absolute offset of each tensor's data */
  offsets: number[];
  sizes: number[];
  alignment: number;
  totalBytes: number;
}

function layout(metadata: GGUFMetadataEntry[], tensors: GGUFWriteTensor[], opts: GGUFWriteOptions): Layout {
  const alignEntry = metadata.find((m) => m.key === 'general.alignment');
  if (alignEntry && alignEntry.type !== GGUFValueType.UINT32) {
    throw new TypeError('general.alignment must be a UINT32 entry (readers reject any other type)');
  }
  const metaAlignment = alignEntry ? Number(alignEntry.value) : undefined;
  if (opts.alignment !== undefined && metaAlignment !== undefined && opts.alignment !== metaAlignment) {
    throw new RangeError(`alignment option ${opts.alignment} disagrees with general.alignment ${metaAlignment}`);
  }
  const alignment = opts.alignment ?? metaAlignment ?? 32;
  if (!(Number.isInteger(alignment) && alignment > 0 && (alignment & (alignment - 1)) === 0)) {
    throw new RangeError(`alignment ${alignment} is not a power of two`);
  }
  // A reader only learns the alignment from general.alignment: record a non-default one there.
  if (!alignEntry && alignment !== 32) {
    metadata = [...metadata, { key: 'general.alignment', type: GGUFValueType.UINT32, value: alignment }];
  }
  const sink = new ByteSink();
  sink.bytes(encoder.encode('GGUF'));
  sink.u32(opts.version ?? 3);
  sink.u64(tensors.length);
  sink.u64(metadata.length);
  for (const m of metadata) {
    sink.str(m.key);
    sink.u32(m.type);
    if (m.type === GGUFValueType.ARRAY) {
      if (m.arrayType === undefined || !Array.isArray(m.value)) {
        throw new TypeError(`metadata ${m.key}: an ARRAY entry needs arrayType and an array value`);
      }
      sink.u32(m.arrayType);
      sink.u64(m.value.length);
      for (const v of m.value) writeScalar(sink, m.arrayType, v, m.key);
    } else {
      writeScalar(sink, m.type, m.value as GGUFScalar, m.key);
    }
  }
  const sizes: number[] = [];
  const relative: number[] = [];
  let cursor = 0;
  for (const t of tensors) {
    if (!GGML_TYPE_INFO[t.type]) throw new TypeError(`tensor ${t.name}: unknown ggml type ${t.type}`);
    const size = tensorBytes(t.type, t.shape);
    sizes.push(size);
    relative.push(cursor);
    sink.str(t.name);
    sink.u32(t.shape.length);
    for (const d of t.shape) sink.u64(d);
    sink.u32(t.type);
    sink.u64(cursor);
    cursor += Math.ceil(size / alignment) * alignment;
  }
  sink.pad(alignment);
  const header = sink.result();
  return {
    header,
    offsets: relative.map((r) => header.length + r),
    sizes,
    alignment,
    totalBytes: header.length + cursor,
  };
}

async function tensorData(t: GGUFWriteTensor, expected: number): Promise<Uint8Array> {
  const data = typeof t.data === 'function' ? await t.data() : t.data;
  if (data.byteLength !== expected) {
    throw new RangeError(`tensor ${t.name}: got ${data.byteLength} bytes, shape ${t.shape.join('x')} needs ${expected}`);
  }
  return data;
}

/** Encodes a whole GGUF file in memory (for small files and tests). */
export async function encodeGGUF(
  metadata: GGUFMetadataEntry[],
  tensors: GGUFWriteTensor[],
  opts: GGUFWriteOptions = {},
): Promise<Uint8Array> {
  const l = layout(metadata, tensors, opts);
  const out = new Uint8Array(l.totalBytes);
  out.set(l.header, 0);
  for (let i = 0; i < tensors.length; i++) out.set(await tensorData(tensors[i]!, l.sizes[i]!), l.offsets[i]!);
  return out;
}

/** Writes a GGUF file, streaming one tensor at a time (memory bounded by the largest tensor). */
export async function writeGGUF(
  path: string,
  metadata: GGUFMetadataEntry[],
  tensors: GGUFWriteTensor[],
  opts: GGUFWriteOptions = {},
): Promise<void> {
  const l = layout(metadata, tensors, opts);
  const fh = await open(path, 'w');
  try {
    await fh.write(l.header, 0, l.header.length, 0);
    for (let i = 0; i < tensors.length; i++) {
      const data = await tensorData(tensors[i]!, l.sizes[i]!);
      await fh.write(data, 0, data.length, l.offsets[i]!);
    }
    // Pad the file to the end of the last aligned tensor so every tensor range lies inside it.
    await fh.truncate(l.totalBytes);
  } finally {
    await fh.close();
  }
}
