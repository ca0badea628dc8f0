// The MoE FFNs of the transformer family (shared/docs/qwen3moe.md steps 2.8–2.10, other-moe-archs.md):
// router softmax → top-k → renormalize (qwen3moe, Mixtral) or not (olmoe, qwen2moe), SwiGLU
// experts, outputs weighted AFTER the down projection and summed in selection order; and the same
// plus a shared expert scaled by a per-token sigmoid gate (qwen2moe, qwen35moe).
// The rest of the block (attention, residuals) is shared: see forward.ts.
import { GGMLType } from '../../gguf/types.js';
import { expertTensorNames, type ModelConfig } from '../config.js';
import type { WeightReader } from './backend.js';
import type { Emit } from './forward.js';
import { add, addBias, addScaled, expertSlice, matMul, moeRouteGeneral, sigmoid, swiglu, swigluOai, type QuantMatrix, type QuantMatrixStack } from './ops.js';

export interface MoeFfnWeights {
  kind: 'moe';
  router: QuantMatrix; // ffn_gate_inp [nEmbd → nExpert] (F32 in real files)
  gateExps: QuantMatrixStack; // ffn_gate_exps [nEmbd → nFfExp] × nExpert
  upExps: QuantMatrixStack; // ffn_up_exps [nEmbd → nFfExp] × nExpert
  downExps: QuantMatrixStack; // ffn_down_exps [nFfExp → nEmbd] × nExpert
  /** exp_probs_b [nExpert]: added to the probabilities for the selection only (DeepSeek-V3), else null */
  selectionBias?: Float32Array | null;
  /** ffn_gate_inp.bias [nExpert]: added to the router logits (gpt-oss) */
  logitBias?: Float32Array | null;
  /** ffn_{gate,up,down}_exps.bias, [nExpert, rows] each (gpt-oss) */
  biases?: { gate: Float32Array; up: Float32Array; down: Float32Array } | null;
}

/**
 * Reads the routed experts of layer il: the stacked ffn_*_exps, or Mixtral's older per-expert
 * matrices (config.perExpertTensors) concatenated into the same stacks.
 */
export async function readMoeFfn(r: WeightReader, cfg: ModelConfig, il: number): Promise<MoeFfnWeights> {
  return {
    kind: 'moe',
    router: await r.mat(`blk.${il}.ffn_gate_inp.weight`),
    gateExps: await r.stack(expertTensorNames(cfg, il, 'gate')),
    upExps: await r.stack(expertTensorNames(cfg, il, 'up')),
    downExps: await r.stack(expertTensorNames(cfg, il, 'down')),
    selectionBias: cfg.router.selectionBias ? await r.vec(`blk.${il}.exp_probs_b.bias`) : null,
    logitBias: cfg.router.logitBias ? await r.vec(`blk.${il}.ffn_gate_inp.bias`) : null,
    biases: cfg.expertBiases
      ? { gate: await r.vec(`blk.${il}.ffn_gate_exps.bias`), up: await r.vec(`blk.${il}.ffn_up_exps.bias`), down: await r.vec(`blk.${il}.ffn_down_exps.bias`) }
      : null,
  };
}

/** Routed experts plus a shared expert with a scalar sigmoid gate per token (qwen2moe, qwen35moe). */
export interface SharedMoeFfnWeights {
  kind: 'moe+shared';
  moe: MoeFfnWeights;
  /** ffn_gate_inp_shexp [E]: one gate logit per token; null for an ungated shared expert (deepseek2) */
  shGateInp: Float32Array | null;
  shGate: QuantMatrix; // ffn_gate_shexp [E → nFfShexp]
  shUp: QuantMatrix; // ffn_up_shexp [E → nFfShexp]
  shDown: QuantMatrix; // ffn_down_shexp [nFfShexp → E]
}

/** Reads the routed experts and the shared expert of layer il. */
export async function readSharedMoeFfn(r: WeightReader, cfg: ModelConfig, il: number): Promise<SharedMoeFfnWeights> {
  const b = `blk.${il}.`;
  return {
    kind: 'moe+shared',
    moe: await readMoeFfn(r, cfg, il),
    shGateInp: cfg.sharedExpertGated ? await r.vec(b + 'ffn_gate_inp_shexp.weight') : null,
    shGate: await r.mat(b + 'ffn_gate_shexp.weight'),
    shUp: await r.mat(b + 'ffn_up_shexp.weight'),
    shDown: await r.mat(b + 'ffn_down_shexp.weight'),
  };
}

/**
 * The FFN with a shared expert, n tokens. h: [n, E] (after the FFN norm). Returns [n, E] =
 * routed (moeFfn) + shared(h) · sigmoid(ffn_gate_inp_shexp · h).
 * Intermediates: the routed ones of moeFfn, then ffn_shexp [n, E], shared_expert_gate [n] (after the
 * sigmoid), ffn_shexp_gated [n, E].
 */
export function sharedMoeFfn(cfg: ModelConfig, f: SharedMoeFfnWeights, h: Float32Array, n: number, il: number, emit: Emit): Float32Array {
  const E = cfg.nEmbd;
  const F = cfg.nFfShexp;
  const out = moeFfn(cfg, f.moe, h, n, il, emit); // [n, E]

  const g = new Float32Array(n * F); // [n, nFfShexp]
  const u = new Float32Array(n * F); // [n, nFfShexp]
  matMul(g, f.shGate, h, n);
  matMul(u, f.shUp, h, n);
  const a = new Float32Array(n * F); // [n, nFfShexp]
  swiglu(a, g, u);
  const sh = new Float32Array(n * E); // [n, E]
  matMul(sh, f.shDown, a, n);
  emit('ffn_shexp', il, sh);
  if (!f.shGateInp) {
    add(out, out, sh); // deepseek2: shared experts ungated
    return out;
  }

  const gate = new Float32Array(n); // [n]
  const gateInp: QuantMatrix = { type: GGMLType.F32, rows: 1, cols: E, data: new Uint8Array(f.shGateInp.buffer, f.shGateInp.byteOffset, f.shGateInp.byteLength) };
  matMul(gate, gateInp, h, n);
  for (let t = 0; t < n; t++) gate[t] = sigmoid(gate[t]!);
  emit('shared_expert_gate', il, gate);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < E; i++) sh[t * E + i] = sh[t * E + i]! * gate[t]!;
  }
  emit('ffn_shexp_gated', il, sh);
  add(out, out, sh);
  return out;
}

/** The router's results for n tokens, by intermediate name (see moeFfn). */
export interface MoeRouting {
  ffn_moe_logits: Float32Array; // [n, nExpert]
  ffn_moe_probs: Float32Array; // [n, nExpert]
  ffn_moe_topk: Int32Array; // [n, k]
  ffn_moe_weights: Float32Array; // [n, k] selected probabilities
  ffn_moe_weights_norm: Float32Array; // [n, k] weights applied to the experts
}

/** Router of n tokens (h: [n, nEmbd] after ffn_norm): softmax | sigmoid → (bias, groups) top-k → (renormalize) → (scale). */
export function moeRouting(cfg: ModelConfig, f: MoeFfnWeights, h: Float32Array, n: number): MoeRouting {
  const X = cfg.nExpert;
  const K = cfg.nExpertUsed;
  const logits = new Float32Array(n * X); // [n, nExpert]
  matMul(logits, f.router, h, n);
  if (f.logitBias) addBias(logits, f.logitBias, n);
  const probs = new Float32Array(n * X); // [n, nExpert]
  const ids = new Int32Array(n * K); // [n, k]
  const wSel = new Float32Array(n * K); // [n, k] selected probabilities
  const wNorm = new Float32Array(n * K); // [n, k] weights applied to the experts
  for (let t = 0; t < n; t++) {
    const r = moeRouteGeneral(logits.subarray(t * X, (t + 1) * X), K, cfg.router, f.selectionBias ?? null);
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
    const bias = f.biases; // gpt-oss: each expert's own bias rows after its products
    if (bias) {
      addBias(g, bias.gate.subarray(e * F, (e + 1) * F), m);
      addBias(u, bias.up.subarray(e * F, (e + 1) * F), m);
    }
    const a = new Float32Array(m * F); // [m, nFfExp]
    if (cfg.expertActivation === 'swiglu_oai') swigluOai(a, g, u);
    else swiglu(a, g, u);
    const y = new Float32Array(m * E); // [m, nEmbd]
    matMul(y, expertSlice(f.downExps, e), a, m);
    if (bias) addBias(y, bias.down.subarray(e * E, (e + 1) * E), m);
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
