// deltanet.wgsl (causal conv with state; gated delta rule with resident state) vs the CPU reference
// in src/cpu/ops.ts (ssmConv, silu, l2Norm, sigmoid, softplus, deltaRuleStep), over awkward shapes:
// prefill batches, then decode steps reusing the same launches with the state left on the GPU.
import { afterAll, describe, expect, it } from 'vitest';
import { deltaRuleStep, l2Norm, sigmoid, silu, softplus, ssmConv } from '../../src/cpu/ops.js';
import { createGatedDeltaNet, createSsmConv, DELTANET_KERNEL_SPECS } from '../../src/gpu/deltanet.js';
import { createStorage, createStorageFrom, readF32, writeBuffer } from '../../src/runtime/buffers.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, openTestGPU, randomF32, rng } from './helpers.js';
import { expectSpecMatchesWgsl } from './reflect.js';

describe('deltanet.wgsl bindings match the launcher specs (wgsl_reflect)', () => {
  for (const [name, spec] of Object.entries(DELTANET_KERNEL_SPECS)) it(name, () => expectSpecMatchesWgsl(spec));
});

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

describe.skipIf(!ctx)('ssm_conv', () => {
  const g = ctx!;
  for (const [channels, kernel, batches, wg] of [
    [37, 4, [5, 1, 1, 3], 64],
    [130, 3, [1, 1, 7, 1], 32],
    [1000, 4, [16, 1], 128],
    [9, 1, [3, 2], 32],
    [64, 8, [2, 9, 1], 64],
  ] as const) {
    it(`${channels} channels, kernel ${kernel}, batches ${batches.join('+')}, WG ${wg}`, async () => {
      const rand = rng(channels * 31 + kernel);
      const w = randomF32(rand, channels * kernel, -0.8, 0.8);
      const total = batches.reduce((s, b) => s + b, 0);
      const xs = randomF32(rand, total * channels, -2, 2);
      const maxN = Math.max(...batches);
      // GPU: x and out at offsets inside bigger buffers, state at an offset
      const xOff = 3;
      const oOff = 5;
      const sOff = 7;
      const xb = createStorage(g, (xOff + maxN * channels) * 4);
      const ob = createStorage(g, (oOff + maxN * channels) * 4);
      const sb = createStorageFrom(g, new Float32Array(sOff + (kernel - 1) * channels));
      const launch = await createSsmConv(g, {
        x: { buffer: xb, offset: xOff }, w: createStorageFrom(g, w), state: { buffer: sb, offset: sOff }, out: { buffer: ob, offset: oOff },
        channels, kernel, nTokens: maxN, workgroupSize: wg,
      });
      const refState = new Float32Array((kernel - 1) * channels);
      let t0 = 0;
      for (const n of batches) {
        const x = xs.subarray(t0 * channels, (t0 + n) * channels);
        writeBuffer(g, xb, x, xOff * 4);
        launch.setCount(n);
        runLaunches(g, [launch]);
        const ref = new Float32Array(n * channels);
        ssmConv(ref, x, refState, w, channels, kernel, n);
        for (let i = 0; i < ref.length; i++) ref[i] = silu(ref[i]!);
        expectClose(`tokens ${t0}..${t0 + n}`, await readF32(g, ob, n * channels, oOff), ref, 2e-6, 2e-6);
        t0 += n;
      }
      expectClose('state', await readF32(g, sb, (kernel - 1) * channels, sOff), refState, 0, 0);
    });
  }
});

/** The CPU reference of the kernel: the recurrence of deltanet.ts step 5, from raw gates. */
function refDelta(
  S: Float32Array, qkv: Float32Array, beta: Float32Array, alpha: Float32Array, dtBias: Float32Array, a: Float32Array,
  n: number, Hk: number, Hv: number, d: number, eps: number,
): Float32Array {
  const C = (2 * Hk + Hv) * d;
  const out = new Float32Array(n * Hv * d);
  for (let t = 0; t < n; t++) {
    const q = qkv.slice(t * C, t * C + Hk * d);
    const k = qkv.slice(t * C + Hk * d, t * C + 2 * Hk * d);
    const v = qkv.subarray(t * C + 2 * Hk * d, (t + 1) * C);
    l2Norm(q, q, d, eps, Hk);
    l2Norm(k, k, d, eps, Hk);
    for (let h = 0; h < Hv; h++) {
      const hk = h % Hk;
      const b = sigmoid(beta[t * Hv + h]!);
      const gate = Math.fround(softplus(Math.fround(alpha[t * Hv + h]! + dtBias[h]!))) * a[h]!;
      deltaRuleStep(S.subarray(h * d * d, (h + 1) * d * d), q, hk * d, k, hk * d, v, h * d, gate, b, out, (t * Hv + h) * d, d, d, Math.fround(1 / Math.sqrt(d)));
    }
  }
  return out;
}

describe.skipIf(!ctx)('gated_delta_net', () => {
  const g = ctx!;
  for (const [Hk, Hv, d, batches, wg] of [
    [3, 6, 14, [5, 1, 1, 4], 32],
    [2, 6, 16, [1, 1, 1], 64],
    [2, 2, 37, [9, 1], 32],
    [1, 3, 100, [3, 1, 2], 64],
    [2, 4, 128, [6, 1, 1], 64],
    [1, 1, 256, [2, 1], 128],
  ] as const) {
    it(`H_k ${Hk}, H_v ${Hv}, d ${d}, batches ${batches.join('+')}, WG ${wg}`, async () => {
      const rand = rng(Hk * 1000 + Hv * 100 + d);
      const C = (2 * Hk + Hv) * d;
      const total = batches.reduce((s, b) => s + b, 0);
      const maxN = Math.max(...batches);
      const qkvAll = randomF32(rand, total * C, -1, 1);
      const betaAll = randomF32(rand, total * Hv, -3, 3);
      const alphaAll = randomF32(rand, total * Hv, -3, 3);
      const dtBias = randomF32(rand, Hv, -1.5, 0.5);
      const a = randomF32(rand, Hv, -2, -0.1);
      // qkv rows padded (stride C + 3), beta/alpha/out at offsets
      const qStride = C + 3;
      const qkvB = createStorage(g, (2 + maxN * qStride) * 4);
      const betaB = createStorage(g, (1 + maxN * Hv) * 4);
      const alphaB = createStorage(g, maxN * Hv * 4);
      const outB = createStorage(g, (4 + maxN * Hv * d) * 4);
      const stateB = createStorageFrom(g, new Float32Array(6 + Hv * d * d));
      const launch = await createGatedDeltaNet(g, {
        qkv: { buffer: qkvB, offset: 2 }, beta: { buffer: betaB, offset: 1 }, alpha: alphaB,
        dtBias: createStorageFrom(g, dtBias), a: createStorageFrom(g, a), state: { buffer: stateB, offset: 6 }, out: { buffer: outB, offset: 4 },
        nKHeads: Hk, nVHeads: Hv, headDim: d, eps: 1e-6, nTokens: maxN, qkvStride: qStride, workgroupSize: wg,
      });
      const S = new Float32Array(Hv * d * d);
      let t0 = 0;
      for (const n of batches) {
        const padded = new Float32Array(n * qStride);
        for (let t = 0; t < n; t++) padded.set(qkvAll.subarray((t0 + t) * C, (t0 + t + 1) * C), t * qStride);
        writeBuffer(g, qkvB, padded, 2 * 4);
        writeBuffer(g, betaB, betaAll.subarray(t0 * Hv, (t0 + n) * Hv), 4);
        writeBuffer(g, alphaB, alphaAll.subarray(t0 * Hv, (t0 + n) * Hv));
        launch.setCount(n);
        runLaunches(g, [launch]);
        const ref = refDelta(S, qkvAll.subarray(t0 * C, (t0 + n) * C), betaAll.subarray(t0 * Hv), alphaAll.subarray(t0 * Hv), dtBias, a, n, Hk, Hv, d, 1e-6);
        expectClose(`out, tokens ${t0}..${t0 + n}`, await readF32(g, outB, n * Hv * d, 4), ref, 1e-5, 1e-4);
        t0 += n;
      }
      expectClose('state', await readF32(g, stateB, Hv * d * d, 6), S, 1e-5, 1e-4);
    });
  }

  it('rejects a head dim above 256 and v heads that are not a multiple of k heads', async () => {
    const b = createStorage(g, 1 << 20);
    const base = { qkv: b, beta: b, alpha: b, dtBias: b, a: b, state: b, out: b, eps: 1e-6 };
    await expect(createGatedDeltaNet(g, { ...base, nKHeads: 1, nVHeads: 1, headDim: 300 })).rejects.toThrow(/head dim/);
    await expect(createGatedDeltaNet(g, { ...base, nKHeads: 4, nVHeads: 6, headDim: 16 })).rejects.toThrow(/multiple/);
    await expect(createSsmConv(g, { x: b, w: b, state: b, out: b, channels: 8, kernel: 9 })).rejects.toThrow(/kernel/);
  });
});
