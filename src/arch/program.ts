// A Program is the recorded forward pass of one shape class (prefill or decode): an ordered list of
// kernel launches (built once, with their bind groups and uniforms), buffer copies and debug taps.
// encode() replays it into a command encoder for a batch of n tokens — compute passes are opened
// and closed around copies — and allocates nothing unless taps are recorded (debug only).
import type { Launch } from '../runtime/pipelines.js';
import type { StepDispatch } from '../gpu/steps.js';

/** Element type of a tapped buffer. */
export type TapType = 'f32' | 'u32';

type Op =
  | { kind: 'launch'; layer: number; launch: Launch }
  | { kind: 'copy'; layer: number; src: GPUBuffer; dst: GPUBuffer; srcByte: (n: number) => number; dstByte: number; bytes: (n: number) => number }
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

  /** Every launch of the program (for dispose). */
  get launches(): Launch[] {
    return this.ops.flatMap((o) => (o.kind === 'launch' ? [o.launch] : []));
  }

  /**
   * Records the program for n tokens into `enc`. Counts dispatches into `counts`; taps (debug)
   * create staging buffers pushed to `taps`.
   */
  encode(device: GPUDevice, enc: GPUCommandEncoder, n: number, counts: EncodeCounts, taps: PendingTap[] | null): void {
    let pass: GPUComputePassEncoder | null = null;
    const nLayer = counts.perLayer.length - 1;
    for (const op of this.ops) {
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
