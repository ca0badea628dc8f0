// The GPU weight loader's layout (src/gpu/weights.ts): co-located tensors (Wq | Wk | Wv, gate | up)
// at 256-aligned offsets of one buffer, paired expert ranges when gate and up split, every byte as
// in the file, the memory it takes, freeing, abort and progress.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGGUF, type GGUFFile } from '../../gguf/reader.js';
import type { GGUFTensorInfo } from '../../gguf/types.js';
import { configFromGGUF, type ModelConfig } from '../../src/config.js';
import { AbortError } from '../../src/errors.js';
import { freeWeights, loadWeights, type GpuWeights, type LoadWeightsOptions } from '../../src/gpu/weights.js';
import { coLocated, coLocatedLayout, PART_ALIGN, readBuffer, type WeightTensor } from '../../src/runtime/buffers.js';
import type { GPUContext } from '../../src/runtime/device.js';
import { fixturePath } from '../fixtures/make.js';
import { openTestGPU } from './helpers.js';

let ctx: GPUContext | undefined;
beforeAll(async () => {
  ctx = await openTestGPU();
});
afterAll(() => ctx?.dispose());

async function withLoaded<T>(fixture: Parameters<typeof fixturePath>[0], opts: LoadWeightsOptions, fn: (w: GpuWeights, f: GGUFFile, c: ModelConfig) => Promise<T>): Promise<T> {
  const f = await openGGUF(await fixturePath(fixture));
  try {
    const c = configFromGGUF(f.metadata, f.tensorByName);
    const base = ctx!.allocatedBytes;
    const w = await loadWeights(ctx!, f, c, opts);
    try {
      return await fn(w, f, c);
    } finally {
      freeWeights(ctx!, w);
      expect(ctx!.allocatedBytes, 'freeWeights frees every buffer').toBe(base);
    }
  } finally {
    await f.close();
  }
}

/** Every quantized weight of the model, by role. */
function matrices(w: GpuWeights): WeightTensor[] {
  const out: WeightTensor[] = [w.tokEmbd, ...(w.output === w.tokEmbd ? [] : [w.output])];
  for (const l of w.layers) {
    out.push(l.wq, l.wk, l.wv, l.wo);
    out.push(...(l.ffn.kind === 'moe' ? [l.ffn.router, l.ffn.gateExps, l.ffn.upExps, l.ffn.downExps] : [l.ffn.gate, l.ffn.up, l.ffn.down]));
  }
  for (const l of w.hybrid ?? []) {
    if (l.mixer.kind === 'attention') out.push(l.mixer.wq, l.mixer.wk, l.mixer.wv, l.mixer.wo);
    else out.push(...l.mixer.proj.map((p) => p.w), l.mixer.wOut);
    out.push(...(l.ffn.kind === 'moe' ? [l.ffn.router, l.ffn.gateExps, l.ffn.upExps, l.ffn.downExps] : [l.ffn.gate, l.ffn.up, l.ffn.down]));
    if (l.shared) out.push(...l.shared.gateUp.map((p) => p.w), l.shared.down);
  }
  return out;
}

/** The bytes a weight must hold: the file's tensor (qwen35 attn_q: rows permuted to [query heads | gate heads]). */
async function expectedBytes(f: GGUFFile, c: ModelConfig, w: WeightTensor, hybridAttnQ: boolean): Promise<Uint8Array | undefined> {
  const info = f.tensorByName.get(w.name);
  if (!info) return undefined; // a fused projection (name a|b): covered by the forward tests
  const data = await f.readTensor(info);
  if (!hybridAttnQ) return data;
  const D = c.headDimK;
  const out = new Uint8Array(data.length);
  for (let r = 0; r < w.rows; r++) {
    const h = Math.floor((r % (c.nHead * D)) / D);
    const src = 2 * h * D + (r >= c.nHead * D ? D : 0) + (r % D);
    out.set(data.subarray(src * w.rowBytes, (src + 1) * w.rowBytes), r * w.rowBytes);
  }
  return out;
}

/** Offsets aligned, parts inside their buffers, bytes equal to the file's, memory as the tensors plus padding. */
async function checkLayout(w: GpuWeights, f: GGUFFile, c: ModelConfig, maxPart = Infinity): Promise<void> {
  const ms = matrices(w);
  const hybridQ = new Set((w.hybrid ?? []).flatMap((l) => (l.mixer.kind === 'attention' ? [l.mixer.wq] : [])));
  const owned = new Set(w.buffers);
  expect(owned.size, 'no buffer listed twice').toBe(w.buffers.length);
  let tensorBytes = 0;
  let parts = 0;
  for (const m of ms) {
    let row = 0;
    const expected = await expectedBytes(f, c, m, hybridQ.has(m));
    for (const p of m.parts) {
      expect(p.offset % PART_ALIGN, `${m.name} offset`).toBe(0);
      expect(p.firstRow, `${m.name} parts in row order`).toBe(row);
      expect(p.byteLength).toBe(p.nRows * m.rowBytes);
      expect(p.offset + Math.ceil(p.byteLength / 4) * 4, `${m.name} inside its buffer`).toBeLessThanOrEqual(p.buffer.size);
      expect(p.buffer.size).toBeLessThanOrEqual(maxPart);
      expect(owned.has(p.buffer), `${m.name}'s buffer is freed by freeWeights`).toBe(true);
      if (expected) {
        const got = new Uint8Array(await readBuffer(ctx!, p.buffer, p.offset, Math.ceil(p.byteLength / 4) * 4)).subarray(0, p.byteLength);
        const want = expected.subarray(p.firstRow * m.rowBytes, p.firstRow * m.rowBytes + p.byteLength);
        expect(Buffer.compare(got, want), `${m.name} rows ${p.firstRow}+${p.nRows} equal the file's`).toBe(0);
      }
      row += p.nRows;
      parts++;
    }
    expect(row, `${m.name} parts cover every row`).toBe(m.rows);
    tensorBytes += m.rows * m.rowBytes;
  }
  const vectors = w.buffers.filter((b) => !ms.some((m) => m.parts.some((p) => p.buffer === b)));
  const vectorBytes = vectors.reduce((s, b) => s + b.size, 0);
  // the layout adds at most 255 bytes of alignment (and 3 of rounding) per part
  expect(w.bytes - vectorBytes - tensorBytes).toBeGreaterThanOrEqual(0);
  expect(w.bytes - vectorBytes - tensorBytes).toBeLessThanOrEqual(parts * (PART_ALIGN - 1 + 3));
}

describe('GPU weight layout', () => {
  it('coLocatedLayout puts blocks at 256-aligned offsets and rounds the size to 4', () => {
    expect(coLocatedLayout([102, 5, 256])).toEqual({ offsets: [0, 256, 512], size: 768 });
    expect(coLocatedLayout([256, 1])).toEqual({ offsets: [0, 256], size: 260 });
  });

  it('qwen3moe: Wq | Wk | Wv and gate | up experts share one buffer each, bytes as in the file', async () => {
    if (!ctx) return;
    await withLoaded('qwen3moe-q8_0', {}, async (w, f, c) => {
      for (const l of w.layers) {
        expect(coLocated(l.wq, l.wk, l.wv)).toBe(true);
        expect(l.wq.parts[0]!.offset).toBe(0);
        expect(l.wk.parts[0]!.offset).toBeGreaterThan(0);
        expect(l.wv.parts[0]!.offset).toBeGreaterThan(l.wk.parts[0]!.offset);
        expect(l.ffn.kind).toBe('moe');
        if (l.ffn.kind !== 'moe') continue;
        expect(coLocated(l.ffn.gateExps, l.ffn.upExps)).toBe(true);
        expect(coLocated(l.ffn.gateExps, l.ffn.downExps)).toBe(false);
        expect(coLocated(l.wq, l.wo)).toBe(false);
      }
      await checkLayout(w, f, c);
    });
  });

  it('qwen3 Q4_K_M: V of another type stays alone (Wq | Wk co-located), dense gate | up share a buffer', async () => {
    if (!ctx) return;
    await withLoaded('qwen3-q4_k_m', {}, async (w, f, c) => {
      let mixed = 0;
      for (const l of w.layers) {
        if (l.wv.type === l.wq.type) expect(coLocated(l.wq, l.wk, l.wv)).toBe(true);
        else {
          mixed++;
          expect(coLocated(l.wq, l.wk)).toBe(true);
          expect(coLocated(l.wq, l.wk, l.wv)).toBe(false);
          expect(l.wv.parts[0]!.buffer).not.toBe(l.wq.parts[0]!.buffer);
        }
        if (l.ffn.kind === 'dense') expect(coLocated(l.ffn.gate, l.ffn.up)).toBe(true);
      }
      expect(mixed, 'the fixture has a layer whose V is Q6_K').toBeGreaterThan(0);
      await checkLayout(w, f, c);
    });
  });

  it('a small binding limit splits gate | up into pairs of parts holding the same expert range', async () => {
    if (!ctx) return;
    // Q8_0 experts of 96 rows × 102 bytes = 9792: one expert of gate (at 0) and up (at 9984) per buffer;
    // Wq (160 rows) | Wk | Wv (80 rows each) need 32736 bytes, Wq | Wk 24544
    const maxPartBytes = 30000;
    await withLoaded('qwen3moe-q8_0', { maxPartBytes, chunkBytes: 1000 }, async (w, f, c) => {
      for (const l of w.layers) {
        if (l.ffn.kind !== 'moe') throw new Error('moe fixture');
        const { gateExps: g, upExps: u } = l.ffn;
        expect(g.parts.length).toBeGreaterThan(1);
        expect(u.parts.length).toBe(g.parts.length);
        expect(coLocated(g, u)).toBe(false); // several parts: fused kernels go part by part
        for (const [i, gp] of g.parts.entries()) {
          const up = u.parts[i]!;
          expect(up.buffer).toBe(gp.buffer);
          expect([up.firstRow, up.nRows]).toEqual([gp.firstRow, gp.nRows]);
          expect(gp.nRows % g.shape[1]!).toBe(0); // whole experts
          expect(gp.offset).toBe(0);
          expect(up.offset).toBe(Math.ceil(gp.byteLength / PART_ALIGN) * PART_ALIGN);
        }
        // Wq | Wk | Wv no longer fit one binding together, Wq | Wk do
        expect(coLocated(l.wq, l.wk, l.wv)).toBe(false);
        expect(coLocated(l.wq, l.wk)).toBe(true);
        expect(l.wv.parts[0]!.buffer).not.toBe(l.wq.parts[0]!.buffer);
      }
      await checkLayout(w, f, c, maxPartBytes);
    });
  });

  it('dense gate | up split by rows in pairs under a small binding limit', async () => {
    if (!ctx) return;
    const maxPartBytes = 40 * 144 * 2 + 512; // Q4_K rows of 256 → 144 bytes: 40 rows of each per buffer
    await withLoaded('qwen3-q4_k_m', { maxPartBytes }, async (w, f, c) => {
      for (const l of w.layers) {
        if (l.ffn.kind !== 'dense') throw new Error('dense fixture');
        const { gate, up } = l.ffn;
        expect(gate.parts.length).toBeGreaterThan(1);
        for (const [i, gp] of gate.parts.entries()) {
          expect(up.parts[i]!.buffer).toBe(gp.buffer);
          expect([up.parts[i]!.firstRow, up.parts[i]!.nRows]).toEqual([gp.firstRow, gp.nRows]);
        }
      }
      await checkLayout(w, f, c, maxPartBytes);
    });
  });

  for (const fixture of ['qwen35moe-q4_k_m', 'qwen35-q8_0'] as const) {
    it(`${fixture}: gated attention's permuted Wq | Wk (| Wv) and gate | up co-located, bytes as in the file`, async () => {
      if (!ctx) return;
      await withLoaded(fixture, {}, async (w, f, c) => {
        let attention = 0;
        for (const l of w.hybrid!) {
          if (l.mixer.kind === 'attention') {
            attention++;
            const { wq, wk, wv } = l.mixer;
            expect(coLocated(wq, wk)).toBe(true);
            expect(coLocated(wq, wk, wv)).toBe(wv.type === wq.type);
          }
          const ffn = l.ffn;
          expect(ffn.kind === 'moe' ? coLocated(ffn.gateExps, ffn.upExps) : coLocated(ffn.gate, ffn.up)).toBe(true);
        }
        expect(attention).toBeGreaterThan(0);
        await checkLayout(w, f, c);
      });
    });
  }

  it('reads of odd sizes (chunkBytes 999) fill the same bytes; a failing read frees everything and throws it', async () => {
    if (!ctx) return;
    await withLoaded('qwen35moe-q4_k_m', { chunkBytes: 999 }, async (w, f, c) => checkLayout(w, f, c));
    const f = await openGGUF(await fixturePath('qwen3moe-q8_0'));
    try {
      const c = configFromGGUF(f.metadata, f.tensorByName);
      const base = ctx.allocatedBytes;
      let reads = 0;
      const failing = {
        tensorByName: f.tensorByName,
        readTensor: (t: GGUFTensorInfo, dst?: Uint8Array, off?: number, len?: number) => {
          if (++reads === 40) return Promise.reject(new Error('disk on fire'));
          return f.readTensor(t, dst, off, len);
        },
      };
      await expect(loadWeights(ctx, failing, c, { chunkBytes: 700 })).rejects.toThrow('disk on fire');
      expect(reads).toBeGreaterThanOrEqual(40);
      expect(ctx.allocatedBytes).toBe(base);
    } finally {
      await f.close();
    }
  });

  it('abort while loading frees everything and throws AbortError; progress rises to 1', async () => {
    if (!ctx) return;
    const f = await openGGUF(await fixturePath('qwen3moe-q8_0'));
    try {
      const c = configFromGGUF(f.metadata, f.tensorByName);
      const base = ctx.allocatedBytes;
      const ac = new AbortController();
      await expect(
        loadWeights(ctx, f, c, {
          signal: ac.signal,
          chunkBytes: 512,
          onProgress: (x) => {
            if (x > 0.5) ac.abort(new Error('stop'));
          },
        }),
      ).rejects.toBeInstanceOf(AbortError);
      expect(ctx.allocatedBytes).toBe(base);
      const seen: number[] = [];
      const w = await loadWeights(ctx, f, c, { chunkBytes: 4096, onProgress: (x) => seen.push(x) });
      expect(seen.at(-1)).toBe(1);
      expect(seen.every((x, i) => i === 0 || x >= seen[i - 1]!)).toBe(true);
      freeWeights(ctx, w);
      freeWeights(ctx, w); // a second free is harmless
      expect(ctx.allocatedBytes).toBe(base);
    } finally {
      await f.close();
    }
  });
});
