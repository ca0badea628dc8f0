// moet vs llama.cpp on the same GGUF, the same tests, in the same run:
//
//   npx tsx bench/compare.ts -m FILE [-p 512] [-n 128] [-d 0] [-ub 512] [-r 5] [--backend webgpu]
//                            [--llama-gpu cpu|vulkan|cpu,vulkan|auto|cuda] [--threads 1,2] [-o md|json|jsonl]
//
// llama.cpp runs through node-llama-cpp (bench/llama.ts says exactly how: pp = one controlledEvaluate
// of n_prompt ids in a context truncated to the depth, tg = one-token controlledEvaluate calls with
// the next token picked greedily); thread counts 1..nproc are probed first and the best one per
// test kind is kept and printed. moet runs the `moet bench` harness (src/bench/harness.ts). The
// table shows both and moet / llama.cpp. llama.cpp runs first, each --llama-gpu build in its own
// child process (one llama.cpp build per process, all memory returned before moet loads).
// --llama-gpu vulkan runs llama.cpp's Vulkan build (all layers offloaded) on Vulkan device
// GGML_VK_VISIBLE_DEVICES (default 0: Mesa lavapipe on a machine without a GPU, the same device moet's
// WebGPU uses there); the device llama.cpp used is printed under the table, and a run that fell back
// to the CPU is an error. --llama-gpu cpu,vulkan gives both columns and a ratio to each.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { openGGUF } from '../gguf/reader.js';
import { mdExtras, type OutputFormat } from '../src/bench/format.js';
import { runBench, type BenchResult } from '../src/bench/harness.js';
import { formatProfile, mdTable } from '../src/bench/profile.js';
import { llamaDeviceWeightBytes, runLlamaBenchInChild, runLlamaVkProfileInChild, type LlamaBenchOptions, type LlamaBenchOutput, type LlamaVkProfile } from './llama.js';

const HELP = `usage: npx tsx bench/compare.ts -m FILE [options]

  -m FILE            GGUF file (both engines load it)
  -p N[,N]           prompt lengths (default 512)
  -n N[,N]           generation lengths (default 128)
  -d D[,D]           depths (default 0)
  -ub N[,N]          ubatch (default 512)
  -r N               repetitions (default 5)
  -o md|json|jsonl   output (default md)
  --backend B        moet backend: cpu | webgpu (default webgpu)
  --llama-gpu G[,G]  node-llama-cpp build(s): cpu (or false) | vulkan | auto | cuda | metal (default cpu);
                     several give one llama.cpp column each (e.g. cpu,vulkan)
  --llama-vk-devices D  GGML_VK_VISIBLE_DEVICES for vulkan when unset (default 0; lavapipe is skipped
                     by llama.cpp unless named here)
  --threads T[,T]    llama.cpp thread counts to try (default 1..nproc); the best per pp/tg is used
  --fa               llama.cpp flash attention on (default off)
  --only moet|llama  run one side
  --profile          moet: per-kernel GPU times (WebGPU)
  --llama-profile    llama.cpp Vulkan: per-op GPU times over the first tg test's tokens (at most 16), from
                     its perf logger (GGML_VK_PERF_LOGGER) in a separate child run after the timed tests
                     (the logger waits after every op, so its total is not a speed figure)
  --seed S           synthetic token ids (default 1234)
`;

function nums(v: string[] | undefined, dflt: number[]): number[] {
  if (!v || v.length === 0) return dflt;
  return v.flatMap((s) => s.split(',')).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${s}`);
    return n;
  });
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2).map((a) => (a === '-ub' ? '--ubatch-size' : a));
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', short: 'm' },
      'n-prompt': { type: 'string', short: 'p', multiple: true },
      'n-gen': { type: 'string', short: 'n', multiple: true },
      'n-depth': { type: 'string', short: 'd', multiple: true },
      'ubatch-size': { type: 'string', multiple: true },
      repetitions: { type: 'string', short: 'r' },
      output: { type: 'string', short: 'o' },
      backend: { type: 'string' },
      'llama-gpu': { type: 'string', multiple: true },
      'llama-vk-devices': { type: 'string' },
      threads: { type: 'string', multiple: true },
      fa: { type: 'boolean' },
      only: { type: 'string' },
      profile: { type: 'boolean' },
      'llama-profile': { type: 'boolean' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.model) {
    process.stdout.write(HELP);
    return values.help ? 0 : 1;
  }
  const path = values.model;
  const output = (values.output ?? 'md') as OutputFormat;
  const nPrompt = nums(values['n-prompt'], [512]);
  const nGen = nums(values['n-gen'], [128]);
  const nDepth = nums(values['n-depth'], [0]);
  const nUbatch = nums(values['ubatch-size'], [512]);
  const reps = Number(values.repetitions ?? 5);
  const seed = Number(values.seed ?? 1234);
  const backend = (values.backend ?? 'webgpu') as 'cpu' | 'webgpu';
  const gpus = [...new Set((values['llama-gpu'] ?? ['cpu']).flatMap((s) => s.split(',')))].map((g): LlamaBenchOptions['gpu'] => {
    if (g === 'false' || g === 'cpu') return false;
    if (['auto', 'vulkan', 'cuda', 'metal'].includes(g)) return g as LlamaBenchOptions['gpu'];
    throw new Error(`--llama-gpu: unknown build ${g}`);
  });
  const nproc = cpus().length;
  const threads = nums(values.threads, Array.from({ length: nproc }, (_, i) => i + 1));
  const log = (m: string) => process.stderr.write(`compare: ${m}\n`);

  const f = await openGGUF(path);
  const nParams = f.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const tokens = f.getValue('tokenizer.ggml.tokens');
  const embd = f.tensorByName.get('token_embd.weight');
  const nVocab = Array.isArray(tokens) ? tokens.length : (embd?.shape[1] ?? 0);
  // llama.cpp always keeps token_embd on the CPU (its get_rows runs there); weights beyond it on the
  // CPU mean some matmuls ran on llama.cpp's CPU backend (see llamaWeightsOnCpu)
  const tokenEmbdBytes = embd?.byteLength ?? 0;
  const weightBytes = f.tensors.reduce((s, t) => s + t.byteLength, 0);
  const biggest = f.tensors.filter((t) => t.name !== 'token_embd.weight').sort((a, b) => b.byteLength - a.byteLength).slice(0, 3);
  await f.close();

  log(`machine: ${nproc} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const llamaOuts: LlamaBenchOutput[] = [];
  const llamaProfiles: LlamaVkProfile[] = [];
  if (values.only !== 'moet') {
    for (const gpu of gpus) {
      const o: LlamaBenchOptions = { gpu, threads, nPrompt, nGen, nDepth, nUbatch, reps, flashAttention: !!values.fa, seed, nVocab, vkDevices: values['llama-vk-devices'] ?? '0' };
      log(`llama.cpp ${gpu === false ? 'CPU' : gpu} build (child process)`);
      const out = await runLlamaBenchInChild(path, o);
      for (const r of out.results) r.model_n_params = nParams;
      if (gpu !== false) log(`llama.cpp ${out.gpuType}: devices [${out.gpuDevices.join(', ')}], ${out.gpuLayers} layers offloaded`);
      llamaOuts.push(out);
      const tg = nGen.find((n) => n > 0);
      if (values['llama-profile'] && gpu === 'vulkan' && tg) {
        const tokens = Math.min(tg, 16);
        log(`llama.cpp Vulkan: per-op profile over ${tokens} decoded tokens (GGML_VK_PERF_LOGGER, child process)`);
        llamaProfiles.push(await runLlamaVkProfileInChild(path, { ...o, threads: [out.threads.tg] }, tokens));
      }
    }
  }
  let moet: BenchResult[] = [];
  if (values.only !== 'llama') {
    moet = await runBench({ models: [path], nPrompt, nGen, nDepth, nUbatch, reps, backend, seed, profile: !!values.profile, onProgress: log });
  }
  const llama = llamaOuts.flatMap((o) => o.results);

  if (output === 'json' || output === 'jsonl') {
    const all = [...llama, ...moet];
    process.stdout.write(output === 'json' ? JSON.stringify(all, null, 2) + '\n' : all.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return 0;
  }

  const r0 = moet[0] ?? llama[0];
  if (!r0) return 0;
  const GiB = 1024 ** 3;
  // one llama.cpp column per build; with a single build the columns are the historical ones
  const many = llamaOuts.length > 1;
  const llamaHeads = llamaOuts.length ? llamaOuts.map((o) => `llama.cpp ${o.gpuType} t/s`) : ['llama.cpp t/s'];
  const ratioHeads = many ? llamaOuts.map((o) => `moet / llama.cpp ${o.gpuType}`) : ['moet / llama.cpp'];
  const moetHead = `moet ${backend === 'webgpu' ? 'WebGPU' : 'CPU'} t/s`;
  const names = [...new Set([...llama, ...moet].map((r) => r.test))];
  const rows = names.map((test) => {
    const ls = llamaOuts.length ? llamaOuts.map((o) => o.results.find((r) => r.test === test)) : [undefined];
    const m = moet.find((r) => r.test === test);
    const cell = (r: BenchResult | undefined) => (r ? `${r.avg_ts.toFixed(2)} ± ${r.stddev_ts.toFixed(2)}` : '-');
    return [
      r0.model_type,
      `${(r0.model_size / GiB).toFixed(2)} GiB`,
      `${(nParams / 1e9).toFixed(2)} B`,
      test,
      ls.some((l) => l) ? ls.map((l) => (l ? String(l.n_threads) : '-')).join('/') : '-',
      ...ls.map(cell),
      cell(m),
      ...ls.map((l) => (l && m ? `${(m.avg_ts / l.avg_ts).toFixed(3)}` : '-')),
    ];
  });
  const heads = ['model', 'size', 'params', 'test', 'threads', ...llamaHeads, moetHead, ...ratioHeads];
  process.stdout.write(mdTable(heads, rows, heads.map((_, i) => i > 0)));
  if (many) process.stdout.write(`\nthreads: llama.cpp ${llamaOuts.map((o) => o.gpuType).join('/')}\n`);
  for (const llamaOut of llamaOuts) {
    const probes = llamaOut.probes.filter((p) => Number.isFinite(p.ppTs));
    if (probes.length) {
      process.stdout.write(`\nllama.cpp ${many ? `${llamaOut.gpuType} ` : ''}thread probe (short pp/tg8 runs): ${probes.map((p) => `t=${p.threads}: pp ${p.ppTs.toFixed(1)}, tg ${p.tgTs.toFixed(1)}`).join('; ')} → pp t=${llamaOut.threads.pp}, tg t=${llamaOut.threads.tg}\n`);
    }
    process.stdout.write(
      `llama.cpp: node-llama-cpp (llama.cpp ${llamaOut.release}, ${llamaOut.gpuType} build), pp = one controlledEvaluate of n_prompt ids (logits of the last), ` +
        `tg = one-token controlledEvaluate calls (logits + greedy pick), batchSize = ubatch, flash attention ${values.fa ? 'on' : 'off'}, F16 KV\n`,
    );
    if (llamaOut.gpuType !== 'CPU') {
      process.stdout.write(
        `llama.cpp ${llamaOut.gpuType} device: ${llamaOut.gpuDevices.join(', ')} (GGML_VK_VISIBLE_DEVICES=${llamaOut.vkVisibleDevices ?? 'unset'}), ` +
          `${llamaOut.gpuLayers} layers offloaded; llama.cpp: ${llamaOut.deviceLog.join(' | ')}\n`,
      );
      const onCpu = weightBytes - llamaDeviceWeightBytes(llamaOut.deviceLog) - tokenEmbdBytes;
      if (onCpu > 1 << 20) {
        process.stdout.write(
          `NOTE: llama.cpp ${llamaOut.gpuType} left ${(onCpu / 2 ** 20).toFixed(0)} MiB of weights in host memory beyond token_embd (which it always keeps ` +
            `there): tensors it cannot bind on this device, such as those over its storage-buffer range (largest here: ` +
            `${biggest.map((t) => `${t.name} ${(t.byteLength / 2 ** 20).toFixed(0)} MiB`).join(', ')}), stay on the CPU and their matmuls run on ` +
            `llama.cpp's CPU backend. This column is a CPU + ${llamaOut.gpuType} hybrid, not the device alone; for a device-only comparison use a ` +
            `file whose tensors all fit (on lavapipe: \`moet synth --layers 4 --experts 64 --vocab synthetic --vocab-size 65536\`).\n`,
        );
      }
    }
  }
  if (moet.length) {
    process.stdout.write(mdExtras(moet));
    for (const r of moet) if (r.profile) process.stdout.write(formatProfile(r.profile, `moet GPU time per kernel, ${r.test}`, r.n_gen || r.n_prompt));
  }
  for (const p of llamaProfiles) {
    process.stdout.write(
      formatProfile(p.ops, `llama.cpp Vulkan GPU time per op, tg${p.tokens} (GGML_VK_PERF_LOGGER: it waits after every op, so the sum exceeds an unprofiled token)`, p.tokens),
    );
  }
  const build = moet[0] ? `moet build ${moet[0].build_commit} (${moet[0].build_number})` : `llama.cpp ${r0.build_commit}`;
  process.stdout.write(`\n${build}; load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')} on ${nproc} cores\n`);
  return 0;
}

process.exitCode = await main();
