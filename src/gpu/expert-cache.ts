// Experts for GPUs smaller than the model (issue 18): a fixed pool of GPU expert slots per MoE layer,
// the other experts in host memory (read from the GGUF file on demand), brought in as the router
// chooses them.
//
//   budget   planExpertBudget: everything but the routed experts stays on the GPU (attention,
//            norms, routers, embeddings, LM head, shared experts, dense FFNs); the rest of the
//            budget is split evenly into `slots` experts per MoE layer. slots ≥ nExpert: the model
//            loads exactly as without a budget (no cache object, no extra dispatch or readback).
//            slots < nExpertUsed: GpuMemoryBudgetError (a decode step runs k experts at once).
//   layout   loadWeights(expertSlots): a layer's gate/up/down stacks hold only its slots' experts
//            ([cols, rows, slots], gate|up co-located as usual), so the expert kernels run on them
//            unchanged once the router's ids are remapped to slot ids.
//   a batch  src/arch/expert-offload.ts records, per MoE layer, the router on the GPU, then a host
//            step (src/arch/program.ts): the layer's n·k ids are copied back (4 bytes each), the
//            SlotTable (expert-slots.ts) picks what to evict, the missing experts' bytes are read
//            from the file (pread through the page cache: host RAM stays bounded by one staging
//            buffer) and written into their slots (queue.writeBuffer), the slot ids are written,
//            and the expert FFN runs on the slots. Results are bit-identical to the all-resident
//            pass: the same kernels on the same bytes, each pair's sum in the same order.
//   trade-off with everything resident the expert ids never leave the GPU during a forward pass;
//            here every MoE layer costs a submit and a readback round trip per batch (a GPU→CPU
//            sync), plus the uploads. docs/performance.md "Experts in host memory" has the figures.
//
// The cache belongs to the model's weights (expertCacheOf); sequences take turns on it (acquire):
// the slots one batch filled must stay until its last submit.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { rowBytes, type GGUFTensorInfo } from '../../gguf/types.js';
import { checkTensor, expectedTensors, expertTensorNames, layerFfnKind, type ModelConfig } from '../config.js';
import { GpuMemoryBudgetError, UnsupportedArchitectureError } from '../errors.js';
import { PART_ALIGN, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { DEFAULT_EVICTION_POLICY, initialExperts, SlotTable, type EvictionPolicy, type SlotPass } from './expert-slots.js';
import type { GGUFTensorReader, GpuMoeWeights, GpuWeights } from './weights.js';

/** What a budget leaves on the GPU. */
export interface ExpertBudget {
  /** the budget, in bytes */
  budget: number;
  /** bytes of the weights that stay on the GPU whatever the budget (everything but the routed experts) */
  residentBytes: number;
  /** per layer: one routed expert's gate + up + down bytes (0 for a layer without routed experts) */
  expertBytes: number[];
  /** bytes of every routed expert of the model */
  allExpertBytes: number;
  /** GPU slots per MoE layer (nExpert when everything fits) */
  slots: number;
  /** the smallest budget that loads: residentBytes + nExpertUsed experts per MoE layer */
  minimum: number;
  /** true when slots < nExpert: experts live in host memory */
  offload: boolean;
}

/** Alignment slack the loader may add per MoE layer (co-located parts at 256-byte offsets, sizes rounded to 4). */
const LAYER_SLACK = 8 * PART_ALIGN;

const bytesOf = (n: number) => Math.ceil(n / 4) * 4;

/**
 * How a GPU memory budget (bytes of weights on the device) splits between the weights that always
 * stay and the routed experts: slots per MoE layer, the minimum budget.
 * @throws GpuMemoryBudgetError when the budget is below the minimum; UnsupportedArchitectureError
 *   for a model whose experts the cache cannot hold (gpt-oss's biased experts)
 */
export function planExpertBudget(config: ModelConfig, tensorByName: Map<string, GGUFTensorInfo>, budget: number): ExpertBudget {
  if (!(Number.isFinite(budget) && budget > 0)) throw new RangeError(`gpuMemoryBudget must be a positive number of bytes, got ${budget}`);
  const expertNames = new Set<string>();
  const expertBytes = new Array<number>(config.nLayer).fill(0);
  for (let il = 0; il < config.nLayer; il++) {
    if (config.nExpert === 0 || layerFfnKind(config, il) === 'dense') continue;
    for (const w of ['gate', 'up', 'down'] as const) {
      const names = expertTensorNames(config, il, w);
      for (const n of names) expertNames.add(n);
      const info = tensorByName.get(names[0]!);
      if (info) expertBytes[il]! += names.length === 1 ? info.byteLength / config.nExpert : info.byteLength;
    }
  }
  let residentBytes = 0;
  for (const e of expectedTensors(config)) {
    if (expertNames.has(e.name)) continue;
    const info = checkTensor(tensorByName, e);
    // vectors are uploaded as f32; matrices keep their bytes, at most 256 bytes of padding each
    residentBytes += info.shape.length === 1 ? bytesOf(info.shape[0]! * 4) : bytesOf(info.byteLength) + PART_ALIGN;
  }
  const moeLayers = expertBytes.filter((b) => b > 0).length;
  const perSlot = expertBytes.reduce((a, b) => a + b, 0);
  const allExpertBytes = perSlot * config.nExpert;
  const slack = moeLayers * LAYER_SLACK;
  const minimum = residentBytes + slack + perSlot * config.nExpertUsed;
  const fits = (b: number) => b >= residentBytes + slack + allExpertBytes;
  if (moeLayers === 0 || fits(budget)) {
    if (moeLayers === 0 && budget < residentBytes) {
      throw new GpuMemoryBudgetError(`gpuMemoryBudget ${budget} bytes: the model's weights need ${residentBytes} bytes on the GPU and it has no experts to leave in host memory`, budget, residentBytes);
    }
    return { budget, residentBytes, expertBytes, allExpertBytes, slots: config.nExpert, minimum: moeLayers ? minimum : residentBytes, offload: false };
  }
  const slots = Math.min(config.nExpert, Math.floor((budget - residentBytes - slack) / perSlot));
  if (!(slots >= config.nExpertUsed)) {
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new GpuMemoryBudgetError(
      `gpuMemoryBudget ${budget} bytes (${mib(budget)}) is below the minimum of ${minimum} bytes (${mib(minimum)}) for this model: ` +
        `the weights that stay on the GPU (attention, norms, routers, embeddings, LM head: ${mib(residentBytes)}) plus, in each of ` +
        `its ${moeLayers} MoE layers, the ${config.nExpertUsed} experts one token uses (${mib(perSlot * config.nExpertUsed)} in all). ` +
        `Give at least ${minimum} bytes, or use the cpu backend`,
      budget,
      minimum,
    );
  }
  if (config.expertBiases) throw new UnsupportedArchitectureError(`${config.arch}: experts in host memory do not handle biased experts yet; give a gpuMemoryBudget of at least ${residentBytes + slack + allExpertBytes} bytes or use the cpu backend`);
  return { budget, residentBytes, expertBytes, allExpertBytes, slots, minimum, offload: true };
}

/**
 * The budget that gives every MoE layer `slots` GPU slots (the inverse of planExpertBudget), e.g.
 * for a share of the experts: slotsBudget(c, t, Math.ceil(0.5 * c.nExpert)).
 */
export function slotsBudget(config: ModelConfig, tensorByName: Map<string, GGUFTensorInfo>, slots: number): number {
  const b = planExpertBudget(config, tensorByName, Number.MAX_SAFE_INTEGER);
  const moeLayers = b.expertBytes.filter((x) => x > 0).length;
  return b.residentBytes + moeLayers * LAYER_SLACK + Math.min(slots, config.nExpert) * b.expertBytes.reduce((a, x) => a + x, 0);
}

/** A GPU memory budget: bytes, 'auto' (from the GPU's memory), or the share of each layer's experts to keep on the GPU. */
export type GpuMemoryBudget = number | 'auto' | { expertFraction: number };

/** The slots a share of the experts is (rounded up, at least nExpertUsed). */
export function slotsForFraction(config: ModelConfig, fraction: number): number {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`expertFraction must be in (0, 1], got ${fraction}`);
  return Math.max(config.nExpertUsed, Math.min(config.nExpert, Math.ceil(fraction * config.nExpert - 1e-9)));
}

/**
 * The GPU's memory in bytes, as far as the host can tell (WebGPU does not say): a software adapter's
 * "device" memory is host memory (os.totalmem); NVIDIA through nvidia-smi; AMD through sysfs
 * (mem_info_vram_total). null when unknown.
 */
export function detectGpuMemory(ctx: GPUContext): number | null {
  const a = ctx.adapter;
  if (a.isSoftware) return totalmem();
  const name = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`.toLowerCase();
  if (/nvidia/.test(name)) {
    try {
      const out = execFileSync('nvidia-smi', ['--query-gpu=memory.total', '--format=csv,noheader,nounits'], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).toString();
      const mib = Number(out.trim().split('\n')[0]);
      if (Number.isFinite(mib) && mib > 0) return mib * 2 ** 20;
    } catch {
      // no nvidia-smi: unknown
    }
    return null;
  }
  try {
    let best = 0;
    for (const card of readdirSync('/sys/class/drm')) {
      if (!/^card\d+$/.test(card)) continue;
      try {
        best = Math.max(best, Number(readFileSync(`/sys/class/drm/${card}/device/mem_info_vram_total`, 'utf8').trim()) || 0);
      } catch {
        // not an amdgpu card
      }
    }
    return best > 0 ? best : null;
  } catch {
    return null;
  }
}

/**
 * gpuMemoryBudget 'auto': 90% of the GPU's memory less what one session's KV cache (f16, the
 * attention layers, `contextLength` positions) and activations (256 MiB allowed) take; null when
 * the GPU's memory is unknown (the model then loads whole, as without a budget).
 */
export function autoGpuMemoryBudget(ctx: GPUContext, config: ModelConfig, contextLength: number): number | null {
  const mem = detectGpuMemory(ctx);
  if (mem === null) return null;
  const attnLayers = config.qwen35 ? config.qwen35.recurrent.filter((r) => !r).length : config.nLayer;
  const kv = attnLayers * contextLength * config.nHeadKv * (config.headDimK + config.headDimV) * 2;
  return Math.max(1, Math.floor(mem * 0.9 - kv - 256 * 2 ** 20));
}

/** Statistics of one layer's slots. */
export interface ExpertLayerStats {
  layer: number;
  /** distinct experts a batch needed that were / were not in a slot, summed over batches */
  hits: number;
  misses: number;
  /** hits / (hits + misses); 1 before any batch */
  hitRate: number;
  /** bytes written into this layer's slots */
  uploadBytes: number;
}

/** What the cache did since the model was loaded (or resetStats). */
export interface ExpertCacheStats {
  policy: EvictionPolicy;
  nExpert: number;
  /** GPU slots per MoE layer */
  slots: number;
  /** slots / nExpert */
  residentFraction: number;
  /** the budget and how it splits (bytes) */
  budget: number;
  residentBytes: number;
  slotBytes: number;
  /** tokens evaluated and batches (one per decode step, one per prefill ubatch) */
  tokens: number;
  batches: number;
  /** over every MoE layer: distinct experts per batch found in a slot / uploaded */
  hits: number;
  misses: number;
  hitRate: number;
  /** bytes uploaded into slots, in all and per token */
  uploadBytes: number;
  uploadBytesPerToken: number;
  /** passes of the expert FFN (more than one per batch and layer when a batch needs more experts than slots) */
  passes: number;
  /** router readbacks (one per MoE layer and batch) and their bytes */
  readbacks: number;
  readbackBytes: number;
  /** host milliseconds: waiting for the router's ids (the GPU work up to there), reading experts from the file, writeBuffer */
  waitMs: number;
  readMs: number;
  writeMs: number;
  perLayer: ExpertLayerStats[];
}

/** A byte range of a tensor in the file. */
interface FileRange {
  info: GGUFTensorInfo;
  from: number;
  length: number;
}

/** Where one stack's experts lie in the file. */
interface ExpertSource {
  /** bytes of one expert */
  bytes: number;
  /** bytes [from, from + length) of expert e */
  range(e: number, from: number, length: number): FileRange;
}

/** One MoE layer's slots: its slot stacks, the files' ranges, the slot table. */
export class LayerSlots {
  constructor(
    readonly layer: number,
    readonly table: SlotTable,
    readonly stacks: readonly [WeightTensor, WeightTensor, WeightTensor],
    readonly sources: readonly [ExpertSource, ExpertSource, ExpertSource],
    readonly stats: ExpertLayerStats,
  ) {}

  get nSlots(): number {
    return this.table.nSlots;
  }
}

export interface ExpertCacheOptions {
  /** eviction policy (default DEFAULT_EVICTION_POLICY, chosen by measurement: docs/performance.md) */
  policy?: EvictionPolicy;
  /**
   * per layer: each expert's frequency in the routing trace of a calibration text (src/trace/;
   * e.g. counts of RoutingTrace.ids). Picks the experts each layer starts with (the most frequent)
   * and is policy 'prior''s ranking.
   */
  prior?: readonly (ArrayLike<number> | null | undefined)[];
  /** host staging of the uploads, bytes (default 32 MiB, at least one expert's largest tensor) */
  stagingBytes?: number;
}

const caches = new WeakMap<GpuWeights, ExpertCache>();
const byFfn = new WeakMap<GpuMoeWeights, LayerSlots>();

/** The expert cache of a model's weights, or undefined when every expert is resident. */
export function expertCacheOf(w: GpuWeights): ExpertCache | undefined {
  return caches.get(w);
}

/** The slots of a layer's routed experts, or undefined when they are all resident. */
export function expertSlotsOf(ffn: GpuMoeWeights): LayerSlots | undefined {
  return byFfn.get(ffn);
}

/** The experts each layer's slots start with (loadWeights' expertSlots option), for a budget. */
export function initialSlots(config: ModelConfig, budget: ExpertBudget, opts: ExpertCacheOptions = {}): (il: number) => readonly number[] | null {
  return (il) => (budget.offload && budget.expertBytes[il]! > 0 ? initialExperts(config.nExpert, budget.slots, opts.prior?.[il] ?? undefined) : null);
}

/** The routed experts of layer il, wherever the architecture keeps its blocks. */
function moeWeightsOf(w: GpuWeights, il: number): GpuMoeWeights | null {
  const ffn = w.layers[il]?.ffn ?? w.mla?.[il]?.ffn ?? w.hybrid?.[il]?.ffn;
  return ffn?.kind === 'moe' ? ffn : null;
}

/** Waits for the queue to drain writeBuffer copies after this many bytes (Dawn stages them). */
const SYNC_BYTES = 64 << 20;

export class ExpertCache {
  /** per model layer: its slots (null: no routed experts) */
  readonly layers: (LayerSlots | null)[] = [];
  readonly policy: EvictionPolicy;
  private staging: Uint8Array;
  private turn: Promise<void> = Promise.resolve();
  private counters = { tokens: 0, batches: 0, passes: 0, readbacks: 0, readbackBytes: 0, waitMs: 0, readMs: 0, writeMs: 0 };
  private readonly firstLayer: number;

  private constructor(
    private readonly ctx: GPUContext,
    private readonly file: GGUFTensorReader,
    readonly config: ModelConfig,
    readonly budget: ExpertBudget,
    weights: GpuWeights,
    opts: ExpertCacheOptions,
  ) {
    this.policy = opts.policy ?? DEFAULT_EVICTION_POLICY;
    let largest = 0;
    for (let il = 0; il < config.nLayer; il++) {
      const f = budget.expertBytes[il]! > 0 ? moeWeightsOf(weights, il) : null;
      if (!f) {
        this.layers.push(null);
        continue;
      }
      const stacks = [f.gateExps, f.upExps, f.downExps] as const;
      const sources = (['gate', 'up', 'down'] as const).map((w, i): ExpertSource => {
        // a stacked tensor (expert e at e·bytes) or Mixtral's one tensor per expert
        const infos = expertTensorNames(config, il, w).map((n) => file.tensorByName.get(n)!);
        const t = stacks[i]!;
        const bytes = t.splitRows * rowBytes(t.type, t.cols);
        const stacked = infos.length === 1;
        return { bytes, range: (e, from, length) => (stacked ? { info: infos[0]!, from: e * bytes + from, length } : { info: infos[e]!, from, length }) };
      }) as [ExpertSource, ExpertSource, ExpertSource];
      for (const s of sources) largest = Math.max(largest, s.bytes + 8);
      const prior = opts.prior?.[il] ?? undefined;
      const table = new SlotTable(config.nExpert, budget.slots, this.policy, prior, initialExperts(config.nExpert, budget.slots, prior));
      const ls = new LayerSlots(il, table, stacks, sources, { layer: il, hits: 0, misses: 0, hitRate: 1, uploadBytes: 0 });
      for (const t of stacks) {
        if (t.shape[2] !== budget.slots) throw new Error(`internal: ${t.name} holds ${t.shape[2]} experts, expected ${budget.slots} slots`);
      }
      this.layers.push(ls);
      byFfn.set(f, ls);
    }
    this.firstLayer = this.layers.findIndex((l) => l !== null);
    this.staging = new Uint8Array(Math.max(largest, opts.stagingBytes ?? 32 << 20));
  }

  /**
   * The cache of weights loaded with loadWeights' expertSlots = initialSlots(config, budget, opts):
   * registers it (expertCacheOf) and each layer's slots (expertSlotsOf).
   */
  static create(ctx: GPUContext, file: GGUFTensorReader, config: ModelConfig, budget: ExpertBudget, weights: GpuWeights, opts: ExpertCacheOptions = {}): ExpertCache {
    const c = new ExpertCache(ctx, file, config, budget, weights, opts);
    caches.set(weights, c);
    return c;
  }

  /** Bytes of every slot of every layer. */
  get slotBytes(): number {
    return this.layers.reduce((s, l) => s + (l ? l.nSlots * l.sources.reduce((a, x) => a + x.bytes, 0) : 0), 0);
  }

  /** Waits for the cache (one batch at a time, across sequences); call the returned function when done. */
  async acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const before = this.turn;
    this.turn = before.then(() => mine);
    await before;
    return release;
  }

  /** Counts one router readback (a host step). */
  noteReadback(layer: number, nTokens: number, bytes: number, waitMs: number): void {
    const c = this.counters;
    if (layer === this.firstLayer) {
      c.tokens += nTokens;
      c.batches++;
    }
    c.readbacks++;
    c.readbackBytes += bytes;
    c.waitMs += waitMs;
  }

  /** Records a layer's plan in the statistics. */
  notePlan(ls: LayerSlots, hits: number, misses: number, passes: number): void {
    ls.stats.hits += hits;
    ls.stats.misses += misses;
    ls.stats.hitRate = ls.stats.hits / Math.max(1, ls.stats.hits + ls.stats.misses);
    this.counters.passes += passes;
  }

  /**
   * Writes the experts of a pass's uploads into their slots: each expert's gate, up and down bytes
   * read from the file into the host staging buffer, then queue.writeBuffer (4-byte aligned: an
   * expert whose bytes are not a multiple of 4 is written with its neighbours' edge bytes, read
   * from the file too: the experts the neighbouring slots hold during this pass, pass.holds).
   */
  async upload(ls: LayerSlots, pass: Pick<SlotPass, 'uploads' | 'holds'>): Promise<void> {
    const { uploads, holds } = pass;
    /** a file range, or `length` zero bytes (from −1) */
    type Piece = FileRange;
    type Write = { buffer: GPUBuffer; at: number; pieces: Piece[]; length: number };
    const writes: Write[] = [];
    for (const { expert, slot } of uploads) {
      ls.stacks.forEach((t, i) => {
        const src = ls.sources[i]!;
        const at = src.range;
        const rows = t.splitRows;
        const part = t.parts.find((p) => p.firstRow <= slot * rows && slot * rows < p.firstRow + p.nRows)!;
        const start = part.offset + (slot * rows - part.firstRow) * t.rowBytes;
        const end = start + src.bytes;
        const a4 = start & ~3;
        const b4 = (end + 3) & ~3;
        const pieces: Piece[] = [];
        // the bytes before and after in the same 4-byte words belong to the neighbouring slots
        if (a4 < start) pieces.push(at(holds[slot - 1]!, src.bytes - (start - a4), start - a4));
        pieces.push(at(expert, 0, src.bytes));
        const partEnd = part.offset + part.nRows * t.rowBytes;
        if (b4 > end) {
          const tail = b4 - end;
          if (end < partEnd) pieces.push(at(holds[slot + 1]!, 0, tail));
          else pieces.push({ ...at(expert, 0, 0), from: -1, length: tail }); // past the part's data: zeros
        }
        writes.push({ buffer: part.buffer, at: a4, pieces, length: b4 - a4 });
        ls.stats.uploadBytes += src.bytes;
      });
    }
    // in groups that fit the staging buffer: read concurrently, then write
    let sinceSync = 0;
    for (let i = 0; i < writes.length; ) {
      const group: Write[] = [];
      let fill = 0;
      while (i < writes.length && (group.length === 0 || fill + writes[i]!.length <= this.staging.length)) {
        if (writes[i]!.length > this.staging.length) this.staging = new Uint8Array(writes[i]!.length);
        group.push(writes[i]!);
        fill += writes[i]!.length;
        i++;
      }
      const t0 = performance.now();
      const reads: Promise<unknown>[] = [];
      let off = 0;
      const at: number[] = [];
      for (const w of group) {
        at.push(off);
        for (const p of w.pieces) {
          const dst = this.staging.subarray(off, off + p.length);
          if (p.from < 0) dst.fill(0);
          else reads.push(this.file.readTensor(p.info, dst, p.from, p.length));
          off += p.length;
        }
      }
      await Promise.all(reads);
      const t1 = performance.now();
      this.ctx.assertUsable();
      group.forEach((w, j) => this.ctx.queue.writeBuffer(w.buffer, w.at, this.staging.buffer, this.staging.byteOffset + at[j]!, w.length));
      this.counters.writeMs += performance.now() - t1;
      this.counters.readMs += t1 - t0;
      sinceSync += fill;
      if (sinceSync >= SYNC_BYTES && i < writes.length) {
        sinceSync = 0;
        this.ctx.queue.submit([]);
        await this.ctx.track(this.ctx.queue.onSubmittedWorkDone());
      }
    }
  }

  /** The statistics since load (or the last resetStats). */
  get stats(): ExpertCacheStats {
    const layers = this.layers.filter((l): l is LayerSlots => l !== null);
    const hits = layers.reduce((s, l) => s + l.stats.hits, 0);
    const misses = layers.reduce((s, l) => s + l.stats.misses, 0);
    const uploadBytes = layers.reduce((s, l) => s + l.stats.uploadBytes, 0);
    const c = this.counters;
    return {
      policy: this.policy,
      nExpert: this.config.nExpert,
      slots: this.budget.slots,
      residentFraction: this.budget.slots / this.config.nExpert,
      budget: this.budget.budget,
      residentBytes: this.budget.residentBytes,
      slotBytes: this.slotBytes,
      tokens: c.tokens,
      batches: c.batches,
      hits,
      misses,
      hitRate: hits / Math.max(1, hits + misses),
      uploadBytes,
      uploadBytesPerToken: c.tokens ? uploadBytes / c.tokens : 0,
      passes: c.passes,
      readbacks: c.readbacks,
      readbackBytes: c.readbackBytes,
      waitMs: c.waitMs,
      readMs: c.readMs,
      writeMs: c.writeMs,
      perLayer: layers.map((l) => ({ ...l.stats })),
    };
  }

  /** Zeroes the statistics (the slots keep their experts). */
  resetStats(): void {
    for (const k of Object.keys(this.counters) as (keyof typeof this.counters)[]) this.counters[k] = 0;
    for (const l of this.layers) if (l) Object.assign(l.stats, { hits: 0, misses: 0, hitRate: 1, uploadBytes: 0 });
  }
}
