// qk_norm_rope with `kv` (norm.wgsl QK_PAIR + KV): Q/K per-head RMSNorm + NEOX RoPE and the KV cache
// write in one dispatch, against the unfused pair (qk_norm_rope with K heads, then attn_kv_write:
// the same bits everywhere, cache rows not written included) and against src/cpu/ops.ts rmsNorm /
// ropeNeox. Odd head counts, nHeadKv ≠ nHead, head_dim 64/128, head_dim_v ≠ head_dim (smaller,
// larger, not a multiple of the workgroup), partial rotation with a gated q layout, f16 and f32
// caches, batches starting at pos0 > 0, decode steps through setPosition.
import { afterAll, describe, expect, it } from 'vitest';
import { f16ToF32 } from '../../gguf/quants.js';
import { rmsNorm, roundToF16, ropeNeox } from '../../src/cpu/ops.js';
import { ContextOverflowError } from '../../src/errors.js';
import { createKvCache, createKvWrite, type KvCache } from '../../src/gpu/attention.js';
import { createQKNormRope } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readBuffer, readF32, writeBuffer } from '../../src/runtime/buffers.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { KernelError, runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());
const noF16 = !ctx?.features.f16;

interface Case {
  nHead: number;
  nKv: number;
  hd: number;
  hdv: number;
  nRot: number;
  n: number;
  pos0: number;
  nCtx: number;
  /** q of token t at t·qStride (gated: [query | gate], 2·nHead·hd) */
  qStride: number;
  f16: boolean;
  /** q also rounded to f16 (Q_ROUND_F16) */
  qRound: boolean;
  wg: number;
}

const CASES: Case[] = [
  { nHead: 5, nKv: 3, hd: 64, hdv: 64, nRot: 64, n: 3, pos0: 0, nCtx: 7, qStride: 5 * 64, f16: false, qRound: false, wg: 64 },
  { nHead: 7, nKv: 1, hd: 128, hdv: 80, nRot: 128, n: 4, pos0: 5, nCtx: 11, qStride: 7 * 128, f16: true, qRound: true, wg: 32 },
  { nHead: 3, nKv: 3, hd: 64, hdv: 200, nRot: 64, n: 1, pos0: 9, nCtx: 10, qStride: 3 * 64, f16: true, qRound: false, wg: 64 },
  { nHead: 4, nKv: 2, hd: 64, hdv: 64, nRot: 32, n: 5, pos0: 2, nCtx: 9, qStride: 2 * 4 * 64, f16: false, qRound: true, wg: 32 },
  { nHead: 6, nKv: 2, hd: 128, hdv: 128, nRot: 128, n: 2, pos0: 1000, nCtx: 1003, qStride: 6 * 128, f16: true, qRound: true, wg: 128 },
];

// V at an element offset, with padding between tokens
const V_OFF = 3;
const V_PAD = 5;

/** A buffer's raw bytes (the whole buffer) as u32 words. */
async function rawWords(g: GPUContext, buf: GPUBuffer): Promise<Uint32Array> {
  return new Uint32Array(await readBuffer(g, buf, 0, buf.size));
}

/** The cache's contents as f32 (f16 widened). */
async function readCache(g: GPUContext, buf: GPUBuffer, n: number, f16: boolean): Promise<Float32Array> {
  if (!f16) return readF32(g, buf, n);
  const h = new Uint16Array(await readBuffer(g, buf, 0, buf.size), 0, n);
  return Float32Array.from(h, (b) => f16ToF32(b));
}

function expectSameWords(label: string, got: Uint32Array, want: Uint32Array): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) expect.fail(`${label}[${i}]: 0x${got[i]!.toString(16)} ≠ 0x${want[i]!.toString(16)}`);
  }
}

/** token t's K heads (f32 [nKv·hd]) normed ⊙ kw and rotated at pos */
function refK(k: Float32Array, kw: Float32Array, c: Case, pos: number): Float32Array {
  const r = Float32Array.from(k);
  for (let h = 0; h < c.nKv; h++) rmsNorm(r.subarray(h * c.hd, (h + 1) * c.hd), r.subarray(h * c.hd, (h + 1) * c.hd), kw, 1e-6, 1);
  ropeNeox(r, c.nKv, c.hd, c.nRot, pos, 1e6);
  return r;
}

describe.skipIf(!ctx)('qk_norm_rope + KV cache write (one dispatch)', () => {
  const g = ctx!;
  for (const c of CASES) {
    const name =
      `${c.nHead}/${c.nKv} heads of ${c.hd} (V ${c.hdv}), n_rot ${c.nRot}, q stride ${c.qStride}, ` +
      `${c.n} tokens at ${c.pos0} of ${c.nCtx}, ${c.f16 ? 'f16' : 'f32'} cache${c.qRound ? ', q → f16' : ''}, WG ${c.wg}`;
    it.skipIf(c.f16 && noF16)(name, async () => {
      const kvK = c.nKv * c.hd;
      const kvV = c.nKv * c.hdv;
      const vStride = kvV + V_PAD;
      const rand = rng(c.nHead * 1000 + c.hd + c.hdv + c.pos0);
      const q = randomF32(rand, c.n * c.qStride, -3, 3);
      const k = randomF32(rand, c.n * kvK, -3, 3);
      const v = randomF32(rand, V_OFF + c.n * vStride, -3, 3);
      const qw = randomF32(rand, c.hd, 0.5, 1.5);
      const kw = randomF32(rand, c.hd, 0.5, 1.5);
      const [qwb, kwb, vb] = [createStorageFrom(g, qw), createStorageFrom(g, kw), createStorageFrom(g, v)];
      const rope = { headDim: c.hd, nRot: c.nRot, eps: 1e-6, base: 1e6, workgroupSize: c.wg };
      const qRows = c.n * c.nHead * c.hd;

      // unfused: rope over Q and K (positions from a buffer), then kv_write
      const [qa, ka] = [createStorageFrom(g, q), createStorageFrom(g, k)];
      const qra = c.qRound ? createStorage(g, qRows * 4) : undefined;
      const cacheA = createKvCache(g, { nCtx: c.nCtx, nHeadKv: c.nKv, headDimK: c.hd, headDimV: c.hdv, f16: c.f16 });
      const pos = createStorageFrom(g, Uint32Array.from({ length: c.n }, (_, t) => c.pos0 + t));
      const ropeA = await createQKNormRope(g, { ...rope, positions: pos, nTokens: c.n, x: qa, weight: qwb, nHeads: c.nHead, tokenStride: c.qStride, k: { x: ka, weight: kwb, nHeads: c.nKv }, qRoundF16: qra });
      const kvw = await createKvWrite(g, { cache: cacheA, k: ka, v: { buffer: vb, offset: V_OFF }, vStride, nTokens: c.n, pos0: c.pos0 });

      // fused: built for 1 token at 0, then update(n, pos0) as a prefill batch does
      const [qb, kb] = [createStorageFrom(g, q), createStorageFrom(g, k)];
      const qrb = c.qRound ? createStorage(g, qRows * 4) : undefined;
      const cacheB = createKvCache(g, { nCtx: c.nCtx, nHeadKv: c.nKv, headDimK: c.hd, headDimV: c.hdv, f16: c.f16 });
      const fused = await createQKNormRope(g, {
        ...rope,
        x: qb,
        weight: qwb,
        nHeads: c.nHead,
        tokenStride: c.qStride,
        k: { x: kb, weight: kwb, nHeads: c.nKv },
        qRoundF16: qrb,
        kv: { cache: cacheB, v: { buffer: vb, offset: V_OFF }, vStride },
      });
      fused.update(c.n, c.pos0);
      expect(fused.dispatches.length).toBe(1);
      runLaunches(g, [ropeA, kvw, fused]);
      await g.checkErrors();

      // the same bits as the unfused pair: q, k, q_r, and the whole of both caches
      expectSameWords('q', await rawWords(g, qb), await rawWords(g, qa));
      expectSameWords('k', await rawWords(g, kb), await rawWords(g, ka));
      if (qra && qrb) expectSameWords('q_r', await rawWords(g, qrb), await rawWords(g, qra));
      expectSameWords('K cache', await rawWords(g, cacheB.k), await rawWords(g, cacheA.k));
      expectSameWords('V cache', await rawWords(g, cacheB.v), await rawWords(g, cacheA.v));

      // against the CPU: rows pos0 .. pos0 + n hold the roped K and V (f16-rounded: one f16 ulp, WGSL
      // may round either way), every other row is still zero
      const kc = await readCache(g, cacheB.k, c.nCtx * kvK, c.f16);
      const vc = await readCache(g, cacheB.v, c.nCtx * kvV, c.f16);
      const tol = c.f16 ? 2e-3 : 0;
      for (let p = 0; p < c.nCtx; p++) {
        const t = p - c.pos0;
        const kRow = kc.subarray(p * kvK, (p + 1) * kvK);
        const vRow = vc.subarray(p * kvV, (p + 1) * kvV);
        if (t < 0 || t >= c.n) {
          expect(kRow.every((x) => x === 0) && vRow.every((x) => x === 0), `row ${p} untouched`).toBe(true);
          continue;
        }
        const wantK = refK(k.subarray(t * kvK, (t + 1) * kvK), kw, c, p);
        const wantV = v.slice(V_OFF + t * vStride, V_OFF + t * vStride + kvV);
        if (c.f16) {
          roundToF16(wantK);
          roundToF16(wantV);
        }
        expectClose(`K row ${p}`, kRow, wantK, 2e-5, 2e-5 + tol);
        expectClose(`V row ${p}`, vRow, wantV, 0, tol);
      }
      for (const b of [qa, ka, qb, kb, qwb, kwb, vb, pos, cacheA.k, cacheA.v, cacheB.k, cacheB.v, ...(qra && qrb ? [qra, qrb] : [])]) g.destroyBuffer(b);
    });
  }

  for (const f16 of [false, true]) {
    it.skipIf(f16 && noF16)(`decode steps (${f16 ? 'f16' : 'f32'} cache): setPosition moves the rotation and the cache row; overflow throws`, async () => {
      const c: Case = { nHead: 3, nKv: 1, hd: 64, hdv: 48, nRot: 64, n: 1, pos0: 0, nCtx: 4, qStride: 3 * 64, f16, qRound: f16, wg: 32 };
      const kvK = c.nKv * c.hd;
      const kvV = c.nKv * c.hdv;
      const rand = rng(91 + (f16 ? 1 : 0));
      const qw = randomF32(rand, c.hd, 0.5, 1.5);
      const kw = randomF32(rand, c.hd, 0.5, 1.5);
      const [qb, kb, vb] = [createStorage(g, c.qStride * 4), createStorage(g, kvK * 4), createStorage(g, kvV * 4)];
      const qr = c.qRound ? createStorage(g, c.qStride * 4) : undefined;
      const cache = createKvCache(g, { nCtx: c.nCtx, nHeadKv: c.nKv, headDimK: c.hd, headDimV: c.hdv, f16 });
      const launch = await createQKNormRope(g, {
        x: qb,
        weight: createStorageFrom(g, qw),
        nHeads: c.nHead,
        headDim: c.hd,
        eps: 1e-6,
        base: 1e6,
        workgroupSize: c.wg,
        k: { x: kb, weight: createStorageFrom(g, kw), nHeads: c.nKv },
        qRoundF16: qr,
        kv: { cache, v: vb },
      });
      const ks: Float32Array[] = [];
      const vs: Float32Array[] = [];
      for (const p of [0, 1, 3]) {
        const [q, k, v] = [randomF32(rand, c.qStride, -2, 2), randomF32(rand, kvK, -2, 2), randomF32(rand, kvV, -2, 2)];
        writeBuffer(g, qb, q);
        writeBuffer(g, kb, k);
        writeBuffer(g, vb, v);
        launch.setPosition(p);
        runLaunches(g, [launch]);
        // q rotated at p as well
        const wantQ = Float32Array.from(q);
        for (let h = 0; h < c.nHead; h++) rmsNorm(wantQ.subarray(h * c.hd, (h + 1) * c.hd), wantQ.subarray(h * c.hd, (h + 1) * c.hd), qw, 1e-6, 1);
        ropeNeox(wantQ, c.nHead, c.hd, c.nRot, p, 1e6);
        expectClose(`q at ${p}`, await readF32(g, qb, c.qStride), wantQ, 2e-5, 2e-5);
        ks[p] = refK(k, kw, c, p);
        vs[p] = v;
      }
      const kc = await readCache(g, cache.k, c.nCtx * kvK, f16);
      const vc = await readCache(g, cache.v, c.nCtx * kvV, f16);
      const tol = f16 ? 2e-3 : 0;
      for (let p = 0; p < c.nCtx; p++) {
        const wantK = ks[p] ? Float32Array.from(ks[p]!) : new Float32Array(kvK);
        const wantV = vs[p] ? Float32Array.from(vs[p]!) : new Float32Array(kvV);
        if (f16) {
          roundToF16(wantK);
          roundToF16(wantV);
        }
        expectClose(`K row ${p}`, kc.subarray(p * kvK, (p + 1) * kvK), wantK, 2e-5, 2e-5 + tol);
        expectClose(`V row ${p}`, vc.subarray(p * kvV, (p + 1) * kvV), wantV, 0, tol);
      }
      expect(() => launch.setPosition(4)).toThrow(ContextOverflowError);
      expect(() => launch.update(2, 3)).toThrow(ContextOverflowError);
    });
  }

  it('rejects kv without K heads, and a cache of another head shape', async () => {
    const b = createStorage(g, 4096 * 4);
    const cache: KvCache = createKvCache(g, { nCtx: 2, nHeadKv: 2, headDimK: 64, f16: false });
    const base = { x: b, weight: b, nHeads: 4, headDim: 64, eps: 1e-6, base: 1e4 };
    await expect(createQKNormRope(g, { ...base, kv: { cache, v: b } })).rejects.toBeInstanceOf(KernelError);
    await expect(createQKNormRope(g, { ...base, k: { x: b, weight: b, nHeads: 3 }, kv: { cache, v: b } })).rejects.toBeInstanceOf(KernelError);
    await expect(createQKNormRope(g, { ...base, k: { x: b, weight: b, nHeads: 2 }, kv: { cache, v: b }, nTokens: 3 })).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(createQKNormRope(g, base)).rejects.toBeInstanceOf(KernelError); // no positions
  });
});
