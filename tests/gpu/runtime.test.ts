// src/runtime: the preprocessor (no GPU), and with a GPU: device creation, weight upload and
// splitting, uniforms, the pipeline cache, debug-mode error capture, device loss, dispose/exit.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GGMLType } from '../../gguf/types.js';
import { DeviceLostError, DisposedError, WebGPUUnavailableError } from '../../src/errors.js';
import { MATVEC, RMS_NORM } from '../../src/gpu/ops.js';
import { UniformBlock, createStorage, readBuffer, readF32, uploadWeight, writeBuffer, ReadbackBuffer } from '../../src/runtime/buffers.js';
import { createGPU, GPUErrorCaptured } from '../../src/runtime/device.js';
import { KernelError, kernelsDir, pipelineCache, preprocess, uniformSpec } from '../../src/runtime/pipelines.js';
import { IN_CI, openTestGPU, randomF32, rng, runChildScript } from './helpers.js';

describe('preprocessor', () => {
  const files: Record<string, string> = {
    'a.wgsl': 'A1\n#include "b.wgsl"\nA2',
    'b.wgsl': 'B\n#include "a.wgsl"',
  };
  const read = (n: string) => {
    const f = files[n];
    if (f === undefined) throw new Error(`no ${n}`);
    return f;
  };
  const pp = (src: string, defines = {}) => preprocess(src, defines, read).split('\n').filter((l) => l !== '');

  it('#if / #elif / #else / #endif, negation, nesting', () => {
    const src = ['x', '#if A', 'a', '#if !B', 'a!b', '#else', 'ab', '#endif', '#elif C', 'c', '#else', 'none', '#endif', 'y'].join('\n');
    expect(pp(src, {})).toEqual(['x', 'none', 'y']);
    expect(pp(src, { A: true })).toEqual(['x', 'a', 'a!b', 'y']);
    expect(pp(src, { A: 1, B: true })).toEqual(['x', 'a', 'ab', 'y']);
    expect(pp(src, { A: false, C: true })).toEqual(['x', 'c', 'y']);
    expect(pp(src, { A: 0, B: true, C: 0 })).toEqual(['x', 'none', 'y']);
    const or = '#if A || !B || C\nyes\n#else\nno\n#endif';
    expect(pp(or, { B: true })).toEqual(['no']);
    expect(pp(or, {})).toEqual(['yes']);
    expect(pp(or, { B: true, C: true })).toEqual(['yes']);
  });

  it('#include inserts each file once (cycles and repeats are harmless); not inside a false #if', () => {
    expect(pp('#include "a.wgsl"\n#include "b.wgsl"')).toEqual(['A1', 'B', 'A2']);
    expect(pp('#if X\n#include "nope.wgsl"\n#endif\nz')).toEqual(['z']);
  });

  it('errors name the file and line', () => {
    expect(() => preprocess('#if A\nx', {}, read, 'k.wgsl')).toThrow(/k\.wgsl:1: #if without #endif/);
    expect(() => preprocess('x\n#endif', {}, read, 'k.wgsl')).toThrow(/k\.wgsl:2: #endif without #if/);
    expect(() => preprocess('#else', {}, read)).toThrow(KernelError);
    expect(() => preprocess('#define X 1', {}, read)).toThrow(/unknown directive #define/);
    expect(() => preprocess('#if A && B\n#endif', {}, read)).toThrow(/NAME, !NAME or alternatives/);
    expect(() => preprocess('#if A ||\n#endif', {}, read)).toThrow(KernelError);
    expect(() => preprocess('#include <x>', {}, read)).toThrow(/#include needs "file"/);
  });

  it('finds kernels/ from the package root', () => {
    const dir = kernelsDir();
    for (const f of ['quant.wgsl', 'matvec.wgsl', 'matmul.wgsl', 'norm.wgsl', 'embed.wgsl', 'elementwise.wgsl']) expect(existsSync(join(dir, f)), f).toBe(true);
  });

  it('uniformSpec packs 4-byte fields and rounds the size to 16', () => {
    const u = uniformSpec('S', [['a', 'u32'], ['b', 'f32'], ['c', 'i32'], ['d', 'u32'], ['e', 'u32']]);
    expect(u.size).toBe(32);
    expect(u.fields.map((f) => f.offset)).toEqual([0, 4, 8, 12, 16]);
  });
});

const ctx = await openTestGPU();
afterAll(async () => ctx?.dispose());

describe.skipIf(!ctx)('device', () => {
  const g = ctx!;
  it('describes the adapter, features and raised limits', () => {
    expect(typeof g.adapter.description).toBe('string');
    expect(typeof g.features.f16).toBe('boolean');
    expect(typeof g.features.subgroups).toBe('boolean');
    // raised to the adapter's limits, above WebGPU's defaults wherever the adapter allows
    expect(g.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(g.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(g.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
  });

  it('an adapter name that matches nothing → WebGPUUnavailableError that says how to install a driver', async () => {
    const err = await createGPU({ adapter: 'no-such-gpu-0xdeadbeef' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebGPUUnavailableError);
    expect((err as Error).message).toMatch(/no-such-gpu-0xdeadbeef/);
    expect((err as Error).message).toMatch(/apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1/);
  });

  it('picks an adapter by a substring of its description (MOET_ADAPTER)', async () => {
    const needle = (g.adapter.device || g.adapter.description || g.adapter.vendor).slice(0, 6);
    const other = await createGPU({ adapter: needle.toUpperCase() });
    expect(other.adapter.device).toBe(g.adapter.device);
    await other.dispose();
  });
});

describe.skipIf(!ctx)('buffers', () => {
  const g = ctx!;
  it('uploadWeight keeps GGUF bytes as-is, splits along rows, pads parts to 4 bytes', async () => {
    const rows = 10;
    const cols = 256;
    const rb = 210; // Q6_K row
    const data = new Uint8Array(rows * rb).map((_, i) => (i * 37 + 11) & 255);
    const w = uploadWeight(g, { name: 'q6', type: GGMLType.Q6_K, shape: [cols, rows], data }, { maxPartBytes: 3 * rb + 4 });
    expect(w.parts.map((p) => [p.firstRow, p.nRows])).toEqual([[0, 3], [3, 3], [6, 3], [9, 1]]);
    expect(w.rowBytes).toBe(rb);
    for (const p of w.parts) {
      expect(p.buffer.size % 4).toBe(0);
      const got = new Uint8Array(await readBuffer(g, p.buffer, 0, p.buffer.size));
      expect(Buffer.from(got.subarray(0, p.byteLength)).equals(Buffer.from(data.subarray(p.firstRow * rb, (p.firstRow + p.nRows) * rb)))).toBe(true);
    }
  });

  it('3-D tensors split on expert boundaries; whole tensor in one part when it fits', () => {
    const data = new Uint8Array(34 * 4 * 5 * 3); // Q8_0 [128, 5, 3]
    const split = uploadWeight(g, { name: 'exps', type: GGMLType.Q8_0, shape: [128, 5, 3], data }, { maxPartBytes: 34 * 4 * 7 + 4 });
    expect(split.parts.map((p) => [p.firstRow, p.nRows])).toEqual([[0, 5], [5, 5], [10, 5]]);
    const whole = uploadWeight(g, { name: 'exps', type: GGMLType.Q8_0, shape: [128, 5, 3], data });
    expect(whole.parts.length).toBe(1);
    expect(() => uploadWeight(g, { name: 'x', type: GGMLType.Q2_K, shape: [256, 1], data: new Uint8Array(84) })).toThrow(/no GPU kernel/);
  });

  it('UniformBlock writes typed fields; ReadbackBuffer is reusable', async () => {
    const u = new UniformBlock(g, RMS_NORM.uniform!, { n: 7, eps: 0.5 });
    u.set('rows', 3);
    expect([u.get('n'), u.get('rows'), u.get('eps')]).toEqual([7, 3, 0.5]);
    expect(() => u.set('n', -1)).toThrow(/not a u32/);
    expect(() => u.set('nope', 1)).toThrow(/no field/);
    u.flush();
    const buf = createStorage(g, 64);
    const enc = g.device.createCommandEncoder();
    enc.copyBufferToBuffer(u.buffer, 0, buf, 0, 32);
    g.submit([enc.finish()]);
    const rbuf = new ReadbackBuffer(g, 64);
    const words = new Uint32Array(await rbuf.read(buf, 0, 32));
    expect([words[0], words[1], new Float32Array(words.buffer)[6]]).toEqual([7, 3, 0.5]);
    const x = randomF32(rng(1), 16);
    writeBuffer(g, buf, x);
    expect(new Float32Array(await rbuf.read(buf, 0, 64))).toEqual(x);
    rbuf.destroy();
    u.destroy();
  });
});

describe.skipIf(!ctx)('pipelines', () => {
  const g = ctx!;
  it('caches by (kernel, defines, constants)', async () => {
    const cache = pipelineCache(g);
    const a = await cache.get(MATVEC, { Q8_0: true }, { WG: 64, ROWS: 2 });
    const b = await cache.get(MATVEC, { Q8_0: true }, { ROWS: 2, WG: 64 });
    const c = await cache.get(MATVEC, { Q8_0: true }, { WG: 32, ROWS: 2 });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('a WGSL error becomes a KernelError with the compiler message and the source line', async () => {
    // no weight-type define: dq8 and UNIT are undefined
    const err = await pipelineCache(g).get(MATVEC, {}, { WG: 64 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as Error).message).toMatch(/matvec\.wgsl:main/);
    expect((err as Error).message).toMatch(/UNIT|dq8/);
    expect(await pipelineCache(g).get(MATVEC, { Q8_0: true }, { NOPE: 1 }).catch((e: unknown) => e)).toBeInstanceOf(KernelError);
  });

  it('debug mode: WebGPU validation errors are thrown, not lost', async () => {
    expect(g.debug).toBe(true);
    const err = await g.scoped('bad buffer', () => g.device.createBuffer({ size: 4, usage: 0 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GPUErrorCaptured);
    // an invalid dispatch inside a submit: reported by the next checkErrors()
    const pipeline = await pipelineCache(g).get(RMS_NORM, {}, { WG: 32 });
    const enc = g.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.dispatchWorkgroups(1); // no bind group set: validation error
    pass.end();
    g.submit([enc.finish()]);
    await expect(g.checkErrors()).rejects.toThrow(GPUErrorCaptured);
    await g.checkErrors(); // cleared
  });
});

describe.skipIf(!ctx)('lifetime', () => {
  it('device loss rejects pending readbacks and later calls with DeviceLostError', async () => {
    const g = await createGPU();
    const buf = createStorage(g, 64);
    const pending = readF32(g, buf, 16);
    g.device.destroy(); // what a driver reset looks like from here
    await expect(pending).rejects.toBeInstanceOf(DeviceLostError);
    expect(g.isLost).toBe(true);
    expect(() => createStorage(g, 4)).toThrow(DeviceLostError);
    await g.dispose();
  });

  it('dispose() frees buffers, rejects pending work with DisposedError, is idempotent', async () => {
    const g = await createGPU();
    createStorage(g, 1024);
    expect(g.allocatedBytes).toBeGreaterThanOrEqual(1024);
    const buf = createStorage(g, 64);
    const pending = readF32(g, buf, 16);
    await g.dispose();
    await expect(pending).rejects.toBeInstanceOf(DisposedError);
    expect(g.allocatedBytes).toBe(0);
    expect(() => createStorage(g, 4)).toThrow(DisposedError);
    await g.dispose();
  });

  it('a process that creates and disposes a context exits by itself', async () => {
    const started = Date.now();
    // generous: tsx start-up on a loaded 2-core CI machine; a hang would never end
    const { code, out, err: errOut } = await runChildScript('dispose-child.ts', [], IN_CI ? 60_000 : 30_000);
    expect(code, `child did not exit by itself (stderr: ${errOut.slice(-500)})`).toBe(0);
    expect(out).toContain('result 11,22,33 disposed');
    console.log(`[runtime] dispose child exited after ${Date.now() - started} ms`);
  });
});
