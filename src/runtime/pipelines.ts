// Kernels on disk → compute pipelines, and the Launch object that a forward pass encodes.
//
// Three levels of specialisation (docs/kernels.md):
//   - `override` constants (workgroup size, rows per workgroup …): `constants` of getPipeline();
//   - a tiny preprocessor for what overrides cannot change (weight type, MoE vs dense, subgroups):
//     `#include "file.wgsl"` (each file once), `#if NAME` / `#if !NAME` / `#if A || B` / `#elif …` /
//     `#else` / `#endif` over `defines` (a name is true when defined and not false/0);
//   - a small uniform struct per dispatch, described by a UniformSpec (see buffers.ts UniformBlock).
//
// Every launcher declares its bindings as a KernelSpec; the pipeline layout is built from it (not
// 'auto'), and tests/gpu/bindings.test.ts checks each spec against the WGSL with wgsl_reflect.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MoetError } from '../errors.js';
import type { GPUContext } from './device.js';
import type { UniformBlock } from './buffers.js';

/** A WGSL source did not compile or a kernel was misused. */
export class KernelError extends MoetError {}

export type Defines = Readonly<Record<string, boolean | number>>;
export type Constants = Readonly<Record<string, number | boolean>>;

export type BindingKind = 'uniform' | 'storage' | 'read-only-storage';

export interface BindingSpec {
  /** @binding(n) in @group(0) */
  binding: number;
  /** the WGSL variable name */
  name: string;
  kind: BindingKind;
}

export type UniformFieldType = 'u32' | 'i32' | 'f32';
export interface UniformField {
  name: string;
  type: UniformFieldType;
  /** byte offset in the struct */
  offset: number;
}
export interface UniformSpec {
  /** WGSL struct name */
  struct: string;
  /** struct size in bytes (a multiple of 16) */
  size: number;
  fields: readonly UniformField[];
}

/** What a launcher binds, in a form both the pipeline builder and the reflection test read. */
export interface KernelSpec {
  /** file under kernels/ */
  file: string;
  entryPoint: string;
  /** defines this spec always adds (e.g. { MOE: true }) */
  defines?: Defines;
  /**
   * The define sets a launcher may add on top (each one is reflected by the binding test), e.g.
   * one per weight type. Default: [{}].
   */
  variants?: readonly Defines[];
  /** every binding of @group(0), uniform included */
  bindings: readonly BindingSpec[];
  /** layout of the uniform binding's struct, if the kernel has one */
  uniform?: UniformSpec;
  /** the `override` constants a launcher may set (checked against the WGSL and at launch) */
  overrides?: readonly string[];
}

/** Builds a UniformSpec from (name, type) pairs: 4-byte fields packed in order, size rounded to 16. */
export function uniformSpec(struct: string, fields: ReadonlyArray<readonly [string, UniformFieldType]>): UniformSpec {
  return {
    struct,
    size: Math.ceil((fields.length * 4) / 16) * 16,
    fields: fields.map(([name, type], i) => ({ name, type, offset: i * 4 })),
  };
}

// ------------------------------------------------------------------------------------------------
// Kernel sources
// ------------------------------------------------------------------------------------------------

let kernelsDirCache: string | undefined;

/**
 * The kernels/ directory of the moet package: found by walking up from this module until a
 * package.json named "moet" sits next to kernels/ (works from src/ via tsx/vitest and from dist/).
 * MOET_KERNELS_DIR overrides it.
 */
export function kernelsDir(): string {
  if (kernelsDirCache) return kernelsDirCache;
  const env = process.env.MOET_KERNELS_DIR;
  if (env) return (kernelsDirCache = resolve(env));
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'kernels'))) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'moet') return (kernelsDirCache = join(dir, 'kernels'));
      } catch {
        /* not ours */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new KernelError('cannot find the kernels/ directory of the moet package; set MOET_KERNELS_DIR');
    dir = up;
  }
}

const fileCache = new Map<string, string>();
/** Reads kernels/<name> (cached). */
export function readKernelFile(name: string): string {
  let src = fileCache.get(name);
  if (src === undefined) {
    const path = join(kernelsDir(), name);
    if (!existsSync(path)) throw new KernelError(`kernel file not found: ${path}`);
    src = readFileSync(path, 'utf8');
    fileCache.set(name, src);
  }
  return src;
}

function isTrue(defines: Defines, name: string): boolean {
  const v = defines[name];
  return v !== undefined && v !== false && v !== 0;
}

/**
 * The preprocessor. Lines starting with `#` are directives:
 *   #include "name.wgsl"     inserted once per top-level call (later includes of the same file are empty)
 *   #if NAME | #if !NAME | #if A || !B     NAME true ⇔ defined and not false/0
 *   #elif (same conditions), #else, #endif   (nesting allowed)
 * Anything else starting with `#` is an error; so is an unbalanced #if.
 * @param read returns the text of an included file (default: kernels/<name>)
 */
export function preprocess(source: string, defines: Defines = {}, read: (name: string) => string = readKernelFile, fileName = '<source>'): string {
  const included = new Set<string>();
  const out: string[] = [];
  const run = (src: string, file: string): void => {
    // stack of: active (lines emitted), taken (some branch already taken), parentActive
    const stack: { active: boolean; taken: boolean; parent: boolean; line: number }[] = [];
    const active = () => (stack.length ? stack[stack.length - 1]!.active : true);
    const lines = src.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const t = line.trim();
      if (!t.startsWith('#')) {
        if (active()) out.push(line);
        continue;
      }
      const where = `${file}:${i + 1}`;
      const m = /^#(\w+)\s*(.*?)\s*$/.exec(t);
      if (!m) throw new KernelError(`${where}: bad directive "${t}"`);
      const [, dir, arg] = m as unknown as [string, string, string];
      const cond = (): boolean =>
        arg.split('||').some((term) => {
          const c = /^(!?)\s*([A-Za-z_]\w*)$/.exec(term.trim());
          if (!c) throw new KernelError(`${where}: #${dir} takes NAME, !NAME or alternatives joined by ||, got "${arg}"`);
          const v = isTrue(defines, c[2]!);
          return c[1] ? !v : v;
        });
      switch (dir) {
        case 'include': {
          const inc = /^"([^"]+)"$/.exec(arg);
          if (!inc) throw new KernelError(`${where}: #include needs "file"`);
          if (!active()) break;
          const name = inc[1]!;
          if (included.has(name)) break;
          included.add(name);
          run(read(name), name);
          break;
        }
        case 'if': {
          const parent = active();
          const v = parent && cond();
          stack.push({ active: v, taken: v, parent, line: i + 1 });
          break;
        }
        case 'elif': {
          const top = stack[stack.length - 1];
          if (!top) throw new KernelError(`${where}: #elif without #if`);
          const v = top.parent && !top.taken && cond();
          top.active = v;
          top.taken ||= v;
          break;
        }
        case 'else': {
          const top = stack[stack.length - 1];
          if (!top) throw new KernelError(`${where}: #else without #if`);
          top.active = top.parent && !top.taken;
          top.taken = true;
          break;
        }
        case 'endif':
          if (!stack.pop()) throw new KernelError(`${where}: #endif without #if`);
          break;
        default:
          throw new KernelError(`${where}: unknown directive #${dir}`);
      }
    }
    if (stack.length) throw new KernelError(`${file}:${stack[stack.length - 1]!.line}: #if without #endif`);
  };
  run(source, fileName);
  return out.join('\n');
}

/** The WGSL a spec compiles to with extra defines (what getPipeline compiles, what the test reflects). */
export function kernelSource(spec: KernelSpec, defines: Defines = {}): string {
  return preprocess(readKernelFile(spec.file), { ...spec.defines, ...defines }, readKernelFile, spec.file);
}

function stableKey(o: Readonly<Record<string, unknown>> | undefined): string {
  if (!o) return '';
  return Object.keys(o)
    .sort()
    .map((k) => `${k}=${String(o[k])}`)
    .join(',');
}

// ------------------------------------------------------------------------------------------------
// Pipeline cache
// ------------------------------------------------------------------------------------------------

/**
 * Compiles and caches pipelines by (file, entry point, defines, constants). One per GPUContext
 * (`pipelineCache(ctx)`); pipelines live as long as the device.
 */
export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();

  constructor(readonly ctx: GPUContext) {}

  /** The bind group layout of a spec (cached). */
  bindGroupLayout(spec: KernelSpec): GPUBindGroupLayout {
    const key = spec.bindings.map((b) => `${b.binding}:${b.kind}`).join(',');
    let l = this.layouts.get(key);
    if (!l) {
      l = this.ctx.device.createBindGroupLayout({
        label: key,
        entries: spec.bindings.map((b) => ({ binding: b.binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: b.kind } })),
      });
      this.layouts.set(key, l);
    }
    return l;
  }

  /**
   * The pipeline of `spec` compiled with `defines` and override `constants`.
   * @throws KernelError with the compiler's messages and source lines when WGSL does not compile
   */
  get(spec: KernelSpec, defines: Defines = {}, constants: Constants = {}): Promise<GPUComputePipeline> {
    const all = { ...spec.defines, ...defines };
    const modKey = `${spec.file}|${stableKey(all)}`;
    const key = `${modKey}|${spec.entryPoint}|${stableKey(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.build(spec, all, modKey, constants);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  get size(): number {
    return this.pipelines.size;
  }

  private async build(spec: KernelSpec, defines: Defines, modKey: string, constants: Constants): Promise<GPUComputePipeline> {
    const { device } = this.ctx;
    let module = this.modules.get(modKey);
    let code = '';
    if (!module) {
      code = preprocess(readKernelFile(spec.file), defines, readKernelFile, spec.file);
      module = device.createShaderModule({ label: modKey, code });
      this.modules.set(modKey, module);
    }
    const constEntries: Record<string, number> = {};
    for (const [k, v] of Object.entries(constants)) {
      if (spec.overrides && !spec.overrides.includes(k)) throw new KernelError(`${spec.file}:${spec.entryPoint} has no override constant ${k} (has ${spec.overrides.join(', ')})`);
      constEntries[k] = typeof v === 'boolean' ? (v ? 1 : 0) : v;
    }
    const layout = device.createPipelineLayout({ bindGroupLayouts: [this.bindGroupLayout(spec)] });
    try {
      return await this.ctx.track(
        device.createComputePipelineAsync({
          label: `${spec.file}:${spec.entryPoint}`,
          layout,
          compute: { module, entryPoint: spec.entryPoint, constants: constEntries },
        }),
      );
    } catch (err) {
      const info = await module.getCompilationInfo().catch(() => undefined);
      this.modules.delete(modKey);
      if (!code) code = preprocess(readKernelFile(spec.file), defines, readKernelFile, spec.file);
      const lines = code.split('\n');
      const msgs = (info?.messages ?? [])
        .map((m) => `  ${m.type} at line ${m.lineNum}:${m.linePos}: ${m.message}\n    | ${lines[m.lineNum - 1] ?? ''}`)
        .join('\n');
      throw new KernelError(
        `pipeline ${spec.file}:${spec.entryPoint} (defines ${stableKey(defines) || 'none'}; constants ${stableKey(constants) || 'none'}) failed: ${(err as Error).message}\n${msgs}`,
        { cause: err },
      );
    }
  }
}

const caches = new WeakMap<GPUContext, PipelineCache>();
/** The pipeline cache of a context (one per context). */
export function pipelineCache(ctx: GPUContext): PipelineCache {
  let c = caches.get(ctx);
  if (!c) caches.set(ctx, (c = new PipelineCache(ctx)));
  return c;
}

// ------------------------------------------------------------------------------------------------
// Launches: everything one kernel call needs, built once, encoded many times
// ------------------------------------------------------------------------------------------------

/** One dispatch of a launch: its pipeline, its bind group (group 0) and its grid. */
export interface Dispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  /** workgroup counts; a dispatch with a 0 count is skipped */
  workgroups: [number, number, number];
}

/**
 * A kernel call with its bind groups and uniform buffers made once. encode() records it into a
 * compute pass and allocates nothing, so a decode step is just encode() calls and one submit.
 * Uniform values changed through `uniforms[i].set()` / setCount() reach the GPU with
 * queue.writeBuffer, i.e. they apply to the next submit (as a whole: do not encode the same launch
 * twice with different values in one submit).
 */
export class Launch {
  constructor(
    readonly label: string,
    readonly dispatches: Dispatch[],
    readonly uniforms: UniformBlock[],
    private readonly countSetter?: (n: number) => void,
  ) {}

  /** Records the dispatches (uniforms written first if changed). */
  encode(pass: GPUComputePassEncoder): void {
    for (const u of this.uniforms) u.flush();
    for (const d of this.dispatches) {
      const [x, y, z] = d.workgroups;
      if (x === 0 || y === 0 || z === 0) continue;
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(x, y, z);
    }
  }

  /**
   * Changes the batch size (tokens / vectors / rows / elements, as the launcher documents) without
   * allocating: rewrites the uniform and the grid.
   */
  setCount(n: number): void {
    if (!this.countSetter) throw new KernelError(`${this.label}: this launch has a fixed size`);
    this.countSetter(n);
  }

  /** Frees the uniform buffers (bind groups are garbage collected). */
  dispose(): void {
    for (const u of this.uniforms) u.destroy();
  }
}

/**
 * One launch running `a` then `b` (their dispatches in order, in one pass): a round trip and the
 * product that reads it, or the parts of a split weight. setCount(n) passes n to both (and throws,
 * as theirs do, when they have a fixed size).
 */
export function chainLaunches(a: Launch, b: Launch): Launch {
  return new Launch(`${a.label} → ${b.label}`, [...a.dispatches, ...b.dispatches], [...a.uniforms, ...b.uniforms], (n) => {
    a.setCount(n);
    b.setCount(n);
  });
}

/** Encodes `launches` into one compute pass and submits it. */
export function runLaunches(ctx: GPUContext, launches: readonly Launch[], label = 'moet'): void {
  const enc = ctx.device.createCommandEncoder({ label });
  const pass = enc.beginComputePass({ label });
  for (const l of launches) l.encode(pass);
  pass.end();
  ctx.submit([enc.finish()]);
}

/**
 * Splits a 1-D workgroup count into (x, y) with x ≤ maxComputeWorkgroupsPerDimension; kernels
 * rebuild the linear index as wid.x + wid.y * num_workgroups.x and discard the excess.
 */
export function grid2d(ctx: GPUContext, n: number): [number, number] {
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (n <= max) return [n, 1];
  const y = Math.ceil(n / max);
  return [Math.ceil(n / y), y];
}

/** A dispatch's workgroup counts for n workgroups in a row: grid2d(ctx, n) with z = 1. */
export function linearGrid(ctx: GPUContext, n: number): [number, number, number] {
  const [x, y] = grid2d(ctx, n);
  return [x, y, 1];
}
