// Bytes of weights one decoded token reads (gpt-fast's "bandwidth achieved" numerator): every dense
// matrix and norm once, the router, only the k experts the router picks (k/n_expert of each expert
// stack), one row of the embedding, and the LM head (token_embd when the embeddings are tied).
import type { GGUFTensorInfo } from '../../gguf/types.js';
import type { ModelConfig } from '../config.js';

export interface WeightBytes {
  /** total bytes per decoded token */
  total: number;
  /** attention matrices and norms of all layers */
  attention: number;
  /** routers (ffn_gate_inp) */
  router: number;
  /** the k used experts' gate/up/down (or the dense FFN) */
  ffn: number;
  /** LM head + output norm */
  head: number;
  /** one embedding row */
  embedding: number;
  /** everything else in the layers (other norms, shared experts …) */
  other: number;
}

const EXPERT_STACK = /_exps\.weight$/;

/**
 * Weight bytes read per decoded token, counting only the used experts.
 * @param tensors every tensor of the file
 */
export function weightBytesPerToken(tensors: readonly GGUFTensorInfo[], config: Pick<ModelConfig, 'nExpert' | 'nExpertUsed' | 'tiedEmbeddings' | 'nVocab'>): WeightBytes {
  const r: WeightBytes = { total: 0, attention: 0, router: 0, ffn: 0, head: 0, embedding: 0, other: 0 };
  const used = config.nExpert > 0 ? config.nExpertUsed / config.nExpert : 1;
  for (const t of tensors) {
    const n = t.name;
    if (n === 'token_embd.weight') {
      r.embedding += t.byteLength / (t.shape[1] ?? 1);
      if (config.tiedEmbeddings) r.head += t.byteLength;
    } else if (n === 'output.weight' || n === 'output_norm.weight') {
      r.head += t.byteLength;
    } else if (!n.startsWith('blk.')) {
      r.other += t.byteLength;
    } else if (EXPERT_STACK.test(n)) {
      r.ffn += t.byteLength * used;
    } else if (n.includes('.ffn_gate_inp.')) {
      r.router += t.byteLength;
    } else if (n.includes('.attn_') || n.includes('.ssm_')) {
      r.attention += t.byteLength;
    } else if (/\.ffn_(gate|up|down)(_shexp)?\.weight$/.test(n)) {
      r.ffn += t.byteLength;
    } else {
      r.other += t.byteLength;
    }
  }
  r.total = r.attention + r.router + r.ffn + r.head + r.embedding + r.other;
  return r;
}
