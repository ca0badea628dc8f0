// f16 / bf16 scalar conversions (gguf/quants.ts) against independent definitions.
import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../gguf/quants.js';

/** f32 bit pattern of a number (after rounding to f32). */
function bitsOf(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}
function fromBits(u: number): number {
  return new Float32Array(new Uint32Array([u >>> 0]).buffer)[0]!;
}
/** Value of half bits straight from the IEEE 754 binary16 definition. */
function halfValue(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * Math.pow(2, -24) : s * Math.pow(2, e - 15) * (1 + m / 1024);
}

describe('f16ToF32', () => {
  it('decodes the special and boundary values', () => {
    expect(f16ToF32(0x0000)).toBe(0);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(f16ToF32(0x3555)).toBe(0.333251953125);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0xfbff)).toBe(-65504);
    expect(f16ToF32(0x0400)).toBe(2 ** -14); // smallest normal
    expect(f16ToF32(0x0001)).toBe(2 ** -24); // smallest subnormal
    expect(f16ToF32(0x03ff)).toBe(1023 * 2 ** -24); // largest subnormal
    expect(f16ToF32(0x8001)).toBe(-(2 ** -24));
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
    expect(f16ToF32(0x7c01)).toBeNaN();
    expect(f16ToF32(0xfe00)).toBeNaN();
  });

  it('matches the binary16 definition for all 65536 bit patterns', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16ToF32(h);
      const want = halfValue(h);
      if (Number.isNaN(want)) expect(v).toBeNaN();
      else if (v !== want || Object.is(v, -0) !== Object.is(want, -0)) expect([h, v]).toEqual([h, want]);
    }
  });
});

describe('f32ToF16', () => {
  it('rounds to nearest, ties to even', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie between 0x3c00 and 0x3c01 → even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02 → even
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(f32ToF16(-(1 + 2 ** -11))).toBe(0xbc00);
    expect(f32ToF16(0.1)).toBe(0x2e66);
    expect(f32ToF16(-0.333333)).toBe(0xb555);
    expect(f32ToF16(2047)).toBe(0x67ff);
    expect(f32ToF16(2049)).toBe(0x6800); // tie → even (2048)
    expect(f32ToF16(2051)).toBe(0x6802); // tie → even (2052)
  });

  it('handles overflow, infinities, NaN and signed zero like ggml', () => {
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65519.99)).toBe(0x7bff); // below the halfway point to 65536
    expect(f32ToF16(65520)).toBe(0x7c00); // the tie rounds up to infinity
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f32ToF16(3.4e38)).toBe(0x7c00);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    expect(f32ToF16(NaN)).toBe(0x7e00);
    expect(f32ToF16(fromBits(0xffc00001))).toBe(0xfe00); // sign kept, canonical quiet NaN
    expect(f32ToF16(fromBits(0x7f800001))).toBe(0x7e00); // signalling NaN
    expect(f32ToF16(0)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
  });

  it('rounds into and out of the subnormal range', () => {
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie → even (0)
    expect(f32ToF16(2 ** -25 * 1.0000001)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: tie → even (2)
    expect(f32ToF16(5 * 2 ** -25)).toBe(0x0002); // 2.5 units: tie → even (2)
    expect(f32ToF16(-(2 ** -24))).toBe(0x8001);
    expect(f32ToF16(2 ** -26)).toBe(0x0000);
    expect(f32ToF16(1e-30)).toBe(0x0000);
    expect(f32ToF16(-1e-30)).toBe(0x8000);
    expect(f32ToF16(fromBits(0x00000001))).toBe(0x0000); // f32 subnormal
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // tie → even: the smallest normal
    expect(f32ToF16(1022.5 * 2 ** -24)).toBe(0x03fe);
    expect(f32ToF16(2 ** -14)).toBe(0x0400);
    expect(f32ToF16(2 ** -14 - 2 ** -30)).toBe(0x0400);
  });

  it('inverts f16ToF32 on every non-NaN half', () => {
    for (let h = 0; h < 65536; h++) {
      if (((h >> 10) & 31) === 31 && (h & 1023)) continue;
      const back = f32ToF16(f16ToF32(h));
      if (back !== h) expect([h, back]).toEqual([h, h]);
    }
  });

  it('picks the nearest half (ties to even) for random f32 values', () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const bad: number[] = [];
    for (let k = 0; k < 20000; k++) {
      // magnitudes from 2^-27 to 2^17, both signs
      const x = Math.fround((rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 44 - 27) * (1 + rnd()));
      const h = f32ToF16(x);
      const v = halfValue(h);
      const ax = Math.abs(x);
      let ok: boolean;
      if (ax >= 65520) {
        ok = Math.abs(v) === Infinity;
      } else {
        // the neighbours of h in magnitude
        const mag = h & 0x7fff;
        const lo = mag > 0 ? halfValue(mag - 1) : -Infinity;
        const hi = mag < 0x7bff ? halfValue(mag + 1) : Infinity;
        const d = Math.abs(ax - Math.abs(v));
        const dLo = ax - lo;
        const dHi = hi - ax;
        ok = (h >> 15 === 1) === x < 0 && d <= dLo && d <= dHi && ((d !== dLo && d !== dHi) || (mag & 1) === 0);
      }
      if (!ok) bad.push(x);
    }
    expect(bad).toEqual([]);
  });

  it('takes the argument as an f32 first', () => {
    // 1 + 2^-11 + 2^-40 is above the f16 tie as a double, but rounds to the tie as an f32
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c00);
  });
});

describe('bf16', () => {
  it('bf16ToF32 is the top half of an f32', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc040)).toBe(-3);
    expect(bf16ToF32(0x7f7f)).toBe(fromBits(0x7f7f0000));
    expect(bf16ToF32(0x0001)).toBe(fromBits(0x00010000)); // subnormal
    expect(bf16ToF32(0x7f80)).toBe(Infinity);
    expect(bf16ToF32(0xff80)).toBe(-Infinity);
    expect(bf16ToF32(0x7fc0)).toBeNaN();
    expect(Object.is(bf16ToF32(0x8000), -0)).toBe(true);
    const bad: number[] = [];
    for (let h = 0; h < 65536; h++) {
      const v = bf16ToF32(h);
      const ok = Number.isNaN(v) ? (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0 : bitsOf(v) === (h << 16) >>> 0;
      if (!ok) bad.push(h);
    }
    expect(bad).toEqual([]);
  });

  it('f32ToBf16 rounds to nearest even and keeps subnormals', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(fromBits(0x3f808000))).toBe(0x3f80); // tie → even
    expect(f32ToBf16(fromBits(0x3f818000))).toBe(0x3f82); // tie → even
    expect(f32ToBf16(fromBits(0x3f808001))).toBe(0x3f81);
    expect(f32ToBf16(fromBits(0x3f807fff))).toBe(0x3f80);
    expect(f32ToBf16(fromBits(0xbf808001))).toBe(0xbf81);
    expect(f32ToBf16(fromBits(0x00018000))).toBe(0x0002); // subnormal tie → even
    expect(f32ToBf16(fromBits(0x00008001))).toBe(0x0001);
    expect(f32ToBf16(fromBits(0x7f7fffff))).toBe(0x7f80); // rounds up to infinity
    expect(f32ToBf16(Infinity)).toBe(0x7f80);
    expect(f32ToBf16(-Infinity)).toBe(0xff80);
    expect(f32ToBf16(-0)).toBe(0x8000);
    expect(f32ToBf16(3.14159)).toBe(0x4049);
  });

  it('f32ToBf16 quiets NaN and keeps its sign and top payload bits (ggml)', () => {
    expect(f32ToBf16(NaN)).toBe(0x7fc0);
    expect(f32ToBf16(fromBits(0x7f800001))).toBe(0x7fc0); // signalling, low payload
    expect(f32ToBf16(fromBits(0x7fa00000))).toBe(0x7fe0); // payload bit kept, quiet bit set
    expect(f32ToBf16(fromBits(0xff800001))).toBe(0xffc0);
  });

  it('round-trips every non-NaN bf16', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0) continue;
      const back = f32ToBf16(bf16ToF32(h));
      if (back !== h) expect([h, back]).toEqual([h, h]);
    }
  });
});
