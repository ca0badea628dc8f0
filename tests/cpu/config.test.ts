import { describe, expect, it } from 'vitest';
import { GGMLType, type GGUFMetadataEntry, type GGUFTensorInfo } from '../../gguf/types.js';
import { kv } from '../../gguf/writer.js';
import { checkTensor, configFromGGUF, expectedTensors, validateTensors } from '../../src/config.js';
import { ModelFormatError, UnsupportedArchitectureError } from '../../src/errors.js';
import { buildTinyModel } from './tiny-model.js';

const meta = (...entries: GGUFMetadataEntry[]) => new Map(entries.map((e) => [e.key, e]));
const tensor = (name: string, shape: number[]): GGUFTensorInfo => ({
  name, shape, type: GGMLType.F32, relativeOffset: 0, offset: 0, byteLength: 0,
});
const tensors = (...ts: GGUFTensorInfo[]) => new Map(ts.map((t) => [t.name, t]));

/** Qwen3-30B-A3B's keys as its GGUF holds them (value_length etc. present, no rope.dimension_count). */
function qwen3moeMeta(): GGUFMetadataEntry[] {
  return [
    kv.str('general.architecture', 'qwen3moe'),
    kv.u32('qwen3moe.block_count', 48),
    kv.u32('qwen3moe.context_length', 40960),
    kv.u32('qwen3moe.embedding_length', 2048),
    kv.u32('qwen3moe.feed_forward_length', 6144),
    kv.u32('qwen3moe.attention.head_count', 32),
    kv.u32('qwen3moe.attention.head_count_kv', 4),
    kv.f32('qwen3moe.rope.freq_base', 1e6),
    kv.f32('qwen3moe.attention.layer_norm_rms_epsilon', 1e-6),
    kv.u32('qwen3moe.expert_used_count', 8),
    kv.u32('qwen3moe.attention.key_length', 128),
    kv.u32('qwen3moe.attention.value_length', 128),
    kv.u32('qwen3moe.expert_count', 128),
    kv.u32('qwen3moe.expert_feed_forward_length', 768),
  ];
}

describe('configFromGGUF', () => {
  it('reads Qwen3-30B-A3B', () => {
    const c = configFromGGUF(meta(...qwen3moeMeta(), kv.strs('tokenizer.ggml.tokens', Array(151936).fill('x'))),
      tensors(tensor('token_embd.weight', [2048, 151936]), tensor('output.weight', [2048, 151936])));
    expect(c).toMatchObject({
      arch: 'qwen3moe', nLayer: 48, nEmbd: 2048, nHead: 32, nHeadKv: 4, headDimK: 128, headDimV: 128, nRot: 128,
      ropeBase: 1e6, rmsEps: expect.closeTo(1e-6, 12), nVocab: 151936, nCtxTrain: 40960, nFf: 6144, nExpert: 128,
      nExpertUsed: 8, nFfExp: 768, normTopKProb: true, tiedEmbeddings: false, ropeScalingType: null,
      ffnKind: 'moe', nFfShexp: 0, perExpertTensors: false, nLayerDenseLead: 0, ffnNormName: 'ffn_norm', expertBiases: false,
      router: { gating: 'softmax', normalize: true, selectionBias: false, groups: 0, groupsUsed: 0, scale: 1, logitBias: false },
    });
    expect(c.attention).toMatchObject({ rope: 'neox', qkNorm: 'head', qkvBias: false, outBias: false, ropeFreqs: false, ropeFreqScale: 1, sinks: false, slidingWindow: 0 });
    expect(c.attention.scale).toBe(Math.fround(1 / Math.sqrt(128)));
    expect(c.attention.yarn.extFactor).toBe(0);
  });

  it('applies llama.cpp defaults for absent optional keys', () => {
    const c = configFromGGUF(meta(
      kv.str('general.architecture', 'qwen3'),
      kv.u32('qwen3.block_count', 2),
      kv.u32('qwen3.context_length', 512),
      kv.u32('qwen3.embedding_length', 64),
      kv.u32('qwen3.feed_forward_length', 96),
      kv.u32('qwen3.attention.head_count', 4),
      kv.f32('qwen3.attention.layer_norm_rms_epsilon', 1e-5),
    ), tensors(tensor('token_embd.weight', [64, 77])));
    expect(c.nHeadKv).toBe(4); // head_count
    expect(c.headDimK).toBe(16); // n_embd / n_head
    expect(c.headDimV).toBe(16);
    expect(c.nRot).toBe(16); // key_length
    expect(c.ropeBase).toBe(10000);
    expect(c.nVocab).toBe(77); // token_embd's ne1
    expect(c.tiedEmbeddings).toBe(true); // no output.weight
    expect(c.nExpert).toBe(0);
    expect(c.normTopKProb).toBe(false);
  });

  it('derives expert_feed_forward_length from feed_forward_length / expert_used_count when absent', () => {
    const m = qwen3moeMeta().filter((e) => e.key !== 'qwen3moe.expert_feed_forward_length');
    const c = configFromGGUF(meta(...m), tensors(tensor('token_embd.weight', [2048, 100])));
    expect(c.nFfExp).toBe(6144 / 8);
  });

  it('prefers vocab_size, then the token list, then token_embd', () => {
    const t = tensors(tensor('token_embd.weight', [2048, 100]));
    expect(configFromGGUF(meta(...qwen3moeMeta(), kv.strs('tokenizer.ggml.tokens', ['a', 'b'])), t).nVocab).toBe(2);
    expect(configFromGGUF(meta(...qwen3moeMeta(), kv.u32('qwen3moe.vocab_size', 99), kv.strs('tokenizer.ggml.tokens', ['a'])), t).nVocab).toBe(99);
  });

  it('accepts uniform per-layer arrays and rejects mixed ones', () => {
    const m = qwen3moeMeta().filter((e) => e.key !== 'qwen3moe.attention.head_count_kv');
    const t = tensors(tensor('token_embd.weight', [2048, 100]));
    expect(configFromGGUF(meta(...m, kv.i32s('qwen3moe.attention.head_count_kv', [4, 4])), t).nHeadKv).toBe(4);
    expect(() => configFromGGUF(meta(...m, kv.i32s('qwen3moe.attention.head_count_kv', [4, 8])), t)).toThrow(UnsupportedArchitectureError);
  });

  it('names a missing required key', () => {
    for (const key of ['qwen3moe.attention.layer_norm_rms_epsilon', 'qwen3moe.block_count', 'qwen3moe.expert_count',
      'qwen3moe.expert_used_count', 'qwen3moe.attention.head_count', 'qwen3moe.embedding_length', 'qwen3moe.context_length']) {
      const m = meta(...qwen3moeMeta().filter((e) => e.key !== key));
      expect(() => configFromGGUF(m, tensors(tensor('token_embd.weight', [2048, 10])))).toThrow(
        expect.objectContaining({ name: 'UnsupportedArchitectureError', message: expect.stringContaining(key) }),
      );
    }
  });

  it('rejects an unknown architecture, listing the supported ones', () => {
    const m = meta(kv.str('general.architecture', 'gemma3'));
    expect(() => configFromGGUF(m, tensors())).toThrow(UnsupportedArchitectureError);
    expect(() => configFromGGUF(m, tensors())).toThrow(/"gemma3".*qwen3moe, qwen3.*llama, olmoe, qwen2moe, deepseek2, gpt-oss/);
    expect(() => configFromGGUF(meta(), tensors())).toThrow(/general\.architecture.*qwen3moe/);
  });

  it('records rope scaling it does not implement; reads linear and YaRN', () => {
    const other = configFromGGUF(meta(...qwen3moeMeta(), kv.str('qwen3moe.rope.scaling.type', 'longrope'), kv.f32('qwen3moe.rope.scaling.factor', 4)),
      tensors(tensor('token_embd.weight', [2048, 10])));
    expect(other.ropeScalingType).toBe('longrope');
    const yarn = configFromGGUF(meta(...qwen3moeMeta(), kv.str('qwen3moe.rope.scaling.type', 'yarn'), kv.f32('qwen3moe.rope.scaling.factor', 4)),
      tensors(tensor('token_embd.weight', [2048, 10])));
    expect(yarn.ropeScalingType).toBeNull();
    expect([yarn.attention.ropeFreqScale, yarn.attention.yarn.extFactor]).toEqual([0.25, 1]);
    // llama.cpp: corr dims from original_context_length (default context_length 40960), β 32 / 1
    expect(yarn.attention.yarn.corrDims[0]).toBeGreaterThanOrEqual(0);
    expect(yarn.attention.yarn.corrDims[1]).toBeLessThanOrEqual(127);
    const linear = configFromGGUF(meta(...qwen3moeMeta(), kv.f32('qwen3moe.rope.scaling.factor', 2)), tensors(tensor('token_embd.weight', [2048, 10])));
    expect([linear.ropeScalingType, linear.attention.ropeFreqScale, linear.attention.yarn.extFactor]).toEqual([null, 0.5, 0]);
  });
});

describe('expected tensors', () => {
  it('lists every tensor of a model with its shape and validates a real layout', async () => {
    const m = await buildTinyModel({ arch: 'qwen3moe' });
    const c = configFromGGUF(m.metadata, m.tensorByName);
    const names = expectedTensors(c).map((e) => e.name);
    expect(names.sort()).toEqual([...m.tensorByName.keys()].sort());
    expect(() => validateTensors(c, m.tensorByName)).not.toThrow();
    expect(expectedTensors(c).find((e) => e.name === 'blk.1.ffn_down_exps.weight')!.shape).toEqual([c.nFfExp, c.nEmbd, c.nExpert]);
  });

  it('omits output.weight when tied; dense models have ffn_gate/up/down', async () => {
    const m = await buildTinyModel({ arch: 'qwen3', tied: true });
    const c = configFromGGUF(m.metadata, m.tensorByName);
    expect(c.tiedEmbeddings).toBe(true);
    expect(expectedTensors(c).map((e) => e.name).sort()).toEqual([...m.tensorByName.keys()].sort());
  });

  it('throws ModelFormatError naming a missing or mis-shaped tensor', () => {
    const t = tensors(tensor('blk.0.attn_q.weight', [64, 95]));
    expect(() => checkTensor(t, { name: 'blk.0.attn_q.weight', shape: [64, 96] })).toThrow(ModelFormatError);
    expect(() => checkTensor(t, { name: 'blk.0.attn_q.weight', shape: [64, 96] })).toThrow(/blk\.0\.attn_q\.weight has shape \[64, 95\], expected \[64, 96\]/);
    expect(() => checkTensor(t, { name: 'output_norm.weight', shape: [64] })).toThrow(/output_norm\.weight is missing/);
    expect(checkTensor(tensors(tensor('x', [64, 1])), { name: 'x', shape: [64] }).name).toBe('x'); // trailing 1s
  });
});
