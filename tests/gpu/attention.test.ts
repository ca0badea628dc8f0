// attn_kv_write.wgsl, attn_decode.wgsl and attn_prefill.wgsl vs src/cpu/ops.ts attention, with f16
// and f32 caches, GQA, head dims 64/96/128/256 (K and V may differ), lengths that are not
// multiples of any workgroup, chunk or tile size.
import { afterAll, describe, expect, it } from 'vitest';
import { f16ToF32 } from '../../gguf/quants.js';
import { llamaAttention } from '../../src/cpu/llamacpp.js';
import { attention, roundToF16 } from '../../src/cpu/ops.js';
import { ContextOverflowError } from '../../src/errors.js';
import { createAttnDecode, createAttnPrefill, createKvCache, createKvWrite, decodeChunk, prefillTile, type KvCache } from '../../src/gpu/attention.js';
import { createStorage, createStorageFrom, readBuffer, readF32 } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());
/** f16-cache cases need shader-f16 (lavapipe and every current GPU driver have it) */
const noF16 = !ctx?.features.f16;

interface Shape {
  nHead: number;
  nHeadKv: number;
  dk: number;
  dv: number;
}

/** The cache's contents as f32 (f16 widened). */
async function readCache(g: GPUContext, buf: GPUBuffer, n: number, f16: boolean): Promise<Float32Array> {
  if (!f16) return readF32(g, buf, n);
  const bytes = await readBuffer(g, buf, 0, Math.ceil((n * 2) / 4) * 4);
  const h = new Uint16Array(bytes, 0, n);
  return Float32Array.from(h, (b) => f16ToF32(b));
}

/** K, V of nTok tokens ([nTok, nHeadKv, d]) written at positions 0.. through the GPU kernel. */
async function fillCache(g: GPUContext, cache: KvCache, k: Float32Array, v: Float32Array, nTok: number, pos0 = 0): Promise<void> {
  const kb = createStorageFrom(g, k);
  const vb = createStorageFrom(g, v);
  const w = await createKvWrite(g, { cache, k: kb, v: vb, nTokens: nTok, pos0 });
  runLaunches(g, [w]);
  await g.checkErrors();
  g.destroyBuffer(kb);
  g.destroyBuffer(vb);
}

/** reference attention of one query over the first nKv positions of (f16-rounded) K/V */
function refAttention(s: Shape, q: Float32Array, k: Float32Array, v: Float32Array, nKv: number): Float32Array {
  const out = new Float32Array(s.nHead * s.dv);
  attention(out, q, k, v, s.nHead, s.nHeadKv, s.dk, s.dv, nKv, 1 / Math.sqrt(s.dk));
  return out;
}

// attention outputs are convex combinations of V rows (|v| ≤ 1): absolute tolerance
const ATOL = 2e-5;

describe.skipIf(!ctx)('KV cache write', () => {
  const g = ctx!;
  for (const f16 of [true, false]) {
    it.skipIf(f16 && noF16)(`${f16 ? 'f16' : 'f32'}: 5 tokens at position 3 with strides and offsets; 1 token at 8`, async () => {
      const [nHeadKv, dk, dv, nCtx] = [2, 96, 64, 11];
      const cache = createKvCache(g, { nCtx, nHeadKv, headDimK: dk, headDimV: dv, f16 });
      const kvK = nHeadKv * dk;
      const kvV = nHeadKv * dv;
      const r = rng(11);
      // 5 tokens: K at offset 7 with stride kvK + 3, V packed after offset 2
      const kSrc = randomF32(r, 7 + 5 * (kvK + 3), -3, 3);
      const vSrc = randomF32(r, 2 + 5 * kvV, -3, 3);
      const kb = createStorageFrom(g, kSrc);
      const vb = createStorageFrom(g, vSrc);
      const w = await createKvWrite(g, { cache, k: { buffer: kb, offset: 7 }, v: { buffer: vb, offset: 2 }, nTokens: 5, pos0: 3, kStride: kvK + 3 });
      runLaunches(g, [w]);
      const k1 = randomF32(r, kvK);
      const v1 = randomF32(r, kvV);
      const w1 = await createKvWrite(g, { cache, k: createStorageFrom(g, k1), v: createStorageFrom(g, v1), pos0: 8 });
      runLaunches(g, [w1]);
      const kc = await readCache(g, cache.k, nCtx * kvK, f16);
      const vc = await readCache(g, cache.v, nCtx * kvV, f16);
      const expK = new Float32Array(kvK * 6);
      const expV = new Float32Array(kvV * 6);
      for (let t = 0; t < 5; t++) {
        expK.set(kSrc.subarray(7 + t * (kvK + 3), 7 + t * (kvK + 3) + kvK), t * kvK);
        expV.set(vSrc.subarray(2 + t * kvV, 2 + (t + 1) * kvV), t * kvV);
      }
      expK.set(k1, 5 * kvK);
      expV.set(v1, 5 * kvV);
      if (f16) {
        roundToF16(expK);
        roundToF16(expV);
      }
      // f32 → f16 conversion may round either way (WGSL): one f16 ulp
      const tol = f16 ? 2e-3 : 0;
      expectClose('K', kc.subarray(3 * kvK, 9 * kvK), expK, 0, tol);
      expectClose('V', vc.subarray(3 * kvV, 9 * kvV), expV, 0, tol);
      expect(() => w.setPosition(7)).toThrow(ContextOverflowError);
    });
  }
});

describe.skipIf(!ctx)('attention decode (flash-decoding)', () => {
  const g = ctx!;
  const shapes: Shape[] = [
    { nHead: 6, nHeadKv: 2, dk: 64, dv: 64 },
    { nHead: 6, nHeadKv: 2, dk: 96, dv: 96 },
    { nHead: 4, nHeadKv: 4, dk: 128, dv: 96 },
    { nHead: 3, nHeadKv: 1, dk: 256, dv: 256 },
  ];
  for (const f16 of [true, false]) {
    for (const s of shapes) {
      it.skipIf(f16 && noF16)(`${f16 ? 'f16' : 'f32'} cache, ${s.nHead}/${s.nHeadKv} heads, dk ${s.dk} dv ${s.dv}, nKv 1 / 37 / 300, auto and odd chunks`, async () => {
        const nCtx = 301;
        const cache = createKvCache(g, { nCtx, nHeadKv: s.nHeadKv, headDimK: s.dk, headDimV: s.dv, f16 });
        const r = rng(s.dk * 31 + s.nHead + (f16 ? 1 : 0));
        const k = randomF32(r, 300 * s.nHeadKv * s.dk);
        const v = randomF32(r, 300 * s.nHeadKv * s.dv);
        await fillCache(g, cache, k, v, 300);
        if (f16) {
          roundToF16(k);
          roundToF16(v);
        }
        const q = randomF32(r, s.nHead * s.dk, -4, 4); // sharper softmax
        const qb = createStorageFrom(g, Float32Array.of(9, 9, ...q)); // at offset 2
        const outLen = s.nHead * s.dv;
        const ob = createStorage(g, (outLen + 5) * 4);
        for (const chunk of [undefined, 7, 32]) {
          const launch = await createAttnDecode(g, { cache, q: { buffer: qb, offset: 2 }, out: { buffer: ob, offset: 5 }, nHead: s.nHead, chunk });
          for (const nKv of [1, 37, 300]) {
            launch.setKv(nKv);
            runLaunches(g, [launch]);
            const got = await readF32(g, ob, outLen, 5);
            const ref = refAttention(s, q, k, v, nKv);
            expectClose(`nKv ${nKv} chunk ${chunk ?? `auto(${decodeChunk(nKv)})`} (${launch.nChunks} chunks)`, got, ref, ATOL);
          }
        }
        await g.checkErrors();
      });
    }
  }

  it('a decode loop: one KV write + decode launch pair reused for 40 steps (setPosition / setKv), one submit per step', async () => {
    const s: Shape = { nHead: 6, nHeadKv: 2, dk: 64, dv: 64 };
    const steps = 40;
    const cache = createKvCache(g, { nCtx: steps, nHeadKv: s.nHeadKv, headDimK: s.dk });
    const r = rng(77);
    const kAll = randomF32(r, steps * s.nHeadKv * s.dk);
    const vAll = randomF32(r, steps * s.nHeadKv * s.dv);
    const kb = createStorage(g, s.nHeadKv * s.dk * 4);
    const vb = createStorage(g, s.nHeadKv * s.dv * 4);
    const qb = createStorage(g, s.nHead * s.dk * 4);
    const ob = createStorage(g, s.nHead * s.dv * 4);
    const write = await createKvWrite(g, { cache, k: kb, v: vb });
    const attn = await createAttnDecode(g, { cache, q: qb, out: ob, nHead: s.nHead, chunk: 16 });
    if (cache.f16) {
      roundToF16(kAll);
      roundToF16(vAll);
    }
    for (let p = 0; p < steps; p++) {
      const q = randomF32(r, s.nHead * s.dk, -4, 4);
      g.queue.writeBuffer(kb, 0, kAll.subarray(p * s.nHeadKv * s.dk, (p + 1) * s.nHeadKv * s.dk));
      g.queue.writeBuffer(vb, 0, vAll.subarray(p * s.nHeadKv * s.dv, (p + 1) * s.nHeadKv * s.dv));
      g.queue.writeBuffer(qb, 0, q);
      write.setPosition(p);
      attn.setKv(p + 1);
      runLaunches(g, [write, attn]);
      if (p % 13 === 0 || p === steps - 1) {
        expectClose(`step ${p}`, await readF32(g, ob, s.nHead * s.dv), refAttention(s, q, kAll, vAll, p + 1), ATOL);
      }
    }
  });

  it('chunking: auto chunk lengths and overflow', async () => {
    expect(decodeChunk(1)).toBe(32);
    expect(decodeChunk(33)).toBe(64); // up to 256 positions: one chunk, no reduce dispatch
    expect(decodeChunk(256)).toBe(256);
    expect(decodeChunk(300)).toBe(32);
    expect(decodeChunk(4096)).toBe(256);
    expect(decodeChunk(40960)).toBe(256);
    const cache = createKvCache(g, { nCtx: 10, nHeadKv: 1, headDimK: 64 });
    const launch = await createAttnDecode(g, { cache, q: createStorage(g, 256), out: createStorage(g, 256), nHead: 1 });
    expect(() => launch.setKv(11)).toThrow(ContextOverflowError);
  });
});

describe.skipIf(!ctx)('attention prefill (causal, tiled, online softmax)', () => {
  const g = ctx!;
  const cases: [Shape, number, number, { blockQ: number; blockK: number } | undefined][] = [
    // shape, nTokens, pos0, forced tile
    [{ nHead: 6, nHeadKv: 2, dk: 64, dv: 64 }, 1, 0, undefined],
    [{ nHead: 6, nHeadKv: 2, dk: 64, dv: 64 }, 33, 0, undefined],
    [{ nHead: 6, nHeadKv: 2, dk: 96, dv: 96 }, 5, 20, undefined],
    [{ nHead: 6, nHeadKv: 2, dk: 96, dv: 96 }, 33, 4, { blockQ: 4, blockK: 8 }],
    [{ nHead: 4, nHeadKv: 2, dk: 128, dv: 96 }, 33, 17, undefined],
    [{ nHead: 2, nHeadKv: 1, dk: 256, dv: 256 }, 5, 3, undefined],
  ];
  for (const f16 of [true, false]) {
    for (const [s, nTok, pos0, tile] of cases) {
      const name = `${f16 ? 'f16' : 'f32'} cache, ${s.nHead}/${s.nHeadKv} heads, dk ${s.dk} dv ${s.dv}, ${nTok} tokens at ${pos0}${tile ? `, tile ${tile.blockQ}×${tile.blockK}` : ''}`;
      it.skipIf(f16 && noF16)(name, async () => {
        const nCtx = pos0 + nTok + 2;
        const cache = createKvCache(g, { nCtx, nHeadKv: s.nHeadKv, headDimK: s.dk, headDimV: s.dv, f16 });
        const r = rng(nTok * 1009 + pos0 * 31 + s.dk + (f16 ? 7 : 0));
        const nAll = pos0 + nTok;
        const k = randomF32(r, nAll * s.nHeadKv * s.dk);
        const v = randomF32(r, nAll * s.nHeadKv * s.dv);
        // the earlier context, then the new tokens (as a forward pass does)
        if (pos0 > 0) await fillCache(g, cache, k.subarray(0, pos0 * s.nHeadKv * s.dk), v.subarray(0, pos0 * s.nHeadKv * s.dv), pos0);
        await fillCache(g, cache, k.subarray(pos0 * s.nHeadKv * s.dk), v.subarray(pos0 * s.nHeadKv * s.dv), nTok, pos0);
        if (f16) {
          roundToF16(k);
          roundToF16(v);
        }
        const qStride = s.nHead * s.dk + 3;
        const q = randomF32(r, nTok * qStride, -4, 4);
        const qb = createStorageFrom(g, q);
        const outStride = s.nHead * s.dv + 1;
        const ob = createStorage(g, nTok * outStride * 4);
        const launch = await createAttnPrefill(g, { cache, q: qb, out: ob, nHead: s.nHead, nTokens: nTok, pos0, qStride, outStride, ...tile });
        runLaunches(g, [launch]);
        const got = await readF32(g, ob, nTok * outStride);
        for (let t = 0; t < nTok; t++) {
          const ref = refAttention(s, q.subarray(t * qStride, t * qStride + s.nHead * s.dk), k, v, pos0 + t + 1);
          expectClose(`token ${t} (position ${pos0 + t})`, got.subarray(t * outStride, t * outStride + s.nHead * s.dv), ref, ATOL);
        }
        await g.checkErrors();
      });
    }
  }

  it('tile choice fits the device and head dim 256', () => {
    const lim = g.limits.maxComputeWorkgroupStorageSize;
    for (const d of [64, 96, 128, 256]) for (const f16 of [true, false]) expect(prefillTile(lim, d, d, f16).bq).toBeGreaterThanOrEqual(1);
    expect(prefillTile(16384, 128, 128, true)).toEqual({ bq: 8, bk: 16 });
  });
});

// numerics 'llamacpp' with an f16 cache (define LLAMA_SOFTMAX): llama.cpp's non-flash attention —
// scale after q·k, softmax normalized and rounded to f16 before ·V — against its CPU reproduction
// (src/cpu/llamacpp.ts llamaAttention, bit-exact with llama.cpp). exp and the dot order still differ
// in the last bit, which moves a probability across an f16 rounding boundary now and then: the bound
// is normalized MSE ≤ 1e-10 (the plain variant, unrounded softmax, is ~1e-8 off).
describe.skipIf(!ctx || noF16)('attention with llama.cpp softmax (f16 probabilities)', () => {
  const g = ctx!;
  const nmseOf = (a: Float32Array, b: Float32Array) => {
    let e = 0;
    let t = 0;
    for (let i = 0; i < b.length; i++) {
      e += (a[i]! - b[i]!) ** 2;
      t += b[i]! ** 2;
    }
    return e / t;
  };
  const cases: [Shape, number, number][] = [
    // shape, tokens of the prefill batch, visible positions of the decode step
    [{ nHead: 6, nHeadKv: 2, dk: 40, dv: 40 }, 33, 37],
    [{ nHead: 4, nHeadKv: 1, dk: 96, dv: 64 }, 7, 200],
  ];
  for (const [s, nTok, nKvDecode] of cases) {
    it(`${s.nHead}/${s.nHeadKv} heads, dk ${s.dk} dv ${s.dv}: prefill of ${nTok}, decode over ${nKvDecode}`, async () => {
      const nAll = Math.max(nTok, nKvDecode);
      const cache = createKvCache(g, { nCtx: nAll + 1, nHeadKv: s.nHeadKv, headDimK: s.dk, headDimV: s.dv, f16: true });
      const r = rng(s.dk * 7 + nTok);
      const k = randomF32(r, nAll * s.nHeadKv * s.dk);
      const v = randomF32(r, nAll * s.nHeadKv * s.dv);
      await fillCache(g, cache, k, v, nAll);
      roundToF16(k);
      roundToF16(v);
      const qRow = s.nHead * s.dk;
      const q = randomF32(r, nTok * qRow, -3, 3);
      roundToF16(q); // the graph passes q already rounded to f16 (llama.cpp's vec_dot_type for F16 K)
      const scale = Math.fround(1 / Math.fround(Math.sqrt(s.dk)));
      const ref = (t: number, nKv: number, batch: number) => {
        const out = new Float32Array(s.nHead * s.dv);
        llamaAttention(out, q.subarray(t * qRow, (t + 1) * qRow), k, v, s.nHead, s.nHeadKv, s.dk, s.dv, nKv, scale, batch);
        return out;
      };
      const qb = createStorageFrom(g, q);
      const ob = createStorage(g, nTok * s.nHead * s.dv * 4);
      const pre = await createAttnPrefill(g, { cache, q: qb, out: ob, nHead: s.nHead, nTokens: nTok, pos0: 0, scale, llamaSoftmax: true });
      runLaunches(g, [pre]);
      const got = await readF32(g, ob, nTok * s.nHead * s.dv);
      const want = new Float32Array(got.length);
      for (let t = 0; t < nTok; t++) want.set(ref(t, t + 1, nTok), t * s.nHead * s.dv);
      expect(nmseOf(got, want), 'prefill').toBeLessThanOrEqual(1e-10);
      const dec = await createAttnDecode(g, { cache, q: qb, out: ob, nHead: s.nHead, nKv: nKvDecode, scale, llamaSoftmax: true });
      runLaunches(g, [dec]);
      expect(nmseOf(await readF32(g, ob, s.nHead * s.dv), ref(0, nKvDecode, 1)), 'decode').toBeLessThanOrEqual(1e-10);
      await g.checkErrors();
    });
  }
});

// gpt-oss's attention extras: sliding windows (a query at position p sees keys > p − window) and
// sinks (a logit per head in the softmax's max and sum, without a value), against the CPU reference
// (src/cpu/ops.ts attention with { first, sinks }). Windows smaller and larger than the context,
// chunked decode (the sink joins in `reduce`) and single-chunk decode, prefill tiles that a window
// cuts through (a row's whole first key block masked).
describe.skipIf(!ctx)('attention with sliding windows and sinks', () => {
  const g = ctx!;
  const s: Shape = { nHead: 6, nHeadKv: 2, dk: 48, dv: 40 };
  const refWith = (q: Float32Array, k: Float32Array, v: Float32Array, nKv: number, window: number, sinks: Float32Array | null) => {
    const out = new Float32Array(s.nHead * s.dv);
    const first = window > 0 ? Math.max(0, nKv - window) : 0;
    attention(out, q, k, v, s.nHead, s.nHeadKv, s.dk, s.dv, nKv, 1 / Math.sqrt(s.dk), false, 1, { first, sinks });
    return out;
  };
  for (const [window, withSinks] of [[5, false], [5, true], [0, true], [70, true]] as const) {
    it(`decode: window ${window || 'none'}${withSinks ? ', sinks' : ''}; nKv 1 / 4 / 9 / 69 / 130, auto and 7-position chunks`, async () => {
      const nAll = 130;
      const cache = createKvCache(g, { nCtx: nAll, nHeadKv: s.nHeadKv, headDimK: s.dk, headDimV: s.dv, f16: false });
      const r = rng(window * 7 + (withSinks ? 1 : 0));
      const k = randomF32(r, nAll * s.nHeadKv * s.dk);
      const v = randomF32(r, nAll * s.nHeadKv * s.dv);
      await fillCache(g, cache, k, v, nAll);
      const q = randomF32(r, s.nHead * s.dk, -3, 3);
      const sinks = withSinks ? randomF32(r, s.nHead, -1, 3) : null;
      const qb = createStorageFrom(g, q);
      const ob = createStorage(g, s.nHead * s.dv * 4);
      const sb = sinks ? createStorageFrom(g, sinks) : undefined;
      for (const chunk of [undefined, 7]) {
        const launch = await createAttnDecode(g, { cache, q: qb, out: ob, nHead: s.nHead, chunk, window, sinks: sb });
        for (const nKv of [1, 4, 9, 69, 130]) {
          launch.setKv(nKv);
          runLaunches(g, [launch]);
          const got = await readF32(g, ob, s.nHead * s.dv);
          expectClose(`nKv ${nKv} chunk ${chunk ?? 'auto'} (${launch.nChunks} chunks)`, got, refWith(q, k, v, nKv, window, sinks), ATOL);
        }
      }
      await g.checkErrors();
    });
  }
  for (const [window, withSinks, nTok, pos0, tile] of [
    [5, false, 21, 3, { blockQ: 4, blockK: 8 }],
    [5, true, 21, 3, { blockQ: 4, blockK: 8 }],
    [11, true, 37, 0, undefined],
    [0, true, 19, 6, undefined],
  ] as const) {
    it(`prefill: window ${window || 'none'}${withSinks ? ', sinks' : ''}, ${nTok} tokens at ${pos0}${tile ? `, tile ${tile.blockQ}×${tile.blockK}` : ''}`, async () => {
      const nAll = pos0 + nTok;
      const cache = createKvCache(g, { nCtx: nAll, nHeadKv: s.nHeadKv, headDimK: s.dk, headDimV: s.dv, f16: false });
      const r = rng(nTok * 13 + window + (withSinks ? 1 : 0));
      const k = randomF32(r, nAll * s.nHeadKv * s.dk);
      const v = randomF32(r, nAll * s.nHeadKv * s.dv);
      await fillCache(g, cache, k, v, nAll);
      const qLen = s.nHead * s.dk;
      const q = randomF32(r, nTok * qLen, -3, 3);
      const sinks = withSinks ? randomF32(r, s.nHead, -1, 3) : null;
      const ob = createStorage(g, nTok * s.nHead * s.dv * 4);
      const launch = await createAttnPrefill(g, { cache, q: createStorageFrom(g, q), out: ob, nHead: s.nHead, nTokens: nTok, pos0, window, sinks: sinks ? createStorageFrom(g, sinks) : undefined, ...(tile ?? {}) });
      runLaunches(g, [launch]);
      const got = await readF32(g, ob, nTok * s.nHead * s.dv);
      for (let t = 0; t < nTok; t++) {
        const ref = refWith(q.subarray(t * qLen, (t + 1) * qLen), k, v, pos0 + t + 1, window, sinks);
        expectClose(`token ${t} (position ${pos0 + t})`, got.subarray(t * s.nHead * s.dv, (t + 1) * s.nHead * s.dv), ref, ATOL);
      }
      await g.checkErrors();
    });
  }
});

// MLA's cache layout (KvCache.vInK): V is the first DV values of each K row, no V buffer; the KV
// write leaves V alone and the kernels read V with the K row's stride. One KV head of 40 + 8 with V
// 40 wide (the latent), as deepseek2: decode (chunked and not) and prefill vs the reference on V = K[:, :DV].
describe.skipIf(!ctx)('attention over a cache whose V lies inside the K rows (MLA)', () => {
  const g = ctx!;
  const s: Shape = { nHead: 4, nHeadKv: 1, dk: 48, dv: 40 };
  it('write K only; decode nKv 1 / 33 / 70 (chunks of 7 and auto), prefill of 21 at 49', async () => {
    const nAll = 70;
    const cache = createKvCache(g, { nCtx: nAll, nHeadKv: 1, headDimK: s.dk, headDimV: s.dv, f16: false, vInK: true });
    expect(cache.v).toBe(cache.k);
    const r = rng(4040);
    const k = randomF32(r, nAll * s.dk);
    // the V the write is handed is ignored: poison it
    const w = await createKvWrite(g, { cache, k: createStorageFrom(g, k), v: createStorageFrom(g, new Float32Array(nAll * s.dk).fill(NaN)), vStride: s.dk, nTokens: nAll });
    runLaunches(g, [w]);
    expectClose('K cache', await readF32(g, cache.k, nAll * s.dk), k, 0);
    const v = new Float32Array(nAll * s.dv);
    for (let j = 0; j < nAll; j++) v.set(k.subarray(j * s.dk, j * s.dk + s.dv), j * s.dv);
    const q = randomF32(r, 21 * s.nHead * s.dk, -3, 3);
    const qLen = s.nHead * s.dk;
    const qb = createStorageFrom(g, q);
    const ob = createStorage(g, 21 * s.nHead * s.dv * 4);
    for (const chunk of [undefined, 7]) {
      const dec = await createAttnDecode(g, { cache, q: qb, out: ob, nHead: s.nHead, chunk });
      for (const nKv of [1, 33, 70]) {
        dec.setKv(nKv);
        runLaunches(g, [dec]);
        expectClose(`decode nKv ${nKv} chunk ${chunk ?? 'auto'}`, await readF32(g, ob, s.nHead * s.dv), refAttention(s, q.subarray(0, qLen), k, v, nKv), ATOL);
      }
    }
    const pre = await createAttnPrefill(g, { cache, q: qb, out: ob, nHead: s.nHead, nTokens: 21, pos0: 49 });
    runLaunches(g, [pre]);
    const got = await readF32(g, ob, 21 * s.nHead * s.dv);
    for (let t = 0; t < 21; t++) {
      expectClose(`prefill token ${t}`, got.subarray(t * s.nHead * s.dv, (t + 1) * s.nHead * s.dv), refAttention(s, q.subarray(t * qLen, (t + 1) * qLen), k, v, 49 + t + 1), ATOL);
    }
    await g.checkErrors();
  });
});
