// Launcher of kernels/act_quant.wgsl: llama.cpp's activation round trip on the GPU (numerics
// 'llamacpp', src/backend.ts). Before a product with a quantized / F16 / BF16 weight, the activation
// rows are rounded the way llama.cpp's CPU backend rounds them — through the weight type's
// vec_dot_type (Q8_K, Q8_0, Q8_1, f16, bf16) — into a scratch buffer the product then reads. The
// values are those of gguf/quants.ts activationRoundTrip, bit for bit.
import { vecDotType } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, linearGrid, uniformSpec, type KernelSpec, type Launch } from '../runtime/pipelines.js';
import { buildLaunch, checkWg, need, unref, type BufferRef } from './steps.js';

const BINDINGS = [
  { binding: 0, name: 'P', kind: 'uniform' },
  { binding: 1, name: 'x', kind: 'read-only-storage' },
  { binding: 2, name: 'out', kind: 'storage' },
] as const;
const PARAMS = uniformSpec('ActQuantParams', [
  ['n', 'u32'],
  ['rows', 'u32'],
  ['x_offset', 'u32'],
  ['x_stride', 'u32'],
  ['out_offset', 'u32'],
  ['out_stride', 'u32'],
  ['_pad0', 'u32'],
  ['_pad1', 'u32'],
]);

export const ACT_Q8_K: KernelSpec = { file: 'act_quant.wgsl', entryPoint: 'q8_k', bindings: BINDINGS, uniform: PARAMS, overrides: ['WG'] };
export const ACT_Q8_0: KernelSpec = { ...ACT_Q8_K, entryPoint: 'q8_0' };
export const ACT_F16: KernelSpec = { ...ACT_Q8_K, entryPoint: 'to_f16' };
export const ACT_BF16: KernelSpec = { ...ACT_Q8_K, entryPoint: 'to_bf16' };

/** The specs of this file, for binding checks. */
export const ACT_QUANT_KERNEL_SPECS: Readonly<Record<string, KernelSpec>> = { ACT_Q8_K, ACT_Q8_0, ACT_F16, ACT_BF16 };

/** What an activation round trip rounds to: a vec_dot_type (Q8_1 gives Q8_0's values). */
export type ActQuantType = GGMLType.Q8_K | GGMLType.Q8_0 | GGMLType.Q8_1 | GGMLType.F16 | GGMLType.BF16;

/**
 * The round trip a product with weights of `weightType` needs under numerics 'llamacpp', or null
 * for F32 weights (llama.cpp multiplies those exactly).
 */
export function actQuantFor(weightType: GGMLType): ActQuantType | null {
  const t = vecDotType(weightType);
  return t === GGMLType.F32 ? null : (t as ActQuantType);
}

/**
 * A step of a multi-dispatch launch (src/gpu/steps.ts) rounding `rows` rows of n values (contiguous
 * rows, stride n) from x into out; `groups(rows)` gives its grid for another row count (the
 * uniform's `rows` must be set too). For launchers that fuse the round trip between two kernels.
 */
export function actQuantStep(type: ActQuantType, x: { buffer: GPUBuffer; offset: number }, out: GPUBuffer, n: number, rows: number, ctx: GPUContext) {
  const block = actQuantBlock(type);
  if (!(Number.isInteger(n) && n > 0 && n % block === 0)) throw new RangeError(`act_quant: row length ${n} is not a positive multiple of ${block}`);
  const spec = type === GGMLType.Q8_K ? ACT_Q8_K : block === 32 ? ACT_Q8_0 : type === GGMLType.F16 ? ACT_F16 : ACT_BF16;
  const wg = block === 256 ? 64 : block === 32 ? 32 : 256;
  const groups = (r: number) => linearGrid(ctx, block === 1 ? Math.ceil((r * n) / wg) : (r * n) / block);
  return {
    plan: {
      spec,
      constants: { WG: wg },
      uniform: { n, rows, x_offset: x.offset, x_stride: n, out_offset: 0, out_stride: n, _pad0: 0, _pad1: 0 },
      buffers: { x: x.buffer, out },
      workgroups: groups(rows),
    },
    groups,
  };
}

/** Values per block of a round trip (the row length must be a multiple). */
export function actQuantBlock(type: ActQuantType): number {
  return type === GGMLType.Q8_K ? 256 : type === GGMLType.Q8_0 || type === GGMLType.Q8_1 ? 32 : 1;
}

export type { BufferRef };

export interface ActQuantArgs {
  type: ActQuantType;
  /** f32 [rows, xStride] */
  x: BufferRef;
  /** f32 [rows, outStride]; must not overlap x */
  out: BufferRef;
  /** values per row: a multiple of the block (256 Q8_K, 32 Q8_0 / Q8_1) */
  n: number;
  /** rows (setCount changes it); default 1 */
  rows?: number;
  /** default n */
  xStride?: number;
  /** default n */
  outStride?: number;
  /** threads per block for Q8_K (32..256, a power of two; default 64); per workgroup for F16/BF16 (default 256) */
  workgroupSize?: number;
}

/**
 * out = the activation round trip of x, row by row (one workgroup per block for Q8_K / Q8_0 / Q8_1,
 * one thread per value for F16 / BF16). setCount(rows) changes the number of rows.
 * @throws RangeError for a row length that is not a multiple of the block, or buffers too small
 * @throws KernelError for an unusable workgroup size
 */
export async function createActQuant(ctx: GPUContext, a: ActQuantArgs): Promise<Launch> {
  const block = actQuantBlock(a.type);
  const label = `act_quant ${ggmlTypeName(a.type)}`;
  if (!(Number.isInteger(a.n) && a.n > 0 && a.n % block === 0)) throw new RangeError(`${label}: row length ${a.n} is not a positive multiple of ${block}`);
  const spec = a.type === GGMLType.Q8_K ? ACT_Q8_K : block === 32 ? ACT_Q8_0 : a.type === GGMLType.F16 ? ACT_F16 : ACT_BF16;
  const wg = block === 32 ? 32 : a.workgroupSize ?? (block === 256 ? 64 : 256);
  checkWg(label, wg, ctx, 32, block === 256 ? 256 : undefined);
  if (block === 32 && a.workgroupSize !== undefined && a.workgroupSize !== 32) throw new KernelError(`${label}: the workgroup is one block of 32`);
  const x = unref(a.x);
  const out = unref(a.out);
  const xStride = a.xStride ?? a.n;
  const outStride = a.outStride ?? a.n;
  const check = (rows: number) => {
    if (!(Number.isInteger(rows) && rows >= 0)) throw new RangeError(`${label}: row count ${rows} is not a non-negative integer`);
    if (rows === 0) return;
    need(`${label} x`, x, (rows - 1) * xStride + a.n);
    need(`${label} out`, out, (rows - 1) * outStride + a.n);
  };
  const groups = (rows: number) => linearGrid(ctx, block === 1 ? Math.ceil((rows * a.n) / wg) : (rows * a.n) / block);
  const rows = a.rows ?? 1;
  check(rows);
  const uniform = { n: a.n, rows, x_offset: x.offset, x_stride: xStride, out_offset: out.offset, out_stride: outStride, _pad0: 0, _pad1: 0 };
  return buildLaunch(ctx, label, spec, {}, { WG: wg }, [{ uniform, buffers: { x: x.buffer, out: out.buffer }, workgroups: groups(rows) }], { check, field: 'rows', workgroups: groups });
}
