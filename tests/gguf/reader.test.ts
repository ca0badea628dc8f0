import { mkdtempSync, rmSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGUFFormatError, UnsupportedQuantError } from '../../gguf/errors.js';
import { openGGUF, parseGGUFHeader, type GGUFHeader } from '../../gguf/reader.js';
import { GGMLType, GGUFValueType, tensorBytes, type GGUFMetadataEntry } from '../../gguf/types.js';
import { encodeGGUF, kv, writeGGUF, type GGUFWriteTensor } from '../../gguf/writer.js';
import { RawGGUF } from './builder.js';

const dir = mkdtempSync(join(tmpdir(), 'moet-gguf-reader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GiB = 2 ** 30;
const V = GGUFValueType;

/** Deterministic bytes. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/** One entry of every value type, scalar and array. */
function everyValueType(): GGUFMetadataEntry[] {
  const e = (key: string, type: GGUFValueType, value: GGUFMetadataEntry['value'], arrayType?: GGUFValueType) =>
    (arrayType === undefined ? { key, type, value } : { key, type, value, arrayType });
  return [
    e('t.u8', V.UINT8, 255),
    e('t.i8', V.INT8, -128),
    e('t.u16', V.UINT16, 65535),
    e('t.i16', V.INT16, -32768),
    e('t.u32', V.UINT32, 4294967295),
    e('t.i32', V.INT32, -2147483648),
    e('t.f32', V.FLOAT32, 1.5),
    e('t.bool.true', V.BOOL, true),
    e('t.bool.false', V.BOOL, false),
    e('t.string', V.STRING, 'héllo, 世界 🙂'),
    e('t.string.empty', V.STRING, ''),
    e('t.u64', V.UINT64, 18446744073709551615n),
    e('t.i64', V.INT64, -9223372036854775808n),
    e('t.f64', V.FLOAT64, Math.PI),
    e('a.u8', V.ARRAY, [0, 1, 255], V.UINT8),
    e('a.i8', V.ARRAY, [-128, 0, 127], V.INT8),
    e('a.u16', V.ARRAY, [0, 65535], V.UINT16),
    e('a.i16', V.ARRAY, [-32768, 32767], V.INT16),
    e('a.u32', V.ARRAY, [0, 4294967295], V.UINT32),
    e('a.i32', V.ARRAY, [-2147483648, 2147483647, 7], V.INT32),
    e('a.f32', V.ARRAY, [0, -2.5, 3.25, Infinity], V.FLOAT32),
    e('a.bool', V.ARRAY, [true, false, true], V.BOOL),
    e('a.string', V.ARRAY, ['a', '', 'Ġthe', '<|im_start|>', 'x'.repeat(300) + 'é'], V.STRING),
    e('a.u64', V.ARRAY, [0n, 2n ** 64n - 1n, 2n ** 53n + 1n], V.UINT64),
    e('a.i64', V.ARRAY, [-(2n ** 63n), 2n ** 63n - 1n], V.INT64),
    e('a.f64', V.ARRAY, [Number.MIN_VALUE, -1e300], V.FLOAT64),
    e('a.empty', V.ARRAY, [], V.INT32),
  ];
}

function sampleTensors(): GGUFWriteTensor[] {
  const mk = (name: string, type: GGMLType, shape: number[], seed: number): GGUFWriteTensor => ({
    name, type, shape, data: pattern(tensorBytes(type, shape), seed),
  });
  return [
    mk('token_embd.weight', GGMLType.Q4_K, [256, 3], 1),
    mk('blk.0.attn_norm.weight', GGMLType.F32, [7], 2),
    mk('blk.0.ffn_gate_exps.weight', GGMLType.Q8_0, [64, 5, 4], 3),
    mk('blk.0.ffn_down_exps.weight', GGMLType.Q6_K, [256, 2, 2, 2], 4),
    mk('output.weight', GGMLType.F16, [3, 5], 5),
    mk('bf16', GGMLType.BF16, [9], 6),
    mk('mxfp4', GGMLType.MXFP4, [32, 3], 7),
    mk('scalar', GGMLType.F32, [], 8),
  ];
}

function expectSameHeader(a: GGUFHeader, b: GGUFHeader): void {
  expect(a.version).toBe(b.version);
  expect(a.alignment).toBe(b.alignment);
  expect(a.dataOffset).toBe(b.dataOffset);
  expect(a.fileSize).toBe(b.fileSize);
  expect([...a.metadata.values()]).toEqual([...b.metadata.values()]);
  expect(a.tensors).toEqual(b.tensors);
}

describe('valid files', () => {
  for (const version of [2, 3] as const) {
    it(`round-trips every value type and tensor infos (v${version})`, async () => {
      const metadata = [kv.str('general.architecture', 'test'), ...everyValueType()];
      const tensors = sampleTensors();
      const bytes = await encodeGGUF(metadata, tensors, { version });
      const h = parseGGUFHeader(bytes);
      expect(h.version).toBe(version);
      expect(h.alignment).toBe(32);
      expect(h.fileSize).toBe(bytes.length);
      expect(h.dataOffset % 32).toBe(0);
      expect([...h.metadata.keys()]).toEqual(metadata.map((m) => m.key));
      for (const m of metadata) {
        const got = h.metadata.get(m.key)!;
        expect(got.type).toBe(m.type);
        expect(got.arrayType).toBe(m.arrayType);
        if (m.type === V.FLOAT32 || m.arrayType === V.FLOAT32) {
          const want = (Array.isArray(m.value) ? m.value : [m.value]).map((x) => Math.fround(Number(x)));
          expect(Array.isArray(got.value) ? got.value : [got.value]).toEqual(want);
        } else {
          expect(got.value).toEqual(m.value);
        }
        expect(h.getValue(m.key)).toEqual(got.value);
      }
      expect(typeof h.getValue('t.u64')).toBe('bigint');
      expect(typeof h.getValue('t.i64')).toBe('bigint');
      expect(h.getValue('missing')).toBeUndefined();

      let expectedRel = 0;
      expect(h.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
      for (const [i, t] of h.tensors.entries()) {
        const w = tensors[i]!;
        expect(t.type).toBe(w.type);
        expect(t.shape).toEqual(w.shape);
        expect(t.byteLength).toBe(tensorBytes(w.type, w.shape));
        expect(t.relativeOffset).toBe(expectedRel);
        expect(t.offset).toBe(h.dataOffset + expectedRel);
        expect(h.tensorByName.get(t.name)).toBe(t);
        expect(bytes.subarray(t.offset, t.offset + t.byteLength)).toEqual(w.data);
        expectedRel += Math.ceil(t.byteLength / 32) * 32;
      }
    });
  }

  it('openGGUF matches parseGGUFHeader and reads tensors, whole and in ranges', async () => {
    const metadata = [kv.str('general.architecture', 'test'), ...everyValueType()];
    const tensors = sampleTensors();
    const path = join(dir, 'valid.gguf');
    await writeGGUF(path, metadata, tensors);
    const mem = parseGGUFHeader(await encodeGGUF(metadata, tensors));
    const f = await openGGUF(path);
    try {
      expectSameHeader(f, mem);
      expect(f.getValue<string>('general.architecture')).toBe('test');
      for (const w of tensors) {
        expect(await f.readTensor(w.name)).toEqual(w.data);
      }
      const t = f.tensorByName.get('blk.0.ffn_gate_exps.weight')!;
      const expert = t.byteLength / 4;
      const dst = new Uint8Array(expert + 10).fill(0xee);
      const got = await f.readTensor(t, dst, 2 * expert, expert);
      expect(got.buffer).toBe(dst.buffer);
      expect(got.length).toBe(expert);
      expect(got).toEqual((tensors[2]!.data as Uint8Array).subarray(2 * expert, 3 * expert));
      expect(dst[expert]).toBe(0xee); // untouched past the range
      expect(await f.readTensor(t, undefined, t.byteLength - 3)).toEqual(
        (tensors[2]!.data as Uint8Array).subarray(t.byteLength - 3),
      );
      expect((await f.readTensor(t, undefined, 5, 0)).length).toBe(0);

      await expect(f.readTensor('nope')).rejects.toThrow(RangeError);
      await expect(f.readTensor(t, undefined, t.byteLength - 1, 2)).rejects.toThrow(RangeError);
      await expect(f.readTensor(t, undefined, -1)).rejects.toThrow(RangeError);
      await expect(f.readTensor(t, new Uint8Array(3))).rejects.toThrow(/destination holds 3 bytes/);
    } finally {
      await f.close();
    }
    await f.close(); // idempotent
    await expect(f.readTensor('scalar')).rejects.toThrow(/closed/);
  });

  it('reads the header in small chunks and gives the same result', async () => {
    const metadata = [...everyValueType(), kv.strs('tokenizer.ggml.tokens', Array.from({ length: 3000 }, (_, i) => `tok${i}`))];
    const path = join(dir, 'chunks.gguf');
    await writeGGUF(path, metadata, sampleTensors());
    const a = await openGGUF(path);
    const b = await openGGUF(path, { initialReadBytes: 7 });
    expectSameHeader(a, b);
    await a.close();
    await b.close();
    await expect(openGGUF(path, { maxHeaderBytes: 4096 })).rejects.toThrow(/larger than the 4096-byte limit/);
  });

  it('honours general.alignment (and the writer records a non-default one)', async () => {
    const tensors = sampleTensors();
    const bytes = await encodeGGUF([kv.u32('general.alignment', 256)], tensors);
    const h = parseGGUFHeader(bytes);
    expect(h.alignment).toBe(256);
    expect(h.dataOffset % 256).toBe(0);
    for (const t of h.tensors) expect(t.relativeOffset % 256).toBe(0);
    // the writer records a non-default alignment option in general.alignment
    const h2 = parseGGUFHeader(await encodeGGUF([], tensors, { alignment: 64 }));
    expect(h2.alignment).toBe(64);
    expect(h2.getValue('general.alignment')).toBe(64);
    await expect(encodeGGUF([kv.u32('general.alignment', 64)], [], { alignment: 32 })).rejects.toThrow(/disagrees/);
    await expect(encodeGGUF([kv.u64('general.alignment', 64)], [])).rejects.toThrow(/must be a UINT32/);
  });

  it('accepts a file with no tensors and no metadata', () => {
    const h = parseGGUFHeader(new RawGGUF().header(3, 0, 0).toBytes());
    expect(h.tensors).toEqual([]);
    expect(h.metadata.size).toBe(0);
    expect(h.dataOffset).toBe(32);
  });

  it('accepts tensor data with gaps and out of info order', () => {
    const b = new RawGGUF().header(3, 2, 0)
      .tensor('b', [8], GGMLType.F32, 64)
      .tensor('a', [8], GGMLType.F32, 0)
      .pad(32).zeros(128);
    const h = parseGGUFHeader(b.toBytes());
    expect(h.tensors.map((t) => t.relativeOffset)).toEqual([64, 0]);
  });

  it('parses a header whose tensors lie beyond 4 GiB (synthetic, fake file size)', () => {
    const big = 6 * GiB;
    const b = new RawGGUF().header(3, 3, 1).kvStr('general.architecture', 'qwen3moe')
      .tensor('a', [256, 16384, 128], GGMLType.Q4_K, 0) // 288 MiB of Q4_K experts
      .tensor('b', [4096], GGMLType.F32, 4 * GiB + 4096)
      .tensor('c', [256, 1024], GGMLType.Q6_K, 5 * GiB)
      .pad(32);
    const h = parseGGUFHeader(b.toBytes(), big);
    expect(h.fileSize).toBe(big);
    const [a, t2, t3] = h.tensors;
    expect(a!.byteLength).toBe(16384 * 128 * 144);
    expect(t2!.relativeOffset).toBe(4 * GiB + 4096);
    expect(t2!.offset).toBe(h.dataOffset + 4 * GiB + 4096);
    expect(t3!.offset).toBe(h.dataOffset + 5 * GiB);
    // one byte short of the last tensor's end
    expect(() => parseGGUFHeader(b.toBytes(), h.dataOffset + 5 * GiB + 210 * 1024 - 1)).toThrow(GGUFFormatError);
  });

  it('opens and reads a sparse file larger than 4 GiB without reading it whole', async () => {
    const path = join(dir, 'sparse.gguf');
    const far = 4 * GiB + 64 * 1024;
    const b = new RawGGUF().header(3, 2, 0)
      .tensor('near', [8], GGMLType.F32, 0)
      .tensor('far', [16], GGMLType.F32, far)
      .pad(32);
    const header = b.toBytes();
    const fh = await open(path, 'w');
    const marker = pattern(64, 99);
    try {
      await fh.write(header, 0, header.length, 0);
      await fh.write(marker, 0, 64, header.length + far);
      await fh.truncate(header.length + far + 64 + 4096);
    } finally {
      await fh.close();
    }
    const t0 = performance.now();
    const f = await openGGUF(path);
    try {
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(f.fileSize).toBe(header.length + far + 64 + 4096);
      const t = f.tensorByName.get('far')!;
      expect(t.offset).toBe(header.length + far);
      expect(t.offset).toBeGreaterThan(2 ** 32);
      expect(await f.readTensor('far')).toEqual(marker);
      expect(await f.readTensor(t, undefined, 60, 4)).toEqual(marker.subarray(60));
      expect(await f.readTensor('near')).toEqual(new Uint8Array(32));
    } finally {
      await f.close();
      rmSync(path);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Bad input: every case must throw GGUFFormatError naming the problem at the right byte offset.

function expectFormatError(bytes: Uint8Array, message: RegExp, offset: number, fileSize?: number): GGUFFormatError {
  let err: unknown;
  try {
    parseGGUFHeader(bytes, fileSize);
  } catch (e) {
    err = e;
  }
  expect(err, `expected GGUFFormatError matching ${message}`).toBeInstanceOf(GGUFFormatError);
  const g = err as GGUFFormatError;
  expect(g.message).toMatch(message);
  expect(g.offset).toBe(offset);
  expect(g.message).toContain(`(at byte ${offset})`);
  return g;
}

/** A well-formed file with one tensor, so that one field at a time can be broken. */
function withKv(write: (b: RawGGUF) => void, nKv = 1): RawGGUF {
  const b = new RawGGUF().header(3, 0, nKv);
  write(b);
  return b.pad(32);
}

describe('bad input', () => {
  it('wrong magic', () => {
    expectFormatError(new RawGGUF().header(3, 0, 0, 'GGML').toBytes(), /wrong magic.*47 47 4d 4c/, 0);
    expectFormatError(new Uint8Array([0x47, 0x47]), /truncated file: magic/, 0);
    expectFormatError(new Uint8Array(0), /truncated file/, 0);
  });

  it('unsupported versions and big-endian files', () => {
    expectFormatError(new RawGGUF().header(1, 0, 0).toBytes(), /unsupported GGUF version 1/, 4);
    expectFormatError(new RawGGUF().header(0, 0, 0).toBytes(), /unsupported GGUF version 0/, 4);
    expectFormatError(new RawGGUF().header(4, 0, 0).toBytes(), /unsupported GGUF version 4/, 4);
    expectFormatError(new RawGGUF().header(0x03000000, 0, 0).toBytes(), /big-endian GGUF files are not supported/, 4);
    expectFormatError(new RawGGUF().header(0x00020000, 0, 0).toBytes(), /big-endian GGUF files are not supported/, 4);
  });

  it('truncated files', () => {
    const b = new RawGGUF().header(3, 1, 1).kvStr('general.name', 'abc');
    b.str('w'); b.u32(1); b.mark('ne'); b.u64(4); b.u32(0); b.mark('o'); b.u64(0);
    const full = b.pad(32).zeros(16).toBytes();
    parseGGUFHeader(full);
    expectFormatError(full.subarray(0, 6), /truncated file: version needs 4 bytes but the file has 2 left/, 4);
    expectFormatError(full.subarray(0, 12), /truncated file: tensor count/, 8);
    expectFormatError(full.subarray(0, 20), /truncated file: key\/value count/, 16);
    // cut inside the key string: the length says 12 bytes, fewer are left
    const kvOnly = new RawGGUF().header(3, 0, 1).kvStr('general.name', 'abc').toBytes();
    expectFormatError(kvOnly.subarray(0, 24 + 8 + 8), /key 0 length 12 is larger than the 8 bytes left/, 24);
    // cut inside the tensor's dimension
    expectFormatError(full.subarray(0, b.at('ne') + 3), /truncated file: dimension 0 of tensor "w" needs 8 bytes but the file has 3 left/, b.at('ne'));
    // tensor data cut short
    expectFormatError(full.subarray(0, full.length - 1), /tensor "w" data \[\d+, \d+\) runs past the end of the file/, b.at('o'));
  });

  it('counts larger than the bytes left', () => {
    expectFormatError(new RawGGUF().header(3, 2n ** 63n, 0).toBytes(), /tensor count 9223372036854775808 is larger than the 0 bytes left/, 8);
    expectFormatError(new RawGGUF().header(3, 0, 2n ** 64n - 1n).toBytes(), /key\/value count 18446744073709551615 is larger/, 16);
    expectFormatError(new RawGGUF().header(3, 1000, 0).zeros(100).toBytes(), /tensor count 1000 is larger than the 100 bytes left/, 8);
    // key length
    expectFormatError(withKv((b) => b.str('general.name', 2n ** 62n)).toBytes(), /key 0 length 4611686018427387904 is larger/, 24);
    // string value length
    let b = withKv((b) => b.kv('k', V.STRING, (b) => { b.mark('len'); b.str('x', 2n ** 40n); }));
    expectFormatError(b.toBytes(), /value of "k" length 1099511627776 is larger/, b.at('len'));
    // array count, fixed-size elements
    b = withKv((b) => b.kv('k', V.ARRAY, (b) => { b.u32(V.INT32); b.mark('n'); b.u64(2n ** 61n); b.i32(1); }));
    expectFormatError(b.toBytes(), /element count of "k" 2305843009213693952 is larger/, b.at('n'));
    // array count of strings: 1000 strings need at least 8000 bytes
    b = withKv((b) => b.kv('k', V.ARRAY, (b) => { b.u32(V.STRING); b.mark('n'); b.u64(1000); b.str('a'); }));
    expectFormatError(b.toBytes(), /element count of "k" 1000 is larger/, b.at('n'));
    // a string inside an array
    b = withKv((b) => b.kv('k', V.ARRAY, (b) => { b.arr(V.STRING, 2); b.str('a'); b.mark('s'); b.str('b', 999); }));
    expectFormatError(b.toBytes(), /element 1 of "k" length 999 is larger/, b.at('s'));
    // tensor name length
    b = new RawGGUF().header(3, 1, 0);
    b.mark('t');
    b.tensor('w', [4], 0, 0).pad(32);
    const bytes = b.toBytes();
    new DataView(bytes.buffer).setBigUint64(b.at('t'), 2n ** 50n, true);
    expectFormatError(bytes, /name of tensor 0 length 1125899906842624 is larger/, b.at('t'));
  });

  it('huge counts are rejected fast, before allocating', () => {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const b = withKv((b) => b.kv('k', V.ARRAY, (b) => b.arr(V.UINT8, 2n ** 53n - 1n)));
      expect(() => parseGGUFHeader(b.toBytes(), 2 ** 53 - 1)).toThrow(GGUFFormatError); // header shorter than claimed
    }
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('unknown value types and nested arrays', () => {
    let b = withKv((b) => { b.str('k'); b.mark('t'); b.u32(13); b.u32(0); });
    expectFormatError(b.toBytes(), /metadata "k" has unknown value type 13/, b.at('t'));
    b = withKv((b) => b.kv('k', V.ARRAY, (b) => { b.mark('t'); b.arr(0xffffffff, 0); }));
    expectFormatError(b.toBytes(), /metadata "k" is an array of unknown value type 4294967295/, b.at('t'));
    b = withKv((b) => b.kv('k', V.ARRAY, (b) => { b.mark('t'); b.arr(V.ARRAY, 1); b.arr(V.INT32, 0); }));
    expectFormatError(b.toBytes(), /array of arrays; nested arrays are not supported/, b.at('t'));
  });

  it('empty and duplicate keys', () => {
    let b = withKv((b) => { b.mark('k'); b.kv('', V.UINT8, (b) => b.u8(1)); });
    expectFormatError(b.toBytes(), /key 0 is empty/, b.at('k'));
    b = withKv((b) => { b.kvU32('a', 1); b.mark('k'); b.kvU32('a', 2); }, 2);
    expectFormatError(b.toBytes(), /duplicate key "a"/, b.at('k'));
  });

  it('bool values other than 0 and 1', () => {
    let b = withKv((b) => b.kv('k', V.BOOL, (b) => { b.mark('v'); b.u8(2); }));
    expectFormatError(b.toBytes(), /value of "k": bool value 2 is neither 0 nor 1/, b.at('v'));
    b = withKv((b) => b.kv('k', V.ARRAY, (b) => { b.arr(V.BOOL, 3); b.u8(1); b.u8(0); b.mark('v'); b.u8(255); }));
    expectFormatError(b.toBytes(), /bool value 255/, b.at('v'));
  });

  it('invalid UTF-8 points at the first bad byte', () => {
    const cases: [string, number[], number][] = [
      ['lone continuation', [0x61, 0x80], 1],
      ['overlong', [0xc0, 0x80], 0],
      ['overlong 3-byte', [0x61, 0xe0, 0x80, 0x80], 1],
      ['surrogate', [0x61, 0x62, 0xed, 0xa0, 0x80], 2],
      ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80], 0],
      ['cut sequence', [0x61, 0xe4, 0xb8], 1],
      ['bad byte', [0xff], 0],
    ];
    for (const [, bad, at] of cases) {
      // in a key
      let b = withKv((b) => { b.mark('k'); b.kv(new Uint8Array(bad), V.UINT8, (b) => b.u8(0)); });
      expectFormatError(b.toBytes(), /key 0 is not valid UTF-8/, b.at('k') + 8 + at);
      // in a long string value (TextDecoder path)
      const long = [...new Array(400).fill(0x41), ...bad];
      b = withKv((b) => b.kv('k', V.STRING, (b) => { b.mark('s'); b.str(long); }));
      expectFormatError(b.toBytes(), /value of "k" is not valid UTF-8/, b.at('s') + 8 + 400 + at);
      // in a tensor name
      b = new RawGGUF().header(3, 1, 0);
      b.mark('n');
      b.tensor(new Uint8Array(bad), [1], GGMLType.F32, 0).pad(32).zeros(32);
      expectFormatError(b.toBytes(), /name of tensor 0 is not valid UTF-8/, b.at('n') + 8 + at);
    }
  });

  it('alignment must be a UINT32 power of two', () => {
    for (const a of [0, 3, 48, 2 ** 31 + 1]) {
      const b = withKv((b) => b.kv('general.alignment', V.UINT32, (b) => { b.mark('v'); b.u32(a); }));
      expectFormatError(b.toBytes(), new RegExp(`general.alignment ${a} is not a power of two`), b.at('v'));
    }
    const b = withKv((b) => b.kv('general.alignment', V.UINT64, (b) => { b.mark('v'); b.u64(32); }));
    expectFormatError(b.toBytes(), /general.alignment must be UINT32, got UINT64/, b.at('v'));
  });

  /** A file with the given tensor infos and enough data bytes for `dataBytes`. */
  function tensors(write: (b: RawGGUF) => void, n: number, dataBytes = 1024): RawGGUF {
    const b = new RawGGUF().header(3, n, 0);
    write(b);
    return b.pad(32).zeros(dataBytes);
  }

  it('tensor names: too long, duplicate', () => {
    let b = tensors((b) => { b.mark('n'); b.tensor('x'.repeat(64), [4], 0, 0); }, 1);
    expectFormatError(b.toBytes(), /tensor 0 name is 64 bytes long, more than 63/, b.at('n'));
    parseGGUFHeader(tensors((b) => b.tensor('x'.repeat(63), [4], 0, 0), 1).toBytes());
    b = tensors((b) => { b.tensor('w', [4], 0, 0); b.mark('n'); b.tensor('w', [4], 0, 32); }, 2);
    expectFormatError(b.toBytes(), /duplicate tensor name "w"/, b.at('n'));
  });

  it('dimensions: more than 4, zero-dim block types, element count beyond 2^53', () => {
    let b = tensors((b) => { b.str('w'); b.mark('d'); b.u32(5); for (let i = 0; i < 5; i++) b.u64(1); b.u32(0); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" has 5 dimensions, more than 4/, b.at('d'));
    b = tensors((b) => { b.str('w'); b.mark('d'); b.u32(0xffffffff); b.u32(0); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /has 4294967295 dimensions/, b.at('d'));
    // n_dims 0 is a scalar: fine for F32, nonsense for a block type
    const h = parseGGUFHeader(tensors((b) => b.tensor('s', [], GGMLType.F32, 0), 1).toBytes());
    expect(h.tensors[0]).toMatchObject({ shape: [], byteLength: 4 });
    b = tensors((b) => { b.str('s'); b.mark('d'); b.u32(0); b.u32(GGMLType.Q4_K); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /tensor "s" row length 1 is not a multiple of Q4_K's block size 256/, b.at('d'));
    // element count overflow
    b = tensors((b) => { b.str('w'); b.u32(3); b.mark('ne'); b.u64(2 ** 30).u64(2 ** 30).u64(2 ** 30); b.u32(0); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" shape \[1073741824, 1073741824, 1073741824\] has 1237940039285380274899124224 elements, more than 2\^53 - 1/, b.at('ne'));
    b = tensors((b) => { b.str('w'); b.u32(2); b.u64(0); b.mark('ne1'); b.u64(2n ** 63n); b.u32(0); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" dimension 1 is 9223372036854775808, more than 2\^53 - 1/, b.at('ne1'));
  });

  it('row length not a multiple of the block size', () => {
    const b = tensors((b) => { b.str('w'); b.u32(2); b.mark('ne'); b.u64(100).u64(2); b.u32(GGMLType.Q4_K); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" row length 100 is not a multiple of Q4_K's block size 256/, b.at('ne'));
  });

  it('unknown and unsupported tensor types', () => {
    let b = tensors((b) => { b.str('w'); b.u32(1); b.u64(32); b.mark('t'); b.u32(99); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" has unknown ggml type id 99/, b.at('t'));
    b = tensors((b) => { b.str('w'); b.u32(1); b.u64(32); b.mark('t'); b.u32(4); b.u64(0); }, 1);
    expectFormatError(b.toBytes(), /unknown ggml type id 4/, b.at('t')); // Q4_2: removed from ggml
    b = tensors((b) => { b.str('w'); b.u32(1); b.u64(256); b.mark('t'); b.u32(16); b.u64(0); }, 1);
    let err: unknown;
    try { parseGGUFHeader(b.toBytes()); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(UnsupportedQuantError);
    expect((err as UnsupportedQuantError).ggmlType).toBe(16);
    expect((err as Error).message).toBe(
      `tensor "w" has ggml type IQ2_XXS (16), which moet does not support (at byte ${b.at('t')})`,
    );
  });

  it('tensor offsets: misaligned, out of range, overlapping', () => {
    let b = tensors((b) => { b.str('w'); b.u32(1); b.u64(4); b.u32(0); b.mark('o'); b.u64(16); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" data offset 16 is not a multiple of the alignment 32/, b.at('o'));
    b = tensors((b) => { b.str('w'); b.u32(1); b.u64(4); b.u32(0); b.mark('o'); b.u64(1024); }, 1);
    expectFormatError(b.toBytes(), /tensor "w" data \[\d+, \d+\) runs past the end of the file \(\d+ bytes\)/, b.at('o'));
    b = tensors((b) => { b.str('w'); b.u32(1); b.u64(4); b.u32(0); b.mark('o'); b.u64(2n ** 64n - 32n); }, 1);
    expectFormatError(b.toBytes(), /relative to the data section runs past the end of the file/, b.at('o'));
    // overlap: b starts inside a
    b = tensors((b) => {
      b.tensor('a', [64], GGMLType.F32, 0);
      b.str('b'); b.u32(1); b.u64(64); b.u32(0); b.mark('o'); b.u64(128);
    }, 2);
    expectFormatError(b.toBytes(), /tensor "b" data \[\d+, \d+\) overlaps tensor "a"/, b.at('o'));
    // overlap found in offset order even when the infos are in the other order
    b = tensors((b) => {
      b.str('late'); b.u32(1); b.u64(64); b.u32(0); b.mark('o'); b.u64(128);
      b.tensor('early', [64], GGMLType.F32, 0);
    }, 2);
    expectFormatError(b.toBytes(), /tensor "late" .* overlaps tensor "early"/, b.at('o'));
    // identical ranges
    b = tensors((b) => { b.tensor('a', [8], 0, 0); b.str('b'); b.u32(1); b.u64(8); b.u32(0); b.mark('o'); b.u64(0); }, 2);
    expectFormatError(b.toBytes(), /tensor "b" .* overlaps tensor "a"/, b.at('o'));
  });

  it('data section past the end of the file', () => {
    const b = new RawGGUF().header(3, 1, 0).tensor('e', [0], 0, 0);
    const bytes = b.toBytes(); // no padding: the data section would start after the end
    expectFormatError(bytes, /the data section starts at \d+, past the end of the file/, bytes.length);
  });

  it('a prefix shorter than the header, with the real file size', () => {
    const full = new RawGGUF().header(3, 0, 1).kvStr('general.name', 'x'.repeat(100)).pad(32).toBytes();
    expectFormatError(full.subarray(0, 50), /value of "general.name" length continues past the 50 bytes provided/, 48, full.length);
    expectFormatError(full.subarray(0, 100), /value of "general.name" continues past the 100 bytes provided \(the header needs at least 156\)/, 56, full.length);
    expect(parseGGUFHeader(full, full.length + 1000).getValue('general.name')).toBe('x'.repeat(100));
  });

  it('fileSize must not be smaller than the bytes given', () => {
    expect(() => parseGGUFHeader(new Uint8Array(100), 50)).toThrow(RangeError);
  });

  it('openGGUF: errors from files', async () => {
    const path = join(dir, 'bad.gguf');
    await writeFile(path, new RawGGUF().header(3, 0, 1).kvStr('k', 'v').toBytes().subarray(0, 30));
    await expect(openGGUF(path)).rejects.toThrow(GGUFFormatError);
    await writeFile(path, new Uint8Array(0));
    await expect(openGGUF(path)).rejects.toThrow(/truncated file: magic/);
    await expect(openGGUF(join(dir, 'missing.gguf'))).rejects.toThrow(/ENOENT/);
  });
});
