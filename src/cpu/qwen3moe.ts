// The qwen3moe FFN (shared/docs/qwen3moe.md steps 2.8–2.10): router softmax → top-k → renormalize,
// SwiGLU experts, outputs weighted AFTER the down projection and summed in selection order.
// The rest of the block (attention, residuals) is shared with qwen3: see forward.ts.
import type { ModelConfig } from '../config.js';
import type { WeightReader } from './backend.js';
import type { Emit } from './forward.js';
import { addScaled, expertSlice, matMul, moeRoute, swiglu, type QuantMatrix, type QuantMatrixStack } from './ops.js';

export interface MoeFfnWeights {
  kind: 'moe';
  router: QuantMatrix; // ffn_gate_inp [nEmbd → nExpert] (F32 in real files)
  gateExps: QuantMatrixStack; // ffn_gate_exps [nEmbd → nFfExp] × nExpert
  upExps: QuantMatrixStack; // ffn_up_exps [nEmbd → nFfExp] × nExpert
  downExps: QuantMatrixStack; // ffn_down_exps [nFfExp → nEmbd] × nExpert
}

/** Reads the routed experts of the block with tensor-name prefix `b` (`blk.i.`). */
export async function readMoeFfn(r: WeightReader, b: string): Promise<MoeFfnWeights> {
  return {
    kind: 'moe',
    router: await r.mat(b + 'ffn_gate_inp.weight'),
    gateExps: await r.stack(b + 'ffn_gate_exps.weight'),
    upExps: await r.stack(b + 'ffn_up_exps.weight'),
    downExps: await r.stack(b + 'ffn_down_exps.weight'),
  };
}

/** The router's results for n tokens, by intermediate name (see moeFfn). */
export interface MoeRouting {
  ffn_moe_logits: Float32Array; // [n, nExpert]
  ffn_moe_probs: Float32Array; // [n, nExpert]
  ffn_moe_topk: Int32Array; // [n, k]
  ffn_moe_weights: Float32Array; // [n, k] selected probabilities
  ffn_moe_weights_norm: Float32Array; // [n, k] weights applied to the experts
}

/** Router of n tokens (h: [n, nEmbd] after ffn_norm): softmax → top-k → renormalize. */
export function moeRouting(cfg: ModelConfig, f: MoeFfnWeights, h: Float32Array, n: number): MoeRouting {
  const X = cfg.nExpert;
  const K = cfg.nExpertUsed;
  const logits = new Float32Array(n * X); // [n, nExpert]
  matMul(logits, f.router, h, n);
  const probs = new Float32Array(n * X); // [n, nExpert]
  const ids = new Int32Array(n * K); // [n, k]
  const wSel = new Float32Array(n * K); // [n, k] selected probabilities
  const wNorm = new Float32Array(n * K); // [n, k] weights applied to the experts
  for (let t = 0; t < n; t++) {
    const r = moeRoute(logits.subarray(t * X, (t + 1) * X), K, cfg.normTopKProb);
    probs.set(r.probs, t * X);
    ids.set(r.ids, t * K);
    wNorm.set(r.weights, t * K);
    for (let s = 0; s < K; s++) wSel[t * K + s] = r.probs[r.ids[s]!]!;
  }
  return { ffn_moe_logits: logits, ffn_moe_probs: probs, ffn_moe_topk: ids, ffn_moe_weights: wSel, ffn_moe_weights_norm: wNorm };
}

/**
 * MoE FFN of n tokens. h: [n, nEmbd] (after ffn_norm). Returns [n, nEmbd].
 * Intermediates: ffn_moe_logits [n, nExpert], ffn_moe_probs [n, nExpert], ffn_moe_topk [n, k]
 * (Int32Array, descending probability), ffn_moe_weights [n, k] (selected probabilities),
 * ffn_moe_weights_norm [n, k], ffn_moe_gate / ffn_moe_up / ffn_moe_swiglu [n, k, nFfExp],
 * ffn_moe_down [n, k, nEmbd] (before weighting), ffn_moe_out [n, nEmbd].
 */
export function moeFfn(cfg: ModelConfig, f: MoeFfnWeights, h: Float32Array, n: number, il: number, emit: Emit): Float32Array {
  const E = cfg.nEmbd;
  const X = cfg.nExpert;
  const K = cfg.nExpertUsed;
  const F = cfg.nFfExp;

  // Router.
  const routing = moeRouting(cfg, f, h, n);
  const { ffn_moe_topk: ids, ffn_moe_weights_norm: wNorm } = routing;
  emit('ffn_moe_logits', il, routing.ffn_moe_logits);
  emit('ffn_moe_probs', il, routing.ffn_moe_probs);
  emit('ffn_moe_topk', il, ids);
  emit('ffn_moe_weights', il, routing.ffn_moe_weights);
  emit('ffn_moe_weights_norm', il, wNorm);

  // Experts: group the (token, slot) pairs by expert so each expert's rows are dequantized once.
  const gate = new Float32Array(n * K * F); // [n, k, nFfExp]
  const up = new Float32Array(n * K * F); // [n, k, nFfExp]
  const act = new Float32Array(n * K * F); // [n, k, nFfExp]
  const down = new Float32Array(n * K * E); // [n, k, nEmbd]
  for (let e = 0; e < X; e++) {
    const slots: number[] = []; // indices t·k + s routed to e
    for (let i = 0; i < n * K; i++) if (ids[i] === e) slots.push(i);
    if (slots.length === 0) continue;
    const m = slots.length;
    const xs = new Float32Array(m * E); // [m, nEmbd] gathered inputs
    slots.forEach((slot, j) => xs.set(h.subarray(Math.floor(slot / K) * E, (Math.floor(slot / K) + 1) * E), j * E));
    const g = new Float32Array(m * F); // [m, nFfExp]
    const u = new Float32Array(m * F); // [m, nFfExp]
    matMul(g, expertSlice(f.gateExps, e), xs, m);
    matMul(u, expertSlice(f.upExps, e), xs, m);
    const a = new Float32Array(m * F); // [m, nFfExp]
    swiglu(a, g, u);
    const y = new Float32Array(m * E); // [m, nEmbd]
    matMul(y, expertSlice(f.downExps, e), a, m);
    slots.forEach((slot, j) => {
      gate.set(g.subarray(j * F, (j + 1) * F), slot * F);
      up.set(u.subarray(j * F, (j + 1) * F), slot * F);
      act.set(a.subarray(j * F, (j + 1) * F), slot * F);
      down.set(y.subarray(j * E, (j + 1) * E), slot * E);
    });
  }
  emit('ffn_moe_gate', il, gate);
  emit('ffn_moe_up', il, up);
  emit('ffn_moe_swiglu', il, act);
  emit('ffn_moe_down', il, down);

  // Weighted sum in selection order: out = w_0·y_0 + w_1·y_1 + … (each product rounded to f32).
  const out = new Float32Array(n * E); // [n, nEmbd]
  for (let t = 0; t < n; t++) {
    const o = out.subarray(t * E, (t + 1) * E);
    for (let s = 0; s < K; s++) addScaled(o, down.subarray((t * K + s) * E, (t * K + s + 1) * E), wNorm[t * K + s]!);
  }
  emit('ffn_moe_out', il, out);
  return out;
}
