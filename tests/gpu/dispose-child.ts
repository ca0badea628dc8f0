// Child process of runtime.test.ts: opens a GPU context, runs one kernel, reads back, disposes,
// and must then exit by itself (nothing of Dawn keeping the event loop alive).
import { createAdd } from '../../src/gpu/ops.js';
import { createStorage, createStorageFrom, readF32 } from '../../src/runtime/buffers.js';
import { createGPU } from '../../src/runtime/device.js';
import { runLaunches } from '../../src/runtime/pipelines.js';

const ctx = await createGPU();
const a = createStorageFrom(ctx, new Float32Array([1, 2, 3]));
const b = createStorageFrom(ctx, new Float32Array([10, 20, 30]));
const out = createStorage(ctx, 12);
runLaunches(ctx, [await createAdd(ctx, { a, b, out, n: 3 })]);
const y = await readF32(ctx, out, 3);
await ctx.dispose();
console.log(`result ${Array.from(y).join(',')} disposed`);
