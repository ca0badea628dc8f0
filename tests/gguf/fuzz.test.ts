// Fuzzing the GGUF header parser: mutated and truncated headers (fixed seed) must either parse into a
// consistent header or throw GGUFFormatError / UnsupportedQuantError, quickly, without allocating for
// counts the file cannot back.
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGUFFormatError, UnsupportedQuantError } from '../../gguf/errors.js';
import { openGGUF, parseGGUFHeader, type GGUFHeader } from '../../gguf/reader.js';
import { GGMLType, GGUFValueType as V, tensorBytes } from '../../gguf/types.js';
import { encodeGGUF, kv } from '../../gguf/writer.js';
import { RawGGUF } from './builder.js';
import { mulberry32 as rng } from '../helpers/random.js';

const dir = mkdtempSync(join(tmpdir(), 'moet-gguf-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Base {
  bytes: Uint8Array;
  /** offsets of u64 count / length fields */
  counts: number[];
  /** offsets of u32 type / n_dims fields */
  types: number[];
}

/** A valid file with metadata of every type, arrays, and tensors of several types. */
function rawBase(rand: () => number, version: number): Base {
  const int = (n: number) => Math.floor(rand() * n);
  const tensorSpecs: [string, number[], GGMLType][] = [
    ['token_embd.weight', [256, 2], GGMLType.Q4_K],
    ['blk.0.attn_norm.weight', [16], GGMLType.F32],
    ['blk.0.ffn_gate_exps.weight', [32, 2, 3], GGMLType.Q8_0],
    ['blk.0.ffn_down_exps.weight', [256, 1, 2], GGMLType.Q6_K],
    ['output.weight', [8, 4], GGMLType.F16],
  ].slice(0, 1 + int(5)) as [string, number[], GGMLType][];
  const b = new RawGGUF().header(version, tensorSpecs.length, 9);
  b.kvStr('general.architecture', 'qwen3moe');
  b.kvU32('general.alignment', 32);
  b.kv('qwen3moe.expert_count', V.UINT32, (b) => b.u32(128));
  b.kv('x.f32', V.FLOAT32, (b) => b.f32(1e-6));
  b.kv('x.u64', V.UINT64, (b) => b.u64(2n ** 40n));
  b.kv('x.bool', V.BOOL, (b) => b.u8(1));
  b.kv('tokenizer.ggml.tokens', V.ARRAY, (b) => {
    const n = 2 + int(6);
    b.arr(V.STRING, n);
    for (let i = 0; i < n; i++) b.str(['a', 'Ġthe', '<|im_end|>', '世界', ''][i % 5]! + i);
  });
  b.kv('tokenizer.ggml.token_type', V.ARRAY, (b) => { b.arr(V.INT32, 3); b.i32(1).i32(3).i32(-1); });
  b.kv('x.f64s', V.ARRAY, (b) => { b.arr(V.FLOAT64, 2); b.f64(0.5).f64(-2); });
  let rel = 0;
  for (const [name, shape, type] of tensorSpecs) {
    b.tensor(name, shape, type, rel);
    rel += Math.ceil(tensorBytes(type, shape) / 32) * 32;
  }
  b.pad(32).zeros(rel);
  return { bytes: b.toBytes(), counts: b.countFields, types: b.typeFields };
}

async function writerBase(): Promise<Base> {
  const bytes = await encodeGGUF(
    [
      kv.str('general.architecture', 'qwen3'),
      kv.u32('general.alignment', 64),
      kv.strs('tokenizer.ggml.merges', ['Ġ t', 'h e', 'Ġt he']),
      kv.i32s('x.i32s', [1, -2, 3]),
      kv.f32s('x.f32s', [0.25]),
      kv.bool('x.b', false),
      kv.u64('x.u64', 7n),
    ],
    [
      { name: 'a', type: GGMLType.F32, shape: [4, 2], data: new Uint8Array(32) },
      { name: 'b', type: GGMLType.Q4_0, shape: [64], data: new Uint8Array(36) },
      { name: 'c', type: GGMLType.BF16, shape: [3], data: new Uint8Array(6) },
    ],
  );
  return { bytes, counts: [8, 16], types: [4] };
}

/** No case may take longer than this (the valid bases parse in well under a millisecond). */
const SLOW_MS = 25;

const HUGE = [2n ** 64n - 1n, 2n ** 63n, 2n ** 53n, 2n ** 53n - 1n, 2n ** 32n, 2n ** 32n - 1n, 2n ** 31n, 2n ** 40n];

function mutate(base: Base, rand: () => number): Uint8Array {
  const int = (n: number) => Math.floor(rand() * n);
  let b: Uint8Array = base.bytes.slice();
  const nMut = 1 + int(3);
  for (let m = 0; m < nMut; m++) {
    const kind = int(6);
    if (kind === 0) {
      // random byte flips
      const n = 1 + int(8);
      for (let i = 0; i < n && b.length > 0; i++) b[int(b.length)] = rand() < 0.5 ? int(256) : b[int(b.length)]! ^ (1 << int(8));
    } else if (kind === 1) {
      // insert bytes
      const at = int(b.length + 1);
      const ins = Uint8Array.from({ length: 1 + int(16) }, () => int(256));
      const next = new Uint8Array(b.length + ins.length);
      next.set(b.subarray(0, at)); next.set(ins, at); next.set(b.subarray(at), at + ins.length);
      b = next;
    } else if (kind === 2) {
      // delete bytes
      const at = int(b.length);
      const end = Math.min(b.length, at + 1 + int(16));
      const next = new Uint8Array(b.length - (end - at));
      next.set(b.subarray(0, at)); next.set(b.subarray(end), at);
      b = next;
    } else if (kind === 3 || kind === 4) {
      // a count or length field set to a huge (or merely wrong) value
      const at = base.counts[int(base.counts.length)]!;
      if (at + 8 <= b.length) {
        const r = rand();
        const v = r < 0.6 ? HUGE[int(HUGE.length)]! : r < 0.8 ? BigInt(b.length - at + int(64)) : BigInt(int(2 ** 31)) * BigInt(int(2 ** 31));
        new DataView(b.buffer, b.byteOffset, b.byteLength).setBigUint64(at, v & (2n ** 64n - 1n), true);
      }
    } else {
      // a type / n_dims / version field, or any 4 bytes, set to an edge value
      if (b.length >= 4) {
        const at = rand() < 0.7 ? Math.min(b.length - 4, base.types[int(base.types.length)]!) : int(b.length - 3);
        const v = [0, 1, 2, 3, 4, 5, 9, 12, 13, 16, 31, 39, 40, 42, 0xffff, 0x10000, 0xffffffff][int(17)]!;
        new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(at, v, true);
      }
    }
  }
  if (rand() < 0.3) b = b.subarray(0, int(b.length + 1)); // truncate
  return b;
}

/** Invariants of a header that parsed. */
function checkHeader(h: GGUFHeader, bytesLength: number): void {
  expect(h.version === 2 || h.version === 3).toBe(true);
  expect(h.alignment & (h.alignment - 1)).toBe(0);
  let elements = 0;
  for (const e of h.metadata.values()) elements += Array.isArray(e.value) ? e.value.length : 1;
  expect(elements).toBeLessThanOrEqual(bytesLength); // nothing allocated beyond what the bytes back
  const ranges: [number, number][] = [];
  for (const t of h.tensors) {
    expect(t.offset % h.alignment).toBe(0);
    expect(t.offset).toBeGreaterThanOrEqual(h.dataOffset);
    expect(t.offset + t.byteLength).toBeLessThanOrEqual(h.fileSize);
    expect(t.byteLength).toBe(tensorBytes(t.type, t.shape));
    if (t.byteLength > 0) ranges.push([t.offset, t.offset + t.byteLength]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThanOrEqual(ranges[i - 1]![1]);
}

type Outcome = { ok: true; header: GGUFHeader } | { ok: false; error: Error };

function tryParse(bytes: Uint8Array, fileSize?: number): Outcome {
  try {
    return { ok: true, header: parseGGUFHeader(bytes, fileSize) };
  } catch (e) {
    return { ok: false, error: e as Error };
  }
}

function expectAllowedError(o: Outcome, what: string): void {
  if (o.ok) return;
  const ok = o.error instanceof GGUFFormatError || o.error instanceof UnsupportedQuantError;
  expect(ok, `${what}: unexpected ${o.error?.constructor?.name}: ${o.error?.message}\n${o.error?.stack}`).toBe(true);
}

describe('fuzz', () => {
  it('3,000 mutated and truncated headers parse or throw GGUFFormatError/UnsupportedQuantError, fast', async () => {
    const rand = rng(0x5eed_6606);
    const bases: Base[] = [await writerBase()];
    for (let i = 0; i < 6; i++) bases.push(rawBase(rand, i % 2 ? 3 : 2));
    for (const b of bases) checkHeader(parseGGUFHeader(b.bytes), b.bytes.length); // the bases are valid

    const N = 3000;
    const stats = { parsed: 0, format: 0, quant: 0 };
    const messages = new Map<string, number>();
    let maxMs = 0;
    let totalMs = 0;
    for (let i = 0; i < N; i++) {
      const base = bases[i % bases.length]!;
      const bytes = mutate(base, rand);
      // a quarter of the cases: the bytes are a prefix of a much larger file, so huge counts pass the
      // file-size bound and must still be stopped by the bytes actually present
      const fileSize = i % 4 === 3 ? bytes.length + Math.floor(rand() * 2 ** 40) : undefined;
      const t0 = performance.now();
      const o = tryParse(bytes, fileSize);
      let ms = performance.now() - t0;
      if (ms > SLOW_MS) {
        // re-time, spread out in time: a parse that is really slow (a hang, a huge allocation) is slow
        // every time, a GC pause or a scheduling hiccup on a loaded machine is not
        for (let r = 0; r < 5; r++) {
          await new Promise((res) => setTimeout(res, 5));
          const t1 = performance.now();
          tryParse(bytes, fileSize);
          ms = Math.min(ms, performance.now() - t1);
        }
      }
      maxMs = Math.max(maxMs, ms);
      totalMs += ms;
      expectAllowedError(o, `case ${i}`);
      if (o.ok) {
        stats.parsed++;
        checkHeader(o.header, bytes.length);
      } else {
        if (o.error instanceof UnsupportedQuantError) stats.quant++;
        else stats.format++;
        const kind = o.error.message.replace(/"[^"]*"/g, '""').replace(/\d+/g, 'N').slice(0, 50);
        messages.set(kind, (messages.get(kind) ?? 0) + 1);
        if (o.error instanceof GGUFFormatError) {
          expect(o.error.offset).toBeGreaterThanOrEqual(0);
          expect(o.error.offset).toBeLessThanOrEqual(fileSize ?? bytes.length);
        }
      }
    }
    if (process.env.FUZZ_VERBOSE) console.log(stats, maxMs, totalMs / N, [...messages].sort((a, b) => b[1] - a[1]));
    // every kind of outcome happens
    expect(stats.parsed).toBeGreaterThan(20);
    expect(stats.format).toBeGreaterThan(N / 2);
    expect(stats.quant).toBeGreaterThan(0);
    expect(messages.size).toBeGreaterThan(20);
    expect(totalMs / N).toBeLessThan(2);
    expect(maxMs, `slowest case ${maxMs} ms`).toBeLessThan(SLOW_MS);
  });

  it('openGGUF with tiny chunks agrees with parseGGUFHeader on 150 mutated files', async () => {
    const rand = rng(42);
    const bases = [await writerBase(), rawBase(rand, 3), rawBase(rand, 2)];
    const path = join(dir, 'f.gguf');
    for (let i = 0; i < 150; i++) {
      const bytes = mutate(bases[i % bases.length]!, rand);
      await writeFile(path, bytes);
      const mem = tryParse(bytes);
      let file: Outcome;
      try {
        const f = await openGGUF(path, { initialReadBytes: 1 + Math.floor(rand() * 64) });
        await f.close();
        file = { ok: true, header: f };
      } catch (e) {
        file = { ok: false, error: e as Error };
      }
      expectAllowedError(file, `file ${i}`);
      expect(file.ok).toBe(mem.ok);
      if (file.ok && mem.ok) {
        expect([...file.header.metadata.values()]).toEqual([...mem.header.metadata.values()]);
        expect(file.header.tensors).toEqual(mem.header.tensors);
        expect(file.header.dataOffset).toBe(mem.header.dataOffset);
      } else if (!file.ok && !mem.ok) {
        expect(file.error.message).toBe(mem.error.message);
      }
    }
  });

  it('the UTF-8 check agrees with a fatal TextDecoder', () => {
    const rand = rng(7);
    const int = (n: number) => Math.floor(rand() * n);
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const pieces = [[0x41], [0xc3, 0xa9], [0xe4, 0xb8, 0x96], [0xf0, 0x9f, 0x99, 0x82], [0xef, 0xbb, 0xbf], [0xed, 0x9f, 0xbf], [0xf4, 0x8f, 0xbf, 0xbf]];
    let valid = 0;
    for (let i = 0; i < 2000; i++) {
      const s: number[] = [];
      const n = int(12);
      for (let k = 0; k < n; k++) s.push(...pieces[int(pieces.length)]!);
      if (rand() < 0.6 && s.length) s[int(s.length)] = int(256); // corrupt one byte
      if (rand() < 0.2) s.length = int(s.length + 1); // cut
      const long = rand() < 0.3; // > 256 bytes: the TextDecoder path
      const str = long ? [...new Array(300).fill(0x61), ...s] : s;
      const bytes = new RawGGUF().header(3, 0, 1).kv('k', V.STRING, (b) => b.str(str)).pad(32).toBytes();
      let want: string | undefined;
      try { want = decoder.decode(new Uint8Array(str)); } catch { want = undefined; }
      const o = tryParse(bytes);
      if (want === undefined) {
        expect(o.ok).toBe(false);
        expect((o as { error: Error }).error.message).toMatch(/is not valid UTF-8/);
      } else {
        valid++;
        expect(o.ok).toBe(true);
        expect((o as { header: GGUFHeader }).header.getValue('k')).toBe(want);
      }
    }
    expect(valid).toBeGreaterThan(300);
  });
});
