// The qwen3 (dense) FFN: y = W_down · (silu(W_gate·h) ⊙ (W_up·h)). The rest of the block
// (attention, residuals) is shared with qwen3moe: see forward.ts.
import type { ModelConfig } from '../config.js';
import type { WeightReader } from './backend.js';
import type { Emit } from './forward.js';
import { matMul, swiglu, type QuantMatrix } from './ops.js';

export interface DenseFfnWeights {
  kind: 'dense';
  gate: QuantMatrix; // ffn_gate [nEmbd → nFf]
  up: QuantMatrix; // ffn_up [nEmbd → nFf]
  down: QuantMatrix; // ffn_down [nFf → nEmbd]
}

/** Reads the dense FFN of the block with tensor-name prefix `b` (`blk.i.`). */
export async function readDenseFfn(r: WeightReader, b: string): Promise<DenseFfnWeights> {
  return {
    kind: 'dense',
    gate: await r.mat(b + 'ffn_gate.weight'),
    up: await r.mat(b + 'ffn_up.weight'),
    down: await r.mat(b + 'ffn_down.weight'),
  };
}

/** Dense SwiGLU FFN of n tokens. h: [n, nEmbd]. Returns [n, nEmbd]. Emits ffn_gate, ffn_up, ffn_swiglu [n, nFf]. */
export function denseFfn(cfg: ModelConfig, f: DenseFfnWeights, h: Float32Array, n: number, il: number, emit: Emit): Float32Array {
  const gate = new Float32Array(n * cfg.nFf); // [n, nFf]
  const up = new Float32Array(n * cfg.nFf); // [n, nFf]
  matMul(gate, f.gate, h, n);
  matMul(up, f.up, h, n);
  emit('ffn_gate', il, gate);
  emit('ffn_up', il, up);
  const act = new Float32Array(n * cfg.nFf); // [n, nFf]
  swiglu(act, gate, up);
  emit('ffn_swiglu', il, act);
  const out = new Float32Array(n * cfg.nEmbd); // [n, nEmbd]
  matMul(out, f.down, act, n);
  return out;
}
