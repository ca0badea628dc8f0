// moet inspect FILE [--tensors] [--json]: what a GGUF file holds, without loading its weights.
import { openGGUF, type GGUFHeader } from '../../gguf/reader.js';
import { GGUFValueType, ggmlTypeName, type GGUFMetadataEntry, type GGUFScalar, type GGUFValue } from '../../gguf/types.js';
import { parameterCountOf, quantMixOf, type QuantMixEntry } from '../model.js';
import { COMMON_OPTIONS, formatBytes, formatCount, parse, UsageError, type CliIO } from './util.js';

export const INSPECT_HELP = `usage: moet inspect FILE [--tensors] [--json]

Prints a GGUF file's metadata (long arrays summarized), parameter count, quantization mix and
model/expert configuration. Reads only the header.

options:
  --tensors      also list every tensor: name, shape, type, bytes, offset
  --json         print one JSON object instead of text (tensors included with --tensors)
  -h, --help     this help
  --verbose      print stack traces on errors
`;

/** Arrays longer than this are summarized. */
const ARRAY_HEAD = 8;
const ARRAY_FULL = 16;

function typeName(t: GGUFValueType | undefined): string {
  return t === undefined ? '?' : (GGUFValueType[t] ?? `type${t}`);
}

/** Shortest decimal that reads back as the same float32 (1e-6, not 9.999999974752427e-7). */
function f32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const x = Number(v.toPrecision(p));
    if (Math.fround(x) === v) return x;
  }
  return v;
}

function scalarOf(e: GGUFMetadataEntry, v: GGUFScalar): GGUFScalar {
  const t = Array.isArray(e.value) ? e.arrayType : e.type;
  return t === GGUFValueType.FLOAT32 && typeof v === 'number' ? f32(v) : v;
}

function jsonScalar(v: GGUFScalar): string | number | boolean {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  return v;
}

/** A metadata value for JSON: long arrays become { type, length, head }. */
function jsonValue(e: GGUFMetadataEntry): unknown {
  const v = e.value;
  const one = (x: GGUFScalar) => jsonScalar(scalarOf(e, x));
  if (Array.isArray(v)) {
    if (v.length <= ARRAY_FULL) return v.map(one);
    return { type: 'array', elementType: typeName(e.arrayType), length: v.length, head: v.slice(0, ARRAY_HEAD).map(one) };
  }
  return one(v);
}

function textScalar(v: GGUFScalar): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 200 ? v.slice(0, 200) + '…' : v);
  return String(v);
}

function textValue(e: GGUFMetadataEntry): string {
  const v = e.value;
  if (Array.isArray(v)) {
    const head = v
      .slice(0, v.length <= ARRAY_FULL ? v.length : ARRAY_HEAD)
      .map((x) => textScalar(scalarOf(e, x)))
      .join(', ');
    if (v.length <= ARRAY_FULL) return `[${head}]`;
    return `[${v.length} × ${typeName(e.arrayType)}: ${head}, …]`;
  }
  if (typeof v === 'string' && v.includes('\n')) {
    return `${JSON.stringify(v.slice(0, 120))}${v.length > 120 ? '…' : ''} (${v.length} chars)`;
  }
  return textScalar(scalarOf(e, v));
}

function numberOf(v: GGUFValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v) && v.length > 0 && (typeof v[0] === 'number' || typeof v[0] === 'bigint')) return Number(v[0]);
  return undefined;
}

/** The hyperparameters a reader cares about, read directly from `<arch>.*` keys (any architecture). */
export interface ModelSummary {
  architecture: string | null;
  name: string | null;
  parameterCount: number;
  fileSize: number;
  quantMix: Record<string, QuantMixEntry>;
  layers?: number;
  embeddingLength?: number;
  heads?: number;
  kvHeads?: number;
  headDimK?: number;
  headDimV?: number;
  feedForwardLength?: number;
  contextTrained?: number;
  vocabSize?: number;
  experts: { count: number; used?: number; feedForwardLength?: number; sharedCount?: number } | null;
}

export function summarize(h: GGUFHeader): ModelSummary {
  const arch = h.getValue('general.architecture');
  const a = typeof arch === 'string' ? arch : null;
  const k = (key: string) => (a ? numberOf(h.getValue(`${a}.${key}`)) : undefined);
  const name = h.getValue('general.name');
  const tokens = h.getValue('tokenizer.ggml.tokens');
  const embd = k('embedding_length');
  const heads = k('attention.head_count');
  const expertCount = k('expert_count');
  const s: ModelSummary = {
    architecture: a,
    name: typeof name === 'string' ? name : null,
    parameterCount: parameterCountOf(h.tensors),
    fileSize: h.fileSize,
    quantMix: quantMixOf(h.tensors),
    layers: k('block_count'),
    embeddingLength: embd,
    heads,
    kvHeads: k('attention.head_count_kv') ?? heads,
    headDimK: k('attention.key_length') ?? (embd && heads ? embd / heads : undefined),
    headDimV: k('attention.value_length') ?? (embd && heads ? embd / heads : undefined),
    feedForwardLength: k('feed_forward_length'),
    contextTrained: k('context_length'),
    vocabSize: k('vocab_size') ?? (Array.isArray(tokens) ? tokens.length : undefined),
    experts: expertCount
      ? {
          count: expertCount,
          used: k('expert_used_count'),
          feedForwardLength: k('expert_feed_forward_length'),
          sharedCount: k('expert_shared_count'),
        }
      : null,
  };
  return s;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function padStart(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

/**
 * @throws UsageError for bad arguments; GGUFFormatError / fs errors for a bad file
 */
export async function inspectCommand(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse('inspect', {
    args: argv,
    allowPositionals: true,
    options: { ...COMMON_OPTIONS, tensors: { type: 'boolean' }, json: { type: 'boolean' } },
  });
  if (values.help) {
    io.stdout.write(INSPECT_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('inspect: expected exactly one FILE (see moet inspect --help)');
  const path = positionals[0]!;
  const file = await openGGUF(path);
  try {
    const summary = summarize(file);
    if (values.json) {
      const metadata: Record<string, unknown> = {};
      for (const [key, e] of file.metadata) metadata[key] = jsonValue(e);
      const out: Record<string, unknown> = {
        file: { path, size: file.fileSize, version: file.version, alignment: file.alignment, dataOffset: file.dataOffset, tensorCount: file.tensors.length },
        model: summary,
        metadata,
      };
      if (values.tensors) {
        out.tensors = file.tensors.map((t) => ({ name: t.name, shape: t.shape, type: ggmlTypeName(t.type), bytes: t.byteLength, offset: t.offset }));
      }
      io.stdout.write(JSON.stringify(out, null, 2) + '\n');
      return 0;
    }

    const w = (s = '') => io.stdout.write(s + '\n');
    w(`file: ${path}`);
    w(`  GGUF v${file.version}, ${formatBytes(file.fileSize)} (${file.fileSize} bytes), alignment ${file.alignment}, data at ${file.dataOffset}`);
    w(`  ${file.metadata.size} metadata keys, ${file.tensors.length} tensors`);
    w();
    w('metadata:');
    const keyWidth = Math.min(48, Math.max(0, ...[...file.metadata.keys()].map((x) => x.length)));
    for (const [key, e] of file.metadata) w(`  ${pad(key, keyWidth)} = ${textValue(e)}`);
    w();
    w('model:');
    const row = (label: string, v: string | number | undefined | null) => {
      if (v !== undefined && v !== null) w(`  ${pad(label, 22)} ${v}`);
    };
    row('architecture', summary.architecture ?? '(none)');
    row('name', summary.name);
    row('parameters', `${formatCount(summary.parameterCount)} (${summary.parameterCount})`);
    row('layers', summary.layers);
    row('embedding length', summary.embeddingLength);
    row('attention heads', summary.heads);
    row('kv heads', summary.kvHeads);
    row('head dim (k / v)', summary.headDimK !== undefined ? `${summary.headDimK} / ${summary.headDimV}` : undefined);
    row('feed-forward length', summary.feedForwardLength);
    row('context (trained)', summary.contextTrained);
    row('vocabulary', summary.vocabSize);
    if (summary.experts) {
      const e = summary.experts;
      row('experts', `${e.count} per layer, ${e.used ?? '?'} used per token`);
      row('expert ff length', e.feedForwardLength);
      row('shared experts', e.sharedCount);
    } else {
      row('experts', 'none (dense)');
    }
    w();
    w('quantization mix:');
    const mix = Object.entries(summary.quantMix).sort((x, y) => y[1].bytes - x[1].bytes);
    const totalBytes = mix.reduce((s, [, m]) => s + m.bytes, 0);
    for (const [type, m] of mix) {
      const pct = totalBytes ? ((100 * m.bytes) / totalBytes).toFixed(1) : '0.0';
      w(`  ${pad(type, 8)} ${padStart(String(m.tensors), 6)} tensors  ${padStart(formatBytes(m.bytes), 11)}  ${padStart(pct, 5)}%`);
    }
    if (values.tensors) {
      w();
      w('tensors:');
      const nameWidth = Math.max(4, ...file.tensors.map((t) => t.name.length));
      const shapes = file.tensors.map((t) => `[${t.shape.join(', ')}]`);
      const shapeWidth = Math.max(5, ...shapes.map((x) => x.length));
      w(`  ${pad('name', nameWidth)}  ${pad('shape', shapeWidth)}  ${pad('type', 6)}  ${padStart('bytes', 12)}  ${padStart('offset', 12)}`);
      file.tensors.forEach((t, i) => {
        w(`  ${pad(t.name, nameWidth)}  ${pad(shapes[i]!, shapeWidth)}  ${pad(ggmlTypeName(t.type), 6)}  ${padStart(String(t.byteLength), 12)}  ${padStart(String(t.offset), 12)}`);
      });
    }
    return 0;
  } finally {
    await file.close();
  }
}
