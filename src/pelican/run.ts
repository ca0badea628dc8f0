// moet pelican's runner: every prompt of a set, `runs` times, through the model's chat template on
// moet (and, with compareLlama, on llama.cpp from the same prompt tokens), each answer judged
// (judge.ts) and written with its timings into the output folder, then summary.json and the gallery
// (index.html).
//
// Output folder layout:
//   summary.json                      everything below, for all runs
//   index.html                        the gallery
//   <prompt id>-<run>/prompt.txt      the rendered prompt (chat template applied, prefill included)
//   <prompt id>-<run>/run.json        this run's record (the summary's entry)
//   <prompt id>-<run>/<engine>.raw.txt          the generated text as it came (thinking and control tokens included)
//   <prompt id>-<run>/<engine>.svg              the SVG, when valid (as rendered: with any repairs)
//   <prompt id>-<run>/<engine>.invalid.svg.txt  the extracted SVG, when invalid (not .svg: it may hold a script)
//   <prompt id>-<run>/<engine>.png              the rendering, when valid
// where <engine> is moet or llama.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chatTemplateSource, chatTurn, HarmonySplitter, isHarmonyTemplate, promptOpensThinking, ThinkSplitter, tokenizeChatPrompt, type ChatMessage, type ChatResult } from '../chat.js';
import { openGGUF } from '../../gguf/reader.js';
import { configFromGGUF } from '../config.js';
import { AbortError, ContextOverflowError } from '../errors.js';
import { loadModel, type BackendName, type Model } from '../model.js';
import type { SamplerOptions } from '../sampler.js';
import { galleryHtml } from './gallery.js';
import { judgeAnswer, type Judgement } from './judge.js';
import { openLlama, type LlamaEngine } from './llama.js';
import type { PelicanPrompt } from './prompts.js';
import { RendererUnavailableError } from './render.js';

/** Options of runPelican. */
export interface PelicanOptions {
  /** GGUF file */
  model: string;
  prompts: readonly PelicanPrompt[];
  /** name of the prompt set (recorded) */
  promptSet?: string;
  /** runs per prompt; run r (0-based) samples with seed + r. Default 1 */
  runs?: number;
  /** Default 42 */
  seed?: number;
  /** sampler options (seed excepted); temperature ≤ 0 is greedy */
  sampling?: Omit<SamplerOptions, 'seed' | 'logitBias'>;
  /** tokens to generate per answer, thinking included. Default 8192 */
  maxTokens?: number;
  /** the chat template's enable_thinking; undefined leaves the template's default */
  enableThinking?: boolean;
  backend?: BackendName;
  /** context length. Default: min(the trained context, maxTokens + 1024) */
  contextLength?: number;
  /** output folder (created) */
  outDir: string;
  /** also run llama.cpp (node-llama-cpp) from the same prompt tokens */
  compareLlama?: boolean;
  /** llama.cpp's CPU threads. Default os.availableParallelism() */
  llamaThreads?: number;
  /** progress lines (one per run and engine) */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

/** One engine's result for one run. */
export interface EngineResult {
  engine: 'moet' | 'llama.cpp';
  /** 'ok', 'no svg', 'invalid: <reason>' or 'error: <message>' (the engine failed) */
  status: string;
  note?: string;
  warnings: string[];
  svg?: Judgement['extracted'] & Partial<NonNullable<Judgement['info']>>;
  png?: { width: number; height: number; ink: number };
  /** prompt tokens evaluated, and the time */
  promptTokens: number;
  promptMs: number;
  /** tokens sampled (a final end-of-generation token included) */
  generatedTokens: number;
  /** evaluations of generated tokens and the time of those and of sampling */
  evalRuns: number;
  genMs: number;
  /** prompt tokens per second, generated tokens per second (evalRuns / genMs); null when not measured */
  promptTps: number | null;
  genTps: number | null;
  stopReason: string;
  /** characters of the answer and of the thinking */
  answerChars: number;
  thinkingChars: number;
  /** files written, relative to the output folder */
  files: Record<string, string>;
}

/** Token-by-token comparison of the two engines' outputs. */
export interface Parity {
  /** greedy decoding: the outputs must be identical */
  greedy: boolean;
  identical: boolean;
  moetTokens: number;
  llamaTokens: number;
  /** the first position where they differ (an end of output counts), null when identical */
  firstDiff: null | { index: number; moet: { id: number; text: string } | null; llama: { id: number; text: string } | null };
}

/** One run of one prompt. */
export interface PelicanRun {
  promptId: string;
  prompt: string;
  run: number;
  seed: number;
  /** folder of its files, relative to the output folder */
  dir: string;
  promptTokens: number;
  moet: EngineResult;
  llama?: EngineResult;
  parity?: Parity;
}

/** summary.json */
export interface PelicanSummary {
  version: 1;
  createdAt: string;
  model: { path: string; name: string | null; architecture: string; backend: BackendName; contextLength: number; fileSize: number; parameterCount: number };
  llama?: { nodeLlamaCppVersion: string; gpu: string; threads: number };
  settings: {
    promptSet: string;
    runs: number;
    seed: number;
    maxTokens: number;
    enableThinking: boolean | null;
    sampling: Omit<SamplerOptions, 'seed' | 'logitBias'>;
    greedy: boolean;
  };
  runs: PelicanRun[];
  /** status counts per engine: ok, no svg, invalid, error */
  totals: Record<'moet' | 'llama.cpp', { ok: number; noSvg: number; invalid: number; error: number }>;
  /** with compareLlama: runs compared, identical ones, and whether parity was required (greedy) and held */
  parity?: { greedy: boolean; compared: number; identical: number; pass: boolean };
}

const tps = (n: number, ms: number): number | null => (ms > 0 && n > 0 ? Number(((1000 * n) / ms).toFixed(2)) : null);
const r2 = (x: number): number => Number(x.toFixed(2));

/** Splits a generated text into thinking and answer as Session.chat does. */
function splitAnswer(model: Model, prompt: string, ids: readonly number[]): { content: string; thinking: string } {
  const tok = model.tokenizer;
  const decoder = tok.createStreamDecoder({ keepLeadingSpace: true });
  const harmony = isHarmonyTemplate(chatTemplateSource(tok));
  const splitter = harmony ? new HarmonySplitter(prompt) : new ThinkSplitter(promptOpensThinking(prompt));
  for (const id of ids) {
    if (tok.eogIds.has(id)) break;
    splitter.push(decoder.push(id), id);
  }
  splitter.push(decoder.flush());
  splitter.flush();
  return { content: splitter.content, thinking: splitter.thinking };
}

function tokenText(model: Model, id: number): string {
  return new TextDecoder().decode(model.tokenizer.tokenToBytes(id));
}

/** Compares two generated id lists. */
export function compareTokens(moet: readonly number[], llama: readonly number[], greedy: boolean, text: (id: number) => string): Parity {
  const n = Math.min(moet.length, llama.length);
  let i = 0;
  while (i < n && moet[i] === llama[i]) i++;
  const identical = i === moet.length && i === llama.length;
  const side = (ids: readonly number[]) => (i < ids.length ? { id: ids[i]!, text: text(ids[i]!) } : null);
  return { greedy, identical, moetTokens: moet.length, llamaTokens: llama.length, firstDiff: identical ? null : { index: i, moet: side(moet), llama: side(llama) } };
}

/** Writes an engine's files and builds its result. */
async function record(
  outDir: string,
  dir: string,
  file: 'moet' | 'llama',
  engine: EngineResult['engine'],
  gen: { raw: string; content: string; thinking: string; promptTokens: number; promptMs: number; generatedTokens: number; evalRuns: number; genMs: number; stopReason: string },
): Promise<EngineResult> {
  const truncated = gen.stopReason === 'context' ? ('context' as const) : gen.stopReason === 'length';
  const j = await judgeAnswer(gen.content, { truncated, thinking: gen.thinking });
  const files: Record<string, string> = {};
  const put = async (name: string, data: string | Uint8Array, key: string) => {
    await writeFile(join(outDir, dir, name), data);
    files[key] = `${dir}/${name}`;
  };
  await put(`${file}.raw.txt`, gen.raw, 'raw');
  if (j.svg !== undefined) {
    if (j.status === 'ok') await put(`${file}.svg`, j.svg, 'svg');
    else await put(`${file}.invalid.svg.txt`, j.svg, 'invalidSvg');
  }
  if (j.png) await put(`${file}.png`, j.png.png, 'png');
  return {
    engine,
    status: j.status,
    ...(j.note ? { note: j.note } : {}),
    warnings: j.warnings,
    ...(j.extracted ? { svg: { ...j.extracted, ...(j.info ? { ...j.info, width: r2(j.info.width), height: r2(j.info.height) } : {}) } } : {}),
    ...(j.png ? { png: { width: j.png.width, height: j.png.height, ink: Number(j.png.ink.toFixed(4)) } } : {}),
    promptTokens: gen.promptTokens,
    promptMs: r2(gen.promptMs),
    generatedTokens: gen.generatedTokens,
    evalRuns: gen.evalRuns,
    genMs: r2(gen.genMs),
    promptTps: tps(gen.promptTokens, gen.promptMs),
    genTps: tps(gen.evalRuns, gen.genMs),
    stopReason: gen.stopReason,
    answerChars: gen.content.length,
    thinkingChars: gen.thinking.length,
    files,
  };
}

function errorResult(engine: EngineResult['engine'], e: unknown): EngineResult {
  const msg = e instanceof Error ? `${e.name && e.name !== 'Error' ? e.name + ': ' : ''}${e.message}` : String(e);
  return {
    engine, status: `error: ${msg.replace(/\s*\n\s*/g, ' ')}`, warnings: [], promptTokens: 0, promptMs: 0, generatedTokens: 0, evalRuns: 0, genMs: 0,
    promptTps: null, genTps: null, stopReason: 'error', answerChars: 0, thinkingChars: 0, files: {},
  };
}

/** errors that stop the whole benchmark rather than one run */
const fatal = (e: unknown): boolean => e instanceof AbortError || e instanceof RendererUnavailableError;

/** One progress line for an engine's result. */
export function resultLine(r: EngineResult): string {
  const what = r.status === 'ok' ? `ok (${r.svg?.elements ?? 0} elements, ${r.svg?.paths ?? 0} paths)` : r.status;
  const speed = `${r.promptTps ?? '-'} t/s prompt, ${r.genTps ?? '-'} t/s gen, ${r.generatedTokens} tokens (${r.stopReason})`;
  return `${r.engine}: ${what}${r.note ? ` [${r.note}]` : ''} · ${speed}`;
}

/**
 * Runs the benchmark and writes its output folder (see the file comment).
 * @throws what loadModel throws; LlamaCppUnavailableError (compareLlama without node-llama-cpp);
 *   RendererUnavailableError; AbortError. A run whose engine fails is recorded as 'error: …'.
 */
export async function runPelican(opts: PelicanOptions): Promise<PelicanSummary> {
  const runs = opts.runs ?? 1;
  const seed = opts.seed ?? 42;
  const maxTokens = opts.maxTokens ?? 8192;
  const sampling = { ...(opts.sampling ?? {}) };
  const greedy = (sampling.temperature ?? 0.8) <= 0;
  const log = opts.onProgress ?? (() => {});
  if (!(Number.isInteger(runs) && runs >= 1)) throw new RangeError(`runs must be a positive integer, got ${runs}`);
  if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
  if (opts.prompts.length === 0) throw new RangeError('the prompt set is empty');

  let contextLength = opts.contextLength;
  if (contextLength === undefined) {
    // the trained context, read from the header only
    const f = await openGGUF(opts.model);
    try {
      contextLength = Math.min(configFromGGUF(f.metadata, f.tensorByName).nCtxTrain, maxTokens + 1024);
    } finally {
      await f.close();
    }
  }
  await mkdir(opts.outDir, { recursive: true });
  const model = await loadModel(opts.model, { backend: opts.backend, contextLength, signal: opts.signal });
  let llama: LlamaEngine | null = null;
  try {
    log(`model: ${model.info.name ?? opts.model} (${model.info.architecture}, backend ${model.info.backend}, context ${model.contextLength})`);
    if (opts.compareLlama) {
      llama = await openLlama(opts.model, { contextLength: model.contextLength, gpu: model.info.backend !== 'cpu', threads: opts.llamaThreads });
      log(`llama.cpp: node-llama-cpp ${llama.version} (${llama.gpu}, ${llama.threads} threads)`);
    }
    const results: PelicanRun[] = [];
    for (const p of opts.prompts) {
      for (let r = 0; r < runs; r++) {
        if (opts.signal?.aborted) throw new AbortError('moet pelican was aborted');
        const runSeed = (seed + r) >>> 0;
        const dir = `${p.id}-${r + 1}`;
        await mkdir(join(opts.outDir, dir), { recursive: true });
        const messages: ChatMessage[] = [...(p.system !== undefined ? [{ role: 'system', content: p.system }] : []), { role: 'user', content: p.prompt }];
        const rendered = model.applyChatTemplate(messages, { enableThinking: opts.enableThinking }) + (p.prefill ?? '');
        await writeFile(join(opts.outDir, dir, 'prompt.txt'), rendered);
        const genOpts = { ...sampling, seed: runSeed, maxTokens, signal: opts.signal };

        // moet, through Session.chat (a prefill: the same turn on the prompt with the prefill appended)
        let moet: EngineResult;
        let promptIds: number[] = [];
        let moetIds: number[] = [];
        const session = model.createSession();
        try {
          let turn: AsyncGenerator<unknown, ChatResult, undefined>;
          if (p.prefill === undefined) {
            turn = session.chat(messages, { ...genOpts, enableThinking: opts.enableThinking });
          } else {
            const harmony = isHarmonyTemplate(chatTemplateSource(model.tokenizer));
            turn = chatTurn(session, tokenizeChatPrompt(model.tokenizer, rendered), harmony ? { ...genOpts, harmonyPrompt: rendered } : { ...genOpts, inThinking: promptOpensThinking(rendered) });
          }
          let res: IteratorResult<unknown, ChatResult>;
          do res = await turn.next();
          while (!res.done);
          const result = res.value;
          promptIds = session.tokens.slice(0, result.promptTokens);
          moetIds = session.tokens.slice(result.promptTokens);
          const t = result.timings;
          moet = await record(opts.outDir, dir, 'moet', 'moet', {
            raw: (p.prefill ?? '') + model.detokenize(moetIds, { special: true }),
            content: (p.prefill ?? '') + result.content,
            thinking: result.thinking,
            promptTokens: t.promptTokens, promptMs: t.promptMs, generatedTokens: t.generatedTokens, evalRuns: t.evalRuns, genMs: t.genMs, stopReason: t.stopReason,
          });
        } catch (e) {
          if (fatal(e)) throw e;
          moet = errorResult('moet', e);
        } finally {
          session.dispose();
        }
        log(`${dir} ${resultLine(moet)}`);
        const run: PelicanRun = { promptId: p.id, prompt: p.prompt, run: r + 1, seed: runSeed, dir, promptTokens: promptIds.length, moet };

        if (llama) {
          let lres: EngineResult;
          let parity: Parity | undefined;
          try {
            if (promptIds.length === 0) promptIds = tokenizeChatPrompt(model.tokenizer, rendered);
            if (promptIds.length > model.contextLength) throw new ContextOverflowError(model.contextLength, promptIds.length);
            // moet stops when the next token would not fit the context: the same limit for llama.cpp
            const limit = Math.min(maxTokens, model.contextLength - promptIds.length + 1);
            const g = await llama.generate(promptIds, { ...sampling, seed: runSeed, maxTokens: limit, isEog: (id) => model.tokenizer.eogIds.has(id) });
            const { content, thinking } = splitAnswer(model, rendered, g.ids);
            const stopReason = g.stopReason === 'length' && limit < maxTokens ? 'context' : g.stopReason;
            lres = await record(opts.outDir, dir, 'llama', 'llama.cpp', {
              raw: (p.prefill ?? '') + model.detokenize(g.ids, { special: true }),
              content: (p.prefill ?? '') + content,
              thinking,
              promptTokens: promptIds.length, promptMs: g.promptMs, generatedTokens: g.ids.length, evalRuns: g.evalRuns, genMs: g.genMs, stopReason,
            });
            if (moet.stopReason !== 'error') parity = compareTokens(moetIds, g.ids, greedy, (id) => tokenText(model, id));
          } catch (e) {
            if (fatal(e)) throw e;
            lres = errorResult('llama.cpp', e);
          }
          run.llama = lres;
          if (parity) run.parity = parity;
          log(`${dir} ${resultLine(lres)}`);
          if (run.parity) log(`${dir} ${parityLine(run.parity)}`);
        }
        await writeFile(join(opts.outDir, dir, 'run.json'), JSON.stringify(run, null, 2) + '\n');
        results.push(run);
      }
    }

    const count = (engine: 'moet' | 'llama') => {
      const t = { ok: 0, noSvg: 0, invalid: 0, error: 0 };
      for (const r of results) {
        const e = engine === 'moet' ? r.moet : r.llama;
        if (!e) continue;
        if (e.status === 'ok') t.ok++;
        else if (e.status === 'no svg') t.noSvg++;
        else if (e.status.startsWith('invalid')) t.invalid++;
        else t.error++;
      }
      return t;
    };
    const compared = results.filter((r) => r.parity);
    const identical = compared.filter((r) => r.parity!.identical).length;
    const summary: PelicanSummary = {
      version: 1,
      createdAt: new Date().toISOString(),
      model: {
        path: opts.model, name: model.info.name, architecture: model.info.architecture, backend: model.info.backend,
        contextLength: model.contextLength, fileSize: model.info.fileSize, parameterCount: model.info.parameterCount,
      },
      ...(llama ? { llama: { nodeLlamaCppVersion: llama.version, gpu: llama.gpu, threads: llama.threads } } : {}),
      settings: { promptSet: opts.promptSet ?? 'custom', runs, seed, maxTokens, enableThinking: opts.enableThinking ?? null, sampling, greedy },
      runs: results,
      totals: { moet: count('moet'), 'llama.cpp': count('llama') },
      ...(llama ? { parity: { greedy, compared: compared.length, identical, pass: !greedy || (compared.length === results.length && identical === compared.length) } } : {}),
    };
    await writeFile(join(opts.outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    await writeFile(join(opts.outDir, 'index.html'), galleryHtml(summary));
    return summary;
  } finally {
    await llama?.dispose();
    await model.dispose();
  }
}

/** One line on a run's parity. */
export function parityLine(p: Parity): string {
  if (p.identical) return `parity: identical (${p.moetTokens} tokens)`;
  const d = p.firstDiff!;
  const side = (s: { id: number; text: string } | null) => (s ? `${s.id} ${JSON.stringify(s.text)}` : '(end of output)');
  return `parity: ${p.greedy ? 'DIFFERENT' : 'different (sampled: not expected to match)'} at generated token ${d.index}: moet ${side(d.moet)}, llama.cpp ${side(d.llama)} (${p.moetTokens} vs ${p.llamaTokens} tokens)`;
}
