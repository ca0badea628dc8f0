// The WebGPU device: Dawn initialisation (npm `webgpu`), adapter choice, features and limits,
// device-lost handling, debug-mode error capture, buffer tracking and dispose().
//
//   const ctx = await createGPU();          // throws WebGPUUnavailableError without an adapter
//   const buf = ctx.createBuffer({ size, usage, label });   // tracked: freed by ctx.dispose()
//   ctx.submit([encoder.finish()]);         // in debug mode wrapped in error scopes
//   await ctx.track(somePromise);           // rejects with DeviceLostError if the device is lost
//   await ctx.dispose();                    // destroys every buffer and the device; Node can exit
import { DeviceLostError, DisposedError, MoetError, WebGPUUnavailableError } from '../errors.js';

/** A WebGPU error (validation, out-of-memory, internal) caught in debug mode. */
export class GPUErrorCaptured extends MoetError {}

export interface CreateGPUOptions {
  /** default 'high-performance' (a discrete GPU when there is one) */
  powerPreference?: GPUPowerPreference;
  /**
   * Picks the adapter whose info (vendor, architecture, device, description) contains this string,
   * case-insensitively. Default: env MOET_ADAPTER, else the first adapter Dawn offers.
   */
  adapter?: string;
  /**
   * Debug mode: every submit and pipeline creation runs inside error scopes, uncaptured errors are
   * recorded, and the next readback / checkErrors() throws GPUErrorCaptured. Default: env
   * MOET_DEBUG=1 or MOET_GPU_DEBUG=1.
   */
  debug?: boolean;
  /** ask for shader-f16 / subgroups when present (default true); false forces the fallback paths */
  useF16?: boolean;
  useSubgroups?: boolean;
  /** extra Dawn flags passed to `create()`, e.g. ['backend=vulkan'] */
  dawnFlags?: string[];
}

export interface GPUFeatures {
  /** the device has `shader-f16` (WGSL `enable f16;` is allowed) */
  f16: boolean;
  /** the device has `subgroups` (WGSL `enable subgroups;` is allowed) */
  subgroups: boolean;
  /** adapter's subgroup size range (0 when unknown) */
  subgroupMinSize: number;
  subgroupMaxSize: number;
  /** timestamp-query is enabled (for a profiler) */
  timestampQuery: boolean;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** software rasteriser (lavapipe/llvmpipe, SwiftShader, WARP) */
  isSoftware: boolean;
}

/** Limits raised to the adapter's maximum when the device is requested. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
  'maxBindingsPerBindGroup',
] as const;

const INSTALL_HINT =
  'moet needs a Vulkan driver for WebGPU (Dawn). Install your GPU vendor driver, or for software ' +
  'Vulkan on Debian 12: `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` ' +
  '(Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`); check with `vulkaninfo --summary`. ' +
  'Select an adapter with MOET_ADAPTER=<substring of its name>.';

type DawnModule = { create(flags: string[]): GPU; globals: Record<string, unknown> };

let dawn: DawnModule | undefined;
async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  let mod: DawnModule;
  try {
    mod = (await import('webgpu')) as unknown as DawnModule;
  } catch (err) {
    throw new WebGPUUnavailableError(`the npm package "webgpu" (Dawn) could not be loaded: ${(err as Error).message}. ${INSTALL_HINT}`, { cause: err });
  }
  // GPUBufferUsage, GPUMapMode, GPUShaderStage … as globals, as in a browser
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  dawn = mod;
  return mod;
}

function describe(info: GPUAdapterInfo | undefined): AdapterDescription {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const all = `${vendor} ${architecture} ${device} ${description}`.toLowerCase();
  return {
    vendor,
    architecture,
    device,
    description,
    isSoftware: /llvmpipe|lavapipe|swiftshader|software|warp/.test(all),
  };
}

function matches(d: AdapterDescription, needle: string): boolean {
  const n = needle.toLowerCase();
  return [d.vendor, d.architecture, d.device, d.description].some((s) => s.toLowerCase().includes(n));
}

/**
 * Opens the WebGPU device.
 * @throws WebGPUUnavailableError when no adapter (or none matching `adapter`) exists, with how to
 *   install a Vulkan driver.
 */
export async function createGPU(opts: CreateGPUOptions = {}): Promise<GPUContext> {
  const mod = await loadDawn();
  const want = opts.adapter ?? process.env.MOET_ADAPTER ?? '';
  const pref = opts.powerPreference ?? 'high-performance';

  let adapter: GPUAdapter | null = null;
  let instance: GPU | undefined;
  let desc: AdapterDescription | undefined;
  const seen: string[] = [];
  const tryAdapter = async (flags: string[], options: GPURequestAdapterOptions): Promise<boolean> => {
    let a: GPUAdapter | null = null;
    const gpu = mod.create(flags);
    try {
      a = await gpu.requestAdapter(options);
    } catch (err) {
      seen.push(String((err as Error).message ?? err));
      return false;
    }
    if (!a) return false;
    const d = describe(a.info);
    seen.push(`${d.vendor} ${d.device} (${d.description})`.trim());
    if (want && !matches(d, want)) return false;
    adapter = a;
    instance = gpu;
    desc = d;
    return true;
  };
  const base = opts.dawnFlags ?? [];
  const prefs: GPUPowerPreference[] = pref === 'low-power' ? ['low-power', 'high-performance'] : ['high-performance', 'low-power'];
  let found = false;
  for (const p of prefs) {
    if ((found = await tryAdapter(base, { powerPreference: p }))) break;
    if (!want) break; // no name asked for: the preferred adapter or nothing
  }
  // Dawn's own `adapter=` flag matches a substring of info.device over every adapter it enumerates.
  if (!found && want) found = await tryAdapter([...base, `adapter=${want}`], { powerPreference: pref });
  if (!found || !adapter || !desc || !instance) {
    const which = want ? `no WebGPU adapter matches "${want}" (seen: ${seen.join('; ') || 'none'}). ` : 'no WebGPU adapter found. ';
    throw new WebGPUUnavailableError(which + INSTALL_HINT);
  }
  const a: GPUAdapter = adapter;

  const requiredFeatures: GPUFeatureName[] = [];
  const has = (f: string) => a.features.has(f);
  if (opts.useF16 !== false && has('shader-f16')) requiredFeatures.push('shader-f16');
  if (opts.useSubgroups !== false && has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
  if (has('timestamp-query')) requiredFeatures.push('timestamp-query');

  const requiredLimits: Record<string, number> = {};
  for (const k of RAISED_LIMITS) {
    const v = (a.limits as unknown as Record<string, number | undefined>)[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  let device: GPUDevice;
  try {
    device = await a.requestDevice({ requiredFeatures, requiredLimits, label: 'moet' });
  } catch (err) {
    throw new WebGPUUnavailableError(`requestDevice failed on ${desc.device || desc.description}: ${(err as Error).message}. ${INSTALL_HINT}`, { cause: err });
  }
  const info = a.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const features: GPUFeatures = {
    f16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    timestampQuery: device.features.has('timestamp-query'),
  };
  const debug = opts.debug ?? (process.env.MOET_DEBUG === '1' || process.env.MOET_GPU_DEBUG === '1');
  return new GPUContext(instance, device, desc, features, debug);
}

/**
 * An open WebGPU device and everything moet allocated on it. Kernels, weights and activations
 * hang off one context; dispose() releases them all.
 */
export class GPUContext {
  readonly limits: GPUSupportedLimits;
  readonly queue: GPUQueue;
  private readonly buffers = new Set<GPUBuffer>();
  private readonly pending = new Set<(err: Error) => void>();
  private readonly captured: string[] = [];
  private lostError: DeviceLostError | undefined;
  private disposed = false;

  constructor(
    /** the Dawn instance: must stay referenced while the device lives (its GC kills async work) */
    private readonly instance: GPU,
    readonly device: GPUDevice,
    readonly adapter: AdapterDescription,
    readonly features: GPUFeatures,
    readonly debug: boolean,
  ) {
    this.limits = device.limits;
    this.queue = device.queue;
    device.lost.then((info) => {
      if (this.disposed) return;
      this.lostError = new DeviceLostError(
        `the GPU device was lost (${info.reason}): ${info.message || 'no message'}. Reload the model; ` +
          'if this repeats, the GPU driver may have reset (a kernel ran too long) or run out of memory.',
      );
      for (const reject of [...this.pending]) reject(this.lostError);
      this.pending.clear();
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      const msg = `${ev.error.constructor?.name ?? 'GPUError'}: ${ev.error.message}`;
      this.captured.push(msg);
      if (this.debug) process.emitWarning(msg, 'MoetGPUError');
    };
  }

  /** true once the device is lost (not after dispose) */
  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  /** Throws if the context was disposed or its device lost. */
  assertUsable(): void {
    if (this.disposed) throw new DisposedError('the GPU context was disposed');
    if (this.lostError) throw this.lostError;
  }

  /** Creates a buffer that dispose() will destroy. */
  createBuffer(desc: GPUBufferDescriptor): GPUBuffer {
    this.assertUsable();
    const buf = this.device.createBuffer(desc);
    this.buffers.add(buf);
    return buf;
  }

  /** Destroys a buffer made by createBuffer now. */
  destroyBuffer(buf: GPUBuffer): void {
    if (this.buffers.delete(buf)) buf.destroy();
  }

  /** Bytes held by tracked buffers. */
  get allocatedBytes(): number {
    let n = 0;
    for (const b of this.buffers) n += b.size;
    return n;
  }

  /**
   * Wraps a promise that depends on the GPU (mapAsync, onSubmittedWorkDone, pipeline creation):
   * it rejects with DeviceLostError when the device is lost while it is pending, and with
   * DisposedError after dispose().
   */
  track<T>(p: Promise<T>): Promise<T> {
    this.assertUsable();
    return new Promise<T>((resolve, reject) => {
      const onLost = (err: Error) => reject(err);
      this.pending.add(onLost);
      p.then(
        (v) => {
          this.pending.delete(onLost);
          if (this.lostError) reject(this.lostError);
          else resolve(v);
        },
        (err) => {
          this.pending.delete(onLost);
          // a device loss may reject the operation (AbortError) just before `lost` settles: let it
          const settle = () => reject(this.lostError ?? (this.disposed ? new DisposedError('the GPU context was disposed', { cause: err }) : err));
          if (this.lostError || this.disposed) settle();
          else setTimeout(settle, 0);
        },
      );
    });
  }

  /** Submits command buffers; in debug mode inside validation/out-of-memory/internal error scopes. */
  submit(commands: GPUCommandBuffer[]): void {
    this.assertUsable();
    if (!this.debug) {
      this.queue.submit(commands);
      return;
    }
    this.pushScopes();
    this.queue.submit(commands);
    void this.popScopes('submit');
  }

  /**
   * Runs `fn` inside error scopes and throws GPUErrorCaptured if it produced a WebGPU error.
   * Used around pipeline/bind-group creation (always) and by tests.
   */
  async scoped<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
    this.assertUsable();
    this.pushScopes();
    let result: T;
    try {
      result = await fn();
    } finally {
      await this.popScopes(label);
    }
    this.throwCaptured();
    return result;
  }

  /** Waits for the queue and throws GPUErrorCaptured if any WebGPU error was recorded. */
  async checkErrors(): Promise<void> {
    await this.track(this.queue.onSubmittedWorkDone());
    this.throwCaptured();
  }

  /** Errors recorded so far (uncaptured and, in debug mode, scoped). */
  get errors(): readonly string[] {
    return this.captured;
  }

  /** Throws GPUErrorCaptured when errors were recorded (and clears them). */
  throwCaptured(): void {
    if (this.captured.length === 0) return;
    const msgs = this.captured.splice(0);
    throw new GPUErrorCaptured(`WebGPU reported ${msgs.length} error(s):\n${msgs.join('\n')}`);
  }

  private pushScopes(): void {
    this.device.pushErrorScope('validation');
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('internal');
  }

  private async popScopes(label: string): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const err = await this.device.popErrorScope().catch(() => null);
      if (err) this.captured.push(`[${label}] ${err.constructor?.name ?? 'GPUError'}: ${err.message}`);
    }
  }

  /**
   * Frees every tracked buffer and destroys the device. Pending readbacks reject with
   * DisposedError. Idempotent. Afterwards nothing keeps Node's event loop alive.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const err = new DisposedError('the GPU context was disposed while work was pending');
    for (const reject of [...this.pending]) reject(err);
    this.pending.clear();
    for (const b of this.buffers) b.destroy();
    this.buffers.clear();
    this.device.onuncapturederror = null;
    this.device.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
