// The GPU forward pass shared by qwen3moe and qwen3 (shared/docs/qwen3moe.md): embedding, the
// attention block (identical in both), the residual stream, the final norm and the LM head. The FFN
// of each architecture is recorded by its own file: qwen3moe.ts (router + experts), qwen3.ts (dense).
// The CPU twin of this file is src/cpu/forward.ts; intermediates carry the same names.
//
// The pass is recorded once per shape class into Programs (src/arch/program.ts): every launch —
// pipeline, bind group, uniform buffer — is created here, at sequence creation, and replayed:
//   prefill  n ≤ ubatch tokens: tiled matmuls, causal tiled attention, grouped expert matmuls
//   decode   1 token: matvecs, flash-decoding attention, expert matvecs reading the router's ids
// A step only rewrites small uniforms (token count, position) and two tiny buffers (token ids,
// positions), encodes the Program into one command buffer and submits it once; nothing comes back
// to the CPU before the logits (or the top-k candidates) at the very end.
import type { Numerics } from '../backend.js';
import { GGMLType } from '../../gguf/types.js';
import type { ModelConfig } from '../config.js';
import { actQuantBlock, actQuantFor, createActQuant, type ActQuantType } from '../gpu/actquant.js';
import { attnDecodeScratchBytes, createAttnDecode, createAttnPrefill, createKvCache, type AttnDecodeLaunch, type AttnPrefillLaunch, type KvCache, type KvWriteLaunch } from '../gpu/attention.js';
import { createSigmoidGate } from '../gpu/gated.js';
import { createAdd, createEmbed, createMatMul, createMatVec, createMatVecFused, createMatVecFusedByPart, createQKNormRope, createRmsNorm, FusedKernelUnsupported, type BufferRef, type MatVecFusedArgs } from '../gpu/ops.js';
import { createTopK, type TopKLaunch } from '../gpu/sample.js';
import type { GpuLayerWeights, GpuWeights } from '../gpu/weights.js';
import { coLocated, createStorage, type WeightTensor } from '../runtime/buffers.js';
import type { GPUContext } from '../runtime/device.js';
import { chainLaunches, Launch } from '../runtime/pipelines.js';
import { Program } from './program.js';

/** Prefill (a batch of tokens) or decode (one token): the two shape classes of the pass. */
export type Mode = 'prefill' | 'decode';

/**
 * The activations of one sequence, allocated once (sized for the ubatch and the context) and
 * shared by both shape classes: decode uses row 0 of each. Each is its own buffer, since WebGPU
 * forbids a writable binding aliasing another binding of the same dispatch.
 */
export class Arena {
  readonly buffers: GPUBuffer[] = [];
  constructor(private readonly ctx: GPUContext) {}
  /** A storage buffer of `bytes` bytes, freed with the arena. */
  alloc(label: string, bytes: number): GPUBuffer {
    const b = createStorage(this.ctx, bytes, label);
    this.buffers.push(b);
    return b;
  }
  get bytes(): number {
    return this.buffers.reduce((s, b) => s + b.size, 0);
  }
  free(): void {
    for (const b of this.buffers) this.ctx.destroyBuffer(b);
    this.buffers.length = 0;
  }
}

/** The FFN half of a block, per architecture (qwen3moe.ts, qwen3.ts). */
export interface FfnBlock {
  /** allocates the FFN's activations in g.arena (once per sequence) */
  alloc(g: Graph): void;
  /**
   * Decode only: the FFN normalizes x itself inside its first kernels (no RMSNorm dispatch of its
   * own). transformerBlock then records no norm and passes `norm` to record() instead of h; the
   * FFN must still leave h = RMSNorm(x) ⊙ ffn_norm in g.act.h and tap it as 'ffn_norm'.
   */
  fusesNorm?: (g: Graph, L: Pick<GpuLayerWeights, 'ffn'>) => boolean;
  /**
   * records x += FFN(h) for layer L (h = RMSNorm(x) ⊙ ffn_norm is in g.act.h; hq, when the norm
   * wrote it, is h through the round trip that `inputs(L)` asked for). With `norm` (decode, when
   * fusesNorm said so) h is not there yet: the FFN's kernels normalize norm.x themselves.
   */
  record(g: Graph, p: Program, mode: Mode, L: Pick<GpuLayerWeights, 'ffn'>, hq?: Rounded | null, norm?: FfnNormInput): Promise<void>;
  /** the weights that multiply h (numerics 'llamacpp': the norm rounds h for them in its own dispatch) */
  inputs?(L: Pick<GpuLayerWeights, 'ffn'>): readonly WeightTensor[];
}

/** What an FFN that fuses its RMSNorm reads: h = RMSNorm(x) ⊙ weight, rows of nEmbd. */
export interface FfnNormInput {
  x: GPUBuffer; // f32 [n, nEmbd] the residual stream
  weight: GPUBuffer; // f32 [nEmbd] ffn_norm
  eps: number;
}

/** Rows already through a round trip: `out` holds x rounded to `type`, contiguous rows of the product's cols. */
export interface Rounded {
  type: ActQuantType;
  out: GPUBuffer;
}

/** What attentionBlock reads of a layer (biases and Q/K norms as the config's AttentionSpec has them). */
export type AttentionWeights = Pick<GpuLayerWeights, 'attnNorm' | 'wq' | 'wk' | 'wv' | 'wo' | 'qNorm' | 'kNorm'> &
  Partial<Pick<GpuLayerWeights, 'bq' | 'bk' | 'bv' | 'bo' | 'sinks'>>;

/** One block of the pass for recordBody (default: the qwen3 transformer block); hybrids bring their own. */
export type LayerBlock = (g: Graph, p: Program, mode: Mode, il: number) => Promise<void>;

/** The activations every architecture has (shapes for n ≤ ubatch tokens; decode uses n = 1). */
export interface Activations {
  tokens: GPUBuffer; // u32 [ubatch] token ids
  pos: GPUBuffer; // u32 [ubatch] positions
  x: GPUBuffer; // f32 [ubatch, nEmbd] the residual stream
  h: GPUBuffer; // f32 [ubatch, nEmbd] normed input of a sub-block
  q: GPUBuffer; // f32 [ubatch, nHead·headDimK] (gated attention: [ubatch, 2, nHead·headDimK], query | gate)
  k: GPUBuffer; // f32 [ubatch, nHeadKv·headDimK]
  v: GPUBuffer; // f32 [ubatch, nHeadKv·headDimV]
  o: GPUBuffer; // f32 [ubatch, nHead·headDimV] attention output (kqv_out)
  attnScratch: GPUBuffer; // flash-decoding partials [nHead, chunks, headDimV + 2]
  xLast: GPUBuffer; // f32 [nEmbd] the last token's residual (prefill)
  hLast: GPUBuffer; // f32 [nEmbd] RMSNorm(xLast) ⊙ output_norm
  logits: GPUBuffer; // f32 [nVocab]
  /** qkNorm 'full' (olmoe): q, k after their full-width RMSNorm, then roped in place */
  qNormed: GPUBuffer | null; // f32 [ubatch, nHead·headDimK]
  kNormed: GPUBuffer | null; // f32 [ubatch, nHeadKv·headDimK]
  /** bound where a kernel needs a buffer it does not read (qk_norm_rope's weight without a Q/K norm) */
  unused: GPUBuffer; // f32 [4]
}

/** Everything a recording function needs; one per sequence. */
export class Graph {
  readonly arena: Arena;
  readonly act: Activations;
  /** per attention layer K [nCtx, nHeadKv, headDimK] and V [nCtx, nHeadKv, headDimV] (f16 with shader-f16) */
  readonly kv: KvCache[] = [];
  /** per layer: its index in kv (−1: a recurrent layer of a hybrid, no KV cache) */
  readonly kvSlot: number[] = [];
  /** FFN buffers, named by the FFN block */
  readonly ffnBufs = new Map<string, GPUBuffer>();
  /** prefill launches whose size follows n: (launch, units per token) */
  readonly counted: [Launch, number][] = [];
  readonly kvWrites: Record<Mode, KvWriteLaunch[]> = { prefill: [], decode: [] };
  readonly attnPrefill: AttnPrefillLaunch[] = [];
  readonly attnDecode: AttnDecodeLaunch[] = [];

  constructor(
    readonly ctx: GPUContext,
    readonly cfg: ModelConfig,
    readonly w: GpuWeights,
    /** positions the KV cache holds */
    readonly nCtx: number,
    /** tokens per prefill batch */
    readonly ubatch: number,
    readonly ffn: FfnBlock,
    /** record debug taps */
    readonly debug: boolean,
    kvF16: boolean,
    /**
     * 'llamacpp': products take their input through llama.cpp's activation round trip (act_quant.wgsl)
     * and, with an f16 cache, attention takes q rounded to f16; 'exact': f32 throughout
     */
    readonly numerics: Numerics = 'exact',
  ) {
    const { nEmbd: E, nHead, nHeadKv, headDimK: DK, headDimV: DV, nVocab } = cfg;
    const U = ubatch;
    const a = (this.arena = new Arena(ctx));
    this.act = {
      tokens: a.alloc('tokens', U * 4),
      pos: a.alloc('pos', U * 4),
      x: a.alloc('x', U * E * 4),
      h: a.alloc('h', U * E * 4),
      q: a.alloc('q', U * nHead * DK * 4 * (cfg.qwen35 ? 2 : 1)),
      k: a.alloc('k', U * nHeadKv * DK * 4),
      v: a.alloc('v', U * nHeadKv * DV * 4),
      o: a.alloc('o', U * nHead * DV * 4),
      attnScratch: a.alloc('attn_decode.part', attnDecodeScratchBytes(nHead, DV, nCtx)),
      xLast: a.alloc('x_last', E * 4),
      hLast: a.alloc('h_last', E * 4),
      logits: a.alloc('logits', nVocab * 4),
      qNormed: cfg.attention.qkNorm === 'full' ? a.alloc('q_normed', U * nHead * DK * 4) : null,
      kNormed: cfg.attention.qkNorm === 'full' ? a.alloc('k_normed', U * nHeadKv * DK * 4) : null,
      unused: a.alloc('unused', 16),
    };
    for (let il = 0; il < cfg.nLayer; il++) {
      if (cfg.qwen35?.recurrent[il]) {
        this.kvSlot.push(-1);
        continue;
      }
      this.kvSlot.push(this.kv.length);
      // MLA (deepseek2): V is the latent c at the head of each K row [c | k_pe], as llama.cpp's cache
      this.kv.push(createKvCache(ctx, { nCtx, nHeadKv, headDimK: DK, headDimV: DV, f16: kvF16, vInK: !!cfg.mla, label: `kv.${il}` }));
    }
    ffn.alloc(this);
  }

  /** Rows of the batch: n for prefill (the launch is sized for ubatch, then setCount), 1 for decode. */
  rows(mode: Mode): number {
    return mode === 'prefill' ? this.ubatch : 1;
  }

  /** Registers a prefill launch whose size is `perToken`·n (setCount on every batch size change). */
  async sized<L extends Launch>(mode: Mode, launch: Promise<L>, perToken = 1): Promise<L> {
    const l = await launch;
    if (mode === 'prefill') this.counted.push([l, perToken]);
    return l;
  }

  /** A named FFN buffer (allocated by FfnBlock.alloc). */
  buf(name: string): GPUBuffer {
    const b = this.ffnBufs.get(name);
    if (!b) throw new Error(`no FFN buffer ${name}`);
    return b;
  }

  /**
   * y = W·x (decode: matvec) or Y = W·X (prefill: tiled matmul); accumulate: y += …; strides default
   * to W's cols / rows. Under numerics 'llamacpp' x first goes through the round trip of W's
   * vec_dot_type into a scratch buffer, which the product reads (one launch of two dispatches) —
   * unless `xq` already holds x through that round trip (written by the norm that made x).
   */
  async linear(mode: Mode, w: WeightTensor, x: BufferRef, y: BufferRef, accumulate = false, strides: { xStride?: number; yStride?: number } = {}, xq: Rounded | null = null): Promise<Launch> {
    const type = this.numerics === 'llamacpp' ? actQuantFor(w.type) : null;
    let launch: Launch;
    if (type !== null && xq?.type === type) {
      launch = await this.linearExact(mode, w, xq.out, y, accumulate, { ...strides, xStride: w.cols });
    } else if (type !== null) {
      const round = await this.roundTrip(mode, type, x, w.cols, strides.xStride ?? w.cols);
      launch = chainLaunches(round.launch, await this.linearExact(mode, w, round.out, y, accumulate, { ...strides, xStride: w.cols }));
    } else {
      launch = await this.linearExact(mode, w, x, y, accumulate, strides);
    }
    return mode === 'prefill' ? this.sized(mode, Promise.resolve(launch)) : launch;
  }

  private linearExact(mode: Mode, w: WeightTensor, x: BufferRef, y: BufferRef, accumulate: boolean, strides: { xStride?: number; yStride?: number }): Promise<Launch> {
    if (mode === 'decode') return createMatVec(this.ctx, { w, x, y, accumulate, ...strides, ...matVecShape(w) });
    return createMatMul(this.ctx, { w, x, y, nTokens: this.ubatch, accumulate, ...strides });
  }

  /** Scratch for rounded activations, [ubatch, cols] (grown on demand; launches keep their buffer). */
  private actScratch: GPUBuffer | null = null;

  /**
   * The llama.cpp activation round trip of `rows(mode)` rows of `cols` values of x (row stride
   * xStride) into the shared scratch (contiguous rows): a launch (not registered with sized(); the
   * caller's launch is) and where its output lives. Products read the scratch right after, so one
   * buffer serves every round trip of the pass.
   */
  async roundTrip(mode: Mode, type: ActQuantType, x: BufferRef, cols: number, xStride = cols): Promise<{ launch: Launch; out: GPUBuffer }> {
    const out = this.roundScratch(cols);
    const launch = await createActQuant(this.ctx, { type, x, out, n: cols, rows: this.rows(mode), xStride });
    return { launch, out };
  }

  /** The shared round-trip scratch, at least [ubatch, cols] (for kernels that write a round trip themselves). */
  roundScratch(cols: number): GPUBuffer {
    const bytes = this.ubatch * cols * 4;
    if (!this.actScratch || this.actScratch.size < bytes) this.actScratch = this.arena.alloc('act_quant', bytes);
    return this.actScratch;
  }

  /**
   * Decode: y_r = W_r·v for co-located weights in one dispatch (createMatVecFused), v = x through the
   * prologue `pre` asks for (RMSNorm / SwiGLU) and, under numerics 'llamacpp', the weights' round
   * trip; the same bits as the unfused chain. null when the kernel cannot take it (weights not
   * co-located or split, the prologue too big for workgroup memory, cols not a multiple of the
   * round trip's block): the caller records the unfused chain.
   */
  async fusedMatVec(ws: readonly WeightTensor[], ys: readonly BufferRef[], x: BufferRef, pre: Pick<MatVecFusedArgs, 'norm' | 'swiglu' | 'out' | 'accumulate'> = {}): Promise<Launch | null> {
    if (ws.length > 1 && !coLocated(...ws)) return null;
    return unlessUnsupported(createMatVecFused(this.ctx, { ws, ys, x, ...this.fusedShape(ws[0]!), ...pre }));
  }

  /** w·x → y as fusedMatVec, for a weight split over several bindings too (createMatVecFusedByPart). */
  fusedMatVecByPart(w: WeightTensor, y: GPUBuffer, x: BufferRef): Promise<Launch | null> {
    return unlessUnsupported(createMatVecFusedByPart(this.ctx, { w, y, x, ...this.fusedShape(w) }));
  }

  /**
   * The fused matvec's round trip (numerics 'llamacpp') and the plain matvec's geometry for `w` (a
   * software adapter: its thread per row): the same sums, the same bits.
   */
  private fusedShape(w: WeightTensor): Pick<MatVecFusedArgs, 'round' | 'threadPerRow' | 'workgroupSize'> {
    const round = this.numerics === 'llamacpp' ? actQuantFor(w.type) : null;
    const shape = matVecShape(w);
    return this.ctx.adapter.isSoftware ? { round, threadPerRow: shape.software.threadPerRow } : { round, workgroupSize: shape.workgroupSize };
  }

  /**
   * Decode: RMSNorm(x) ⊙ weight fused into the products that read it: ws[i]·h → ys[i] in as few
   * dispatches as co-location allows (all in one; else the first two and the rest; else one each),
   * each normalizing x itself; the first also writes h (f32 [nEmbd]) for the taps and later readers.
   * null when any of them cannot be fused (nothing recorded then).
   */
  async normMatVecs(x: GPUBuffer, weight: GPUBuffer, h: GPUBuffer, ws: readonly WeightTensor[], ys: readonly BufferRef[]): Promise<Launch[] | null> {
    const groups: number[][] = coLocated(...ws) ? [ws.map((_, i) => i)] : ws.length > 2 && coLocated(ws[0]!, ws[1]!) ? [[0, 1], ...ws.slice(2).map((_, i) => [i + 2])] : ws.map((_, i) => [i]);
    const launches: Launch[] = [];
    for (const [gi, idx] of groups.entries()) {
      const l = await this.fusedMatVec(idx.map((i) => ws[i]!), idx.map((i) => ys[i]!), x, { norm: { weight, eps: this.cfg.rmsEps }, out: gi === 0 ? h : undefined });
      if (!l) {
        for (const done of launches) done.dispose();
        return null;
      }
      launches.push(l);
    }
    return launches;
  }

  /** f32 [ubatch, nEmbd]: act.h through a round trip (rmsNorm's second output), allocated on first use */
  private hq: GPUBuffer | null = null;

  /**
   * The round trip to fuse into a norm whose output `consumers` multiply (numerics 'llamacpp'): the
   * vec_dot_type most of them need (ties: the first's), or null (exact numerics, F32 weights, or rows
   * not a multiple of its block).
   */
  roundFor(consumers: readonly WeightTensor[], cols: number): ActQuantType | null {
    if (this.numerics !== 'llamacpp') return null;
    const types = consumers.map((w) => actQuantFor(w.type)).filter((t): t is ActQuantType => t !== null && cols % actQuantBlock(t) === 0);
    let best: ActQuantType | null = null;
    let bestCount = 0;
    for (const t of types) {
      const c = types.filter((u) => u === t).length;
      if (c > bestCount) [best, bestCount] = [t, c];
    }
    return best;
  }

  /**
   * out = RMSNorm(x) ⊙ weight over rows of nEmbd; under numerics 'llamacpp', in the same dispatch,
   * the normed rows through the round trip the `consumers` need (see roundFor) into a buffer of
   * their own: `hq`, to pass to linear() (null when there is none).
   */
  async rmsNorm(mode: Mode, x: GPUBuffer, weight: GPUBuffer, out: GPUBuffer, consumers: readonly WeightTensor[] = []): Promise<{ launch: Launch; hq: Rounded | null }> {
    const E = this.cfg.nEmbd;
    const type = this.roundFor(consumers, E);
    let hq: Rounded | null = null;
    if (type !== null) {
      this.hq ??= this.arena.alloc('h_q', this.ubatch * E * 4);
      hq = { type, out: this.hq };
    }
    const launch = await this.sized(mode, createRmsNorm(this.ctx, { x, weight, out, n: E, rows: this.rows(mode), eps: this.cfg.rmsEps, round: hq ?? undefined }));
    return { launch, hq };
  }

  /** Frees the activations and the KV cache. */
  free(): void {
    this.arena.free();
    for (const c of this.kv) {
      this.ctx.destroyBuffer(c.k);
      if (!c.vInK) this.ctx.destroyBuffer(c.v);
    }
    this.kv.length = 0;
  }
}

/**
 * Matvec geometry for a weight: short rows (≤ 1024 values, ≤ 32 blocks) need no more than 32
 * threads; very tall matrices (the LM head) take 8 rows per workgroup, so the grid stays near 20k
 * workgroups. On a software adapter (`software`): one thread per row (main_rows, no reduction and
 * no barriers), 32 threads × 16 rows for tall matrices, × 4 otherwise (measured on lavapipe: the
 * 151,936 × 256 Q6_K LM head 1.3–1.9× faster than the split rows).
 */
export function matVecShape(w: WeightTensor): { workgroupSize: number; rowsPerWorkgroup: number; software: { threadPerRow: { workgroupSize: number; rowsPerThread: number } } } {
  return {
    workgroupSize: w.cols <= 1024 ? 32 : 64,
    rowsPerWorkgroup: w.rows >= 32768 ? 8 : 2,
    software: { threadPerRow: { workgroupSize: 32, rowsPerThread: w.rows >= 32768 ? 16 : 4 } },
  };
}

/** The launch, or null when the fused kernel cannot take the case (FusedKernelUnsupported). */
async function unlessUnsupported(launch: Promise<Launch>): Promise<Launch | null> {
  try {
    return await launch;
  } catch (e) {
    if (e instanceof FusedKernelUnsupported) return null;
    throw e;
  }
}

/** rows·width elements: a tap of n rows of `width` */
const rowsOf = (width: number) => (n: number) => n * width;

/** Where attentionBlock differs for an architecture. */
export interface AttentionOptions {
  /**
   * Gated attention (qwen35moe / qwen35, shared/docs/qwen35moe.md): Wq yields [query | gate] per
   * token (rows permuted at load, src/gpu/qwen35-weights.ts), RoPE covers the first nRot dims, and
   * o ⊙= sigmoid(gate) before Wo. Taps as src/cpu/qwen35.ts (attn_pregate, attn_gated).
   */
  gated?: boolean;
}

/**
 * The attention block of layer L, identical in qwen3moe and qwen3 (qwen3moe.md steps 2.1–2.6):
 *   x += Wo · attention(qk_norm_rope(Wq·h), qk_norm_rope(Wk·h), Wv·h),  h = RMSNorm(x) ⊙ attn_norm
 * With `gated`: x += Wo · (attention(…) ⊙ sigmoid(gate)), [q | gate] = Wq·h.
 */
export async function attentionBlock(g: Graph, p: Program, mode: Mode, L: AttentionWeights, il: number, opts: AttentionOptions = {}): Promise<void> {
  const { ctx, cfg, act: a } = g;
  const { nEmbd: E, nHead, nHeadKv, headDimK: DK, headDimV: DV } = cfg;
  const N = g.rows(mode);
  const qRow = nHead * DK;
  const qStride = opts.gated ? 2 * qRow : qRow; // q of token t at t·qStride, its gate at + qRow

  // h = RMSNorm(x) ⊙ attn_norm                                  h [n, nEmbd]
  // (numerics 'llamacpp': and hq = h through Wq/Wk/Wv's round trip, same dispatch)  hq [n, nEmbd]
  // q = Wq·h, k = Wk·h, v = Wv·h                                q [n, nHead·DK] (gated: [n, 2, nHead·DK]), k [n, nHeadKv·DK], v [n, nHeadKv·DV]
  // decode: the norm (and the round trip) inside the matvecs — Q|K|V in one dispatch when co-located
  const fused = mode === 'decode' ? await g.normMatVecs(a.x, L.attnNorm, a.h, [L.wq, L.wk, L.wv], [a.q, a.k, a.v]) : null;
  if (fused) {
    for (const l of fused) p.run(l);
    p.tap('attn_norm', a.h, rowsOf(E));
  } else {
    const norm = await g.rmsNorm(mode, a.x, L.attnNorm, a.h, [L.wq, L.wk, L.wv]);
    p.run(norm.launch);
    p.tap('attn_norm', a.h, rowsOf(E));
    p.run(await g.linear(mode, L.wq, a.h, a.q, false, {}, norm.hq));
    p.run(await g.linear(mode, L.wk, a.h, a.k, false, {}, norm.hq));
    p.run(await g.linear(mode, L.wv, a.h, a.v, false, {}, norm.hq));
  }
  // (qkvBias) q += bq, k += bk, v += bv: one bias row added to every token's row
  const biases: [GPUBuffer | null | undefined, GPUBuffer, number][] = [[L.bq, a.q, qRow], [L.bk, a.k, nHeadKv * DK], [L.bv, a.v, nHeadKv * DV]];
  for (const [bias, out, width] of biases) {
    if (bias) p.run(await g.sized(mode, createAdd(ctx, { b: bias, out, n: N * width, bWidth: width }), width));
  }
  p.tap('Vcur', a.v, rowsOf(nHeadKv * DV));

  // qkNorm 'full' (olmoe): q = RMSNorm(q) ⊙ q_norm, k = RMSNorm(k) ⊙ k_norm over whole rows, into
  // buffers of their own (the rope below then rotates those in place, without a norm)
  const at = cfg.attention;
  let qx = a.q;
  let kx = a.k;
  if (at.qkNorm === 'full') {
    qx = a.qNormed!;
    kx = a.kNormed!;
    p.run(await g.sized(mode, createRmsNorm(ctx, { x: a.q, weight: L.qNorm!, out: qx, n: qRow, rows: N, eps: cfg.rmsEps })));
    p.run(await g.sized(mode, createRmsNorm(ctx, { x: a.k, weight: L.kNorm!, out: kx, n: nHeadKv * DK, rows: N, eps: cfg.rmsEps })));
    p.tap('Qcur_normed', qx, rowsOf(qRow));
    p.tap('Kcur_normed', kx, rowsOf(nHeadKv * DK));
  }
  const headNorm = at.qkNorm === 'head';

  // llama.cpp with an F16 cache multiplies K by q rounded to f16 (F16's vec_dot_type): the rope
  // kernel writes that rounding too (into the shared round-trip scratch), in its dispatch
  const cache = g.kv[g.kvSlot[il]!]!;
  const qF16 = g.numerics === 'llamacpp' && cache.f16 ? g.roundScratch(qRow) : null;

  // per head: RMSNorm ⊙ q_norm / k_norm (qkNorm 'head'), then RoPE at pos0 + t — NEOX or adjacent
  // pairs, θ ÷ rope_freqs, × freq scale (in place; Q and K heads in one dispatch)
  // (numerics 'llamacpp', f16 cache: and qF16 = f16(q))             qF16 [n, nHead·DK]
  // and, same dispatch, KV cache[pos0 + t] = k, v                    cache [nCtx, nHeadKv, DK | DV]
  // (a KvWriteLaunch: update(n, pos0) / setPosition(pos0) per batch through g.kvWrites)
  // (gpt-oss: every other layer slides over the last slidingWindow positions, with its own rope base)
  const swa = at.swaLayers[il] ?? false;
  const window = swa ? at.slidingWindow : 0;
  const rope = {
    headDim: DK, nRot: cfg.nRot, nTokens: N, eps: cfg.rmsEps, base: swa ? at.ropeBaseSwa : cfg.ropeBase, norm: headNorm,
    style: at.rope, freqFactors: g.w.ropeFreqs ?? undefined, freqScale: at.ropeFreqScale, yarn: at.yarn,
  };
  const k = { x: kx, weight: (headNorm && L.kNorm) || a.unused, nHeads: nHeadKv };
  const ropeKv = await createQKNormRope(ctx, { ...rope, x: qx, weight: (headNorm && L.qNorm) || a.unused, nHeads: nHead, tokenStride: qStride, k, qRoundF16: qF16 ?? undefined, kv: { cache, v: a.v } });
  g.kvWrites[mode].push(ropeKv);
  p.run(ropeKv);
  p.tap('Qcur_rope', qx, rowsOf(qRow), { row: { width: qRow, stride: qStride } });
  p.tap('Kcur_rope', kx, rowsOf(nHeadKv * DK));

  const q: BufferRef = qF16 ?? qx;
  const qs = qF16 ? qRow : qStride;

  // o = softmax(q·Kᵀ / √DK, causal) · V over positions 0 ..= pos0 + t   o [n, nHead·DV]
  // (numerics 'llamacpp', f16 cache: the softmax rounded to f16 before ·V, as llama.cpp's KQ·V)
  // (sliding layers: positions > pos0 + t − window only; sinks: one more logit per head, no value)
  const extras = { window, sinks: L.sinks ?? undefined };
  if (mode === 'prefill') {
    const att = await createAttnPrefill(ctx, { cache, q, out: a.o, nHead, nTokens: N, pos0: 0, qStride: qs, scale: at.scale, llamaSoftmax: !!qF16, ...extras });
    g.attnPrefill.push(att);
    p.run(att);
  } else {
    const att = await createAttnDecode(ctx, { cache, q, out: a.o, nHead, nKv: 1, scale: at.scale, scratch: a.attnScratch, llamaSoftmax: !!qF16, ...extras });
    g.attnDecode.push(att);
    p.run(att);
  }
  p.tap(opts.gated ? 'attn_pregate' : 'kqv_out', a.o, rowsOf(nHead * DV));

  if (opts.gated) {
    // o ⊙= sigmoid(gate)                                         o [n, nHead·DV]
    p.run(await g.sized(mode, createSigmoidGate(ctx, { gate: { buffer: a.q, offset: qRow }, gateStride: qStride, o: a.o, width: nHead * DV, nTokens: N })));
    p.tap('attn_gated', a.o, rowsOf(nHead * DV));
  }

  // x += Wo·o                                                   x [n, nEmbd] (residual fused)
  // (decode: o's round trip inside the matvec)
  // (outBias: Wo·o into o2, + bo, then x += — llama.cpp adds the bias before the residual)
  if (L.bo) {
    const o2 = g.act.h; // free again: h was consumed by the projections
    p.run(await g.linear(mode, L.wo, a.o, o2, false));
    p.run(await g.sized(mode, createAdd(ctx, { b: L.bo, out: o2, n: N * E, bWidth: E }), E));
    p.run(await g.sized(mode, createAdd(ctx, { b: o2, out: a.x, n: N * E }), E));
    return;
  }
  const oProj = mode === 'decode' ? await g.fusedMatVec([L.wo], [a.x], a.o, { accumulate: true }) : null;
  p.run(oProj ?? (await g.linear(mode, L.wo, a.o, a.x, true)));
}

/**
 * The body of the pass for one shape class: embedding, then every block
 *   x += attention(x);  x += FFN(RMSNorm(x) ⊙ ffn_norm)
 * leaving the residual stream in act.x.
 */
export async function recordBody(g: Graph, mode: Mode, block: LayerBlock = transformerBlock): Promise<Program> {
  const { ctx, cfg, w, act: a } = g;
  const E = cfg.nEmbd;
  const p = new Program(g.debug);

  // x[t] = row tokens[t] of token_embd, dequantized              x [n, nEmbd]
  p.run(await g.sized(mode, createEmbed(ctx, { w: w.tokEmbd, ids: a.tokens, out: a.x, nTokens: g.rows(mode) })));
  p.tap('inp_embd', a.x, rowsOf(E));

  for (let il = 0; il < cfg.nLayer; il++) {
    p.layer = il;
    await block(g, p, mode, il);
  }
  p.layer = -1;
  return p;
}

/** One block of the transformer family:  x += attention(x);  x += FFN(RMSNorm(x) ⊙ ffn_norm). */
async function transformerBlock(g: Graph, p: Program, mode: Mode, il: number): Promise<void> {
  const L = g.w.layers[il]!;
  await attentionBlock(g, p, mode, L, il); // x += Wo · attention
  await ffnHalf(g, p, mode, L);
}

/** The second half of a block, after its attention:  x += FFN(RMSNorm(x) ⊙ ffn_norm). */
export async function ffnHalf(g: Graph, p: Program, mode: Mode, L: Pick<GpuLayerWeights, 'ffn' | 'ffnNorm' | 'shared'>): Promise<void> {
  const { act: a } = g;
  const E = g.cfg.nEmbd;
  p.tap('ffn_inp', a.x, rowsOf(E));

  if (mode === 'decode' && g.ffn.fusesNorm?.(g, L)) {
    // the FFN's first kernels normalize x themselves (and write h, tap ffn_norm)
    await g.ffn.record(g, p, mode, L, null, { x: a.x, weight: L.ffnNorm, eps: g.cfg.rmsEps });
  } else {
    // h = RMSNorm(x) ⊙ ffn_norm  (+ hq, h through the FFN input's round trip)   h, hq [n, nEmbd]
    const norm = await g.rmsNorm(mode, a.x, L.ffnNorm, a.h, g.ffn.inputs?.(L) ?? []);
    p.run(norm.launch);
    p.tap('ffn_norm', a.h, rowsOf(E));
    await g.ffn.record(g, p, mode, L, norm.hq); // x += FFN(h)
  }
  p.tap('l_out', a.x, rowsOf(E));
}

/**
 * The head for the last token of the batch:
 *   hLast = RMSNorm(x[n−1]) ⊙ output_norm       [nEmbd]
 *   logits = W_out · hLast                       [nVocab]
 * Prefill copies row n−1 of x to xLast first; decode reads row 0 of x directly. The LM head
 * launch is shared by both.
 */
export async function recordHead(g: Graph, mode: Mode, lmHead: LmHead): Promise<Program> {
  const { ctx, cfg, w, act: a } = g;
  const E = cfg.nEmbd;
  const p = new Program(g.debug);
  let src = a.x;
  if (mode === 'prefill') {
    p.copy(a.x, (n) => (n - 1) * E * 4, a.xLast, 0, () => E * 4);
    src = a.xLast;
  }
  // (and hLast through the round trip the head reads, same dispatch: lmHead.input)
  p.run(await createRmsNorm(ctx, { x: src, weight: w.outputNorm, out: a.hLast, n: E, rows: 1, eps: cfg.rmsEps, round: lmHead.input ?? undefined }));
  p.tap('result_norm', a.hLast, () => E);
  p.run(lmHead.launch);
  p.tap('result_output', a.logits, () => cfg.nVocab);
  return p;
}

/** The LM head's launch, and the round trip of hLast it reads (written by the head's norm; null: none, or it rounds hLast itself). */
export interface LmHead {
  launch: Launch;
  input: Rounded | null;
}

/**
 * The LM head matvec hLast → logits, shared by both heads. Under numerics 'llamacpp' its input goes
 * through the output weight's round trip: on a GPU the head's norm writes it (LmHead.input) and the
 * plain matvec reads it; on a software adapter the head is the fused thread-per-row matvec, one
 * dispatch per part, whose prologue rounds hLast itself and, for Q4_K / Q6_K, takes the dots in
 * integers (INT_DOT): measured on lavapipe, the 151936 × 2048 Q6_K head of Qwen3-30B-A3B went from
 * ~276 to ~230 ms per token and 4-layer tg8 from 1.92–1.96 to 2.18–2.24 t/s.
 */
export async function createLmHead(g: Graph): Promise<LmHead> {
  const fused = g.ctx.adapter.isSoftware ? await g.fusedMatVecByPart(g.w.output, g.act.logits, g.act.hLast) : null;
  if (fused) return { launch: fused, input: null };
  const type = g.roundFor([g.w.output], g.cfg.nEmbd);
  const input = type === null ? null : { type, out: g.arena.alloc('h_last_q', g.cfg.nEmbd * 4) };
  return { launch: await g.linear('decode', g.w.output, g.act.hLast, g.act.logits, false, {}, input), input };
}

/** Top-k selection over the logits (sample.wgsl). */
export function createSelect(g: Graph, maxK: number): Promise<TopKLaunch> {
  return createTopK(g.ctx, { logits: g.act.logits, n: g.cfg.nVocab, maxK });
}
