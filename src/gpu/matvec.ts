// Launchers of kernels/matvec.wgsl: the dense matvec (createMatVec), the MoE expert matvec that
// reads its expert ids on the GPU (createMatVecId, ggml's mul_mat_vec_id) and the fused matvec with
// an input prologue over up to 3 co-located weights (createMatVecFused, createMatVecFusedByPart).
// Decode's products; prefill's are src/gpu/matmul.ts.
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { actQuantFor, type ActQuantType } from './actquant.js';
import { prologueConfig, prologueRoundDefine } from './prologue.js';
import { buildLaunch, checkWeight, checkWg, FusedKernelUnsupported, need, TYPE_VARIANTS, typeDefine, unref, type BufferRef, type DispatchPlan } from './steps.js';
import { KERNEL_TYPES, partBinding, type BindingBuffer, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { chainLaunches, grid2d, KernelError, Launch, linearGrid, uniformSpec, type Defines, type KernelSpec } from '../runtime/pipelines.js';

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
  const nVec = a.nVec ?? 1;
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
  const defines = { ...typeDefine(w.type), SUBGROUPS: !tpr && subgroupsWanted(ctx, a.subgroups) };
  return buildLaunch(ctx, `matvec ${w.name}`, tpr ? MATVEC_ROWS : MATVEC, defines, { WG: wg, ROWS: rowsPer, ACCUMULATE: !!a.accumulate }, plans, { check, workgroups: (n, [x, y]) => [x, y, n] });
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
  const defines = { ...typeDefine(w.type), SUBGROUPS: subgroupsWanted(ctx, a.subgroups) };
  return buildLaunch(ctx, `matvec_id ${w.name}`, MATVEC_ID, defines, { WG: wg, ROWS: rowsPer, ACCUMULATE: !!a.accumulate }, plans, { check, workgroups: (n, [x, y]) => [x, y, n] });
}

// ------------------------------------------------------------------------------------------------
// fused matvec: input prologue (prologue.wgsl) + several row ranges
// ------------------------------------------------------------------------------------------------

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
  const spec = a.norm ? MATVEC_FUSED_NORM : a.swiglu ? MATVEC_FUSED_SWIGLU : MATVEC_FUSED;
  const defines: Defines = { ...typeDefine(w0.type), ...pro.defines, SUBGROUPS: !tpr && subgroupsWanted(ctx, a.subgroups), ROW_THREADS: !!tpr };
  const constants = { WG: wg, ROWS: rowsPer, ACCUMULATE: !!a.accumulate, ...pro.constants };
  return buildLaunch(ctx, `matvec_fused ${ws.map((w) => w.name).join('|')}`, spec, defines, constants, [{ uniform, buffers, workgroups: linearGrid(ctx, end) }]);
}
