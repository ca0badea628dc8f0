// GGUF reader: parses the header (metadata and tensor infos) of a GGUF v2/v3 file with bounded,
// chunked reads, and reads tensor data on demand into the caller's buffers.
//
// Every count, length and offset in a GGUF header is untrusted. The reader validates, in file order,
// and throws GGUFFormatError(message, byteOffset) naming the problem and where it was found:
//
//   header     - magic "GGUF" (offset 0); version (offset 4): a version whose low 16 bits are 0 is a
//                byte-swapped file ("big-endian GGUF files are not supported"), 0, 1 and > 3 are
//                unsupported; tensor_count (offset 8) and kv_count (offset 16) must fit in the bytes
//                left in the file (a tensor info takes >= 24 bytes, a key/value pair >= 14).
//   key/value  - key: non-empty, unique, valid UTF-8; value type 0..12; arrays: element type 0..12
//                and not ARRAY (nested arrays are rejected), element count bounded by the bytes left
//                BEFORE anything is allocated; every string length bounded by the bytes left; strings
//                must be valid UTF-8 (rejected as a fatal TextDecoder would: overlongs, surrogates,
//                cut sequences...; the error points at the first bad byte); bool bytes must be 0 or 1.
//                64-bit integers are returned as bigint, all other numbers as number (GGUFValue).
//   alignment  - `general.alignment`, if present, must be a UINT32 power of two (default 32).
//   tensors    - name: valid UTF-8, < 64 bytes (ggml's GGML_MAX_NAME), unique; n_dims <= 4 (0 is a
//                scalar, as in ggml); every dimension and the element count <= 2^53 - 1 (JS numbers
//                are exact up to there); ggml type: an id ggml does not define -> GGUFFormatError; an
//                id ggml defines but moet has no block geometry for (IQ2_XXS, TQ1_0, ...) ->
//                UnsupportedQuantError naming the type and the byte offset; ne0 must be a multiple of
//                the type's block size; offset must be a multiple of the alignment.
//   data       - data section starts at align(end of tensor infos); every tensor's byte range must lie
//                inside the file and must not overlap another tensor's (gaps are allowed; llama.cpp
//                additionally wants tensors packed in info order, which the reader does not require).
//   truncation - any field that runs past the end of the file -> "truncated file" with the offset.
//
// Memory: nothing is allocated for a count before the bytes it claims are known to be in the file
// and already read, so a hostile header cannot make the reader allocate more than the header's size.
// openGGUF reads the header in chunks (8 MiB, doubling as needed, capped by maxHeaderBytes, 256 MiB by
// default; a larger header is a GGUFFormatError), resuming the parse at the item where the bytes ran
// out, and never reads tensor data until readTensor is called. parseGGUFHeader(bytes, fileSize) checks
// the same things against fileSize; when bytes is a prefix that ends inside the header it throws
// GGUFFormatError("... continues past the N bytes provided").
import { Buffer } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import { GGUFFormatError, UnsupportedQuantError } from './errors.js';
import {
  GGML_TYPE_INFO,
  GGUFValueType,
  type GGMLType,
  type GGUFMetadataEntry,
  type GGUFScalar,
  type GGUFTensorInfo,
  type GGUFValue,
} from './types.js';

/** Data alignment when the file has no `general.alignment`. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Longest tensor name in bytes (ggml's GGML_MAX_NAME is 64 including the NUL). */
export const GGUF_MAX_TENSOR_NAME_BYTES = 63;
/** Most dimensions a tensor may have (GGML_MAX_DIMS). */
export const GGUF_MAX_DIMS = 4;

/** A parsed GGUF header: what parseGGUFHeader returns, and the part of GGUFFile that needs no I/O. */
export interface GGUFHeader {
  /** 2 or 3 */
  version: number;
  /** data alignment: `general.alignment` or 32 */
  alignment: number;
  /** absolute byte offset of the data section (aligned end of the tensor infos) */
  dataOffset: number;
  /** size of the file in bytes */
  fileSize: number;
  /** metadata in file order */
  metadata: Map<string, GGUFMetadataEntry>;
  /** tensor infos in header order, with absolute offsets */
  tensors: GGUFTensorInfo[];
  tensorByName: Map<string, GGUFTensorInfo>;
  /** The value of a metadata key (bigint for 64-bit integers), or undefined when absent. */
  getValue<T extends GGUFValue = GGUFValue>(key: string): T | undefined;
}

/** An open GGUF file: the parsed header plus on-demand tensor reads. */
export interface GGUFFile extends GGUFHeader {
  /**
   * Reads a tensor's data, or `byteLength` bytes of it starting `byteOffset` bytes into it.
   * @param tensor a name, or an info from this file's `tensors`
   * @param dst buffer to fill (at least byteLength bytes); a new one is allocated when omitted
   * @returns the bytes read: `dst.subarray(0, byteLength)` when dst is given
   * @throws RangeError for an unknown tensor, a range outside the tensor or a too-small dst;
   *   GGUFFormatError if the file ends early (it shrank after it was opened); Error after close()
   */
  readTensor(tensor: string | GGUFTensorInfo, dst?: Uint8Array, byteOffset?: number, byteLength?: number): Promise<Uint8Array>;
  /** Closes the file. Idempotent. */
  close(): Promise<void>;
}

export interface OpenGGUFOptions {
  /** first header read, 8 MiB by default (capped by the file size); later reads double it */
  initialReadBytes?: number;
  /** largest header the reader accepts, 256 MiB by default */
  maxHeaderBytes?: number;
}

// ggml type ids that ggml defines (ggml.h), for the error message of a type moet has no geometry for.
// Ids 4, 5, 31-33 and 36-38 were removed from ggml and are rejected as unknown.
const GGML_KNOWN_TYPE_NAMES: Readonly<Record<number, string>> = {
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0',
  40: 'NVFP4', 41: 'Q1_0',
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Smallest on-disk size of a tensor info: name length (8) + n_dims (4) + type (4) + offset (8). */
const MIN_TENSOR_INFO_BYTES = 24;
/** Smallest on-disk size of a key/value pair: key length (8) + 1-byte key + type (4) + 1-byte value. */
const MIN_KV_BYTES = 14;

/** Bytes of one array element of each value type (strings: at least their 8-byte length). */
const ELEMENT_MIN_BYTES: Readonly<Record<number, number>> = {
  [GGUFValueType.UINT8]: 1,
  [GGUFValueType.INT8]: 1,
  [GGUFValueType.UINT16]: 2,
  [GGUFValueType.INT16]: 2,
  [GGUFValueType.UINT32]: 4,
  [GGUFValueType.INT32]: 4,
  [GGUFValueType.FLOAT32]: 4,
  [GGUFValueType.BOOL]: 1,
  [GGUFValueType.STRING]: 8,
  [GGUFValueType.UINT64]: 8,
  [GGUFValueType.INT64]: 8,
  [GGUFValueType.FLOAT64]: 8,
};

function valueTypeName(t: number): string {
  return GGUFValueType[t] ?? `type ${t}`;
}

/**
 * Raised inside the parser when the header continues past the bytes in memory but not past the end of
 * the file. openGGUF catches it and reads more; parseGGUFHeader lets it through (it is a
 * GGUFFormatError: the caller passed a prefix of the file that is shorter than the header).
 */
class NeedMoreBytes extends GGUFFormatError {
  constructor(readonly needed: number, have: number, what: string, offset: number) {
    super(`${what} continues past the ${have} bytes provided (the header needs at least ${needed})`, offset);
  }
}

// ---------------------------------------------------------------------------------------------
// UTF-8

/**
 * Strict UTF-8 validation of bytes[start, end) (WHATWG rules: no overlongs, no surrogates,
 * <= U+10FFFF, no cut sequences). Returns -1 when valid and ASCII, -2 when valid and not ASCII, or the
 * index of the first byte of the first invalid sequence.
 */
function checkUtf8(bytes: Uint8Array, start: number, end: number): number {
  let ascii = true;
  let i = start;
  while (i < end) {
    const b0 = bytes[i]!;
    if (b0 < 0x80) {
      i += 1;
      continue;
    }
    ascii = false;
    let n: number; // continuation bytes
    let lo = 0x80;
    let hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) n = 1;
    else if (b0 >= 0xe0 && b0 <= 0xef) {
      n = 2;
      if (b0 === 0xe0) lo = 0xa0;
      else if (b0 === 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      n = 3;
      if (b0 === 0xf0) lo = 0x90;
      else if (b0 === 0xf4) hi = 0x8f;
    } else return i;
    if (i + n >= end) return i; // sequence cut by the end of the string
    for (let k = 1; k <= n; k++) {
      const b = bytes[i + k]!;
      if (b < lo || b > hi) return i;
      lo = 0x80;
      hi = 0xbf;
    }
    i += n + 1;
  }
  return ascii ? -1 : -2;
}

// ---------------------------------------------------------------------------------------------
// Parser

/** What a field is, for error messages; a function when building the text would cost on the hot path. */
type Label = string | (() => string);
const text = (what: Label): string => (typeof what === 'string' ? what : what());

class Cursor {
  pos = 0;
  bytes!: Uint8Array;
  private view!: DataView;
  /** the same bytes as a Buffer, for its fast string decoding (the bytes are validated first) */
  private buf!: Buffer;

  constructor(bytes: Uint8Array, readonly fileSize: number) {
    this.setBytes(bytes);
  }

  /** Replaces the bytes in memory with a longer prefix of the same file. */
  setBytes(bytes: Uint8Array): void {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes left in the file after the cursor. */
  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Ensures `n` bytes at the cursor are in the file and in memory. */
  need(n: number, what: Label, suffix = ''): void {
    if (n > this.fileSize - this.pos) {
      throw new GGUFFormatError(
        `truncated file: ${text(what)}${suffix} needs ${n} bytes but the file has ` +
          `${Math.max(0, this.fileSize - this.pos)} left`,
        this.pos,
      );
    }
    if (this.pos + n > this.bytes.length) {
      throw new NeedMoreBytes(this.pos + n, this.bytes.length, text(what) + suffix, this.pos);
    }
  }

  u32(what: Label): number { this.need(4, what); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  u64(what: Label, suffix = ''): bigint {
    this.need(8, what, suffix);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /**
   * Reads a u64 count of items that take at least `minBytes` each, rejecting one that claims more bytes
   * than the file has left, and makes sure those minimum bytes are in memory before returning, so the
   * caller may allocate `count` entries.
   */
  count(what: Label, minBytes: number): number {
    const at = this.pos;
    return this.checkCount(this.u64(what), at, what, minBytes);
  }

  /** The bound of count(), for a count read earlier at `at` (items start at the cursor). */
  checkCount(n: bigint, at: number, what: Label, minBytes: number): number {
    const left = this.remaining;
    if (n * BigInt(minBytes) > BigInt(left)) {
      throw new GGUFFormatError(`${text(what)} ${n} is larger than the ${left} bytes left in the file allow`, at);
    }
    const count = Number(n);
    if (count > 0) {
      const save = this.pos;
      this.need(count * minBytes, what);
      this.pos = save;
    }
    return count;
  }

  /** A GGUF string: u64 byte length, then UTF-8 bytes. */
  str(what: Label): string {
    const at = this.pos;
    this.need(8, what, ' length');
    // the length as a double: exact below 2^53, and any larger value still compares as larger
    const n = this.view.getUint32(at + 4, true) * 2 ** 32 + this.view.getUint32(at, true);
    this.pos += 8;
    const left = this.remaining;
    if (n > left) {
      const len = this.view.getBigUint64(at, true);
      throw new GGUFFormatError(`${text(what)} length ${len} is larger than the ${left} bytes left in the file`, at);
    }
    this.need(n, what);
    const start = this.pos;
    const end = start + n;
    const check = checkUtf8(this.bytes, start, end);
    if (check >= 0) throw new GGUFFormatError(`${text(what)} is not valid UTF-8`, check);
    const s = this.buf.toString(check === -1 ? 'latin1' : 'utf8', start, end);
    this.pos = end;
    return s;
  }
}

/** Reads `count` values of a fixed-size scalar type. The caller has checked the bytes are there. */
function readScalars(c: Cursor, type: GGUFValueType, count: number, what: string): GGUFScalar[] {
  const size = ELEMENT_MIN_BYTES[type]!;
  c.need(count * size, what);
  const view = new DataView(c.bytes.buffer, c.bytes.byteOffset + c.pos, count * size);
  const out = new Array<GGUFScalar>(count);
  switch (type) {
    case GGUFValueType.UINT8: for (let i = 0; i < count; i++) out[i] = view.getUint8(i); break;
    case GGUFValueType.INT8: for (let i = 0; i < count; i++) out[i] = view.getInt8(i); break;
    case GGUFValueType.UINT16: for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true); break;
    case GGUFValueType.INT16: for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true); break;
    case GGUFValueType.UINT32: for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true); break;
    case GGUFValueType.INT32: for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true); break;
    case GGUFValueType.FLOAT32: for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true); break;
    case GGUFValueType.UINT64: for (let i = 0; i < count; i++) out[i] = view.getBigUint64(8 * i, true); break;
    case GGUFValueType.INT64: for (let i = 0; i < count; i++) out[i] = view.getBigInt64(8 * i, true); break;
    case GGUFValueType.FLOAT64: for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true); break;
    case GGUFValueType.BOOL:
      for (let i = 0; i < count; i++) {
        const b = view.getUint8(i);
        if (b > 1) throw new GGUFFormatError(`${what}: bool value ${b} is neither 0 nor 1`, c.pos + i);
        out[i] = b === 1;
      }
      break;
    default:
      throw new Error(`unreachable: value type ${type}`);
  }
  c.pos += count * size;
  return out;
}

function readValue(c: Cursor, type: GGUFValueType, key: string): { value: GGUFValue; arrayType?: GGUFValueType } {
  const what = `value of "${key}"`;
  if (type === GGUFValueType.STRING) return { value: c.str(what) };
  if (type !== GGUFValueType.ARRAY) return { value: readScalars(c, type, 1, what)[0]! };
  const typeAt = c.pos;
  const elemType = c.u32(`element type of "${key}"`);
  if (elemType === GGUFValueType.ARRAY) {
    throw new GGUFFormatError(`metadata "${key}" is an array of arrays; nested arrays are not supported`, typeAt);
  }
  if (ELEMENT_MIN_BYTES[elemType] === undefined) {
    throw new GGUFFormatError(`metadata "${key}" is an array of unknown value type ${elemType}`, typeAt);
  }
  const n = c.count(`element count of "${key}"`, ELEMENT_MIN_BYTES[elemType]!);
  if (elemType !== GGUFValueType.STRING) {
    return { value: readScalars(c, elemType, n, what), arrayType: elemType };
  }
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = c.str(() => `element ${i} of "${key}"`);
  return { value: out, arrayType: elemType };
}

function makeHeader(
  version: number,
  alignment: number,
  dataOffset: number,
  fileSize: number,
  metadata: Map<string, GGUFMetadataEntry>,
  tensors: GGUFTensorInfo[],
  tensorByName: Map<string, GGUFTensorInfo>,
): GGUFHeader {
  return {
    version,
    alignment,
    dataOffset,
    fileSize,
    metadata,
    tensors,
    tensorByName,
    getValue<T extends GGUFValue = GGUFValue>(key: string): T | undefined {
      return metadata.get(key)?.value as T | undefined;
    },
  };
}

/**
 * The header parser. It reads one item (the fixed header, a key/value pair, a tensor info) at a time
 * and commits it only once the item is complete, so that when the bytes in memory run out
 * (NeedMoreBytes) it can be given a longer prefix with more() and resumed with run() from the item it
 * stopped in, instead of starting over.
 */
class HeaderParser {
  private readonly c: Cursor;
  private phase: 'fixed' | 'kv' | 'tensors' | 'done' = 'fixed';
  private version = 0;
  private tensorCount = 0;
  private kvCount = 0;
  private alignment = GGUF_DEFAULT_ALIGNMENT;
  private readonly metadata = new Map<string, GGUFMetadataEntry>();
  private readonly valueOffsets = new Map<string, number>();
  private readonly tensors: GGUFTensorInfo[] = [];
  private readonly tensorByName = new Map<string, GGUFTensorInfo>();
  private readonly offsetFieldAt: number[] = [];

  constructor(bytes: Uint8Array, private readonly fileSize: number) {
    this.c = new Cursor(bytes, fileSize);
  }

  /** Gives the parser a longer prefix of the same file (after run() threw NeedMoreBytes). */
  more(bytes: Uint8Array): void {
    this.c.setBytes(bytes);
  }

  /** Parses on from where it stopped; throws NeedMoreBytes (resumable) or a final error. */
  run(): GGUFHeader {
    const c = this.c;
    let itemStart = c.pos;
    try {
      if (this.phase === 'fixed') {
        this.fixedHeader();
        this.phase = 'kv';
      }
      while (this.phase === 'kv' && this.metadata.size < this.kvCount) {
        itemStart = c.pos;
        this.keyValue(this.metadata.size);
      }
      if (this.phase === 'kv') {
        this.alignment = this.readAlignment();
        this.phase = 'tensors';
      }
      while (this.phase === 'tensors' && this.tensors.length < this.tensorCount) {
        itemStart = c.pos;
        this.tensorInfo(this.tensors.length);
      }
    } catch (e) {
      if (e instanceof NeedMoreBytes) c.pos = itemStart;
      throw e;
    }
    this.phase = 'done';
    return this.finish();
  }

  private fixedHeader(): void {
    const c = this.c;
    c.need(4, 'magic');
    const b = c.bytes;
    if (b[0] !== 0x47 || b[1] !== 0x47 || b[2] !== 0x55 || b[3] !== 0x46) {
      const got = Array.from(b.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join(' ');
      throw new GGUFFormatError(`wrong magic: expected "GGUF" (47 47 55 46), got ${got}; not a GGUF file`, 0);
    }
    c.pos = 4;
    const version = c.u32('version');
    if (version !== 0 && (version & 0xffff) === 0) {
      throw new GGUFFormatError(
        `big-endian GGUF files are not supported (version field reads 0x${version.toString(16)})`,
        4,
      );
    }
    if (version < 2 || version > 3) {
      throw new GGUFFormatError(`unsupported GGUF version ${version} (moet reads versions 2 and 3)`, 4);
    }
    const rawTensorCount = c.u64('tensor count');
    const rawKvCount = c.u64('key/value count');
    this.tensorCount = c.checkCount(rawTensorCount, 8, 'tensor count', MIN_TENSOR_INFO_BYTES);
    this.kvCount = c.checkCount(rawKvCount, 16, 'key/value count', MIN_KV_BYTES);
    this.version = version;
  }

  private keyValue(i: number): void {
    const c = this.c;
    const keyAt = c.pos;
    const key = c.str(() => `key ${i}`);
    if (key.length === 0) throw new GGUFFormatError(`key ${i} is empty`, keyAt);
    if (this.metadata.has(key)) throw new GGUFFormatError(`duplicate key "${key}"`, keyAt);
    const typeAt = c.pos;
    const type = c.u32(() => `value type of "${key}"`);
    if (type !== GGUFValueType.ARRAY && ELEMENT_MIN_BYTES[type] === undefined) {
      throw new GGUFFormatError(`metadata "${key}" has unknown value type ${type}`, typeAt);
    }
    const valueAt = c.pos;
    const { value, arrayType } = readValue(c, type, key);
    const entry: GGUFMetadataEntry = { key, type, value };
    if (arrayType !== undefined) entry.arrayType = arrayType;
    this.metadata.set(key, entry);
    this.valueOffsets.set(key, valueAt);
  }

  private readAlignment(): number {
    const entry = this.metadata.get('general.alignment');
    if (!entry) return GGUF_DEFAULT_ALIGNMENT;
    const at = this.valueOffsets.get('general.alignment')!;
    if (entry.type !== GGUFValueType.UINT32) {
      throw new GGUFFormatError(`general.alignment must be UINT32, got ${valueTypeName(entry.type)}`, at);
    }
    const alignment = entry.value as number;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
      throw new GGUFFormatError(`general.alignment ${alignment} is not a power of two`, at);
    }
    return alignment;
  }

  private tensorInfo(i: number): void {
    const c = this.c;
    const alignment = this.alignment;
    const nameAt = c.pos;
    const name = c.str(() => `name of tensor ${i}`);
    const nameBytes = c.pos - nameAt - 8;
    if (nameBytes > GGUF_MAX_TENSOR_NAME_BYTES) {
      throw new GGUFFormatError(
        `tensor ${i} name is ${nameBytes} bytes long, more than ${GGUF_MAX_TENSOR_NAME_BYTES}`,
        nameAt,
      );
    }
    if (this.tensorByName.has(name)) throw new GGUFFormatError(`duplicate tensor name "${name}"`, nameAt);

    const dimsAt = c.pos;
    const nDims = c.u32(() => `n_dims of tensor "${name}"`);
    if (nDims > GGUF_MAX_DIMS) {
      throw new GGUFFormatError(`tensor "${name}" has ${nDims} dimensions, more than ${GGUF_MAX_DIMS}`, dimsAt);
    }
    const neAt = c.pos;
    const shape: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const dimAt = c.pos;
      const ne = c.u64(() => `dimension ${d} of tensor "${name}"`);
      if (ne > MAX_SAFE) {
        throw new GGUFFormatError(`tensor "${name}" dimension ${d} is ${ne}, more than 2^53 - 1`, dimAt);
      }
      shape.push(Number(ne));
      elements *= ne;
    }
    if (elements > MAX_SAFE) {
      throw new GGUFFormatError(
        `tensor "${name}" shape [${shape.join(', ')}] has ${elements} elements, more than 2^53 - 1`,
        neAt,
      );
    }

    const typeAt = c.pos;
    const type = c.u32(() => `type of tensor "${name}"`);
    const info = GGML_TYPE_INFO[type];
    if (!info) {
      const known = GGML_KNOWN_TYPE_NAMES[type];
      if (known) {
        throw new UnsupportedQuantError(
          `tensor "${name}" has ggml type ${known} (${type}), which moet does not support (at byte ${typeAt})`,
          type,
        );
      }
      throw new GGUFFormatError(`tensor "${name}" has unknown ggml type id ${type}`, typeAt);
    }
    const ne0 = nDims > 0 ? shape[0]! : 1;
    if (ne0 % info.blockSize !== 0) {
      throw new GGUFFormatError(
        `tensor "${name}" row length ${ne0} is not a multiple of ${info.name}'s block size ${info.blockSize}`,
        nDims > 0 ? neAt : dimsAt,
      );
    }
    const byteLength = (elements / BigInt(info.blockSize)) * BigInt(info.typeSize);

    const offAt = c.pos;
    const rel = c.u64(() => `data offset of tensor "${name}"`);
    if (rel % BigInt(alignment) !== 0n) {
      throw new GGUFFormatError(
        `tensor "${name}" data offset ${rel} is not a multiple of the alignment ${alignment}`,
        offAt,
      );
    }
    if (rel + byteLength > BigInt(this.fileSize)) {
      throw new GGUFFormatError(
        `tensor "${name}" data [${rel}, ${rel + byteLength}) relative to the data section runs past ` +
          `the end of the file (${this.fileSize} bytes)`,
        offAt,
      );
    }
    const t: GGUFTensorInfo = {
      name,
      shape,
      type: type as GGMLType,
      relativeOffset: Number(rel),
      offset: 0, // set in finish(), once the data section's start is known
      byteLength: Number(byteLength),
    };
    this.tensors.push(t);
    this.tensorByName.set(name, t);
    this.offsetFieldAt.push(offAt);
  }

  /** Checks the tensor data ranges against the file and each other. */
  private finish(): GGUFHeader {
    const { c, tensors, fileSize, alignment, offsetFieldAt } = this;
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    if (tensors.length > 0 && dataOffset > fileSize) {
      throw new GGUFFormatError(
        `truncated file: the data section starts at ${dataOffset}, past the end of the file (${fileSize} bytes)`,
        c.pos,
      );
    }
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      t.offset = dataOffset + t.relativeOffset;
      if (t.offset + t.byteLength > fileSize) {
        throw new GGUFFormatError(
          `tensor "${t.name}" data [${t.offset}, ${t.offset + t.byteLength}) runs past the end of the file ` +
            `(${fileSize} bytes)`,
          offsetFieldAt[i]!,
        );
      }
    }
    const order = tensors.map((_, i) => i).filter((i) => tensors[i]!.byteLength > 0);
    order.sort((a, b) => tensors[a]!.offset - tensors[b]!.offset);
    for (let k = 1; k < order.length; k++) {
      const prev = tensors[order[k - 1]!]!;
      const cur = tensors[order[k]!]!;
      if (prev.offset + prev.byteLength > cur.offset) {
        throw new GGUFFormatError(
          `tensor "${cur.name}" data [${cur.offset}, ${cur.offset + cur.byteLength}) overlaps tensor ` +
            `"${prev.name}" [${prev.offset}, ${prev.offset + prev.byteLength})`,
          offsetFieldAt[order[k]!]!,
        );
      }
    }
    return makeHeader(this.version, alignment, dataOffset, fileSize, this.metadata, tensors, this.tensorByName);
  }
}

/**
 * Parses and validates a GGUF header held in memory.
 * @param bytes the file, or a prefix of it that holds the whole header
 * @param fileSize size of the whole file (defaults to bytes.length); tensor ranges are checked against it
 * @throws GGUFFormatError for a malformed header (message and byte offset), including a prefix shorter
 *   than the header; UnsupportedQuantError for a ggml tensor type moet has no geometry for;
 *   RangeError if fileSize is not an integer >= bytes.length
 */
export function parseGGUFHeader(bytes: Uint8Array, fileSize: number = bytes.length): GGUFHeader {
  if (!Number.isSafeInteger(fileSize) || fileSize < bytes.length) {
    throw new RangeError(`fileSize ${fileSize} must be an integer >= the ${bytes.length} bytes given`);
  }
  return new HeaderParser(bytes, fileSize).run();
}

// ---------------------------------------------------------------------------------------------
// Files

/** Largest single read (Node caps one read at 2 GiB - 1). */
const MAX_READ = 1 << 30;

async function readFully(fh: FileHandle, dst: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < dst.length) {
    const n = Math.min(MAX_READ, dst.length - done);
    const { bytesRead } = await fh.read(dst, done, n, position + done);
    if (bytesRead === 0) {
      throw new GGUFFormatError(`unexpected end of file while reading ${what}`, position + done);
    }
    done += bytesRead;
  }
}

class OpenGGUFFile implements GGUFFile {
  readonly version: number;
  readonly alignment: number;
  readonly dataOffset: number;
  readonly fileSize: number;
  readonly metadata: Map<string, GGUFMetadataEntry>;
  readonly tensors: GGUFTensorInfo[];
  readonly tensorByName: Map<string, GGUFTensorInfo>;
  private fh: FileHandle | undefined;

  constructor(h: GGUFHeader, fh: FileHandle) {
    this.version = h.version;
    this.alignment = h.alignment;
    this.dataOffset = h.dataOffset;
    this.fileSize = h.fileSize;
    this.metadata = h.metadata;
    this.tensors = h.tensors;
    this.tensorByName = h.tensorByName;
    this.fh = fh;
  }

  getValue<T extends GGUFValue = GGUFValue>(key: string): T | undefined {
    return this.metadata.get(key)?.value as T | undefined;
  }

  async readTensor(
    tensor: string | GGUFTensorInfo,
    dst?: Uint8Array,
    byteOffset = 0,
    byteLength?: number,
  ): Promise<Uint8Array> {
    const name = typeof tensor === 'string' ? tensor : tensor.name;
    const t = this.tensorByName.get(name);
    if (!t) throw new RangeError(`no tensor named "${name}" in this GGUF file`);
    const length = byteLength ?? t.byteLength - byteOffset;
    if (!Number.isSafeInteger(byteOffset) || !Number.isSafeInteger(length) || byteOffset < 0 || length < 0 ||
      byteOffset + length > t.byteLength) {
      throw new RangeError(
        `bytes [${byteOffset}, ${byteOffset + length}) are outside tensor "${name}" (${t.byteLength} bytes)`,
      );
    }
    if (dst && dst.byteLength < length) {
      throw new RangeError(`destination holds ${dst.byteLength} bytes, tensor "${name}" read needs ${length}`);
    }
    const fh = this.fh;
    if (!fh) throw new Error('GGUF file is closed');
    const out = dst ? dst.subarray(0, length) : new Uint8Array(length);
    await readFully(fh, out, t.offset + byteOffset, `tensor "${name}"`);
    return out;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/**
 * Opens a GGUF file and parses its header, reading only the header (in chunks of 8 MiB, doubling,
 * up to `maxHeaderBytes`). Tensor data is read later with `readTensor`. Call `close()` when done.
 * @throws GGUFFormatError for a malformed header or one larger than maxHeaderBytes;
 *   UnsupportedQuantError for a ggml tensor type moet has no geometry for; Node's fs errors (ENOENT...)
 */
/**
 * First header read. A header with Qwen3's 151,936-token vocabulary and its merges is about 5 MB:
 * read whole at once it parses in half the time of a 1 MiB start, whose doublings re-parse the item
 * (the token or merge array) the bytes ran out in each time.
 */
const DEFAULT_INITIAL_READ = 8 << 20;

export async function openGGUF(path: string, opts: OpenGGUFOptions = {}): Promise<GGUFFile> {
  const cap = Math.max(1, Math.floor(opts.maxHeaderBytes ?? 256 << 20));
  const initial = Math.min(cap, Math.max(1, Math.floor(opts.initialReadBytes ?? DEFAULT_INITIAL_READ)));
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    let buf = new Uint8Array(Math.min(size, initial));
    await readFully(fh, buf, 0, 'the header');
    const parser = new HeaderParser(buf, size);
    for (;;) {
      try {
        return new OpenGGUFFile(parser.run(), fh);
      } catch (e) {
        if (!(e instanceof NeedMoreBytes)) throw e;
        if (e.needed > cap) {
          throw new GGUFFormatError(
            `the header is larger than the ${cap}-byte limit (openGGUF option maxHeaderBytes)`,
            e.offset,
          );
        }
        const next = new Uint8Array(Math.min(size, cap, Math.max(e.needed, buf.length * 2)));
        next.set(buf);
        await readFully(fh, next.subarray(buf.length), buf.length, 'the header');
        buf = next;
        parser.more(buf);
      }
    }
  } catch (e) {
    await fh.close();
    throw e;
  }
}
