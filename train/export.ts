// Writes the tiny MoE's GGUF with moet's own writer (gguf/writer.ts) from train/train.py's export
// (manifest.json + weights.f32) and the vocabulary (train/data/tokenizer.json). Matrices are stored
// as Q8_0 (or F32 with --type f32), norms and the router as F32, as llama.cpp's converter does.
// The file is written next to its destination under a temporary name and renamed into place only
// when it is complete and reads back, so an interrupted or failed export never replaces it.
//
// usage: node --import tsx train/export.ts --export train/runs/tiny/export --out models/tiny-moe.gguf [--type q8_0|f32]
import { readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { openGGUF } from '../gguf/reader.js';
import { GGMLType, type GGUFMetadataEntry } from '../gguf/types.js';
import { quantize } from '../gguf/quants.js';
import { kv, writeGGUF, type GGUFWriteTensor } from '../gguf/writer.js';
import { readVocab, vocabMetadata, type VocabFile } from './vocab.js';

export interface ExportManifest {
  format: 'moet-tiny-moe-export-1';
  config: {
    n_vocab: number; n_embd: number; n_layer: number; n_head: number; n_head_kv: number; head_dim: number;
    n_expert: number; n_expert_used: number; n_ff_exp: number; context_length: number; rope_base: number;
    rms_eps: number; tied: boolean;
  };
  /** shape in ggml order (ne0 first); offset in bytes into weights.f32 */
  tensors: { name: string; shape: number[]; offset: number; count: number }[];
  vocab?: string;
  train?: Record<string, unknown>;
}

export interface ExportOptions {
  type: 'q8_0' | 'f32';
  name?: string;
  /** extra metadata (general.*) */
  extra?: GGUFMetadataEntry[];
}

/** F32 for vectors and the router (llama.cpp keeps ffn_gate_inp in F32), the chosen type for the rest. */
function tensorType(name: string, shape: number[], type: ExportOptions['type']): GGMLType {
  if (type === 'f32' || shape.length < 2 || name.endsWith('ffn_gate_inp.weight')) return GGMLType.F32;
  return GGMLType.Q8_0;
}

/**
 * Writes the GGUF at `out` (atomically: `out`.partial-PID, read back, renamed).
 * @throws Error for a manifest that is not a tiny-MoE export, tensors outside weights.f32, or a
 *   written file that does not read back with every tensor
 */
export async function exportGGUF(exportDir: string, vocab: VocabFile, out: string, opts: ExportOptions): Promise<void> {
  const manifest = JSON.parse(readFileSync(join(exportDir, 'manifest.json'), 'utf8')) as ExportManifest;
  if (manifest.format !== 'moet-tiny-moe-export-1') throw new Error(`${exportDir}/manifest.json is not a tiny-MoE export (format ${manifest.format})`);
  const c = manifest.config;
  if (vocab.tokens.length !== c.n_vocab) throw new Error(`the vocabulary has ${vocab.tokens.length} tokens, the model ${c.n_vocab}`);
  const weightsPath = join(exportDir, 'weights.f32');
  const weights = readFileSync(weightsPath);
  const a = 'qwen3moe';
  const metadata: GGUFMetadataEntry[] = [
    kv.str('general.architecture', a),
    kv.str('general.name', opts.name ?? 'moet tiny-moe'),
    kv.u32('general.file_type', opts.type === 'q8_0' ? 7 : 0),
    kv.u32('general.quantization_version', 2),
    ...(opts.extra ?? []),
    kv.u32(`${a}.block_count`, c.n_layer),
    kv.u32(`${a}.context_length`, c.context_length),
    kv.u32(`${a}.embedding_length`, c.n_embd),
    kv.u32(`${a}.feed_forward_length`, c.n_ff_exp),
    kv.u32(`${a}.expert_feed_forward_length`, c.n_ff_exp),
    kv.u32(`${a}.attention.head_count`, c.n_head),
    kv.u32(`${a}.attention.head_count_kv`, c.n_head_kv),
    kv.u32(`${a}.attention.key_length`, c.head_dim),
    kv.u32(`${a}.attention.value_length`, c.head_dim),
    kv.f32(`${a}.rope.freq_base`, c.rope_base),
    kv.f32(`${a}.attention.layer_norm_rms_epsilon`, c.rms_eps),
    kv.u32(`${a}.expert_count`, c.n_expert),
    kv.u32(`${a}.expert_used_count`, c.n_expert_used),
    ...vocabMetadata(vocab),
  ];
  const tensors: GGUFWriteTensor[] = manifest.tensors.map((t) => {
    if (t.offset + t.count * 4 > weights.byteLength) throw new Error(`tensor ${t.name} lies past the end of ${weightsPath}`);
    const type = tensorType(t.name, t.shape, opts.type);
    return {
      name: t.name,
      type,
      shape: t.shape,
      data: () => {
        const f = new Float32Array(weights.buffer.slice(weights.byteOffset + t.offset, weights.byteOffset + t.offset + t.count * 4));
        return type === GGMLType.F32 ? new Uint8Array(f.buffer) : quantize(type, f);
      },
    };
  });
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  try {
    await writeGGUF(tmp, metadata, tensors);
    const back = await openGGUF(tmp);
    try {
      if (back.tensors.length !== tensors.length) throw new Error(`the written file reads back with ${back.tensors.length} tensors, not ${tensors.length}`);
    } finally {
      await back.close();
    }
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { export: { type: 'string' }, out: { type: 'string' }, type: { type: 'string' }, vocab: { type: 'string' }, name: { type: 'string' } },
  });
  if (!values.export || !values.out) throw new Error('usage: export.ts --export DIR --out FILE.gguf [--type q8_0|f32] [--vocab tokenizer.json]');
  const type = (values.type ?? 'q8_0') as ExportOptions['type'];
  if (type !== 'q8_0' && type !== 'f32') throw new Error(`--type ${values.type}: expected q8_0 or f32`);
  const manifest = JSON.parse(readFileSync(join(values.export, 'manifest.json'), 'utf8')) as ExportManifest;
  const vocabPath = values.vocab ?? manifest.vocab;
  if (!vocabPath) throw new Error('the export names no vocabulary: pass --vocab');
  const t = manifest.train ?? {};
  const extra = [
    kv.str('general.description', 'A tiny qwen3moe trained from scratch on English prose (Python documentation), Python source, SVG icons and JSON; docs/tiny-moe.md'),
    kv.str('general.license', 'LGPL-3.0-or-later'),
    kv.str('general.source.url', 'moet: train/ (docs/tiny-moe.md)'),
    ...(typeof t.tokens === 'number' ? [kv.u64('moet.train.tokens', t.tokens)] : []),
  ];
  await exportGGUF(values.export, readVocab(vocabPath), values.out, { type, name: values.name ?? 'moet tiny-moe', extra });
  process.stderr.write(`wrote ${values.out} (${(statSync(values.out).size / 1e6).toFixed(2)} MB, ${type})\n`);
}

if (process.argv[1] && basename(process.argv[1]).startsWith('export')) {
  main().catch((e: Error) => {
    process.stderr.write(`export: ${e.message}\n`);
    process.exit(1);
  });
}
