// qwen35moe / qwen35 on the CPU: the new ops against hand-computed values, the config from GGUF
// metadata (Qwen3.6-35B-A3B's keys), and the sequence state (recurrent state carried across calls,
// truncate by snapshot and replay, routing traces). The forward pass itself is checked against
// llama.cpp in tests/golden/golden.test.ts (qwen35* fixtures).
import { describe, expect, it } from 'vitest';
import { openGGUF } from '../../gguf/reader.js';
import type { GGUFMetadataEntry, GGUFTensorInfo } from '../../gguf/types.js';
import { kv } from '../../gguf/writer.js';
import type { RoutingTraceBlock } from '../../src/backend.js';
import { configFromGGUF, expectedTensors, isQwen35 } from '../../src/config.js';
import { CpuBackend, loadCpuBackend } from '../../src/cpu/backend.js';
import { deltaRuleStep, gatedRmsNorm, l2Norm, sigmoid, softplus, ssmConv } from '../../src/cpu/ops.js';
import { Qwen35CpuBackend } from '../../src/cpu/qwen35.js';
import { UnsupportedArchitectureError } from '../../src/errors.js';
import { loadModel } from '../../src/model.js';
import { fixturePath, type FixtureName } from '../fixtures/make.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!), `element ${i}: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol);
};

describe('qwen35 ops', () => {
  it('sigmoid and softplus (ggml: x above 20 passes through)', () => {
    expect(sigmoid(0)).toBe(0.5);
    expect(sigmoid(2)).toBeCloseTo(0.8807970779778823, 15);
    expect(softplus(0)).toBeCloseTo(Math.LN2, 15);
    expect(softplus(-3)).toBeCloseTo(0.04858735157374206, 15);
    expect(softplus(25)).toBe(25);
    expect(softplus(20)).toBeCloseTo(20.000000002061153, 9);
  });

  it('l2Norm: x / max(‖x‖, eps) per row, no NaN for zero rows', () => {
    const out = new Float32Array(6);
    l2Norm(out, Float32Array.from([3, 4, 0, 0, 1e-8, 0]), 2, 1e-6, 3);
    close(out, [0.6, 0.8, 0, 0, 0.01, 0], 1e-7);
  });

  it('ssmConv: taps oldest first over state ++ inputs, state becomes the last kernel−1 raw inputs', () => {
    // 2 channels, kernel 3; channel 0 picks the oldest input, channel 1 weighs 0.5, 1, 2
    const w = Float32Array.from([1, 0, 0, 0.5, 1, 2]); // [channels, kernel]
    const state = Float32Array.from([1, 10, 2, 20]); // [kernel−1, channels]
    const out = new Float32Array(4);
    ssmConv(out, Float32Array.from([3, 30, 4, 40]), state, w, 2, 3, 2);
    close(out, [1, 85, 2, 120]);
    close(state, [3, 30, 4, 40]);
    const out1 = new Float32Array(2);
    ssmConv(out1, Float32Array.from([5, 50]), state, w, 2, 3, 1);
    close(out1, [3, 155]);
    close(state, [4, 40, 5, 50]);
  });

  it('deltaRuleStep: decay, delta rule against Sᵀk, rank-1 update, readout Sᵀq·scale', () => {
    // S = [[1, 2], [3, 4]], k = e0, q = e1, v = [10, 20], decay 0.5, beta 0.5
    const S = Float32Array.from([1, 2, 3, 4]);
    const out = new Float32Array(2);
    deltaRuleStep(S, Float32Array.from([0, 1]), 0, Float32Array.from([1, 0]), 0, Float32Array.from([10, 20]), 0, Math.log(0.5), 0.5, out, 0, 2, 2, 0.5);
    close(S, [5.25, 10.5, 1.5, 2]);
    close(out, [0.75, 1]);
    // offsets: heads packed along a row
    const S2 = Float32Array.from([1, 2, 3, 4]);
    const o2 = new Float32Array(4);
    deltaRuleStep(S2, Float32Array.from([9, 9, 0, 1]), 2, Float32Array.from([7, 1, 0]), 1, Float32Array.from([0, 0, 10, 20]), 2, Math.log(0.5), 0.5, o2, 2, 2, 2, 1);
    close(S2, [5.25, 10.5, 1.5, 2]);
    close(o2, [0, 0, 1.5, 2]);
  });

  it('gatedRmsNorm: RMSNorm(x) ⊙ weight ⊙ silu(z), weight shared by all rows', () => {
    const out = new Float32Array(4);
    gatedRmsNorm(out, Float32Array.from([1, -1, 2, -2]), Float32Array.from([1, 2]), Float32Array.from([1, 2, 0, -1]), 1e-6, 2);
    const s1 = 1 / Math.sqrt(1 + 1e-6);
    const s2 = 1 / Math.sqrt(4 + 1e-6);
    close(out, [s1 * 0.7310585786300049, -s1 * 2 * 1.7615941559557646, 0, -2 * s2 * 2 * -0.2689414213699951], 1e-6);
  });
});

/** Qwen3.6-35B-A3B's metadata (shared/docs/qwen35moe.md), with the MTP block. */
function qwen36Meta(extra: GGUFMetadataEntry[] = [], drop: string[] = []): Map<string, GGUFMetadataEntry> {
  const a = 'qwen35moe';
  const md = [
    kv.str('general.architecture', a),
    kv.u32(`${a}.block_count`, 41),
    kv.u32(`${a}.nextn_predict_layers`, 1),
    kv.u32(`${a}.context_length`, 262144),
    kv.u32(`${a}.embedding_length`, 2048),
    kv.u32(`${a}.attention.head_count`, 16),
    kv.u32(`${a}.attention.head_count_kv`, 2),
    kv.u32(`${a}.attention.key_length`, 256),
    kv.u32(`${a}.attention.value_length`, 256),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, 1e-6),
    kv.f32(`${a}.rope.freq_base`, 1e7),
    kv.u32(`${a}.rope.dimension_count`, 64),
    kv.i32s(`${a}.rope.dimension_sections`, [11, 11, 10, 0]),
    kv.u32(`${a}.expert_count`, 256),
    kv.u32(`${a}.expert_used_count`, 8),
    kv.u32(`${a}.expert_feed_forward_length`, 512),
    kv.u32(`${a}.expert_shared_feed_forward_length`, 512),
    kv.u32(`${a}.ssm.conv_kernel`, 4),
    kv.u32(`${a}.ssm.state_size`, 128),
    kv.u32(`${a}.ssm.group_count`, 16),
    kv.u32(`${a}.ssm.time_step_rank`, 32),
    kv.u32(`${a}.ssm.inner_size`, 4096),
    kv.u32(`${a}.full_attention_interval`, 4),
    kv.u32(`${a}.vocab_size`, 248320),
    ...extra,
  ].filter((e) => !drop.includes(e.key));
  const m = new Map(md.map((e) => [e.key, e]));
  for (const e of extra) m.set(e.key, e);
  return m;
}
const noTensors = new Map<string, GGUFTensorInfo>();
/** just output.weight: untied embeddings */
const untied = new Map([['output.weight', { name: 'output.weight', shape: [2048, 248320] } as unknown as GGUFTensorInfo]]);

describe('qwen35moe / qwen35 config', () => {
  it("reads Qwen3.6-35B-A3B's hyperparameters, skipping the MTP block", () => {
    const c = configFromGGUF(qwen36Meta(), untied);
    expect(isQwen35(c)).toBe(true);
    if (!isQwen35(c)) return;
    expect(c.arch).toBe('qwen35moe');
    expect(c.nLayer).toBe(40);
    expect(c.qwen35.nLayerAll).toBe(41);
    expect(c.qwen35.nLayerNextn).toBe(1);
    expect([c.nHead, c.nHeadKv, c.headDimK, c.headDimV, c.nRot, c.ropeBase]).toEqual([16, 2, 256, 256, 64, 1e7]);
    expect([c.nExpert, c.nExpertUsed, c.nFfExp, c.qwen35.nFfShexp, c.normTopKProb]).toEqual([256, 8, 512, 512, true]);
    expect([c.qwen35.convKernel, c.qwen35.stateSize, c.qwen35.nKHeads, c.qwen35.nVHeads, c.qwen35.innerSize, c.qwen35.convChannels])
      .toEqual([4, 128, 16, 32, 4096, 8192]);
    expect(c.qwen35.ropeSections).toEqual([11, 11, 10, 0]);
    const attn = c.qwen35.recurrent.flatMap((r, i) => (r ? [] : [i]));
    expect(attn).toEqual([3, 7, 11, 15, 19, 23, 27, 31, 35, 39]);
    expect(c.nVocab).toBe(248320);
    // the doc's count for a Q4_K_M file: 30 × 19 + 10 × 16 + 3
    const t = expectedTensors(c);
    expect(t).toHaveLength(733);
    expect(t.find((e) => e.name === 'blk.0.attn_qkv.weight')!.shape).toEqual([2048, 8192]);
    expect(t.find((e) => e.name === 'blk.3.attn_q.weight')!.shape).toEqual([2048, 8192]);
    expect(t.find((e) => e.name === 'blk.0.ssm_conv1d.weight')!.shape).toEqual([4, 8192]);
    expect(t.some((e) => e.name.startsWith('blk.40.'))).toBe(false);
  });

  it('defaults: full_attention_interval 4, no MTP, shared expert width = feed_forward_length; attention.recurrent_layers overrides', () => {
    const c = configFromGGUF(qwen36Meta([kv.u32('qwen35moe.block_count', 8), kv.u32('qwen35moe.feed_forward_length', 777)],
      ['qwen35moe.full_attention_interval', 'qwen35moe.nextn_predict_layers', 'qwen35moe.expert_shared_feed_forward_length']), noTensors);
    if (!isQwen35(c)) throw new Error('not qwen35');
    expect(c.nLayer).toBe(8);
    expect(c.qwen35.recurrent).toEqual([true, true, true, false, true, true, true, false]);
    expect(c.qwen35.nFfShexp).toBe(777);
    const flags = [false, true, true, false, true, false, true, true];
    const m = qwen36Meta([kv.u32('qwen35moe.block_count', 8), { key: 'qwen35moe.attention.recurrent_layers', type: 9, arrayType: 7, value: flags } as GGUFMetadataEntry],
      ['qwen35moe.nextn_predict_layers']);
    const c2 = configFromGGUF(m, noTensors);
    if (!isQwen35(c2)) throw new Error('not qwen35');
    expect(c2.qwen35.recurrent).toEqual(flags);
  });

  it('rejects missing or inconsistent SSM keys with a message naming them', () => {
    expect(() => configFromGGUF(qwen36Meta([], ['qwen35moe.rope.dimension_sections']), noTensors)).toThrow(/rope\.dimension_sections/);
    expect(() => configFromGGUF(qwen36Meta([], ['qwen35moe.ssm.state_size']), noTensors)).toThrow(/ssm\.state_size/);
    expect(() => configFromGGUF(qwen36Meta([kv.u32('qwen35moe.ssm.inner_size', 4000)]), noTensors)).toThrow(UnsupportedArchitectureError);
    expect(() => configFromGGUF(qwen36Meta([kv.u32('qwen35moe.ssm.group_count', 12)]), noTensors)).toThrow(/multiple of ssm\.group_count/);
    expect(() => configFromGGUF(qwen36Meta([kv.u32('qwen35moe.nextn_predict_layers', 41)]), noTensors)).toThrow(/nextn_predict_layers/);
  });

  it('qwen35 (dense) needs feed_forward_length and has no experts', () => {
    const md = new Map([...qwen36Meta()].map(([k, e]) => [k.replace('qwen35moe.', 'qwen35.'), { ...e, key: e.key.replace('qwen35moe.', 'qwen35.') }]));
    md.set('general.architecture', kv.str('general.architecture', 'qwen35'));
    expect(() => configFromGGUF(md, noTensors)).toThrow(/qwen35\.feed_forward_length/);
    md.set('qwen35.feed_forward_length', kv.u32('qwen35.feed_forward_length', 17408));
    const c = configFromGGUF(md, noTensors);
    if (!isQwen35(c)) throw new Error('not qwen35');
    expect([c.nFf, c.nExpert, c.qwen35.nFfShexp]).toEqual([17408, 0, 0]);
    expect(expectedTensors(c).filter((e) => e.name.startsWith('blk.0.ffn'))).toHaveLength(3);
  });
});

async function openFixture(name: FixtureName): Promise<Qwen35CpuBackend> {
  const file = await openGGUF(await fixturePath(name));
  try {
    const cfg = configFromGGUF(file.metadata, file.tensorByName);
    await expect(CpuBackend.load(file, cfg)).rejects.toThrow(/loadCpuBackend/);
    const be = await loadCpuBackend(file, cfg);
    expect(be).toBeInstanceOf(Qwen35CpuBackend);
    return be as Qwen35CpuBackend;
  } finally {
    await file.close();
  }
}

const TOKENS = [5, 17, 101, 33, 250, 7, 7, 90, 44, 12, 300, 2, 64, 128, 99, 3, 18, 200, 41, 77];

describe('qwen35 sequence state', () => {
  it('one token at a time gives the logits of one batch (conv and delta states carried across calls)', async () => {
    const be = await openFixture('qwen35moe-f32');
    const batch = await be.createSequence(64).eval(TOKENS, { allLogits: true });
    const seq = be.createSequence(64);
    const V = be.config.nVocab;
    for (let i = 0; i < TOKENS.length; i++) {
      const row = await seq.eval([TOKENS[i]!]);
      close(row, batch.subarray(i * V, (i + 1) * V), 2e-4);
    }
    // uneven chunks too
    const s2 = be.createSequence(64);
    await s2.eval(TOKENS.slice(0, 7));
    await s2.eval(TOKENS.slice(7, 8));
    close(await s2.eval(TOKENS.slice(8)), batch.subarray((TOKENS.length - 1) * V), 2e-4);
  });

  it('truncate: 0 resets, snapshot positions restore, other positions replay; results equal a fresh sequence', async () => {
    const be = await openFixture('qwen35-f32');
    const fresh = async (toks: number[]) => be.createSequence(64).eval(toks);
    const seq = be.createSequence(64);
    const A = TOKENS.slice(0, 6);
    const B = TOKENS.slice(6, 11);
    const C = TOKENS.slice(11, 14);
    const D = TOKENS.slice(14, 18);
    await seq.eval(A);
    await seq.eval(B);
    for (const t of C) await seq.eval([t]);
    expect(seq.snapshotPositions).toEqual([6, 11]);
    expect(seq.nPast).toBe(14);

    seq.truncate(8); // between snapshots: restore the copy at 6, replay 2 tokens
    expect(seq.nPast).toBe(8);
    expect(seq.snapshotPositions).toEqual([6]);
    const AB2D = [...A, ...B.slice(0, 2), ...D];
    close(await seq.eval(D), await fresh(AB2D), 1e-5);
    expect(seq.snapshotPositions).toEqual([6, 12]);

    for (const t of C) await seq.eval([t]);
    seq.truncate(12); // a snapshot: restored, nothing replayed
    expect(seq.nPast).toBe(12);
    close(await seq.eval([C[0]!]), await fresh([...AB2D, C[0]!]), 1e-5);

    seq.truncate(3); // before every snapshot: reset, replay 3 tokens
    close(await seq.eval(C), await fresh([...A.slice(0, 3), ...C]), 1e-5);

    seq.truncate(0);
    expect(seq.nPast).toBe(0);
    close(await seq.eval(D), await fresh(D), 1e-6);

    expect(() => seq.truncate(99)).toThrow(RangeError);
    await expect(seq.eval(Array(61).fill(1))).rejects.toThrow(/context/);
  });

  it('routing traces record qwen35moe expert choices per token and layer', async () => {
    const be = await openFixture('qwen35moe-q8_0');
    const blocks: RoutingTraceBlock[] = [];
    await be.createSequence(32).eval(TOKENS.slice(0, 5), { trace: { probs: false, add: (b) => blocks.push(b) } });
    expect(blocks).toHaveLength(1);
    const { nLayer, nExpertUsed, nExpert } = be.config;
    expect(nLayer).toBe(4); // the MTP block is not part of the trunk
    expect(blocks[0]!.ids).toHaveLength(5 * nLayer * nExpertUsed);
    for (const id of Array.from(blocks[0]!.ids)) expect(id >= 0 && id < nExpert).toBe(true);
  });

  it('loadModel runs a qwen35moe file end to end (greedy generation)', async () => {
    const model = await loadModel(await fixturePath('qwen35moe-q4_k_m'), { backend: 'cpu', contextLength: 64 });
    try {
      expect(model.info.architecture).toBe('qwen35moe');
      const s = model.createSession();
      const out: number[] = [];
      for await (const t of s.generate('Hello', { temperature: 0, maxTokens: 6 })) out.push(t.id);
      expect(out.length).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  });
});
