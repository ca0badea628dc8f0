// moe_route.wgsl, moe_ffn.wgsl (decode) and moe_group.wgsl + moe_mm.wgsl (prefill) vs src/cpu/ops.ts
// (moeRoute, matVec over expertSlice, swiglu, addScaled), for every weight type the dense matvec
// decodes, with expert counts, ff sizes and token counts that are not multiples of any workgroup or
// tile size. Unused experts are poisoned with NaN blocks: any read of them would show.
import { afterAll, describe, expect, it } from 'vitest';
import { activationRoundTrip, quantize, vecDotType } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName, rowBytes } from '../../gguf/types.js';
import { addScaled, expertSlice, matVec, moeRoute, swiglu, swigluOai, type QuantMatrixStack } from '../../src/cpu/ops.js';
import { actQuantFor, createActQuant } from '../../src/gpu/actquant.js';
import { createMoeFfnDecode, createMoeFfnPrefill, createMoePrefillScratch, createMoeRoute, freeMoePrefillScratch } from '../../src/gpu/moe.js';
import { intDot } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readBuffer, readF32, uploadCoLocatedPair, uploadWeight, type WeightTensor } from '../../src/runtime/buffers.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { runLaunches } from '../../src/runtime/pipelines.js';
import { expectClose, expectProduct, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** Router logits without near-ties: a random permutation of experts, 0.07 apart. */
function distinctLogits(rand: () => number, nExpert: number, nTokens: number): Float32Array {
  const out = new Float32Array(nTokens * nExpert);
  for (let t = 0; t < nTokens; t++) {
    const perm = Array.from({ length: nExpert }, (_, i) => i);
    for (let i = nExpert - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    for (let e = 0; e < nExpert; e++) out[t * nExpert + e] = (perm[e]! - nExpert / 2) * 0.07;
  }
  return out;
}

/** CPU routing of every token: ids and weights [nTokens, k]. */
function cpuRoute(logits: Float32Array, nExpert: number, k: number, nTokens: number, normalize = true): { ids: Uint32Array; weights: Float32Array } {
  const ids = new Uint32Array(nTokens * k);
  const weights = new Float32Array(nTokens * k);
  for (let t = 0; t < nTokens; t++) {
    const r = moeRoute(logits.subarray(t * nExpert, (t + 1) * nExpert), k, normalize);
    ids.set(r.ids, t * k);
    weights.set(r.weights, t * k);
  }
  return { ids, weights };
}

/**
 * An expert stack [cols, rows, nExpert] of `type`: experts in `used` (default all) hold quantized
 * random values in ±1 (each expert different); the others are 0xFF bytes, i.e. NaN scales / NaN
 * floats in every type.
 */
function expertStack(type: GGMLType, cols: number, rows: number, nExpert: number, seed: number, used?: Set<number>): QuantMatrixStack {
  const per = rows * rowBytes(type, cols);
  const data = new Uint8Array(per * nExpert).fill(0xff);
  const r = rng(seed);
  for (let e = 0; e < nExpert; e++) {
    if (used && !used.has(e)) continue;
    data.set(quantize(type, randomF32(r, rows * cols)), e * per);
  }
  return { type, rows, cols, count: nExpert, data };
}

function upload(g: GPUContext, name: string, s: QuantMatrixStack, maxPartBytes?: number): WeightTensor {
  return uploadWeight(g, { name, type: s.type, shape: [s.cols, s.rows, s.count], data: s.data }, { maxPartBytes });
}

interface Ffn {
  gate: QuantMatrixStack;
  up: QuantMatrixStack;
  down: QuantMatrixStack;
}

/**
 * out[t] = residual[t] + Σ_j w[t,j]·down_e(swiglu(gate_e·x[t], up_e·x[t])) on the CPU; with
 * `llamacpp`, x and the SwiGLU activations through llama.cpp's round trips (activationRoundTrip).
 */
/** gpt-oss's expert biases ([nExpert, rows] each) for cpuMoe: then the clamped SwiGLU */
interface OaiBiases {
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

function cpuMoe(f: Ffn, x: Float32Array, residual: Float32Array, ids: Uint32Array, weights: Float32Array, k: number, nTokens: number, llamacpp = false, oai: OaiBiases | null = null): Float32Array {
  const nEmbd = f.gate.cols;
  const nFf = f.gate.rows;
  const out = Float32Array.from(residual);
  const g = new Float32Array(nFf);
  const u = new Float32Array(nFf);
  const y = new Float32Array(nEmbd);
  for (let t = 0; t < nTokens; t++) {
    const xt = x.subarray(t * nEmbd, (t + 1) * nEmbd);
    const h = llamacpp ? activationRoundTrip(f.gate.type, Float32Array.from(xt)) : xt;
    const o = out.subarray(t * nEmbd, (t + 1) * nEmbd);
    for (let j = 0; j < k; j++) {
      const e = ids[t * k + j]!;
      matVec(g, expertSlice(f.gate, e), h);
      matVec(u, expertSlice(f.up, e), h);
      if (oai) {
        for (let i = 0; i < nFf; i++) {
          g[i] = g[i]! + oai.gate[e * nFf + i]!;
          u[i] = u[i]! + oai.up[e * nFf + i]!;
        }
        swigluOai(g, g, u);
      } else {
        swiglu(g, g, u);
      }
      if (llamacpp) activationRoundTrip(f.down.type, g, g);
      matVec(y, expertSlice(f.down, e), g);
      if (oai) for (let i = 0; i < nEmbd; i++) y[i] = y[i]! + oai.down[e * nEmbd + i]!;
      addScaled(o, y, weights[t * k + j]!);
    }
  }
  return out;
}

describe.skipIf(!ctx)('MoE routing (softmax → top-k → renormalize)', () => {
  const g = ctx!;
  const cases: [number, number, number, boolean][] = [
    // nExpert, k, nTokens, normalize
    [10, 3, 1, true],
    [10, 3, 33, true],
    [128, 8, 5, true],
    [128, 8, 33, false],
    [60, 4, 5, false],
    [256, 16, 5, true],
    [256, 8, 1, true],
  ];
  for (const [nExpert, k, nTokens, normalize] of cases) {
    it(`${nExpert} experts, top-${k}, ${nTokens} tokens${normalize ? '' : ', no renormalization'}`, async () => {
      const logits = distinctLogits(rng(nExpert * 131 + k * 7 + nTokens), nExpert, nTokens);
      const ref = cpuRoute(logits, nExpert, k, nTokens, normalize);
      // logits at offset 3 with a padded stride
      const stride = nExpert + 5;
      const padded = new Float32Array(3 + nTokens * stride).fill(Number.NaN);
      for (let t = 0; t < nTokens; t++) padded.set(logits.subarray(t * nExpert, (t + 1) * nExpert), 3 + t * stride);
      const lb = createStorageFrom(g, padded);
      const ib = createStorage(g, nTokens * k * 4);
      const wb = createStorage(g, nTokens * k * 4);
      const launch = await createMoeRoute(g, { logits: { buffer: lb, offset: 3 }, ids: ib, weights: wb, nExpert, k, normalize, nTokens, logitsStride: stride });
      runLaunches(g, [launch]);
      const ids = new Uint32Array(await readBuffer(g, ib, 0, nTokens * k * 4));
      const weights = await readF32(g, wb, nTokens * k);
      expectClose('ids', ids, ref.ids, 0);
      expectClose('weights', weights, ref.weights, 1e-5);
    });
  }

  it('exact ties go to the lower expert id; setCount', async () => {
    const [nExpert, k, nTokens] = [20, 6, 4];
    const r = rng(5);
    // values on a 0.5 grid: many exact duplicates, no near-ties between distinct values
    const logits = Float32Array.from({ length: nExpert * nTokens }, () => Math.round(r() * 6) / 2);
    const ref = cpuRoute(logits, nExpert, k, nTokens);
    const ib = createStorage(g, nTokens * k * 4);
    const wb = createStorage(g, nTokens * k * 4);
    const launch = await createMoeRoute(g, { logits: createStorageFrom(g, logits), ids: ib, weights: wb, nExpert, k, nTokens: 1 });
    launch.setCount(nTokens);
    runLaunches(g, [launch]);
    expectClose('ids', new Uint32Array(await readBuffer(g, ib, 0, nTokens * k * 4)), ref.ids, 0);
    expectClose('weights', await readF32(g, wb, nTokens * k), ref.weights, 1e-5);
  });
});

// (gate/up type, down type, n_embd, n_ff, n_expert, k, tokens)
type FfnCase = [GGMLType, GGMLType, number, number, number, number, number];
const FFN_CASES: FfnCase[] = [
  [GGMLType.F32, GGMLType.F32, 64, 96, 10, 3, 1],
  [GGMLType.F16, GGMLType.F16, 96, 288, 10, 3, 5],
  [GGMLType.BF16, GGMLType.BF16, 64, 96, 10, 3, 1],
  [GGMLType.Q8_0, GGMLType.Q8_0, 96, 288, 10, 3, 5],
  [GGMLType.Q4_0, GGMLType.Q4_0, 64, 96, 10, 3, 1],
  [GGMLType.Q5_0, GGMLType.Q8_0, 96, 288, 10, 3, 33],
  [GGMLType.Q4_1, GGMLType.Q5_1, 96, 288, 10, 3, 5],
  [GGMLType.Q4_K, GGMLType.Q6_K, 256, 256, 10, 3, 5],
  [GGMLType.Q5_K, GGMLType.Q5_K, 256, 512, 10, 3, 1],
  [GGMLType.Q6_K, GGMLType.Q4_K, 512, 256, 10, 3, 33],
  // gpt-oss: MXFP4 experts (17-byte blocks at odd bytes)
  [GGMLType.MXFP4, GGMLType.MXFP4, 96, 160, 10, 3, 5],
];

/** Builds a random FFN problem: weights (unused experts poisoned), inputs, routing, CPU result. */
function ffnProblem(c: FfnCase, seed: number) {
  const [tGU, tD, nEmbd, nFf, nExpert, k, nTokens] = c;
  const r = rng(seed);
  const logits = distinctLogits(r, nExpert, nTokens);
  const route = cpuRoute(logits, nExpert, k, nTokens);
  const used = new Set(route.ids);
  const f: Ffn = {
    gate: expertStack(tGU, nEmbd, nFf, nExpert, seed + 1, used),
    up: expertStack(tGU, nEmbd, nFf, nExpert, seed + 2, used),
    down: expertStack(tD, nFf, nEmbd, nExpert, seed + 3, used),
  };
  const x = randomF32(r, nTokens * nEmbd);
  const residual = randomF32(r, nTokens * nEmbd);
  const ref = cpuMoe(f, x, residual, route.ids, route.weights, k, nTokens);
  return { f, x, residual, logits, route, ref, used, nEmbd, nFf, nExpert, k, nTokens };
}

/** A problem's launcher inputs: its weights uploaded; x, the routing and out (holding the residual) in storage buffers. */
function ffnLaunchInputs(g: GPUContext, p: ReturnType<typeof ffnProblem>) {
  return {
    gate: upload(g, 'gate', p.f.gate),
    up: upload(g, 'up', p.f.up),
    down: upload(g, 'down', p.f.down),
    x: createStorageFrom(g, p.x),
    out: createStorageFrom(g, p.residual),
    ids: createStorageFrom(g, p.route.ids),
    weights: createStorageFrom(g, p.route.weights),
    k: p.k,
    nTokens: p.nTokens,
  };
}

function caseName(c: FfnCase): string {
  const [tGU, tD, nEmbd, nFf, nExpert, k, nTokens] = c;
  return `${ggmlTypeName(tGU)}/${ggmlTypeName(tD)} n_embd ${nEmbd} ff ${nFf}, ${nExpert} experts top-${k}, ${nTokens} token(s)`;
}

/** the FFN part of `out` (out − residual), compared as a matrix product */
function expectFfn(label: string, got: Float32Array, ref: Float32Array, residual: Float32Array): void {
  const d = got.map((v, i) => v - residual[i]!);
  const dr = ref.map((v, i) => v - residual[i]!);
  for (let i = 0; i < got.length; i++) if (!Number.isFinite(got[i]!)) expect.fail(`${label}: index ${i} is ${got[i]} (an unused expert was read?)`);
  expectProduct(label, d, dr);
}

describe.skipIf(!ctx)('MoE expert FFN, decode (mul_mat_vec_id style)', () => {
  const g = ctx!;
  for (const c of FFN_CASES) {
    it(caseName(c), async () => {
      const p = ffnProblem(c, c[2] * 17 + c[3] + c[6]);
      const io = ffnLaunchInputs(g, p);
      const launch = await createMoeFfnDecode(g, io);
      runLaunches(g, [launch]);
      expectFfn(caseName(c), await readF32(g, io.out, p.nTokens * p.nEmbd), p.ref, p.residual);
    });
  }

  // gpt-oss (moe_bias.wgsl): biased experts and the clamped SwiGLU (x scaled up so that gate and up
  // values beyond the limit 7 occur), unfused projections; one token and a batch through setCount
  for (const c of [[GGMLType.MXFP4, GGMLType.MXFP4, 96, 160, 10, 3, 5], [GGMLType.F32, GGMLType.MXFP4, 64, 96, 7, 2, 3]] as FfnCase[]) {
    it(`gpt-oss experts (biases, swiglu_oai): ${caseName(c)}`, async () => {
      const p = ffnProblem(c, c[2] * 5 + c[3]);
      const r = rng(c[3]);
      const oai: OaiBiases = { gate: randomF32(r, p.nExpert * p.nFf, -2, 2), up: randomF32(r, p.nExpert * p.nFf, -2, 2), down: randomF32(r, p.nExpert * p.nEmbd, -1, 1) };
      const x = p.x.map((v) => 4 * v); // gate and up past ±7 now and then
      const io = ffnLaunchInputs(g, p);
      io.x = createStorageFrom(g, x);
      const ref = cpuMoe(p.f, x, p.residual, p.route.ids, p.route.weights, p.k, p.nTokens, false, oai);
      const launch = await createMoeFfnDecode(g, {
        ...io,
        oai: { gateBias: createStorageFrom(g, oai.gate), upBias: createStorageFrom(g, oai.up), downBias: createStorageFrom(g, oai.down), alpha: 1.702, limit: 7 },
      });
      runLaunches(g, [launch]);
      expectFfn(`${caseName(c)} (oai)`, await readF32(g, io.out, p.nTokens * p.nEmbd), ref, p.residual);
      // one token of the batch through setCount, into a fresh residual
      const out1 = createStorageFrom(g, p.residual);
      const one = await createMoeFfnDecode(g, { ...io, out: out1, nTokens: p.nTokens, oai: { gateBias: createStorageFrom(g, oai.gate), upBias: createStorageFrom(g, oai.up), downBias: createStorageFrom(g, oai.down), alpha: 1.702, limit: 7 } });
      one.setCount(1);
      runLaunches(g, [one]);
      const ref1 = cpuMoe(p.f, x.subarray(0, p.nEmbd), p.residual.subarray(0, p.nEmbd), p.route.ids, p.route.weights, p.k, 1, false, oai);
      expectFfn(`${caseName(c)} (oai, setCount 1)`, await readF32(g, out1, p.nEmbd), ref1, p.residual.subarray(0, p.nEmbd));
      await g.checkErrors();
    });
  }

  it('128 experts top-8 (Qwen3-30B-A3B routing), GPU router → FFN, only the 8 chosen experts hold finite data', async () => {
    const c: FfnCase = [GGMLType.Q4_K, GGMLType.Q6_K, 256, 256, 128, 8, 1];
    const p = ffnProblem(c, 99);
    expect(p.used.size).toBe(8);
    const lb = createStorageFrom(g, p.logits);
    const ib = createStorage(g, 8 * 4);
    const wb = createStorage(g, 8 * 4);
    const xb = createStorageFrom(g, p.x);
    const ob = createStorageFrom(g, p.residual);
    const route = await createMoeRoute(g, { logits: lb, ids: ib, weights: wb, nExpert: 128, k: 8 });
    const ffn = await createMoeFfnDecode(g, { gate: upload(g, 'gate', p.f.gate), up: upload(g, 'up', p.f.up), down: upload(g, 'down', p.f.down), x: xb, out: ob, ids: ib, weights: wb, k: 8 });
    runLaunches(g, [route, ffn]);
    expectFfn('router → ffn', await readF32(g, ob, p.nEmbd), p.ref, p.residual);
  });

  it('experts split over several buffers, padded strides and offsets, setCount, subgroup and tree reductions', async () => {
    const c: FfnCase = [GGMLType.Q8_0, GGMLType.Q4_0, 96, 288, 10, 3, 5];
    const p = ffnProblem(c, 7);
    const part = (s: QuantMatrixStack) => 3 * s.rows * rowBytes(s.type, s.cols) + 4; // 3 experts per buffer
    const gate = upload(g, 'gate', p.f.gate, part(p.f.gate));
    const up = upload(g, 'up', p.f.up, part(p.f.up));
    const down = upload(g, 'down', p.f.down, part(p.f.down));
    expect(gate.parts.length).toBe(4);
    const [xOff, xStride, oOff, oStride] = [3, p.nEmbd + 2, 5, p.nEmbd + 7];
    const xs = new Float32Array(xOff + p.nTokens * xStride);
    const os = new Float32Array(oOff + p.nTokens * oStride);
    for (let t = 0; t < p.nTokens; t++) {
      xs.set(p.x.subarray(t * p.nEmbd, (t + 1) * p.nEmbd), xOff + t * xStride);
      os.set(p.residual.subarray(t * p.nEmbd, (t + 1) * p.nEmbd), oOff + t * oStride);
    }
    const ids = new Uint32Array(2 + p.route.ids.length);
    ids.set(p.route.ids, 2);
    const ws = new Float32Array(1 + p.route.weights.length);
    ws.set(p.route.weights, 1);
    for (const v of [{ subgroups: false, rowsPerWorkgroup: 1, workgroupSize: 32 }, { subgroups: g.features.subgroups, rowsPerWorkgroup: 3, workgroupSize: 128 }, { threadPerRow: { workgroupSize: 32, rowsPerThread: 5 } }]) {
      const ob = createStorageFrom(g, os);
      const launch = await createMoeFfnDecode(g, {
        gate, up, down,
        x: { buffer: createStorageFrom(g, xs), offset: xOff },
        out: { buffer: ob, offset: oOff },
        ids: { buffer: createStorageFrom(g, ids), offset: 2 },
        weights: { buffer: createStorageFrom(g, ws), offset: 1 },
        k: p.k, nTokens: 1, maxTokens: p.nTokens, xStride, outStride: oStride, ...v,
      });
      launch.setCount(p.nTokens);
      runLaunches(g, [launch]);
      const all = await readF32(g, ob, oOff + p.nTokens * oStride);
      const got = new Float32Array(p.nTokens * p.nEmbd);
      for (let t = 0; t < p.nTokens; t++) got.set(all.subarray(oOff + t * oStride, oOff + t * oStride + p.nEmbd), t * p.nEmbd);
      expectFfn(`split ${JSON.stringify(v)}`, got, p.ref, p.residual);
      expect(() => launch.setCount(p.nTokens + 1)).toThrow(RangeError);
    }
  });
});

describe.skipIf(!ctx)('MoE expert FFN, prefill (grouped by expert, indirect tiled matmul)', () => {
  const g = ctx!;
  const cases: FfnCase[] = [
    ...FFN_CASES.map((c): FfnCase => [c[0], c[1], c[2], c[3], c[4], c[5], c[6] === 1 ? 33 : c[6]]),
    [GGMLType.Q4_K, GGMLType.Q6_K, 256, 256, 128, 8, 33],
  ];
  for (const c of cases) {
    it(caseName(c), async () => {
      const p = ffnProblem(c, c[2] * 13 + c[3] + c[6] + c[4]);
      const io = ffnLaunchInputs(g, p);
      const launch = await createMoeFfnPrefill(g, io);
      runLaunches(g, [launch]);
      expectFfn(caseName(c), await readF32(g, io.out, p.nTokens * p.nEmbd), p.ref, p.residual);
      launch.dispose();
    });
  }

  it('GPU router → prefill FFN; split experts; smaller tiles; setCount to fewer tokens; one scratch for all launches', async () => {
    const c: FfnCase = [GGMLType.Q8_0, GGMLType.Q5_0, 96, 288, 10, 3, 33];
    const p = ffnProblem(c, 1234);
    const part = (s: QuantMatrixStack) => 4 * s.rows * rowBytes(s.type, s.cols) + 4;
    const gate = upload(g, 'gate', p.f.gate, part(p.f.gate));
    const up = upload(g, 'up', p.f.up, part(p.f.up));
    const down = upload(g, 'down', p.f.down, part(p.f.down));
    expect(down.parts.length).toBe(3);
    const ib = createStorage(g, p.nTokens * p.k * 4);
    const wb = createStorage(g, p.nTokens * p.k * 4);
    const route = await createMoeRoute(g, { logits: createStorageFrom(g, p.logits), ids: ib, weights: wb, nExpert: p.nExpert, k: p.k, nTokens: p.nTokens });
    const scratch = createMoePrefillScratch(g, { maxTokens: p.nTokens, k: p.k, nEmbd: p.nEmbd, nFf: p.nFf, nExpert: p.nExpert });
    for (const tile of [{ wgM: 16, wgN: 4 }, { wgM: 8, wgN: 2 }]) {
      const ob = createStorageFrom(g, p.residual);
      const launch = await createMoeFfnPrefill(g, { gate, up, down, x: createStorageFrom(g, p.x), out: ob, ids: ib, weights: wb, k: p.k, nTokens: p.nTokens, scratch, ...tile });
      expect(launch.scratchBytes).toBe(0);
      runLaunches(g, [route, launch]);
      expectFfn(`tile ${tile.wgM}×${tile.wgN}`, await readF32(g, ob, p.nTokens * p.nEmbd), p.ref, p.residual);
      // 7 tokens: the first 7 rows change, the rest keep the residual
      const ob7 = createStorageFrom(g, p.residual);
      const l7 = await createMoeFfnPrefill(g, { gate, up, down, x: createStorageFrom(g, p.x), out: ob7, ids: ib, weights: wb, k: p.k, nTokens: p.nTokens, scratch, ...tile });
      l7.setCount(7);
      runLaunches(g, [l7]);
      const got7 = await readF32(g, ob7, p.nTokens * p.nEmbd);
      const n7 = 7 * p.nEmbd;
      expectFfn('7 tokens', got7.subarray(0, n7), p.ref.subarray(0, n7), p.residual.subarray(0, n7));
      expectClose('untouched rows', got7.subarray(n7), p.residual.subarray(n7), 0);
      launch.dispose();
      l7.dispose();
    }
    freeMoePrefillScratch(g, scratch);
  });
});

/** Gate and up uploaded co-located as the loader does (src/runtime/buffers.ts uploadCoLocatedPair). */
function uploadCoLocated(g: GPUContext, gate: QuantMatrixStack, up: QuantMatrixStack, expertsPerPart = gate.count): { gate: WeightTensor; up: WeightTensor } {
  const [tg, tu] = uploadCoLocatedPair(g, { name: 'gate', type: gate.type, shape: [gate.cols, gate.rows, gate.count], data: gate.data }, { name: 'up', data: up.data }, expertsPerPart);
  return { gate: tg, up: tu };
}

const bitsOf = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe.skipIf(!ctx)('MoE decode, fused: routing inside the gate/up dispatch, gate + up + SwiGLU in one', () => {
  const g = ctx!;
  // (gate/up type, down type, n_embd, n_ff, n_expert, k, tokens, experts per part, logits on a 0.5 grid (ties));
  // rows per expert not a multiple of ROWS = 3 (and of 2 where down's type allows an odd n_ff)
  type FusedCase = [GGMLType, GGMLType, number, number, number, number, number, number, boolean];
  const cases: FusedCase[] = [
    [GGMLType.F32, GGMLType.F32, 64, 95, 10, 3, 1, 10, false],
    [GGMLType.Q8_0, GGMLType.Q4_0, 96, 320, 20, 6, 1, 20, true],
    [GGMLType.Q4_K, GGMLType.Q6_K, 256, 256, 60, 5, 1, 7, false],
    [GGMLType.F16, GGMLType.BF16, 96, 97, 129, 8, 3, 129, true],
    [GGMLType.Q5_K, GGMLType.Q8_0, 256, 96, 128, 8, 1, 40, false],
    [GGMLType.Q6_K, GGMLType.Q4_K, 256, 256, 256, 9, 1, 256, true],
    [GGMLType.Q4_1, GGMLType.Q5_1, 64, 160, 5, 5, 2, 2, true],
  ];
  for (const [tGU, tD, nEmbd, nFf, nExpert, k, nTokens, perPart, ties] of cases) {
    const name = `${ggmlTypeName(tGU)}/${ggmlTypeName(tD)} n_embd ${nEmbd} ff ${nFf}, ${nExpert} experts top-${k}, ${nTokens} token(s), ${perPart} experts per part${ties ? ', tied logits' : ''}`;
    it(name, async () => {
      const r = rng(nEmbd + nFf * 3 + nExpert * 7 + k);
      const logits = ties ? Float32Array.from({ length: nExpert * nTokens }, () => Math.round(r() * 6) / 2) : distinctLogits(r, nExpert, nTokens);
      const route = cpuRoute(logits, nExpert, k, nTokens);
      const used = new Set(route.ids);
      const f: Ffn = { gate: expertStack(tGU, nEmbd, nFf, nExpert, 11, used), up: expertStack(tGU, nEmbd, nFf, nExpert, 12, used), down: expertStack(tD, nFf, nEmbd, nExpert, 13, used) };
      const x = randomF32(r, nTokens * nEmbd);
      const residual = randomF32(r, nTokens * nEmbd);
      const ref = cpuMoe(f, x, residual, route.ids, route.weights, k, nTokens);
      const gu = uploadCoLocated(g, f.gate, f.up, perPart);
      const down = upload(g, 'down', f.down);
      expect(gu.gate.parts.length).toBe(Math.ceil(nExpert / perPart));
      const lb = createStorageFrom(g, logits);
      const xb = createStorageFrom(g, x);

      // unfused: moe_route, then gate, up + SwiGLU, down
      const ref1 = { ids: createStorage(g, nTokens * k * 4), weights: createStorage(g, nTokens * k * 4), act: createStorage(g, nTokens * k * nFf * 4), out: createStorageFrom(g, residual) };
      const routeL = await createMoeRoute(g, { logits: lb, ids: ref1.ids, weights: ref1.weights, nExpert, k, nTokens });
      const unfused = await createMoeFfnDecode(g, { gate: gu.gate, up: gu.up, down, x: xb, out: ref1.out, ids: ref1.ids, weights: ref1.weights, act: ref1.act, k, nTokens, fuse: false });
      expect(unfused.dispatches.length).toBe(2 * gu.gate.parts.length + down.parts.length);
      runLaunches(g, [routeL, unfused]);
      const want = {
        ids: new Uint32Array(await readBuffer(g, ref1.ids, 0, nTokens * k * 4)),
        weights: await readF32(g, ref1.weights, nTokens * k),
        act: await readF32(g, ref1.act, nTokens * k * nFf),
        out: await readF32(g, ref1.out, nTokens * nEmbd),
      };
      expectClose('moe_route ids vs CPU', want.ids, route.ids, 0);
      expectClose('moe_route weights vs CPU', want.weights, route.weights, 1e-5);
      expectFfn('unfused vs CPU', want.out, ref, residual);

      // fused, in the unfused kernels' geometry and (some cases) others: the same routing bits
      const geometries = [{ workgroupSize: 64, rowsPerWorkgroup: 2, subgroups: g.features.subgroups }];
      if (nExpert % 2 === 1 || perPart < nExpert) geometries.push({ workgroupSize: 32, rowsPerWorkgroup: 3, subgroups: false }, { workgroupSize: 256, rowsPerWorkgroup: 1, subgroups: g.features.subgroups });
      for (const v of geometries) {
        const o = { ids: createStorage(g, nTokens * k * 4), weights: createStorage(g, nTokens * k * 4), act: createStorage(g, nTokens * k * nFf * 4), out: createStorageFrom(g, residual) };
        const fused = await createMoeFfnDecode(g, { gate: gu.gate, up: gu.up, down, x: xb, out: o.out, ids: o.ids, weights: o.weights, act: o.act, k, nTokens: 1, maxTokens: nTokens, route: { logits: lb, nExpert }, ...v });
        fused.setCount(nTokens);
        expect(fused.dispatches.length).toBe(gu.gate.parts.length + down.parts.length);
        runLaunches(g, [fused]);
        const label = JSON.stringify(v);
        expectClose(`${label} ids`, new Uint32Array(await readBuffer(g, o.ids, 0, nTokens * k * 4)), want.ids, 0);
        expectClose(`${label} weight bits`, bitsOf(await readF32(g, o.weights, nTokens * k)), bitsOf(want.weights), 0);
        if (v.rowsPerWorkgroup === 2 && v.workgroupSize === 64) {
          // the unfused kernels' geometry: act and the output bit for bit
          expectClose(`${label} act bits`, bitsOf(await readF32(g, o.act, nTokens * k * nFf)), bitsOf(want.act), 0);
          expectClose(`${label} out bits`, bitsOf(await readF32(g, o.out, nTokens * nEmbd)), bitsOf(want.out), 0);
        } else {
          expectFfn(`${label} vs CPU`, await readF32(g, o.out, nTokens * nEmbd), ref, residual);
        }
      }

      // one thread per row (software adapters' geometry), rows per thread not dividing n_ff or
      // n_embd: unfused vs CPU, fused bit for bit the unfused
      const tpr = { threadPerRow: { workgroupSize: 32, rowsPerThread: 3 } };
      const rowU = { act: createStorage(g, nTokens * k * nFf * 4), out: createStorageFrom(g, residual) };
      runLaunches(g, [await createMoeFfnDecode(g, { gate: gu.gate, up: gu.up, down, x: xb, out: rowU.out, ids: ref1.ids, weights: ref1.weights, act: rowU.act, k, nTokens, fuse: false, ...tpr })]);
      const rowWant = { act: await readF32(g, rowU.act, nTokens * k * nFf), out: await readF32(g, rowU.out, nTokens * nEmbd) };
      expectFfn('thread per row, unfused vs CPU', rowWant.out, ref, residual);
      const o = { ids: createStorage(g, nTokens * k * 4), weights: createStorage(g, nTokens * k * 4), act: createStorage(g, nTokens * k * nFf * 4), out: createStorageFrom(g, residual) };
      const fusedRow = await createMoeFfnDecode(g, { gate: gu.gate, up: gu.up, down, x: xb, out: o.out, ids: o.ids, weights: o.weights, act: o.act, k, nTokens, route: { logits: lb, nExpert }, ...tpr });
      expect(fusedRow.dispatches.length).toBe(gu.gate.parts.length + down.parts.length);
      runLaunches(g, [fusedRow]);
      expectClose('thread per row ids', new Uint32Array(await readBuffer(g, o.ids, 0, nTokens * k * 4)), want.ids, 0);
      expectClose('thread per row act bits', bitsOf(await readF32(g, o.act, nTokens * k * nFf)), bitsOf(rowWant.act), 0);
      expectClose('thread per row out bits', bitsOf(await readF32(g, o.out, nTokens * nEmbd)), bitsOf(rowWant.out), 0);
    }, 600_000);
  }

  it('routing lanes follow moe_route\'s workgroup size; not co-located → a moe_route dispatch and the unfused kernels', async () => {
    const [nEmbd, nFf, nExpert, k] = [64, 64, 37, 4];
    const r = rng(77);
    const logits = Float32Array.from({ length: nExpert }, () => Math.round(r() * 8) / 4);
    const route = cpuRoute(logits, nExpert, k, 1, false);
    const used = new Set(route.ids);
    const f: Ffn = { gate: expertStack(GGMLType.Q8_0, nEmbd, nFf, nExpert, 1, used), up: expertStack(GGMLType.Q8_0, nEmbd, nFf, nExpert, 2, used), down: expertStack(GGMLType.Q8_0, nFf, nEmbd, nExpert, 3, used) };
    const x = randomF32(r, nEmbd);
    const residual = randomF32(r, nEmbd);
    const ref = cpuMoe(f, x, residual, route.ids, route.weights, k, 1);
    const lb = createStorageFrom(g, logits);
    const down = upload(g, 'down', f.down);
    for (const lanes of [32, 256]) {
      const ib = createStorage(g, k * 4);
      const wb = createStorage(g, k * 4);
      runLaunches(g, [await createMoeRoute(g, { logits: lb, ids: ib, weights: wb, nExpert, k, normalize: false, workgroupSize: lanes })]);
      const wantW = await readF32(g, wb, k);
      for (const colocated of [true, false]) {
        const gu = colocated ? uploadCoLocated(g, f.gate, f.up) : { gate: upload(g, 'gate', f.gate), up: upload(g, 'up', f.up) };
        const o = { ids: createStorage(g, k * 4), weights: createStorage(g, k * 4), out: createStorageFrom(g, residual) };
        const l = await createMoeFfnDecode(g, { ...gu, down, x: createStorageFrom(g, x), out: o.out, ids: o.ids, weights: o.weights, k, route: { logits: lb, nExpert, normalize: false, lanes } });
        expect(l.dispatches.length).toBe(colocated ? 2 : 4);
        runLaunches(g, [l]);
        expectClose(`lanes ${lanes} ids`, new Uint32Array(await readBuffer(g, o.ids, 0, k * 4)), route.ids, 0);
        expectClose(`lanes ${lanes} weight bits`, bitsOf(await readF32(g, o.weights, k)), bitsOf(wantW), 0);
        expectFfn(`lanes ${lanes}, co-located ${colocated}`, await readF32(g, o.out, nEmbd), ref, residual);
      }
    }
  }, 600_000);
});

describe.skipIf(!ctx)('MoE decode, fused, numerics llamacpp: round trips inside the gate/up and down dispatches', () => {
  const g = ctx!;
  // (gate/up type, down type, n_embd, n_ff, n_expert, k, experts per part): the four round trips
  const cases: [GGMLType, GGMLType, number, number, number, number, number][] = [
    [GGMLType.Q4_K, GGMLType.Q6_K, 256, 256, 12, 3, 12], // Q8_K, Q8_K
    [GGMLType.Q8_0, GGMLType.Q5_0, 96, 160, 13, 5, 4], // Q8_0, Q8_0
    [GGMLType.Q4_1, GGMLType.F16, 64, 97, 9, 4, 9], // Q8_1, F16 (odd n_ff)
    [GGMLType.BF16, GGMLType.Q5_K, 96, 256, 10, 2, 10], // BF16, Q8_K
  ];
  for (const [tGU, tD, nEmbd, nFf, nExpert, k, perPart] of cases) {
    const name = `${ggmlTypeName(tGU)}/${ggmlTypeName(tD)} n_embd ${nEmbd} ff ${nFf}, ${nExpert} experts top-${k}, ${perPart} experts per part`;
    it(name, async () => {
      const r = rng(nEmbd * 5 + nFf + k);
      const logits = distinctLogits(r, nExpert, 1);
      const route = cpuRoute(logits, nExpert, k, 1);
      const used = new Set(route.ids);
      const f: Ffn = { gate: expertStack(tGU, nEmbd, nFf, nExpert, 21, used), up: expertStack(tGU, nEmbd, nFf, nExpert, 22, used), down: expertStack(tD, nFf, nEmbd, nExpert, 23, used) };
      const x = randomF32(r, nEmbd);
      const residual = randomF32(r, nEmbd);
      const ref = cpuMoe(f, x, residual, route.ids, route.weights, k, 1, true);
      const gu = uploadCoLocated(g, f.gate, f.up, perPart);
      const down = upload(g, 'down', f.down);
      const lb = createStorageFrom(g, logits);
      const xb = createStorageFrom(g, x);
      const tIn = actQuantFor(tGU)!;
      const tAct = actQuantFor(tD)!;
      expect(tIn).toBe(vecDotType(tGU));

      for (const geometry of [{}, { threadPerRow: { workgroupSize: 32, rowsPerThread: 3 } }]) {
      const gl = JSON.stringify(geometry);
      // unfused: act_quant(x), moe_route, gate, up + SwiGLU, act_quant(act), down
      const u = { xq: createStorage(g, nEmbd * 4), ids: createStorage(g, k * 4), weights: createStorage(g, k * 4), act: createStorage(g, k * nFf * 4), actQ: createStorage(g, k * nFf * 4), out: createStorageFrom(g, residual) };
      const unfused = await createMoeFfnDecode(g, { ...gu, down, x: u.xq, out: u.out, ids: u.ids, weights: u.weights, act: u.act, k, actQuant: { type: tAct, out: u.actQ }, fuse: false, ...geometry });
      runLaunches(g, [
        await createActQuant(g, { type: tIn, x: xb, out: u.xq, n: nEmbd }),
        await createMoeRoute(g, { logits: lb, ids: u.ids, weights: u.weights, nExpert, k }),
        unfused,
      ]);
      const wantOut = await readF32(g, u.out, nEmbd);
      expectFfn(`${gl} unfused vs CPU`, wantOut, ref, residual);

      // fused: 2 dispatches per part pair + down's parts, no act_quant
      const o = { ids: createStorage(g, k * 4), weights: createStorage(g, k * 4), act: createStorage(g, k * nFf * 4), out: createStorageFrom(g, residual) };
      const fused = await createMoeFfnDecode(g, { ...gu, down, x: xb, out: o.out, ids: o.ids, weights: o.weights, act: o.act, k, xRound: tIn, actQuant: { type: tAct }, route: { logits: lb, nExpert }, ...geometry });
      expect(fused.dispatches.length).toBe(gu.gate.parts.length + down.parts.length);
      runLaunches(g, [fused]);
      expectClose(`${gl} ids`, new Uint32Array(await readBuffer(g, o.ids, 0, k * 4)), route.ids, 0);
      expectClose(`${gl} weight bits`, bitsOf(await readF32(g, o.weights, k)), bitsOf(await readF32(g, u.weights, k)), 0);
      if ('threadPerRow' in geometry && (intDot(tGU, tIn) || intDot(tD, tAct))) {
        // integer dots (quant.wgsl unit_dot_q): the same products summed in integers
        expectProduct(`${gl} act ≈ unfused`, await readF32(g, o.act, k * nFf), await readF32(g, u.act, k * nFf));
        expectFfn(`${gl} fused vs CPU`, await readF32(g, o.out, nEmbd), ref, residual);
      } else {
        expectClose(`${gl} act bits`, bitsOf(await readF32(g, o.act, k * nFf)), bitsOf(await readF32(g, u.act, k * nFf)), 0);
        expectClose(`${gl} out bits`, bitsOf(await readF32(g, o.out, nEmbd)), bitsOf(wantOut), 0);
      }
      }
    }, 600_000);
  }
});
