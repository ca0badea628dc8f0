// The benchmark harness (src/bench/, `moet bench`), the llama.cpp side of bench/compare.ts and the
// per-kernel profiler, on tiny synthetic models. Speed is never asserted: only that the tests run,
// the fields are llama-bench's, and the counters add up.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { llamaDeviceWeightBytes, parseVkPerfLog, runLlamaBench } from '../../bench/llama.js';
import { openGGUF } from '../../gguf/reader.js';
import type { GGUFTensorInfo } from '../../gguf/types.js';
import { mdHeader, mdRow } from '../../src/bench/format.js';
import { runBench, stdev, testName, type BenchResult } from '../../src/bench/harness.js';
import { kernelName } from '../../src/bench/profile.js';
import { weightBytesPerToken } from '../../src/bench/weights.js';
import { runCli } from '../../src/cli/app.js';
import { synthPlan, writeSynthModel } from '../../src/synth/model.js';
import { openTestGPU } from '../gpu/helpers.js';

let dir: string;
let model: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-bench-'));
  model = join(dir, 'tiny-q4km.gguf');
  await writeSynthModel(model, {
    geometry: { nLayer: 2, nEmbd: 256, nHead: 2, nHeadKv: 1, headDim: 128, nFfExp: 256, nExpert: 6, nExpertUsed: 2, contextLength: 4096 },
    vocab: 'synthetic',
    vocabSize: 1000,
    seed: 'bench-test',
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

const LLAMA_BENCH_FIELDS = [
  'build_commit', 'build_number', 'cpu_info', 'gpu_info', 'backends', 'model_filename', 'model_type', 'model_size',
  'model_n_params', 'n_batch', 'n_ubatch', 'n_threads', 'type_k', 'type_v', 'n_gpu_layers', 'flash_attn', 'use_mmap',
  'embeddings', 'n_prompt', 'n_gen', 'n_depth', 'test_time', 'avg_ns', 'stddev_ns', 'avg_ts', 'stddev_ts', 'samples_ns', 'samples_ts',
];

describe('llama-bench conventions', () => {
  it('names tests like llama-bench', () => {
    expect(testName(512, 0, 0)).toBe('pp512');
    expect(testName(0, 128, 0)).toBe('tg128');
    expect(testName(512, 0, 4096)).toBe('pp512 @ d4096');
    expect(testName(16, 8, 0)).toBe('pp16+tg8');
  });

  it('uses the sample standard deviation', () => {
    expect(stdev([1])).toBe(0);
    expect(stdev([1, 2, 3, 4])).toBeCloseTo(Math.sqrt(5 / 3), 12);
  });

  it('prints rows under the header with the same column widths', () => {
    const r = { model_type: 'qwen3moe 30B.A3B Q4_K - Medium', model_size: 17.28 * 1024 ** 3, model_n_params: 30.53e9, backends: 'WebGPU', test: 'pp512', avg_ts: 1234.5678, stddev_ts: 9.876 } as BenchResult;
    const [head, sep] = mdHeader().trimEnd().split('\n');
    const row = mdRow(r).trimEnd();
    expect(head).toMatch(/^\| model +\| +size \| +params \| backend +\| +test \| +t\/s \|$/);
    expect(row).toBe('| qwen3moe 30B.A3B Q4_K - Medium |  17.28 GiB |    30.53 B | WebGPU     |           pp512 |       1234.57 ± 9.88 |');
    expect(row.length).toBe(head!.length);
    expect(sep!.length).toBe(head!.length);
  });
});

describe('weight bytes per decoded token', () => {
  it('counts k of n experts and every dense tensor once (full-size Qwen3-30B-A3B plan)', () => {
    const plan = synthPlan({ vocab: 'synthetic' });
    const infos: GGUFTensorInfo[] = plan.tensors.map((t) => ({ name: t.name, shape: t.shape, type: t.type, relativeOffset: 0, offset: 0, byteLength: t.bytes }));
    const wb = weightBytesPerToken(infos, { nExpert: 128, nExpertUsed: 8, tiedEmbeddings: false, nVocab: 151936 });
    const experts = plan.tensors.filter((t) => t.name.endsWith('_exps.weight')).reduce((s, t) => s + t.bytes, 0);
    expect(wb.ffn).toBeCloseTo(experts / 16, 0);
    expect(wb.head).toBe(255_252_480 + 2048 * 4);
    expect(wb.embedding).toBe(1152); // one Q4_K row of 2048
    expect(wb.total).toBeCloseTo(wb.attention + wb.router + wb.ffn + wb.head + wb.embedding + wb.other, 3);
    // about 1.8 GB per token at Q4_K_M (shared/docs/qwen3moe.md)
    expect(wb.total / 1e9).toBeGreaterThan(1.7);
    expect(wb.total / 1e9).toBeLessThan(2.0);
  });
});

describe('moet bench (cpu backend)', () => {
  it('-o json gives llama-bench fields plus moet figures, for comma lists and depths', async () => {
    const r = await cli('bench', '-m', model, '-p', '8,16', '-n', '4', '-d', '0,8', '-r', '2', '-ub', '8', '-o', 'json', '--backend', 'cpu');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as BenchResult[];
    expect(rows.map((x) => x.test)).toEqual(['pp8', 'pp16', 'tg4', 'pp8 @ d8', 'pp16 @ d8', 'tg4 @ d8']);
    for (const x of rows) {
      for (const f of LLAMA_BENCH_FIELDS) expect(x).toHaveProperty(f);
      expect(x.samples_ns).toHaveLength(2);
      expect(x.samples_ts).toHaveLength(2);
      expect(x.avg_ts).toBeGreaterThan(0);
      expect(x.n_ubatch).toBe(8);
      expect(x.backends).toBe('CPU');
      expect(x.model_type).toBe('qwen3moe ?B Q4_K - Medium');
    }
    const tg = rows.find((x) => x.test === 'tg4')!;
    expect(tg.weight_bytes_per_token).toBeGreaterThan(0);
    expect(tg.bandwidth_gbs).toBeCloseTo((tg.weight_bytes_per_token! * tg.avg_ts) / 1e9, 9);
    expect(tg.samples_ts[0]).toBeCloseTo(4e9 / tg.samples_ns[0]!, 6);
  });

  it('-o md prints the llama-bench table, moet figures and the build line', async () => {
    const r = await cli('bench', '-m', model, '-p', '8', '-n', '2', '-r', '1', '--backend', 'cpu');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^\| model +\| +size \| +params \| backend +\| +test \| +t\/s \|$/);
    expect(lines[2]).toMatch(/\| +pp8 \| +[\d.]+ ± [\d.]+ \|$/);
    expect(lines[3]).toMatch(/\| +tg2 \| +[\d.]+ ± [\d.]+ \|$/);
    expect(r.stdout).toMatch(/weights read\/token/);
    expect(r.stdout).toMatch(/\nbuild: \S+ \(\d+\)\n/);
  });

  it('rejects bad arguments with one line', async () => {
    expect((await cli('bench')).stderr).toMatch(/^moet: error: bench: -m FILE is required/);
    expect((await cli('bench', '-m', model, '-o', 'csv')).stderr).toMatch(/-o must be md, json or jsonl/);
    expect((await cli('bench', '-m', model, '-p', 'x')).stderr).toMatch(/--n-prompt must be an integer/);
  });
});

describe('profiler', () => {
  it('names kernels without layer numbers, keeping the dispatch index', () => {
    expect(kernelName('matvec blk.17.attn_q.weight#0')).toBe('matvec attn_q.weight');
    expect(kernelName('moe_ffn blk.3.ffn_gate_exps.weight#2')).toBe('moe_ffn ffn_gate_exps.weight #2');
    expect(kernelName('rms_norm')).toBe('rms_norm');
    expect(kernelName('')).toBe('(unlabelled)');
  });
});

describe('moet bench (webgpu backend)', async () => {
  const ctx = await openTestGPU();
  await ctx?.dispose();
  it.skipIf(!ctx)('counts dispatches and profiles kernels with timestamp queries', async () => {
    const results: BenchResult[] = [];
    await runBench({ models: [model], nPrompt: [8], nGen: [3], nDepth: [0], nUbatch: [8], reps: 2, backend: 'webgpu', profile: true, onResult: (r) => results.push(r) });
    const [pp, tg] = results;
    expect(pp!.backends).toBe('WebGPU');
    expect(pp!.dispatches_per_token).toBeGreaterThan(0);
    expect(tg!.dispatches_per_layer).toBeGreaterThan(0);
    // a decode step: per layer dispatches × layers + the ones outside the layers
    expect(tg!.dispatches_per_token!).toBeGreaterThanOrEqual(tg!.dispatches_per_layer! * 2);
    expect(tg!.device_weight_bytes).toBeGreaterThan(0);
    for (const r of [pp!, tg!]) {
      expect(r.profile!.length).toBeGreaterThan(3);
      expect(r.profile!.every((k) => k.count > 0 && k.totalNs >= 0)).toBe(true);
    }
    // every decode dispatch of the profiled repetition was timed once: 3 tokens
    const timed = tg!.profile!.reduce((s, k) => s + k.count, 0);
    expect(timed).toBe(Math.round(tg!.dispatches_per_token! * 3));
    // the LM head: the plain matvec on a GPU, the fused thread-per-row one on a software adapter
    expect(tg!.profile!.map((k) => k.kernel)).toContain(ctx!.adapter.isSoftware ? 'matvec_fused output.weight' : 'matvec output.weight');
  });
});

describe('llama.cpp side of bench/compare.ts', () => {
  it('runs the same tests through node-llama-cpp with explicit threads', async () => {
    const f = await openGGUF(model);
    await f.close();
    const out = await runLlamaBench(model, { gpu: false, threads: [1, 2], nPrompt: [16], nGen: [4], nDepth: [0], nUbatch: [16], reps: 2, flashAttention: false, seed: 1, nVocab: 1000 });
    expect(out.probes.map((p) => p.threads)).toEqual([1, 2]);
    expect([1, 2]).toContain(out.threads.pp);
    expect(out.results.map((r) => r.test)).toEqual(['pp16', 'tg4']);
    for (const r of out.results) {
      for (const f of LLAMA_BENCH_FIELDS) expect(r).toHaveProperty(f);
      expect(r.engine).toBe('llama.cpp');
      expect(r.backends).toBe('CPU');
      expect(r.avg_ts).toBeGreaterThan(0);
      expect(r.samples_ns).toHaveLength(2);
      expect(r.model_type).toMatch(/^qwen3moe /);
    }
  });
});

describe('reading llama.cpp logs (bench/compare.ts)', () => {
  it('sums the Vulkan perf logger by op over graphs, in any time unit, largest first', () => {
    // lines as llama.cpp's Vulkan build printed them on lavapipe (two graphs of one token)
    const ops = parseVkPerfLog([
      '----------------',
      'Vulkan Timings:',
      'FLASH_ATTN_EXT dst(128,32,1,1),  q(128,1,32,1),  k(128,256,4,1),  v(128,256,4,1),  m(256,1,1,1): 3 x 1697.79 us = 5093.37 us (2.47045 GFLOPS/s)',
      'MUL_MAT_VEC q4_K m=4096 n=1 k=2048: 3 x 6009.51 us = 18028.5 us (2.7911 GFLOPS/s)',
      'Total time: 23121.9 us.',
      '----------------',
      'Vulkan Timings:',
      'MUL_MAT_VEC q4_K m=4096 n=1 k=2048: 1 x 5.17298 ms = 5.17298 ms (3.24245 GFLOPS/s)',
      'GLU: 1 x 187.688 us = 187.688 us',
      'some other line: not a timing',
      'Total time: 5360.7 us.',
    ]);
    expect(ops.map((o) => o.kernel)).toEqual([
      'MUL_MAT_VEC q4_K m=4096 n=1 k=2048',
      'FLASH_ATTN_EXT dst(128,32,1,1), q(128,1,32,1), k(128,256,4,1), v(128,256,4,1), m(256,1,1,1)',
      'GLU',
    ]);
    expect(ops[0]!.count).toBe(4);
    expect(ops[0]!.totalNs).toBeCloseTo(18028.5e3 + 5172.98e3, 0);
    expect(ops[2]!.totalNs).toBeCloseTo(187688, 0);
  });

  it('counts the weights llama.cpp put on the device, not its mapped CPU buffer', () => {
    const log = [
      'load_tensors: offloaded 5/5 layers to GPU',
      'load_tensors:   CPU_Mapped model buffer size =  1850.44 MiB',
      'load_tensors:      Vulkan0 model buffer size =  1125.09 MiB',
      'load_tensors:      Vulkan1 model buffer size =  10.5 MiB',
    ];
    expect(llamaDeviceWeightBytes(log)).toBeCloseTo((1125.09 + 10.5) * 2 ** 20, 0);
    expect(llamaDeviceWeightBytes(['load_tensors:   CPU_REPACK model buffer size =  3.00 MiB'])).toBe(0);
  });
});
