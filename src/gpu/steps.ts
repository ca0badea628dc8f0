// Launch plumbing shared by every launcher of src/gpu/ (ops.ts's families: matvec.ts, matmul.ts,
// norm.ts, embed.ts, elementwise.ts; attention.ts, moe.ts, mla.ts, gated.ts, deltanet.ts,
// sample.ts, actquant.ts): buffer references and their size checks, workgroup and weight checks,
// the weight-type defines, and the builders of a Launch from planned dispatches (buildLaunch: one
// pipeline; buildSteps: a StepLaunch whose dispatches may use different pipelines and may be
// indirect, i.e. take their workgroup counts from a buffer an earlier kernel wrote on the GPU).
// Built on the runtime's Launch, PipelineCache and UniformBlock; nothing here allocates per step.
//
// Buffers are bound whole; element offsets and strides (in f32 / u32 elements) go in the uniform,
// so activations can live anywhere in a shared arena buffer.
import { ggmlTypeName, type GGMLType } from '../../gguf/types.js';
import { UnsupportedQuantError } from '../errors.js';
import { bindingResource, KERNEL_TYPES, UniformBlock, type BindingBuffer, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, Launch, pipelineCache, type Constants, type Defines, type Dispatch, type KernelSpec } from '../runtime/pipelines.js';

/** A buffer plus an element offset (f32 or u32 elements). A bare GPUBuffer means offset 0. */
export type BufferRef = GPUBuffer | { buffer: GPUBuffer; offset?: number };

/** A fused kernel cannot run as asked (prologue too big for workgroup memory, weights not co-located …): use the unfused path. */
export class FusedKernelUnsupported extends KernelError {}

/** One define per weight type, named as ggml names it (F32, Q4_K …): what quant.wgsl switches on. */
export const TYPE_VARIANTS: readonly Defines[] = KERNEL_TYPES.map((t) => ({ [ggmlTypeName(t)]: true }));

/** A dispatch that may take its workgroup counts from a GPU buffer (dispatchWorkgroupsIndirect). */
export interface StepDispatch extends Dispatch {
  /** when set, `workgroups` is ignored and the counts are read from buffer[offset .. +12) */
  indirect?: { buffer: GPUBuffer; offset: number };
}

/** A Launch over several pipelines, with optional indirect dispatches and scratch buffers it owns. */
export class StepLaunch extends Launch {
  private owned: GPUBuffer[] = [];
  private ownerCtx: GPUContext | undefined;

  /** Hands buffers the launcher allocated to this launch: dispose() frees them. */
  own(ctx: GPUContext, ...buffers: GPUBuffer[]): void {
    this.ownerCtx = ctx;
    this.owned.push(...buffers);
  }

  /** Bytes of the scratch buffers this launch owns. */
  get scratchBytes(): number {
    return this.owned.reduce((s, b) => s + b.size, 0);
  }

  /** Frees the uniform buffers and the owned scratch buffers. */
  override dispose(): void {
    super.dispose();
    for (const b of this.owned) this.ownerCtx?.destroyBuffer(b);
    this.owned = [];
  }

  override encode(pass: GPUComputePassEncoder): void {
    for (const u of this.uniforms) u.flush();
    for (const d of this.dispatches as StepDispatch[]) {
      if (!d.indirect) {
        const [x, y, z] = d.workgroups;
        if (x === 0 || y === 0 || z === 0) continue;
      }
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      if (d.indirect) pass.dispatchWorkgroupsIndirect(d.indirect.buffer, d.indirect.offset);
      else pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
  }
}

/** One planned dispatch: which kernel, with what, over which grid. */
export interface StepPlan {
  spec: KernelSpec;
  defines?: Defines;
  constants?: Constants;
  /** initial uniform values (a UniformBlock is made per step when the spec has a uniform) */
  uniform?: Record<string, number>;
  /** binding name → buffer or buffer range (every non-uniform binding of the spec) */
  buffers: Record<string, BindingBuffer>;
  workgroups: [number, number, number];
  indirect?: { buffer: GPUBuffer; offset: number };
}

/**
 * Compiles (or reuses) every step's pipeline and makes its uniform buffer and bind group once.
 * The uniforms are in step order (steps without a uniform have none).
 */
export async function buildSteps<L extends Launch>(
  ctx: GPUContext,
  label: string,
  plans: StepPlan[],
  make: (dispatches: StepDispatch[], uniforms: UniformBlock[]) => L,
): Promise<L> {
  const cache = pipelineCache(ctx);
  const pipelines = await Promise.all(plans.map((p) => cache.get(p.spec, p.defines ?? {}, p.constants ?? {})));
  const build = (): L => {
    const uniforms: UniformBlock[] = [];
    const dispatches = plans.map((plan, i): StepDispatch => {
      const layout = cache.bindGroupLayout(plan.spec);
      const entries: GPUBindGroupEntry[] = [];
      for (const b of plan.spec.bindings) {
        if (b.kind === 'uniform') {
          if (!plan.spec.uniform) throw new KernelError(`${label}: spec ${plan.spec.file} has a uniform binding but no uniform layout`);
          const u = new UniformBlock(ctx, plan.spec.uniform, plan.uniform ?? {}, `${label}#${i}`);
          uniforms.push(u);
          entries.push({ binding: b.binding, resource: { buffer: u.buffer } });
        } else {
          const buf = plan.buffers[b.name];
          if (!buf) throw new KernelError(`${label}: no buffer for binding ${b.name} of ${plan.spec.file}`);
          entries.push({ binding: b.binding, resource: bindingResource(buf) });
        }
      }
      const bindGroup = ctx.device.createBindGroup({ label: `${label}#${i}`, layout, entries });
      return { pipeline: pipelines[i]!, bindGroup, workgroups: plan.workgroups, indirect: plan.indirect };
    });
    return make(dispatches, uniforms);
  };
  return ctx.debug ? ctx.scoped(label, build) : build();
}

/**
 * What setCount(n) does to a launch (see countSetter): check(n), which throws on what does not
 * fit; then n into the uniform field `field` of every step and each dispatch's grid
 * `workgroups(n, its grid)`, each when given.
 */
export interface CountSpec {
  check: (n: number) => void;
  field?: string;
  workgroups?: (n: number, grid: readonly [number, number, number]) => [number, number, number];
}

/** The setCount of a launch over `dispatches` and `uniforms`, as `c` says. */
export function countSetter(dispatches: readonly Dispatch[], uniforms: readonly UniformBlock[], c: CountSpec): (n: number) => void {
  return (n) => {
    c.check(n);
    if (c.field) for (const u of uniforms) u.set(c.field, n);
    if (c.workgroups) for (const d of dispatches) d.workgroups = c.workgroups(n, d.workgroups);
  };
}

/** A step of buildLaunch: what differs between the dispatches of one pipeline. */
export type DispatchPlan = Pick<StepPlan, 'uniform' | 'buffers' | 'workgroups'>;

/**
 * A Launch of dispatches that all run one pipeline (spec, defines, constants), one per plan (one
 * per weight part, say); setCount per `count` (without it the launch has a fixed size).
 */
export async function buildLaunch(
  ctx: GPUContext, label: string, spec: KernelSpec, defines: Defines, constants: Constants, plans: DispatchPlan[], count?: CountSpec,
): Promise<Launch> {
  const steps = plans.map((p): StepPlan => ({ spec, defines, constants, ...p }));
  return buildSteps(ctx, label, steps, (d, u) => new Launch(label, d, u, count && countSetter(d, u, count)));
}

/** Splits a BufferRef into buffer and element offset. */
export function unref(r: BufferRef): { buffer: GPUBuffer; offset: number } {
  return 'buffer' in r ? { buffer: r.buffer, offset: r.offset ?? 0 } : { buffer: r, offset: 0 };
}

/** Checks that `elements` 4-byte elements (or `bytesPer`-byte ones) fit in a buffer after its offset. */
export function need(label: string, r: { buffer: GPUBuffer; offset: number }, elements: number, bytesPer = 4): void {
  if (!Number.isInteger(r.offset) || r.offset < 0) throw new RangeError(`${label}: offset ${r.offset} is not a non-negative integer`);
  if (elements > 0 && (r.offset + elements) * bytesPer > r.buffer.size) {
    throw new RangeError(`${label}: needs ${r.offset + elements} elements (offset ${r.offset} + ${elements}) but the buffer holds ${Math.floor(r.buffer.size / bytesPer)}`);
  }
}

export function isPow2(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** A power-of-two workgroup size in min..max (default: the device limit, at most 1024). */
export function checkWg(label: string, wg: number, ctx: GPUContext, min = 32, max = Math.min(1024, ctx.limits.maxComputeInvocationsPerWorkgroup)): void {
  if (!isPow2(wg) || wg < min || wg > max) throw new KernelError(`${label}: workgroup size ${wg} must be a power of two in ${min}..${max}`);
}

/** The weight's type has a kernel and its buffers still exist. */
export function checkWeight(label: string, w: WeightTensor): void {
  if (!KERNEL_TYPES.includes(w.type)) throw new UnsupportedQuantError(`${label}: no kernel for ${ggmlTypeName(w.type)} (${w.name})`, w.type);
  if (w.parts.length === 0) throw new KernelError(`${label}: weight ${w.name} was freed`);
}

/** quant.wgsl's define for a weight type (F32, Q4_K …). */
export function typeDefine(type: GGMLType): Record<string, boolean> {
  return { [ggmlTypeName(type)]: true };
}

/**
 * One dispatch on one pipeline with its uniform block (whose layout has an `n_tokens` field), for
 * the per-token kernels of src/gpu/gated.ts and src/gpu/deltanet.ts: setCount(n) checks n
 * (`onCount` throws on what does not fit), rewrites n_tokens and the grid `workgroups(n)`.
 */
export async function singleLaunch(
  ctx: GPUContext, label: string, spec: KernelSpec, constants: Constants, uniform: Record<string, number>,
  buffers: Record<string, GPUBuffer>, workgroups: (n: number) => [number, number, number], onCount: (n: number) => void,
): Promise<Launch> {
  const check = (n: number) => {
    if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`${label}: token count ${n} is not a non-negative integer`);
    onCount(n);
  };
  return buildLaunch(ctx, label, spec, {}, constants, [{ uniform, buffers, workgroups: workgroups(uniform.n_tokens!) }], { check, field: 'n_tokens', workgroups });
}
