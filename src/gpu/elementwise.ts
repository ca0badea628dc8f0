// Launchers of kernels/elementwise.wgsl: out = a + b (createAdd, with a broadcast bias row) and
// SwiGLU (createSwiglu), each also in place.
import { buildLaunch, checkWg, need, unref, type BufferRef, type DispatchPlan } from './steps.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, linearGrid, Launch, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';

const EW_PARAMS = uniformSpec('EwParams', [
  ['n', 'u32'],
  ['a_offset', 'u32'],
  ['b_offset', 'u32'],
  ['out_offset', 'u32'],
  ['b_width', 'u32'],
  ['_pad0', 'u32'],
  ['_pad1', 'u32'],
  ['_pad2', 'u32'],
]);
const EW_BINDINGS = [
  { binding: 0, name: 'P', kind: 'uniform' },
  { binding: 1, name: 'a', kind: 'read-only-storage' },
  { binding: 2, name: 'b', kind: 'read-only-storage' },
  { binding: 3, name: 'out', kind: 'storage' },
] as const;
const EW_INPLACE_BINDINGS = EW_BINDINGS.filter((b) => b.name !== 'a');

export const ADD: KernelSpec = { file: 'elementwise.wgsl', entryPoint: 'add', bindings: EW_BINDINGS, uniform: EW_PARAMS, overrides: ['WG'] };
export const ADD_INPLACE: KernelSpec = { ...ADD, defines: { INPLACE: true }, bindings: EW_INPLACE_BINDINGS };
export const SWIGLU: KernelSpec = { file: 'elementwise.wgsl', entryPoint: 'swiglu', bindings: EW_BINDINGS, uniform: EW_PARAMS, overrides: ['WG'] };
export const SWIGLU_INPLACE: KernelSpec = { ...SWIGLU, defines: { INPLACE: true }, bindings: EW_INPLACE_BINDINGS };

export interface ElementwiseArgs {
  /** left operand; omit for the in-place form (out is read and written) */
  a?: BufferRef;
  b: BufferRef;
  /** must not overlap a or b */
  out: BufferRef;
  n: number;
  /** add only: b is one row of bWidth values broadcast over out's rows (a bias); default 0 = b has n values */
  bWidth?: number;
  workgroupSize?: number;
}

async function createElementwise(ctx: GPUContext, kind: 'add' | 'swiglu', e: ElementwiseArgs): Promise<Launch> {
  const wg = e.workgroupSize ?? 256;
  checkWg(kind, wg, ctx);
  const inplace = e.a === undefined;
  const spec = kind === 'add' ? (inplace ? ADD_INPLACE : ADD) : inplace ? SWIGLU_INPLACE : SWIGLU;
  const a = e.a ? unref(e.a) : undefined;
  const b = unref(e.b);
  const out = unref(e.out);
  const bWidth = e.bWidth ?? 0;
  if (bWidth && kind !== 'add') throw new KernelError('swiglu: bWidth is for add only');
  const check = (n: number) => {
    if (a) need(`${kind} a`, a, n);
    need(`${kind} b`, b, bWidth || n);
    need(`${kind} out`, out, n);
  };
  check(e.n);
  const buffers: Record<string, GPUBuffer> = { b: b.buffer, out: out.buffer };
  if (a) buffers.a = a.buffer;
  const plan: DispatchPlan = {
    uniform: { n: e.n, a_offset: a?.offset ?? 0, b_offset: b.offset, out_offset: out.offset, b_width: bWidth },
    buffers,
    workgroups: linearGrid(ctx, Math.ceil(e.n / wg)),
  };
  return buildLaunch(ctx, kind, spec, {}, { WG: wg }, [plan], { check, field: 'n', workgroups: (n) => linearGrid(ctx, Math.ceil(n / wg)) });
}

/** out = a + b, or out += b without `a`. setCount(n) sets the element count. */
export function createAdd(ctx: GPUContext, a: ElementwiseArgs): Promise<Launch> {
  return createElementwise(ctx, 'add', a);
}

/** out = silu(a) · b (SwiGLU: a = gate, b = up), or out = silu(out) · b without `a`. */
export function createSwiglu(ctx: GPUContext, a: ElementwiseArgs): Promise<Launch> {
  return createElementwise(ctx, 'swiglu', a);
}
