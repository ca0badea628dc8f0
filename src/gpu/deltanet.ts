// Launchers of the Gated DeltaNet kernels (kernels/deltanet.wgsl) for the Qwen3.5 hybrids: the
// causal depthwise convolution with its state (createSsmConv) and the gated delta-rule recurrence
// with its state resident on the GPU (createGatedDeltaNet). Both process their tokens in order
// inside one dispatch, so the same launch serves prefill (n tokens) and decode (setCount(1)).
// Like src/gpu/ops.ts: pipelines, uniform buffers and bind groups are made once; encode() allocates
// nothing. The states are plain storage buffers owned by the caller (one per layer and sequence:
// conv (kernel−1)·channels floats, delta n_v_heads·d·d floats), zeroed for a new sequence.
import type { GPUContext } from '../runtime/device.js';
import { checkWg, need, singleLaunch, unref, type BufferRef } from './steps.js';

export type { BufferRef };
import { KernelError, Launch, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';

export const SSM_CONV: KernelSpec = {
  file: 'deltanet.wgsl',
  entryPoint: 'ssm_conv',
  defines: { SSM_CONV: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'read-only-storage' },
    { binding: 2, name: 'w', kind: 'read-only-storage' },
    { binding: 3, name: 'state', kind: 'storage' },
    { binding: 4, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('ConvParams', [
    ['channels', 'u32'],
    ['kernel', 'u32'],
    ['n_tokens', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
    ['state_offset', 'u32'],
  ]),
  overrides: ['WG', 'SILU'],
};

export const GATED_DELTA_NET: KernelSpec = {
  file: 'deltanet.wgsl',
  entryPoint: 'gated_delta_net',
  defines: { GATED_DELTA_NET: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'qkv', kind: 'read-only-storage' },
    { binding: 2, name: 'beta', kind: 'read-only-storage' },
    { binding: 3, name: 'alpha', kind: 'read-only-storage' },
    { binding: 4, name: 'dt_bias', kind: 'read-only-storage' },
    { binding: 5, name: 'ssm_a', kind: 'read-only-storage' },
    { binding: 6, name: 'state', kind: 'storage' },
    { binding: 7, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('DeltaParams', [
    ['n_tokens', 'u32'],
    ['n_k_heads', 'u32'],
    ['n_v_heads', 'u32'],
    ['d', 'u32'],
    ['qkv_offset', 'u32'],
    ['qkv_stride', 'u32'],
    ['beta_offset', 'u32'],
    ['beta_stride', 'u32'],
    ['alpha_offset', 'u32'],
    ['alpha_stride', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
    ['state_offset', 'u32'],
    ['eps', 'f32'],
    ['scale', 'f32'],
    ['_pad0', 'u32'],
  ]),
  overrides: ['WG'],
};

/** The specs of this file, for binding checks (tests/gpu/deltanet.test.ts). */
export const DELTANET_KERNEL_SPECS: Readonly<Record<string, KernelSpec>> = { SSM_CONV, GATED_DELTA_NET };

/** Largest conv kernel and head dim the WGSL supports (MAX_K, MAX_D). */
export const MAX_CONV_KERNEL = 8;
export const MAX_HEAD_DIM = 256;


export interface SsmConvArgs {
  /** f32 raw qkv [nTokens, xStride]: token t's channels at offset + t·xStride */
  x: BufferRef;
  /** f32 [channels, kernel] (ssm_conv1d), from offset 0 */
  w: GPUBuffer;
  /** f32 [kernel−1, channels] conv state (updated in place) */
  state: BufferRef;
  /** f32 [nTokens, outStride] */
  out: BufferRef;
  channels: number;
  kernel: number;
  /** tokens per dispatch (setCount changes it); default 1 */
  nTokens?: number;
  /** default channels */
  xStride?: number;
  /** default channels */
  outStride?: number;
  /** apply SiLU after the convolution (default true) */
  silu?: boolean;
  /** threads per workgroup (power of two, default 64) */
  workgroupSize?: number;
}

/**
 * The causal depthwise convolution of nTokens tokens with its state, then SiLU: out[t][c] =
 * Σ_j in[t+j][c]·w[c][j] over in = state ++ x; the state keeps the last kernel−1 raw inputs.
 */
export async function createSsmConv(ctx: GPUContext, a: SsmConvArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 64;
  checkWg('ssm_conv', wg, ctx);
  if (!(Number.isInteger(a.kernel) && a.kernel >= 1 && a.kernel <= MAX_CONV_KERNEL)) {
    throw new KernelError(`ssm_conv: kernel ${a.kernel} must be in 1..${MAX_CONV_KERNEL}`);
  }
  const x = unref(a.x);
  const state = unref(a.state);
  const out = unref(a.out);
  const xStride = a.xStride ?? a.channels;
  const outStride = a.outStride ?? a.channels;
  need('ssm_conv w', { buffer: a.w, offset: 0 }, a.channels * a.kernel);
  need('ssm_conv state', state, (a.kernel - 1) * a.channels);
  const check = (n: number) => {
    if (n > 0) {
      need('ssm_conv x', x, (n - 1) * xStride + a.channels);
      need('ssm_conv out', out, (n - 1) * outStride + a.channels);
    }
  };
  const n = a.nTokens ?? 1;
  check(n);
  return singleLaunch(
    ctx, 'ssm_conv', SSM_CONV, { WG: wg, SILU: a.silu ?? true },
    {
      channels: a.channels, kernel: a.kernel, n_tokens: n, x_offset: x.offset, x_stride: xStride,
      out_offset: out.offset, out_stride: outStride, state_offset: state.offset,
    },
    { x: x.buffer, w: a.w, state: state.buffer, out: out.buffer },
    () => [Math.ceil(a.channels / wg), 1, 1],
    check,
  );
}

export interface GatedDeltaNetArgs {
  /** f32 conv output (after SiLU) [nTokens, qkvStride]: q [nKHeads·d] | k [nKHeads·d] | v [nVHeads·d] */
  qkv: BufferRef;
  /** f32 raw ssm_beta projection [nTokens, betaStride] (sigmoid applied in the kernel) */
  beta: BufferRef;
  /** f32 raw ssm_alpha projection [nTokens, alphaStride] */
  alpha: BufferRef;
  /** f32 [nVHeads] ssm_dt.bias, from offset 0 */
  dtBias: GPUBuffer;
  /** f32 [nVHeads] ssm_a (negative), from offset 0 */
  a: GPUBuffer;
  /** f32 [nVHeads, d, d] recurrent state (updated in place) */
  state: BufferRef;
  /** f32 [nTokens, outStride]: head h of token t at + h·d */
  out: BufferRef;
  nKHeads: number;
  nVHeads: number;
  /** ssm.state_size: head dim of q, k and v (≤ 256) */
  headDim: number;
  /** L2-norm epsilon (llama.cpp: the RMS-norm epsilon) */
  eps: number;
  /** tokens per dispatch (setCount changes it); default 1 */
  nTokens?: number;
  /** default (2·nKHeads + nVHeads)·d */
  qkvStride?: number;
  /** default nVHeads */
  betaStride?: number;
  /** default nVHeads */
  alphaStride?: number;
  /** default nVHeads·d */
  outStride?: number;
  /** threads per workgroup (power of two, default 64); a workgroup owns WG value columns of a head */
  workgroupSize?: number;
}

/**
 * The gated delta rule over nTokens tokens for every v head, state resident (see deltanet.wgsl):
 * L2 norm of q and k, β = sigmoid(beta), g = softplus(alpha + dt_bias)·a, S ← e^g·S,
 * S ← S + k (β(v − Sᵀk))ᵀ, out = Sᵀq / sqrt(d).
 */
export async function createGatedDeltaNet(ctx: GPUContext, a: GatedDeltaNetArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 64;
  checkWg('gated_delta_net', wg, ctx);
  const d = a.headDim;
  if (!(Number.isInteger(d) && d >= 1 && d <= MAX_HEAD_DIM)) throw new KernelError(`gated_delta_net: head dim ${d} must be in 1..${MAX_HEAD_DIM}`);
  if (!(a.nKHeads >= 1 && a.nVHeads % a.nKHeads === 0)) throw new KernelError(`gated_delta_net: ${a.nVHeads} v heads are not a multiple of ${a.nKHeads} k heads`);
  const qkv = unref(a.qkv);
  const beta = unref(a.beta);
  const alpha = unref(a.alpha);
  const state = unref(a.state);
  const out = unref(a.out);
  const qkvStride = a.qkvStride ?? (2 * a.nKHeads + a.nVHeads) * d;
  const betaStride = a.betaStride ?? a.nVHeads;
  const alphaStride = a.alphaStride ?? a.nVHeads;
  const outStride = a.outStride ?? a.nVHeads * d;
  need('gated_delta_net dt_bias', { buffer: a.dtBias, offset: 0 }, a.nVHeads);
  need('gated_delta_net a', { buffer: a.a, offset: 0 }, a.nVHeads);
  need('gated_delta_net state', state, a.nVHeads * d * d);
  const check = (n: number) => {
    if (n > 0) {
      need('gated_delta_net qkv', qkv, (n - 1) * qkvStride + (2 * a.nKHeads + a.nVHeads) * d);
      need('gated_delta_net beta', beta, (n - 1) * betaStride + a.nVHeads);
      need('gated_delta_net alpha', alpha, (n - 1) * alphaStride + a.nVHeads);
      need('gated_delta_net out', out, (n - 1) * outStride + a.nVHeads * d);
    }
  };
  const n = a.nTokens ?? 1;
  check(n);
  return singleLaunch(
    ctx, 'gated_delta_net', GATED_DELTA_NET, { WG: wg },
    {
      n_tokens: n, n_k_heads: a.nKHeads, n_v_heads: a.nVHeads, d, qkv_offset: qkv.offset, qkv_stride: qkvStride,
      beta_offset: beta.offset, beta_stride: betaStride, alpha_offset: alpha.offset, alpha_stride: alphaStride,
      out_offset: out.offset, out_stride: outStride, state_offset: state.offset, eps: a.eps, scale: Math.fround(1 / Math.sqrt(d)),
    },
    { qkv: qkv.buffer, beta: beta.buffer, alpha: alpha.buffer, dt_bias: a.dtBias, ssm_a: a.a, state: state.buffer, out: out.buffer },
    () => [a.nVHeads, Math.ceil(d / wg), 1],
    check,
  );
}
