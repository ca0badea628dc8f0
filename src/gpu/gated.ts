// Launchers of kernels/gated.wgsl, the gates of the Qwen3.5 hybrids (src/arch/qwen35.ts,
// src/arch/qwen35moe.ts): the DeltaNet output norm RMSNorm(o) ⊙ w ⊙ silu(z) (createGatedRmsNorm),
// gated attention's o ⊙ sigmoid(gate) (createSigmoidGate) and the shared expert's SwiGLU with its
// scalar sigmoid gate (createSwigluShexp). Like src/gpu/ops.ts: the pipeline, uniform buffer and
// bind group are made once; setCount(n) changes the token count; encode() allocates nothing.
import type { GPUContext } from '../runtime/device.js';
import { checkWg, need, singleLaunch, unref, type BufferRef } from './steps.js';

export type { BufferRef };
import { Launch, linearGrid, uniformSpec, type KernelSpec } from '../runtime/pipelines.js';

export const GATED_RMS_NORM: KernelSpec = {
  file: 'gated.wgsl',
  entryPoint: 'gated_rms_norm',
  defines: { GATED_RMS_NORM: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'read-only-storage' },
    { binding: 2, name: 'z', kind: 'read-only-storage' },
    { binding: 3, name: 'weight', kind: 'read-only-storage' },
    { binding: 4, name: 'out', kind: 'storage' },
  ],
  uniform: uniformSpec('GatedNormParams', [
    ['n_tokens', 'u32'],
    ['n_heads', 'u32'],
    ['d', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['z_offset', 'u32'],
    ['z_stride', 'u32'],
    ['out_offset', 'u32'],
    ['out_stride', 'u32'],
    ['eps', 'f32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
  ]),
  overrides: ['WG'],
};

export const SIGMOID_GATE: KernelSpec = {
  file: 'gated.wgsl',
  entryPoint: 'sigmoid_gate',
  defines: { SIGMOID_GATE: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'gate', kind: 'read-only-storage' },
    { binding: 2, name: 'o', kind: 'storage' },
  ],
  uniform: uniformSpec('GateParams', [
    ['width', 'u32'],
    ['n_tokens', 'u32'],
    ['g_offset', 'u32'],
    ['g_stride', 'u32'],
    ['o_offset', 'u32'],
    ['o_stride', 'u32'],
    ['_pad0', 'u32'],
    ['_pad1', 'u32'],
  ]),
  overrides: ['WG'],
};

export const SWIGLU_SHEXP: KernelSpec = {
  file: 'gated.wgsl',
  entryPoint: 'swiglu_shexp',
  defines: { SWIGLU_SHEXP: true },
  bindings: [
    { binding: 0, name: 'P', kind: 'uniform' },
    { binding: 1, name: 'x', kind: 'read-only-storage' },
    { binding: 2, name: 'w', kind: 'read-only-storage' },
    { binding: 3, name: 'gu', kind: 'read-only-storage' },
    { binding: 4, name: 'act', kind: 'storage' },
    { binding: 5, name: 'gate', kind: 'storage' },
  ],
  uniform: uniformSpec('ShexpParams', [
    ['n_embd', 'u32'],
    ['n_ff', 'u32'],
    ['n_tokens', 'u32'],
    ['x_offset', 'u32'],
    ['x_stride', 'u32'],
    ['gu_offset', 'u32'],
    ['gu_stride', 'u32'],
    ['up_offset', 'u32'],
    ['act_offset', 'u32'],
    ['act_stride', 'u32'],
    ['gate_offset', 'u32'],
    ['_pad0', 'u32'],
  ]),
  overrides: ['WG', 'UNGATED'],
};

/** The specs of this file, for binding checks (tests/gpu/qwen35-kernels.test.ts). */
export const GATED_SPECS: Readonly<Record<string, KernelSpec>> = { GATED_RMS_NORM, SIGMOID_GATE, SWIGLU_SHEXP };


export interface GatedRmsNormArgs {
  /** f32: head h of token t at offset + t·xStride + h·headDim */
  x: BufferRef;
  /** f32 gate z, same layout with zStride */
  z: BufferRef;
  /** f32 [headDim] (ssm_norm), from offset 0 */
  weight: GPUBuffer;
  /** f32 output, same layout with outStride; must not be x's or z's buffer */
  out: BufferRef;
  nHeads: number;
  headDim: number;
  eps: number;
  /** tokens (setCount changes it); default 1 */
  nTokens?: number;
  /** default nHeads·headDim */
  xStride?: number;
  zStride?: number;
  outStride?: number;
  /** threads per workgroup (power of two), default 64 */
  workgroupSize?: number;
}

/** out = RMSNorm(x_h) ⊙ weight ⊙ silu(z_h) for every head h of every token. */
export async function createGatedRmsNorm(ctx: GPUContext, a: GatedRmsNormArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 64;
  checkWg('gated_rms_norm', wg, ctx);
  const x = unref(a.x);
  const z = unref(a.z);
  const out = unref(a.out);
  const row = a.nHeads * a.headDim;
  const xStride = a.xStride ?? row;
  const zStride = a.zStride ?? row;
  const outStride = a.outStride ?? row;
  need('gated_rms_norm weight', { buffer: a.weight, offset: 0 }, a.headDim);
  const check = (n: number) => {
    if (n === 0) return;
    need('gated_rms_norm x', x, (n - 1) * xStride + row);
    need('gated_rms_norm z', z, (n - 1) * zStride + row);
    need('gated_rms_norm out', out, (n - 1) * outStride + row);
  };
  const n = a.nTokens ?? 1;
  check(n);
  return singleLaunch(
    ctx, 'gated_rms_norm', GATED_RMS_NORM, { WG: wg },
    {
      n_tokens: n, n_heads: a.nHeads, d: a.headDim, x_offset: x.offset, x_stride: xStride, z_offset: z.offset, z_stride: zStride,
      out_offset: out.offset, out_stride: outStride, eps: a.eps,
    },
    { x: x.buffer, z: z.buffer, weight: a.weight, out: out.buffer },
    (m) => [a.nHeads, m, 1],
    check,
  );
}

export interface SigmoidGateArgs {
  /** f32 gate: token t's [width] at offset + t·gateStride */
  gate: BufferRef;
  /** f32 values gated in place: token t's [width] at offset + t·oStride; not gate's buffer */
  o: BufferRef;
  width: number;
  nTokens?: number;
  /** default width */
  gateStride?: number;
  /** default width */
  oStride?: number;
  /** default 256 */
  workgroupSize?: number;
}

/** o ⊙= sigmoid(gate), in place (gated attention's output gate). */
export async function createSigmoidGate(ctx: GPUContext, a: SigmoidGateArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 256;
  checkWg('sigmoid_gate', wg, ctx);
  const gate = unref(a.gate);
  const o = unref(a.o);
  const gStride = a.gateStride ?? a.width;
  const oStride = a.oStride ?? a.width;
  const check = (n: number) => {
    if (n === 0) return;
    need('sigmoid_gate gate', gate, (n - 1) * gStride + a.width);
    need('sigmoid_gate o', o, (n - 1) * oStride + a.width);
  };
  const n = a.nTokens ?? 1;
  check(n);
  return singleLaunch(
    ctx, 'sigmoid_gate', SIGMOID_GATE, { WG: wg },
    { width: a.width, n_tokens: n, g_offset: gate.offset, g_stride: gStride, o_offset: o.offset, o_stride: oStride },
    { gate: gate.buffer, o: o.buffer },
    (m) => linearGrid(ctx, Math.ceil((m * a.width) / wg)),
    check,
  );
}

export interface SwigluShexpArgs {
  /** f32 input: token t's [nEmbd] at offset + t·xStride */
  x: BufferRef;
  /** f32 [nEmbd] (ffn_gate_inp_shexp), from offset 0; with `ungated` any buffer (not read) */
  w: GPUBuffer;
  /** no gate: act = silu(gate) ⊙ up (deepseek2's shared experts); the gate output is then 1 */
  ungated?: boolean;
  /** f32: token t's gate [nFf] at offset + t·guStride and up [nFf] at + upOffset */
  gu: BufferRef;
  /** f32 output: token t's [nFf] at offset + t·actStride */
  act: BufferRef;
  /** f32 [nTokens]: the sigmoid gate of each token */
  gate: BufferRef;
  nEmbd: number;
  nFf: number;
  nTokens?: number;
  /** default nEmbd */
  xStride?: number;
  /** default 2·nFf */
  guStride?: number;
  /** default nFf */
  upOffset?: number;
  /** default nFf */
  actStride?: number;
  /** default 256 */
  workgroupSize?: number;
}

/** act = silu(gate) ⊙ up · sigmoid(w·x) per token (the qwen35moe shared expert's activation). */
export async function createSwigluShexp(ctx: GPUContext, a: SwigluShexpArgs): Promise<Launch> {
  const wg = a.workgroupSize ?? 256;
  checkWg('swiglu_shexp', wg, ctx);
  const x = unref(a.x);
  const gu = unref(a.gu);
  const act = unref(a.act);
  const gate = unref(a.gate);
  const xStride = a.xStride ?? a.nEmbd;
  const guStride = a.guStride ?? 2 * a.nFf;
  const upOffset = a.upOffset ?? a.nFf;
  const actStride = a.actStride ?? a.nFf;
  if (!a.ungated) need('swiglu_shexp w', { buffer: a.w, offset: 0 }, a.nEmbd);
  const check = (n: number) => {
    if (n === 0) return;
    need('swiglu_shexp x', x, (n - 1) * xStride + a.nEmbd);
    need('swiglu_shexp gu', gu, (n - 1) * guStride + Math.max(a.nFf, upOffset + a.nFf));
    need('swiglu_shexp act', act, (n - 1) * actStride + a.nFf);
    need('swiglu_shexp gate', gate, n);
  };
  const n = a.nTokens ?? 1;
  check(n);
  return singleLaunch(
    ctx, 'swiglu_shexp', SWIGLU_SHEXP, { WG: wg, UNGATED: !!a.ungated },
    {
      n_embd: a.nEmbd, n_ff: a.nFf, n_tokens: n, x_offset: x.offset, x_stride: xStride, gu_offset: gu.offset, gu_stride: guStride,
      up_offset: upOffset, act_offset: act.offset, act_stride: actStride, gate_offset: gate.offset,
    },
    { x: x.buffer, w: a.w, gu: gu.buffer, act: act.buffer, gate: gate.buffer },
    (m) => linearGrid(ctx, m),
    check,
  );
}
