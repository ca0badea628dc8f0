// RoutingTraceRecorder: collects the blocks of routing a backend reports during eval calls and
// assembles them into one RoutingTrace (src/trace/types.ts). A backend calls add() once per eval
// call (or once per internal batch), with the tokens in order.
import type { RoutingTrace, RoutingTraceShape } from './types.js';

/** The routing of consecutive tokens as a backend reports it (same layout as RoutingTrace). */
export interface RoutingTraceBlock {
  /** the tokens evaluated, in order */
  tokens: readonly number[];
  /** context position of tokens[0] */
  start: number;
  /** [n, nLayer, k] expert ids (any integer array type) */
  ids: ArrayLike<number>;
  /** [n, nLayer, k] expert weights */
  weights: ArrayLike<number>;
  /** [n, nLayer, nExpert] router probabilities; required when the sink asks for probs */
  probs?: ArrayLike<number>;
}

/** What a backend's eval receives as `opts.trace`: where to report the routing. */
export interface RoutingTraceSink {
  /** whether the full router probabilities are wanted (they cost nExpert floats per token and layer) */
  readonly probs: boolean;
  /** receives the routing of the tokens just evaluated, in order */
  add(block: RoutingTraceBlock): void;
}

/** A RoutingTraceSink that keeps everything and assembles one RoutingTrace on demand. */
export class RoutingTraceRecorder implements RoutingTraceSink {
  private blocks: RoutingTrace[] = [];
  private nTokens = 0;
  private assembled: RoutingTrace | null = null;

  constructor(
    readonly shape: RoutingTraceShape,
    readonly probs: boolean,
  ) {}

  /** number of tokens recorded so far */
  get length(): number {
    return this.nTokens;
  }

  /**
   * Appends a block. Its start must follow the previous block's last token.
   * @throws RangeError when the block's sizes do not match its token count, or it is not contiguous
   */
  add(b: RoutingTraceBlock): void {
    const { nLayer, k, nExpert } = this.shape;
    const n = b.tokens.length;
    if (n === 0) return;
    if (b.ids.length !== n * nLayer * k) throw new RangeError(`routing trace: ${b.ids.length} ids for ${n} tokens × ${nLayer} layers × ${k}`);
    if (b.weights.length !== n * nLayer * k) throw new RangeError(`routing trace: ${b.weights.length} weights for ${n} tokens × ${nLayer} layers × ${k}`);
    if (this.probs) {
      if (!b.probs) throw new RangeError('routing trace: probabilities were asked for but the backend gave none');
      if (b.probs.length !== n * nLayer * nExpert) throw new RangeError(`routing trace: ${b.probs.length} probabilities for ${n} tokens × ${nLayer} layers × ${nExpert}`);
    }
    const last = this.blocks[this.blocks.length - 1];
    if (last && b.start !== last.start + last.tokens.length) {
      throw new RangeError(`routing trace: block starts at position ${b.start}, expected ${last.start + last.tokens.length}`);
    }
    const ids = new Uint16Array(b.ids.length);
    for (let i = 0; i < ids.length; i++) {
      const e = b.ids[i]!;
      if (!(e >= 0 && e < nExpert)) throw new RangeError(`routing trace: expert id ${e} outside 0..${nExpert - 1}`);
      ids[i] = e;
    }
    this.blocks.push({
      nLayer, k, nExpert,
      tokens: [...b.tokens],
      start: b.start,
      ids,
      weights: Float32Array.from(b.weights),
      probs: this.probs ? Float32Array.from(b.probs!) : undefined,
    });
    this.nTokens += n;
    this.assembled = null;
  }

  /** Everything recorded so far as one trace (cached until the next add). */
  trace(): RoutingTrace {
    if (this.assembled) return this.assembled;
    const { nLayer, k, nExpert } = this.shape;
    const t: RoutingTrace =
      this.blocks.length === 1
        ? this.blocks[0]!
        : {
            nLayer, k, nExpert,
            tokens: this.blocks.flatMap((b) => b.tokens),
            start: this.blocks[0]?.start ?? 0,
            ids: concat(Uint16Array, this.blocks.map((b) => b.ids)),
            weights: concat(Float32Array, this.blocks.map((b) => b.weights)),
            probs: this.probs ? concat(Float32Array, this.blocks.map((b) => b.probs!)) : undefined,
          };
    if (!this.probs) delete t.probs;
    this.blocks = this.blocks.length > 1 ? [t] : this.blocks;
    this.assembled = t;
    return t;
  }
}

/** The typed arrays `parts` end to end in one new array of type C. */
export function concat<T extends Uint16Array | Float32Array>(C: { new (n: number): T }, parts: T[]): T {
  const out = new C(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p as never, at);
    at += p.length;
  }
  return out;
}
