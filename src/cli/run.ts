// moet run -m FILE -p PROMPT [...]: streams a completion to stdout and llama.cpp-style timings to stderr.
import { readFile } from 'node:fs/promises';
import type { SequenceStats } from '../backend.js';
import { loadModel, type BackendName, type GenerateOptions, type GenerationTimings } from '../model.js';
import { AbortError } from '../errors.js';
import { progressBar, tick } from './progress.js';
import { backendFrom, eogBan, SAMPLING_HELP, SAMPLING_OPTIONS, samplingFrom } from './sampling.js';
import { COMMON_OPTIONS, MODEL_TEXT_OPTIONS, numberOpt, parse, requireModelAndText, type CliIO } from './util.js';
import type { ExpertCacheOptions, GpuMemoryBudget } from '../gpu/expert-cache.js';
import { expertOptions, formatExpertCache, GPU_MEMORY_HELP, GPU_MEMORY_OPTIONS } from './gpu-memory.js';

export const RUN_HELP = `usage: moet run -m FILE (-p PROMPT | -f PROMPTFILE) [options]

Generates a completion of the prompt (raw text: no chat template is applied; control tokens such
as <|im_start|> written in the prompt are parsed). The prompt and the generated text go to stdout,
timings to stderr. Ctrl-C stops the generation and still prints the timings.

options:
  -m, --model FILE          GGUF file
  -p, --prompt TEXT         prompt
  -f, --file PROMPTFILE     read the prompt from a file
  -c, --ctx-size N          context length (default min(2048, the trained context))
${SAMPLING_HELP}
  --stop TEXT               stop when the text contains TEXT (repeatable)
  --backend cpu|webgpu      compute backend (default: webgpu)
${GPU_MEMORY_HELP}  --no-display-prompt       do not echo the prompt
  -h, --help                this help
  --verbose                 print stack traces on errors, the GPU work per decoded token and the
                            expert cache's hit rates
`;

/** What `moet run` needs, already parsed (also used by `moet demo`). */
export interface RunParams {
  model: string;
  prompt: string;
  backend?: BackendName;
  contextLength?: number;
  displayPrompt: boolean;
  generate: GenerateOptions & { seed: number };
  /** ban end-of-generation tokens (--ignore-eos) */
  ignoreEos?: boolean;
  /** print the backend's work per decoded token (--verbose) */
  verbose?: boolean;
  /** loadModel's gpuMemoryBudget (--gpu-memory) and expert cache options (--expert-policy) */
  gpuMemoryBudget?: GpuMemoryBudget;
  experts?: ExpertCacheOptions;
}

/** One line on the last decode step's GPU work (dispatches, submits, bytes read back), if the backend counts it. */
export function formatStepStats(s: SequenceStats | undefined, nLayer: number): string {
  if (!s || s.last.tokens !== 1) return '';
  const { dispatches, perLayer, submits, bytesRead } = s.last;
  const layers = perLayer.slice(0, nLayer);
  const per = layers.length && layers.every((d) => d === layers[0]) ? `${layers[0]}` : layers.join('/');
  return `${'decode step'.padStart(16)} = ${dispatches} dispatches (${per} per layer × ${nLayer} + ${perLayer[nLayer] ?? 0} outside), ${submits} submit(s), ${bytesRead} bytes read back\n`;
}

function fmtTiming(label: string, ms: number, n: number, unit: 'tokens' | 'runs'): string {
  const perToken = n > 0 ? ms / n : 0;
  const perSecond = ms > 0 ? (1000 * n) / ms : 0;
  return `${label.padStart(16)} = ${ms.toFixed(2).padStart(10)} ms / ${String(n).padStart(5)} ${unit.padEnd(6)} (${perToken
    .toFixed(2)
    .padStart(8)} ms per token, ${perSecond.toFixed(2).padStart(8)} tokens per second)`;
}

/** llama.cpp-style timing lines. */
export function formatTimings(t: GenerationTimings, loadMs?: number): string {
  const lines: string[] = [];
  if (loadMs !== undefined) lines.push(`${'load time'.padStart(16)} = ${loadMs.toFixed(2).padStart(10)} ms`);
  lines.push(fmtTiming('prompt eval time', t.promptMs, t.promptTokens, 'tokens'));
  lines.push(fmtTiming('eval time', t.evalMs, t.evalRuns, 'runs'));
  lines.push(fmtTiming('sampling time', t.sampleMs, t.generatedTokens, 'runs'));
  const total = t.promptMs + t.genMs;
  lines.push(`${'total time'.padStart(16)} = ${total.toFixed(2).padStart(10)} ms / ${String(t.promptTokens + t.generatedTokens).padStart(5)} tokens`);
  lines.push(`${'stop reason'.padStart(16)} = ${t.stopReason}`);
  return lines.join('\n') + '\n';
}

/**
 * Loads the model, streams the completion and prints timings.
 * @throws whatever loadModel or generate throw (AbortError is handled: timings are printed)
 */
export async function runGeneration(p: RunParams, io: CliIO): Promise<number> {
  const t0 = performance.now();
  const bar = progressBar(io.stderr, 'loading model');
  let model: Awaited<ReturnType<typeof loadModel>>;
  try {
    model = await loadModel(p.model, { backend: p.backend, contextLength: p.contextLength, onProgress: (f) => bar.update(f), gpuMemoryBudget: p.gpuMemoryBudget, experts: p.experts });
  } finally {
    bar.done();
  }
  const loadMs = performance.now() - t0;
  const ac = new AbortController();
  const onSigint = () => ac.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  try {
    io.stderr.write(
      `model: ${model.info.name ?? p.model} (${model.info.architecture}, backend ${model.info.backend}, context ${model.contextLength})\n` +
        `sampler seed: ${p.generate.seed}\n`,
    );
    const session = model.createSession();
    if (p.ignoreEos) {
      const prev = p.generate.logitBias;
      const entries: [number, number][] = prev instanceof Map ? [...prev] : Object.entries(prev ?? {}).map(([k, v]) => [Number(k), v as number]);
      p.generate.logitBias = new Map([...entries, ...eogBan(model.tokenizer.eogIds)]);
    }
    if (p.displayPrompt) io.stdout.write(p.prompt);
    let aborted = false;
    try {
      for await (const t of session.generate(p.prompt, { ...p.generate, signal: ac.signal })) {
        io.stdout.write(t.text);
        await tick(); // lets Ctrl-C (and the output) through between tokens on a CPU-bound backend
      }
    } catch (e) {
      if (!(e instanceof AbortError)) throw e;
      aborted = true;
    }
    io.stdout.write('\n');
    if (session.lastTimings) io.stderr.write('\n' + formatTimings(session.lastTimings, loadMs));
    if (p.verbose) io.stderr.write(formatStepStats(session.backendStats, model.config.nLayer) + formatExpertCache(model.expertCacheStats));
    return aborted ? 130 : 0;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await model.dispose();
  }
}

/**
 * @throws UsageError for bad arguments; model loading and generation errors
 */
export async function runCommand(argv: string[], io: CliIO): Promise<number> {
  const { values } = parse('run', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      ...MODEL_TEXT_OPTIONS,
      ...SAMPLING_OPTIONS,
      'ctx-size': { type: 'string', short: 'c' },
      stop: { type: 'string', multiple: true },
      backend: { type: 'string' },
      ...GPU_MEMORY_OPTIONS,
      'no-display-prompt': { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(RUN_HELP);
    return 0;
  }
  const modelPath = requireModelAndText('run', values, 'PROMPT');
  const backend = backendFrom('run', values.backend);
  const prompt = values.prompt ?? (await readFile(values.file!, 'utf8'));
  return runGeneration(
    {
      model: modelPath,
      prompt,
      backend,
      contextLength: numberOpt('run', 'ctx-size', values['ctx-size'], { integer: true, min: 1 }),
      displayPrompt: !values['no-display-prompt'],
      generate: { ...samplingFrom('run', values), stop: values.stop },
      ignoreEos: values['ignore-eos'],
      verbose: values.verbose,
      ...(await expertOptions('run', values)),
    },
    io,
  );
}
