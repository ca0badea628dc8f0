// Launchers of deepseek2's own kernels (src/arch/mla.ts records the layer): the rope part of the
// MLA query (mla.wgsl) and DeepSeek's router (moe_route_general.wgsl). Both as src/cpu: mla.ts,
// ops.ts moeRouteGeneral.
import type { RouterSpec } from '../config.js';
import type { GPUContext } from '../runtime/device.js';
import { KernelError, linearGrid, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';
import { buildSteps, checkWg, countSetter, need, StepLaunch, unref, type BufferRef } from './steps.js';

export const MLA_Q_ROPE: KernelSpec = {
  file: 'mla.wgsl',
  entryPoint: 'mla_q_rope',
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'q', kind: 'read-only-storage' },
    { binding: 2, name: 'pos', kind: 'read-only-storage' },
    { binding: 3, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('MlaRopeParams', [
    ['n_heads', 'u32'],
    ['n_tokens', 'u32'],
    ['n_rot', 'u32'],
    ['q_stride', 'u32'],
    ['q_head_stride', 'u32'],
    ['q_rope_offset', 'u32'],
    ['out_stride', 'u32'],
    ['out_head_stride', 'u32'],
    ['out_offset', 'u32'],
    ['theta_scale', 'f32'],
    ['freq_scale', 'f32'],
    ['ext_factor', 'f32'],
    ['corr_lo', 'f32'],
    ['corr_hi', 'f32'],
    ['mscale', 'f32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
    ['_pad2', 'u32'],
    ['_pad3', 'u32'],
    ['_pad4', 'u32'],
  ]),
  overrides: ['WG'],
};

export const MOE_ROUTE_GENERAL: KernelSpec = {
  file: 'moe_route_general.wgsl',
  entryPoint: 'route_general',
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'logits', kind: 'read-only-storage' },
    { binding: 2, name: 'ids', kind: 'storage' },
    { binding: 3, name: 'weights', kind: 'storage' },
  ],
  uniform: uniformSpec('RouteGeneralParams', [
    ['n_tokens', 'u32'],
    ['n_expert', 'u32'],
    ['k', 'u32'],
    ['normalize', 'u32'],
    ['logits_offset', 'u32'],
    ['logits_stride', 'u32'],
    ['n_groups', 'u32'],
    ['groups_used', 'u32'],
    ['scale', 'f32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
    ['_pad2', 'u32'],
  ]),
  overrides: ['WG', 'MAX_EXPERT', 'GATING'],
};

/** MOE_ROUTE_GENERAL with the selection bias (exp_probs_b) bound. */
export const MOE_ROUTE_GENERAL_BIAS: KernelSpec = {
  ...MOE_ROUTE_GENERAL,
  defines: { SEL_BIAS: true },
  bindings: [...MOE_ROUTE_GENERAL.bindings, { binding: 4, name: 'sel_bias', kind: 'read-only-storage' }],
};

/** The specs of this module, for the binding reflection test. */
export const MLA_SPECS: Readonly<Record<string, KernelSpec>> = { MLA_Q_ROPE, MOE_ROUTE_GENERAL, MOE_ROUTE_GENERAL_BIAS };

export interface MlaQRopeArgs {
  /** f32 q: head h of token t at offset + t·qStride + h·qHeadStride; its rope part at + qRopeOffset */
  q: BufferRef;
  /** u32 [nTokens] positions */
  positions: BufferRef;
  /** f32 Q: head h of token t's rope part at offset + t·outStride + h·outHeadStride + outOffset */
  out: BufferRef;
  nHeads: number;
  nRot: number;
  qStride: number;
  qHeadStride: number;
  qRopeOffset: number;
  outStride: number;
  outHeadStride: number;
  outOffset: number;
  base: number;
  freqScale?: number;
  /** YaRN (config.ts AttentionSpec.yarn), default none */
  yarn?: { extFactor: number; corrDims: [number, number]; mscale: number };
  nTokens?: number;
  workgroupSize?: number;
}

/** The rope part of every query head (adjacent pairs) into the assembled query. setCount(n) sets the tokens. */
export async function createMlaQRope(ctx: GPUContext, a: MlaQRopeArgs): Promise<StepLaunch> {
  const wg = a.workgroupSize ?? 32;
  checkWg('mla_q_rope', wg, ctx);
  if (!(a.nRot >= 2 && a.nRot % 2 === 0)) throw new KernelError(`mla_q_rope: n_rot ${a.nRot} must be even`);
  const q = unref(a.q);
  const pos = unref(a.positions);
  const out = unref(a.out);
  if (q.offset !== 0 || out.offset !== 0 || pos.offset !== 0) throw new KernelError('mla_q_rope: q, positions and out must start at offset 0 (use qRopeOffset / outOffset)');
  const check = (n: number) => {
    need('mla_q_rope q', q, (n - 1) * a.qStride + (a.nHeads - 1) * a.qHeadStride + a.qRopeOffset + a.nRot);
    need('mla_q_rope positions', pos, n);
    need('mla_q_rope out', out, (n - 1) * a.outStride + (a.nHeads - 1) * a.outHeadStride + a.outOffset + a.nRot);
  };
  const n0 = a.nTokens ?? 1;
  check(n0);
  return buildSteps(
    ctx,
    'mla_q_rope',
    [
      {
        spec: MLA_Q_ROPE,
        constants: { WG: wg },
        uniform: {
          n_heads: a.nHeads, n_tokens: n0, n_rot: a.nRot, q_stride: a.qStride, q_head_stride: a.qHeadStride, q_rope_offset: a.qRopeOffset,
          out_stride: a.outStride, out_head_stride: a.outHeadStride, out_offset: a.outOffset,
          theta_scale: Math.fround(Math.pow(a.base, -2 / a.nRot)), freq_scale: a.freqScale ?? 1,
          ext_factor: a.yarn?.extFactor ?? 0, corr_lo: a.yarn?.corrDims[0] ?? 0, corr_hi: a.yarn?.corrDims[1] ?? 0, mscale: a.yarn?.mscale ?? 1,
        },
        buffers: { q: q.buffer, pos: pos.buffer, out: out.buffer },
        workgroups: [a.nHeads, n0, 1],
      },
    ],
    (d, u) => new StepLaunch('mla_q_rope', d, u, countSetter(d, u, { check, field: 'n_tokens', workgroups: (n, [x]) => [x, n, 1] })),
  );
}

export interface MoeRouteGeneralArgs {
  /** f32 router logits: token t's [nExpert] at offset + t·nExpert */
  logits: BufferRef;
  /** u32 [nTokens, k] */
  ids: GPUBuffer;
  /** f32 [nTokens, k] */
  weights: GPUBuffer;
  /** exp_probs_b f32 [nExpert] (router.selectionBias) */
  selectionBias?: GPUBuffer | null;
  router: RouterSpec;
  nExpert: number;
  k: number;
  nTokens?: number;
  workgroupSize?: number;
}

/** DeepSeek's router, one workgroup per token (moe_route_general.wgsl). setCount(n) sets the tokens. */
export async function createMoeRouteGeneral(ctx: GPUContext, a: MoeRouteGeneralArgs): Promise<StepLaunch> {
  const { nExpert, k, router: r } = a;
  if (!(Number.isInteger(nExpert) && nExpert >= 1 && nExpert <= 4096)) throw new KernelError(`moe_route_general: n_expert ${nExpert} not in 1..4096`);
  if (!(Number.isInteger(k) && k >= 1 && k <= nExpert && k <= 64)) throw new KernelError(`moe_route_general: k ${k} not in 1..min(n_expert, 64)`);
  if (r.groups > 32) throw new KernelError(`moe_route_general: at most 32 expert groups, got ${r.groups}`);
  if (r.selectionBias !== !!a.selectionBias) throw new KernelError('moe_route_general: the router has a selection bias exactly when selectionBias is given');
  const wg = a.workgroupSize ?? 64;
  checkWg('moe_route_general', wg, ctx);
  const logits = unref(a.logits);
  const check = (n: number) => {
    if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`moe_route_general: ${n} tokens`);
    need('moe_route_general logits', logits, n * nExpert);
    need('moe_route_general ids', { buffer: a.ids, offset: 0 }, n * k);
    need('moe_route_general weights', { buffer: a.weights, offset: 0 }, n * k);
  };
  const n0 = a.nTokens ?? 1;
  check(n0);
  if (a.selectionBias) need('moe_route_general sel_bias', { buffer: a.selectionBias, offset: 0 }, nExpert);
  const buffers: Record<string, GPUBuffer> = { logits: logits.buffer, ids: a.ids, weights: a.weights };
  if (a.selectionBias) buffers.sel_bias = a.selectionBias;
  return buildSteps(
    ctx,
    'moe_route_general',
    [
      {
        spec: a.selectionBias ? MOE_ROUTE_GENERAL_BIAS : MOE_ROUTE_GENERAL,
        constants: { WG: wg, MAX_EXPERT: nExpert, GATING: r.gating === 'sigmoid' ? 1 : r.gating === 'softmax_weight' ? 2 : 0 },
        uniform: {
          n_tokens: n0, n_expert: nExpert, k, normalize: r.normalize ? 1 : 0, logits_offset: logits.offset, logits_stride: nExpert,
          n_groups: r.groups > 1 ? r.groups : 0, groups_used: r.groupsUsed, scale: r.scale,
        },
        buffers,
        workgroups: linearGrid(ctx, n0),
      },
    ],
    (d, u) => new StepLaunch('moe_route_general', d, u, countSetter(d, u, { check, field: 'n_tokens', workgroups: (n) => linearGrid(ctx, n) })),
  );
}
