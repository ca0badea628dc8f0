// Cross-check against an independent reader: @huggingface/gguf must see the same metadata and tensor
// infos in a file written by gguf/writer.ts, and moet must read a header @huggingface/gguf serializes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf, serializeGgufMetadata } from '@huggingface/gguf';
import { afterAll, describe, expect, it } from 'vitest';
import { openGGUF, parseGGUFHeader } from '../../gguf/reader.js';
import { GGMLType, GGUFValueType as V, tensorBytes, type GGUFMetadataEntry } from '../../gguf/types.js';
import { kv, writeGGUF, type GGUFWriteTensor } from '../../gguf/writer.js';

const dir = mkdtempSync(join(tmpdir(), 'moet-gguf-hf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const metadata: GGUFMetadataEntry[] = [
  kv.str('general.architecture', 'qwen3moe'),
  kv.str('general.name', 'Tiny Qwen3 MoE — test'),
  kv.u32('general.alignment', 64),
  kv.u32('qwen3moe.block_count', 2),
  kv.u32('qwen3moe.expert_count', 4),
  kv.f32('qwen3moe.rope.freq_base', 1000000),
  kv.f32('qwen3moe.attention.layer_norm_rms_epsilon', 1e-6),
  kv.bool('tokenizer.ggml.add_bos_token', false),
  kv.i32('x.i32', -7),
  kv.u64('x.u64', 2n ** 60n + 3n),
  { key: 'x.u8', type: V.UINT8, value: 200 },
  { key: 'x.i8', type: V.INT8, value: -100 },
  { key: 'x.u16', type: V.UINT16, value: 60000 },
  { key: 'x.i16', type: V.INT16, value: -30000 },
  { key: 'x.i64', type: V.INT64, value: -(2n ** 62n) },
  { key: 'x.f64', type: V.FLOAT64, value: 1 / 3 },
  kv.strs('tokenizer.ggml.tokens', ['<|endoftext|>', 'Ġthe', 'é', '世界', '🙂', '']),
  kv.i32s('tokenizer.ggml.token_type', [3, 1, 1, 1, 1, 1]),
  kv.f32s('tokenizer.ggml.scores', [0, -1.5, 2.25]),
  { key: 'x.u64s', type: V.ARRAY, arrayType: V.UINT64, value: [1n, 2n ** 63n] },
  { key: 'x.bools', type: V.ARRAY, arrayType: V.BOOL, value: [true, false] },
  { key: 'x.u8s', type: V.ARRAY, arrayType: V.UINT8, value: [1, 2, 255] },
];

const tensors: GGUFWriteTensor[] = (
  [
    ['token_embd.weight', GGMLType.Q4_K, [256, 6]],
    ['blk.0.attn_norm.weight', GGMLType.F32, [256]],
    ['blk.0.ffn_gate_exps.weight', GGMLType.Q4_K, [256, 64, 4]],
    ['blk.0.ffn_down_exps.weight', GGMLType.Q6_K, [256, 64, 4]],
    ['blk.0.attn_q.weight', GGMLType.Q8_0, [256, 128]],
    ['blk.0.attn_k_norm.weight', GGMLType.F16, [32]],
    ['blk.1.x', GGMLType.BF16, [5, 3]],
    ['blk.1.y', GGMLType.Q5_0, [64, 2]],
    ['output.weight', GGMLType.IQ4_XS, [256, 6]],
  ] as [string, GGMLType, number[]][]
).map(([name, type, shape]) => ({ name, type, shape, data: new Uint8Array(tensorBytes(type, shape)) }));

describe('@huggingface/gguf cross-check', () => {
  it('sees the same metadata and tensor infos as moet', async () => {
    const path = join(dir, 'x.gguf');
    await writeGGUF(path, metadata, tensors);
    const ours = await openGGUF(path);
    await ours.close();
    const hf = await gguf(path, { allowLocalFile: true, typedMetadata: true });

    expect(hf.littleEndian).toBe(true);
    expect(hf.metadata.version).toBe(ours.version);
    expect(hf.metadata.tensor_count).toBe(BigInt(ours.tensors.length));
    expect(hf.metadata.kv_count).toBe(BigInt(ours.metadata.size));
    expect(Number(hf.tensorDataOffset)).toBe(ours.dataOffset);

    const hfMeta = hf.metadata as unknown as Record<string, unknown>;
    const hfTyped = hf.typedMetadata as unknown as Record<string, { type: number; subType?: number; value: unknown }>;
    for (const [key, e] of ours.metadata) {
      expect(hfMeta[key], key).toEqual(e.value);
      expect(hfTyped[key]!.type, key).toBe(e.type);
      if (e.arrayType !== undefined) expect(hfTyped[key]!.subType, key).toBe(e.arrayType);
    }
    expect(Object.keys(hfMeta).filter((k) => !['version', 'tensor_count', 'kv_count'].includes(k))).toEqual([
      ...ours.metadata.keys(),
    ]);

    expect(hf.tensorInfos.length).toBe(ours.tensors.length);
    for (const [i, t] of ours.tensors.entries()) {
      const h = hf.tensorInfos[i]!;
      expect(h.name).toBe(t.name);
      expect(h.n_dims).toBe(t.shape.length);
      expect(h.shape.map(Number)).toEqual(t.shape);
      expect(Number(h.dtype)).toBe(t.type);
      expect(Number(h.offset)).toBe(t.relativeOffset);
      expect(Number(hf.tensorDataOffset + h.offset)).toBe(t.offset);
    }
  });

  it('moet reads a header that @huggingface/gguf serializes', async () => {
    const path = join(dir, 'y.gguf');
    await writeGGUF(path, metadata, []);
    const hf = await gguf(path, { allowLocalFile: true, typedMetadata: true });
    // serializeGgufMetadata rejects arrays of UINT8 (it tests `!subType`, and UINT8 is 0): leave it out
    const typed = { ...hf.typedMetadata } as Record<string, unknown>;
    delete typed['x.u8s'];
    const bytes = serializeGgufMetadata(typed as typeof hf.typedMetadata, { alignment: 64 });
    const h = parseGGUFHeader(bytes);
    const ours = await openGGUF(path);
    await ours.close();
    expect([...h.metadata.values()]).toEqual([...ours.metadata.values()].filter((e) => e.key !== 'x.u8s'));
    expect(h.alignment).toBe(64);
    expect(h.tensors).toEqual([]);
  });
});
