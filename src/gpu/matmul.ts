// Launcher of kernels/matmul.wgsl: Y = W·X for a batch of tokens (prefill's dense products),
// dequantizing W tile by tile.
import { buildLaunch, checkWeight, need, TYPE_VARIANTS, typeDefine, unref, type BufferRef, type DispatchPlan } from './steps.js';
import { partBinding, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, Launch, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';

export const MATMUL: KernelSpec = {
  file: 'matmul.wgsl',
  entryPoint: 'main',
  variants: TYPE_VARIANTS,
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'w', kind: 'read-only-storage' },
    { binding: 2, name: 'x', kind: 'read-only-storage' },
    { binding: 3, name: 'y', kind: 'storage' },
  ],
  uniform: uniformSpec('MatMulParams', [
    ['cols', 'u32'],
    ['rows', 'u32'],
    ['row_bytes', 'u32'],
    ['row0', 'u32'],
    ['n_tokens', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['y_offset', 'u32'],
    ['y_stride', 'u32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
    ['_pad2', 'u32'],
  ]),
  overrides: ['WG_M', 'WG_N', 'ACCUMULATE'],
};

export interface MatMulArgs {
  w: WeightTensor;
  /** f32 [nTokens, xStride] */
  x: BufferRef;
  /** f32 [nTokens, yStride] */
  y: BufferRef;
  nTokens: number;
  xStride?: number;
  yStride?: number;
  accumulate?: boolean;
  /** threads along rows / tokens (overrides WG_M, WG_N), default 16 × 8: a 64 × 32 tile */
  wgM?: number;
  wgN?: number;
}

/** Y = W·X (or Y += W·X) for a batch of tokens (prefill). setCount(n) sets nTokens. */
export async function createMatMul(ctx: GPUContext, a: MatMulArgs): Promise<Launch> {
  const { w } = a;
  checkWeight('matmul', w);
  const wgM = a.wgM ?? 16;
  const wgN = a.wgN ?? 8;
  if (!(wgM >= 1 && wgN >= 1 && wgM * wgN <= ctx.limits.maxComputeInvocationsPerWorkgroup)) throw new KernelError(`matmul: bad tile ${wgM}×${wgN}`);
  const TM = wgM * 4;
  const TN = wgN * 4;
  const x = unref(a.x);
  const y = unref(a.y);
  const xStride = a.xStride ?? w.cols;
  const yStride = a.yStride ?? w.rows;
  const check = (n: number) => {
    need('matmul x', x, (n - 1) * xStride + w.cols);
    need('matmul y', y, (n - 1) * yStride + w.rows);
  };
  check(a.nTokens);
  const plans: DispatchPlan[] = w.parts.map((p) => ({
    uniform: {
      cols: w.cols,
      rows: p.nRows,
      row_bytes: w.rowBytes,
      row0: p.firstRow,
      n_tokens: a.nTokens,
      x_offset: x.offset,
      x_stride: xStride,
      y_offset: y.offset,
      y_stride: yStride,
    },
    buffers: { w: partBinding(p), x: x.buffer, y: y.buffer },
    workgroups: [Math.ceil(p.nRows / TM), Math.ceil(a.nTokens / TN), 1],
  }));
  return buildLaunch(ctx, `matmul ${w.name}`, MATMUL, typeDefine(w.type), { WG_M: wgM, WG_N: wgN, ACCUMULATE: !!a.accumulate }, plans, {
    check,
    field: 'n_tokens',
    workgroups: (n, [x]) => [x, Math.ceil(n / TN), 1],
  });
}
