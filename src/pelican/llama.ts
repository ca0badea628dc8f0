// llama.cpp for moet pelican --compare-llama, through node-llama-cpp (a devDependency of moet, so an
// optional one for its users: it is imported when asked for, and its absence is a typed error that
// says how to install it). It is given token ids, not text: moet renders and tokenizes the prompt and
// both engines start from the same ids, so the comparison is of engines, not of chat templates or
// tokenizers. Sampling options map one to one onto llama.cpp's (node-llama-cpp passes them to
// llama.cpp's sampler chain); greedy (temperature 0) is llama.cpp's greedy sampler, an argmax like
// moet's, so the two must agree token for token.
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { MoetError } from '../errors.js';
import type { SamplerOptions } from '../sampler.js';

/** node-llama-cpp cannot be loaded. */
export class LlamaCppUnavailableError extends MoetError {}

/** What one llama.cpp generation produced. */
export interface LlamaGeneration {
  /** generated ids, a final end-of-generation token included */
  ids: number[];
  /** from the call to the first token (prompt evaluation and one sampling) */
  promptMs: number;
  /** from the first token to the last: evaluations of generated tokens and their sampling */
  genMs: number;
  /** generated tokens that were evaluated (all but the last) */
  evalRuns: number;
  stopReason: 'eog' | 'length';
}

/** A loaded llama.cpp model with one context. */
export interface LlamaEngine {
  /** node-llama-cpp's version */
  readonly version: string;
  /** the compute llama.cpp uses ('cpu', or the GPU backend node-llama-cpp chose: 'vulkan', 'cuda', 'metal') */
  readonly gpu: string;
  readonly threads: number;
  /**
   * Generates after `prompt` (token ids) from an empty context, at most `maxTokens`, stopping at a
   * token `isEog` accepts (which is kept in `ids`).
   */
  generate(prompt: readonly number[], opts: SamplerOptions & { maxTokens: number; isEog: (id: number) => boolean }): Promise<LlamaGeneration>;
  dispose(): Promise<void>;
}

/** Options of openLlama. */
export interface LlamaOpenOptions {
  /** tokens the context holds (moet's context length, so both stop at the same place) */
  contextLength: number;
  /** let node-llama-cpp use a GPU (its 'auto'); false: CPU only */
  gpu: boolean;
  /** CPU threads. Default: os.availableParallelism() */
  threads?: number;
}

const INSTALL_HINT =
  'install it next to moet with `npm install --save-dev node-llama-cpp@3.22.1` (moet pins that version; ' +
  'add @node-llama-cpp/linux-x64 or your platform\'s build if you install with --omit=optional)';

type NodeLlamaCpp = typeof import('node-llama-cpp');

/** @throws LlamaCppUnavailableError */
async function importNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  // a variable specifier: moet's build does not need node-llama-cpp's types to be resolvable at runtime
  const spec = 'node-llama-cpp';
  try {
    return (await import(spec)) as NodeLlamaCpp;
  } catch (e) {
    throw new LlamaCppUnavailableError(`--compare-llama needs node-llama-cpp, which cannot be loaded (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): ${INSTALL_HINT}`, { cause: e });
  }
}

function packageVersion(): string {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve('node-llama-cpp'));
    for (;;) {
      const p = join(dir, 'package.json');
      if (existsSync(p)) {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'node-llama-cpp' && pkg.version) return pkg.version;
      }
      const up = dirname(dir);
      if (up === dir) return 'unknown';
      dir = up;
    }
  } catch {
    return 'unknown';
  }
}

/**
 * Loads `modelPath` into llama.cpp (prebuilt binaries only: never builds from source).
 * @throws LlamaCppUnavailableError when node-llama-cpp or a prebuilt llama.cpp for this machine is
 *   missing; node-llama-cpp's errors for a file it cannot load
 */
export async function openLlama(modelPath: string, opts: LlamaOpenOptions): Promise<LlamaEngine> {
  const nlc = await importNodeLlamaCpp();
  let llama;
  try {
    llama = await nlc.getLlama({ gpu: opts.gpu ? 'auto' : false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
  } catch (e) {
    throw new LlamaCppUnavailableError(`node-llama-cpp has no prebuilt llama.cpp for this machine (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): ${INSTALL_HINT}`, { cause: e });
  }
  const threads = opts.threads ?? availableParallelism();
  const model = await llama.loadModel({ modelPath, ...(opts.gpu ? {} : { gpuLayers: 0 }) });
  let ctx;
  try {
    // flash attention off: llama.cpp's classic path, the one moet's default numerics follow
    ctx = await model.createContext({ contextSize: opts.contextLength, threads, flashAttention: false, sequences: 1 });
  } catch (e) {
    await model.dispose();
    throw e;
  }
  const seq = ctx.getSequence();
  return {
    version: packageVersion(),
    gpu: llama.gpu === false ? 'cpu' : String(llama.gpu),
    threads,
    async generate(prompt, o) {
      await seq.clearHistory();
      const punish: number[] = [...prompt];
      const penalties = (o.repeatPenalty ?? 1) !== 1 || (o.frequencyPenalty ?? 0) !== 0 || (o.presencePenalty ?? 0) !== 0;
      const lastN = o.repeatLastN ?? 64;
      const t0 = performance.now();
      let tFirst: number | null = null;
      let tLast = t0;
      const ids: number[] = [];
      let stopReason: LlamaGeneration['stopReason'] = 'length';
      if (o.maxTokens > 0) {
        const gen = seq.evaluate(prompt as never, {
          temperature: Math.max(0, o.temperature ?? 0.8),
          topK: o.topK ?? 40,
          topP: o.topP ?? 0.95,
          minP: o.minP ?? 0.05,
          ...(o.seed !== undefined ? { seed: o.seed } : {}),
          ...(penalties
            ? {
                repeatPenalty: {
                  punishTokens: () => (lastN < 0 ? punish : punish.slice(Math.max(0, punish.length - lastN))) as never,
                  penalty: o.repeatPenalty ?? 1,
                  frequencyPenalty: o.frequencyPenalty ?? 0,
                  presencePenalty: o.presencePenalty ?? 0,
                },
              }
            : {}),
          yieldEogToken: true,
        });
        for await (const t of gen) {
          const id = t as unknown as number;
          tLast = performance.now();
          tFirst ??= tLast;
          ids.push(id);
          punish.push(id);
          if (o.isEog(id)) {
            stopReason = 'eog';
            break;
          }
          if (ids.length >= o.maxTokens) break;
        }
      }
      return { ids, promptMs: (tFirst ?? tLast) - t0, genMs: tFirst === null ? 0 : tLast - tFirst, evalRuns: Math.max(0, ids.length - 1), stopReason };
    },
    async dispose() {
      await ctx.dispose();
      await model.dispose();
    },
  };
}
