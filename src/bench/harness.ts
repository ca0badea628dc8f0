// The llama-bench-compatible benchmark behind `moet bench` (and moet's half of bench/compare.ts).
//
// Same tests as llama-bench (tools/llama-bench/llama-bench.cpp), measured on the Backend contract
// directly — no tokenizer, no sampler:
//   ppN  @ dD: N synthetic token ids evaluated in one call (the backend splits them into ubatches;
//              the CPU backend gets ubatch-sized calls) after D tokens of context;
//   tgN  @ dD: N single-token evals after D tokens of context, each returning the full logits
//              (as llama_decode produces them), the ids synthetic, never sampled.
// Per test instance: a fresh sequence (KV cache of D + N positions), one warm-up run (pp: a prompt of
// N at position 0; tg: one token), then `reps` timed repetitions. The D context tokens are evaluated
// once, untimed, and each repetition truncates back to D. A sample's t/s is N / its time; the table
// shows the mean ± the sample standard deviation of those, like llama-bench.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { basename, dirname } from 'node:path';
import { openGGUF, type GGUFFile } from '../../gguf/reader.js';
import type { Backend, BackendSequence, SequenceStats } from '../backend.js';
import { configFromGGUF, type ModelConfig } from '../config.js';
import { DEFAULT_BACKEND, type BackendName } from '../model.js';
import { SynthRng } from '../synth/rng.js';
import { GpuProfiler, type KernelTime } from './profile.js';
import { weightBytesPerToken, type WeightBytes } from './weights.js';
import type { ExpertCache, ExpertCacheOptions, ExpertCacheStats, GpuMemoryBudget } from '../gpu/expert-cache.js';

/** What to run. */
export interface BenchParams {
  models: string[];
  /** prompt lengths (llama-bench -p); 0 entries are skipped */
  nPrompt: number[];
  /** generation lengths (-n) */
  nGen: number[];
  /** context depths (-d) */
  nDepth: number[];
  /** tokens per prefill batch (-ub) */
  nUbatch: number[];
  /** repetitions (-r) */
  reps: number;
  backend?: BackendName;
  /** one untimed run first (default true, as llama-bench) */
  warmup?: boolean;
  /** seed of the synthetic token ids */
  seed?: number;
  /** WebGPU only: one extra, untimed-for-t/s repetition per test with per-kernel timestamps */
  profile?: boolean;
  /**
   * WebGPU only: GPU memory budgets (loadModel's gpuMemoryBudget; each loads the model again and
   * runs every test); undefined entries: no budget
   */
  gpuMemory?: (GpuMemoryBudget | undefined)[];
  /** the expert cache's options with a budget */
  experts?: ExpertCacheOptions;
  /** each finished test */
  onResult?: (r: BenchResult) => void;
  /** progress lines (model loading, test start) */
  onProgress?: (msg: string) => void;
}

/** One test's result, with llama-bench's JSON field names plus moet's own (prefixed or documented). */
export interface BenchResult {
  build_commit: string;
  build_number: number;
  cpu_info: string;
  gpu_info: string;
  backends: string;
  model_filename: string;
  model_type: string;
  model_size: number;
  model_n_params: number;
  n_batch: number;
  n_ubatch: number;
  n_threads: number | null;
  type_k: string;
  type_v: string;
  n_gpu_layers: number;
  flash_attn: boolean;
  use_mmap: boolean;
  embeddings: boolean;
  n_prompt: number;
  n_gen: number;
  n_depth: number;
  test_time: string;
  avg_ns: number;
  stddev_ns: number;
  avg_ts: number;
  stddev_ts: number;
  samples_ns: number[];
  samples_ts: number[];
  // --- moet's own ---
  /** 'moet' (bench/compare.ts also writes 'llama.cpp' rows) */
  engine: string;
  /** the test as llama-bench names it: pp512, tg128, pp512 @ d4096 */
  test: string;
  /** compute dispatches per evaluated token (null: the backend does not count) */
  dispatches_per_token: number | null;
  /** per layer, per decoded token: the mean over layers (tg tests) */
  dispatches_per_layer: number | null;
  /** weights read per decoded token, only the used experts counted (tg tests) */
  weight_bytes_per_token: number | null;
  /** weight_bytes_per_token × avg_ts, in GB/s (1e9 bytes) */
  bandwidth_gbs: number | null;
  /** model load: wall time, weight bytes / time, process RSS peak after loading */
  load_ms: number;
  load_gbs: number;
  load_rss_peak_bytes: number;
  /** bytes the backend keeps on the device for weights (WebGPU), else null */
  device_weight_bytes: number | null;
  /** 1-minute load average before and after the test (the machine's other work) */
  load_avg: [number, number];
  /** per-kernel GPU time of one extra repetition (with --profile) */
  profile?: KernelTime[];
  /** the gpuMemoryBudget asked for (bytes, 'auto', 'P%' of the experts), null without one */
  gpu_memory?: string | null;
  /** the expert cache over the timed repetitions (experts in host memory), null when every expert is on the GPU */
  expert_cache?: BenchExpertCache | null;
}

/** `moet bench`'s expert cache figures (timed repetitions only). */
export interface BenchExpertCache {
  /** GPU slots per MoE layer, experts per layer, slots / experts */
  slots: number;
  n_expert: number;
  resident_fraction: number;
  policy: string;
  /** distinct experts per batch and layer found in a slot / needed */
  hit_rate: number;
  hit_rate_per_layer: number[];
  /** bytes of experts written into slots per evaluated token */
  upload_bytes_per_token: number;
  /** router id readbacks per evaluated token (one per MoE layer and batch) */
  readbacks_per_token: number;
  /** host ms per evaluated token waiting for the ids / reading experts from the file / in writeBuffer */
  wait_ms_per_token: number;
  read_ms_per_token: number;
  write_ms_per_token: number;
  /** GPU bytes of the slots and of the other weights */
  slot_bytes: number;
  resident_bytes: number;
}

function expertCacheFigures(s: ExpertCacheStats): BenchExpertCache {
  const t = Math.max(1, s.tokens);
  return {
    slots: s.slots,
    n_expert: s.nExpert,
    resident_fraction: s.residentFraction,
    policy: s.policy,
    hit_rate: s.hitRate,
    hit_rate_per_layer: s.perLayer.map((l) => l.hitRate),
    upload_bytes_per_token: s.uploadBytes / t,
    readbacks_per_token: s.readbacks / t,
    wait_ms_per_token: s.waitMs / t,
    read_ms_per_token: s.readMs / t,
    write_ms_per_token: s.writeMs / t,
    slot_bytes: s.slotBytes,
    resident_bytes: s.residentBytes,
  };
}

/** A budget as the JSON shows it. */
function budgetLabel(b: GpuMemoryBudget | undefined): string | null {
  if (b === undefined) return null;
  if (typeof b === 'object') return `${+(100 * b.expertFraction).toFixed(4)}%`;
  return String(b);
}

/** llama.cpp's ftype names (llama_model_ftype_name) for the file types moet meets. */
const FTYPE_NAMES: Record<number, string> = {
  0: 'all F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K - Medium',
  11: 'Q3_K - Small', 12: 'Q3_K - Medium', 13: 'Q3_K - Large', 14: 'Q4_K - Small', 15: 'Q4_K - Medium',
  16: 'Q5_K - Small', 17: 'Q5_K - Medium', 18: 'Q6_K', 32: 'BF16', 38: 'MXFP4 MoE',
};

/** llama.cpp's size names of a llama file by block count (src/models/llama.cpp; 32 layers: see modelType). */
const LLAMA_SIZES: Record<number, string> = { 16: '1B', 22: '1B', 26: '3B', 28: '3B', 30: '256M', 36: '8B', 40: '13B', 48: '34B', 60: '30B' };

/** The size llama.cpp's load_hparams names for a llama (dense or Mixtral: exactly 8 experts) file. */
function llamaSize(c: ModelConfig): string | undefined {
  if (c.nExpert === 8) return c.nLayer === 32 ? '8x7B' : c.nLayer === 56 ? '8x22B' : undefined;
  if (c.nLayer === 32) return c.nVocab === 49152 ? '3B' : c.nVocab < 40000 ? '7B' : '8B';
  if (c.nLayer === 80) return c.nHead === c.nHeadKv ? '65B' : '70B';
  return LLAMA_SIZES[c.nLayer];
}

/** llama_model_desc's "arch size ftype", e.g. "qwen3moe 30B.A3B Q4_K - Medium" ("?B" when llama.cpp has no name for the size). */
export function modelType(file: GGUFFile, config: ModelConfig): string {
  let size = '?B';
  if (config.arch === 'qwen3moe') size = config.nLayer === 48 ? '30B.A3B' : config.nLayer === 94 ? '235B.A22B' : '?B';
  if (config.arch === 'qwen35moe' && config.nLayer === 40) size = '35B.A3B';
  if (config.arch === 'llama') size = llamaSize(config) ?? '?B';
  if (config.arch === 'olmoe' && config.nLayer === 16) size = 'A1.7B';
  if (config.arch === 'qwen2moe') size = config.nLayer === 24 ? 'A2.7B' : config.nLayer === 28 ? '57B.A14B' : '?B';
  // llama.cpp's deepseek2 / gpt-oss type names (by layer count)
  if (config.arch === 'deepseek2') size = ({ 27: '16B', 47: '30B.A3B', 60: '236B', 61: '671B' } as Record<number, string>)[config.nLayer] ?? '?B';
  if (config.arch === 'gpt-oss') size = config.nLayer === 24 ? '20B' : config.nLayer === 36 ? '120B' : '?B';
  const ft = file.getValue('general.file_type');
  const ftype = typeof ft === 'number' ? (FTYPE_NAMES[ft] ?? `ftype ${ft}`) : 'all F32 (guessed)';
  return `${config.arch} ${size} ${ftype}`;
}

/** The test name llama-bench prints. */
export function testName(nPrompt: number, nGen: number, nDepth: number): string {
  const base = nPrompt > 0 && nGen === 0 ? `pp${nPrompt}` : nGen > 0 && nPrompt === 0 ? `tg${nGen}` : `pp${nPrompt}+tg${nGen}`;
  return nDepth > 0 ? `${base} @ d${nDepth}` : base;
}

export function mean(v: readonly number[]): number {
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
}

/** llama-bench's stdev: the sample standard deviation (n − 1), 0 for fewer than two values. */
export function stdev(v: readonly number[]): number {
  if (v.length <= 1) return 0;
  const m = mean(v);
  const sq = v.reduce((a, b) => a + b * b, 0);
  return Math.sqrt(Math.max(0, sq / (v.length - 1) - (m * m * v.length) / (v.length - 1)));
}

let buildCache: { commit: string; number: number } | undefined;
/** The git commit of the moet checkout (short hash, number of commits), env MOET_BUILD, or 'unknown'. */
export function buildInfo(): { commit: string; number: number } {
  if (buildCache) return buildCache;
  // a bundle without git (bench/gpu-box.sh) carries it in the environment: "hash (count)"
  const env = /^(\S+) \((\d+)\)$/.exec(process.env.MOET_BUILD ?? '');
  if (env) return (buildCache = { commit: env[1]!, number: Number(env[2]) });
  const cwd = dirname(new URL(import.meta.url).pathname);
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const number = Number(execFileSync('git', ['rev-list', '--count', 'HEAD'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
    buildCache = { commit, number };
  } catch {
    buildCache = { commit: 'unknown', number: 0 };
  }
  return buildCache;
}

/** Deterministic token ids in [0, nVocab). */
export function syntheticTokens(n: number, nVocab: number, rng: SynthRng): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = rng.u32() % nVocab;
  return out;
}

interface Loaded {
  file: GGUFFile;
  config: ModelConfig;
  backend: Backend;
  loadMs: number;
  rssPeak: number;
  weightFileBytes: number;
  gpu: { device: GPUDevice; description: string; weightBytes: number; expertCache: ExpertCache | null } | null;
}

/** Opens a GGUF and loads it into a backend directly (no tokenizer: the benchmark needs none). */
export async function loadBackend(path: string, name: BackendName, expert: { gpuMemoryBudget?: GpuMemoryBudget; experts?: ExpertCacheOptions } = {}): Promise<Loaded> {
  const t0 = performance.now();
  const file = await openGGUF(path);
  try {
    const config = configFromGGUF(file.metadata, file.tensorByName);
    const weightFileBytes = file.tensors.reduce((s, t) => s + t.byteLength, 0);
    let backend: Backend;
    let gpu: Loaded['gpu'] = null;
    if (name === 'webgpu') {
      const { WebGPUBackend } = await import('../gpu/backend.js');
      // pipelines compile in each test's warm-up run, so that load time measures the weights only
      const be = await WebGPUBackend.load(file, config, { warmup: false, ...expert });
      backend = be;
      const a = be.ctx.adapter;
      gpu = { device: be.ctx.device, description: `${a.vendor} ${a.device || a.description}`.trim(), weightBytes: be.weightBytes, expertCache: be.expertCache };
    } else {
      const { loadCpuBackend } = await import('../cpu/backend.js');
      backend = await loadCpuBackend(file, config);
    }
    const loadMs = performance.now() - t0;
    return { file, config, backend, loadMs, rssPeak: process.resourceUsage().maxRSS * 1024, weightFileBytes, gpu };
  } catch (e) {
    await file.close().catch(() => {});
    throw e;
  }
}

function statsOf(seq: BackendSequence): SequenceStats | undefined {
  return (seq as { stats?: SequenceStats }).stats;
}

/** Runs every test of `p` and returns the results (also handed to onResult as they finish). */
export async function runBench(p: BenchParams): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const backendName = p.backend ?? DEFAULT_BACKEND;
  const build = buildInfo();
  const rng = new SynthRng(p.seed ?? 1234);
  const budgets = p.gpuMemory?.length ? p.gpuMemory : [undefined];
  if (backendName !== 'webgpu' && budgets.some((b) => b !== undefined)) throw new RangeError('a GPU memory budget needs the webgpu backend');
  for (const modelPath of p.models) for (const gpuMemory of budgets) {
    p.onProgress?.(`loading ${modelPath} (${backendName}${gpuMemory !== undefined ? `, gpu memory ${budgetLabel(gpuMemory)}` : ''})`);
    const m = await loadBackend(modelPath, backendName, { gpuMemoryBudget: gpuMemory, experts: p.experts });
    try {
      const { config, backend, file } = m;
      const wb: WeightBytes = weightBytesPerToken(file.tensors, config);
      const modelSize = m.weightFileBytes;
      const nParams = file.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
      p.onProgress?.(`loaded in ${(m.loadMs / 1000).toFixed(2)} s (${(modelSize / m.loadMs / 1e6).toFixed(2)} GB/s), RSS peak ${(m.rssPeak / 2 ** 30).toFixed(2)} GiB`);
      const common = {
        build_commit: build.commit,
        build_number: build.number,
        cpu_info: cpus()[0]?.model.trim() ?? 'unknown',
        gpu_info: m.gpu?.description ?? '',
        backends: backendName === 'webgpu' ? 'WebGPU' : 'CPU',
        model_filename: modelPath,
        model_type: modelType(file, config),
        model_size: modelSize,
        model_n_params: nParams,
        type_k: 'f16',
        type_v: 'f16',
        n_gpu_layers: backendName === 'webgpu' ? config.nLayer + 1 : 0,
        flash_attn: false,
        use_mmap: false,
        embeddings: false,
        engine: 'moet',
        load_ms: m.loadMs,
        load_gbs: modelSize / m.loadMs / 1e6,
        load_rss_peak_bytes: m.rssPeak,
        device_weight_bytes: m.gpu?.weightBytes ?? null,
        gpu_memory: budgetLabel(gpuMemory),
      };
      for (const ub of p.nUbatch) {
        for (const depth of p.nDepth) {
          const tests: [number, number][] = [...p.nPrompt.filter((n) => n > 0).map((n): [number, number] => [n, 0]), ...p.nGen.filter((n) => n > 0).map((n): [number, number] => [0, n])];
          for (const [nPrompt, nGen] of tests) {
            const name = testName(nPrompt, nGen, depth);
            p.onProgress?.(`${basename(modelPath)}: ${name} (ubatch ${ub}, ${p.reps} reps)`);
            const r = await runTest(backend, backendName, config, { nPrompt, nGen, depth, ub, reps: p.reps, warmup: p.warmup ?? true, rng, profile: !!p.profile && !!m.gpu, device: m.gpu?.device, cache: m.gpu?.expertCache ?? null });
            const ts = r.samplesNs.map((ns) => (1e9 * (nPrompt + nGen)) / ns);
            const avgTs = mean(ts);
            const result: BenchResult = {
              ...common,
              n_batch: Math.max(ub, 2048),
              n_ubatch: ub,
              n_threads: null,
              n_prompt: nPrompt,
              n_gen: nGen,
              n_depth: depth,
              test_time: r.testTime,
              avg_ns: Math.round(mean(r.samplesNs)),
              stddev_ns: Math.round(stdev(r.samplesNs)),
              avg_ts: avgTs,
              stddev_ts: stdev(ts),
              samples_ns: r.samplesNs,
              samples_ts: ts,
              test: name,
              dispatches_per_token: r.dispatchesPerToken,
              dispatches_per_layer: nGen > 0 ? r.dispatchesPerLayer : null,
              weight_bytes_per_token: nGen > 0 ? wb.total : null,
              bandwidth_gbs: nGen > 0 ? (wb.total * avgTs) / 1e9 : null,
              load_avg: r.loadAvg,
              ...(r.profile ? { profile: r.profile } : {}),
              expert_cache: r.expertCache,
            };
            results.push(result);
            p.onResult?.(result);
          }
        }
      }
    } finally {
      await m.backend.dispose();
      await m.file.close();
    }
  }
  return results;
}

interface TestSpec {
  nPrompt: number;
  nGen: number;
  depth: number;
  ub: number;
  reps: number;
  warmup: boolean;
  rng: SynthRng;
  profile: boolean;
  device?: GPUDevice;
  cache: ExpertCache | null;
}

interface TestRun {
  samplesNs: number[];
  testTime: string;
  dispatchesPerToken: number | null;
  dispatchesPerLayer: number | null;
  loadAvg: [number, number];
  profile?: KernelTime[];
  expertCache: BenchExpertCache | null;
}

async function runTest(backend: Backend, backendName: BackendName, config: ModelConfig, t: TestSpec): Promise<TestRun> {
  const loadBefore = loadavg()[0]!;
  const nCtx = t.depth + t.nPrompt + t.nGen;
  const seq = (backend.createSequence as (n: number, o?: { ubatch?: number }) => BackendSequence).call(backend, nCtx, { ubatch: t.ub });
  const V = config.nVocab;
  // the CPU backend has no ubatch option: give it ubatch-sized calls
  const prompt = async (tokens: number[]) => {
    if (backendName === 'webgpu') {
      await seq.eval(tokens);
      return;
    }
    for (let i = 0; i < tokens.length; i += t.ub) await seq.eval(tokens.slice(i, i + t.ub));
  };
  const gen = async (n: number) => {
    for (let i = 0; i < n; i++) await seq.eval([t.rng.u32() % V]);
  };
  try {
    const testTime = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (t.warmup) {
      if (t.nPrompt > 0) await prompt(syntheticTokens(t.nPrompt, V, t.rng));
      if (t.nGen > 0) await gen(1);
      seq.truncate(0);
    }
    if (t.depth > 0) await prompt(syntheticTokens(t.depth, V, t.rng));
    t.cache?.resetStats(); // the expert cache's figures cover the timed repetitions only
    const samplesNs: number[] = [];
    let dispatches = 0;
    let dispatchTokens = 0;
    let perLayer: number[] | null = null;
    for (let r = 0; r < t.reps; r++) {
      seq.truncate(t.depth);
      const tokens = t.nPrompt > 0 ? syntheticTokens(t.nPrompt, V, t.rng) : [];
      const before = statsOf(seq)?.total.dispatches ?? 0;
      const t0 = process.hrtime.bigint();
      if (t.nPrompt > 0) await prompt(tokens);
      if (t.nGen > 0) await gen(t.nGen);
      samplesNs.push(Number(process.hrtime.bigint() - t0));
      const s = statsOf(seq);
      if (s) {
        dispatches += s.total.dispatches - before;
        dispatchTokens += t.nPrompt + t.nGen;
        if (t.nGen > 0) perLayer = s.last.perLayer.slice(0, config.nLayer);
      }
    }
    const expertCache = t.cache ? expertCacheFigures(t.cache.stats) : null;
    let profile: KernelTime[] | undefined;
    if (t.profile && t.device) {
      const prof = new GpuProfiler(t.device).install();
      try {
        seq.truncate(t.depth);
        if (t.nPrompt > 0) await prompt(syntheticTokens(t.nPrompt, V, t.rng));
        for (let i = 0; i < t.nGen; i++) {
          await gen(1);
          await prof.collect();
        }
        await prof.collect();
      } finally {
        prof.uninstall();
      }
      profile = prof.kernels;
    }
    return {
      samplesNs,
      testTime,
      dispatchesPerToken: dispatchTokens > 0 ? dispatches / dispatchTokens : null,
      dispatchesPerLayer: perLayer && perLayer.length ? mean(perLayer) : null,
      loadAvg: [loadBefore, loadavg()[0]!],
      profile,
      expertCache,
    };
  } finally {
    seq.dispose();
  }
}
