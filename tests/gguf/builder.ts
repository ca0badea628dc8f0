// Low-level GGUF byte builder for tests: writes any field, valid or not, and remembers where each
// field is so that tests can assert the byte offset an error reports. gguf/writer.ts makes valid
// files; this makes the broken ones.
import { GGUFValueType } from '../../gguf/types.js';

const enc = new TextEncoder();

export class RawGGUF {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;
  /** offsets of every u64 count / length field written (header counts, string lengths, array counts) */
  readonly countFields: number[] = [];
  /** offsets of u32 type fields written by kv(), arr() and tensor() (value, element and ggml types, n_dims) */
  readonly typeFields: number[] = [];
  /** named offsets recorded with mark() */
  readonly marks = new Map<string, number>();

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.length + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** Records the current offset under `name` and returns it. */
  mark(name: string): number {
    this.marks.set(name, this.length);
    return this.length;
  }
  at(name: string): number {
    const v = this.marks.get(name);
    if (v === undefined) throw new Error(`no mark ${name}`);
    return v;
  }

  u8(v: number): this { this.view.setUint8(this.reserve(1), v); return this; }
  i8(v: number): this { this.view.setInt8(this.reserve(1), v); return this; }
  u16(v: number): this { this.view.setUint16(this.reserve(2), v, true); return this; }
  i16(v: number): this { this.view.setInt16(this.reserve(2), v, true); return this; }
  u32(v: number): this { this.view.setUint32(this.reserve(4), v, true); return this; }
  i32(v: number): this { this.view.setInt32(this.reserve(4), v, true); return this; }
  f32(v: number): this { this.view.setFloat32(this.reserve(4), v, true); return this; }
  f64(v: number): this { this.view.setFloat64(this.reserve(8), v, true); return this; }
  u64(v: bigint | number, isCount = false): this {
    const at = this.reserve(8);
    if (isCount) this.countFields.push(at);
    this.view.setBigUint64(at, BigInt(v), true);
    return this;
  }
  i64(v: bigint | number): this { this.view.setBigInt64(this.reserve(8), BigInt(v), true); return this; }
  bytes(b: Uint8Array | number[]): this {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** A GGUF string (u64 length + bytes); raw bytes allow invalid UTF-8; `len` overrides the length. */
  str(s: string | Uint8Array | number[], len?: bigint | number): this {
    const b = typeof s === 'string' ? enc.encode(s) : s;
    this.u64(len ?? b.length, true);
    return this.bytes(b);
  }
  /** magic, version, tensor count, kv count */
  header(version: number, nTensors: bigint | number, nKv: bigint | number, magic = 'GGUF'): this {
    this.bytes(enc.encode(magic));
    this.u32(version);
    this.u64(nTensors, true);
    this.u64(nKv, true);
    return this;
  }
  /** key + value type; `value` writes the value */
  kv(key: string | Uint8Array, type: number, value: (b: this) => void): this {
    this.str(key);
    this.typeFields.push(this.length);
    this.u32(type);
    value(this);
    return this;
  }
  kvU32(key: string, v: number): this { return this.kv(key, GGUFValueType.UINT32, (b) => b.u32(v)); }
  kvStr(key: string, v: string): this { return this.kv(key, GGUFValueType.STRING, (b) => b.str(v)); }
  /** array header: element type + count */
  arr(elemType: number, count: bigint | number): this {
    this.typeFields.push(this.length);
    return this.u32(elemType).u64(count, true);
  }
  /** a tensor info */
  tensor(name: string | Uint8Array, shape: (number | bigint)[], type: number, offset: bigint | number): this {
    this.str(name);
    this.typeFields.push(this.length);
    this.u32(shape.length);
    for (const d of shape) this.u64(d);
    this.typeFields.push(this.length);
    this.u32(type);
    this.u64(offset);
    return this;
  }
  pad(alignment: number): this {
    while (this.length % alignment !== 0) this.u8(0);
    return this;
  }
  zeros(n: number): this {
    this.reserve(n);
    return this;
  }
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}
