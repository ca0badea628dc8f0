// dequantize (gguf/quants.ts): bit-exact against hand-built blocks. Each block is assembled here
// from chosen scales and quants following shared/docs/quants.md, and the expected values are
// computed element by element from the formulas there, in f32 (Math.fround at every step, as
// ggml's dequantize_row_* does).
import { describe, expect, it } from 'vitest';
import { UnsupportedQuantError } from '../../gguf/errors.js';
import { dequantize, isSupportedType, quantize } from '../../gguf/quants.js';
import { GGMLType, GGML_TYPE_INFO } from '../../gguf/types.js';

const fr = Math.fround;

/** Value of half bits from the binary16 definition. */
function half(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * 2 ** (e - 15) * (1 + m / 1024);
}

/** Little-endian byte builder. */
class Bytes {
  private b: number[] = [];
  u8(...v: number[]): this {
    for (const x of v) this.b.push(x & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v, v >> 8);
  }
  u32(v: number): this {
    return this.u8(v, v >>> 8, v >>> 16, v >>> 24);
  }
  get length(): number {
    return this.b.length;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.b);
  }
}

/** Deterministic small-integer generator. */
function ints(n: number, lo: number, hi: number, seed: number): number[] {
  const out: number[] = [];
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(lo + (s >>> 8) % (hi - lo + 1));
  }
  return out;
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Bit-for-bit equality, failing with the first differing index and both values. */
function expectSameF32(got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  const g = bits(got);
  const w = bits(want);
  for (let i = 0; i < want.length; i++) {
    if (g[i] !== w[i]) {
      expect({ index: i, got: got[i], gotBits: g[i]!.toString(16) }).toEqual({
        index: i, got: want[i], gotBits: w[i]!.toString(16),
      });
    }
  }
}

interface Block {
  bytes: Uint8Array;
  want: number[];
}

// ---- block builders (layouts from shared/docs/quants.md) ----

function q8_0(d: number, qs: number[]): Block {
  const b = new Bytes().u16(d);
  for (const q of qs) b.u8(q);
  return { bytes: b.done(), want: qs.map((q) => fr(q * half(d))) };
}

function q4_0(d: number, q: number[]): Block {
  // q[0..31] in 0..15; element j < 16 is the low nibble of byte j, element j+16 its high nibble
  const b = new Bytes().u16(d);
  for (let j = 0; j < 16; j++) b.u8(q[j]! | (q[j + 16]! << 4));
  return { bytes: b.done(), want: q.map((v) => fr((v - 8) * half(d))) };
}

function q4_1(d: number, m: number, q: number[]): Block {
  const b = new Bytes().u16(d).u16(m);
  for (let j = 0; j < 16; j++) b.u8(q[j]! | (q[j + 16]! << 4));
  return { bytes: b.done(), want: q.map((v) => fr(fr(v * half(d)) + half(m))) };
}

function q5Bits(q: number[]): { qh: number; qs: number[] } {
  // q[0..31] in 0..31: low nibbles as in Q4_0; bit 4 of element i goes to bit i of qh
  let qh = 0;
  const qs: number[] = [];
  for (let j = 0; j < 16; j++) qs.push((q[j]! & 15) | ((q[j + 16]! & 15) << 4));
  for (let i = 0; i < 32; i++) if (q[i]! & 16) qh |= 1 << i;
  return { qh: qh >>> 0, qs };
}

function q5_0(d: number, q: number[]): Block {
  const { qh, qs } = q5Bits(q);
  const b = new Bytes().u16(d).u32(qh).u8(...qs);
  return { bytes: b.done(), want: q.map((v) => fr((v - 16) * half(d))) };
}

function q5_1(d: number, m: number, q: number[]): Block {
  const { qh, qs } = q5Bits(q);
  const b = new Bytes().u16(d).u16(m).u32(qh).u8(...qs);
  return { bytes: b.done(), want: q.map((v) => fr(fr(v * half(d)) + half(m))) };
}

/** 12 bytes holding eight 6-bit scales and eight 6-bit mins (Q4_K / Q5_K). */
function packScalesK4(sc: number[], mn: number[]): number[] {
  const s = new Array<number>(12).fill(0);
  for (let j = 0; j < 4; j++) {
    s[j] = sc[j]! & 63;
    s[j + 4] = mn[j]! & 63;
  }
  for (let j = 4; j < 8; j++) {
    s[j + 4] = (sc[j]! & 15) | ((mn[j]! & 15) << 4);
    s[j - 4] |= (sc[j]! >> 4) << 6;
    s[j] |= (mn[j]! >> 4) << 6;
  }
  return s;
}

function wantK(d: number, dmin: number, sc: number[], mn: number[], q: number[]): number[] {
  return q.map((v, i) => {
    const j = i >> 5;
    return fr(fr(fr(half(d) * sc[j]!) * v) - fr(half(dmin) * mn[j]!));
  });
}

function q4_K(d: number, dmin: number, sc: number[], mn: number[], q: number[]): Block {
  // chunk c (64 values): element 64c+l is the low nibble of qs[32c+l], 64c+32+l the high nibble
  const b = new Bytes().u16(d).u16(dmin).u8(...packScalesK4(sc, mn));
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b.u8(q[64 * c + l]! | (q[64 * c + 32 + l]! << 4));
  return { bytes: b.done(), want: wantK(d, dmin, sc, mn, q) };
}

function q5_K(d: number, dmin: number, sc: number[], mn: number[], q: number[]): Block {
  // as Q4_K, plus bit 4 of element 64c+l in bit 2c of qh[l], of 64c+32+l in bit 2c+1
  const b = new Bytes().u16(d).u16(dmin).u8(...packScalesK4(sc, mn));
  const qh = new Array<number>(32).fill(0);
  for (let c = 0; c < 4; c++) {
    for (let l = 0; l < 32; l++) {
      if (q[64 * c + l]! & 16) qh[l] |= 1 << (2 * c);
      if (q[64 * c + 32 + l]! & 16) qh[l] |= 2 << (2 * c);
    }
  }
  b.u8(...qh);
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b.u8((q[64 * c + l]! & 15) | ((q[64 * c + 32 + l]! & 15) << 4));
  return { bytes: b.done(), want: wantK(d, dmin, sc, mn, q) };
}

function q6_K(d: number, sc: number[], q: number[]): Block {
  // q[i] in 0..63 (value q-32), scale sc[i>>4]; per half h: ql[64h+l] = q[128h+l] | q[128h+l+64]<<4,
  // ql[64h+l+32] = q[128h+l+32] | q[128h+l+96]<<4 (low 4 bits each), qh[32h+l] = the four high pairs
  const ql = new Array<number>(128).fill(0);
  const qh = new Array<number>(64).fill(0);
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const [a, b, c, e] = [0, 32, 64, 96].map((k) => q[128 * h + l + k]!) as [number, number, number, number];
      ql[64 * h + l] = (a & 15) | ((c & 15) << 4);
      ql[64 * h + l + 32] = (b & 15) | ((e & 15) << 4);
      qh[32 * h + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
    }
  }
  const bytes = new Bytes().u8(...ql, ...qh, ...sc).u16(d).done();
  return { bytes, want: q.map((v, i) => fr(fr(half(d) * sc[i >> 4]!) * (v - 32))) };
}

// ---- the blocks under test, several per type ----

const CASES: Record<string, { type: GGMLType; blocks: Block[] }> = {
  Q8_0: {
    type: GGMLType.Q8_0,
    blocks: [
      q8_0(0x3c00, [...Array.from({ length: 31 }, (_, j) => j * 8 - 128), 127]), // d = 1, q from -128 to 127
      q8_0(0xb555, ints(32, -128, 127, 1)), // negative d
      q8_0(0x0001, ints(32, -128, 127, 2)), // subnormal d
      q8_0(0x7bff, ints(32, -128, 127, 3)), // largest d
    ],
  },
  Q4_0: {
    type: GGMLType.Q4_0,
    blocks: [
      q4_0(0x3c00, Array.from({ length: 32 }, (_, j) => j & 15)),
      q4_0(0xc200, ints(32, 0, 15, 4)), // d = -3
      q4_0(0x2e66, ints(32, 0, 15, 5)),
    ],
  },
  Q4_1: {
    type: GGMLType.Q4_1,
    blocks: [
      q4_1(0x3c00, 0xbc00, Array.from({ length: 32 }, (_, j) => 15 - (j & 15))),
      q4_1(0x2e66, 0x3555, ints(32, 0, 15, 6)),
      q4_1(0xb800, 0xc500, ints(32, 0, 15, 7)), // negative d and m
    ],
  },
  Q5_0: {
    type: GGMLType.Q5_0,
    blocks: [
      q5_0(0x3c00, Array.from({ length: 32 }, (_, j) => j)), // every 5-bit value once
      q5_0(0xb555, ints(32, 0, 31, 8)),
      q5_0(0x0400, Array.from({ length: 32 }, (_, j) => (j % 3 ? 31 : 0))),
    ],
  },
  Q5_1: {
    type: GGMLType.Q5_1,
    blocks: [
      q5_1(0x3c00, 0x0000, Array.from({ length: 32 }, (_, j) => 31 - j)),
      q5_1(0x2e66, 0xc900, ints(32, 0, 31, 9)),
      q5_1(0xbc00, 0x3c00, ints(32, 0, 31, 10)),
    ],
  },
  Q4_K: {
    type: GGMLType.Q4_K,
    blocks: [
      // all-max scales and mins: every packed high bit set
      q4_K(0x3c00, 0x3800, Array(8).fill(63), Array(8).fill(63), ints(256, 0, 15, 11)),
      // mixed 6-bit values: the high bits of sub-blocks 4..7 share bytes with 0..3
      q4_K(0x2e66, 0x2c00, [63, 0, 17, 48, 33, 62, 1, 47], [5, 63, 32, 16, 31, 0, 60, 15], ints(256, 0, 15, 12)),
      // negative d and dmin
      q4_K(0xc000, 0xb800, [1, 2, 4, 8, 16, 32, 48, 63], [63, 48, 32, 16, 8, 4, 2, 1], ints(256, 0, 15, 13)),
      // zero scales, subnormal d, q at both ends
      q4_K(0x0003, 0x0001, [0, 63, 0, 63, 0, 63, 0, 63], [63, 0, 63, 0, 63, 0, 63, 0],
        Array.from({ length: 256 }, (_, i) => (i % 2 ? 15 : 0))),
    ],
  },
  Q5_K: {
    type: GGMLType.Q5_K,
    blocks: [
      q5_K(0x3c00, 0x3800, Array(8).fill(63), Array(8).fill(63), ints(256, 0, 31, 14)),
      q5_K(0x2e66, 0x2c00, [63, 0, 17, 48, 33, 62, 1, 47], [5, 63, 32, 16, 31, 0, 60, 15], ints(256, 0, 31, 15)),
      q5_K(0xc000, 0xb800, [1, 2, 4, 8, 16, 32, 48, 63], [63, 48, 32, 16, 8, 4, 2, 1],
        Array.from({ length: 256 }, (_, i) => (i * 7) & 31)),
      q5_K(0x1400, 0x0000, ints(8, 0, 63, 16), ints(8, 0, 63, 17), Array.from({ length: 256 }, (_, i) => (i & 1 ? 31 : 16))),
    ],
  },
  Q6_K: {
    type: GGMLType.Q6_K,
    blocks: [
      // extreme int8 scales (-128, 127) and every 6-bit quant
      q6_K(0x3c00, [127, -128, 1, -1, 64, -64, 0, 100, -100, 127, -128, 33, -33, 2, -2, 5],
        Array.from({ length: 256 }, (_, i) => i & 63)),
      q6_K(0xb555, ints(16, -128, 127, 18), ints(256, 0, 63, 19)), // negative d
      q6_K(0x0002, ints(16, -128, 127, 20), Array.from({ length: 256 }, (_, i) => (i % 3 ? 63 : 0))),
      q6_K(0x1234, Array(16).fill(127), ints(256, 0, 63, 21)),
    ],
  },
};

function concat(blocks: Block[]): { bytes: Uint8Array; want: Float32Array } {
  const n = blocks.reduce((a, b) => a + b.bytes.length, 0);
  const bytes = new Uint8Array(n);
  let o = 0;
  for (const b of blocks) {
    bytes.set(b.bytes, o);
    o += b.bytes.length;
  }
  return { bytes, want: Float32Array.from(blocks.flatMap((b) => b.want)) };
}

describe('dequantize: hand-built blocks, bit for bit', () => {
  for (const [name, { type, blocks }] of Object.entries(CASES)) {
    const info = GGML_TYPE_INFO[type]!;
    it(`${name}: the builders produce ${info.typeSize}-byte blocks`, () => {
      for (const b of blocks) {
        expect(b.bytes.length).toBe(info.typeSize);
        expect(b.want.length).toBe(info.blockSize);
      }
    });

    it(`${name}: each block alone`, () => {
      for (const b of blocks) expectSameF32(dequantize(type, b.bytes, info.blockSize), Float32Array.from(b.want));
    });

    it(`${name}: several blocks at once, from a subarray at an odd byte offset, into a dst view`, () => {
      const { bytes, want } = concat(blocks);
      for (const offset of [1, 3, 6]) {
        const buf = new Uint8Array(offset + bytes.length + 5).fill(0xa5);
        buf.set(bytes, offset);
        const src = buf.subarray(offset, offset + bytes.length);
        expectSameF32(dequantize(type, src, want.length), want);
        // src longer than needed: only nElements are read
        expectSameF32(dequantize(type, buf.subarray(offset), info.blockSize), want.subarray(0, info.blockSize));
      }
      const big = new Float32Array(want.length + 7).fill(-7);
      const dst = big.subarray(3, 3 + want.length);
      expect(dequantize(type, bytes, want.length, dst)).toBe(dst);
      expectSameF32(dst, want);
      expect([...big.subarray(0, 3), ...big.subarray(3 + want.length)]).toEqual([-7, -7, -7, -7, -7, -7, -7]);
    });
  }
});

describe('dequantize: F32, F16, BF16', () => {
  it('F32 copies the bits, NaN payloads included', () => {
    const u = Uint32Array.from([0x3f800000, 0xbf800000, 0x7fc00001, 0xff800000, 0x00000001, 0x80000000, 0x7f7fffff]);
    const src = new Uint8Array(u.buffer);
    const buf = new Uint8Array(src.length + 1);
    buf.set(src, 1);
    const y = dequantize(GGMLType.F32, buf.subarray(1), u.length);
    expect([...bits(y)]).toEqual([...u]);
  });

  it('F16 decodes every half exactly (NaN payloads widened like ggml)', () => {
    const src = new Uint8Array(65536 * 2);
    for (let h = 0; h < 65536; h++) {
      src[2 * h] = h & 0xff;
      src[2 * h + 1] = h >> 8;
    }
    const y = dequantize(GGMLType.F16, src, 65536);
    const yb = bits(y);
    for (let h = 0; h < 65536; h++) {
      const v = half(h);
      const want = Number.isNaN(v)
        ? (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0
        : new Uint32Array(new Float32Array([v]).buffer)[0]!;
      if (yb[h] !== want) expect([h, yb[h]!.toString(16)]).toEqual([h, want.toString(16)]);
    }
  });

  it('BF16 is the top half of the f32 bits', () => {
    const hs = [0x3f80, 0xc040, 0x7fc1, 0xff80, 0x0001, 0x8000, 0x7f7f, 0x4049];
    const b = new Bytes().u8(0xee); // odd offset
    for (const h of hs) b.u16(h);
    const y = dequantize(GGMLType.BF16, b.done().subarray(1), hs.length);
    expect([...bits(y)]).toEqual(hs.map((h) => (h << 16) >>> 0));
  });

  it('F16 and BF16 write into a dst view at an offset', () => {
    const src = new Bytes().u16(0x3c00).u16(0xc000).done();
    for (const [type, want] of [[GGMLType.F16, [1, -2]], [GGMLType.BF16, [bf(0x3c00), bf(0xc000)]]] as const) {
      const big = new Float32Array(6);
      const dst = big.subarray(2, 4);
      dequantize(type, src, 2, dst);
      expect([...big]).toEqual([0, 0, ...want, 0, 0]);
    }
    function bf(h: number): number {
      return new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
    }
  });

  it('zero elements gives an empty array', () => {
    expect(dequantize(GGMLType.Q4_K, new Uint8Array(0), 0).length).toBe(0);
  });
});

describe('MXFP4 (gpt-oss experts)', () => {
  // one block: E8M0 scale byte, then 16 bytes of E2M1 codes (low nibble: element j, high: j + 16).
  // E2M1 codes 0..7 are 0, 0.5, 1, 1.5, 2, 3, 4, 6 and 8..15 their negatives (OCP MX spec); the
  // scale is 2^(e − 127). ggml keeps the codes doubled and the scale halved: the same values.
  // (code 8 is −0 in E2M1; ggml's int8 table makes it +0, and so does moet)
  const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, 0, -0.5, -1, -1.5, -2, -3, -4, -6];
  it('decodes every code at several scales as the OCP definition says (denormal scales included)', () => {
    for (const e of [0, 1, 2, 100, 126, 127, 128, 140, 254]) {
      const block = new Uint8Array(17);
      block[0] = e;
      for (let j = 0; j < 16; j++) block[1 + j] = j | ((15 - j) << 4);
      const y = dequantize(GGMLType.MXFP4, block, 32);
      const scale = 2 ** (e - 127);
      for (let j = 0; j < 16; j++) {
        expect(y[j], `e ${e} code ${j}`).toBe(Math.fround(E2M1[j]! * scale));
        expect(y[16 + j], `e ${e} code ${15 - j}`).toBe(Math.fround(E2M1[15 - j]! * scale));
      }
    }
  });
  it('quantize (llama.cpp quantize_row_mxfp4_ref) picks floor(log2 amax) − 2 + 127 and the nearest code', () => {
    const x = new Float32Array(64);
    for (let i = 0; i < 64; i++) x[i] = Math.sin(i * 1.7) * (i < 32 ? 3 : 0.01);
    const q = quantize(GGMLType.MXFP4, x);
    expect(q.length).toBe(34);
    expect(q[0]).toBe(Math.floor(Math.log2(Math.max(...Array.from(x.subarray(0, 32), Math.abs)))) - 2 + 127);
    const y = dequantize(GGMLType.MXFP4, q, 64);
    for (let b = 0; b < 2; b++) {
      const d = 2 ** (q[b * 17]! - 127);
      for (let i = 0; i < 32; i++) {
        const v = x[b * 32 + i]!;
        const best = Math.min(...E2M1.map((c) => Math.abs(c * d - v)));
        expect(Math.abs(y[b * 32 + i]! - v)).toBeCloseTo(best, 6);
      }
    }
  });
});

describe('dequantize: errors', () => {
  it('rejects types it cannot decode with UnsupportedQuantError naming the type', () => {
    for (const [type, name] of [[GGMLType.Q2_K, 'Q2_K'], [GGMLType.Q3_K, 'Q3_K'], [GGMLType.IQ4_XS, 'IQ4_XS'],
      [GGMLType.Q8_K, 'Q8_K'], [99, 'type99']] as const) {
      expect(isSupportedType(type)).toBe(false);
      let err: unknown;
      try {
        dequantize(type as GGMLType, new Uint8Array(1024), 256);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UnsupportedQuantError);
      expect((err as Error).message).toContain(name);
      expect((err as UnsupportedQuantError).ggmlType).toBe(type);
    }
  });

  it('supports the documented types', () => {
    for (const t of [GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_1,
      GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K]) {
      expect(isSupportedType(t)).toBe(true);
    }
  });

  it('rejects element counts that are not a multiple of the block size', () => {
    expect(() => dequantize(GGMLType.Q4_K, new Uint8Array(144), 255)).toThrow(RangeError);
    expect(() => dequantize(GGMLType.Q8_0, new Uint8Array(68), 48)).toThrow(/multiple of the block size 32/);
    expect(() => dequantize(GGMLType.Q6_K, new Uint8Array(210), -256)).toThrow(RangeError);
    expect(() => dequantize(GGMLType.F32, new Uint8Array(8), 1.5)).toThrow(RangeError);
  });

  it('rejects a src shorter than the elements need', () => {
    expect(() => dequantize(GGMLType.Q4_K, new Uint8Array(143), 256)).toThrow(/need 144 bytes, src has 143/);
    expect(() => dequantize(GGMLType.Q6_K, new Uint8Array(210 * 2 - 1), 512)).toThrow(RangeError);
    expect(() => dequantize(GGMLType.F16, new Uint8Array(3), 2)).toThrow(RangeError);
  });

  it('rejects a dst shorter than nElements', () => {
    expect(() => dequantize(GGMLType.Q8_0, new Uint8Array(34), 32, new Float32Array(31))).toThrow(/dst holds 31/);
  });
});
