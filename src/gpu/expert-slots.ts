// Which expert sits in which GPU slot of one layer, and which ones to evict: the host-side state of
// the expert cache (src/gpu/expert-cache.ts), plain TypeScript with no GPU in it, so that the
// eviction policies can be tested and measured on routing traces (bench/expert-policy.ts) with the
// exact code the engine runs.
//
// A layer has nSlots slots (nExpertUsed ≤ nSlots < nExpert); every slot always holds one expert.
// plan(ids) takes the router's choice for a batch of tokens (n·k ids) and returns the passes that
// run the batch's experts:
//   • the distinct experts the batch needs, D of them; hits are those already in a slot;
//   • D ≤ nSlots: one pass. Each miss gets the slot the policy ranks lowest among the slots whose
//     expert the batch does not need (so a needed expert is never evicted by another);
//   • D > nSlots (a long prefill ubatch on a small budget): several passes of ≤ nSlots experts,
//     the hits in the first. Every needed expert is uploaded at most once per batch.
// A pass's slot ids map each (token, j) pair to its expert's slot, or to NOT_IN_PASS when its
// expert runs in another pass (moe_group.wgsl skips ids ≥ the slot count).
//
// Policies (the score of a slot; the lowest is evicted, ties to the least recently used, then the
// lower slot):
//   lru    the batch that last used the slot's expert
//   lfu    how many (token, j) pairs have chosen the expert since the model was loaded (its count
//          survives its eviction: "perfect" LFU), then recency
//   prior  a fixed frequency per expert from the routing trace of a calibration text, then recency
// docs/performance.md "Experts in host memory" has the measurements that chose the default.

/** The eviction policies of the expert cache. */
export type EvictionPolicy = 'lru' | 'lfu' | 'prior';

/** The policies, in the order the docs list them. */
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ['lru', 'lfu', 'prior'];

/** The policy the cache uses when none is given (chosen by measurement: docs/performance.md). */
export const DEFAULT_EVICTION_POLICY: EvictionPolicy = 'lru';

/** A slot id that no slot has: the pair's expert runs in another pass. */
export const NOT_IN_PASS = 0xffffffff;

/** One group of experts run together: their uploads and the slot id of every (token, j) pair. */
export interface SlotPass {
  /** the experts this pass runs (ascending) */
  experts: number[];
  /** experts to upload before it, into these slots */
  uploads: { expert: number; slot: number }[];
  /** u32 [n·k]: the slot of each pair's expert, or NOT_IN_PASS */
  slotIds: Uint32Array;
  /** slot → expert once this pass's uploads are done (later passes may change it again) */
  holds: Int32Array;
}

/** What one batch needs. */
export interface SlotPlan {
  passes: SlotPass[];
  /** distinct experts needed that were in a slot / were not */
  hits: number;
  misses: number;
}

/**
 * The nSlots experts a layer starts with: the most frequent by `prior` (ties: lower id), or experts
 * 0..nSlots−1 without one. Ascending.
 */
export function initialExperts(nExpert: number, nSlots: number, prior?: ArrayLike<number>): number[] {
  const ids = Array.from({ length: nExpert }, (_, e) => e);
  if (prior) ids.sort((a, b) => prior[b]! - prior[a]! || a - b);
  return ids.slice(0, nSlots).sort((a, b) => a - b);
}

export class SlotTable {
  /** expert → slot, −1 when in host memory only */
  readonly slotOf: Int32Array;
  /** slot → expert */
  readonly expertIn: Int32Array;
  /** per slot: the batch (tick) that last used its expert */
  private readonly lastUse: Float64Array;
  /** per expert: pairs that chose it (lfu) */
  private readonly uses: Float64Array;
  private tick = 0;

  constructor(
    readonly nExpert: number,
    readonly nSlots: number,
    readonly policy: EvictionPolicy,
    /** per expert: its frequency in a calibration trace (policy 'prior'; also picks the initial experts) */
    private readonly prior?: ArrayLike<number>,
    initial: readonly number[] = initialExperts(nExpert, nSlots, prior),
  ) {
    if (!(Number.isInteger(nSlots) && nSlots >= 1 && nSlots <= nExpert)) throw new RangeError(`expert slots: ${nSlots} not in 1..${nExpert}`);
    if (policy === 'prior' && !prior) throw new RangeError("eviction policy 'prior' needs a frequency per expert (a calibration trace)");
    if (prior && prior.length !== nExpert) throw new RangeError(`expert prior: ${prior.length} values for ${nExpert} experts`);
    if (initial.length !== nSlots) throw new RangeError(`expert slots: ${initial.length} initial experts for ${nSlots} slots`);
    this.slotOf = new Int32Array(nExpert).fill(-1);
    this.expertIn = new Int32Array(nSlots);
    this.lastUse = new Float64Array(nSlots);
    this.uses = new Float64Array(nExpert);
    initial.forEach((e, s) => {
      if (!(Number.isInteger(e) && e >= 0 && e < nExpert) || this.slotOf[e] !== -1) throw new RangeError(`expert slots: bad initial expert ${e}`);
      this.slotOf[e] = s;
      this.expertIn[s] = e;
    });
  }

  /** The policy's score of slot s (lower: evicted first), before recency. */
  private score(s: number): number {
    const e = this.expertIn[s]!;
    if (this.policy === 'lfu') return this.uses[e]!;
    if (this.policy === 'prior') return this.prior![e]!;
    return 0;
  }

  /** The slot to evict among those not in `pinned`. */
  private victim(pinned: Uint8Array): number {
    let best = -1;
    for (let s = 0; s < this.nSlots; s++) {
      if (pinned[s]) continue;
      if (best < 0) {
        best = s;
        continue;
      }
      const d = this.score(s) - this.score(best) || this.lastUse[s]! - this.lastUse[best]!;
      if (d < 0) best = s;
    }
    if (best < 0) throw new Error('internal: no slot to evict');
    return best;
  }

  /**
   * The passes that run a batch whose router chose `ids` (n·k expert ids, pair p = t·k + j), and
   * the state after it (slots reassigned, uses counted).
   */
  plan(ids: ArrayLike<number>): SlotPlan {
    this.tick++;
    const count = new Uint32Array(this.nExpert);
    for (let p = 0; p < ids.length; p++) {
      const e = ids[p]!;
      if (!(e >= 0 && e < this.nExpert)) throw new RangeError(`expert id ${e} outside 0..${this.nExpert - 1}`);
      count[e]!++;
    }
    const needed: number[] = [];
    for (let e = 0; e < this.nExpert; e++) {
      if (count[e]) {
        needed.push(e);
        this.uses[e]! += count[e]!;
      }
    }
    const hit = needed.filter((e) => this.slotOf[e]! >= 0);
    const miss = needed.filter((e) => this.slotOf[e]! < 0);
    // pass 1: the hits and as many misses as fit; then groups of nSlots misses
    const groups: number[][] = [[...hit, ...miss.slice(0, this.nSlots - hit.length)]];
    for (let i = this.nSlots - hit.length; i < miss.length; i += this.nSlots) groups.push(miss.slice(i, i + this.nSlots));
    const passes = groups.map((experts) => {
      const pinned = new Uint8Array(this.nSlots);
      for (const e of experts) if (this.slotOf[e]! >= 0) pinned[this.slotOf[e]!] = 1;
      const uploads: SlotPass['uploads'] = [];
      for (const e of experts) {
        if (this.slotOf[e]! >= 0) continue;
        const s = this.victim(pinned);
        this.slotOf[this.expertIn[s]!] = -1;
        this.slotOf[e] = s;
        this.expertIn[s] = e;
        pinned[s] = 1;
        uploads.push({ expert: e, slot: s });
      }
      const inPass = new Uint8Array(this.nExpert);
      for (const e of experts) {
        inPass[e] = 1;
        this.lastUse[this.slotOf[e]!] = this.tick;
      }
      const slotIds = new Uint32Array(ids.length);
      for (let p = 0; p < ids.length; p++) slotIds[p] = inPass[ids[p]!] ? this.slotOf[ids[p]!]! : NOT_IN_PASS;
      return { experts: [...experts].sort((a, b) => a - b), uploads, slotIds, holds: this.expertIn.slice() };
    });
    return { passes, hits: hit.length, misses: miss.length };
  }
}

/** Hit counts of a policy replayed over a routing trace of one layer. */
export interface SlotSimulation {
  hits: number;
  misses: number;
  hitRate: number;
  /** experts uploaded per batch, on average */
  uploadsPerBatch: number;
}

/**
 * Replays batches of one layer's router choices through a SlotTable (what the engine would upload),
 * e.g. one batch per decoded token. `batches` yields n·k ids each.
 */
export function simulateSlots(batches: Iterable<ArrayLike<number>>, nExpert: number, nSlots: number, policy: EvictionPolicy, prior?: ArrayLike<number>): SlotSimulation {
  const t = new SlotTable(nExpert, nSlots, policy, prior);
  let hits = 0;
  let misses = 0;
  let n = 0;
  for (const ids of batches) {
    const r = t.plan(ids);
    hits += r.hits;
    misses += r.misses;
    n++;
  }
  return { hits, misses, hitRate: hits + misses ? hits / (hits + misses) : 1, uploadsPerBatch: n ? misses / n : 0 };
}

/**
 * Belady's optimal replacement (evict the expert needed again furthest in the future) over the same
 * batches, for comparison: the best any policy could do with nSlots slots (batches of ≤ nSlots
 * distinct experts, as decode steps are).
 */
export function simulateOptimal(batches: readonly ArrayLike<number>[], nExpert: number, nSlots: number): SlotSimulation {
  const sets = batches.map((ids) => [...new Set(Array.from(ids))]);
  // next use of each expert after batch b
  const next: Int32Array[] = new Array(sets.length);
  const upcoming = new Int32Array(nExpert).fill(2 ** 31 - 1); // never again
  for (let b = sets.length - 1; b >= 0; b--) {
    next[b] = upcoming.slice();
    for (const e of sets[b]!) upcoming[e] = b;
  }
  const resident = new Set(initialExperts(nExpert, nSlots));
  let hits = 0;
  let misses = 0;
  sets.forEach((need, b) => {
    const needSet = new Set(need);
    for (const e of need) {
      if (resident.has(e)) {
        hits++;
        continue;
      }
      misses++;
      if (resident.size >= nSlots) {
        let worst = -1;
        for (const r of resident) {
          if (needSet.has(r)) continue;
          if (worst < 0 || next[b]![r]! > next[b]![worst]!) worst = r;
        }
        if (worst >= 0) resident.delete(worst);
      }
      resident.add(e);
    }
  });
  return { hits, misses, hitRate: hits + misses ? hits / (hits + misses) : 1, uploadsPerBatch: sets.length ? misses / sets.length : 0 };
}
