// Launcher of kernels/sample.wgsl: the k best logits (ids and values) selected on the GPU, so a
// decode step reads back 8·k bytes instead of the whole vocabulary. Greedy is k = 1.
import { createStorage } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';
import { buildSteps, checkWg, need, StepLaunch, unref, type BufferRef } from './steps.js';

const TOPK_BINDINGS = [
  { binding: 0, name: 'P', kind: 'uniform' },
  { binding: 1, name: 'logits', kind: 'read-only-storage' },
  { binding: 2, name: 'part', kind: 'storage' },
  { binding: 3, name: 'out', kind: 'storage' },
] as const;
const TOPK_PARAMS = uniformSpec('TopKParams', [
  ['n', 'u32'],
  ['k', 'u32'],
  ['block_len', 'u32'],
  ['n_blocks', 'u32'],
  ['logits_offset', 'u32'],
  ['_pad0', 'u32'],
  ['_pad1', 'u32'],
  ['_pad2', 'u32'],
]);

export const TOPK_BLOCK: KernelSpec = { file: 'sample.wgsl', entryPoint: 'block_topk', bindings: TOPK_BINDINGS, uniform: TOPK_PARAMS, overrides: ['WG'] };
export const TOPK_MERGE: KernelSpec = { ...TOPK_BLOCK, entryPoint: 'merge_topk' };

/** Every spec of this module by name (for the binding reflection test). */
export const SAMPLE_SPECS: Readonly<Record<string, KernelSpec>> = { TOPK_BLOCK, TOPK_MERGE };

/** Id of an empty candidate slot (k larger than the selectable logits). */
export const TOPK_NONE = 0xffffffff;

export interface TopKArgs {
  /** f32 [n] logits */
  logits: BufferRef;
  n: number;
  /** largest k setK() accepts (sizes the scratch), default 64 */
  maxK?: number;
  /** k of the first run, default 1; setK() changes it */
  k?: number;
  /** u32 [2·maxK] output: ids, then values as f32 bits (default: allocated) */
  out?: GPUBuffer;
  /** block_topk workgroups (default: about n / 2048, at most 64) */
  blocks?: number;
  /** threads per workgroup (power of two), default 128 */
  workgroupSize?: number;
}

/** Top-k launch: `out` holds the result after the submit; setK(k) changes k (≤ maxK). */
export class TopKLaunch extends StepLaunch {
  k = 1;
  maxK = 1;
  /** u32 [2·maxK]: ids in [0, k), value bits in [k, 2k) */
  out!: GPUBuffer;
  setK(k: number): void {
    this.setCount(k);
  }
  /** bytes of the result for the current k */
  get resultBytes(): number {
    return 8 * this.k;
  }
}

/**
 * Selects the k largest of n logits (descending, ties → lower id) in two dispatches:
 * `block_topk` over (n_blocks) workgroups, then `merge_topk` over one.
 */
export async function createTopK(ctx: GPUContext, a: TopKArgs): Promise<TopKLaunch> {
  const { n } = a;
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`topk: n = ${n}`);
  const maxK = a.maxK ?? 64;
  if (!(Number.isInteger(maxK) && maxK >= 1 && maxK <= 1024)) throw new KernelError(`topk: maxK ${maxK} not in 1..1024`);
  const wg = a.workgroupSize ?? 128;
  checkWg('topk', wg, ctx);
  const logits = unref(a.logits);
  need('topk logits', logits, n);
  const nBlocks = a.blocks ?? Math.max(1, Math.min(64, Math.ceil(n / 2048)));
  const blockLen = Math.ceil(n / nBlocks);
  const owned: GPUBuffer[] = [];
  const part = createStorage(ctx, nBlocks * maxK * 8, 'topk.part');
  owned.push(part);
  let out = a.out;
  if (!out) owned.push((out = createStorage(ctx, maxK * 8, 'topk.out')));
  if (out.size < maxK * 8) throw new RangeError(`topk: out holds ${out.size} bytes, needs ${maxK * 8}`);
  const check = (k: number) => {
    if (!(Number.isInteger(k) && k >= 1 && k <= maxK)) throw new RangeError(`topk: k = ${k} not in 1..${maxK}`);
  };
  const k0 = a.k ?? 1;
  check(k0);
  const uniform = { n, k: k0, block_len: blockLen, n_blocks: nBlocks, logits_offset: logits.offset };
  const buffers = { logits: logits.buffer, part, out };
  const launch = await buildSteps(
    ctx,
    'topk',
    [
      { spec: TOPK_BLOCK, constants: { WG: wg }, uniform, buffers, workgroups: [nBlocks, 1, 1] },
      { spec: TOPK_MERGE, constants: { WG: wg }, uniform, buffers, workgroups: [1, 1, 1] },
    ],
    (d, u) =>
      new TopKLaunch('topk', d, u, (k) => {
        check(k);
        for (const ub of launch.uniforms) ub.set('k', k);
        launch.k = k;
      }),
  );
  launch.k = k0;
  launch.maxK = maxK;
  launch.out = out;
  launch.own(ctx, ...owned);
  return launch;
}

/** Decodes the bytes of a top-k result into ids and values, dropping empty slots. */
export function decodeTopK(bytes: ArrayBuffer, k: number): { ids: Uint32Array; logits: Float32Array } {
  const u = new Uint32Array(bytes, 0, 2 * k);
  const f = new Float32Array(bytes, 0, 2 * k);
  let m = 0;
  while (m < k && u[m] !== TOPK_NONE) m++;
  return { ids: u.slice(0, m), logits: f.slice(k, k + m) };
}
