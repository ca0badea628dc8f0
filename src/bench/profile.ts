// Per-kernel GPU time from timestamp queries, without touching the engine's code: while installed,
// every compute pass an encoder begins is split so that each dispatch runs in its own pass with
// `timestampWrites` (begin, end); the queries are resolved into a readback buffer when the encoder
// finishes, and read after the caller's eval returned (its own readback already waited for the
// queue). Kernels are named by their bind group's label with the layer number taken out
// (`matvec blk.7.attn_q.weight#0` → `matvec attn_q.weight`), so a table sums over layers.
//
// Splitting passes adds a little per-dispatch overhead and removes any overlap between dispatches,
// so the profiled run is slower than an unprofiled one: use it for shares, not for t/s.
//
// Also counts dispatches (dispatchWorkgroups and dispatchWorkgroupsIndirect) for backends without
// their own counters.

/** One kernel's totals. */
export interface KernelTime {
  kernel: string;
  /** the WGSL file and entry point (pipeline label) */
  pipeline: string;
  count: number;
  totalNs: number;
}

type Patched = { target: object; key: string; value: unknown };

const MAX_QUERIES = 4096; // WebGPU's limit per query set

interface EncoderState {
  sets: { set: GPUQuerySet; used: number }[];
  labels: { kernel: string; pipeline: string }[];
}

/**
 * Normalized kernel name of a bind group label: the layer number goes, the dispatch index of a
 * multi-dispatch launch stays (`moe_ffn blk.3.ffn_gate_exps.weight#2` → `moe_ffn ffn_gate_exps.weight #2`;
 * `#0` is dropped), so gate/up/down steps of one launch get their own rows.
 */
export function kernelName(label: string): string {
  const m = /#(\d+)$/.exec(label);
  const base = label.replace(/#\d+$/, '').replace(/\bblk\.\d+\./g, '').replace(/\s+/g, ' ').trim() || '(unlabelled)';
  return m && m[1] !== '0' ? `${base} #${m[1]}` : base;
}

export class GpuProfiler {
  private readonly patched: Patched[] = [];
  private readonly states = new WeakMap<GPUCommandEncoder, EncoderState>();
  private pending: { buffer: GPUBuffer; labels: EncoderState['labels']; n: number; garbage: (GPUBuffer | GPUQuerySet)[] }[] = [];
  private readonly totals = new Map<string, KernelTime>();
  /** dispatches seen since install (or the last reset) */
  dispatches = 0;
  /** whether timestamps are recorded (false: counting only) */
  readonly timing: boolean;

  /**
   * @param device the device whose encoders are timed (others are left alone)
   * @param timing record timestamps (needs the `timestamp-query` feature); false counts dispatches only
   */
  constructor(private readonly device: GPUDevice, timing = true) {
    this.timing = timing && device.features.has('timestamp-query');
  }

  /** Patches the WebGPU prototypes. Call uninstall() when done. */
  install(): this {
    const g = globalThis as unknown as Record<string, { prototype: Record<string, unknown> } | undefined>;
    const passProto = g.GPUComputePassEncoder?.prototype;
    const encProto = g.GPUCommandEncoder?.prototype;
    if (!passProto || !encProto) throw new Error('GpuProfiler: WebGPU is not loaded (no GPUComputePassEncoder global)');
    const self = this;
    const origDispatch = passProto.dispatchWorkgroups as (...a: unknown[]) => void;
    const origIndirect = passProto.dispatchWorkgroupsIndirect as (...a: unknown[]) => void;
    this.patch(passProto, 'dispatchWorkgroups', function (this: GPUComputePassEncoder, ...a: unknown[]) {
      self.dispatches++;
      return origDispatch.apply(this, a);
    });
    this.patch(passProto, 'dispatchWorkgroupsIndirect', function (this: GPUComputePassEncoder, ...a: unknown[]) {
      self.dispatches++;
      return origIndirect.apply(this, a);
    });
    if (!this.timing) return this;
    const origBegin = encProto.beginComputePass as (this: GPUCommandEncoder, d?: GPUComputePassDescriptor) => GPUComputePassEncoder;
    const origFinish = encProto.finish as (this: GPUCommandEncoder, d?: GPUCommandBufferDescriptor) => GPUCommandBuffer;
    this.patch(encProto, 'beginComputePass', function (this: GPUCommandEncoder, desc?: GPUComputePassDescriptor) {
      if (desc?.timestampWrites) return origBegin.call(this, desc); // someone else's timing: leave it
      return self.splitPass(this, origBegin, desc) as unknown as GPUComputePassEncoder;
    });
    this.patch(encProto, 'finish', function (this: GPUCommandEncoder, desc?: GPUCommandBufferDescriptor) {
      self.resolve(this);
      return origFinish.call(this, desc);
    });
    return this;
  }

  /** Restores the prototypes. */
  uninstall(): void {
    for (const p of this.patched.reverse()) (p.target as Record<string, unknown>)[p.key] = p.value;
    this.patched.length = 0;
  }

  private patch(target: Record<string, unknown>, key: string, fn: unknown): void {
    this.patched.push({ target, key, value: target[key] });
    target[key] = fn;
  }

  /** A stand-in pass: records state, and opens one real timed pass per dispatch. */
  private splitPass(enc: GPUCommandEncoder, begin: (this: GPUCommandEncoder, d?: GPUComputePassDescriptor) => GPUComputePassEncoder, desc?: GPUComputePassDescriptor): object {
    let pipeline: GPUComputePipeline | null = null;
    const groups = new Map<number, { group: GPUBindGroup | null; offsets?: Iterable<number> }>();
    let st = this.states.get(enc);
    if (!st) this.states.set(enc, (st = { sets: [], labels: [] }));
    const state = st;
    const timed = (run: (p: GPUComputePassEncoder) => void) => {
      let slot = state.sets[state.sets.length - 1];
      if (!slot || slot.used + 2 > MAX_QUERIES) {
        slot = { set: this.device.createQuerySet({ type: 'timestamp', count: MAX_QUERIES }), used: 0 };
        state.sets.push(slot);
      }
      const pass = begin.call(enc, { label: desc?.label, timestampWrites: { querySet: slot.set, beginningOfPassWriteIndex: slot.used, endOfPassWriteIndex: slot.used + 1 } });
      slot.used += 2;
      if (pipeline) pass.setPipeline(pipeline);
      for (const [i, g] of groups) pass.setBindGroup(i, g.group, g.offsets as number[] | undefined);
      run(pass);
      pass.end();
      this.dispatches++;
      state.labels.push({ kernel: kernelName(groups.get(0)?.group?.label ?? ''), pipeline: pipeline?.label ?? '' });
    };
    return {
      label: desc?.label ?? '',
      setPipeline: (p: GPUComputePipeline) => void (pipeline = p),
      setBindGroup: (i: number, group: GPUBindGroup | null, offsets?: Iterable<number>) => void groups.set(i, { group, offsets }),
      dispatchWorkgroups: (x: number, y?: number, z?: number) => timed((p) => p.dispatchWorkgroups(x, y, z)),
      dispatchWorkgroupsIndirect: (b: GPUBuffer, o: number) => timed((p) => p.dispatchWorkgroupsIndirect(b, o)),
      pushDebugGroup: () => {},
      popDebugGroup: () => {},
      insertDebugMarker: () => {},
      end: () => {},
    };
  }

  /** Appends the resolve + copy of this encoder's queries (called from finish). */
  private resolve(enc: GPUCommandEncoder): void {
    const st = this.states.get(enc);
    if (!st || st.labels.length === 0) return;
    this.states.delete(enc);
    const n = st.labels.length;
    const bytes = n * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const readback = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    let q = 0;
    for (const s of st.sets) {
      enc.resolveQuerySet(s.set, 0, s.used, resolved, q * 8);
      q += s.used;
    }
    enc.copyBufferToBuffer(resolved, 0, readback, 0, bytes);
    // the query sets and the resolve buffer are freed in collect(), after the submit
    this.pending.push({ buffer: readback, labels: st.labels, n, garbage: [resolved, ...st.sets.map((s) => s.set)] });
  }

  /** Reads the timestamps of every finished encoder into the totals. Call after the work was submitted. */
  async collect(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      await p.buffer.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(p.buffer.getMappedRange().slice(0));
      p.buffer.unmap();
      p.buffer.destroy();
      for (const x of p.garbage) x.destroy();
      for (let i = 0; i < p.n; i++) {
        const { kernel, pipeline } = p.labels[i]!;
        const dt = t[2 * i + 1]! - t[2 * i]!;
        const key = `${kernel}|${pipeline}`;
        const e = this.totals.get(key) ?? { kernel, pipeline, count: 0, totalNs: 0 };
        e.count++;
        // a few drivers return 0 or wrapped values for very short passes: clamp at 0
        e.totalNs += dt > 0n ? Number(dt) : 0;
        this.totals.set(key, e);
      }
    }
  }

  /** Forgets the totals and the dispatch count. */
  reset(): void {
    this.totals.clear();
    this.dispatches = 0;
  }

  /** Per-kernel totals, largest first. */
  get kernels(): KernelTime[] {
    return [...this.totals.values()].sort((a, b) => b.totalNs - a.totalNs);
  }
}

/** A markdown table: kernel | pipeline | calls | total ms | ms/call | share. */
export function formatProfile(kernels: readonly KernelTime[], title: string, perToken = 1): string {
  const total = kernels.reduce((s, k) => s + k.totalNs, 0);
  const rows = kernels.map((k) => [
    k.kernel,
    k.pipeline,
    String(k.count),
    (k.totalNs / 1e6).toFixed(3),
    (k.totalNs / 1e6 / k.count).toFixed(4),
    (k.totalNs / 1e6 / perToken).toFixed(4),
    total > 0 ? `${((100 * k.totalNs) / total).toFixed(1)}%` : '-',
  ]);
  rows.push(['**total**', '', String(kernels.reduce((s, k) => s + k.count, 0)), (total / 1e6).toFixed(3), '', (total / 1e6 / perToken).toFixed(4), '100%']);
  const head = ['kernel', 'pipeline', 'calls', 'total ms', 'ms/call', 'ms/token', 'share'];
  const right = [false, false, true, true, true, true, true];
  return `\n${title}\n\n` + mdTable(head, rows, right);
}

/** A markdown table with padded columns. */
export function mdTable(head: string[], rows: string[][], right: boolean[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const pad = (s: string, i: number) => (right[i] ? s.padStart(w[i]!) : s.padEnd(w[i]!));
  const line = (r: string[]) => `| ${r.map((c, i) => pad(c, i)).join(' | ')} |`;
  const sep = `| ${w.map((n, i) => (right[i] ? '-'.repeat(n - 1) + ':' : '-'.repeat(n))).join(' | ')} |`;
  return [line(head), sep, ...rows.map(line)].join('\n') + '\n';
}
