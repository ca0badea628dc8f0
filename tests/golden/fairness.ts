// The measures of tests/golden/fairness.test.ts (also used to choose fixture seeds): the smallest
// top-1/top-2 logit margin over a sequence, and the smallest router clearance over every MoE layer.
import { openGGUF } from '../../gguf/reader.js';
import { configFromGGUF } from '../../src/config.js';
import { loadCpuBackend } from '../../src/cpu/backend.js';
import { topMargin } from './compare.js';

/** smallest top-1/top-2 margin over the rows of [n, nVocab] logits, and where */
export function minMargin(logits: Float32Array, nVocab: number): { margin: number; at: number } {
  let margin = Infinity;
  let at = -1;
  for (let p = 0; p < logits.length / nVocab; p++) {
    const m = topMargin(logits.subarray(p * nVocab, (p + 1) * nVocab));
    if (m < margin) {
      margin = m;
      at = p;
    }
  }
  return { margin, at };
}

/**
 * The router's clearance at one token: how far its logits would have to move to change the chosen
 * set. Softmax gating without bias or groups: log(p_k / p_{k+1}), the k-th vs (k+1)-th logit gap.
 * Otherwise (sigmoid gating, a selection bias, group-limited routing) the choice is made on
 * selection scores s_i = σ(l_i) + b_i (or p_i + b_i), so the gap between two scores is converted
 * to logit units to first order: Δs / (ds_i/dl_i + ds_j/dl_j); group-limited routing adds the gap
 * between the last kept and the first dropped group's score (the sum of its two best), converted
 * the same way over the four experts involved, where swapping those two groups changes the choice.
 */
export function tokenRouterGap(logits: Float32Array, k: number, router: ReturnType<typeof configFromGGUF>['router'], bias: Float32Array | null): number {
  const n = logits.length;
  const plain = router.gating !== 'sigmoid' && !bias && !(router.groups > 1);
  if (plain) {
    const row = [...logits].sort((x, y) => y - x);
    return row[k - 1]! - row[k]!;
  }
  const slope = new Float64Array(n); // [nExpert] d s_i / d l_i
  const sel = new Float64Array(n); // [nExpert] selection scores
  if (router.gating === 'sigmoid') {
    for (let i = 0; i < n; i++) {
      const s = 1 / (1 + Math.exp(-logits[i]!));
      sel[i] = s;
      slope[i] = s * (1 - s);
    }
  } else {
    const m = Math.max(...logits);
    let z = 0;
    for (let i = 0; i < n; i++) z += Math.exp(logits[i]! - m);
    for (let i = 0; i < n; i++) {
      const pr = Math.exp(logits[i]! - m) / z;
      sel[i] = pr;
      slope[i] = pr * (1 - pr);
    }
  }
  if (bias) for (let i = 0; i < n; i++) sel[i] = sel[i]! + bias[i]!;
  const convert = (ds: number, members: number[]) => ds / Math.max(1e-12, members.reduce((a, i) => a + slope[i]!, 0));
  let allowed = Array.from({ length: n }, (_, i) => i);
  let gap = Infinity;
  if (router.groups > 1) {
    const per = n / router.groups;
    const groups = Array.from({ length: router.groups }, (_, g) => {
      const best = allowed.slice(g * per, (g + 1) * per).sort((a, b) => sel[b]! - sel[a]!).slice(0, 2);
      return { g, best, score: sel[best[0]!]! + sel[best[1]!]! };
    }).sort((a, b) => b.score - a.score);
    const lastIn = groups[router.groupsUsed - 1]!;
    const firstOut = groups[router.groupsUsed]!;
    const kept = groups.slice(0, router.groupsUsed).map((x) => x.g);
    const swapped = [...kept.slice(0, -1), firstOut.g];
    const topk = (gs: number[]) => allowed.filter((i) => gs.includes(Math.floor(i / per))).sort((a, b) => sel[b]! - sel[a]!).slice(0, k).sort((a, b) => a - b).join();
    // the order of the last kept and the first dropped group matters only where it changes the choice
    if (topk(kept) !== topk(swapped)) gap = convert(lastIn.score - firstOut.score, [...lastIn.best, ...firstOut.best]);
    allowed = allowed.filter((i) => kept.includes(Math.floor(i / per)));
  }
  const order = allowed.sort((a, b) => sel[b]! - sel[a]!);
  const [i, j] = [order[k - 1]!, order[k]!];
  return Math.min(gap, convert(sel[i]! - sel[j]!, [i, j]));
}

/** smallest router clearance (tokenRouterGap) over every (position, MoE layer) of each sequence (moet CPU, numerics 'llamacpp') */
export async function routerGap(path: string, sequences: [string, number[]][]): Promise<{ gap: number; where: string }> {
  const f = await openGGUF(path);
  const config = configFromGGUF(f.metadata, f.tensorByName);
  const biases: (Float32Array | null)[] = []; // [nLayer] selection bias [nExpert] (exp_probs_b), if any
  for (let il = 0; il < config.nLayer; il++) {
    const t = f.tensorByName.get(`blk.${il}.exp_probs_b.bias`);
    if (t && t.type !== 0) throw new Error(`exp_probs_b of layer ${il} is not F32`);
    biases[il] = t ? new Float32Array((await f.readTensor(t)).slice().buffer) : null;
  }
  const be = await loadCpuBackend(f, config);
  await f.close();
  const E = config.nExpert;
  const k = config.nExpertUsed;
  let gap = Infinity;
  let where = '';
  try {
    for (const [label, tokens] of sequences) {
      const logits: Float32Array[] = []; // [nLayer] router logits [n, nExpert]; dense layers have none
      const seq = be.createSequence(tokens.length + 8, {
        onTensor: (t, il, d) => {
          if (t === 'ffn_moe_logits') logits[il] = Float32Array.from(d as Float32Array);
        },
      });
      await seq.eval([...tokens]);
      seq.dispose();
      for (let il = 0; il < config.nLayer; il++) {
        if (!logits[il]) continue; // a dense layer (deepseek2's leading ones)
        for (let p = 0; p < tokens.length; p++) {
          const g = tokenRouterGap(logits[il]!.subarray(p * E, (p + 1) * E), k, config.router, biases[il]!);
          if (g < gap) {
            gap = g;
            where = `${label} position ${p} layer ${il}`;
          }
        }
      }
    }
    if (gap === Infinity) throw new Error('no router logits were emitted: nothing measured');
  } finally {
    await be.dispose();
  }
  return { gap, where };
}

