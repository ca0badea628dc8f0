// TypeScript launchers of the dense kernels (kernels/*.wgsl). Each `createX(ctx, args)` compiles
// (or reuses) the pipeline, makes the uniform buffers and bind groups once, and returns a Launch:
// `launch.encode(pass)` records it, `launch.setCount(n)` changes the batch size, nothing is
// allocated per step. Each kernel's bindings are declared here as a KernelSpec, which builds the
// pipeline layout and which tests/gpu/bindings.test.ts checks against the WGSL.
//
// Buffers are bound whole; element offsets and strides (in f32 / u32 elements) go in the uniform,
// so activations can live anywhere in a shared arena buffer.
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { UnsupportedQuantError } from '../errors.js';
import { actQuantBlock, actQuantFor, type ActQuantType } from './actquant.js';
import { checkPositions, kvDefines, KvWriteLaunch, type KvCache } from './attention.js';
import { buildSteps } from './steps.js';
import { bindingResource, KERNEL_TYPES, partBinding, UniformBlock, type BindingBuffer, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import {
  chainLaunches,
  grid2d,
  KernelError,
  Launch,
  pipelineCache,
  uniformSpec,
  type Constants,
  type Defines,
  type Dispatch,
  type KernelSpec,
} from '../runtime/pipelines.js';

// ------------------------------------------------------------------------------------------------
// Kernel specs (bindings of @group(0) and uniform layouts, as in the WGSL)
// ------------------------------------------------------------------------------------------------

/** One define per weight type, named as ggml names it (F32, Q4_K …): what quant.wgsl switches on. */
export const TYPE_VARIANTS: readonly Defines[] = KERNEL_TYPES.map((t) => ({ [ggmlTypeName(t)]: true }));
const SUBGROUP_VARIANTS: readonly Defines[] = TYPE_VARIANTS.flatMap((d) => [d, { ...d, SUBGROUPS: true }]);

const MATVEC_PARAMS = uniformSpec('MatVecParams', [
  ['cols', 'u32'],
  ['rows', 'u32'],
  ['row_bytes', 'u32'],
  ['row0', 'u32'],
  ['x_offset', 'u32'],
  ['x_stride', 'u32'],
  ['y_offset', 'u32'],
  ['y_stride', 'u32'],
  ['n_wg', 'u32'],
  ['expert_first', 'u32'],
  ['expert_count', 'u32'],
  ['ids_offset', 'u32'],
]);

export const MATVEC: KernelSpec = {
  file: 'matvec.wgsl',
  entryPoint: 'main',
  variants: SUBGROUP_VARIANTS,
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'w', kind: 'read-only-storage' },
    { binding: 2, name: 'x', kind: 'read-only-storage' },
    { binding: 3, name: 'y', kind: 'storage' },
  ],
  uniform: MATVEC_PARAMS,
  overrides: ['WG', 'ROWS', 'ACCUMULATE'],
};

/** matvec.wgsl main_rows: one thread per row (software adapters, MatVecArgs.software). */
export const MATVEC_ROWS: KernelSpec = { ...MATVEC, entryPoint: 'main_rows', variants: TYPE_VARIANTS };

/** The MoE expert matvec (ggml's mul_mat_vec_id): matvec.wgsl with MOE. */
export const MATVEC_ID: KernelSpec = {
  ...MATVEC,
  defines: { MOE: true },
  bindings: [...MATVEC.bindings, { binding: 4, name: 'ids', kind: 'read-only-storage' }],
};


/** The round trips a fused matvec of a weight type may apply: none (numerics 'exact') or its vec_dot_type's. */
function roundsFor(type: GGMLType): readonly Defines[] {
  const t = actQuantFor(type);
  return t === null ? [{}] : [{}, prologueRoundDefine(t)];
}

/**
 * matvec.wgsl with FUSED (entry main_fused): an input prologue (prologue.wgsl: round trip) and up
 * to 3 row ranges of co-located weights with their own outputs (unused outputs and h are bound to
 * 16-byte dummies). MATVEC_FUSED_NORM adds the RMSNorm (norm_w), MATVEC_FUSED_SWIGLU the SwiGLU
 * input (xu): the bindings each define set uses.
 */
export const MATVEC_FUSED: KernelSpec = {
  file: 'matvec.wgsl',
  entryPoint: 'main_fused',
  defines: { FUSED: true },
  variants: [
    ...KERNEL_TYPES.flatMap((t) => roundsFor(t).flatMap((r) => [false, true].map((sg): Defines => ({ [ggmlTypeName(t)]: true, ...r, SUBGROUPS: sg })))),
    { Q4_K: true, ROW_THREADS: true },
    { Q4_K: true, PRE_Q8_K: true, ROW_THREADS: true, INT_DOT: true },
    { Q6_K: true, PRE_Q8_K: true, ROW_THREADS: true, INT_DOT: true },
    { F16: true, ROW_THREADS: true },
  ],
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'w', kind: 'read-only-storage' },
    { binding: 2, name: 'x', kind: 'read-only-storage' },
    { binding: 5, name: 'h', kind: 'storage' },
    { binding: 6, name: 'y0', kind: 'storage' },
    { binding: 7, name: 'y1', kind: 'storage' },
    { binding: 8, name: 'y2', kind: 'storage' },
  ],
  uniform: uniformSpec('MatVecFusedParams', [
    ['cols', 'u32'],
    ['row_bytes', 'u32'],
    ['n_wg', 'u32'],
    ['x_offset', 'u32'],
    ['xu_offset', 'u32'],
    ['h_offset', 'u32'],
    ['write_h', 'u32'],
    ['eps', 'f32'],
    ...([0, 1, 2] as const).flatMap((r) => [
      [`base${r}`, 'u32'] as const,
      [`rows${r}`, 'u32'] as const,
      [`wg_end${r}`, 'u32'] as const,
      [`y_offset${r}`, 'u32'] as const,
    ]),
  ]),
  overrides: ['WG', 'ROWS', 'ACCUMULATE', 'PRO_COLS', 'PRO_ROWS', 'PRO_NORM_WG'],
};

/** MATVEC_FUSED with the RMSNorm prologue (PRE_NORM): binding 4 norm_w. */
export const MATVEC_FUSED_NORM: KernelSpec = {
  ...MATVEC_FUSED,
  defines: { FUSED: true, PRE_NORM: true },
  bindings: [...MATVEC_FUSED.bindings, { binding: 4, name: 'norm_w', kind: 'read-only-storage' as const }].sort((a, b) => a.binding - b.binding),
};

/** MATVEC_FUSED whose input is silu(x) ⊙ xu (PRE_SWIGLU): binding 3 xu. */
export const MATVEC_FUSED_SWIGLU: KernelSpec = {
  ...MATVEC_FUSED,
  defines: { FUSED: true, PRE_SWIGLU: true },
  bindings: [...MATVEC_FUSED.bindings, { binding: 3, name: 'xu', kind: 'read-only-storage' as const }].sort((a, b) => a.binding - b.binding),
};

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

export const RMS_NORM: KernelSpec = {
  file: 'norm.wgsl',
  entryPoint: 'rms_norm',
  defines: { RMS_NORM: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'read-only-storage' },
    { binding: 2, name: 'weight', kind: 'read-only-storage' },
    { binding: 3, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('NormParams', [
    ['n', 'u32'],
    ['rows', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
    ['eps', 'f32'],
    ['_pad0', 'u32'],
  ]),
  overrides: ['WG'],
};

/**
 * rms_norm that also writes the normed rows through llama.cpp's activation round trip (binding 4,
 * out_q); one ROUND_* define per vec_dot_type.
 */
export const RMS_NORM_Q: KernelSpec = {
  ...RMS_NORM,
  entryPoint: 'rms_norm_q',
  defines: { RMS_NORM_Q: true },
  variants: [{ ROUND_Q8_K: true }, { ROUND_Q8_0: true }, { ROUND_F16: true }, { ROUND_BF16: true }],
  bindings: [...RMS_NORM.bindings, { binding: 4, name: 'out_q', kind: 'storage' }],
};

export const QK_NORM_ROPE: KernelSpec = {
  file: 'norm.wgsl',
  entryPoint: 'qk_norm_rope',
  defines: { QK_NORM_ROPE: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'storage' },
    { binding: 2, name: 'weight', kind: 'read-only-storage' },
    { binding: 3, name: 'pos', kind: 'read-only-storage' },
  ],
  uniform: uniformSpec('RopeParams', [
    ['n_heads', 'u32'],
    ['head_dim', 'u32'],
    ['n_rot', 'u32'],
    ['n_tokens', 'u32'],
    ['x_offset', 'u32'],
    ['token_stride', 'u32'],
    ['pos_offset', 'u32'],
    ['eps', 'f32'],
    ['theta_scale', 'f32'],
    ['k_heads', 'u32'],
    ['k_offset', 'u32'],
    ['k_stride', 'u32'],
    ['pos0', 'u32'],
    ['head_dim_v', 'u32'],
    ['v_offset', 'u32'],
    ['v_stride', 'u32'],
    ['freq_scale', 'f32'],
    ['ext_factor', 'f32'],
    ['corr_lo', 'f32'],
    ['corr_hi', 'f32'],
    ['mscale', 'f32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
    ['_pad2', 'u32'],
  ]),
  overrides: ['WG', 'NORM', 'ROPE_NORM'],
};

/** qk_norm_rope over the Q and the K heads in one dispatch. */
export const QK_NORM_ROPE_PAIR: KernelSpec = {
  ...QK_NORM_ROPE,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true },
  bindings: [...QK_NORM_ROPE.bindings, { binding: 4, name: 'kx', kind: 'storage' }, { binding: 5, name: 'k_weight', kind: 'read-only-storage' }],
};

/** QK_NORM_ROPE_PAIR that also writes Q rounded to f16 (llama.cpp's round trip before an F16 K·q). */
export const QK_NORM_ROPE_PAIR_F16: KernelSpec = {
  ...QK_NORM_ROPE_PAIR,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true, Q_ROUND_F16: true },
  bindings: [...QK_NORM_ROPE_PAIR.bindings, { binding: 6, name: 'q_r', kind: 'storage' }],
};

/** The KV cache bindings of the KV variants; positions come from the uniform (no binding 3). */
const KV_CACHE_BINDINGS = [
  { binding: 7, name: 'v_new', kind: 'read-only-storage' },
  { binding: 8, name: 'k_cache', kind: 'storage' },
  { binding: 9, name: 'v_cache', kind: 'storage' },
] as const;
/** an f32 (no define) or f16 (KV_F16) cache */
const KV_CACHE_VARIANTS = [{}, { KV_F16: true }] as const;

/** QK_NORM_ROPE_PAIR that also writes K (roped) and V into the KV cache at positions pos0 + t. */
export const QK_NORM_ROPE_PAIR_KV: KernelSpec = {
  ...QK_NORM_ROPE_PAIR,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true, KV: true },
  variants: KV_CACHE_VARIANTS,
  bindings: [...QK_NORM_ROPE_PAIR.bindings.filter((b) => b.name !== 'pos'), ...KV_CACHE_BINDINGS],
};

/** QK_NORM_ROPE_PAIR_F16 with the KV cache write of QK_NORM_ROPE_PAIR_KV. */
export const QK_NORM_ROPE_PAIR_F16_KV: KernelSpec = {
  ...QK_NORM_ROPE_PAIR_F16,
  defines: { QK_NORM_ROPE: true, QK_PAIR: true, Q_ROUND_F16: true, KV: true },
  variants: KV_CACHE_VARIANTS,
  bindings: [...QK_NORM_ROPE_PAIR_F16.bindings.filter((b) => b.name !== 'pos'), ...KV_CACHE_BINDINGS],
};

/** A qk_norm_rope spec with llama3's rope_freqs bound (FREQ_FACTORS, binding 10). */
function withFreqFactors(spec: KernelSpec): KernelSpec {
  return { ...spec, defines: { ...spec.defines, FREQ_FACTORS: true }, bindings: [...spec.bindings, { binding: 10, name: 'freq_factors', kind: 'read-only-storage' }] };
}
export const QK_NORM_ROPE_PAIR_KV_FF = withFreqFactors(QK_NORM_ROPE_PAIR_KV);
export const QK_NORM_ROPE_PAIR_F16_KV_FF = withFreqFactors(QK_NORM_ROPE_PAIR_F16_KV);

export const EMBED: KernelSpec = {
  file: 'embed.wgsl',
  entryPoint: 'main',
  variants: TYPE_VARIANTS,
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'w', kind: 'read-only-storage' },
    { binding: 2, name: 'ids', kind: 'read-only-storage' },
    { binding: 3, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('EmbedParams', [
    ['cols', 'u32'],
    ['row_bytes', 'u32'],
    ['row_first', 'u32'],
    ['n_rows', 'u32'],
    ['n_tokens', 'u32'],
    ['ids_offset', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
  ]),
  overrides: ['WG'],
};

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

/** Every spec of this module by name (the binding test iterates it). */
export const KERNEL_SPECS: Readonly<Record<string, KernelSpec>> = {
  MATVEC,
  MATVEC_ROWS,
  MATVEC_ID,
  MATVEC_FUSED,
  MATVEC_FUSED_NORM,
  MATVEC_FUSED_SWIGLU,
  MATMUL,
  RMS_NORM,
  RMS_NORM_Q,
  QK_NORM_ROPE,
  QK_NORM_ROPE_PAIR,
  QK_NORM_ROPE_PAIR_F16,
  QK_NORM_ROPE_PAIR_KV,
  QK_NORM_ROPE_PAIR_KV_FF,
  QK_NORM_ROPE_PAIR_F16_KV_FF,
  QK_NORM_ROPE_PAIR_F16_KV,
  EMBED,
  ADD,
  ADD_INPLACE,
  SWIGLU,
  SWIGLU_INPLACE,
};

// ------------------------------------------------------------------------------------------------
// Shared plumbing
// ------------------------------------------------------------------------------------------------

/** A buffer plus an element offset (f32 or u32 elements). A bare GPUBuffer means offset 0. */
export type BufferRef = GPUBuffer | { buffer: GPUBuffer; offset?: number };

function unref(r: BufferRef): { buffer: GPUBuffer; offset: number } {
  return 'buffer' in r ? { buffer: r.buffer, offset: r.offset ?? 0 } : { buffer: r, offset: 0 };
}

/** Checks that `elements` 4-byte elements fit in a buffer. */
function need(label: string, r: { buffer: GPUBuffer; offset: number }, elements: number): void {
  if (!Number.isInteger(r.offset) || r.offset < 0) throw new RangeError(`${label}: offset ${r.offset} is not a non-negative integer`);
  if (elements > 0 && (r.offset + elements) * 4 > r.buffer.size) {
    throw new RangeError(`${label}: needs ${r.offset + elements} elements (offset ${r.offset} + ${elements}) but the buffer holds ${Math.floor(r.buffer.size / 4)}`);
  }
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function checkWg(label: string, wg: number, ctx: GPUContext): void {
  if (!isPow2(wg) || wg < 32 || wg > Math.min(1024, ctx.limits.maxComputeInvocationsPerWorkgroup)) {
    throw new KernelError(`${label}: workgroup size ${wg} must be a power of two in 32..${Math.min(1024, ctx.limits.maxComputeInvocationsPerWorkgroup)}`);
  }
}

function checkWeight(label: string, w: WeightTensor): void {
  if (!KERNEL_TYPES.includes(w.type)) throw new UnsupportedQuantError(`${label}: no kernel for ${ggmlTypeName(w.type)} (${w.name})`, w.type);
  if (w.parts.length === 0) throw new KernelError(`${label}: weight ${w.name} was freed`);
}

function typeDefines(type: GGMLType): Record<string, boolean> {
  return { [ggmlTypeName(type)]: true };
}

interface DispatchPlan {
  uniform: Record<string, number>;
  /** binding name → buffer or buffer range (the uniform binding is filled in) */
  buffers: Record<string, BindingBuffer>;
  workgroups: [number, number, number];
}

/** Builds a Launch: one uniform block + bind group per planned dispatch, all on one pipeline. */
async function buildLaunch(
  ctx: GPUContext,
  label: string,
  spec: KernelSpec,
  defines: Defines,
  constants: Constants,
  plans: DispatchPlan[],
  countSetter?: (launch: Launch, n: number) => void,
): Promise<Launch> {
  const cache = pipelineCache(ctx);
  const pipeline = await cache.get(spec, defines, constants);
  const layout = cache.bindGroupLayout(spec);
  const uniformBinding = spec.bindings.find((b) => b.kind === 'uniform');
  const make = (): Launch => {
    const uniforms: UniformBlock[] = [];
    const dispatches: Dispatch[] = plans.map((plan, i) => {
      const entries: GPUBindGroupEntry[] = [];
      for (const b of spec.bindings) {
        if (b === uniformBinding) {
          if (!spec.uniform) throw new KernelError(`${label}: spec has a uniform binding but no uniform layout`);
          const u = new UniformBlock(ctx, spec.uniform, plan.uniform, `${label}#${i}`);
          uniforms.push(u);
          entries.push({ binding: b.binding, resource: { buffer: u.buffer } });
        } else {
          const buf = plan.buffers[b.name];
          if (!buf) throw new KernelError(`${label}: no buffer for binding ${b.name}`);
          entries.push({ binding: b.binding, resource: bindingResource(buf) });
        }
      }
      const bindGroup = ctx.device.createBindGroup({ label: `${label}#${i}`, layout, entries });
      return { pipeline, bindGroup, workgroups: plan.workgroups };
    });
    let launch: Launch;
    const setter = countSetter ? (n: number) => countSetter(launch, n) : undefined;
    launch = new Launch(label, dispatches, uniforms, setter);
    return launch;
  };
  return ctx.debug ? ctx.scoped(label, make) : make();
}

function subgroupsWanted(ctx: GPUContext, opt: boolean | undefined): boolean {
  return opt ?? ctx.features.subgroups;
}

// ------------------------------------------------------------------------------------------------
// matvec
// ------------------------------------------------------------------------------------------------

export interface MatVecArgs {
  /** [cols, rows] weight, any kernel type, split or not */
  w: WeightTensor;
  /** f32 [nVec, xStride] */
  x: BufferRef;
  /** f32 [nVec, yStride]; y[v][r] for r < w.rows */
  y: BufferRef;
  /** vectors (small batch), default 1; setCount() changes it */
  nVec?: number;
  /** default w.cols */
  xStride?: number;
  /** default w.rows */
  yStride?: number;
  /** y += W·x (fused residual add) */
  accumulate?: boolean;
  /** rows per workgroup (override ROWS, 1..8), default 2 */
  rowsPerWorkgroup?: number;
  /** threads per workgroup (override WG), default 64 */
  workgroupSize?: number;
  /** use subgroup reductions (default: when the device has them) */
  subgroups?: boolean;
  /** one thread per row (main_rows): workgroupSize threads, rowsPerThread rows each (1..16); no reduction */
  threadPerRow?: { workgroupSize: number; rowsPerThread: number };
  /** the geometry on a software adapter (ctx.adapter.isSoftware) instead of the above */
  software?: Pick<MatVecArgs, 'workgroupSize' | 'rowsPerWorkgroup' | 'threadPerRow'>;
}

/**
 * y = W·x (or y += W·x) for nVec vectors, dequantizing W on the fly. One dispatch per weight part.
 * setCount(n) sets the number of vectors.
 */
export async function createMatVec(ctx: GPUContext, args: MatVecArgs): Promise<Launch> {
  const a: MatVecArgs = ctx.adapter.isSoftware && args.software ? { ...args, workgroupSize: undefined, rowsPerWorkgroup: undefined, ...args.software } : args;
  const { w } = a;
  checkWeight('matvec', w);
  const tpr = a.threadPerRow;
  const wg = tpr?.workgroupSize ?? a.workgroupSize ?? 64;
  const rowsPer = tpr?.rowsPerThread ?? a.rowsPerWorkgroup ?? 2;
  const maxRows = tpr ? 16 : 8;
  checkWg('matvec', wg, ctx);
  if (!(Number.isInteger(rowsPer) && rowsPer >= 1 && rowsPer <= maxRows)) throw new KernelError(`matvec: rows per ${tpr ? 'thread' : 'workgroup'} ${rowsPer} not in 1..${maxRows}`);
  const rowsPerWg = tpr ? wg * rowsPer : rowsPer;
  const x = unref(a.x);
  const y = unref(a.y);
  const xStride = a.xStride ?? w.cols;
  const yStride = a.yStride ?? w.rows;
  let nVec = a.nVec ?? 1;
  const check = (n: number) => {
    need('matvec x', x, (n - 1) * xStride + w.cols);
    need('matvec y', y, (n - 1) * yStride + w.rows);
  };
  check(nVec);
  const plans: DispatchPlan[] = w.parts.map((p) => {
    const nWg = Math.ceil(p.nRows / rowsPerWg);
    const [gx, gy] = grid2d(ctx, nWg);
    return {
      uniform: {
        cols: w.cols,
        rows: p.nRows,
        row_bytes: w.rowBytes,
        row0: p.firstRow,
        x_offset: x.offset,
        x_stride: xStride,
        y_offset: y.offset,
        y_stride: yStride,
        n_wg: nWg,
      },
      buffers: { w: partBinding(p), x: x.buffer, y: y.buffer },
      workgroups: [gx, gy, nVec],
    };
  });
  const defines = { ...typeDefines(w.type), SUBGROUPS: !tpr && subgroupsWanted(ctx, a.subgroups) };
  return buildLaunch(ctx, `matvec ${w.name}`, tpr ? MATVEC_ROWS : MATVEC, defines, { WG: wg, ROWS: rowsPer, ACCUMULATE: !!a.accumulate }, plans, (launch, n) => {
    check(n);
    nVec = n;
    for (const d of launch.dispatches) d.workgroups[2] = n;
  });
}

export interface MatVecIdArgs {
  /** expert stack [cols, rows, nExpert], uploaded with splits on expert boundaries (the default) */
  w: WeightTensor;
  /** f32 input: slot s reads x_offset + s·xStride (xStride 0: every slot reads the same vector) */
  x: BufferRef;
  /** f32 output: slot s writes [y_offset + s·yStride, + rows) */
  y: BufferRef;
  /** u32 expert ids (the router's top-k): slot s uses ids[offset + s] */
  ids: BufferRef;
  /** slots (selected experts), default 1; setCount() changes it */
  nSlots?: number;
  /** default 0 (shared input, as for gate/up) */
  xStride?: number;
  /** default rows */
  yStride?: number;
  accumulate?: boolean;
  rowsPerWorkgroup?: number;
  workgroupSize?: number;
  subgroups?: boolean;
}

/**
 * The MoE expert matvec (ggml mul_mat_vec_id): for each slot s, y_s = W[ids[s]]·x_s, with the
 * expert ids read on the GPU (no readback of the router). One dispatch per weight part; a
 * workgroup whose expert lives in another part returns at once.
 */
export async function createMatVecId(ctx: GPUContext, a: MatVecIdArgs): Promise<Launch> {
  const { w } = a;
  checkWeight('matvec_id', w);
  if (w.shape.length < 3) throw new KernelError(`matvec_id: ${w.name} is not an expert stack (shape ${w.shape.join('×')})`);
  const rows = w.shape[1]!;
  const nExpert = w.rows / rows;
  if (w.splitRows % rows !== 0) throw new KernelError(`matvec_id: ${w.name} was split inside an expert (splitRows ${w.splitRows}, rows per expert ${rows})`);
  const wg = a.workgroupSize ?? 64;
  const rowsPer = a.rowsPerWorkgroup ?? 2;
  checkWg('matvec_id', wg, ctx);
  const x = unref(a.x);
  const y = unref(a.y);
  const ids = unref(a.ids);
  const xStride = a.xStride ?? 0;
  const yStride = a.yStride ?? rows;
  const check = (n: number) => {
    need('matvec_id x', x, (n - 1) * xStride + w.cols);
    need('matvec_id y', y, (n - 1) * yStride + rows);
    need('matvec_id ids', ids, n);
  };
  const nSlots = a.nSlots ?? 1;
  check(nSlots);
  const nWg = Math.ceil(rows / rowsPer);
  const [gx, gy] = grid2d(ctx, nWg);
  const plans: DispatchPlan[] = w.parts.map((p) => ({
    uniform: {
      cols: w.cols,
      rows,
      row_bytes: w.rowBytes,
      row0: 0,
      x_offset: x.offset,
      x_stride: xStride,
      y_offset: y.offset,
      y_stride: yStride,
      n_wg: nWg,
      expert_first: p.firstRow / rows,
      expert_count: p.nRows / rows,
      ids_offset: ids.offset,
    },
    buffers: { w: partBinding(p), x: x.buffer, y: y.buffer, ids: ids.buffer },
    workgroups: [gx, gy, nSlots],
  }));
  void nExpert;
  const defines = { ...typeDefines(w.type), SUBGROUPS: subgroupsWanted(ctx, a.subgroups) };
  return buildLaunch(ctx, `matvec_id ${w.name}`, MATVEC_ID, defines, { WG: wg, ROWS: rowsPer, ACCUMULATE: !!a.accumulate }, plans, (launch, n) => {
    check(n);
    for (const d of launch.dispatches) d.workgroups[2] = n;
  });
}

// ------------------------------------------------------------------------------------------------
// fused matvec: input prologue (prologue.wgsl) + several row ranges
// ------------------------------------------------------------------------------------------------

/** A fused kernel cannot run as asked (prologue too big for workgroup memory, weights not co-located …): use the unfused path. */
export class FusedKernelUnsupported extends KernelError {}

/** prologue.wgsl's round-trip define for a vec_dot_type (Q8_1 rounds as Q8_0). */
export function prologueRoundDefine(type: ActQuantType): Defines {
  switch (type) {
    case GGMLType.Q8_K:
      return { PRE_Q8_K: true };
    case GGMLType.Q8_0:
    case GGMLType.Q8_1:
      return { PRE_Q8_0: true };
    case GGMLType.F16:
      return { PRE_F16: true };
    default:
      return { PRE_BF16: true };
  }
}

/** What prologue.wgsl is asked to prepare: `rows` input rows of `cols` values, for WG threads. */
export interface PrologueShape {
  cols: number;
  /** input rows (override PRO_ROWS), default 1 */
  rows?: number;
  /** threads of the includer's workgroup (WG) */
  wg: number;
  norm: boolean;
  round: ActQuantType | null;
  /** the rms_norm workgroup whose reduction order the norm reproduces (PRO_NORM_WG), default 128 */
  normWg?: number;
  /**
   * the weight type of the product reading the prepared rows when it runs one thread per row
   * (ROW_THREADS): the prologue then sets INT_DOT where that product takes integer dots (intDot)
   */
  threadPerRowWeight?: GGMLType;
}

/**
 * True when a thread-per-row product of `type` with a prologue rounding to `round` takes its dots
 * in integers (define INT_DOT, quant.wgsl unit_dot_q): Q4_K / Q6_K weights on a Q8_K input.
 */
export function intDot(type: GGMLType, round: ActQuantType | null | undefined): boolean {
  return round === GGMLType.Q8_K && (type === GGMLType.Q4_K || type === GGMLType.Q6_K);
}

/**
 * prologue.wgsl's defines and overrides for a shape; throws FusedKernelUnsupported when the round
 * trip's block does not divide cols or the norm reduction width does not fit the kernel.
 */
export function prologueConfig(s: PrologueShape): { defines: Defines; constants: Constants; bytes: number } {
  const rows = s.rows ?? 1;
  const normWg = s.normWg ?? 128;
  if (!isPow2(normWg) || normWg / s.wg > 16) throw new FusedKernelUnsupported(`prologue: norm reduction width ${normWg} for ${s.wg} threads (a power of two ≤ 16·WG)`);
  const block = s.round === null ? 1 : actQuantBlock(s.round);
  if (s.cols % block !== 0) throw new FusedKernelUnsupported(`prologue: ${s.cols} values are not a multiple of the round trip's block ${block}`);
  // capacity of a row: a multiple of 256 for Q8_K (cols is), of 32 otherwise
  const cap = s.round === GGMLType.Q8_K ? s.cols : Math.max(32, Math.ceil(s.cols / 32) * 32);
  let bytes = s.norm ? 4 * s.wg + 4 * rows : 0;
  if (s.round === GGMLType.Q8_K) bytes += rows * (cap + cap / 64) + cap / 4 + cap / 64;
  else if (s.round === GGMLType.Q8_0 || s.round === GGMLType.Q8_1) bytes += rows * (cap + cap / 8);
  else if (s.round !== null) bytes += 2 * rows * cap;
  const int = s.threadPerRowWeight !== undefined && intDot(s.threadPerRowWeight, s.round);
  if (int) bytes += rows * (cap / 16) * 4; // pro_s: the sums of q_x per 16 values
  const defines: Defines = {
    ...(s.norm ? { PRE_NORM: true } : {}),
    ...(s.round === null ? {} : prologueRoundDefine(s.round)),
    ...(int ? { INT_DOT: true } : {}),
  };
  return { defines, constants: { PRO_COLS: cap, PRO_ROWS: rows, PRO_NORM_WG: normWg }, bytes };
}

export interface MatVecFusedArgs {
  /** 1..3 weights of the same cols, each one part, co-located (coLocated(...ws)) when more than one */
  ws: readonly WeightTensor[];
  /** f32 outputs, ys[r] [ws[r].rows] */
  ys: readonly BufferRef[];
  /** f32 [cols] the raw input row (with `swiglu`: the gate half) */
  x: BufferRef;
  /** RMSNorm the row first: v = (x · 1/sqrt(mean(x²) + eps)) ⊙ weight, as createRmsNorm (workgroupSize normWg) */
  norm?: { weight: GPUBuffer; eps: number; normWg?: number };
  /** the raw input is silu(x) ⊙ up (elementwise.wgsl swiglu's arithmetic); not with `norm` */
  swiglu?: { up: BufferRef };
  /** llama.cpp's activation round trip of the (normed / SwiGLU) row, as act_quant (null / absent: none) */
  round?: ActQuantType | null;
  /** workgroup 0 writes the row before its round trip here (f32 [cols]): the norm's h, a tap */
  out?: BufferRef;
  /** y += W·x */
  accumulate?: boolean;
  /** rows per workgroup (ROWS, 1..8), default 8 */
  rowsPerWorkgroup?: number;
  /** threads (WG), default 64 */
  workgroupSize?: number;
  subgroups?: boolean;
  /**
   * one thread per row (ROW_THREADS, main_rows' geometry and sum order): workgroupSize threads,
   * rowsPerThread rows each (1..16); replaces workgroupSize / rowsPerWorkgroup
   */
  threadPerRow?: { workgroupSize: number; rowsPerThread: number };
}

const dummies = new WeakMap<GPUContext, GPUBuffer[]>();

/**
 * A 16-byte buffer for an unused output binding, one per slot (1, 2: y1, y2; 3: h): a buffer written
 * in a dispatch may not be bound a second time in it, whatever the ranges.
 */
function dummy(ctx: GPUContext, slot: 1 | 2 | 3): GPUBuffer {
  let b = dummies.get(ctx);
  if (!b) {
    b = [0, 1, 2, 3].map((i) => ctx.createBuffer({ label: `matvec_fused.unused${i}`, size: 16, usage: GPUBufferUsage.STORAGE }));
    dummies.set(ctx, b);
  }
  return b[slot]!;
}

/**
 * createMatVecFused for one weight that may be split over several bindings: one fused dispatch per
 * part (each part as a weight of its own, writing y from element part.firstRow), chained in one
 * launch. Throws what createMatVecFused throws (FusedKernelUnsupported when a part cannot be fused).
 */
export async function createMatVecFusedByPart(ctx: GPUContext, a: Omit<MatVecFusedArgs, 'ws' | 'ys'> & { w: WeightTensor; y: GPUBuffer }): Promise<Launch> {
  const { w, y, ...rest } = a;
  if (w.parts.length === 1) return createMatVecFused(ctx, { ...rest, ws: [w], ys: [y] });
  const launches: Launch[] = [];
  try {
    for (const part of w.parts) {
      const sub: WeightTensor = { ...w, rows: part.nRows, parts: [{ ...part, firstRow: 0 }] };
      launches.push(await createMatVecFused(ctx, { ...rest, ws: [sub], ys: [{ buffer: y, offset: part.firstRow }] }));
    }
  } catch (e) {
    for (const l of launches) l.dispose();
    throw e;
  }
  return launches.reduce((x, z) => chainLaunches(x, z));
}

/**
 * y_r = W_r·v for up to 3 co-located weights W_r in one dispatch (decode: one vector), where v is x
 * through the prologue (prologue.wgsl): RMSNorm (`norm`) or SwiGLU (`swiglu`), then the round trip
 * (`round`). Bit-identical to rms_norm(_q) / swiglu / act_quant followed by createMatVec (with the
 * same norm workgroup size). Geometry: ROWS = 8 rows per workgroup (the plain matvec takes 2): every
 * workgroup repeats the prologue, ~2–3 evaluations of each input value plus a few barriers, while
 * its dot loop decodes ROWS weights per input value; 8 keeps the prologue a small fraction and the
 * grid at rows/8 workgroups (640 for qwen3moe's 5120 Q|K|V rows). WG = 64 threads.
 * @throws FusedKernelUnsupported when the weights are not co-located / split, the prologue does not
 * fit the device's workgroup memory, or the binding would exceed the device's largest; the caller
 * then takes the unfused path.
 */
export async function createMatVecFused(ctx: GPUContext, a: MatVecFusedArgs): Promise<Launch> {
  const { ws } = a;
  if (ws.length < 1 || ws.length > 3 || ws.length !== a.ys.length) throw new KernelError(`matvec_fused: ${ws.length} weights for ${a.ys.length} outputs (1..3 of each)`);
  for (const w of ws) checkWeight('matvec_fused', w);
  const w0 = ws[0]!;
  const cols = w0.cols;
  const sameBuffer = ws.every((w) => w.parts.length === 1 && w.parts[0]!.buffer === w0.parts[0]!.buffer && w.type === w0.type && w.cols === cols);
  if (!sameBuffer) throw new FusedKernelUnsupported(`matvec_fused: ${ws.map((w) => w.name).join(', ')} are not one part each in one buffer of one type and width`);
  if (a.norm && a.swiglu) throw new KernelError('matvec_fused: norm and swiglu together');
  const tpr = a.threadPerRow;
  const wg = tpr?.workgroupSize ?? a.workgroupSize ?? 64;
  const rowsPer = tpr?.rowsPerThread ?? a.rowsPerWorkgroup ?? 8;
  checkWg('matvec_fused', wg, ctx);
  const maxRows = tpr ? 16 : 8;
  if (!(Number.isInteger(rowsPer) && rowsPer >= 1 && rowsPer <= maxRows)) throw new KernelError(`matvec_fused: rows per ${tpr ? 'thread' : 'workgroup'} ${rowsPer} not in 1..${maxRows}`);
  const rowsPerWg = tpr ? wg * rowsPer : rowsPer;
  const round = a.round ?? null;
  const pro = prologueConfig({ cols, wg, norm: !!a.norm, round, normWg: a.norm?.normWg, threadPerRowWeight: tpr ? w0.type : undefined });
  const wgBytes = pro.bytes + (tpr ? 0 : 4 * wg * rowsPer); // + matvec's red
  if (wgBytes > ctx.limits.maxComputeWorkgroupStorageSize) {
    throw new FusedKernelUnsupported(`matvec_fused: ${wgBytes} bytes of workgroup memory, the device allows ${ctx.limits.maxComputeWorkgroupStorageSize}`);
  }
  // one binding over every part: from the first part's (256-aligned) offset to the last one's end
  const parts = ws.map((w) => w.parts[0]!);
  const lo = Math.min(...parts.map((p) => p.offset));
  const hi = Math.max(...parts.map((p) => p.offset + Math.ceil(p.byteLength / 4) * 4));
  if (hi - lo > ctx.limits.maxStorageBufferBindingSize) throw new FusedKernelUnsupported(`matvec_fused: ${hi - lo} bytes of weights exceed the largest binding`);

  const x = unref(a.x);
  need('matvec_fused x', x, cols);
  const uniform: Record<string, number> = { cols, row_bytes: w0.rowBytes, x_offset: x.offset, eps: a.norm?.eps ?? 0 };
  const buffers: Record<string, BindingBuffer> = { w: { buffer: parts[0]!.buffer, offset: lo, size: hi - lo }, x: x.buffer };
  if (a.swiglu) {
    const up = unref(a.swiglu.up);
    need('matvec_fused up', up, cols);
    uniform.xu_offset = up.offset;
    buffers.xu = up.buffer;
  }
  if (a.norm) {
    need('matvec_fused norm weight', { buffer: a.norm.weight, offset: 0 }, cols);
    buffers.norm_w = a.norm.weight;
  }
  if (a.out) {
    const out = unref(a.out);
    need('matvec_fused out', out, cols);
    Object.assign(uniform, { write_h: 1, h_offset: out.offset });
    buffers.h = out.buffer;
  } else buffers.h = dummy(ctx, 3);
  let end = 0;
  for (let r = 0; r < 3; r++) {
    const w = ws[r];
    if (!w) {
      Object.assign(uniform, { [`wg_end${r}`]: end });
      buffers[`y${r}`] = dummy(ctx, r as 1 | 2);
      continue;
    }
    const y = unref(a.ys[r]!);
    need(`matvec_fused y${r}`, y, w.rows);
    end += Math.ceil(w.rows / rowsPerWg);
    Object.assign(uniform, { [`base${r}`]: parts[r]!.offset - lo, [`rows${r}`]: w.rows, [`wg_end${r}`]: end, [`y_offset${r}`]: y.offset });
    buffers[`y${r}`] = y.buffer;
  }
  uniform.n_wg = end;
  const [gx, gy] = grid2d(ctx, end);
  const spec = a.norm ? MATVEC_FUSED_NORM : a.swiglu ? MATVEC_FUSED_SWIGLU : MATVEC_FUSED;
  const defines: Defines = { ...typeDefines(w0.type), ...pro.defines, SUBGROUPS: !tpr && subgroupsWanted(ctx, a.subgroups), ROW_THREADS: !!tpr };
  const constants = { WG: wg, ROWS: rowsPer, ACCUMULATE: !!a.accumulate, ...pro.constants };
  return buildLaunch(ctx, `matvec_fused ${ws.map((w) => w.name).join('|')}`, spec, defines, constants, [{ uniform, buffers, workgroups: [gx, gy, 1] }]);
}

// ------------------------------------------------------------------------------------------------
// matmul
// ------------------------------------------------------------------------------------------------

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
  return buildLaunch(ctx, `matmul ${w.name}`, MATMUL, typeDefines(w.type), { WG_M: wgM, WG_N: wgN, ACCUMULATE: !!a.accumulate }, plans, (launch, n) => {
    check(n);
    launch.uniforms.forEach((u) => u.set('n_tokens', n));
    for (const d of launch.dispatches) d.workgroups[1] = Math.ceil(n / TN);
  });
}

// ------------------------------------------------------------------------------------------------
// norms and rope
// ------------------------------------------------------------------------------------------------

export interface RmsNormArgs {
  /** f32 [rows, xStride] */
  x: BufferRef;
  /** f32 [n] */
  weight: BufferRef;
  /** f32 [rows, outStride]; must not overlap x */
  out: BufferRef;
  n: number;
  rows?: number;
  eps: number;
  xStride?: number;
  outStride?: number;
  workgroupSize?: number;
  /**
   * Also write the normed rows through llama.cpp's activation round trip of `type` (bit for bit as
   * createActQuant on `out`) into `out`, f32 [rows, n] contiguous from offset 0 (numerics 'llamacpp':
   * the input of the products that read the norm, in the same dispatch).
   */
  round?: { type: ActQuantType; out: GPUBuffer };
}

/** The ROUND_* define of rms_norm_q for a round-trip type. */
function roundDefine(type: ActQuantType): Defines {
  switch (type) {
    case GGMLType.Q8_K:
      return { ROUND_Q8_K: true };
    case GGMLType.Q8_0:
    case GGMLType.Q8_1:
      return { ROUND_Q8_0: true };
    case GGMLType.F16:
      return { ROUND_F16: true };
    default:
      return { ROUND_BF16: true };
  }
}

/**
 * out = RMSNorm(x) ⊙ weight per row (with `round`: and its round trip into round.out, one dispatch).
 * setCount(n) sets the number of rows.
 */
export async function createRmsNorm(ctx: GPUContext, a: RmsNormArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 128;
  checkWg('rms_norm', wg, ctx);
  const x = unref(a.x);
  const weight = unref(a.weight);
  const out = unref(a.out);
  const xStride = a.xStride ?? a.n;
  const outStride = a.outStride ?? a.n;
  if (weight.offset !== 0) throw new KernelError('rms_norm: the weight must start at offset 0 of its buffer');
  need('rms_norm weight', weight, a.n);
  const round = a.round;
  if (round) {
    const block = actQuantBlock(round.type);
    if (a.n % block !== 0) throw new RangeError(`rms_norm: row length ${a.n} is not a multiple of the round trip's block ${block}`);
  }
  const check = (rows: number) => {
    need('rms_norm x', x, (rows - 1) * xStride + a.n);
    need('rms_norm out', out, (rows - 1) * outStride + a.n);
    if (round) need('rms_norm out_q', { buffer: round.out, offset: 0 }, rows * a.n);
  };
  const rows = a.rows ?? 1;
  check(rows);
  const [gx, gy] = grid2d(ctx, rows);
  const plan: DispatchPlan = {
    uniform: { n: a.n, rows, x_offset: x.offset, x_stride: xStride, out_offset: out.offset, out_stride: outStride, eps: a.eps },
    buffers: round ? { x: x.buffer, weight: weight.buffer, out: out.buffer, out_q: round.out } : { x: x.buffer, weight: weight.buffer, out: out.buffer },
    workgroups: [gx, gy, 1],
  };
  const [label, spec, defines] = round ? ['rms_norm_q', RMS_NORM_Q, roundDefine(round.type)] as const : ['rms_norm', RMS_NORM, {}] as const;
  return buildLaunch(ctx, label, spec, defines, { WG: wg }, [plan], (launch, n) => {
    check(n);
    launch.uniforms[0]!.set('rows', n);
    const [x2, y2] = grid2d(ctx, n);
    launch.dispatches[0]!.workgroups = [x2, y2, 1];
  });
}

export interface QKNormRopeArgs {
  /** f32 [nTokens, tokenStride]: heads of token t at offset + t·tokenStride, head h at + h·headDim (in place) */
  x: BufferRef;
  /** f32 [headDim] norm weight (attn_q_norm / attn_k_norm); ignored with norm = false but must be bound */
  weight: BufferRef;
  /** u32 [nTokens] positions; required without `kv`, not read with it (positions are pos0 + t) */
  positions?: BufferRef;
  nHeads: number;
  headDim: number;
  /** rotated dimensions, default headDim */
  nRot?: number;
  nTokens?: number;
  /** default nHeads·headDim */
  tokenStride?: number;
  eps: number;
  /** rope.freq_base */
  base: number;
  /** RMSNorm each head before rotating (qwen3), default true */
  norm?: boolean;
  /** RoPE pairs: 'neox' (i, i + nRot/2; default) or 'norm' (2i, 2i + 1: llama) */
  style?: 'neox' | 'norm';
  /** (with kv) llama3's rope_freqs, f32 [nRot/2]: θ_i divided by freqFactors[i] */
  freqFactors?: GPUBuffer;
  /** θ multiplied by this (linear rope scaling), default 1 */
  freqScale?: number;
  /** YaRN (config.ts AttentionSpec.yarn), default none */
  yarn?: { extFactor: number; corrDims: [number, number]; mscale: number };
  workgroupSize?: number;
  /** K heads rotated in the same dispatch (same head_dim, n_rot, positions, eps, base) */
  k?: { x: BufferRef; weight: BufferRef; nHeads: number; tokenStride?: number };
  /**
   * (with k) Q's values also rounded to f16 into this buffer, f32 [nTokens, nHeads·headDim]
   * contiguous: llama.cpp's activation round trip before an F16 product (act_quant to_f16)
   */
  qRoundF16?: GPUBuffer;
  /** (with k) also write the KV cache in the same dispatch: see QKNormRopeKv */
  kv?: QKNormRopeKv;
}

/**
 * The KV cache write folded into createQKNormRope: token t's roped K heads and its V heads go to
 * cache position pos0 + t, converted as createKvWrite converts them (the same bits). Token t is then
 * also rotated at position pos0 + t (no positions buffer: one sequence, contiguous positions).
 * cache.nHeadKv must be k.nHeads and cache.headDimK the head_dim.
 */
export interface QKNormRopeKv {
  cache: KvCache;
  /** f32 V of the new tokens: token t's [nHeadKv·headDimV] at offset + t·vStride */
  v: BufferRef;
  /** default nHeadKv·headDimV */
  vStride?: number;
  /** position of token 0, default 0; update() / setPosition() change it */
  pos0?: number;
}

/**
 * Per-head RMSNorm (optional) and NEOX RoPE, in place; positions are read from a GPU buffer so a
 * decode step only writes the position. setCount(n) sets the number of tokens.
 * With `kv` (and `k`): the same dispatch also writes K and V into the KV cache (createKvWrite's
 * job), and the launch is a KvWriteLaunch: update(n, pos0) / setPosition(pos0) set the positions
 * (of the rotation and of the cache rows), setCount(n) the tokens at the current pos0.
 */
export function createQKNormRope(ctx: GPUContext, a: QKNormRopeArgs & { kv: QKNormRopeKv }): Promise<KvWriteLaunch>;
export function createQKNormRope(ctx: GPUContext, a: QKNormRopeArgs): Promise<Launch>;
export async function createQKNormRope(ctx: GPUContext, a: QKNormRopeArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 64;
  checkWg('qk_norm_rope', wg, ctx);
  const nRot = a.nRot ?? a.headDim;
  if (nRot % 2 !== 0 || nRot > a.headDim) throw new KernelError(`qk_norm_rope: n_rot ${nRot} must be even and ≤ head_dim ${a.headDim}`);
  const x = unref(a.x);
  const weight = unref(a.weight);
  if (weight.offset !== 0) throw new KernelError('qk_norm_rope: the weight must start at offset 0 of its buffer');
  const tokenStride = a.tokenStride ?? a.nHeads * a.headDim;
  const k = a.k ? { x: unref(a.k.x), weight: unref(a.k.weight), nHeads: a.k.nHeads, tokenStride: a.k.tokenStride ?? a.k.nHeads * a.headDim } : null;
  if (a.qRoundF16 && !k) throw new KernelError('qk_norm_rope: qRoundF16 needs the K heads (k) too');
  if (k && k.weight.offset !== 0) throw new KernelError('qk_norm_rope: the K weight must start at offset 0 of its buffer');
  const kv = a.kv ? { cache: a.kv.cache, v: unref(a.kv.v), vStride: a.kv.vStride ?? a.kv.cache.nHeadKv * a.kv.cache.headDimV } : null;
  if (kv) {
    if (!k) throw new KernelError('qk_norm_rope: kv needs the K heads (k) too');
    if (kv.cache.nHeadKv !== k.nHeads || kv.cache.headDimK !== a.headDim) {
      throw new KernelError(`qk_norm_rope: the cache holds ${kv.cache.nHeadKv} heads of ${kv.cache.headDimK}, K has ${k.nHeads} of ${a.headDim}`);
    }
  }
  const pos = a.positions ? unref(a.positions) : null;
  if (!kv && !pos) throw new KernelError('qk_norm_rope: positions are needed (without kv)');
  const check = (n: number) => {
    need('qk_norm_rope x', x, (n - 1) * tokenStride + a.nHeads * a.headDim);
    if (!kv) need('qk_norm_rope positions', pos!, n);
    if (k) need('qk_norm_rope k', k.x, (n - 1) * k.tokenStride + k.nHeads * a.headDim);
    if (a.qRoundF16) need('qk_norm_rope q_r', { buffer: a.qRoundF16, offset: 0 }, n * a.nHeads * a.headDim);
    if (kv) need('qk_norm_rope v', kv.v, (n - 1) * kv.vStride + kv.cache.nHeadKv * kv.cache.headDimV);
  };
  const nTokens = a.nTokens ?? 1;
  const pos0 = a.kv?.pos0 ?? 0;
  if (kv) checkPositions(kv.cache, pos0, nTokens);
  check(nTokens);
  need('qk_norm_rope weight', weight, a.norm === false ? 1 : a.headDim);
  if (k) need('qk_norm_rope k weight', k.weight, a.norm === false ? 1 : a.headDim);
  const buffers: Record<string, GPUBuffer> = { x: x.buffer, weight: weight.buffer };
  if (!kv) buffers.pos = pos!.buffer;
  if (k) Object.assign(buffers, { kx: k.x.buffer, k_weight: k.weight.buffer });
  if (a.qRoundF16) buffers.q_r = a.qRoundF16;
  if (kv) Object.assign(buffers, { v_new: kv.v.buffer, k_cache: kv.cache.k, v_cache: kv.cache.v });
  const uniform = {
    n_heads: a.nHeads,
    head_dim: a.headDim,
    n_rot: nRot,
    n_tokens: nTokens,
    x_offset: x.offset,
    token_stride: tokenStride,
    pos_offset: pos && !kv ? pos.offset : 0,
    eps: a.eps,
    theta_scale: Math.fround(Math.pow(a.base, -2 / nRot)),
    k_heads: k?.nHeads ?? 0,
    k_offset: k?.x.offset ?? 0,
    k_stride: k?.tokenStride ?? 0,
    pos0,
    head_dim_v: kv?.cache.headDimV ?? 0,
    v_offset: kv?.v.offset ?? 0,
    v_stride: kv?.vStride ?? 0,
    freq_scale: a.freqScale ?? 1,
    ext_factor: a.yarn?.extFactor ?? 0,
    corr_lo: a.yarn?.corrDims[0] ?? 0,
    corr_hi: a.yarn?.corrDims[1] ?? 0,
    mscale: a.yarn?.mscale ?? 1,
  };
  const workgroups: [number, number, number] = [a.nHeads + (k?.nHeads ?? 0), nTokens, 1];
  const constants = { WG: wg, NORM: a.norm !== false, ROPE_NORM: a.style === 'norm' };
  if (a.freqFactors) {
    if (!kv) throw new KernelError('qk_norm_rope: freqFactors needs the KV variant (kv)');
    need('qk_norm_rope freq_factors', { buffer: a.freqFactors, offset: 0 }, nRot / 2);
    buffers.freq_factors = a.freqFactors;
  }
  if (!kv) {
    const spec = a.qRoundF16 ? QK_NORM_ROPE_PAIR_F16 : k ? QK_NORM_ROPE_PAIR : QK_NORM_ROPE;
    return buildLaunch(ctx, 'qk_norm_rope', spec, {}, constants, [{ uniform, buffers, workgroups }], (launch, n) => {
      check(n);
      launch.uniforms[0]!.set('n_tokens', n);
      launch.dispatches[0]!.workgroups[1] = n;
    });
  }
  const spec = a.freqFactors
    ? a.qRoundF16 ? QK_NORM_ROPE_PAIR_F16_KV_FF : QK_NORM_ROPE_PAIR_KV_FF
    : a.qRoundF16 ? QK_NORM_ROPE_PAIR_F16_KV : QK_NORM_ROPE_PAIR_KV;
  const launch = await buildSteps(
    ctx,
    'qk_norm_rope_kv',
    [{ spec, defines: kvDefines(kv.cache), constants, uniform, buffers, workgroups }],
    (d, u) => new KvWriteLaunch('qk_norm_rope_kv', d, u, (n) => launch.update(n, launch.pos0)),
  );
  launch.nTokens = nTokens;
  launch.pos0 = pos0;
  launch.update = (n, p0) => {
    checkPositions(kv.cache, p0, n);
    check(n);
    const u = launch.uniforms[0]!;
    u.set('n_tokens', n);
    u.set('pos0', p0);
    launch.dispatches[0]!.workgroups[1] = n;
    launch.nTokens = n;
    launch.pos0 = p0;
  };
  return launch;
}

// ------------------------------------------------------------------------------------------------
// embedding
// ------------------------------------------------------------------------------------------------

export interface EmbedArgs {
  /** token_embd [cols, nVocab], any kernel type, split or not */
  w: WeightTensor;
  /** u32 token ids */
  ids: BufferRef;
  /** f32 [nTokens, outStride] */
  out: BufferRef;
  nTokens?: number;
  outStride?: number;
  workgroupSize?: number;
}

/** out[t] = dequantized row ids[t] of w. setCount(n) sets the number of tokens. */
export async function createEmbed(ctx: GPUContext, a: EmbedArgs): Promise<Launch> {
  const { w } = a;
  checkWeight('embed', w);
  const wg = a.workgroupSize ?? 64;
  checkWg('embed', wg, ctx);
  const ids = unref(a.ids);
  const out = unref(a.out);
  const outStride = a.outStride ?? w.cols;
  const check = (n: number) => {
    need('embed ids', ids, n);
    need('embed out', out, (n - 1) * outStride + w.cols);
  };
  const nTokens = a.nTokens ?? 1;
  check(nTokens);
  const gx = Math.ceil(w.cols / (8 * wg));
  const plans: DispatchPlan[] = w.parts.map((p) => ({
    uniform: {
      cols: w.cols,
      row_bytes: w.rowBytes,
      row_first: p.firstRow,
      n_rows: p.nRows,
      n_tokens: nTokens,
      ids_offset: ids.offset,
      out_offset: out.offset,
      out_stride: outStride,
    },
    buffers: { w: partBinding(p), ids: ids.buffer, out: out.buffer },
    workgroups: [gx, nTokens, 1],
  }));
  return buildLaunch(ctx, `embed ${w.name}`, EMBED, typeDefines(w.type), { WG: wg }, plans, (launch, n) => {
    check(n);
    launch.uniforms.forEach((u) => u.set('n_tokens', n));
    for (const d of launch.dispatches) d.workgroups[1] = n;
  });
}

// ------------------------------------------------------------------------------------------------
// element-wise
// ------------------------------------------------------------------------------------------------

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
  const [gx, gy] = grid2d(ctx, Math.ceil(e.n / wg));
  const buffers: Record<string, GPUBuffer> = { b: b.buffer, out: out.buffer };
  if (a) buffers.a = a.buffer;
  const plan: DispatchPlan = {
    uniform: { n: e.n, a_offset: a?.offset ?? 0, b_offset: b.offset, out_offset: out.offset, b_width: bWidth },
    buffers,
    workgroups: [gx, gy, 1],
  };
  return buildLaunch(ctx, kind, spec, {}, { WG: wg }, [plan], (launch, n) => {
    check(n);
    launch.uniforms[0]!.set('n', n);
    const [x2, y2] = grid2d(ctx, Math.ceil(n / wg));
    launch.dispatches[0]!.workgroups = [x2, y2, 1];
  });
}

/** out = a + b, or out += b without `a`. setCount(n) sets the element count. */
export function createAdd(ctx: GPUContext, a: ElementwiseArgs): Promise<Launch> {
  return createElementwise(ctx, 'add', a);
}

/** out = silu(a) · b (SwiGLU: a = gate, b = up), or out = silu(out) · b without `a`. */
export function createSwiglu(ctx: GPUContext, a: ElementwiseArgs): Promise<Launch> {
  return createElementwise(ctx, 'swiglu', a);
}
