// The expert cache's host-side state (src/gpu/expert-slots.ts): which expert each GPU slot holds,
// the eviction policies, the passes of a batch that needs more experts than slots, and the parsing
// of --gpu-memory (src/cli/gpu-memory.ts). No GPU.
import { describe, expect, it } from 'vitest';
import { parseGpuMemory, parsePolicy } from '../../src/cli/gpu-memory.js';
import { UsageError } from '../../src/cli/util.js';
import { initialExperts, NOT_IN_PASS, simulateOptimal, simulateSlots, SlotTable, type EvictionPolicy } from '../../src/gpu/expert-slots.js';
import { mulberry32 } from '../helpers/random.js';

/** The table's invariants: slotOf and expertIn are inverse, every slot holds one expert. */
function expectConsistent(t: SlotTable): void {
  const seen = new Set<number>();
  for (let s = 0; s < t.nSlots; s++) {
    const e = t.expertIn[s]!;
    expect(t.slotOf[e], `slot ${s} holds ${e}`).toBe(s);
    expect(seen.has(e)).toBe(false);
    seen.add(e);
  }
  for (let e = 0; e < t.nExpert; e++) if (!seen.has(e)) expect(t.slotOf[e]).toBe(-1);
}

describe('SlotTable', () => {
  it('starts with experts 0..S-1, or the most frequent by the prior', () => {
    expect(initialExperts(8, 3)).toEqual([0, 1, 2]);
    expect(initialExperts(6, 3, [1, 9, 3, 9, 0, 5])).toEqual([1, 3, 5]);
    const t = new SlotTable(6, 3, 'prior', [1, 9, 3, 9, 0, 5]);
    expect([...t.expertIn]).toEqual([1, 3, 5]);
  });

  it('one pass when the batch fits: hits stay, misses take the slots of experts the batch does not need, slot ids remap every pair', () => {
    const t = new SlotTable(10, 4, 'lru');
    const r = t.plan([2, 7, 0, 7, 9, 2]); // distinct 0, 2, 7, 9; resident 0..3
    expect(r.hits).toBe(2);
    expect(r.misses).toBe(2);
    expect(r.passes).toHaveLength(1);
    const [p] = r.passes;
    expect(p!.experts).toEqual([0, 2, 7, 9]);
    expect(p!.uploads.map((u) => u.expert)).toEqual([7, 9]);
    // slots 1 and 3 (experts 1, 3: not needed) were taken
    expect(p!.uploads.map((u) => u.slot).sort()).toEqual([1, 3]);
    expect([...p!.slotIds]).toEqual([2, 7, 0, 7, 9, 2].map((e) => t.slotOf[e]));
    expectConsistent(t);
  });

  const policies: EvictionPolicy[] = ['lru', 'lfu', 'prior'];
  it('lru evicts the least recently used, lfu the least often chosen, prior the least frequent in calibration', () => {
    const prior = [5, 1, 9, 9, 9, 9];
    const victims: Record<string, number> = {};
    for (const policy of policies) {
      const t = new SlotTable(6, 3, policy, prior, [0, 1, 2]);
      t.plan([0, 0, 0, 0]); // 0 used often, long ago
      t.plan([1, 2]); // 1 and 2 used once, recently
      const r = t.plan([3]);
      victims[policy] = r.passes[0]!.uploads[0]!.slot;
      expectConsistent(t);
    }
    expect(victims).toEqual({ lru: 0, lfu: 1, prior: 1 });
  });

  it('a batch that needs more experts than slots runs in passes: each expert uploaded once, each pair in exactly one pass, on its expert', () => {
    const rand = mulberry32(7);
    for (const policy of policies) {
      const prior = Array.from({ length: 16 }, () => rand());
      const t = new SlotTable(16, 4, policy, prior);
      for (let b = 0; b < 30; b++) {
        const n = 1 + Math.floor(rand() * 12);
        const k = 3;
        const ids: number[] = [];
        for (let i = 0; i < n; i++) {
          const row = new Set<number>();
          while (row.size < k) row.add(Math.floor(rand() * 16));
          ids.push(...row);
        }
        const before = new Set(Array.from(t.expertIn));
        const distinct = new Set(ids);
        const r = t.plan(ids);
        expect(r.hits + r.misses).toBe(distinct.size);
        expect(r.hits).toBe([...distinct].filter((e) => before.has(e)).length);
        expect(r.passes.length).toBe(Math.max(1, 1 + Math.ceil((distinct.size - 4) / 4)));
        const uploaded = r.passes.flatMap((p) => p.uploads.map((u) => u.expert));
        expect(new Set(uploaded).size).toBe(uploaded.length);
        expect(uploaded.length).toBe(r.misses);
        // every pair runs in exactly one pass, with an expert of that pass
        const covered = new Uint8Array(ids.length);
        for (const p of r.passes) {
          expect(p.experts.length).toBeLessThanOrEqual(4);
          for (let i = 0; i < ids.length; i++) {
            if (p.slotIds[i] === NOT_IN_PASS) continue;
            expect(covered[i]).toBe(0);
            covered[i] = 1;
            expect(p.experts).toContain(ids[i]);
            expect(p.slotIds[i]).toBeLessThan(4);
          }
        }
        expect([...covered].every((c) => c === 1)).toBe(true);
        expectConsistent(t);
        // the last pass's experts are resident afterwards, at the slots its ids name
        const last = r.passes[r.passes.length - 1]!;
        for (let i = 0; i < ids.length; i++) if (last.slotIds[i] !== NOT_IN_PASS) expect(t.expertIn[last.slotIds[i]!]).toBe(ids[i]);
      }
    }
  });

  it('within a pass the slot of a pair holds its expert, and holds says what every slot holds: replaying the uploads on a copy of the slots', () => {
    const rand = mulberry32(11);
    const t = new SlotTable(12, 3, 'lfu');
    const slots = Array.from(t.expertIn);
    for (let b = 0; b < 50; b++) {
      const ids = Array.from({ length: 2 * (1 + Math.floor(rand() * 5)) }, () => Math.floor(rand() * 12));
      const r = t.plan(ids);
      for (const p of r.passes) {
        for (const u of p.uploads) slots[u.slot] = u.expert;
        expect([...p.holds]).toEqual(slots); // what the neighbouring slots hold during the pass
        for (let i = 0; i < ids.length; i++) if (p.slotIds[i] !== NOT_IN_PASS) expect(slots[p.slotIds[i]!]).toBe(ids[i]);
      }
    }
  });

  it('no policy beats Belady on decode traces, and every policy is 100% when all experts fit', () => {
    const rand = mulberry32(3);
    // a skewed router: expert e chosen with probability ∝ 1/(e+1), k = 2 of 8
    const batches: number[][] = [];
    for (let t = 0; t < 400; t++) {
      const row = new Set<number>();
      while (row.size < 2) {
        let u = rand() * 2.7178;
        let e = 0;
        while (e < 7 && (u -= 1 / (e + 1)) > 0) e++;
        row.add(e);
      }
      batches.push([...row]);
    }
    const freq = new Array(8).fill(0);
    for (const b of batches) for (const e of b) freq[e]++;
    for (const S of [2, 4, 6]) {
      const best = simulateOptimal(batches, 8, S);
      for (const policy of policies) {
        const r = simulateSlots(batches, 8, S, policy, freq);
        expect(r.hits + r.misses).toBe(800);
        expect(r.hitRate).toBeLessThanOrEqual(best.hitRate + 1e-12);
      }
    }
    expect(simulateSlots(batches, 8, 8, 'lru').hitRate).toBe(1);
  });

  it('rejects what cannot be', () => {
    expect(() => new SlotTable(8, 0, 'lru')).toThrow(RangeError);
    expect(() => new SlotTable(8, 9, 'lru')).toThrow(RangeError);
    expect(() => new SlotTable(8, 2, 'prior')).toThrow(/calibration/);
    expect(() => new SlotTable(8, 2, 'lru').plan([8])).toThrow(RangeError);
  });
});

describe('--gpu-memory', () => {
  it('takes bytes with units, auto and a share of the experts', () => {
    expect(parseGpuMemory('run', undefined)).toBeUndefined();
    expect(parseGpuMemory('run', '123456')).toBe(123456);
    expect(parseGpuMemory('run', '8G')).toBe(8 * 2 ** 30);
    expect(parseGpuMemory('run', '1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseGpuMemory('run', '500MB')).toBe(500e6);
    expect(parseGpuMemory('run', 'auto')).toBe('auto');
    expect(parseGpuMemory('run', '25%')).toEqual({ expertFraction: 0.25 });
    for (const bad of ['', 'lots', '-1', '0', '12X', '0%', '101%']) expect(() => parseGpuMemory('run', bad), bad).toThrow(UsageError);
    expect(parsePolicy('run', 'lru')).toBe('lru');
    expect(() => parsePolicy('run', 'fifo')).toThrow(UsageError);
  });
});
