// The fused matvec (matvec.wgsl FUSED + prologue.wgsl, createMatVecFused): RMSNorm / SwiGLU and
// llama.cpp's activation round trip in a per-workgroup prologue, up to 3 co-located row ranges.
//   - bit for bit the unfused chain it replaces: rms_norm(_q) (WG 128) / swiglu / act_quant, then
//     createMatVec with the same threads per workgroup; the h tap bit for bit rms_norm's output
//   - close to the CPU reference (src/cpu/ops.ts rmsNorm, gguf/quants.ts activationRoundTrip, dot)
// over weight types × round trips, cols not multiples of the block × threads (odd for float
// types), rows not multiples of ROWS, 1–3 ranges, accumulate, workgroup sizes other than the norm's,
// ties on the Q8 grids and a zero block; and refusals (not co-located, too big for workgroup memory).
import { afterAll, describe, expect, it } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import { activationRoundTrip, quantize } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName, rowBytes } from '../../gguf/types.js';
import { configFromGGUF } from '../../src/config.js';
import type { Numerics } from '../../src/backend.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { dequantizeRow, rmsNorm, swiglu, type QuantMatrix } from '../../src/cpu/ops.js';
import { actQuantFor, createActQuant, type ActQuantType } from '../../src/gpu/actquant.js';
import { createMatVec, createMatVecFused, createMatVecFusedByPart, createRmsNorm, createSwiglu, FusedKernelUnsupported, intDot } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readF32, uploadWeight, type WeightTensor } from '../../src/runtime/buffers.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { runLaunches, type Launch } from '../../src/runtime/pipelines.js';
import { fixturePath, type FixtureName } from '../fixtures/make.js';
import { expectProduct, openTestGPU, randomF32, rng } from './helpers.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

/** Weights of one type and width, uploaded into ONE buffer, each at a 256-aligned offset (as the loader co-locates them). */
function coLocate(g: GPUContext, type: GGMLType, cols: number, rows: readonly number[], seed: number): { ws: WeightTensor[]; ms: QuantMatrix[] } {
  const rb = rowBytes(type, cols);
  const ms = rows.map((r, i) => ({ type, rows: r, cols, data: quantize(type, randomF32(rng(seed + i), r * cols)) }));
  const offsets: number[] = [];
  let end = 0;
  for (const m of ms) {
    const off = Math.ceil(end / 256) * 256 + (offsets.length ? 256 : 0); // a gap too: the binding spans it
    offsets.push(off);
    end = off + m.data.byteLength;
  }
  const buffer = g.createBuffer({ label: 'colocated', size: Math.ceil(end / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, mappedAtCreation: true });
  const bytes = new Uint8Array(buffer.getMappedRange());
  ms.forEach((m, i) => bytes.set(m.data, offsets[i]!));
  buffer.unmap();
  const ws = ms.map((m, i) => ({
    name: `w${i}`,
    type,
    shape: [cols, m.rows],
    cols,
    rows: m.rows,
    rowBytes: rb,
    parts: [{ buffer, offset: offsets[i]!, firstRow: 0, nRows: m.rows, byteLength: m.data.byteLength }],
    splitRows: 1,
  }));
  return { ws, ms };
}

function expectSame(label: string, got: Float32Array, want: Float32Array): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!;
    const b = want[i]!;
    if (!(a === b || (Number.isNaN(a) && Number.isNaN(b)))) expect.fail(`${label}: element ${i}: fused ${a}, unfused ${b}`);
  }
}

type Pre = 'none' | 'norm' | 'swiglu';
interface Case {
  type: GGMLType;
  cols: number;
  rows: number[];
  pre: Pre;
  /** round trip: the weight's vec_dot_type ('llamacpp'), or none ('exact') */
  round: boolean;
  accumulate?: boolean;
  wg?: number;
  /** subgroup reductions (where the device has them) */
  sg?: boolean;
  /** one thread per row (threadPerRow: wg threads, this many rows each; main_rows unfused) */
  tpr?: number;
}

const CASES: Case[] = [
  { type: GGMLType.Q4_K, cols: 512, rows: [37, 5, 19], pre: 'norm', round: true, sg: true },
  { type: GGMLType.Q4_K, cols: 768, rows: [29, 11], pre: 'norm', round: false },
  { type: GGMLType.Q4_K, cols: 4096, rows: [21], pre: 'norm', round: true, wg: 128 },
  { type: GGMLType.Q6_K, cols: 256, rows: [13], pre: 'none', round: true, accumulate: true },
  { type: GGMLType.Q5_K, cols: 768, rows: [17], pre: 'swiglu', round: true, accumulate: true, wg: 32 },
  { type: GGMLType.Q8_0, cols: 288, rows: [37, 11], pre: 'norm', round: true, wg: 256, sg: true },
  { type: GGMLType.Q4_0, cols: 800, rows: [9], pre: 'none', round: true },
  { type: GGMLType.Q4_1, cols: 96, rows: [9, 3, 17], pre: 'norm', round: true, wg: 32 },
  { type: GGMLType.Q5_1, cols: 224, rows: [6, 15], pre: 'swiglu', round: true, sg: true },
  { type: GGMLType.Q5_0, cols: 800, rows: [21], pre: 'swiglu', round: false },
  { type: GGMLType.F16, cols: 45, rows: [7, 30], pre: 'norm', round: true },
  { type: GGMLType.F16, cols: 288, rows: [19], pre: 'swiglu', round: true, accumulate: true },
  { type: GGMLType.BF16, cols: 43, rows: [5, 6, 7], pre: 'norm', round: true },
  { type: GGMLType.F32, cols: 37, rows: [131, 2], pre: 'norm', round: false },
  { type: GGMLType.F32, cols: 96, rows: [3, 3, 3], pre: 'none', round: false, accumulate: true },
  // one thread per row (software adapters' geometry)
  { type: GGMLType.Q4_K, cols: 512, rows: [37, 5, 19], pre: 'norm', round: true, wg: 32, tpr: 3 },
  { type: GGMLType.Q6_K, cols: 768, rows: [70], pre: 'none', round: true, accumulate: true, wg: 32, tpr: 4 },
  { type: GGMLType.Q5_K, cols: 256, rows: [17, 40], pre: 'swiglu', round: true, wg: 32, tpr: 5 },
  { type: GGMLType.Q4_K, cols: 768, rows: [29, 11], pre: 'norm', round: false, wg: 64, tpr: 1 },
  { type: GGMLType.F16, cols: 45, rows: [7, 30], pre: 'norm', round: true, wg: 32, tpr: 2 },
  { type: GGMLType.Q6_K, cols: 512, rows: [300, 29], pre: 'norm', round: true, wg: 32, tpr: 16 },
];

describe.skipIf(!ctx)('fused matvec: prologue + row ranges', () => {
  const g = ctx!;
  for (const c of CASES) {
    {
      const sg = !!c.sg && !!g?.features.subgroups;
      const label = `${ggmlTypeName(c.type)} ${c.cols} cols, rows ${c.rows.join('+')}, ${c.pre}${c.round ? ' + round' : ''}${c.accumulate ? ', accumulate' : ''}, WG ${c.wg ?? 64}${sg ? ', subgroups' : ''}${c.tpr ? `, thread per row × ${c.tpr}` : ''}`;
      it(label, async () => {
        const { cols, type } = c;
        const wg = c.wg ?? 64;
        const geometry = c.tpr ? { threadPerRow: { workgroupSize: wg, rowsPerThread: c.tpr } } : { workgroupSize: wg, subgroups: sg };
        const rand = rng(cols * 13 + c.rows.length);
        const x = randomF32(rand, cols, -3, 3);
        for (let i = 0; i < cols; i += 5) x[i] = Math.round(x[i]! * 32) / 64; // ties on the grids
        if (cols >= 512) x.fill(0, 256, 512); // a zero Q8_K block (with the norm: still zero)
        const up = randomF32(rand, cols, -2, 2);
        const normW = randomF32(rand, cols, 0.5, 1.5);
        const eps = 1e-6;
        const round: ActQuantType | null = c.round ? actQuantFor(type) : null;
        const { ws, ms } = coLocate(g, type, cols, c.rows, cols + c.rows[0]!);
        const y0 = c.rows.map((r) => randomF32(rand, r)); // accumulate: y += W·v
        const xb = createStorageFrom(g, x);
        const ub = createStorageFrom(g, up);
        const nb = createStorageFrom(g, normW);

        // fused: one dispatch (h: the prologue's row before the round trip)
        const yf = y0.map((y) => createStorageFrom(g, y));
        const hf = createStorage(g, cols * 4);
        const fused = await createMatVecFused(g, {
          ws,
          ys: yf,
          x: xb,
          norm: c.pre === 'norm' ? { weight: nb, eps } : undefined,
          swiglu: c.pre === 'swiglu' ? { up: ub } : undefined,
          round,
          out: c.pre === 'none' ? undefined : hf,
          accumulate: c.accumulate,
          ...geometry,
        });
        expect(fused.dispatches.length).toBe(1);

        // unfused: rms_norm(_q) / swiglu / act_quant, then one matvec per weight
        const yu = y0.map((y) => createStorageFrom(g, y));
        const hu = createStorage(g, cols * 4);
        const qu = createStorage(g, cols * 4);
        const launches: Launch[] = [];
        let input = xb;
        if (c.pre === 'norm') {
          launches.push(await createRmsNorm(g, { x: xb, weight: nb, out: hu, n: cols, eps, round: round !== null ? { type: round, out: qu } : undefined }));
          input = round !== null ? qu : hu;
        } else {
          if (c.pre === 'swiglu') {
            launches.push(await createSwiglu(g, { a: xb, b: ub, out: hu, n: cols }));
            input = hu;
          }
          if (round !== null) {
            launches.push(await createActQuant(g, { type: round, x: input, out: qu, n: cols }));
            input = qu;
          }
        }
        for (let r = 0; r < ws.length; r++) launches.push(await createMatVec(g, { w: ws[r]!, x: input, y: yu[r]!, accumulate: c.accumulate, ...geometry }));
        runLaunches(g, [fused]);
        runLaunches(g, launches);

        if (c.pre !== 'none') expectSame(`${label}: h`, await readF32(g, hf, cols), await readF32(g, hu, cols));
        // the CPU reference: v = norm / swiglu of x, its round trip, then y (+)= W·v
        const v = new Float32Array(cols);
        if (c.pre === 'norm') rmsNorm(v, x, normW, eps);
        else if (c.pre === 'swiglu') swiglu(v, x, up);
        else v.set(x);
        const vin = round !== null ? activationRoundTrip(type, v) : v;
        for (let r = 0; r < ws.length; r++) {
          const got = await readF32(g, yf[r]!, c.rows[r]!);
          // thread per row with integer dots (Q4_K / Q6_K on a Q8_K round trip): the same products
          // summed in integers, so close to the unfused float chain rather than its bits
          if (c.tpr && intDot(type, round)) expectProduct(`${label}: y${r} ≈ unfused`, got, await readF32(g, yu[r]!, c.rows[r]!));
          else expectSame(`${label}: y${r} = unfused`, got, await readF32(g, yu[r]!, c.rows[r]!));
          const ref = new Float32Array(c.rows[r]!);
          for (let i = 0; i < ref.length; i++) {
            const row = dequantizeRow(ms[r]!, i);
            let s = 0;
            for (let k = 0; k < cols; k++) s += row[k]! * vin[k]!;
            ref[i] = (c.accumulate ? y0[r]![i]! : 0) + s;
          }
          expectProduct(`${label}: y${r} vs CPU`, got, ref);
        }
      });
    }
  }

  it('the prologue reproduces rms_norm for other norm workgroup sizes (normWg 32 with 64 threads, 512 with 32)', async () => {
    const cols = 1000;
    const rand = rng(5);
    const x = randomF32(rand, cols, -3, 3);
    const normW = randomF32(rand, cols, 0.5, 1.5);
    const { ws } = coLocate(g, GGMLType.F16, cols, [3], 77);
    for (const [normWg, wg] of [[32, 64], [512, 32]] as const) {
      const xb = createStorageFrom(g, x);
      const nb = createStorageFrom(g, normW);
      const hf = createStorage(g, cols * 4);
      const hu = createStorage(g, cols * 4);
      runLaunches(g, [
        await createMatVecFused(g, { ws, ys: [createStorage(g, 12)], x: xb, norm: { weight: nb, eps: 1e-5, normWg }, round: GGMLType.F16, out: hf, workgroupSize: wg }),
        await createRmsNorm(g, { x: xb, weight: nb, out: hu, n: cols, eps: 1e-5, workgroupSize: normWg }),
      ]);
      expectSame(`normWg ${normWg}, WG ${wg}`, await readF32(g, hf, cols), await readF32(g, hu, cols));
    }
  });

  it('refuses weights that are not co-located, and a prologue too big for workgroup memory', async () => {
    const cols = 256;
    const a = uploadWeight(g, { name: 'a', type: GGMLType.Q4_K, shape: [cols, 4], data: quantize(GGMLType.Q4_K, randomF32(rng(1), 4 * cols)) });
    const b = uploadWeight(g, { name: 'b', type: GGMLType.Q4_K, shape: [cols, 4], data: quantize(GGMLType.Q4_K, randomF32(rng(2), 4 * cols)) });
    const x = createStorage(g, cols * 4);
    const ys = [createStorage(g, 16), createStorage(g, 16)];
    await expect(createMatVecFused(g, { ws: [a, b], ys, x })).rejects.toBeInstanceOf(FusedKernelUnsupported);
    // F16 pairs of a row wider than the workgroup memory allows
    const wide = Math.ceil(g.limits.maxComputeWorkgroupStorageSize / 2 / 32) * 32;
    const { ws } = coLocate(g, GGMLType.F16, wide, [2], 3);
    await expect(createMatVecFused(g, { ws, ys: [createStorage(g, 8)], x: createStorage(g, wide * 4), round: GGMLType.F16 })).rejects.toBeInstanceOf(FusedKernelUnsupported);
    // a row length the round trip's block does not divide
    const { ws: odd } = coLocate(g, GGMLType.F32, 300, [2], 4);
    await expect(createMatVecFused(g, { ws: odd, ys: [createStorage(g, 8)], x: createStorage(g, 300 * 4), round: GGMLType.Q8_K })).rejects.toBeInstanceOf(FusedKernelUnsupported);
  });
});

// The decode pass's dispatch budget (issue 5): at most 8 compute dispatches per layer per decoded
// token, counted by the sequence's stats (src/arch/program.ts EncodeCounts), not timed.
describe.skipIf(!ctx)('fused matvec over a weight split into parts (createMatVecFusedByPart)', () => {
  // 301 rows (not a multiple of any ROWS) split into parts of 100 rows, vs the same weight whole:
  // each part writes its rows of y from part.firstRow, with the same per-row sums
  for (const [type, tpr] of [[GGMLType.Q6_K, 4], [GGMLType.Q6_K, 0], [GGMLType.Q4_K, 3]] as const) {
    it(`${ggmlTypeName(type)} 512 cols × 301 rows in 4 parts, Q8_K round trip, ${tpr ? `thread per row × ${tpr}` : 'GPU geometry'}`, async () => {
      const g = ctx!;
      const rows = 301;
      const cols = 512;
      const data = quantize(type, randomF32(rng(77), rows * cols));
      const whole = uploadWeight(g, { name: 'whole', type, shape: [cols, rows], data });
      const split = uploadWeight(g, { name: 'split', type, shape: [cols, rows], data }, { maxPartBytes: 100 * rowBytes(type, cols) + 4 });
      expect(split.parts.length).toBe(4);
      const x = createStorageFrom(g, randomF32(rng(78), cols));
      const geometry = tpr ? { threadPerRow: { workgroupSize: 32, rowsPerThread: tpr } } : { workgroupSize: 64 };
      const run = async (w: WeightTensor): Promise<Float32Array> => {
        const y = createStorage(g, rows * 4);
        const l = await createMatVecFusedByPart(g, { w, y, x, round: GGMLType.Q8_K, ...geometry });
        runLaunches(g, [l]);
        return readF32(g, y, rows);
      };
      expectSame(`${ggmlTypeName(type)} split vs whole`, await run(split), await run(whole));
    });
  }
});

describe.skipIf(!ctx)('decode dispatches per layer', () => {
  const cases: [FixtureName, Numerics][] = [
    ['qwen3-q4_k_m', 'llamacpp'],
    ['qwen3moe-q4_k_m-realvocab', 'llamacpp'],
    ['qwen3moe-q8_0', 'exact'],
  ];
  for (const [name, numerics] of cases) {
    it(`${name} (numerics '${numerics}'): ≤ 8`, async () => {
      const path = await fixturePath(name);
      const f = await openGGUF(path);
      try {
        const cfg = configFromGGUF(f.metadata, f.tensorByName);
        const be = await WebGPUBackend.load(f, cfg, { context: ctx!, numerics });
        try {
          // a context past one attention chunk's old limit (32), as in tg128: attention stays one dispatch
          const seq = be.createSequence(160);
          await seq.eval(Array.from({ length: 140 }, (_, i) => (i * 7 + 5) % cfg.nVocab));
          await seq.eval([9]); // one decode step at position 140
          const perLayer = seq.stats.last.perLayer.slice(0, cfg.nLayer);
          console.log(`${name}: decode dispatches per layer ${perLayer.join(', ')}`);
          for (const [il, d] of perLayer.entries()) expect(d, `layer ${il}`).toBeLessThanOrEqual(8);
        } finally {
          await be.dispose();
        }
      } finally {
        await f.close();
      }
    });
  }
});
