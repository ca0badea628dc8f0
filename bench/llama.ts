// llama.cpp's half of bench/compare.ts: llama-bench's pp/tg tests run through node-llama-cpp on the
// same GGUF, producing BenchResult rows (engine 'llama.cpp') with llama-bench's field names.
//
// Method (node-llama-cpp has no llama-bench; this follows tools/llama-bench closely):
//   - one context per test instance: contextSize = depth + n_prompt + n_gen, batchSize = n_ubatch
//     (node-llama-cpp sets n_batch = n_ubatch = batchSize), flash attention off unless asked, F16
//     KV cache, explicit threads;
//   - pp: `controlledEvaluate` of n_prompt synthetic ids with the next-token output requested only for
//     the last one (what llama_batch_get_one does: logits of the last token), in a sequence truncated
//     back to `depth` before each repetition;
//   - tg: n_gen calls of `controlledEvaluate([[id, { generateNext: { token: true } }]])`, one token
//     each: llama_decode with logits plus a greedy pick over the vocabulary (the pick costs well under
//     1% of a decode here); the ids fed are synthetic, not the picked ones, as llama-bench feeds rand();
//   - one warm-up run per test, `reps` timed repetitions, t/s per sample, mean ± sample std.
//
// GPU builds (gpu 'vulkan' / 'cuda' / ...): the prebuilt comes from node-llama-cpp's platform package
// (@node-llama-cpp/linux-x64-vulkan is a devDependency), `build: 'never'`, all layers offloaded
// (gpuLayers 'max'). llama.cpp's Vulkan backend skips CPU-type Vulkan devices (Mesa lavapipe,
// "llvmpipe") unless GGML_VK_VISIBLE_DEVICES names them, so for 'vulkan' this sets
// GGML_VK_VISIBLE_DEVICES to `vkDevices` (default '0') when it is unset, before the backend loads.
// A GPU run must prove it used the device: llama.cpp's "using device ..." / "offloaded N/M layers"
// log lines are kept (deviceLog), and a run where node-llama-cpp saw no device or offloaded no layer
// (its silent CPU fallback) throws instead of reporting CPU figures as GPU ones.
//
// The CPU and GPU builds ship libraries with the same names (libggml-base.so, ...), so one process
// loads one build: runLlamaBenchInChild() runs a configuration in a child process (this file is its
// entry point) and bench/compare.ts uses it for each --llama-gpu entry.
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaGpuType, type LlamaModel, type Token } from 'node-llama-cpp';
import { mean, stdev, syntheticTokens, testName, type BenchResult } from '../src/bench/harness.js';
import type { KernelTime } from '../src/bench/profile.js';
import { SynthRng } from '../src/synth/rng.js';

export interface LlamaBenchOptions {
  /** node-llama-cpp's gpu choice: false (CPU build), 'auto', 'vulkan', 'cuda', 'metal' */
  gpu: false | 'auto' | LlamaGpuType;
  /** thread counts to try (the best per test kind is kept) */
  threads: number[];
  nPrompt: number[];
  nGen: number[];
  nDepth: number[];
  nUbatch: number[];
  reps: number;
  flashAttention: boolean;
  seed: number;
  /** rows of the logits (the file's vocabulary): synthetic ids are drawn from [0, nVocab) */
  nVocab: number;
  /** gpu 'vulkan': GGML_VK_VISIBLE_DEVICES to set when it is unset (default '0': lavapipe here) */
  vkDevices?: string;
  /**
   * gpu 'vulkan' only: instead of the tests, decode this many tokens (after one warm-up token) with
   * llama.cpp's Vulkan perf logger on (GGML_VK_PERF_LOGGER), for runLlamaVkProfileInChild. The logger
   * synchronizes after every op, so it is never on during the timed tests.
   */
  vkProfileTokens?: number;
  onProgress?: (msg: string) => void;
}

export interface ThreadProbe {
  threads: number;
  ppTs: number;
  tgTs: number;
}

/** llama.cpp log lines that say which device a GPU build used (kept per process, in order) */
const deviceLog: string[] = [];
const DEVICE_LINE = /using device|offloaded \d+\/\d+ layers|ggml_vulkan: (Found|No devices|\d+ =)|model buffer size/;

const llamaPromises = new Map<string, Promise<Llama>>();
function llamaFor(gpu: LlamaBenchOptions['gpu'], vkDevices: string, vkPerf = false): Promise<Llama> {
  const key = String(gpu);
  let p = llamaPromises.get(key);
  if (!p) {
    if (gpu === 'vulkan' && process.env.GGML_VK_VISIBLE_DEVICES === undefined) process.env.GGML_VK_VISIBLE_DEVICES = vkDevices;
    if (vkPerf) process.env.GGML_VK_PERF_LOGGER = '1'; // read when the Vulkan backend initializes
    p = getLlama({
      gpu,
      build: 'never',
      logLevel: LlamaLogLevel.info,
      logger: (level, msg) => {
        const line = msg.trimEnd();
        if (DEVICE_LINE.test(line)) deviceLog.push(line.trim());
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) process.stderr.write(`llama.cpp: ${line}\n`);
      },
    });
    llamaPromises.set(key, p);
  }
  return p;
}

interface Run {
  ctx: LlamaContext;
  pp(tokens: number[]): Promise<void>;
  tg(tokens: number[]): Promise<void>;
  truncate(n: number): Promise<void>;
  dispose(): Promise<void>;
}

async function openRun(model: LlamaModel, contextSize: number, batchSize: number, threads: number, flashAttention: boolean): Promise<Run> {
  const ctx = await model.createContext({ contextSize, batchSize, threads, flashAttention, sequences: 1 });
  const seq = ctx.getSequence();
  return {
    ctx,
    async pp(tokens) {
      const items = tokens.map((t, i) => (i === tokens.length - 1 ? ([t as Token, { generateNext: { token: true } }] as const) : (t as Token)));
      await seq.controlledEvaluate(items as never);
    },
    async tg(tokens) {
      for (const t of tokens) await seq.controlledEvaluate([[t as Token, { generateNext: { token: true } }]]);
    },
    async truncate(n) {
      if (seq.nextTokenIndex > n) await seq.eraseContextTokenRanges([{ start: n, end: seq.nextTokenIndex }]);
    },
    async dispose() {
      await ctx.dispose();
    },
  };
}

async function timeNs(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0);
}

/** Quick pp/tg probes at each thread count (small sizes); returns the measurements. */
export async function probeThreads(model: LlamaModel, o: LlamaBenchOptions, rng: SynthRng): Promise<ThreadProbe[]> {
  const V = o.nVocab;
  const ppN = Math.min(128, Math.max(...o.nPrompt, 1));
  const ub = o.nUbatch[0] ?? 512;
  const out: ThreadProbe[] = [];
  for (const threads of o.threads) {
    const run = await openRun(model, ppN + 16, Math.min(ub, ppN), threads, o.flashAttention);
    try {
      await run.pp(syntheticTokens(ppN, V, rng)); // warm-up
      await run.truncate(0);
      const ppNs = await timeNs(() => run.pp(syntheticTokens(ppN, V, rng)));
      await run.tg(syntheticTokens(1, V, rng));
      const tgNs = await timeNs(() => run.tg(syntheticTokens(8, V, rng)));
      out.push({ threads, ppTs: (1e9 * ppN) / ppNs, tgTs: (1e9 * 8) / tgNs });
      o.onProgress?.(`llama.cpp threads ${threads}: pp${ppN} ${out.at(-1)!.ppTs.toFixed(1)} t/s, tg8 ${out.at(-1)!.tgTs.toFixed(1)} t/s`);
    } finally {
      await run.dispose();
    }
  }
  return out;
}

export interface LlamaBenchOutput {
  results: BenchResult[];
  probes: ThreadProbe[];
  threads: { pp: number; tg: number };
  gpuType: string;
  release: string;
  /** node-llama-cpp's GPU device names (empty for the CPU build) */
  gpuDevices: string[];
  /** layers llama.cpp offloaded (model.gpuLayers) */
  gpuLayers: number;
  /** GGML_VK_VISIBLE_DEVICES as the Vulkan backend saw it (undefined when not set) */
  vkVisibleDevices?: string;
  /** llama.cpp's own log lines about devices, offload and buffers, for this model load */
  deviceLog: string[];
}

/** Runs every test of `o` on `path` with llama.cpp. */
export async function runLlamaBench(path: string, o: LlamaBenchOptions): Promise<LlamaBenchOutput> {
  const llama = await llamaFor(o.gpu, o.vkDevices ?? '0', !!o.vkProfileTokens);
  const logStart = deviceLog.length;
  const tLoad = performance.now();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: o.gpu === false ? 0 : 'max' });
  const loadMs = performance.now() - tLoad;
  const gpuDevices = llama.gpu === false ? [] : await llama.getGpuDeviceNames();
  const modelLog = deviceLog.slice(logStart);
  if (o.gpu !== false && o.gpu !== 'auto' && (llama.gpu === false || gpuDevices.length === 0 || model.gpuLayers === 0)) {
    await model.dispose();
    throw new Error(
      `llama.cpp ${o.gpu}: no GPU device used (node-llama-cpp gpu ${String(llama.gpu)}, devices [${gpuDevices.join(', ')}], ` +
        `${model.gpuLayers} layers offloaded, GGML_VK_VISIBLE_DEVICES=${process.env.GGML_VK_VISIBLE_DEVICES ?? 'unset'}); llama.cpp said: ${modelLog.join(' | ') || 'nothing'}`,
    );
  }
  const rssPeak = process.resourceUsage().maxRSS * 1024;
  const rng = new SynthRng(o.seed);
  const V = o.nVocab;
  const gpuType = llama.gpu === false ? 'CPU' : String(llama.gpu).replace(/^./, (c) => c.toUpperCase());
  const release = llama.llamaCppRelease.release;
  const threads0 = o.threads.at(-1) ?? 1;
  const common = { probes: [], threads: { pp: threads0, tg: threads0 }, gpuType, release, gpuDevices, gpuLayers: model.gpuLayers, vkVisibleDevices: process.env.GGML_VK_VISIBLE_DEVICES, deviceLog: modelLog };
  if (o.vkProfileTokens) {
    try {
      const run = await openRun(model, o.vkProfileTokens + 2, o.nUbatch[0] ?? 512, threads0, o.flashAttention);
      try {
        await run.tg(syntheticTokens(1, V, rng)); // warm-up: shaders compile here
        process.stderr.write(`${VK_PERF_START}\n`);
        await run.tg(syntheticTokens(o.vkProfileTokens, V, rng));
        process.stderr.write(`${VK_PERF_END}\n`);
      } finally {
        await run.dispose();
      }
      return { results: [], ...common };
    } finally {
      await model.dispose();
    }
  }
  try {
    const probes = o.threads.length > 1 ? await probeThreads(model, o, rng) : o.threads.map((t) => ({ threads: t, ppTs: NaN, tgTs: NaN }));
    const best = (k: 'ppTs' | 'tgTs') => (probes.length === 1 ? probes[0]!.threads : probes.reduce((a, b) => (b[k] > a[k] ? b : a)).threads);
    const threads = { pp: best('ppTs'), tg: best('tgTs') };
    o.onProgress?.(`llama.cpp threads: pp ${threads.pp}, tg ${threads.tg}`);
    const results: BenchResult[] = [];
    for (const ub of o.nUbatch) {
      for (const depth of o.nDepth) {
        const tests: [number, number][] = [...o.nPrompt.filter((n) => n > 0).map((n): [number, number] => [n, 0]), ...o.nGen.filter((n) => n > 0).map((n): [number, number] => [0, n])];
        for (const [nPrompt, nGen] of tests) {
          const name = testName(nPrompt, nGen, depth);
          const nThreads = nPrompt > 0 ? threads.pp : threads.tg;
          o.onProgress?.(`llama.cpp: ${name} (threads ${nThreads}, ubatch ${ub}, ${o.reps} reps)`);
          const loadBefore = loadavg()[0]!;
          const run = await openRun(model, depth + nPrompt + nGen + 1, ub, nThreads, o.flashAttention);
          const samplesNs: number[] = [];
          const testTime = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
          try {
            // warm-up as llama-bench: a prompt of n_prompt, or one generated token, at position 0
            if (nPrompt > 0) await run.pp(syntheticTokens(nPrompt, V, rng));
            if (nGen > 0) await run.tg(syntheticTokens(1, V, rng));
            await run.truncate(0);
            if (depth > 0) {
              const d = syntheticTokens(depth, V, rng);
              for (let i = 0; i < d.length; i += ub) await run.pp(d.slice(i, i + ub));
            }
            for (let r = 0; r < o.reps; r++) {
              await run.truncate(depth);
              const tokens = syntheticTokens(nPrompt + nGen, V, rng);
              samplesNs.push(await timeNs(async () => {
                if (nPrompt > 0) await run.pp(tokens);
                if (nGen > 0) await run.tg(tokens);
              }));
            }
          } finally {
            await run.dispose();
          }
          const ts = samplesNs.map((ns) => (1e9 * (nPrompt + nGen)) / ns);
          results.push({
            build_commit: release,
            build_number: 0,
            cpu_info: cpus()[0]?.model.trim() ?? 'unknown',
            gpu_info: gpuDevices.join(', '),
            backends: gpuType,
            model_filename: path,
            model_type: model.typeDescription,
            model_size: model.size,
            model_n_params: 0, // filled in by the caller from the GGUF header
            n_batch: ub,
            n_ubatch: ub,
            n_threads: nThreads,
            type_k: 'f16',
            type_v: 'f16',
            n_gpu_layers: model.gpuLayers,
            flash_attn: o.flashAttention,
            use_mmap: true,
            embeddings: false,
            n_prompt: nPrompt,
            n_gen: nGen,
            n_depth: depth,
            test_time: testTime,
            avg_ns: Math.round(mean(samplesNs)),
            stddev_ns: Math.round(stdev(samplesNs)),
            avg_ts: mean(ts),
            stddev_ts: stdev(ts),
            samples_ns: samplesNs,
            samples_ts: ts,
            engine: 'llama.cpp',
            test: name,
            dispatches_per_token: null,
            dispatches_per_layer: null,
            weight_bytes_per_token: null,
            bandwidth_gbs: null,
            load_ms: loadMs,
            load_gbs: model.size / loadMs / 1e6,
            load_rss_peak_bytes: rssPeak,
            device_weight_bytes: null,
            load_avg: [loadBefore, loadavg()[0]!],
          });
        }
      }
    }
    return { results, probes, threads, gpuType, release, gpuDevices, gpuLayers: model.gpuLayers, vkVisibleDevices: process.env.GGML_VK_VISIBLE_DEVICES, deviceLog: modelLog };
  } finally {
    await model.dispose();
  }
}

/**
 * runLlamaBench in a child process (this file run by the same Node with the same loader flags, tsx):
 * one llama.cpp build per process. The options go in as JSON (argv), progress comes back on stderr
 * (passed through), the LlamaBenchOutput as JSON in the last line of stdout.
 */
const LLAMA_CHILD = '--llama-child';

export function runLlamaBenchInChild(path: string, o: LlamaBenchOptions, onStderrLine?: (line: string) => void): Promise<LlamaBenchOutput> {
  const { onProgress: _, ...opts } = o;
  // MOET_LLAMA_CHILD: this file bundled on its own (bench/gpu-box.sh), when the caller is a bundle too
  const script = process.env.MOET_LLAMA_CHILD ?? fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, script, LLAMA_CHILD, path, JSON.stringify(opts)], {
    stdio: ['ignore', 'pipe', onStderrLine ? 'pipe' : 'inherit'],
  });
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  if (onStderrLine) {
    let rest = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop()!;
      for (const l of lines) onStderrLine(l);
    });
    child.stderr!.on('end', () => rest && onStderrLine(rest));
  }
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`llama.cpp (${String(o.gpu)}) child exited with ${code}`));
      try {
        resolve(JSON.parse(stdout.trimEnd().split('\n').at(-1)!) as LlamaBenchOutput);
      } catch (e) {
        reject(new Error(`llama.cpp (${String(o.gpu)}) child: unreadable output: ${String(e)}`));
      }
    });
  });
}

/**
 * bytes of model weights llama.cpp put in device buffers, from its "<device> model buffer size = N MiB"
 * lines (not the CPU ones: with mmap its CPU_Mapped buffer is the whole file, whatever was offloaded)
 */
export function llamaDeviceWeightBytes(deviceLog: string[]): number {
  let bytes = 0;
  for (const line of deviceLog) {
    const m = /\b(\w+)\s+model buffer size\s*=\s*([\d.]+)\s*MiB/.exec(line);
    if (m && !m[1]!.startsWith('CPU')) bytes += Number(m[2]) * 2 ** 20;
  }
  return bytes;
}

const VK_PERF_START = '@@moet: llama.cpp Vulkan perf log start@@';
const VK_PERF_END = '@@moet: llama.cpp Vulkan perf log end@@';

/** llama.cpp's Vulkan GPU time per op over `tokens` decoded tokens (GGML_VK_PERF_LOGGER) */
export interface LlamaVkProfile {
  tokens: number;
  ops: KernelTime[];
}

/**
 * Decodes `tokens` tokens with llama.cpp's Vulkan build in a child process with its perf logger on
 * and sums the logger's per-op GPU times over them. Other stderr lines pass through.
 */
export async function runLlamaVkProfileInChild(path: string, o: LlamaBenchOptions, tokens: number): Promise<LlamaVkProfile> {
  const perf: string[] = [];
  let inside = false;
  await runLlamaBenchInChild(path, { ...o, vkProfileTokens: tokens }, (line) => {
    if (line === VK_PERF_START) inside = true;
    else if (line === VK_PERF_END) inside = false;
    else if (inside) perf.push(line);
    else if (!/^(-+|Vulkan Timings:|Total time: .*|.*: \d+ x [\d.]+ [mun]?s = .*)$/.test(line)) process.stderr.write(line + '\n');
  });
  return { tokens, ops: parseVkPerfLog(perf) };
}

/**
 * Sums llama.cpp's Vulkan perf-logger lines ("MUL_MAT_VEC q4_K m=4096 n=1 k=2048: 3 x 5301.47 us =
 * 15904.4 us (3.16 GFLOPS/s)", one block per graph) by op, largest total first.
 */
export function parseVkPerfLog(lines: readonly string[]): KernelTime[] {
  const unitNs: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 };
  const ops = new Map<string, KernelTime>();
  for (const line of lines) {
    const m = /^(.+): (\d+) x ([\d.]+) ([mun]?s) = ([\d.]+) ([mun]?s)/.exec(line.trim());
    if (!m) continue;
    const kernel = m[1]!.replace(/\s+/g, ' ');
    const op = ops.get(kernel) ?? { kernel, pipeline: 'ggml-vulkan', count: 0, totalNs: 0 };
    op.count += Number(m[2]);
    op.totalNs += Number(m[5]) * unitNs[m[6]!]!;
    ops.set(kernel, op);
  }
  return [...ops.values()].sort((a, b) => b.totalNs - a.totalNs);
}

// child entry: tsx bench/llama.ts --llama-child FILE OPTIONS_JSON (the marker, not the script path,
// says it: bundled into compare.mjs this module's url is compare.mjs's)
if (process.argv[2] === LLAMA_CHILD) {
  const [path, json] = process.argv.slice(3);
  const o = JSON.parse(json!) as LlamaBenchOptions;
  o.onProgress = (m) => process.stderr.write(`compare: ${m}\n`);
  const out = await runLlamaBench(path!, o);
  process.stdout.write(JSON.stringify(out) + '\n');
  // node-llama-cpp keeps native handles alive; the parent waits for exit
  process.exit(0);
}
