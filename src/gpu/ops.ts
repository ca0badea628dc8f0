// The launchers of the dense kernels, one file per op family:
//   matvec.ts       matvec.wgsl: createMatVec, createMatVecId (MoE, ids on the GPU), createMatVecFused(ByPart)
//   prologue.ts     prologue.wgsl's configuration (the fused matvec's and the MoE FFN's input prologue)
//   matmul.ts       matmul.wgsl: createMatMul (prefill)
//   norm.ts         norm.wgsl: createRmsNorm, createQKNormRope
//   embed.ts        embed.wgsl: createEmbed
//   elementwise.ts  elementwise.wgsl: createAdd, createSwiglu
//   steps.ts        the plumbing every launcher shares (BufferRef, checks, buildLaunch / buildSteps)
// Each `createX(ctx, args)` compiles (or reuses) the pipeline, makes the uniform buffers and bind
// groups once, and returns a Launch: `launch.encode(pass)` records it, `launch.setCount(n)` changes
// the batch size, nothing is allocated per step. Each kernel's bindings are declared as a
// KernelSpec, which builds the pipeline layout and which tests/gpu/bindings.test.ts checks against
// the WGSL (KERNEL_SPECS below).
//
// This module re-exports them all, so that callers need not know the split.
import type { KernelSpec } from '../runtime/pipelines.js';
import { ADD, ADD_INPLACE, SWIGLU, SWIGLU_INPLACE } from './elementwise.js';
import { EMBED } from './embed.js';
import { MATMUL } from './matmul.js';
import { MATVEC, MATVEC_FUSED, MATVEC_FUSED_NORM, MATVEC_FUSED_SWIGLU, MATVEC_ID, MATVEC_ROWS } from './matvec.js';
import {
  QK_NORM_ROPE,
  QK_NORM_ROPE_PAIR,
  QK_NORM_ROPE_PAIR_F16,
  QK_NORM_ROPE_PAIR_F16_KV,
  QK_NORM_ROPE_PAIR_F16_KV_FF,
  QK_NORM_ROPE_PAIR_KV,
  QK_NORM_ROPE_PAIR_KV_FF,
  RMS_NORM,
  RMS_NORM_Q,
} from './norm.js';

export * from './elementwise.js';
export * from './embed.js';
export * from './matmul.js';
export * from './matvec.js';
export * from './norm.js';
export * from './prologue.js';
export { FusedKernelUnsupported, TYPE_VARIANTS, type BufferRef } from './steps.js';

/** Every spec of the dense launchers by name (the binding test iterates it). */
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
