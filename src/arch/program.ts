// A Program is the recorded forward pass of one shape class (prefill or decode): an ordered list of
// kernel launches (built once, with their bind groups and uniforms), buffer copies and debug taps.
// encode() replays it into a command encoder for a batch of n tokens — compute passes are opened
// and closed around copies — and allocates nothing unless taps are recorded (debug only).
//
// A Program may hold host steps (host(): only the expert cache records them, src/arch/expert-offload.ts):
// points where the pass stops for the CPU. encodeWithHost() then submits what was encoded so far,
// runs the step on the host (read a few bytes back, upload weights, submit work of its own) and
// goes on in a new command encoder. A Program without host steps encodes exactly as before.
import type { Launch } from '../runtime/pipelines.js';
import type { StepDispatch } from '../gpu/steps.js';

/** What a host step may do besides encoding: submit command buffers and read a buffer back (counted in the eval's stats). */
export interface HostIO {
  readonly device: GPUDevice;
  readonly counts: EncodeCounts;
  /** finishes and submits an encoder (one submit in the stats) */
  submit(enc: GPUCommandEncoder): void;
  /** maps `bytes` of a MAP_READ buffer and returns a copy (bytes read back in the stats) */
  read(buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer>;
}

/** A pause of the pass on the host (see encodeWithHost). */
export interface HostStep {
  /** encodes, at this point of the pass, what run() needs (a copy into a readback buffer) */
  encode(enc: GPUCommandEncoder, n: number): void;
  /** after the pass so far was submitted: the host's work; the pass then continues */
  run(n: number, io: HostIO): Promise<void>;
}

/** Element type of a tapped buffer. */
export type TapType = 'f32' | 'u32';

type Op =
  | { kind: 'launch'; layer: number; launch: Launch }
  | { kind: 'copy'; layer: number; src: GPUBuffer; dst: GPUBuffer; srcByte: (n: number) => number; dstByte: number; bytes: (n: number) => number }
  | { kind: 'host'; layer: number; step: HostStep }
  | { kind: 'tap'; layer: number; name: string; buffer: GPUBuffer; type: TapType; firstElem: (n: number) => number; elems: (n: number) => number; row?: TapRows };

/** A strided tap: rows of `width` elements, `stride` elements apart in the buffer, copied packed. */
export interface TapRows {
  width: number;
  stride: number;
}

/** Counters of what encode() recorded. */
export interface EncodeCounts {
  dispatches: number;
  /** dispatches per layer (index nLayer: outside the layers) */
  perLayer: number[];
}

/** A tap recorded by encode(): where its copy lands, read after the submit. */
export interface PendingTap {
  name: string;
  layer: number;
  type: TapType;
  staging: GPUBuffer;
  bytes: number;
}

export class Program {
  private readonly ops: Op[] = [];
  /** the layer ops recorded from now on belong to (−1: outside the blocks) */
  layer = -1;

  /**
   * @param debug record taps (copies of named intermediates); off: tap() records nothing
   */
  constructor(readonly debug: boolean) {}

  /** Appends a kernel launch. */
  run(launch: Launch): void {
    this.ops.push({ kind: 'launch', layer: this.layer, launch });
  }

  /** Appends a buffer copy (outside any compute pass); offsets and size may depend on n. */
  copy(src: GPUBuffer, srcByte: (n: number) => number, dst: GPUBuffer, dstByte: number, bytes: (n: number) => number): void {
    this.ops.push({ kind: 'copy', layer: this.layer, src, dst, srcByte, dstByte, bytes });
  }

  /**
   * Debug only: copies `elems(n)` elements from `firstElem(n)` of `buffer` at this point of the
   * pass, to be handed to onTensor as `name` (layer = this.layer). Nothing is recorded when off.
   * With `row`, the elements are rows of row.width taken row.stride apart (one copy per row).
   */
  tap(name: string, buffer: GPUBuffer, elems: (n: number) => number, opts: { type?: TapType; firstElem?: (n: number) => number; row?: TapRows } = {}): void {
    if (!this.debug) return;
    const row = opts.row && opts.row.stride !== opts.row.width ? opts.row : undefined;
    this.ops.push({ kind: 'tap', layer: this.layer, name, buffer, type: opts.type ?? 'f32', firstElem: opts.firstElem ?? (() => 0), elems, row });
  }

  /** Appends a host step (see encodeWithHost). */
  host(step: HostStep): void {
    this.ops.push({ kind: 'host', layer: this.layer, step });
  }

  /** true when the program has host steps: encode it with encodeWithHost. */
  get hasHostSteps(): boolean {
    return this.ops.some((o) => o.kind === 'host');
  }

  /** Every launch of the program (for dispose). */
  get launches(): Launch[] {
    return this.ops.flatMap((o) => (o.kind === 'launch' ? [o.launch] : []));
  }

  /**
   * Records the program for n tokens into `enc`. Counts dispatches into `counts`; taps (debug)
   * create staging buffers pushed to `taps`.
   */
  encode(device: GPUDevice, enc: GPUCommandEncoder, n: number, counts: EncodeCounts, taps: PendingTap[] | null): void {
    if (this.hasHostSteps) throw new Error('internal: a program with host steps is encoded with encodeWithHost');
    this.encodeOps(this.ops, device, enc, n, counts, taps);
  }

  /**
   * encode() for a program with host steps: at each one, encodes the step's copy, submits the
   * encoder (io.submit), awaits the step's host work and continues in a new encoder, which it
   * returns (the caller encodes the rest of the batch into it and submits it).
   */
  async encodeWithHost(enc: GPUCommandEncoder, n: number, taps: PendingTap[] | null, io: HostIO): Promise<GPUCommandEncoder> {
    let from = 0;
    for (let i = 0; i < this.ops.length; i++) {
      const op = this.ops[i]!;
      if (op.kind !== 'host') continue;
      this.encodeOps(this.ops.slice(from, i), io.device, enc, n, io.counts, taps);
      op.step.encode(enc, n);
      io.submit(enc);
      await op.step.run(n, io);
      enc = io.device.createCommandEncoder({ label: `moet pass after host step ${op.layer}` });
      from = i + 1;
    }
    this.encodeOps(this.ops.slice(from), io.device, enc, n, io.counts, taps);
    return enc;
  }

  private encodeOps(ops: readonly Op[], device: GPUDevice, enc: GPUCommandEncoder, n: number, counts: EncodeCounts, taps: PendingTap[] | null): void {
    let pass: GPUComputePassEncoder | null = null;
    const nLayer = counts.perLayer.length - 1;
    for (const op of ops) {
      if (op.kind === 'host') throw new Error('internal: host step inside encodeOps');
      if (op.kind === 'launch') {
        pass ??= enc.beginComputePass();
        op.launch.encode(pass);
        let d = 0;
        for (const disp of op.launch.dispatches as StepDispatch[]) {
          const [x, y, z] = disp.workgroups;
          if (disp.indirect || (x > 0 && y > 0 && z > 0)) d++;
        }
        counts.dispatches += d;
        counts.perLayer[op.layer >= 0 ? op.layer : nLayer]! += d;
        continue;
      }
      if (pass) {
        pass.end();
        pass = null;
      }
      if (op.kind === 'copy') {
        const bytes = op.bytes(n);
        if (bytes > 0) enc.copyBufferToBuffer(op.src, op.srcByte(n), op.dst, op.dstByte, bytes);
      } else if (taps) {
        const bytes = op.elems(n) * 4;
        if (bytes === 0) continue;
        const staging = device.createBuffer({ label: `tap ${op.name}`, size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        if (op.row) {
          const { width, stride } = op.row;
          for (let r = 0; r * width * 4 < bytes; r++) enc.copyBufferToBuffer(op.buffer, (op.firstElem(n) + r * stride) * 4, staging, r * width * 4, width * 4);
        } else {
          enc.copyBufferToBuffer(op.buffer, op.firstElem(n) * 4, staging, 0, bytes);
        }
        taps.push({ name: op.name, layer: op.layer, type: op.type, staging, bytes });
      }
    }
    pass?.end();
  }
}

/** A fresh counter for nLayer layers. */
export function newCounts(nLayer: number): EncodeCounts {
  return { dispatches: 0, perLayer: new Array<number>(nLayer + 1).fill(0) };
}
