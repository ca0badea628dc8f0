// The synthetic model generator (src/synth/): the full Qwen3-30B-A3B-Q4_K_M plan without writing it,
// llama.cpp's Q4_K_M type rule, valid random blocks, determinism, and scaled-down files that both
// llama.cpp (node-llama-cpp, CPU) and moet load and run to finite probabilities; the transformer-family
// presets (Mixtral, OLMoE, Qwen1.5-MoE, Llama 3.x): full-size plans against src/config.ts, and one
// cut-down file per family that moet and llama.cpp run to the same logits, and `moet bench` / `moet
// routes` run; the deepseek2 presets (DeepSeek-R1, V2-Lite; MLA) likewise, the R1 one also on WebGPU.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantize } from '../../gguf/quants.js';
import { openGGUF } from '../../gguf/reader.js';
import { GGMLType, ggmlTypeName, type GGUFMetadataEntry, type GGUFTensorInfo } from '../../gguf/types.js';
import { writeGGUF } from '../../gguf/writer.js';
import { modelType } from '../../src/bench/harness.js';
import { weightBytesPerToken } from '../../src/bench/weights.js';
import { benchCommand } from '../../src/cli/bench.js';
import { routesCommand } from '../../src/cli/routes.js';
import { configFromGGUF, expectedTensors, type ModelConfig } from '../../src/config.js';
import { loadModel } from '../../src/index.js';
import { WebGPUBackend } from '../../src/gpu/backend.js';
import { synthBlocks, SYNTH_TYPES } from '../../src/synth/blocks.js';
import { synthCommand } from '../../src/synth/cli.js';
import { llama3RopeFactors, q4kmType, synthPlan, synthTensorData, useMoreBits, writeSynthModel, type SynthPlan, type SynthPresetName } from '../../src/synth/model.js';
import { SynthRng } from '../../src/synth/rng.js';
import { byteVocab, realQwen3Vocab } from '../../src/synth/vocab.js';
import { nmse, openTestGPU } from '../gpu/helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-synth-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function collect(): { io: { stdout: { write(s: string): void }; stderr: { write(s: string): void } }; out: () => string } {
  let s = '';
  return { io: { stdout: { write: (x: string) => void (s += x) }, stderr: { write: () => {} } }, out: () => s };
}

describe('full-size plan (nothing written)', () => {
  const plan = synthPlan({ vocab: 'synthetic' });

  it('has the tensor count and type mix of Qwen3-30B-A3B-Q4_K_M.gguf', () => {
    expect(plan.tensors).toHaveLength(579);
    expect(plan.typeCounts.F32!.tensors).toBe(241);
    expect(plan.typeCounts.Q4_K!.tensors).toBe(289);
    expect(plan.typeCounts.Q6_K!.tensors).toBe(49);
    expect(Object.keys(plan.typeCounts).sort()).toEqual(['F32', 'Q4_K', 'Q6_K']);
    // 1 output + 24 attn_v + 24 ffn_down_exps are Q6_K
    const q6 = plan.tensors.filter((t) => t.type === GGMLType.Q6_K).map((t) => t.name.replace(/^blk\.\d+\./, ''));
    expect(q6.filter((n) => n === 'attn_v.weight')).toHaveLength(24);
    expect(q6.filter((n) => n === 'ffn_down_exps.weight')).toHaveLength(24);
    expect(q6.filter((n) => n === 'output.weight')).toHaveLength(1);
  });

  it('is about 17.3 GiB with 30.5 B parameters', () => {
    expect(plan.dataBytes / 2 ** 30).toBeCloseTo(17.28, 1);
    expect(plan.parameterCount).toBe(30_532_122_624);
    const byName = new Map(plan.tensors.map((t) => [t.name, t]));
    expect(byName.get('token_embd.weight')).toMatchObject({ shape: [2048, 151936], type: GGMLType.Q4_K });
    expect(byName.get('output.weight')).toMatchObject({ shape: [2048, 151936], type: GGMLType.Q6_K, bytes: 255_252_480 });
    expect(byName.get('blk.47.ffn_gate_exps.weight')).toMatchObject({ shape: [2048, 768, 128], type: GGMLType.Q4_K, bytes: 113_246_208 });
    expect(byName.get('blk.0.ffn_down_exps.weight')).toMatchObject({ shape: [768, 2048, 128], type: GGMLType.Q6_K });
    expect(byName.get('blk.0.ffn_gate_inp.weight')).toMatchObject({ shape: [2048, 128], type: GGMLType.F32 });
    expect(byName.get('blk.0.attn_q.weight')).toMatchObject({ shape: [2048, 4096], type: GGMLType.Q4_K });
    expect(byName.get('blk.0.attn_k_norm.weight')).toMatchObject({ shape: [128], type: GGMLType.F32 });
  });

  it('lists exactly the tensors moet expects for the configuration its metadata describes', () => {
    const metadata = new Map<string, GGUFMetadataEntry>(plan.metadata.map((m) => [m.key, m]));
    const infos = new Map<string, GGUFTensorInfo>(
      plan.tensors.map((t) => [t.name, { name: t.name, shape: t.shape, type: t.type, relativeOffset: 0, offset: 0, byteLength: t.bytes }]),
    );
    const config = configFromGGUF(metadata, infos);
    expect(config).toMatchObject({ nLayer: 48, nEmbd: 2048, nHead: 32, nHeadKv: 4, headDimK: 128, nExpert: 128, nExpertUsed: 8, nFfExp: 768, nVocab: 151936 });
    expect(expectedTensors(config).map((e) => `${e.name} ${e.shape.join('x')}`)).toEqual(plan.tensors.map((t) => `${t.name} ${t.shape.join('x')}`));
  });

  it('moet synth --dry-run --json reports the same plan', async () => {
    const c = collect();
    expect(await synthCommand(['--dry-run', '--json', '--vocab', 'synthetic'], c.io)).toBe(0);
    const j = JSON.parse(c.out());
    expect(j.tensorCount).toBe(579);
    expect(j.typeCounts).toEqual(plan.typeCounts);
    expect(j.dataBytes).toBe(plan.dataBytes);
  });
});

describe("llama.cpp's Q4_K_M rule", () => {
  it('use_more_bits picks 24 of 48 layers', () => {
    const layers = Array.from({ length: 48 }, (_, i) => i).filter((i) => useMoreBits(i, 48));
    expect(layers).toEqual([0, 1, 2, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 42, 43, 44, 45, 46, 47]);
  });

  it('bumps attn_k/attn_v to Q8_0 and attn_output to Q5_K with exactly 8 experts', () => {
    const g = { nLayer: 2, nExpert: 8 };
    expect(q4kmType('blk.0.attn_k.weight', [2048, 512], g)).toBe(GGMLType.Q8_0);
    expect(q4kmType('blk.1.attn_v.weight', [2048, 512], g)).toBe(GGMLType.Q8_0);
    expect(q4kmType('blk.0.attn_output.weight', [4096, 2048], g)).toBe(GGMLType.Q5_K);
    expect(q4kmType('blk.0.attn_q.weight', [2048, 4096], g)).toBe(GGMLType.Q4_K);
    expect(q4kmType('blk.0.ffn_gate_inp.weight', [2048, 8], g)).toBe(GGMLType.F32);
  });

  it('falls back for rows that are not a multiple of 256', () => {
    const g = { nLayer: 4, nExpert: 16 };
    expect(q4kmType('blk.1.attn_q.weight', [320, 512], g)).toBe(GGMLType.Q5_0);
    expect(q4kmType('output.weight', [320, 1000], g)).toBe(GGMLType.Q8_0);
    expect(q4kmType('blk.3.ffn_down_exps.weight', [96, 320, 16], g)).toBe(GGMLType.Q8_0);
  });
});

describe('random blocks', () => {
  for (const type of SYNTH_TYPES) {
    it(`${ggmlTypeName(type)} blocks decode to finite values of the asked std and ~zero mean`, () => {
      const shape = [512, 96];
      const n = shape[0]! * shape[1]!;
      const bytes = synthBlocks(type, shape, 0.03, new SynthRng(`t/${type}`));
      const v = dequantize(type, bytes, n);
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        expect(Number.isFinite(v[i]!)).toBe(true);
        s += v[i]!;
        s2 += v[i]! * v[i]!;
      }
      const mean = s / n;
      const std = Math.sqrt(s2 / n - mean * mean);
      expect(std).toBeGreaterThan(0.03 * 0.9);
      expect(std).toBeLessThan(0.03 * 1.1);
      expect(Math.abs(mean)).toBeLessThan(0.03 * 0.02);
    });
  }

  it('are deterministic per seed and tensor name', () => {
    const plan = synthPlan({ vocab: 'bytes', geometry: { nLayer: 1, nExpert: 4, nExpertUsed: 2, nEmbd: 256, nFfExp: 256, nHead: 2, nHeadKv: 1 } });
    const t = plan.tensors.find((x) => x.name === 'blk.0.ffn_up_exps.weight')!;
    expect(Buffer.from(synthTensorData(plan, t)).equals(Buffer.from(synthTensorData(plan, t)))).toBe(true);
    const other = plan.tensors.find((x) => x.name === 'blk.0.ffn_gate_exps.weight')!;
    expect(Buffer.from(synthTensorData(plan, t)).equals(Buffer.from(synthTensorData(plan, other)))).toBe(false);
    expect(Buffer.from(synthTensorData({ seed: 'other' }, t)).equals(Buffer.from(synthTensorData(plan, t)))).toBe(false);
  });
});

describe('vocabularies', () => {
  it('the synthetic one has 151936 rows with the control tokens at Qwen3 ids', () => {
    const v = byteVocab(151936);
    const tokens = v.metadata.find((m) => m.key === 'tokenizer.ggml.tokens')!.value as string[];
    expect(tokens).toHaveLength(151936);
    expect(tokens[151643]).toBe('<|endoftext|>');
    expect(tokens[151645]).toBe('<|im_end|>');
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('the real one is found in a checkout (devDependency)', () => {
    const v = realQwen3Vocab();
    expect(v?.nVocab).toBe(151936);
  });
});

/** llama.cpp loads `path` and returns the probabilities after `tokens`. */
async function llamaProbabilities(path: string, tokens: number[]): Promise<Map<number, number>> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize: 64, threads: 2, flashAttention: false });
    try {
      const seq = ctx.getSequence();
      const out = await seq.controlledEvaluate(tokens.map((t, i) => (i === tokens.length - 1 ? [t as Token, { generateNext: { probabilities: true } }] : (t as Token))) as never);
      const probs = out[tokens.length - 1]?.next.probabilities;
      if (!probs) throw new Error('llama.cpp returned no probabilities');
      return probs as Map<number, number>;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function argmax(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i;
  return b;
}

describe('scaled-down files load in llama.cpp and moet', () => {
  const cases = [
    // the 8-expert quirk of the rule brings Q8_0 and Q5_K in; real vocabulary
    { label: '2 layers, 8 experts, real vocabulary', geometry: { nLayer: 2, nExpert: 8, nEmbd: 512, nHead: 4, nHeadKv: 2, nFfExp: 256 }, vocab: 'real' as const, types: ['F32', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0'] },
    // rows of 384 (not a multiple of 256): the Q5_0 / Q8_0 fallbacks; synthetic vocabulary
    { label: '3 layers, 16 experts, synthetic vocabulary, 384-wide', geometry: { nLayer: 3, nExpert: 16, nExpertUsed: 4, nEmbd: 384, nHead: 6, nHeadKv: 2, headDim: 64, nFfExp: 256 }, vocab: 'synthetic' as const, vocabSize: 5000, types: ['F32', 'Q4_K', 'Q5_0', 'Q6_K', 'Q8_0'] },
  ];
  for (const c of cases) {
    it(c.label, async () => {
      const path = join(dir, `${c.label.replace(/\W+/g, '_')}.gguf`);
      const plan = await writeSynthModel(path, { geometry: c.geometry, vocab: c.vocab, vocabSize: c.vocabSize, seed: 'test' });
      expect(Object.keys(plan.typeCounts).sort()).toEqual(c.types);
      const f = await openGGUF(path);
      expect(f.tensors).toHaveLength(plan.tensors.length);
      expect(f.tensors.map((t) => t.name)).toEqual(plan.tensors.map((t) => t.name));
      await f.close();
      expect((await stat(path)).size).toBeGreaterThan(plan.dataBytes);

      const tokens = [9707, 11, 1879, 0, 42, 100, 7, 3].map((t) => t % plan.vocab.nVocab);
      const probs = await llamaProbabilities(path, tokens);
      expect(probs.size).toBeGreaterThan(0);
      let sum = 0;
      for (const p of probs.values()) {
        expect(Number.isFinite(p)).toBe(true);
        sum += p;
      }
      expect(sum).toBeGreaterThan(0.99);
      expect(sum).toBeLessThan(1.01);

      const model = await loadModel(path, { backend: 'cpu', contextLength: 64 });
      try {
        const seq = model.backend.createSequence(64);
        const logits = await seq.eval(tokens);
        expect(logits).toHaveLength(plan.vocab.nVocab);
        expect(logits.every((x) => Number.isFinite(x))).toBe(true);
        // same weights, same answer: llama.cpp's most likely token is moet's argmax
        let best = -1;
        let bestP = -1;
        for (const [t, p] of probs) if (p > bestP) [best, bestP] = [t, p];
        expect(argmax(logits)).toBe(best);
        seq.dispose();
      } finally {
        await model.dispose();
      }
    });
  }
});

describe('qwen36-35b-a3b preset (qwen35moe)', () => {
  const plan = synthPlan({ preset: 'qwen36-35b-a3b' });

  it('full-size plan: 733 tensors = 301 F32 + 356 Q4_K + 30 Q5_K + 46 Q6_K, 19.7 GiB, exactly what moet expects', () => {
    expect(plan.arch).toBe('qwen35moe');
    expect(plan.tensors).toHaveLength(733);
    const counts = Object.fromEntries(Object.entries(plan.typeCounts).map(([k, v]) => [k, v.tensors]));
    expect(counts).toEqual({ F32: 301, Q4_K: 356, Q5_K: 30, Q6_K: 46 });
    expect(plan.dataBytes).toBe(21_157_857_792);
    expect(plan.parameterCount).toBe(34_660_610_688);
    const byName = new Map(plan.tensors.map((t) => [t.name, t]));
    expect(byName.get('blk.0.attn_qkv.weight')).toMatchObject({ shape: [2048, 8192], type: GGMLType.Q5_K });
    expect(byName.get('blk.0.ssm_conv1d.weight')).toMatchObject({ shape: [4, 8192], type: GGMLType.F32 });
    expect(byName.get('blk.0.ssm_alpha.weight')).toMatchObject({ shape: [2048, 32], type: GGMLType.Q4_K });
    expect(byName.get('blk.3.attn_q.weight')).toMatchObject({ shape: [2048, 8192], type: GGMLType.Q4_K });
    expect(byName.get('blk.39.ffn_gate_exps.weight')).toMatchObject({ shape: [2048, 512, 256], type: GGMLType.Q4_K });
    expect(byName.get('blk.0.ffn_gate_inp_shexp.weight')).toMatchObject({ shape: [2048], type: GGMLType.F32 });
    // use_more_bits over the 10 attn_v (5 Q6_K) and over the 80 ffn_down* tensors (20 layers × exps + shexp)
    const q6 = plan.tensors.filter((t) => t.type === GGMLType.Q6_K).map((t) => t.name.replace(/^blk\.\d+\./, ''));
    expect(q6.filter((n) => n === 'attn_v.weight')).toHaveLength(5);
    expect(q6.filter((n) => n.startsWith('ffn_down'))).toHaveLength(40);

    const metadata = new Map<string, GGUFMetadataEntry>(plan.metadata.map((m) => [m.key, m]));
    const infos = new Map<string, GGUFTensorInfo>(
      plan.tensors.map((t) => [t.name, { name: t.name, shape: t.shape, type: t.type, relativeOffset: 0, offset: 0, byteLength: t.bytes }]),
    );
    const config = configFromGGUF(metadata, infos);
    expect(config).toMatchObject({ arch: 'qwen35moe', nLayer: 40, nEmbd: 2048, nHead: 16, nHeadKv: 2, headDimK: 256, nRot: 64, nExpert: 256, nExpertUsed: 8, nFfExp: 512, nVocab: 248320 });
    expect(config.qwen35?.recurrent.filter((r) => !r)).toHaveLength(10);
    expect(expectedTensors(config).map((e) => `${e.name} ${e.shape.join('x')}`)).toEqual(plan.tensors.map((t) => `${t.name} ${t.shape.join('x')}`));
    // docs/performance.md: bytes of weights one decoded token reads
    expect(weightBytesPerToken([...infos.values()], config).total).toBe(1_977_765_504);
  });

  it('--layers keeps the full-attention pattern and refuses a trunk without attention', async () => {
    const c = collect();
    expect(await synthCommand(['--preset', 'qwen36-35b-a3b', '--layers', '8', '--experts', '16', '--dry-run', '--json'], c.io)).toBe(0);
    const j = JSON.parse(c.out());
    expect(j.tensorCount).toBe(6 * 19 + 2 * 16 + 3);
    expect(() => synthPlan({ preset: 'qwen36-35b-a3b', geometry: { nLayer: 3 } })).toThrow(/full-attention/);
  });

  it('a 4-layer, 8-expert file loads in llama.cpp and moet', async () => {
    const path = join(dir, 'qwen36-4l8e.gguf');
    const p = await writeSynthModel(path, { preset: 'qwen36-35b-a3b', geometry: { nLayer: 4, nExpert: 8, nEmbd: 512, nFfExp: 256 }, vocabSize: 2000, seed: 'test' });
    expect(p.tensors).toHaveLength(3 * 19 + 16 + 3);
    // the 8-expert quirk: attn_k / attn_v Q8_0, attn_output Q5_K
    expect(Object.keys(p.typeCounts).sort()).toEqual(['F32', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0']);
    const tokens = [9, 11, 1879, 0, 42, 100, 7, 3];
    const probs = await llamaProbabilities(path, tokens);
    let sum = 0;
    for (const x of probs.values()) {
      expect(Number.isFinite(x)).toBe(true);
      sum += x;
    }
    expect(sum).toBeGreaterThan(0.99);
    expect(sum).toBeLessThan(1.01);
    const model = await loadModel(path, { backend: 'cpu', contextLength: 64 });
    try {
      const seq = model.backend.createSequence(64);
      const logits = await seq.eval(tokens);
      expect(logits).toHaveLength(2000);
      expect(logits.every((x) => Number.isFinite(x))).toBe(true);
      seq.dispose();
    } finally {
      await model.dispose();
    }
  });
});

/** The plan's metadata written to a GGUF (no tensors) and read back, with the plan's tensor infos: what a loader would see. */
async function readBack(plan: SynthPlan): Promise<{ config: ModelConfig; type: string }> {
  const path = join(dir, `${plan.preset}-header.gguf`);
  await writeGGUF(path, plan.metadata, []);
  const f = await openGGUF(path);
  try {
    const infos = new Map<string, GGUFTensorInfo>(
      plan.tensors.map((t) => [t.name, { name: t.name, shape: t.shape, type: t.type, relativeOffset: 0, offset: 0, byteLength: t.bytes }]),
    );
    const config = configFromGGUF(f.metadata, infos);
    return { config, type: modelType(f, config) };
  } finally {
    await f.close();
  }
}

const listing = (xs: readonly { name: string; shape: readonly number[] }[]) => xs.map((t) => `${t.name} ${t.shape.join('x')}`);

describe('transformer-family presets: full-size plans (nothing written)', () => {
  // counts, bytes and parameters of the plan; config: what src/config.ts reads back; type: moet bench's
  // model_type (llama.cpp's size name); bits per weight of a Q4_K_M file (4.8–5.4)
  const cases: {
    preset: SynthPresetName; tensors: number; types: Record<string, number>; bytes: number; params: number;
    config: Partial<ModelConfig>; type: string; q6: Record<string, number>;
  }[] = [
    {
      // Mixtral-8x7B: 46.70 B parameters; the 8-expert bumps (attn_k/v Q8_0, attn_output Q5_K)
      preset: 'mixtral-8x7b', tensors: 323, types: { F32: 97, Q4_K: 113, Q5_K: 32, Q6_K: 17, Q8_0: 64 }, bytes: 28_447_727_616, params: 46_702_792_704,
      config: { arch: 'llama', nLayer: 32, nEmbd: 4096, nHead: 32, nHeadKv: 8, headDimK: 128, nExpert: 8, nExpertUsed: 2, nFfExp: 14336, nVocab: 32000, ffnKind: 'moe', normTopKProb: true, tiedEmbeddings: false, nCtxTrain: 32768 },
      type: 'llama 8x7B Q4_K - Medium', q6: { 'ffn_down_exps.weight': 16, 'output.weight': 1 },
    },
    {
      preset: 'olmoe-1b-7b', tensors: 195, types: { F32: 81, Q4_K: 97, Q6_K: 17 }, bytes: 4_211_730_432, params: 6_919_161_856,
      config: { arch: 'olmoe', nLayer: 16, nEmbd: 2048, nHead: 16, nHeadKv: 16, nExpert: 64, nExpertUsed: 8, nFfExp: 1024, nVocab: 50304, normTopKProb: false, nCtxTrain: 4096 },
      type: 'olmoe A1.7B Q4_K - Medium', q6: { 'attn_v.weight': 8, 'ffn_down_exps.weight': 8, 'output.weight': 1 },
    },
    {
      // expert rows of 1408: ffn_down_exps Q5_0 (12) / Q8_0 (12, where use_more_bits asks for Q6_K)
      preset: 'qwen1.5-moe-a2.7b', tensors: 411, types: { F32: 169, Q4_K: 193, Q5_0: 12, Q6_K: 25, Q8_0: 12 }, bytes: 9_490_282_496, params: 14_315_784_192,
      config: { arch: 'qwen2moe', nLayer: 24, nEmbd: 2048, nHead: 16, nHeadKv: 16, nExpert: 60, nExpertUsed: 4, nFfExp: 1408, nFfShexp: 5632, nVocab: 151936, ffnKind: 'moe+shared', nCtxTrain: 8192 },
      type: 'qwen2moe A2.7B Q4_K - Medium', q6: { 'attn_v.weight': 12, 'ffn_down_shexp.weight': 12, 'output.weight': 1 },
    },
    {
      // tied: token_embd is the LM head and gets output.weight's Q6_K; 3.21 B parameters (+ 64 rope_freqs)
      preset: 'llama-3.2-3b', tensors: 255, types: { F32: 58, Q4_K: 168, Q6_K: 29 }, bytes: 2_011_539_712, params: 3_212_749_824 + 64,
      config: { arch: 'llama', nLayer: 28, nEmbd: 3072, nHead: 24, nHeadKv: 8, nFf: 8192, nExpert: 0, nVocab: 128256, ffnKind: 'dense', tiedEmbeddings: true, ropeBase: 5e5, nCtxTrain: 131072 },
      type: 'llama 3B Q4_K - Medium', q6: { 'token_embd.weight': 1, 'attn_v.weight': 14, 'ffn_down.weight': 14 },
    },
    {
      preset: 'llama-3.1-8b', tensors: 292, types: { F32: 66, Q4_K: 193, Q6_K: 33 }, bytes: 4_912_898_304, params: 8_030_261_248 + 64,
      config: { arch: 'llama', nLayer: 32, nEmbd: 4096, nHead: 32, nHeadKv: 8, nFf: 14336, nExpert: 0, nVocab: 128256, ffnKind: 'dense', tiedEmbeddings: false, nCtxTrain: 131072 },
      type: 'llama 8B Q4_K - Medium', q6: { 'attn_v.weight': 16, 'ffn_down.weight': 16, 'output.weight': 1 },
    },
  ];
  for (const c of cases) {
    it(`${c.preset}: ${c.tensors} tensors, exactly what moet expects for the metadata it writes`, async () => {
      const plan = synthPlan({ preset: c.preset });
      expect(plan.tensors).toHaveLength(c.tensors);
      expect(Object.fromEntries(Object.entries(plan.typeCounts).map(([k, v]) => [k, v.tensors]))).toEqual(c.types);
      expect(plan.dataBytes).toBe(c.bytes);
      expect(plan.parameterCount).toBe(c.params);
      const bpw = (8 * plan.dataBytes) / plan.parameterCount;
      expect(bpw).toBeGreaterThan(4.8);
      expect(bpw).toBeLessThan(5.4);
      const q6: Record<string, number> = {};
      for (const t of plan.tensors) if (t.type === GGMLType.Q6_K) q6[t.name.replace(/^blk\.\d+\./, '')] = (q6[t.name.replace(/^blk\.\d+\./, '')] ?? 0) + 1;
      expect(q6).toEqual(c.q6);

      const { config, type } = await readBack(plan);
      expect(config).toMatchObject(c.config);
      expect(listing(expectedTensors(config))).toEqual(listing(plan.tensors));
      expect(type).toBe(c.type);
      // 1-D tensors (norms, biases, rope_freqs, the shared expert's gate) and the router stay F32
      for (const t of plan.tensors) if (t.shape.length === 1 || t.name.includes('ffn_gate_inp')) expect(t.type, t.name).toBe(GGMLType.F32);
    });
  }

  it("moet synth --dry-run --tensors prints the full table: every tensor's shape, type and bytes, and the total", async () => {
    const c = collect();
    expect(await synthCommand(['--preset', 'mixtral-8x7b', '--dry-run', '--tensors'], c.io)).toBe(0);
    const lines = c.out().trim().split('\n');
    expect(lines[1]).toContain('323 tensors');
    expect(lines[1]).toContain('(28447727616 bytes)');
    expect(lines).toHaveLength(2 + 323);
    expect(lines).toContain(`${'blk.0.attn_k.weight'.padEnd(32)} ${'[4096, 1024]'.padEnd(22)} Q8_0  ${String(4_456_448).padStart(12)}  4.25 MiB`);
    expect(lines.some((l) => /^blk\.31\.ffn_down_exps\.weight\s+\[14336, 4096, 8\]\s+Q6_K\s+385351680 /.test(l))).toBe(true);
    const j = collect();
    expect(await synthCommand(['--preset', 'qwen1.5-moe-a2.7b', '--dry-run', '--json'], j.io)).toBe(0);
    expect(JSON.parse(j.out())).toMatchObject({ arch: 'qwen2moe', tensorCount: 411, dataBytes: 9_490_282_496 });
  });

  it("rope_freqs holds llama3's frequency factors (1 for short wavelengths, the factor for long ones)", () => {
    const plan = synthPlan({ preset: 'llama-3.2-3b' });
    const t = plan.tensors.find((x) => x.name === 'rope_freqs.weight')!;
    expect(t).toMatchObject({ shape: [64], type: GGMLType.F32 });
    const v = new Float32Array(synthTensorData(plan, t).buffer);
    expect(Array.from(v)).toEqual(llama3RopeFactors(128, 5e5, { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 }));
    expect(v[0]).toBe(1);
    expect(v[63]).toBe(32);
    // monotone, with a smooth band between 2π/θ = 2048 and 8192
    for (let i = 1; i < 64; i++) expect(v[i]!).toBeGreaterThanOrEqual(v[i - 1]!);
    expect(v.filter((x) => x > 1 && x < 32).length).toBeGreaterThan(3);
    const f8 = synthPlan({ preset: 'llama-3.1-8b' }).tensors.find((x) => x.name === 'rope_freqs.weight')!;
    expect(Math.max(...f8.values!)).toBe(8);
  });

  it('refuses overrides that do not fit the preset', () => {
    expect(() => synthPlan({ preset: 'llama-3.1-8b', geometry: { nExpert: 8 } })).toThrow(/dense/);
    expect(() => synthPlan({ preset: 'mixtral-8x7b', geometry: { nFfShexp: 512 } })).toThrow(/no shared expert/);
    expect(() => synthPlan({ preset: 'olmoe-1b-7b', geometry: { nFf: 512, nFfExp: 256 } })).toThrow(/feed_forward_length wide/);
    expect(() => synthPlan({ preset: 'mixtral-8x7b', vocab: 'real' })).toThrow(/Qwen3's vocabulary/);
    // --ff alone sets the experts' width of llama + experts / olmoe
    expect(synthPlan({ preset: 'olmoe-1b-7b', geometry: { nLayer: 1, nFf: 512 } }).geometry).toMatchObject({ nFf: 512, nFfExp: 512 });
  });
});

/** llama.cpp's raw logits after `tokens` (node-llama-cpp, CPU, the classic attention path). */
async function llamaLogits(path: string, tokens: number[], nVocab: number): Promise<Float32Array> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const ctx = await model.createContext({ contextSize: 64, threads: 2, flashAttention: false });
    try {
      const out = await ctx.getSequence().controlledEvaluate(tokens.map((t, i) => (i === tokens.length - 1 ? [t as Token, { generateNext: { logits: true } }] : (t as Token))) as never);
      const map = out[tokens.length - 1]?.next.logits as Map<number, number> | undefined;
      if (!map || map.size !== nVocab) throw new Error(`llama.cpp returned ${map?.size ?? 0} logits, expected ${nVocab}`);
      const row = new Float32Array(nVocab);
      for (const [t, v] of map) row[t] = v;
      return row;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

describe('transformer-family presets: cut-down files run in moet and llama.cpp', () => {
  const small = ['--layers', '2', '--embd', '256', '--heads', '4', '--head-dim', '64', '--vocab-size', '2000', '--seed', 'test'];
  const cases: { preset: SynthPresetName; args: string[]; types: string[]; moe: boolean }[] = [
    // exactly 8 experts: attn_k / attn_v Q8_0, attn_output Q5_K
    { preset: 'mixtral-8x7b', args: ['--kv-heads', '2', '--ff-exp', '256'], types: ['F32', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0'], moe: true },
    { preset: 'olmoe-1b-7b', args: ['--kv-heads', '4', '--ff-exp', '256', '--experts', '16', '--experts-used', '4'], types: ['F32', 'Q4_K', 'Q6_K'], moe: true },
    // expert rows of 160 (not a multiple of 256, like the real 1408): Q5_0 / Q8_0
    { preset: 'qwen1.5-moe-a2.7b', args: ['--kv-heads', '4', '--ff-exp', '160', '--ff-shexp', '512', '--experts', '12'], types: ['F32', 'Q4_K', 'Q5_0', 'Q6_K', 'Q8_0'], moe: true },
    // dense, tied (token_embd Q6_K is the LM head), rope_freqs
    { preset: 'llama-3.2-3b', args: ['--kv-heads', '2', '--ff', '512'], types: ['F32', 'Q4_K', 'Q6_K'], moe: false },
  ];
  for (const c of cases) {
    it(`${c.preset} (${c.args.join(' ')})`, async () => {
      const path = join(dir, `${c.preset}-small.gguf`);
      expect(await synthCommand(['--preset', c.preset, '-o', path, ...small, ...c.args], collect().io)).toBe(0);
      expect((await stat(path)).size).toBeLessThan(6e6);
      const f = await openGGUF(path);
      let config: ModelConfig;
      try {
        config = configFromGGUF(f.metadata, f.tensorByName);
        expect(listing(f.tensors)).toEqual(listing(expectedTensors(config)));
        expect([...new Set(f.tensors.map((t) => ggmlTypeName(t.type)))].sort()).toEqual(c.types);
      } finally {
        await f.close();
      }

      const tokens = [9, 11, 1879, 0, 42, 100, 7, 3];
      const ref = await llamaLogits(path, tokens, 2000);
      const model = await loadModel(path, { backend: 'cpu', contextLength: 64 });
      try {
        const seq = model.backend.createSequence(64);
        const logits = await seq.eval(tokens);
        expect(logits).toHaveLength(2000);
        // the same greedy next token, and the same logits (moet's CPU backend reproduces llama.cpp's arithmetic)
        expect(argmax(logits)).toBe(argmax(ref));
        let maxDiff = 0;
        for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - logits[i]!));
        expect(maxDiff).toBeLessThan(1e-3);
        // and it goes on: the greedy token fed back
        const next = await seq.eval([argmax(logits)]);
        expect(next.every((x) => Number.isFinite(x))).toBe(true);
        seq.dispose();
      } finally {
        await model.dispose();
      }
      if (!c.moe) return;

      // moet bench and moet routes on the same file
      const b = collect();
      expect(await benchCommand(['-m', path, '--backend', 'cpu', '-p', '4', '-n', '2', '-r', '1', '-o', 'jsonl'], b.io)).toBe(0);
      const rows = b.out().trim().split('\n').map((l) => JSON.parse(l) as { model_type: string; avg_ts: number; weight_bytes_per_token: number | null });
      expect(rows).toHaveLength(2);
      expect(rows[0]!.model_type).toBe(`${config.arch} ?B Q4_K - Medium`);
      expect(rows.every((r) => r.avg_ts > 0)).toBe(true);
      expect(rows[1]!.weight_bytes_per_token).toBeGreaterThan(0);
      const r = collect();
      expect(await routesCommand(['-m', path, '--backend', 'cpu', '-p', 'The quick brown fox jumps over the lazy dog', '--json', '-'], r.io)).toBe(0);
      const routes = JSON.parse(r.out()) as { nLayer: number; k: number; nExpert: number; model: { architecture: string }; tokens: { experts: number[][] }[] };
      expect(routes).toMatchObject({ nLayer: 2, k: config.nExpertUsed, nExpert: config.nExpert, model: { architecture: config.arch } });
      expect(routes.tokens.length).toBeGreaterThan(5);
      for (const t of routes.tokens) for (const e of t.experts) expect(new Set(e).size).toBe(config.nExpertUsed);
    });
  }
});

describe('deepseek2 presets (MLA): full-size plans (nothing written)', () => {
  // R1 = V3's geometry without the MTP block (llama.cpp's converter skips it); V2-Lite without q_lora.
  // Under Q4_K_M attn_k_b's rows of qk_nope 128 fall back to Q5_0, attn_v_b (rows of kv_lora 512) is
  // Q4_K; V2-Lite's expert rows of 1408 and dense rows of 10944 take the Q5_0 / Q8_0 fallbacks.
  const cases: {
    preset: SynthPresetName; tensors: number; types: Record<string, number>; bytes: number; params: number; perToken: number;
    config: Partial<ModelConfig>; type: string; byName: Record<string, [number[], GGMLType]>;
  }[] = [
    {
      preset: 'deepseek-r1', tensors: 1086, types: { Q4_K: 606, F32: 361, Q5_0: 61, Q6_K: 58 }, bytes: 404_488_847_360, params: 671_026_419_200, perToken: 22_296_022_976,
      config: {
        arch: 'deepseek2', nLayer: 61, nEmbd: 7168, nHead: 128, nHeadKv: 1, headDimK: 576, headDimV: 512, nRot: 64, nFf: 18432, nFfExp: 2048, nExpert: 256, nExpertUsed: 8,
        nFfShexp: 2048, nLayerDenseLead: 3, sharedExpertGated: false, nVocab: 129280, nCtxTrain: 163840, ffnKind: 'moe+shared',
        mla: { qLoraRank: 1536, kvLoraRank: 512, qkNope: 128, qkRope: 64, vHead: 128 },
        router: { gating: 'sigmoid', logitBias: false, normalize: true, selectionBias: true, groups: 8, groupsUsed: 4, scale: 2.5 },
      },
      type: 'deepseek2 671B Q4_K - Medium',
      byName: {
        'blk.0.attn_q_a.weight': [[7168, 1536], GGMLType.Q4_K],
        'blk.0.attn_q_b.weight': [[1536, 24576], GGMLType.Q4_K],
        'blk.0.attn_kv_a_mqa.weight': [[7168, 576], GGMLType.Q4_K],
        'blk.0.attn_k_b.weight': [[128, 512, 128], GGMLType.Q5_0],
        'blk.0.attn_v_b.weight': [[512, 128, 128], GGMLType.Q4_K],
        'blk.0.attn_output.weight': [[16384, 7168], GGMLType.Q4_K],
        'blk.2.ffn_down.weight': [[18432, 7168], GGMLType.Q6_K],
        'blk.3.exp_probs_b.bias': [[256], GGMLType.F32],
        'blk.3.ffn_gate_exps.weight': [[7168, 2048, 256], GGMLType.Q4_K],
        'blk.60.ffn_down_exps.weight': [[2048, 7168, 256], GGMLType.Q6_K],
        'blk.31.ffn_down_shexp.weight': [[2048, 7168], GGMLType.Q4_K],
        'output.weight': [[7168, 129280], GGMLType.Q6_K],
      },
    },
    {
      preset: 'deepseek-v2-lite', tensors: 404, types: { Q4_K: 229, F32: 108, Q5_0: 41, Q8_0: 13, Q6_K: 13 }, bytes: 10_363_959_296, params: 15_706_484_224, perToken: 1_611_824_256,
      config: {
        arch: 'deepseek2', nLayer: 27, nEmbd: 2048, nHead: 16, nHeadKv: 1, headDimK: 576, headDimV: 512, nFf: 10944, nFfExp: 1408, nExpert: 64, nExpertUsed: 6,
        nFfShexp: 2816, nLayerDenseLead: 1, nVocab: 102400, nCtxTrain: 163840,
        mla: { qLoraRank: 0, kvLoraRank: 512, qkNope: 128, qkRope: 64, vHead: 128 },
        router: { gating: 'softmax', logitBias: false, normalize: false, selectionBias: false, groups: 0, groupsUsed: 0, scale: 1 },
      },
      type: 'deepseek2 16B Q4_K - Medium',
      byName: {
        'blk.0.attn_q.weight': [[2048, 3072], GGMLType.Q4_K],
        'blk.0.attn_k_b.weight': [[128, 512, 16], GGMLType.Q5_0],
        'blk.0.attn_v_b.weight': [[512, 128, 16], GGMLType.Q4_K],
        'blk.0.ffn_down.weight': [[10944, 2048], GGMLType.Q8_0],
        'blk.1.ffn_down_exps.weight': [[1408, 2048, 64], GGMLType.Q8_0],
        'blk.3.ffn_down_exps.weight': [[1408, 2048, 64], GGMLType.Q5_0],
        'blk.1.ffn_down_shexp.weight': [[2816, 2048], GGMLType.Q6_K],
      },
    },
  ];
  for (const c of cases) {
    it(`${c.preset}: ${c.tensors} tensors, ${(c.params / 1e9).toFixed(2)} B parameters, exactly what moet expects for the metadata it writes`, async () => {
      const plan = synthPlan({ preset: c.preset });
      expect(plan.arch).toBe('deepseek2');
      expect(plan.tensors).toHaveLength(c.tensors);
      expect(Object.fromEntries(Object.entries(plan.typeCounts).map(([k, v]) => [k, v.tensors]))).toEqual(c.types);
      expect(plan.dataBytes).toBe(c.bytes);
      expect(plan.parameterCount).toBe(c.params);
      const byName = new Map(plan.tensors.map((t) => [t.name, t]));
      for (const [name, [shape, type]] of Object.entries(c.byName)) expect(byName.get(name), name).toMatchObject({ shape, type });
      // no MTP block, no unsplit attn_kv_b, no attn_v (so nothing of the attn_v rule applies)
      expect(plan.tensors.some((t) => /nextn|attn_kv_b|attn_v\.weight/.test(t.name))).toBe(false);
      for (const t of plan.tensors) if (t.shape.length === 1 || t.name.includes('ffn_gate_inp')) expect(t.type, t.name).toBe(GGMLType.F32);

      const { config, type } = await readBack(plan);
      expect(config).toMatchObject(c.config);
      expect(config.attention.yarn.extFactor).toBe(1);
      expect(config.attention.ropeFreqScale).toBe(Math.fround(1 / 40));
      expect(listing(expectedTensors(config))).toEqual(listing(plan.tensors));
      expect(type).toBe(c.type);
      const infos = plan.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, relativeOffset: 0, offset: 0, byteLength: t.bytes }));
      // docs/performance.md: bytes of weights one decoded token reads
      expect(weightBytesPerToken(infos, config).total).toBe(c.perToken);
    });
  }

  it('the MLA conversion keys: MQA rows of kv_lora + rope, the *_mla head sizes; V2-Lite without q_lora_rank / expert_weights_norm', () => {
    const md = (p: SynthPresetName) => new Map(synthPlan({ preset: p }).metadata.map((m) => [m.key, m.value]));
    const r1 = md('deepseek-r1');
    expect(Object.fromEntries(['head_count_kv', 'key_length', 'value_length', 'key_length_mla', 'value_length_mla', 'q_lora_rank', 'kv_lora_rank'].map((k) => [k, r1.get(`deepseek2.attention.${k}`)])))
      .toEqual({ head_count_kv: 1, key_length: 576, value_length: 512, key_length_mla: 192, value_length_mla: 128, q_lora_rank: 1536, kv_lora_rank: 512 });
    expect([r1.get('deepseek2.expert_gating_func'), r1.get('deepseek2.expert_weights_norm'), r1.get('deepseek2.expert_group_count'), r1.get('deepseek2.expert_group_used_count')]).toEqual([2, true, 8, 4]);
    expect([r1.get('deepseek2.rope.scaling.type'), r1.get('deepseek2.rope.scaling.factor'), r1.get('deepseek2.rope.scaling.original_context_length')]).toEqual(['yarn', 40, 4096]);
    expect(r1.get('deepseek2.rope.scaling.yarn_log_multiplier')).toBeCloseTo(0.1, 7);
    expect(r1.get('tokenizer.ggml.bos_token_id')).not.toBe(r1.get('tokenizer.ggml.eos_token_id'));
    const lite = md('deepseek-v2-lite');
    expect(lite.has('deepseek2.attention.q_lora_rank')).toBe(false);
    expect(lite.has('deepseek2.expert_weights_norm')).toBe(false);
    expect(lite.get('deepseek2.expert_gating_func')).toBe(1);
    expect(lite.get('deepseek2.rope.scaling.yarn_log_multiplier')).toBeCloseTo(0.0707, 7);
    const tokens = lite.get('tokenizer.ggml.tokens') as string[];
    expect([tokens[100000], tokens[100001]]).toEqual(['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>']);
    // --rope-scaling none: no rope.scaling keys; moet then runs plain RoPE
    const none = synthPlan({ preset: 'deepseek-r1', ropeScaling: 'none' });
    expect(none.metadata.some((m) => m.key.includes('rope.scaling'))).toBe(false);
    expect(none.deepseek?.yarn).toBeNull();
  });

  it('refuses overrides that do not fit MLA, groups that do not divide the experts, and a trunk without a MoE layer', async () => {
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { headDim: 128 } })).toThrow(/MLA/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nHeadKv: 8 } })).toThrow(/MLA/);
    expect(() => synthPlan({ preset: 'deepseek-v2-lite', geometry: { nFfShexp: 512 } })).toThrow(/--shared-experts/);
    expect(() => synthPlan({ preset: 'mixtral-8x7b', geometry: { kvLoraRank: 64 } })).toThrow(/not a deepseek2/);
    expect(() => synthPlan({ preset: 'mixtral-8x7b', ropeScaling: 'none' })).toThrow(/YaRN/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nLayer: 3 } })).toThrow(/no MoE layer.*--dense-layers 2/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nExpert: 12 } })).toThrow(/must divide/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nExpert: 8 } })).toThrow(/at least 2/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nExpert: 16, nGroupUsed: 8 } })).toThrow(/1 \.\. 7/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nExpert: 16, nGroupUsed: 2 } })).toThrow(/cannot hold expert_used_count 8/);
    expect(() => synthPlan({ preset: 'deepseek-v2-lite', geometry: { nGroupUsed: 2 } })).toThrow(/--groups/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { nLayer: 27 } })).toThrow(/V2-Lite/);
    expect(() => synthPlan({ preset: 'deepseek-r1', geometry: { qkRope: 15 } })).toThrow(/even/);
    await expect(synthCommand(['--preset', 'deepseek-r1', '--rope-scaling', 'linear', '--dry-run'], collect().io)).rejects.toThrow(/yarn or none/);
    // a cut-down V2-Lite writes q_lora_rank 0 (llama.cpp needs the key unless the layer count says "lite")
    const cut = synthPlan({ preset: 'deepseek-v2-lite', geometry: { nLayer: 2 } });
    expect(cut.metadata.find((m) => m.key === 'deepseek2.attention.q_lora_rank')?.value).toBe(0);
  });

  it('moet synth --dry-run --tensors prints the MLA tensors with their types', async () => {
    const c = collect();
    expect(await synthCommand(['--preset', 'deepseek-r1', '--dry-run', '--tensors'], c.io)).toBe(0);
    const lines = c.out().trim().split('\n');
    expect(lines[0]).toContain('61 layers');
    expect(lines[0]).toContain('3 dense (FFN 18432) + 58 MoE layers');
    expect(lines[1]).toContain('1086 tensors');
    expect(lines[1]).toContain('671.03 B parameters');
    expect(lines[1]).toContain('(404488847360 bytes)');
    expect(lines).toHaveLength(2 + 1086);
    expect(lines.some((l) => /^blk\.0\.attn_k_b\.weight\s+\[128, 512, 128\]\s+Q5_0\s+ 5767168 /.test(l))).toBe(true);
    expect(lines.some((l) => /^blk\.3\.exp_probs_b\.bias\s+\[256\]\s+F32\s+1024 /.test(l))).toBe(true);
  });
});

describe('deepseek2 presets: cut-down files run in moet and llama.cpp', () => {
  // 1 dense + 1 MoE layer, 256 wide, 4 heads; R1's 8 groups stay (16 experts: groups of 2, 4 used)
  const small = ['--layers', '2', '--embd', '256', '--heads', '4', '--kv-lora', '64', '--qk-nope', '32', '--qk-rope', '16', '--v-head', '32', '--ff', '512', '--vocab-size', '2000', '--seed', 'test'];
  const cases: { preset: SynthPresetName; args: string[]; types: string[]; gpu: boolean }[] = [
    { preset: 'deepseek-r1', args: ['--dense-layers', '1', '--q-lora', '64', '--ff-exp', '256', '--experts', '16', '--experts-used', '4'], types: ['F32', 'Q4_K', 'Q5_0', 'Q6_K'], gpu: true },
    // expert rows of 160 (not a multiple of 256, like the real 1408): Q5_0 / Q8_0
    { preset: 'deepseek-v2-lite', args: ['--ff-exp', '160', '--experts', '12', '--experts-used', '3'], types: ['F32', 'Q4_K', 'Q5_0', 'Q6_K', 'Q8_0'], gpu: false },
  ];
  for (const c of cases) {
    it(`${c.preset} (${c.args.join(' ')})${c.gpu ? ', and on WebGPU' : ''}`, async () => {
      const path = join(dir, `${c.preset}-small.gguf`);
      expect(await synthCommand(['--preset', c.preset, '-o', path, ...small, ...c.args], collect().io)).toBe(0);
      expect((await stat(path)).size).toBeLessThan(6e6);
      const f = await openGGUF(path);
      let config: ModelConfig;
      try {
        config = configFromGGUF(f.metadata, f.tensorByName);
        expect(listing(f.tensors)).toEqual(listing(expectedTensors(config)));
        expect([...new Set(f.tensors.map((t) => ggmlTypeName(t.type)))].sort()).toEqual(c.types);
        expect(config.nLayerDenseLead).toBe(1);
        expect(config.attention.yarn.extFactor).toBe(1);
      } finally {
        await f.close();
      }

      const tokens = [9, 11, 1879, 0, 42, 100, 7, 3];
      const ref = await llamaLogits(path, tokens, 2000);
      const model = await loadModel(path, { backend: 'cpu', contextLength: 64 });
      let cpuLogits: Float32Array;
      let cpuNext: Float32Array;
      try {
        const seq = model.backend.createSequence(64);
        cpuLogits = Float32Array.from(await seq.eval(tokens));
        expect(argmax(cpuLogits)).toBe(argmax(ref));
        let maxDiff = 0;
        for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - cpuLogits[i]!));
        expect(maxDiff).toBeLessThan(1e-3);
        cpuNext = Float32Array.from(await seq.eval([argmax(cpuLogits)]));
        expect(cpuNext.every((x) => Number.isFinite(x))).toBe(true);
        seq.dispose();
      } finally {
        await model.dispose();
      }

      // moet bench, and moet routes: the dense layer is marked, the MoE layer's top-k stays in the chosen groups
      const b = collect();
      expect(await benchCommand(['-m', path, '--backend', 'cpu', '-p', '4', '-n', '2', '-r', '1', '-o', 'jsonl'], b.io)).toBe(0);
      const rows = b.out().trim().split('\n').map((l) => JSON.parse(l) as { model_type: string; avg_ts: number });
      expect(rows.map((r) => r.model_type)).toEqual(['deepseek2 ?B Q4_K - Medium', 'deepseek2 ?B Q4_K - Medium']);
      const r = collect();
      expect(await routesCommand(['-m', path, '--backend', 'cpu', '-p', 'The quick brown fox jumps over the lazy dog', '--json', '-'], r.io)).toBe(0);
      const routes = JSON.parse(r.out()) as { layers: { dense: boolean }[]; tokens: { experts: number[][]; weights: number[][] }[] };
      expect(routes.layers.map((l) => l.dense)).toEqual([true, false]);
      const groupSize = config.router.groups ? config.nExpert / config.router.groups : config.nExpert;
      for (const t of routes.tokens) {
        const e = t.experts[1]!;
        expect(new Set(e).size).toBe(config.nExpertUsed);
        if (config.router.groups) expect(new Set(e.map((x) => Math.floor(x / groupSize))).size).toBeLessThanOrEqual(config.router.groupsUsed);
        if (config.router.normalize) expect(t.weights[1]!.reduce((x, y) => x + y, 0)).toBeCloseTo(config.router.scale, 3);
      }
      if (!c.gpu) return;

      // WebGPU (lavapipe here): the project's GPU-vs-CPU tolerance (normalized MSE ≤ 5e-4), same greedy token
      const ctx = await openTestGPU();
      if (!ctx) return;
      const file = await openGGUF(path);
      try {
        const gpu = await WebGPUBackend.load(file, config, { context: ctx });
        try {
          const seq = gpu.createSequence(64);
          const logits = await seq.eval(tokens);
          expect(argmax(logits)).toBe(argmax(cpuLogits));
          expect(nmse(logits, cpuLogits)).toBeLessThan(5e-4);
          const next = await seq.eval([argmax(cpuLogits)]);
          expect(argmax(next)).toBe(argmax(cpuNext));
          expect(nmse(next, cpuNext)).toBeLessThan(5e-4);
          seq.dispose();
        } finally {
          await gpu.dispose();
        }
      } finally {
        await file.close();
        await ctx.dispose();
      }
    });
  }
});

describe('gpt-oss presets: full-size plans (nothing written)', () => {
  // the released MXFP4 GGUFs (ggml-org/gpt-oss-20b-GGUF: 459 tensors, 289 F32; llama.cpp prints 20.91 B /
  // 116.83 B parameters): experts MXFP4, Q/K/V/O, token_embd and output Q8_0, every bias, the sinks, the
  // norms and the router F32
  const cases: { preset: SynthPresetName; tensors: number; types: Record<string, number>; bytes: number; params: number; config: Partial<ModelConfig>; type: string }[] = [
    {
      preset: 'gpt-oss-20b', tensors: 459, types: { F32: 289, Q8_0: 98, MXFP4: 72 }, bytes: 12_096_558_336, params: 20_914_757_184,
      config: { arch: 'gpt-oss', nLayer: 24, nEmbd: 2880, nHead: 64, nHeadKv: 8, headDimK: 64, headDimV: 64, nFfExp: 2880, nExpert: 32, nExpertUsed: 4, nVocab: 201088, nCtxTrain: 131072, tiedEmbeddings: false, expertBiases: true, expertActivation: 'swiglu_oai' },
      type: 'gpt-oss 20B MXFP4 MoE',
    },
    {
      preset: 'gpt-oss-120b', tensors: 687, types: { F32: 433, Q8_0: 146, MXFP4: 108 }, bytes: 63_374_323_968, params: 116_829_156_672,
      config: { arch: 'gpt-oss', nLayer: 36, nEmbd: 2880, nHead: 64, nHeadKv: 8, nExpert: 128, nExpertUsed: 4, nVocab: 201088 },
      type: 'gpt-oss 120B MXFP4 MoE',
    },
  ];
  for (const c of cases) {
    it(`${c.preset}: ${c.tensors} tensors, ${(c.params / 1e9).toFixed(2)} B parameters, exactly what moet expects for the metadata it writes`, async () => {
      const plan = synthPlan({ preset: c.preset });
      expect(plan.arch).toBe('gpt-oss');
      expect(plan.tensors).toHaveLength(c.tensors);
      expect(Object.fromEntries(Object.entries(plan.typeCounts).map(([k, v]) => [k, v.tensors]))).toEqual(c.types);
      expect([plan.dataBytes, plan.parameterCount]).toEqual([c.bytes, c.params]);
      const byName = new Map(plan.tensors.map((t) => [t.name, t]));
      expect(byName.get('blk.0.attn_q.weight')).toMatchObject({ shape: [2880, 4096], type: GGMLType.Q8_0 });
      expect(byName.get('blk.0.attn_sinks.weight')).toMatchObject({ shape: [64], type: GGMLType.F32 });
      expect(byName.get('blk.1.ffn_gate_exps.bias')).toMatchObject({ shape: [2880, c.config.nExpert!], type: GGMLType.F32 });
      expect(byName.get('blk.1.ffn_down_exps.weight')).toMatchObject({ shape: [2880, 2880, c.config.nExpert!], type: GGMLType.MXFP4 });
      expect(byName.get('blk.1.ffn_gate_inp.weight')).toMatchObject({ type: GGMLType.F32 });
      expect(byName.get('token_embd.weight')).toMatchObject({ shape: [2880, 201088], type: GGMLType.Q8_0 });

      const { config, type } = await readBack(plan);
      expect(config).toMatchObject(c.config);
      expect(config.attention.swaLayers.slice(0, 4)).toEqual([true, false, true, false]);
      expect([config.attention.slidingWindow, config.attention.sinks, config.attention.ropeFreqScale, config.attention.yarn.extFactor]).toEqual([128, true, Math.fround(1 / 32), 1]);
      expect(config.router).toMatchObject({ gating: 'softmax_weight', logitBias: true });
      expect(listing(expectedTensors(config))).toEqual(listing(plan.tensors));
      expect(type).toBe(c.type);
    });
  }

  it('the conversion keys and the o200k_harmony special tokens at their ids; overrides that do not fit are refused', () => {
    const md = new Map(synthPlan({ preset: 'gpt-oss-20b' }).metadata.map((m) => [m.key, m.value]));
    expect(['sliding_window', 'key_length', 'value_length', 'head_count', 'head_count_kv'].map((k) => md.get(`gpt-oss.attention.${k}`))).toEqual([128, 64, 64, 64, 8]);
    expect([md.get('gpt-oss.rope.scaling.type'), md.get('gpt-oss.rope.scaling.factor'), md.get('gpt-oss.rope.scaling.original_context_length'), md.get('gpt-oss.rope.freq_base')]).toEqual(['yarn', 32, 4096, 150000]);
    expect([md.get('gpt-oss.feed_forward_length'), md.get('gpt-oss.expert_feed_forward_length'), md.get('general.file_type'), md.get('tokenizer.ggml.pre')]).toEqual([2880, 2880, 38, 'gpt-4o']);
    expect(md.has('gpt-oss.expert_gating_func')).toBe(false);
    const tokens = md.get('tokenizer.ggml.tokens') as string[];
    expect([199998, 199999, 200002, 200003, 200005, 200006, 200007, 200008, 200012].map((i) => tokens[i])).toEqual(
      ['<|startoftext|>', '<|endoftext|>', '<|return|>', '<|constrain|>', '<|channel|>', '<|start|>', '<|end|>', '<|message|>', '<|call|>'],
    );
    expect([md.get('tokenizer.ggml.bos_token_id'), md.get('tokenizer.ggml.eos_token_id'), md.get('tokenizer.ggml.padding_token_id')]).toEqual([199998, 200002, 199999]);
    const none = synthPlan({ preset: 'gpt-oss-120b', ropeScaling: 'none' });
    expect(none.metadata.some((m) => m.key.includes('rope.scaling'))).toBe(false);
    expect(synthPlan({ preset: 'gpt-oss-20b', geometry: { nFf: 512 } }).geometry.nFfExp).toBe(512);
    expect(() => synthPlan({ preset: 'gpt-oss-20b', quant: 'q4_k_m' })).toThrow(/MXFP4/);
    expect(() => synthPlan({ preset: 'mixtral-8x7b', quant: 'mxfp4' })).toThrow(/gpt-oss/);
    expect(() => synthPlan({ preset: 'mixtral-8x7b', geometry: { slidingWindow: 64 } })).toThrow(/not a gpt-oss/);
    expect(() => synthPlan({ preset: 'gpt-oss-20b', geometry: { nFf: 512, nFfExp: 256 } })).toThrow(/differ/);
    expect(() => synthPlan({ preset: 'gpt-oss-20b', geometry: { nEmbd: 200 } })).toThrow(/MXFP4|Q8_0/);
    expect(synthPlan({ preset: 'gpt-oss-20b', quant: 'f32', geometry: { nLayer: 1 } }).typeCounts).toEqual({ F32: expect.objectContaining({ tensors: 22 }) });
  });

  it('a cut-down file (2 layers, window 4, 8 experts) runs in llama.cpp and moet to the same logits', async () => {
    const path = join(dir, 'gpt-oss-small.gguf');
    const args = ['--layers', '2', '--embd', '256', '--heads', '4', '--kv-heads', '2', '--ff-exp', '256', '--experts', '8', '--vocab-size', '2000', '--sliding-window', '4', '--seed', 'test'];
    expect(await synthCommand(['--preset', 'gpt-oss-20b', '-o', path, ...args], collect().io)).toBe(0);
    expect((await stat(path)).size).toBeLessThan(4e6);
    const f = await openGGUF(path);
    try {
      const config = configFromGGUF(f.metadata, f.tensorByName);
      expect(listing(f.tensors)).toEqual(listing(expectedTensors(config)));
      expect([...new Set(f.tensors.map((t) => ggmlTypeName(t.type)))].sort()).toEqual(['F32', 'MXFP4', 'Q8_0']);
      expect([config.attention.slidingWindow, config.attention.swaLayers]).toEqual([4, [true, false]]);
    } finally {
      await f.close();
    }
    // 12 tokens: past the window of layer 0
    const tokens = [9, 11, 1879, 0, 42, 100, 7, 3, 55, 66, 77, 88];
    const ref = await llamaLogits(path, tokens, 2000);
    const model = await loadModel(path, { backend: 'cpu', contextLength: 64 });
    try {
      expect(model.tokenizer.pre).toBe('gpt-4o');
      const seq = model.backend.createSequence(64);
      const logits = await seq.eval(tokens);
      expect(argmax(logits)).toBe(argmax(ref));
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - logits[i]!));
      expect(maxDiff).toBeLessThan(1e-3);
      seq.dispose();
    } finally {
      await model.dispose();
    }
  });
});
