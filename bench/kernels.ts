// Kernel microbenchmarks at the shapes of one real Qwen3-30B-A3B layer (tinybench):
//
//   npx tsx bench/kernels.ts [--scale 0.25] [--time 2000] [--only matvec,lm_head] [--json]
//
// Each kernel is launched through its real launcher (src/gpu/*) on random valid weights
// (src/synth/blocks.ts), with the decode's geometry (matVecShape: on a software adapter one thread
// per row) and, for moe_ffn and lm_head, the same kernels and round trips as qwen3moe's decode
// (a software adapter's LM head: the fused integer-dot matvec; lm_head_split, software adapters
// only, is the plain LM head with the GPU geometry). A sample is the GPU time of one launch, from a timestamp query pair around
// its compute pass when the device has `timestamp-query` (lavapipe does), else the wall time of
// submit + onSubmittedWorkDone. GB/s = bytes the kernel must read (weights, plus KV cache or
// activations where they matter) / median time; the last column compares it with the device's
// copy bandwidth, measured the same way with copyBufferToBuffer (bytes read + written / time).
// --scale multiplies every dimension (rounded to the quant block) so that a software adapter
// finishes in reasonable time; the expert count scales too (at least 8 experts, 8 used).
//
// The unfused MoE path (three matvec_id launches + SwiGLU) sits next to the fused one (moe_ffn), as
// the naive version next to the fast one.
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { GGMLType, ggmlTypeName, tensorBytes } from '../gguf/types.js';
import { MOE_FFN_SOFTWARE } from '../src/arch/qwen3moe.js';
import { matVecShape } from '../src/arch/transformer.js';
import { mdTable } from '../src/bench/profile.js';
import { actQuantFor } from '../src/gpu/actquant.js';
import { attnDecodeScratchBytes, createAttnDecode, createKvCache } from '../src/gpu/attention.js';
import { createMoeFfnDecode } from '../src/gpu/moe.js';
import { createMatVec, createMatVecFusedByPart, createMatVecId, createSwiglu } from '../src/gpu/ops.js';
import { createStorage, createStorageFrom, uploadCoLocatedPair, uploadWeight, type WeightTensor } from '../src/runtime/buffers.js';
import { createGPU, type GPUContext } from '../src/runtime/device.js';
import type { Launch } from '../src/runtime/pipelines.js';
import { synthBlocks } from '../src/synth/blocks.js';
import { SynthRng } from '../src/synth/rng.js';

const { values } = parseArgs({
  options: {
    scale: { type: 'string' },
    time: { type: 'string' },
    only: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('usage: npx tsx bench/kernels.ts [--scale S (default 1)] [--time MS per kernel (default 1500)] [--only a,b] [--json]\n');
  process.exit(0);
}
const scale = Number(values.scale ?? 1);
const timeMs = Number(values.time ?? 1500);
const only = values.only ? new Set(values.only.split(',')) : null;

/** A dimension scaled and rounded up to a multiple of `q`. */
const dim = (n: number, q = 256) => Math.max(q, Math.ceil((n * scale) / q) * q);

const G = {
  nEmbd: dim(2048),
  qDim: dim(4096),
  nFf: dim(768),
  nExpert: Math.max(8, Math.round(128 * scale)),
  k: 8,
  nVocab: dim(151936, 64),
  nHead: Math.max(4, Math.round(32 * scale / 4) * 4),
  nHeadKv: 4,
  headDim: 128,
};

interface Case {
  name: string;
  shape: string;
  /** bytes the kernel must read per launch */
  bytes: number;
  launches: Launch[];
}

interface Row {
  name: string;
  shape: string;
  bytes: number;
  gpu: boolean;
  medianMs: number;
  meanMs: number;
  sdMs: number;
  samples: number;
  gbs: number;
  wallMs: number;
}

const rng = new SynthRng('kernels');

function weight(ctx: GPUContext, name: string, type: GGMLType, shape: number[], std = 0.02): WeightTensor {
  return uploadWeight(ctx, { name, type, shape, data: synthBlocks(type, shape, std, rng) });
}

function f32(ctx: GPUContext, n: number, label: string): GPUBuffer {
  return createStorageFrom(ctx, rng.fillNormal(new Float32Array(n), 1), label);
}

async function cases(ctx: GPUContext): Promise<Case[]> {
  const out: Case[] = [];
  const want = (n: string) => !only || only.has(n);
  const x = f32(ctx, Math.max(G.qDim, G.nEmbd) * G.k, 'x');
  const y = createStorage(ctx, G.nVocab * 4, 'y');

  if (want('matvec')) {
    const w = weight(ctx, 'attn_q', GGMLType.Q4_K, [G.nEmbd, G.qDim]);
    out.push({ name: 'matvec', shape: `Q4_K ${G.nEmbd}×${G.qDim}`, bytes: w.rows * w.rowBytes + G.nEmbd * 4, launches: [await createMatVec(ctx, { w, x, y, ...matVecShape(w) })] });
  }
  if (want('router')) {
    const w = weight(ctx, 'router', GGMLType.F32, [G.nEmbd, G.nExpert]);
    out.push({ name: 'router', shape: `F32 ${G.nEmbd}×${G.nExpert}`, bytes: w.rows * w.rowBytes + G.nEmbd * 4, launches: [await createMatVec(ctx, { w, x, y })] });
  }
  if (want('moe_ffn') || want('moe_naive')) {
    // gate and up co-located as the loader places them (the fused kernel reads both through one binding)
    const stack = [G.nEmbd, G.nFf, G.nExpert] as const;
    const [gate, up] = uploadCoLocatedPair(
      ctx,
      { name: 'gate_exps', type: GGMLType.Q4_K, shape: stack, data: synthBlocks(GGMLType.Q4_K, [...stack], 0.02, rng) },
      { name: 'up_exps', data: synthBlocks(GGMLType.Q4_K, [...stack], 0.02, rng) },
    );
    const down = weight(ctx, 'down_exps', GGMLType.Q6_K, [G.nFf, G.nEmbd, G.nExpert]);
    const chosen = new Uint32Array(G.k);
    for (let j = 0; j < G.k; j++) chosen[j] = Math.floor((j * G.nExpert) / G.k) + (j % 3);
    const ids = createStorageFrom(ctx, chosen, 'ids');
    const wts = createStorageFrom(ctx, new Float32Array(G.k).fill(1 / G.k), 'weights');
    const resid = createStorage(ctx, G.nEmbd * 4, 'resid');
    const perExpert = (w: WeightTensor) => (w.rows / G.nExpert) * w.rowBytes;
    const bytes = G.k * (perExpert(gate) + perExpert(up) + perExpert(down));
    const shape = `${G.nExpert}×(Q4_K ${G.nEmbd}→${G.nFf} ×2, Q6_K ${G.nFf}→${G.nEmbd}), ${G.k} used`;
    if (want('moe_ffn')) {
      // as qwen3moe decode runs it (numerics 'llamacpp'): x and the SwiGLU activation through their
      // round trips in the kernel's prologues, the software geometry on a software adapter
      const actQuant = { type: actQuantFor(down.type)!, out: createStorage(ctx, G.k * G.nFf * 4, 'act_q') };
      const moe = await createMoeFfnDecode(ctx, { gate, up, down, x, out: resid, ids, weights: wts, k: G.k, xRound: actQuantFor(gate.type)!, actQuant, software: MOE_FFN_SOFTWARE });
      out.push({ name: 'moe_ffn', shape, bytes, launches: [moe] });
    }
    if (want('moe_naive')) {
      const g = createStorage(ctx, G.k * G.nFf * 4, 'g');
      const u = createStorage(ctx, G.k * G.nFf * 4, 'u');
      const d = createStorage(ctx, G.k * G.nEmbd * 4, 'd');
      out.push({
        name: 'moe_naive',
        shape: shape + ' (matvec_id ×3 + swiglu, no weighted sum)',
        bytes,
        launches: [
          await createMatVecId(ctx, { w: gate, x, y: g, ids, nSlots: G.k }),
          await createMatVecId(ctx, { w: up, x, y: u, ids, nSlots: G.k }),
          await createSwiglu(ctx, { b: u, out: g, n: G.k * G.nFf }), // in place: g = silu(g) ⊙ u
          await createMatVecId(ctx, { w: down, x: g, y: d, ids, nSlots: G.k, xStride: G.nFf }),
        ],
      });
    }
  }
  if (want('lm_head')) {
    // as decode runs it (createLmHead): on a GPU the plain matvec; on a software adapter the fused
    // thread-per-row matvec with the Q8_K round trip in its prologue and integer dots, per part
    const w = weight(ctx, 'output', GGMLType.Q6_K, [G.nEmbd, G.nVocab]);
    const shape = matVecShape(w);
    const launch = ctx.adapter.isSoftware
      ? await createMatVecFusedByPart(ctx, { w, y, x, round: actQuantFor(w.type), threadPerRow: shape.software.threadPerRow })
      : await createMatVec(ctx, { w, x, y, ...shape });
    out.push({ name: 'lm_head', shape: `Q6_K ${G.nEmbd}×${G.nVocab}`, bytes: w.rows * w.rowBytes + G.nEmbd * 4, launches: [launch] });
  }
  if (want('lm_head_split') && ctx.adapter.isSoftware) {
    // the GPU geometry (rows split over a workgroup's threads) on the software adapter, for comparison
    const w = weight(ctx, 'output', GGMLType.Q6_K, [G.nEmbd, G.nVocab]);
    const { workgroupSize, rowsPerWorkgroup } = matVecShape(w);
    out.push({ name: 'lm_head_split', shape: `Q6_K ${G.nEmbd}×${G.nVocab}`, bytes: w.rows * w.rowBytes + G.nEmbd * 4, launches: [await createMatVec(ctx, { w, x, y, workgroupSize, rowsPerWorkgroup })] });
  }
  for (const nKv of [512, 4096]) {
    if (!want(`attn_${nKv}`)) continue;
    const cache = createKvCache(ctx, { nCtx: nKv, nHeadKv: G.nHeadKv, headDimK: G.headDim });
    const q = f32(ctx, G.nHead * G.headDim, 'q');
    const o = createStorage(ctx, G.nHead * G.headDim * 4, 'o');
    const scratch = createStorage(ctx, attnDecodeScratchBytes(G.nHead, G.headDim, nKv), 'scratch');
    const l = await createAttnDecode(ctx, { cache, q, out: o, nHead: G.nHead, nKv, scratch });
    const kvBytes = nKv * G.nHeadKv * 2 * G.headDim * (cache.f16 ? 2 : 4);
    out.push({ name: `attn_${nKv}`, shape: `${G.nHead}/${G.nHeadKv} heads × ${G.headDim}, ${nKv} positions, ${cache.f16 ? 'f16' : 'f32'} KV`, bytes: kvBytes, launches: [l] });
  }
  return out;
}

/** One timed launch: GPU ns from timestamps (or null), and wall ms. */
function timer(ctx: GPUContext) {
  const ts = ctx.features.timestampQuery;
  const qs = ts ? ctx.device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
  const resolve = ts ? ctx.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC }) : null;
  const read = ts ? ctx.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }) : null;
  return {
    gpu: ts,
    async run(encode: (enc: GPUCommandEncoder, tw?: GPUComputePassTimestampWrites) => void): Promise<{ gpuMs: number | null; wallMs: number }> {
      const t0 = performance.now();
      const enc = ctx.device.createCommandEncoder();
      encode(enc, qs ? { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } : undefined);
      if (qs) {
        enc.resolveQuerySet(qs, 0, 2, resolve!, 0);
        enc.copyBufferToBuffer(resolve!, 0, read!, 0, 16);
      }
      ctx.queue.submit([enc.finish()]);
      if (read) {
        await read.mapAsync(GPUMapMode.READ);
        const t = new BigUint64Array(read.getMappedRange().slice(0));
        read.unmap();
        return { gpuMs: Number(t[1]! - t[0]!) / 1e6, wallMs: performance.now() - t0 };
      }
      await ctx.queue.onSubmittedWorkDone();
      return { gpuMs: null, wallMs: performance.now() - t0 };
    },
  };
}

async function measure(ctx: GPUContext, name: string, encode: (enc: GPUCommandEncoder, tw?: GPUComputePassTimestampWrites) => void): Promise<{ gpu: boolean; median: number; mean: number; sd: number; n: number; wall: number }> {
  const t = timer(ctx);
  const walls: number[] = [];
  const bench = new Bench({ time: timeMs, iterations: 5, warmupIterations: 2, warmupTime: 0 });
  bench.add(name, async () => {
    const r = await t.run(encode);
    walls.push(r.wallMs);
    return r.gpuMs !== null ? { overriddenDuration: r.gpuMs } : undefined;
  });
  await bench.run();
  const res = bench.tasks[0]!.result as { state: string; latency?: { p50: number; mean: number; sd: number; samplesCount?: number; samples?: number[] }; error?: Error };
  if (!res.latency) throw res.error ?? new Error(`${name}: no result (${res.state})`);
  walls.sort((a, b) => a - b);
  return { gpu: t.gpu, median: res.latency.p50, mean: res.latency.mean, sd: res.latency.sd, n: res.latency.samplesCount ?? walls.length, wall: walls[walls.length >> 1] ?? NaN };
}

async function main(): Promise<void> {
  const ctx = await createGPU();
  try {
    const a = ctx.adapter;
    process.stderr.write(`kernels: ${a.vendor} ${a.device} (${a.description}); scale ${scale}; timestamps ${ctx.features.timestampQuery ? 'yes' : 'no'}\n`);
    // copy bandwidth: as large as the largest weight
    const copyBytes = Math.min(Math.ceil(tensorBytes(GGMLType.Q6_K, [G.nEmbd, G.nVocab]) / 4) * 4, ctx.limits.maxBufferSize);
    const src = createStorage(ctx, copyBytes, 'copy.src');
    const dst = createStorage(ctx, copyBytes, 'copy.dst');
    const rows: Row[] = [];
    {
      // copies have no pass: time them with a timed empty... a copy between two timed passes
      const m = await measure(ctx, 'copy', (enc, tw) => {
        if (tw) enc.beginComputePass({ timestampWrites: { querySet: tw.querySet, beginningOfPassWriteIndex: tw.beginningOfPassWriteIndex } }).end();
        enc.copyBufferToBuffer(src, 0, dst, 0, copyBytes);
        if (tw) enc.beginComputePass({ timestampWrites: { querySet: tw.querySet, endOfPassWriteIndex: tw.endOfPassWriteIndex } }).end();
      });
      rows.push({ name: 'copy', shape: `copyBufferToBuffer ${(copyBytes / 1e6).toFixed(1)} MB`, bytes: 2 * copyBytes, gpu: m.gpu, medianMs: m.median, meanMs: m.mean, sdMs: m.sd, samples: m.n, gbs: (2 * copyBytes) / (m.median * 1e6), wallMs: m.wall });
    }
    for (const c of await cases(ctx)) {
      process.stderr.write(`kernels: ${c.name} ${c.shape}\n`);
      const m = await measure(ctx, c.name, (enc, tw) => {
        const pass = enc.beginComputePass(tw ? { timestampWrites: tw } : {});
        for (const l of c.launches) l.encode(pass);
        pass.end();
      });
      rows.push({ name: c.name, shape: c.shape, bytes: c.bytes, gpu: m.gpu, medianMs: m.median, meanMs: m.mean, sdMs: m.sd, samples: m.n, gbs: c.bytes / (m.median * 1e6), wallMs: m.wall });
    }
    const copy = rows[0]!.gbs;
    if (values.json) {
      process.stdout.write(JSON.stringify({ adapter: a, scale, geometry: G, copyGBs: copy, rows: rows.map((r) => ({ ...r, ofCopy: r.gbs / copy })) }, null, 2) + '\n');
      return;
    }
    const table = rows.map((r) => [
      r.name,
      r.shape,
      `${(r.bytes / 1e6).toFixed(2)} MB`,
      `${(r.medianMs * 1000).toFixed(0)} ± ${(r.sdMs * 1000).toFixed(0)}`,
      String(r.samples),
      `${(r.wallMs * 1000).toFixed(0)}`,
      r.gbs.toFixed(2),
      r.name === 'copy' ? '1.00' : (r.gbs / copy).toFixed(3),
    ]);
    process.stdout.write(
      `\nadapter: ${a.vendor} ${a.device} (${a.description}); ${rows[0]!.gpu ? 'GPU time from timestamp queries' : 'wall time (no timestamp-query)'}; scale ${scale}\n` +
        `geometry: n_embd ${G.nEmbd}, q ${G.qDim}, n_ff_exp ${G.nFf}, ${G.nExpert} experts (${G.k} used), vocab ${G.nVocab}, heads ${G.nHead}/${G.nHeadKv} × ${G.headDim}\n\n` +
        mdTable(['kernel', 'shape', 'bytes read', `${rows[0]!.gpu ? 'GPU' : 'wall'} µs (median ± sd)`, 'samples', 'wall µs (median)', 'GB/s', 'of copy BW'], table, [false, false, true, true, true, true, true, true]) +
        `\ncopy bandwidth counts bytes read + written; kernel bytes count what the kernel must read (weights of the used experts, KV cache).\n`,
    );
  } finally {
    await ctx.dispose();
  }
}

await main();
