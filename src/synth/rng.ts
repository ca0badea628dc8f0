// A fast deterministic PRNG for synthetic weights: xoshiro128** seeded from a string (FNV-1a, then
// splitmix32), bulk fills of u32 words and of Gaussian f32 values (Box-Muller). Integer arithmetic
// plus Math.log/sqrt/cos, so the same seed gives the same file on every platform Node runs on
// (V8's fdlibm port). The test fixtures (tests/fixtures/make.ts) draw their weights from it too, so
// changing its stream changes every fixture and golden reference.

/** 32-bit FNV-1a of a string. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class SynthRng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string | number) {
    let s = typeof seed === 'number' ? seed >>> 0 : hashString(seed);
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  /** uniform unsigned 32-bit integer */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.b << 9) >>> 0;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    this.a >>>= 0; this.b >>>= 0; this.c >>>= 0;
    return r;
  }

  /** uniform in [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** fills `out` with uniform random words (the same stream as repeated u32()) */
  fillU32(out: Uint32Array): Uint32Array {
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < out.length; i++) {
      out[i] = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9);
      const t = (b << 9) >>> 0;
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = rotl(d, 11);
      a >>>= 0; b >>>= 0; c >>>= 0;
    }
    this.a = a; this.b = b; this.c = c; this.d = d;
    return out;
  }

  /** fills `out` with mean + std · N(0, 1): Box-Muller on the u32() stream (two words a pair, the
   * first for the radius, the second for the angle), the generator inlined for speed */
  fillNormal(out: Float32Array, std: number, mean = 0): Float32Array {
    let a = this.a, b = this.b, c = this.c, d = this.d;
    const n = out.length;
    const twoPi = 2 * Math.PI;
    for (let i = 0; i < n; i += 2) {
      let r0 = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
      let t = (b << 9) >>> 0;
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = rotl(d, 11);
      a >>>= 0; b >>>= 0; c >>>= 0;
      const r1 = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
      t = (b << 9) >>> 0;
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = rotl(d, 11);
      a >>>= 0; b >>>= 0; c >>>= 0;
      r0 = (r0 + 1) / 4294967297; // (0, 1]
      const rad = std * Math.sqrt(-2 * Math.log(r0));
      const th = twoPi * (r1 / 4294967296);
      out[i] = mean + rad * Math.cos(th);
      if (i + 1 < n) out[i + 1] = mean + rad * Math.sin(th);
    }
    this.a = a; this.b = b; this.c = c; this.d = d;
    return out;
  }
}
