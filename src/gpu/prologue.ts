// What kernels/prologue.wgsl is asked to prepare, for its includers (the fused matvec,
// src/gpu/matvec.ts, and the MoE decode FFN, src/gpu/moe.ts): the defines, override constants and
// workgroup bytes of an input prologue (RMSNorm, llama.cpp's activation round trip).
import { GGMLType } from '../../gguf/types.js';
import { actQuantBlock, type ActQuantType } from './actquant.js';
import { FusedKernelUnsupported, isPow2 } from './steps.js';
import type { Constants, Defines } from '../runtime/pipelines.js';

/** prologue.wgsl's round-trip define for a vec_dot_type (Q8_1 rounds as Q8_0). */
export function prologueRoundDefine(type: ActQuantType): Defines {
  switch (type) {
    case GGMLType.Q8_K:
      return { PRE_Q8_K: true };
    case GGMLType.Q8_0:
    case GGMLType.Q8_1:
      return { PRE_Q8_0: true };
    case GGMLType.F16:
      return { PRE_F16: true };
    default:
      return { PRE_BF16: true };
  }
}

/** What prologue.wgsl is asked to prepare: `rows` input rows of `cols` values, for WG threads. */
export interface PrologueShape {
  cols: number;
  /** input rows (override PRO_ROWS), default 1 */
  rows?: number;
  /** threads of the includer's workgroup (WG) */
  wg: number;
  norm: boolean;
  round: ActQuantType | null;
  /** the rms_norm workgroup whose reduction order the norm reproduces (PRO_NORM_WG), default 128 */
  normWg?: number;
  /**
   * the weight type of the product reading the prepared rows when it runs one thread per row
   * (ROW_THREADS): the prologue then sets INT_DOT where that product takes integer dots (intDot)
   */
  threadPerRowWeight?: GGMLType;
}

/**
 * True when a thread-per-row product of `type` with a prologue rounding to `round` takes its dots
 * in integers (define INT_DOT, quant.wgsl unit_dot_q): Q4_K / Q6_K weights on a Q8_K input.
 */
export function intDot(type: GGMLType, round: ActQuantType | null | undefined): boolean {
  return round === GGMLType.Q8_K && (type === GGMLType.Q4_K || type === GGMLType.Q6_K);
}

/**
 * prologue.wgsl's defines and overrides for a shape; throws FusedKernelUnsupported when the round
 * trip's block does not divide cols or the norm reduction width does not fit the kernel.
 */
export function prologueConfig(s: PrologueShape): { defines: Defines; constants: Constants; bytes: number } {
  const rows = s.rows ?? 1;
  const normWg = s.normWg ?? 128;
  if (!isPow2(normWg) || normWg / s.wg > 16) throw new FusedKernelUnsupported(`prologue: norm reduction width ${normWg} for ${s.wg} threads (a power of two ≤ 16·WG)`);
  const block = s.round === null ? 1 : actQuantBlock(s.round);
  if (s.cols % block !== 0) throw new FusedKernelUnsupported(`prologue: ${s.cols} values are not a multiple of the round trip's block ${block}`);
  // capacity of a row: a multiple of 256 for Q8_K (cols is), of 32 otherwise
  const cap = s.round === GGMLType.Q8_K ? s.cols : Math.max(32, Math.ceil(s.cols / 32) * 32);
  let bytes = s.norm ? 4 * s.wg + 4 * rows : 0;
  if (s.round === GGMLType.Q8_K) bytes += rows * (cap + cap / 64) + cap / 4 + cap / 64;
  else if (s.round === GGMLType.Q8_0 || s.round === GGMLType.Q8_1) bytes += rows * (cap + cap / 8);
  else if (s.round !== null) bytes += 2 * rows * cap;
  const int = s.threadPerRowWeight !== undefined && intDot(s.threadPerRowWeight, s.round);
  if (int) bytes += rows * (cap / 16) * 4; // pro_s: the sums of q_x per 16 values
  const defines: Defines = {
    ...(s.norm ? { PRE_NORM: true } : {}),
    ...(s.round === null ? {} : prologueRoundDefine(s.round)),
    ...(int ? { INT_DOT: true } : {}),
  };
  return { defines, constants: { PRO_COLS: cap, PRO_ROWS: rows, PRO_NORM_WG: normWg }, bytes };
}
