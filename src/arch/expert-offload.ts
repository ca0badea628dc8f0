// The routed-expert FFN of a layer whose experts live in host memory, with a pool of GPU slots
// (src/gpu/expert-cache.ts; qwen3moe.ts moeFfn.record hands such layers here). It is qwen3moe.ts's
// FFN with the ids brought back to the host between the router and the experts:
//
//   [norm + router]      as qwen3moe.ts (decode: the norm fused into the router's matvec)
//   [route]              moe_route (or moe_route_general) in a dispatch of its own
//                        (the fused decode kernel would route inside gate|up: same bits)
//   host step            ids [n, k] copied back; the slot table plans the batch; missing experts
//                        uploaded from the file; slot ids [n, k] written (Program.host)
//   [experts on slots]   the same expert launches as qwen3moe.ts on the slot stacks, reading the
//                        slot ids instead of the expert ids
//
// A prefill batch that needs more distinct experts than the layer has slots runs in passes: the
// host step runs every pass but the last itself (uploads, slot ids with the other passes' pairs
// marked NOT_IN_PASS, one submit of the expert launch without its combine step, so that each pair's
// down output lands in the shared scratch), and the recorded launch runs the last pass and sums
// all pairs in the usual order. Each pair's output is computed by the same kernel on the same
// bytes, and the weighted sum runs once, in the same order: bit-identical to the resident pass.
import { actQuantFor, type ActQuantType } from '../gpu/actquant.js';
import { expertCacheOf, type LayerSlots } from '../gpu/expert-cache.js';
import { createMoeRouteGeneral } from '../gpu/mla.js';
import { createMoeFfnPrefill, createMoeRoute, type MoeFfnDecodeArgs } from '../gpu/moe.js';
import type { GpuLayerWeights } from '../gpu/weights.js';
import { writeBuffer } from '../runtime/buffers.js';
import type { Launch } from '../runtime/pipelines.js';
import { routingTraceHook } from '../trace/gpu.js';
import { Program, type HostStep } from './program.js';
import { decodeExperts, generalRouter, MOE_FFN_SOFTWARE, moeFfn, moePrefillScratch, traceShape } from './qwen3moe.js';
import type { FfnNormInput, Graph, Mode, Rounded } from './transformer.js';

/** A sequence's buffers for the host steps: the slot ids the expert kernels read, and the ids' readback. */
interface OffloadBuffers {
  /** u32 [ubatch, k] slot of each (token, j) pair, written by the host */
  slotIds: GPUBuffer;
  /** MAP_READ [ubatch, k] u32: the router's ids copied back */
  readback: GPUBuffer;
}

const buffersOf = new WeakMap<Graph, OffloadBuffers>();

function offloadBuffers(g: Graph): OffloadBuffers {
  let b = buffersOf.get(g);
  if (!b) {
    const bytes = g.ubatch * g.cfg.nExpertUsed * 4;
    const readback = g.ctx.createBuffer({ label: 'ffn_moe_topk.readback', size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    g.arena.buffers.push(readback); // freed with the arena
    b = { slotIds: g.arena.alloc('ffn_moe_slots', bytes), readback };
    buffersOf.set(g, b);
  }
  return b;
}

/**
 * The host step after layer `slots.layer`'s router: read its ids back, plan, upload, write the slot
 * ids; passes beyond the first run `extraPass` (the expert launch without its combine step).
 */
function hostStep(g: Graph, slots: LayerSlots, ids: GPUBuffer, buf: OffloadBuffers, extraPass: Launch | null): HostStep {
  const cache = expertCacheOf(g.w)!;
  const K = g.cfg.nExpertUsed;
  return {
    encode(enc, n) {
      enc.copyBufferToBuffer(ids, 0, buf.readback, 0, n * K * 4);
    },
    async run(n, io) {
      const t0 = performance.now();
      const chosen = new Uint32Array(await io.read(buf.readback, n * K * 4));
      cache.noteReadback(slots.layer, n, n * K * 4, performance.now() - t0);
      const plan = slots.table.plan(chosen);
      cache.notePlan(slots, plan.hits, plan.misses, plan.passes.length);
      for (const [i, pass] of plan.passes.entries()) {
        await cache.upload(slots, pass);
        writeBuffer(g.ctx, buf.slotIds, pass.slotIds);
        if (i === plan.passes.length - 1) break;
        if (!extraPass) throw new Error(`internal: layer ${slots.layer} needs ${plan.passes.length} passes and has no pass launch`);
        const enc = io.device.createCommandEncoder({ label: `moet experts pass ${i} layer ${slots.layer}` });
        const p = new Program(false);
        p.layer = slots.layer;
        p.run(extraPass);
        p.encode(io.device, enc, n, io.counts, null);
        io.submit(enc);
      }
    },
  };
}

/**
 * x += routed experts of layer L (prefill or decode) with its experts in `slots`. The arguments are
 * qwen3moe.ts moeFfn.record's.
 */
export async function recordOffloaded(g: Graph, p: Program, mode: Mode, L: GpuLayerWeights, slots: LayerSlots, hq: Rounded | null, norm?: FfnNormInput): Promise<void> {
  if (L.ffn.kind !== 'moe') throw new Error('qwen3moe: layer without MoE weights');
  const f = L.ffn;
  const { ctx, cfg, act: a } = g;
  const { nExpert, nExpertUsed: K, nEmbd: E } = cfg;
  const N = g.rows(mode);
  const router = g.buf('router');
  const ids = g.buf('ids');
  const weights = g.buf('weights');
  const scratch = moePrefillScratch(g);
  const buf = offloadBuffers(g);
  const [gate, up, down] = slots.stacks;

  // h = RMSNorm(x) ⊙ ffn_norm (decode: inside the router's matvec), z = W_gate_inp · h   z [n, nExpert]
  if (mode === 'decode' && norm) {
    const fused = await g.normMatVecs(norm.x, norm.weight, a.h, [f.router], [router]);
    if (fused) {
      for (const l of fused) p.run(l);
    } else {
      const n = await g.rmsNorm('decode', norm.x, norm.weight, a.h, moeFfn.inputs!(L));
      p.run(n.launch);
      hq = n.hq;
    }
    p.tap('ffn_norm', a.h, (n) => n * E);
  } else {
    p.run(await g.linear(mode, f.router, a.h, router));
  }
  p.tap('ffn_moe_logits', router, (n) => n * nExpert);

  // ids, w = top-k(softmax(z)) renormalized (DeepSeek: moe_route_general)   ids u32 [n, k], w f32 [n, k]
  const route = generalRouter(cfg)
    ? createMoeRouteGeneral(ctx, { logits: router, ids, weights, selectionBias: f.selectionBias ?? null, router: cfg.router, nExpert, k: K, nTokens: N })
    : createMoeRoute(ctx, { logits: router, ids, weights, nExpert, k: K, normalize: cfg.normTopKProb, nTokens: N });
  p.run(await g.sized(mode, route));
  p.tap('ffn_moe_topk', ids, (n) => n * K, { type: 'u32' });
  p.tap('ffn_moe_weights_norm', weights, (n) => n * K);
  p.run(routingTraceHook(g, ctx, traceShape(cfg), p.layer, { logits: router, ids, weights }));

  // numerics 'llamacpp': h through gate/up's round trip (hq when the norm wrote it; decode: else in
  // the gate/up dispatch; prefill: a dispatch), the activations through down's
  let x: GPUBuffer = a.h;
  let xRound: ActQuantType | undefined;
  let actQuant: { type: ActQuantType; out: GPUBuffer } | undefined;
  if (g.numerics === 'llamacpp') {
    const tIn = actQuantFor(gate.type);
    if (tIn !== null && tIn === actQuantFor(up.type)) {
      if (hq?.type === tIn) x = hq.out;
      else if (mode === 'decode') xRound = tIn;
      else {
        const round = await g.roundTrip(mode, tIn, a.h, E);
        p.run(await g.sized(mode, Promise.resolve(round.launch)));
        x = round.out;
      }
    }
    const tAct = actQuantFor(down.type);
    if (tAct !== null) actQuant = { type: tAct, out: g.buf('act_q') };
  }

  // the experts of the batch into their slots; slot ids [n, k] (host)
  const experts = { gate, up, down, x, out: a.x, ids: buf.slotIds, weights, k: K, actQuant };
  if (mode === 'prefill') {
    // a batch may need more experts than there are slots: the extra passes' launch
    const extra = N * K > slots.nSlots ? await g.sized(mode, createMoeFfnPrefill(ctx, { ...experts, nTokens: N, maxTokens: N, scratch, combine: false })) : null;
    p.host(hostStep(g, slots, ids, buf, extra));
    // x += Σ_j w[t,j] · down_s(silu(gate_s·h) ⊙ up_s·h),  s = slot of ids[t,j]
    p.run(await g.sized(mode, createMoeFfnPrefill(ctx, { ...experts, nTokens: N, maxTokens: N, scratch })));
    return;
  }
  p.host(hostStep(g, slots, ids, buf, null));
  const args: MoeFfnDecodeArgs = { ...experts, nTokens: 1, act: scratch.act, software: MOE_FFN_SOFTWARE };
  p.run(await decodeExperts(g, p, args, xRound));
}
