// The llama.cpp reference for golden tests, through node-llama-cpp (CPU build, pinned 3.22.1).
//
// What it records for a GGUF file:
//   - teacher-forced: the RAW next-token logits (full vocabulary) after every token of a fixed
//     sequence. `controlledEvaluate` with `generateNext: { logits: true }` returns the candidates
//     array the addon builds from llama_get_logits_ith before any sampler touches it; with the
//     default options (temperature 0) the chain is only the greedy sampler, which selects a token
//     and does not modify logits. No repeat penalty, top-k/top-p/min-p or bias is applied.
//     (`probabilities: true` is softmax of those same candidates, in f32; we take logits and do the
//     softmax in f64 ourselves.)
//   - greedy: 32 tokens generated one at a time from a prompt, each the argmax of the raw logits
//     (first index on ties, like llama_sampler_greedy), with the top-1/top-2 logit margin per step.
//
// Context settings are explicit: threads (default 2; node-llama-cpp's own default oversubscribes a
// 2-core machine), flashAttention false (the classic path: F16 K/V cache, KQ in f32, softmax in f32;
// node-llama-cpp's "auto" would turn CPU flash attention on), F16 KV cache (llama.cpp's default).
//
// Results are cached on disk next to the fixture (keyed by the GGUF's file name, which carries its
// content hash, the harness version, the node-llama-cpp version and the token sequence), so the
// reference runs once per fixture generation.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';

/** Bump when what this file records changes. */
const HARNESS_VERSION = 2;

export interface LlamaRunOptions {
  /** text tokenized by llama.cpp to form the teacher-forced sequence (ignored when `tokens` is given) */
  text?: string;
  /** explicit token ids for the teacher-forced sequence */
  tokens?: number[];
  /** positions to keep (the sequence is cut to this length); default 128 */
  positions?: number;
  /** greedy prompt length, taken from the start of the teacher-forced sequence; default 8 */
  promptTokens?: number;
  /** tokens to generate greedily; default 32 */
  generate?: number;
  /** CPU threads for llama.cpp; default 2 */
  threads?: number;
  /** where the cache lives; default: next to the GGUF file. null disables caching. */
  cacheDir?: string | null;
  /**
   * Which of llama.cpp's code paths computes the figures (for the self-consistency check,
   * fairness.test.ts). 'batched' (default): the teacher-forced sequence as one batch; greedy: the
   * prompt as one batch, then one token per call (the decode path). 'incremental': the teacher-forced
   * sequence one token per call (batches of 1: the matrix-vector kernels, the KV cache read back at
   * every step); greedy: every step re-evaluates prompt + the tokens so far as one batch on a cleared
   * sequence (the prefill path at every length).
   */
  mode?: 'batched' | 'incremental';
  /** llama.cpp's flash-attention path (default false: the classic path moet's 'llamacpp' numerics reproduce) */
  flashAttention?: boolean;
}

export interface LlamaReference {
  nodeLlamaCppVersion: string;
  nVocab: number;
  /** the teacher-forced sequence */
  tokens: number[];
  /** raw logits after tokens[i], row i of [tokens.length, nVocab] */
  logits: Float32Array;
  /** greedy prompt (a prefix of `tokens`) and the generated ids */
  prompt: number[];
  greedy: number[];
  /** top-1 minus top-2 logit at each greedy step (a small margin is a near-tie) */
  greedyMargins: number[];
  /** raw logits at each greedy step, [generate, nVocab]: row i follows prompt + greedy[0..i-1] */
  greedyLogits: Float32Array;
  /** llama.cpp's tokenization of the reference text (no special-token parsing), before cutting */
  textTokens: number[];
}

export const DEFAULT_TEXT =
  'The quick brown fox jumps over the lazy dog. A mixture of experts sends every token to a few of its ' +
  'experts, and a small router decides which ones; the others stay idle. Numbers such as 2048 and 3.14159 ' +
  'are split into digits. "Hello, world!" said the program, and then it stopped. Attention heads share ' +
  'keys and values in groups: queries are many, keys are few. The cache keeps every position so far, ' +
  "so the next token can look back without recomputing anything. It's a small model, isn't it? We're " +
  'testing it against llama.cpp: same weights, same tokens, and the distributions should agree closely. ' +
  'Rotary embeddings turn pairs of dimensions by an angle that grows with the position; RMS norms keep ' +
  'the scale in check. Once upon a time, in a land of tensors and blocks, a scale met an integer.';

let llamaPromise: Promise<Llama> | null = null;

/** The process-wide llama.cpp instance (CPU only, never builds from source). */
export function cpuLlama(): Promise<Llama> {
  llamaPromise ??= getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  return llamaPromise;
}

export function nodeLlamaCppVersion(): string {
  // the package's exports hide package.json: walk up from its entry point
  let dir = dirname(createRequire(import.meta.url).resolve('node-llama-cpp'));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'node-llama-cpp') return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find node-llama-cpp/package.json');
    dir = up;
  }
}

function argmax(row: Float32Array): { id: number; margin: number } {
  let best = 0;
  let second = -Infinity;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > row[best]!) {
      second = row[best]!;
      best = i;
    } else if (row[i]! > second) {
      second = row[i]!;
    }
  }
  return { id: best, margin: row[best]! - second };
}

function logitsRow(map: Map<Token, number> | undefined, nVocab: number): Float32Array {
  if (!map || map.size !== nVocab) throw new Error(`llama.cpp returned ${map?.size ?? 0} logits, expected ${nVocab}`);
  const row = new Float32Array(nVocab);
  for (const [t, v] of map) row[t] = v;
  return row;
}

async function runReference(modelPath: string, o: Required<Omit<LlamaRunOptions, 'cacheDir' | 'tokens' | 'mode' | 'flashAttention'>> & { tokens?: number[]; mode?: 'incremental'; flashAttention?: true }): Promise<LlamaReference> {
  const llama = await cpuLlama();
  const model: LlamaModel = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const textTokens = model.tokenize(o.text, false) as number[];
    let tokens = o.tokens ?? textTokens;
    if (tokens.length < o.positions) {
      throw new Error(`the reference text gives ${tokens.length} tokens, fewer than the ${o.positions} positions asked for`);
    }
    tokens = tokens.slice(0, o.positions);
    const contextSize = Math.max(tokens.length, o.promptTokens + o.generate) + 8;
    const ctx = await model.createContext({
      contextSize,
      batchSize: contextSize,
      threads: o.threads,
      flashAttention: o.flashAttention === true,
      sequences: 1,
    });
    try {
      // teacher-forced
      const seq = ctx.getSequence();
      const incremental = o.mode === 'incremental';
      let vocab = 0;
      let logits = new Float32Array(0);
      const keep = (i: number, map: Map<Token, number> | undefined) => {
        if (i === 0) {
          vocab = map?.size ?? 0;
          logits = new Float32Array(tokens.length * vocab);
        }
        logits.set(logitsRow(map, vocab), i * vocab);
      };
      if (incremental) {
        for (let i = 0; i < tokens.length; i++) {
          keep(i, (await seq.controlledEvaluate([[tokens[i] as Token, { generateNext: { logits: true } }]]))[0]?.next.logits);
        }
      } else {
        const res = await seq.controlledEvaluate(tokens.map((t) => [t as Token, { generateNext: { logits: true } }]));
        for (let i = 0; i < tokens.length; i++) keep(i, res[i]?.next.logits);
      }
      await seq.clearHistory();

      // greedy, one token per step
      const gseq = seq;
      const prompt = tokens.slice(0, o.promptTokens);
      const greedy: number[] = [];
      const greedyMargins: number[] = [];
      const greedyLogits = new Float32Array(o.generate * vocab);
      let input: number[] = prompt;
      for (let step = 0; step < o.generate; step++) {
        if (incremental) {
          await gseq.clearHistory();
          input = [...prompt, ...greedy];
        }
        const items = input.map((t, i) =>
          i === input.length - 1 ? ([t as Token, { generateNext: { logits: true } }] as const) : (t as Token),
        );
        const out = await gseq.controlledEvaluate(items as never);
        const row = logitsRow(out[input.length - 1]?.next.logits, vocab);
        greedyLogits.set(row, step * vocab);
        const { id, margin } = argmax(row);
        greedy.push(id);
        greedyMargins.push(margin);
        input = [id];
      }
      return { nodeLlamaCppVersion: nodeLlamaCppVersion(), nVocab: vocab, tokens, logits, prompt, greedy, greedyMargins, greedyLogits, textTokens };
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Deletes this model's cached references of the same kind (prefix) with another key once they are an hour old. */
function removeStaleReferences(dir: string, stem: string, prefix: string, key: string): void {
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(`${stem}.${prefix}-`) || f.startsWith(`${stem}.${prefix}-${key}.`)) continue;
    try {
      const p = join(dir, f);
      if (Date.now() - statSync(p).mtimeMs > 3_600_000) unlinkSync(p);
    } catch {
      /* gone already */
    }
  }
}

/**
 * llama.cpp's teacher-forced logits and greedy generation for a GGUF file (cached on disk).
 */
export async function llamaReference(modelPath: string, opts: LlamaRunOptions = {}): Promise<LlamaReference> {
  const o = {
    text: opts.text ?? DEFAULT_TEXT,
    tokens: opts.tokens,
    positions: opts.positions ?? 128,
    promptTokens: opts.promptTokens ?? 8,
    generate: opts.generate ?? 32,
    threads: opts.threads ?? 2,
    // absent for the default, so that the batched references keep their cache key
    ...(opts.mode === 'incremental' ? { mode: 'incremental' as const } : {}),
    ...(opts.flashAttention ? { flashAttention: true as const } : {}),
  };
  const cacheDir = opts.cacheDir === undefined ? dirname(modelPath) : opts.cacheDir;
  const version = nodeLlamaCppVersion();
  const key = createHash('sha256')
    .update(JSON.stringify({ v: HARNESS_VERSION, version, file: basename(modelPath), ...o }))
    .digest('hex')
    .slice(0, 12);
  // the two modes are cached side by side (neither removes the other's files as stale)
  const prefix = (o.mode === 'incremental' ? 'llama1' : 'llama') + (o.flashAttention ? 'fa' : '');
  const stem = cacheDir === null ? null : join(cacheDir, `${basename(modelPath, '.gguf')}.${prefix}-${key}`);
  if (stem && existsSync(`${stem}.json`) && existsSync(`${stem}.f32`)) {
    const meta = JSON.parse(readFileSync(`${stem}.json`, 'utf8')) as Omit<LlamaReference, 'logits' | 'greedyLogits'>;
    const buf = readFileSync(`${stem}.f32`);
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const nTf = meta.tokens.length * meta.nVocab;
    if (all.length === nTf + meta.greedy.length * meta.nVocab) {
      return { ...meta, logits: all.subarray(0, nTf), greedyLogits: all.subarray(nTf) };
    }
  }
  const ref = await runReference(modelPath, o);
  if (stem) {
    const { logits, greedyLogits, ...meta } = ref;
    const tmp = `.${process.pid}.tmp`;
    const fh = openSync(`${stem}.f32${tmp}`, 'w');
    try {
      writeSync(fh, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
      writeSync(fh, new Uint8Array(greedyLogits.buffer, greedyLogits.byteOffset, greedyLogits.byteLength));
    } finally {
      closeSync(fh);
    }
    writeFileSync(`${stem}.json${tmp}`, JSON.stringify(meta));
    renameSync(`${stem}.f32${tmp}`, `${stem}.f32`);
    renameSync(`${stem}.json${tmp}`, `${stem}.json`);
    removeStaleReferences(cacheDir!, basename(modelPath, '.gguf'), prefix, key);
  }
  return ref;
}
