import { describe, expect, it } from 'vitest';
import { dequantize, quantize } from '../../gguf/quants.js';
import { GGMLType, rowBytes } from '../../gguf/types.js';
import {
  add, addScaled, attention, embedRow, expertSlice, matMul, matVec, moeRoute, normalizedMSE, rmsNorm, ropeNeox,
  roundToF16, silu, softmax, swiglu, type QuantMatrix, type QuantMatrixStack,
} from '../../src/cpu/ops.js';
import { randomArray, rng } from './tiny-model.js';

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)))) {
      throw new Error(`index ${i}: got ${a[i]}, expected ${b[i]}`);
    }
  }
}

function f32Matrix(rows: number, cols: number, v: Float32Array): QuantMatrix {
  return { type: GGMLType.F32, rows, cols, data: new Uint8Array(v.buffer.slice(0)) };
}

describe('rmsNorm', () => {
  it('normalizes by the root mean square and applies the weight', () => {
    const x = Float32Array.of(1, 2, 3, 4);
    const w = Float32Array.of(1, 0.5, 2, -1);
    const out = new Float32Array(4);
    rmsNorm(out, x, w, 0);
    const s = 1 / Math.sqrt(7.5);
    expectClose(out, [1 * s, 2 * s * 0.5, 3 * s * 2, -4 * s]);
  });
  it('handles several rows without a weight, in place, with eps', () => {
    const x = Float32Array.of(3, 4, 0, 0, 1, 1);
    rmsNorm(x, x, null, 0.5, 3);
    const s1 = 1 / Math.sqrt(12.5 + 0.5);
    expectClose(x, [3 * s1, 4 * s1, 0, 0, 1 / Math.sqrt(1.5), 1 / Math.sqrt(1.5)]);
  });
  it('row length comes from the weight (per-head norm)', () => {
    const x = Float32Array.of(2, 0, 0, 2);
    rmsNorm(x, x, Float32Array.of(1, 3), 0, 2);
    const s = 1 / Math.sqrt(2);
    expectClose(x, [2 * s, 0, 0, 6 * s]);
  });
});

describe('ropeNeox', () => {
  it('is the identity at position 0', () => {
    const x = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    ropeNeox(x, 2, 4, 4, 0, 10000);
    expectClose(x, [1, 2, 3, 4, 5, 6, 7, 8], 0);
  });
  it('rotates element i with i + nRot/2 by pos·base^(-2i/nRot)', () => {
    const x = Float32Array.of(1, 2, 3, 4);
    ropeNeox(x, 1, 4, 4, 1, 10000);
    const t0 = 1;
    const t1 = 0.01; // 10000^(-2/4)
    expectClose(x, [
      1 * Math.cos(t0) - 3 * Math.sin(t0),
      2 * Math.cos(t1) - 4 * Math.sin(t1),
      1 * Math.sin(t0) + 3 * Math.cos(t0),
      2 * Math.sin(t1) + 4 * Math.cos(t1),
    ]);
  });
  it('leaves dimensions >= nRot alone and applies to every head', () => {
    const x = Float32Array.of(1, 0, 0, 0, 9, 9, 0, 1, 0, 0, 7, 7); // 2 heads of 6, nRot 4
    ropeNeox(x, 2, 6, 4, 2, 100);
    const t1 = 2 * Math.pow(100, -0.5);
    expectClose(x, [Math.cos(2), 0, Math.sin(2), 0, 9, 9, 0, Math.cos(t1), 0, Math.sin(t1), 7, 7]);
  });
  it('matches the exact formula at a large position within f32 accuracy', () => {
    const hd = 128;
    const x = randomArray(hd, rng(3));
    const ref = Array.from(x);
    ropeNeox(x, 1, hd, hd, 1000, 1e6);
    for (let i = 0; i < hd / 2; i++) {
      const th = 1000 * Math.pow(1e6, (-2 * i) / hd);
      const a = ref[i]!;
      const b = ref[i + hd / 2]!;
      expect(Math.abs(x[i]! - (a * Math.cos(th) - b * Math.sin(th)))).toBeLessThan(2e-4);
      expect(Math.abs(x[i + hd / 2]! - (a * Math.sin(th) + b * Math.cos(th)))).toBeLessThan(2e-4);
    }
  });
});

describe('softmax, silu, swiglu', () => {
  it('softmax', () => {
    const x = Float32Array.of(0, Math.log(2), 1000);
    softmax(x, 2);
    expectClose(x.subarray(0, 2), [1 / 3, 2 / 3]);
    expect(x[2]).toBe(1000); // beyond n: untouched
    const big = Float32Array.of(1000, 1000);
    softmax(big);
    expectClose(big, [0.5, 0.5]);
  });
  it('silu and swiglu', () => {
    expect(silu(0)).toBe(0);
    expect(silu(2)).toBeCloseTo(2 / (1 + Math.exp(-2)), 12);
    expect(silu(-30)).toBeCloseTo(0, 10);
    const out = new Float32Array(3);
    swiglu(out, Float32Array.of(1, -1, 3), Float32Array.of(2, 3, -1));
    expectClose(out, [2 * silu(1), 3 * silu(-1), -silu(3)]);
  });
  it('add, addScaled, roundToF16', () => {
    const o = Float32Array.of(1, 2);
    add(o, o, Float32Array.of(3, 4));
    expectClose(o, [4, 6], 0);
    addScaled(o, Float32Array.of(1, -1), 0.5);
    expectClose(o, [4.5, 5.5], 0);
    const h = Float32Array.of(1 / 3, 65504, 1e-8, 1.5);
    roundToF16(h);
    expectClose(h, [0.333251953125, 65504, 0, 1.5], 0);
  });
});

/** Naive attention written independently: explicit head mapping and exp/sum. */
function naiveAttention(q: number[][], k: number[][][], v: number[][][], nKv: number, scale: number, group: number): number[][] {
  return q.map((qh, h) => {
    const kvh = Math.floor(h / group);
    const s = k.slice(0, nKv).map((kj) => scale * qh.reduce((acc, qi, d) => acc + qi * kj[kvh]![d]!, 0));
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    return v[0]![kvh]!.map((_, d) => e.reduce((acc, ej, j) => acc + (ej / z) * v[j]![kvh]![d]!, 0));
  });
}

describe('attention', () => {
  const nHead = 6;
  const nHeadKv = 2;
  const dk = 5;
  const dv = 3;
  const nCtx = 7;
  const rand = rng(7);
  const q = randomArray(nHead * dk, rand);
  const kCache = randomArray(nCtx * nHeadKv * dk, rand);
  const vCache = randomArray(nCtx * nHeadKv * dv, rand);
  const nested = <T>(a: Float32Array, dims: number[]): T => {
    const rec = (off: number, d: number): unknown => {
      if (d === dims.length - 1) return Array.from(a.subarray(off, off + dims[d]!));
      const stride = dims.slice(d + 1).reduce((x, y) => x * y, 1);
      return Array.from({ length: dims[d]! }, (_, i) => rec(off + i * stride, d + 1));
    };
    return rec(0, 0) as T;
  };

  it('matches a naive GQA computation (head h reads KV head h / (nHead/nHeadKv))', () => {
    for (const nKv of [1, 4, 7]) {
      const out = new Float32Array(nHead * dv);
      attention(out, q, kCache, vCache, nHead, nHeadKv, dk, dv, nKv, 0.4);
      const ref = naiveAttention(nested(q, [nHead, dk]), nested(kCache, [nCtx, nHeadKv, dk]), nested(vCache, [nCtx, nHeadKv, dv]), nKv, 0.4, 3);
      expectClose(out, ref.flat(), 1e-5);
    }
  });
  it('with one visible position returns that value row; later positions are masked', () => {
    const k2 = kCache.slice();
    const v2 = vCache.slice();
    k2.fill(1e30, nHeadKv * dk); // garbage after position 0
    v2.fill(NaN, nHeadKv * dv);
    const out = new Float32Array(nHead * dv);
    attention(out, q, k2, v2, nHead, nHeadKv, dk, dv, 1, 0.4);
    for (let h = 0; h < nHead; h++) {
      const kvh = Math.floor(h / 3);
      expectClose(out.subarray(h * dv, (h + 1) * dv), vCache.subarray(kvh * dv, (kvh + 1) * dv), 1e-6);
    }
  });
});

describe('moeRoute', () => {
  it('picks the top-k in descending order and renormalizes', () => {
    const logits = Float32Array.of(0, 2, 1, 3, -1);
    const r = moeRoute(logits, 2, true);
    expect(Array.from(r.ids)).toEqual([3, 1]);
    const p = Array.from(logits, (x) => Math.exp(x));
    const z = p.reduce((a, b) => a + b, 0);
    expectClose(r.probs, p.map((x) => x / z));
    expectClose(r.weights, [p[3]! / (p[3]! + p[1]!), p[1]! / (p[3]! + p[1]!)]);
    expect(Array.from(logits)).toEqual([0, 2, 1, 3, -1]); // input untouched
  });
  it('without normalization returns the softmax probabilities', () => {
    const r = moeRoute(Float32Array.of(0, Math.log(3)), 1, false);
    expect(Array.from(r.ids)).toEqual([1]);
    expectClose(r.weights, [0.75]);
  });
  it('breaks ties toward the lower expert id', () => {
    const r = moeRoute(Float32Array.of(1, 5, 2, 5, 5, 2), 4, true);
    expect(Array.from(r.ids)).toEqual([1, 3, 4, 2]);
  });
  it('clamps the renormalization denominator at 6.103515625e-5', () => {
    const n = 20000; // uniform: each probability is 5e-5 < 2^-14
    const r = moeRoute(new Float32Array(n), 1, true);
    expect(r.ids[0]).toBe(0);
    expect(r.weights[0]).toBeCloseTo(5e-5 / 6.103515625e-5, 5);
  });
});

describe('matVec / matMul / embedRow / expertSlice', () => {
  const rand = rng(11);
  const rows = 5;
  const cols = 64;
  const wv = randomArray(rows * cols, rand);
  const x = randomArray(cols * 3, rand);
  const naive = (w: Float32Array, xs: Float32Array, t: number) =>
    Array.from({ length: rows }, (_, r) => {
      let s = 0;
      for (let c = 0; c < cols; c++) s += w[r * cols + c]! * xs[t * cols + c]!;
      return s;
    });

  it('F32 matVec is a plain dot product per row', () => {
    const out = new Float32Array(rows);
    matVec(out, f32Matrix(rows, cols, wv), x.subarray(0, cols));
    expectClose(out, naive(wv, x, 0), 1e-6);
  });

  for (const type of [GGMLType.Q8_0, GGMLType.Q4_0]) {
    it(`type ${type} matVec equals dequantize-then-dot`, () => {
      const data = quantize(type, wv);
      const deq = dequantize(type, data, rows * cols);
      const out = new Float32Array(rows);
      matVec(out, { type, rows, cols, data }, x.subarray(0, cols));
      expectClose(out, naive(deq, x, 0), 1e-6);
      expect(normalizedMSE(out, naive(wv, x, 0))).toBeLessThan(1e-2);
    });
  }

  it('Q4_K matVec (256-wide rows) equals dequantize-then-dot', () => {
    const c = 512;
    const w = randomArray(3 * c, rand);
    const xs = randomArray(c, rand);
    const data = quantize(GGMLType.Q4_K, w);
    const deq = dequantize(GGMLType.Q4_K, data, 3 * c);
    const out = new Float32Array(3);
    matVec(out, { type: GGMLType.Q4_K, rows: 3, cols: c, data }, xs);
    for (let r = 0; r < 3; r++) {
      let s = 0;
      for (let i = 0; i < c; i++) s += deq[r * c + i]! * xs[i]!;
      expect(out[r]).toBeCloseTo(s, 4);
    }
  });

  it('matMul equals matVec per token', () => {
    const m = { type: GGMLType.Q8_0, rows, cols, data: quantize(GGMLType.Q8_0, wv) };
    const out = new Float32Array(3 * rows);
    matMul(out, m, x, 3);
    for (let t = 0; t < 3; t++) {
      const o = new Float32Array(rows);
      matVec(o, m, x.subarray(t * cols, (t + 1) * cols));
      expectClose(out.subarray(t * rows, (t + 1) * rows), o, 0);
    }
  });

  it('embedRow dequantizes one row', () => {
    const data = quantize(GGMLType.Q8_0, wv);
    const out = new Float32Array(cols);
    embedRow(out, { type: GGMLType.Q8_0, rows, cols, data }, 3);
    expectClose(out, dequantize(GGMLType.Q8_0, data, rows * cols).subarray(3 * cols, 4 * cols), 0);
  });

  it('expertSlice views matrix e of a [cols, rows, count] stack', () => {
    const count = 3;
    const all = randomArray(count * rows * cols, rand);
    const data = quantize(GGMLType.Q8_0, all);
    const stack: QuantMatrixStack = { type: GGMLType.Q8_0, rows, cols, count, data };
    const e1 = expertSlice(stack, 1);
    expect(e1.data.byteLength).toBe(rows * rowBytes(GGMLType.Q8_0, cols));
    expect(e1.data.byteOffset - data.byteOffset).toBe(rows * rowBytes(GGMLType.Q8_0, cols));
    const out = new Float32Array(rows);
    matVec(out, e1, x.subarray(0, cols));
    const deq = dequantize(GGMLType.Q8_0, data, count * rows * cols).subarray(rows * cols, 2 * rows * cols);
    expectClose(out, naive(deq, x, 0), 1e-6);
    expect(() => expertSlice(stack, 3)).toThrow(RangeError);
  });
});
