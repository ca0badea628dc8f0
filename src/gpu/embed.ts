// Launcher of kernels/embed.wgsl: the token embedding rows, dequantized (createEmbed).
import { buildLaunch, checkWeight, checkWg, need, TYPE_VARIANTS, typeDefine, unref, type BufferRef, type DispatchPlan } from './steps.js';
import { partBinding, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { Launch, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';

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
  return buildLaunch(ctx, `embed ${w.name}`, EMBED, typeDefine(w.type), { WG: wg }, plans, { check, field: 'n_tokens', workgroups: (n, [x]) => [x, n, 1] });
}
