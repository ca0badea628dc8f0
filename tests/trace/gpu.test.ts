// kernels/moe_trace.wgsl + src/trace/gpu.ts: per-layer copies of the router output into the trace
// buffer at [token, layer] slots, several batches (token0 offsets), one readback; probabilities vs
// the CPU softmax (src/cpu/ops.ts moeRoute). Skips locally without an adapter, fails in CI.
import { afterAll, describe, expect, it } from 'vitest';
import { moeRoute } from '../../src/cpu/ops.js';
import { createStorage, createStorageFrom, writeBuffer } from '../../src/runtime/buffers.js';
import { kernelSource, Launch, runLaunches } from '../../src/runtime/pipelines.js';
import { createRoutingTrace, GpuRoutingTracer, MOE_TRACE, splitRecords } from '../../src/trace/gpu.js';
import { RoutingTraceRecorder } from '../../src/trace/recorder.js';
import { expectClose, openTestGPU, randomF32, rng } from '../gpu/helpers.js';
import { WgslReflect } from '../gpu/reflect.js';

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

interface LayerRoute {
  logits: Float32Array; // [n, nExpert]
  ids: Uint32Array; // [n, k]
  weights: Float32Array; // [n, k]
  probs: Float32Array; // [n, nExpert]
}

function route(logits: Float32Array, nExpert: number, k: number): LayerRoute {
  const n = logits.length / nExpert;
  const ids = new Uint32Array(n * k);
  const weights = new Float32Array(n * k);
  const probs = new Float32Array(n * nExpert);
  for (let t = 0; t < n; t++) {
    const r = moeRoute(logits.subarray(t * nExpert, (t + 1) * nExpert), k, true);
    ids.set(r.ids, t * k);
    weights.set(r.weights, t * k);
    probs.set(r.probs, t * nExpert);
  }
  return { logits, ids, weights, probs };
}

describe.skipIf(!ctx)('moe_trace', () => {
  const g = ctx!;

  for (const [nLayer, nExpert, k, probs] of [
    [3, 10, 3, true],
    [2, 128, 8, true],
    [4, 60, 4, false],
  ] as [number, number, number, boolean][]) {
    it(`${nLayer} layers, ${k} of ${nExpert} experts, probs ${probs}: two batches, one readback`, async () => {
      const r = rng(nExpert * 31 + k);
      const batches = [5, 3];
      const total = batches.reduce((a, b) => a + b, 0);
      // per layer: the router output of every token of the call (CPU reference)
      const layers = Array.from({ length: nLayer }, () => route(randomF32(r, total * nExpert, -3, 3), nExpert, k));
      // router buffers sized for the biggest batch, with offsets (as in an activation arena)
      const maxB = Math.max(...batches);
      const off = { logits: 7, ids: 3, weights: 5 };
      const bufs = layers.map(() => ({
        logits: createStorage(g, (off.logits + maxB * nExpert) * 4),
        ids: createStorage(g, (off.ids + maxB * k) * 4),
        weights: createStorage(g, (off.weights + maxB * k) * 4),
      }));
      const trace = await createRoutingTrace(g, {
        nLayer, nExpert, k, maxTokens: 16, probs,
        router: bufs.map((b) => ({ logits: { buffer: b.logits, offset: off.logits }, ids: { buffer: b.ids, offset: off.ids }, weights: { buffer: b.weights, offset: off.weights } })),
      });
      let t0 = 0;
      for (const n of batches) {
        for (const [l, L] of layers.entries()) {
          writeBuffer(g, bufs[l]!.logits, L.logits.subarray(t0 * nExpert, (t0 + n) * nExpert), off.logits * 4);
          writeBuffer(g, bufs[l]!.ids, L.ids.subarray(t0 * k, (t0 + n) * k), off.ids * 4);
          writeBuffer(g, bufs[l]!.weights, L.weights.subarray(t0 * k, (t0 + n) * k), off.weights * 4);
        }
        trace.setBatch(n, t0);
        runLaunches(g, Array.from({ length: nLayer }, (_, l) => trace.layer(l)));
        t0 += n;
      }
      const got = await trace.read(total);
      expect(got.ids).toHaveLength(total * nLayer * k);
      for (let t = 0; t < total; t++) {
        for (let l = 0; l < nLayer; l++) {
          const o = (t * nLayer + l) * k;
          const L = layers[l]!;
          expectClose(`ids t${t} l${l}`, got.ids.subarray(o, o + k), L.ids.subarray(t * k, (t + 1) * k), 0);
          expectClose(`weights t${t} l${l}`, got.weights.subarray(o, o + k), L.weights.subarray(t * k, (t + 1) * k), 0);
          if (probs) {
            const p = got.probs!.subarray((t * nLayer + l) * nExpert, (t * nLayer + l + 1) * nExpert);
            expectClose(`probs t${t} l${l}`, p, L.probs.subarray(t * nExpert, (t + 1) * nExpert), 2e-7, 2e-6);
          }
        }
      }
      if (!probs) expect(got.probs).toBeUndefined();
      // the record layout: 2k words per layer (+ nExpert with probs) per token
      expect(trace.rec).toBe(nLayer * (2 * k + (probs ? nExpert : 0)));
      expect(trace.bytes).toBe(2 * 16 * trace.rec * 4);
      trace.dispose();
    });
  }

  it('one router buffer shared by every layer: each copy runs right after its router, in one pass', async () => {
    const [nLayer, nExpert, k, n] = [3, 12, 2, 4];
    const r = rng(9);
    const layers = Array.from({ length: nLayer }, () => route(randomF32(r, n * nExpert, -2, 2), nExpert, k));
    const logits = createStorage(g, n * nExpert * 4);
    const ids = createStorage(g, n * k * 4);
    const weights = createStorage(g, n * k * 4);
    // stand-in for a layer's router: buffer-to-buffer copies from per-layer sources (a copy is
    // ordered with the dispatches around it, like the router kernel writing the shared buffers)
    const src = layers.map((L) => ({ logits: createStorageFrom(g, L.logits), ids: createStorageFrom(g, L.ids), weights: createStorageFrom(g, L.weights) }));
    const trace = await createRoutingTrace(g, { nLayer, nExpert, k, maxTokens: n, probs: true, router: { logits, ids, weights } });
    trace.setBatch(n);
    const enc = g.device.createCommandEncoder();
    for (let l = 0; l < nLayer; l++) {
      enc.copyBufferToBuffer(src[l]!.logits, 0, logits, 0, n * nExpert * 4);
      enc.copyBufferToBuffer(src[l]!.ids, 0, ids, 0, n * k * 4);
      enc.copyBufferToBuffer(src[l]!.weights, 0, weights, 0, n * k * 4);
      const pass = enc.beginComputePass();
      (trace.layer(l) as Launch).encode(pass);
      pass.end();
    }
    g.submit([enc.finish()]);
    const got = await trace.read(n);
    for (let l = 0; l < nLayer; l++) {
      for (let t = 0; t < n; t++) {
        const o = (t * nLayer + l) * k;
        expectClose(`ids t${t} l${l}`, got.ids.subarray(o, o + k), layers[l]!.ids.subarray(t * k, (t + 1) * k), 0);
      }
    }
    trace.dispose();
  });

  for (const maxBytes of [undefined, 3 * 2 * (2 * 3 + 10) * 4]) {
    it(`GpuRoutingTracer: nothing allocated before a traced call; batches → sink (${maxBytes ? 'small buffer: several readbacks' : 'one readback'})`, async () => {
      const [nLayer, nExpert, k] = [2, 10, 3];
      const shape = { nLayer, nExpert, k };
      const r = rng(77);
      const batches = [3, 2, 3];
      const total = 8;
      const layers = Array.from({ length: nLayer }, () => route(randomF32(r, total * nExpert, -3, 3), nExpert, k));
      const bufs = layers.map(() => ({ logits: createStorage(g, 3 * nExpert * 4), ids: createStorage(g, 3 * k * 4), weights: createStorage(g, 3 * k * 4) }));
      const tracer = new GpuRoutingTracer(g, shape, bufs, maxBytes);
      expect(tracer.bytes).toBe(0);
      expect(tracer.active).toBe(false);
      const rec = new RoutingTraceRecorder(shape, true);
      let adds = 0;
      const sink = { probs: true, add: (b: Parameters<RoutingTraceRecorder['add']>[0]) => (adds++, rec.add(b)) };
      const tokens = Array.from({ length: total }, (_, i) => 100 + i);
      await tracer.begin(sink, tokens, 40);
      expect(tracer.bytes).toBeGreaterThan(0);
      let from = 0;
      for (const n of batches) {
        for (const [l, L] of layers.entries()) {
          writeBuffer(g, bufs[l]!.logits, L.logits.subarray(from * nExpert, (from + n) * nExpert));
          writeBuffer(g, bufs[l]!.ids, L.ids.subarray(from * k, (from + n) * k));
          writeBuffer(g, bufs[l]!.weights, L.weights.subarray(from * k, (from + n) * k));
        }
        await tracer.batch(n, from);
        const enc = g.device.createCommandEncoder();
        const pass = enc.beginComputePass();
        for (let l = 0; l < nLayer; l++) tracer.encodeLayer(pass, l);
        pass.end();
        g.submit([enc.finish()]);
        from += n;
      }
      await tracer.end();
      expect(adds).toBe(maxBytes ? 3 : 1);
      const t = rec.trace();
      expect(t.start).toBe(40);
      expect(t.tokens).toEqual(tokens);
      for (let tk = 0; tk < total; tk++) {
        for (let l = 0; l < nLayer; l++) {
          const o = (tk * nLayer + l) * k;
          expectClose(`ids t${tk} l${l}`, t.ids.subarray(o, o + k), layers[l]!.ids.subarray(tk * k, (tk + 1) * k), 0);
          expectClose(`w t${tk} l${l}`, t.weights.subarray(o, o + k), layers[l]!.weights.subarray(tk * k, (tk + 1) * k), 0);
          expectClose(`p t${tk} l${l}`, t.probs!.subarray((tk * nLayer + l) * nExpert, (tk * nLayer + l + 1) * nExpert), layers[l]!.probs.subarray(tk * nExpert, (tk + 1) * nExpert), 2e-7, 2e-6);
        }
      }
      // outside a call encodeLayer does nothing and batch() refuses
      expect(tracer.active).toBe(false);
      await expect(tracer.batch(1, 0)).rejects.toThrow(/outside/);
      // a call without probs re-allocates a smaller buffer
      const before = tracer.bytes;
      await tracer.begin({ probs: false, add: () => {} }, [1], 0);
      if (maxBytes) expect(tracer.bytes).toBe(before); // both buffers capped at maxBytes
      else expect(tracer.bytes).toBeLessThan(before);
      tracer.cancel();
      tracer.dispose();
      expect(tracer.bytes).toBe(0);
    });
  }

  it('capacity and layer checks; readback of zero tokens', async () => {
    const b = createStorage(g, 64 * 4);
    const trace = await createRoutingTrace(g, { nLayer: 2, nExpert: 8, k: 2, maxTokens: 4, probs: false, router: { logits: b, ids: b, weights: b } });
    expect(() => trace.setBatch(3, 2)).toThrow(/capacity of 4/);
    expect(() => trace.setBatch(0)).toThrow(RangeError);
    expect(() => trace.layer(2)).toThrow(/layer 2/);
    await expect(trace.read(5)).rejects.toThrow(RangeError);
    expect((await trace.read(0)).ids).toHaveLength(0);
    trace.dispose();
    // router buffers too small for a batch
    const small = createStorage(g, 4 * 4);
    const t2 = await createRoutingTrace(g, { nLayer: 1, nExpert: 8, k: 2, maxTokens: 8, probs: false, router: { logits: small, ids: small, weights: small } });
    expect(() => t2.setBatch(3)).toThrow(/ids: needs 6 elements/);
    t2.dispose();
  });
});

describe('MOE_TRACE spec matches moe_trace.wgsl (wgsl_reflect)', () => {
  it('bindings, uniform layout, overrides', () => {
    const reflect = new WgslReflect(kernelSource(MOE_TRACE));
    const entry = reflect.entry.compute.find((f) => f.name === MOE_TRACE.entryPoint)!;
    const kind = (r: { resourceType: number; access: string }) => (r.resourceType === 0 ? 'uniform' : r.access === 'read_write' ? 'storage' : 'read-only-storage');
    expect(entry.resources.map((r) => ({ binding: r.binding, name: r.name, kind: kind(r) })).sort((a, b) => a.binding - b.binding)).toEqual(
      MOE_TRACE.bindings.map((b) => ({ binding: b.binding, name: b.name, kind: b.kind })),
    );
    const uni = entry.resources.find((r) => r.resourceType === 0)!;
    expect(uni.size).toBe(MOE_TRACE.uniform!.size);
    expect((uni.members ?? []).map((m) => [m.name, m.type.name, m.offset])).toEqual(MOE_TRACE.uniform!.fields.map((f) => [f.name, f.type, f.offset]));
    expect(reflect.overrides.map((o) => o.name).sort()).toEqual([...MOE_TRACE.overrides!].sort());
  });
});

describe('splitRecords', () => {
  it('splits token records into ids / weights / probs', () => {
    // 2 tokens, 1 layer, k = 1, 2 experts: record = [id, w, p0, p1]
    const f = new Float32Array([0, 0.5, 0.25, 0.75, 0, 1, 0.9, 0.1]);
    const words = new Uint32Array(f.buffer);
    words[0] = 1;
    words[4] = 0;
    const s = splitRecords(words, 2, { nLayer: 1, k: 1, nExpert: 2, probs: true });
    expect(Array.from(s.ids)).toEqual([1, 0]);
    expect(Array.from(s.weights)).toEqual([0.5, 1]);
    expect(Array.from(s.probs!)).toEqual([0.25, 0.75, 0.8999999761581421, 0.10000000149011612]);
  });
});
