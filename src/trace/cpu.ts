// Routing traces on the CPU backend: collects the router's intermediates (ffn_moe_topk,
// ffn_moe_weights_norm, ffn_moe_probs; src/cpu/qwen3moe.ts) of every layer of one eval call into one
// [n, nLayer, k] block, reported to the sink once per eval call.
import type { ModelConfig } from '../config.js';
import type { OnTensor } from '../cpu/forward.js';
import { softmax } from '../cpu/ops.js';
import type { RoutingTraceSink } from './recorder.js';

/** The intermediates the collector needs (forward copies only these when nobody else listens). */
export const TRACE_TENSORS: ReadonlySet<string> = new Set(['ffn_moe_topk', 'ffn_moe_weights_norm', 'ffn_moe_probs']);

/** Collects the routing of `tokens` (evaluated at positions start..) across forward batches. */
export class CpuTraceCollector {
  private readonly ids: Int32Array;
  private readonly weights: Float32Array;
  private readonly probs: Float32Array | undefined;
  private readonly nLayer: number;
  private readonly k: number;
  private readonly nExpert: number;
  /** gpt-oss: ffn_moe_probs are the logits themselves (llama.cpp's), recorded as their softmax */
  private readonly softmaxProbs: boolean;

  constructor(
    cfg: ModelConfig,
    private readonly tokens: readonly number[],
    private readonly start: number,
    private readonly sink: RoutingTraceSink,
  ) {
    this.nLayer = cfg.nLayer;
    this.k = cfg.nExpertUsed;
    this.nExpert = cfg.nExpert;
    this.softmaxProbs = cfg.router.gating === 'softmax_weight';
    const n = tokens.length;
    this.ids = new Int32Array(n * this.nLayer * this.k);
    this.weights = new Float32Array(n * this.nLayer * this.k);
    this.probs = sink.probs ? new Float32Array(n * this.nLayer * this.nExpert) : undefined;
  }

  /**
   * The onTensor listener of the forward batch whose first token is tokens[offset]; forwards every
   * intermediate to `also` (the sequence's own listener) as well.
   */
  listener(offset: number, also?: OnTensor): OnTensor {
    return (name, layer, data) => {
      also?.(name, layer, data);
      if (name === 'ffn_moe_topk' || name === 'ffn_moe_weights_norm') {
        const dst = name === 'ffn_moe_topk' ? this.ids : this.weights;
        this.scatter(dst, data, offset, layer, this.k);
      } else if (name === 'ffn_moe_probs' && this.probs) {
        let p = data as Float32Array;
        if (this.softmaxProbs) {
          p = Float32Array.from(p);
          for (let t = 0; t < p.length / this.nExpert; t++) softmax(p.subarray(t * this.nExpert, (t + 1) * this.nExpert));
        }
        this.scatter(this.probs, p, offset, layer, this.nExpert);
      }
    };
  }

  /** [m, w] rows of one layer → rows (offset + t, layer) of a [n, nLayer, w] array */
  private scatter(dst: Int32Array | Float32Array, src: Int32Array | Float32Array, offset: number, layer: number, w: number): void {
    const m = src.length / w;
    for (let t = 0; t < m; t++) dst.set(src.subarray(t * w, (t + 1) * w), ((offset + t) * this.nLayer + layer) * w);
  }

  /** Reports the collected block to the sink. */
  finish(): void {
    this.sink.add({ tokens: this.tokens, start: this.start, ids: this.ids, weights: this.weights, probs: this.probs });
  }
}
