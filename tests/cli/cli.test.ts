import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/app.js';
import { loadModel } from '../../src/index.js';
import { fixturePath } from '../fixtures/make.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

/** Runs `tsx src/cli/main.ts ...args` in a child process (node --import tsx: what `npx tsx` does,
 * without npm's own warnings on stderr). */
function spawnCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the CLI in this process, collecting its output. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

function oneLine(s: string): void {
  expect(s.endsWith('\n')).toBe(true);
  expect(s.trimEnd().split('\n')).toHaveLength(1);
  expect(s).toMatch(/^moet: error: /);
}

let fixture: string;
let dir: string;
beforeAll(async () => {
  fixture = await fixturePath('qwen3moe-f32');
  dir = await mkdtemp(join(tmpdir(), 'moet-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('moet (child process)', () => {
  it('inspect FILE --json prints one parseable JSON object', async () => {
    const r = await spawnCli(['inspect', fixture, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.model.architecture).toBe('qwen3moe');
    expect(j.model.experts).toMatchObject({ count: 10, used: 3, feedForwardLength: 50 });
    expect(j.model.quantMix.F32.tensors).toBe(j.file.tensorCount);
    expect(j.metadata['general.architecture']).toBe('qwen3moe');
    expect(j.metadata['qwen3moe.attention.layer_norm_rms_epsilon']).toBe(1e-6);
    expect(j.metadata['tokenizer.ggml.tokens']).toMatchObject({ type: 'array', elementType: 'STRING', length: 459 });
    expect(j.metadata['tokenizer.ggml.tokens'].head).toHaveLength(8);
    expect(j.tensors).toBeUndefined();
  });

  it('a missing file: exit 1, one line on stderr', async () => {
    const r = await spawnCli(['inspect', join(dir, 'nope.gguf')]);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain('no such file');
  });

  it('a file that is not GGUF: exit 1, one line naming the problem', async () => {
    const bad = join(dir, 'bad.gguf');
    await writeFile(bad, 'GGUX not really a gguf file, but long enough to have a header');
    const r = await spawnCli(['run', '-m', bad, '-p', 'hi']);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toContain('GGUFFormatError');
  });

  it('run streams the greedy completion and prints llama.cpp-style timings', async () => {
    const r = await spawnCli(['run', '-m', fixture, '-p', 'The quick brown', '-n', '8', '--temp', '0', '--backend', 'cpu', '--no-display-prompt', '--ignore-eos']);
    expect(r.code).toBe(0);
    const model = await loadModel(fixture, { backend: 'cpu' });
    const logitBias = Object.fromEntries([...model.tokenizer.eogIds].map((id) => [id, -Infinity]));
    let expected = '';
    for await (const t of model.createSession().generate('The quick brown', { temperature: 0, maxTokens: 8, logitBias })) expected += t.text;
    await model.dispose();
    expect(r.stdout).toBe(expected + '\n');
    expect(r.stderr).toMatch(/prompt eval time = +[\d.]+ ms \/ +\d+ tokens \( +[\d.]+ ms per token, +[\d.]+ tokens per second\)/);
    expect(r.stderr).toMatch(/ eval time = +[\d.]+ ms \/ +7 runs/);
  });
});

describe('moet (in process)', () => {
  it('--help works on every command', async () => {
    for (const cmd of ['inspect', 'tokenize', 'run', 'demo']) {
      const r = await cli(cmd, '--help');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage: moet ${cmd}`));
    }
    const top = await cli('--help');
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('commands:');
    expect((await cli()).code).toBe(1);
  });

  it('bad arguments: exit 1, one line', async () => {
    for (const args of [
      ['frobnicate'],
      ['inspect'],
      ['inspect', fixture, '--bogus'],
      ['tokenize', '-p', 'x'],
      ['tokenize', '-m', fixture],
      ['run', '-m', fixture, '-p', 'x', '--temp', 'hot'],
      ['run', '-m', fixture, '-p', 'x', '--backend', 'tpu'],
      ['run', '-m', fixture, '-p', 'x', '-n', '1.5'],
      ['run', '-m', fixture, '-p', 'x', '--seed', '-3'],
    ]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      oneLine(r.stderr);
    }
  });

  it('--verbose adds the stack trace', async () => {
    const r = await cli('inspect', join(dir, 'nope.gguf'), '--verbose');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').length).toBeGreaterThan(2);
  });

  it('inspect prints metadata, model, quant mix and (with --tensors) the tensor table', async () => {
    const r = await cli('inspect', fixture, '--tensors');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tokenizer\.ggml\.tokens += \[459 × STRING: "!", /);
    expect(r.stdout).toMatch(/experts +10 per layer, 3 used per token/);
    expect(r.stdout).toMatch(/F32 +39 tensors/);
    expect(r.stdout).toMatch(/blk\.0\.ffn_gate_exps\.weight +\[76, 50, 10\] +F32 +152000 +\d+/);
    const j = JSON.parse((await cli('inspect', fixture, '--json', '--tensors')).stdout);
    expect(j.tensors).toHaveLength(39);
    expect(j.tensors[0]).toMatchObject({ name: 'token_embd.weight', shape: [76, 459], type: 'F32', bytes: 76 * 459 * 4 });
  });

  it("tokenize prints id -> 'piece' lines, or --ids a list", async () => {
    const model = await loadModel(fixture, { backend: 'cpu' });
    const ids = model.tokenize('Hello world<|im_end|>', { special: true });
    const pieces = ids.map((id) => model.detokenize([id], { special: true }));
    await model.dispose();
    const r = await cli('tokenize', '-m', fixture, '-p', 'Hello world<|im_end|>');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(ids.map((id, i) => `${String(id).padStart(6)} -> '${pieces[i]}'\n`).join(''));
    expect(r.stdout).toContain("-> '<|im_end|>'");
    const l = await cli('tokenize', '-m', fixture, '-p', 'Hello world<|im_end|>', '--ids');
    expect(l.stdout).toBe(`[${ids.join(', ')}]\n`);
    const plain = await cli('tokenize', '-m', fixture, '-p', '<|im_end|>', '--ids', '--no-parse-special');
    expect(JSON.parse(plain.stdout).length).toBeGreaterThan(1);
    const f = join(dir, 'prompt.txt');
    await writeFile(f, 'Hello world<|im_end|>');
    expect((await cli('tokenize', '-m', fixture, '-f', f, '--ids')).stdout).toBe(l.stdout);
  });

  it('run accepts llama.cpp spellings such as -n -1 and stops at a full context', async () => {
    const r = await cli('run', '-m', fixture, '-p', 'The quick brown', '-n', '-1', '-c', '16', '--ignore-eos', '--temp', '0', '--top-k', '5', '--top-p', '0.9', '--min-p', '0.1', '--repeat-penalty', '1.1', '--seed', '7');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('The quick brown')).toBe(true);
    expect(r.stderr).toContain('stop reason = context');
    expect(r.stderr).toContain('sampler seed: 7');
  });

  it('demo --random runs a generated model', async () => {
    const r = await cli('demo', '--random', '-n', '6', '--verbose');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('Once upon a time')).toBe(true);
    expect(r.stderr).toContain('prompt eval time =');
    expect(r.stderr).toMatch(/first token \d+\.\d+ s after the process started/);
  });
});
