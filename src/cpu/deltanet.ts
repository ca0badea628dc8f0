// The Gated DeltaNet mixer of the Qwen3.5 hybrids (qwen35moe, qwen35) on the CPU: linear attention
// with a fixed-size recurrent state, as llama.cpp computes it (shared/docs/qwen35moe.md "Gated
// DeltaNet"). One call processes n tokens of one sequence, token by token through the recurrence.
//
// Dimensions (Qwen3.6-35B-A3B values): E = nEmbd (2048); d = ssm.state_size (128), the head dim of
// linear q, k and v; H_k = ssm.group_count (16) q/k heads; H_v = ssm.time_step_rank (32) v heads;
// C = 2·H_k·d + H_v·d (8192) conv channels; K = ssm.conv_kernel (4).
import type { ModelConfig, Qwen35Config } from '../config.js';
import type { Emit } from './forward.js';
import { deltaRuleStep, gatedRmsNorm, l2Norm, matMul, sigmoid, silu, softplus, ssmConv, type QuantMatrix } from './ops.js';

/** Weights of one Gated DeltaNet mixer (vectors as f32, matrices still quantized). */
export interface DeltaNetWeights {
  kind: 'deltanet';
  wqkv: QuantMatrix; // attn_qkv [E → C]: q (H_k·d) | k (H_k·d) | v (H_v·d)
  wz: QuantMatrix; // attn_gate [E → H_v·d]: the output gate z
  conv: Float32Array; // ssm_conv1d [C, K]: tap j of channel c at c·K + j
  dtBias: Float32Array; // ssm_dt.bias [H_v]
  a: Float32Array; // ssm_a [H_v] = −exp(A_log), negative
  wBeta: QuantMatrix; // ssm_beta [E → H_v]
  wAlpha: QuantMatrix; // ssm_alpha [E → H_v]
  norm: Float32Array; // ssm_norm [d], shared by all heads
  wOut: QuantMatrix; // ssm_out [H_v·d → E]
}

/**
 * The recurrent state of one DeltaNet layer for one sequence. Fixed size: it does not grow with the
 * context, and it cannot be rewound (see Qwen35State in qwen35.ts for truncation).
 */
export class DeltaNetState {
  /** [K−1, C]: the last K−1 raw (pre-conv, pre-SiLU) qkv vectors, oldest first */
  readonly conv: Float32Array;
  /** [H_v, d, d]: S[h][i][j], i the key dim, j the value dim, in f32 like llama.cpp */
  readonly s: Float32Array;

  constructor(h: Qwen35Config) {
    this.conv = new Float32Array((h.convKernel - 1) * h.convChannels);
    this.s = new Float32Array(h.nVHeads * h.stateSize * h.stateSize);
  }

  reset(): void {
    this.conv.fill(0);
    this.s.fill(0);
  }

  copyFrom(o: DeltaNetState): void {
    this.conv.set(o.conv);
    this.s.set(o.s);
  }
}

/**
 * Gated DeltaNet of n tokens. h: [n, E] (after attn_norm). Advances `state` by n tokens.
 * Returns ssm_out · y: [n, E].
 * Intermediates (llama.cpp's names where it has them): linear_attn_qkv_mixed [n, C], z [n, H_v·d],
 * beta [n, H_v] (after the sigmoid), gate [n, H_v] (g = softplus(alpha + dt_bias)·a),
 * conv_output_silu [n, C], q_conv / k_conv [n, H_k, d] (L2-normalized), v_conv [n, H_v, d],
 * attn_output [n, H_v, d] (the recurrence's output), final_output [n, H_v·d] (after the gated norm),
 * linear_attn_out [n, E].
 */
export function deltaNetBlock(cfg: ModelConfig, hp: Qwen35Config, L: DeltaNetWeights, state: DeltaNetState, h: Float32Array, n: number, il: number, emit: Emit): Float32Array {
  const E = cfg.nEmbd;
  const d = hp.stateSize;
  const Hk = hp.nKHeads;
  const Hv = hp.nVHeads;
  const C = hp.convChannels;
  const V = hp.innerSize; // H_v·d

  // 1. Projections.
  const mix = new Float32Array(n * C); // [n, C]
  const z = new Float32Array(n * V); // [n, H_v·d]
  const beta = new Float32Array(n * Hv); // [n, H_v]
  const alpha = new Float32Array(n * Hv); // [n, H_v]
  matMul(mix, L.wqkv, h, n);
  matMul(z, L.wz, h, n);
  matMul(beta, L.wBeta, h, n);
  matMul(alpha, L.wAlpha, h, n);
  emit('linear_attn_qkv_mixed', il, mix);
  emit('z', il, z);

  // 2. Gates: β = sigmoid(b); g = softplus(a + dt_bias) · ssm_a (≤ 0).
  const g = new Float32Array(n * Hv); // [n, H_v]
  for (let t = 0; t < n; t++) {
    for (let hv = 0; hv < Hv; hv++) {
      const i = t * Hv + hv;
      beta[i] = sigmoid(beta[i]!);
      g[i] = Math.fround(softplus(Math.fround(alpha[i]! + L.dtBias[hv]!))) * L.a[hv]!;
    }
  }
  emit('beta', il, beta);
  emit('gate', il, g);

  // 3. Causal depthwise conv over (state ++ mix), new state = last K−1 raw inputs; then SiLU.
  const conv = new Float32Array(n * C); // [n, C]
  ssmConv(conv, mix, state.conv, L.conv, C, hp.convKernel, n);
  for (let i = 0; i < conv.length; i++) conv[i] = silu(conv[i]!);
  emit('conv_output_silu', il, conv);

  // 4. Split into q [n, H_k, d], k [n, H_k, d], v [n, H_v, d]; L2-normalize q and k per head.
  const q = new Float32Array(n * Hk * d);
  const k = new Float32Array(n * Hk * d);
  const v = new Float32Array(n * V);
  for (let t = 0; t < n; t++) {
    const row = conv.subarray(t * C, (t + 1) * C);
    q.set(row.subarray(0, Hk * d), t * Hk * d);
    k.set(row.subarray(Hk * d, 2 * Hk * d), t * Hk * d);
    v.set(row.subarray(2 * Hk * d, C), t * V);
  }
  l2Norm(q, q, d, cfg.rmsEps, n * Hk);
  l2Norm(k, k, d, cfg.rmsEps, n * Hk);
  emit('q_conv', il, q);
  emit('k_conv', il, k);
  emit('v_conv', il, v);

  // 5. The delta rule, token by token. V head hv reads q/k head hv mod H_k (ggml_repeat tiling).
  const o = new Float32Array(n * V); // [n, H_v, d]
  const scale = Math.fround(1 / Math.sqrt(d));
  for (let t = 0; t < n; t++) {
    for (let hv = 0; hv < Hv; hv++) {
      const hk = hv % Hk;
      deltaRuleStep(
        state.s.subarray(hv * d * d, (hv + 1) * d * d),
        q, (t * Hk + hk) * d, k, (t * Hk + hk) * d, v, t * V + hv * d,
        g[t * Hv + hv]!, beta[t * Hv + hv]!, o, t * V + hv * d, d, d, scale,
      );
    }
  }
  emit('attn_output', il, o);

  // 6. y_h = RMSNorm(o_h) ⊙ ssm_norm ⊙ silu(z_h), per head; 7. out = ssm_out · y.
  const y = new Float32Array(n * V); // [n, H_v·d]
  gatedRmsNorm(y, o, L.norm, z, cfg.rmsEps, n * Hv);
  emit('final_output', il, y);
  const out = new Float32Array(n * E); // [n, E]
  matMul(out, L.wOut, y, n);
  emit('linear_attn_out', il, out);
  return out;
}
