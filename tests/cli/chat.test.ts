// `moet chat` and `moet serve` driven as child processes (stdin piped, CPU backend, tiny fixture).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/app.js';
import { progressBar } from '../../src/cli/progress.js';
import { fixturePath } from '../fixtures/make.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

let fixture: string;
beforeAll(async () => {
  fixture = await fixturePath('qwen3moe-f32');
});

interface Child {
  proc: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
  /** resolves once stdout / stderr matches */
  waitFor: (stream: 'stdout' | 'stderr', re: RegExp, timeoutMs?: number) => Promise<void>;
}

function start(args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  const poke = () => waiters.splice(0).forEach((w) => w());
  proc.stdout.setEncoding('utf8').on('data', (d: string) => ((out += d), poke()));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => ((err += d), poke()));
  const exit = new Promise<number | null>((resolve) => proc.on('close', (code) => (poke(), resolve(code))));
  const waitFor = (stream: 'stdout' | 'stderr', re: RegExp, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} on ${stream}; stdout: ${out}; stderr: ${err}`)), timeoutMs);
      const check = () => {
        if (re.test(stream === 'stdout' ? out : err)) {
          clearTimeout(timer);
          resolve();
        } else if (proc.exitCode !== null) {
          clearTimeout(timer);
          reject(new Error(`exited (${proc.exitCode}) before ${re} on ${stream}; stdout: ${out}; stderr: ${err}`));
        } else waiters.push(check);
      };
      check();
    });
  return { proc, stdout: () => out, stderr: () => err, exit, waitFor };
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

describe('moet chat', () => {
  it('holds a conversation over piped stdin and leaves on /exit', async () => {
    const c = start(['chat', '-m', fixture, '--backend', 'cpu', '-n', '6', '--temp', '0', '--system', 'Be brief.', '--timings']);
    c.proc.stdin.write('Hello there\n');
    await c.waitFor('stderr', /answer 6 tokens/);
    c.proc.stdin.write('And again\n');
    await c.waitFor('stderr', /answer 6 tokens[^]*answer 6 tokens/);
    c.proc.stdin.write('/exit\nnot read\n');
    expect(await c.exit).toBe(0);
    const lines = c.stdout().split('\n');
    expect(lines.length).toBe(3); // two answers and the final ''
    // the second turn reuses the first turn's KV cache: its prompt evaluates only the new tokens
    const prompts = [...c.stderr().matchAll(/prompt (\d+) tokens \((\d+) reused\)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(prompts).toHaveLength(2);
    expect(prompts[0]![1]).toBe(0);
    expect(prompts[1]![1]).toBeGreaterThanOrEqual(prompts[0]![0]);
  });

  it('Ctrl-C stops the current answer, a second Ctrl-C leaves', async () => {
    const c = start(['chat', '-m', fixture, '--backend', 'cpu', '--ignore-eos', '-c', '4096', '-s', '7']);
    c.proc.stdin.write('Tell me a long story\n');
    await c.waitFor('stdout', /\S/); // the answer started
    c.proc.kill('SIGINT');
    await c.waitFor('stdout', /\[stopped\]\n$/);
    c.proc.kill('SIGINT');
    expect(await c.exit).toBe(0);
  });

  it('ends at the end of input', async () => {
    const c = start(['chat', '-m', fixture, '--backend', 'cpu', '-n', '2', '--no-think', '--hide-think']);
    c.proc.stdin.end('Hi\n');
    expect(await c.exit).toBe(0);
    expect(c.stdout().endsWith('\n')).toBe(true);
  });

  it('has --help, and usage errors are one line with exit code 1', async () => {
    const h = await cli('chat', '--help');
    expect(h.code).toBe(0);
    for (const flag of ['--system', '--no-think', '--hide-think', '--temp', '--top-k', '--top-p', '--min-p', '--repeat-penalty', '-s, --seed', '--backend', '-c, --ctx-size']) {
      expect(h.stdout, flag).toContain(flag);
    }
    const e = await cli('chat');
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/^moet: error: chat: -m FILE is required[^\n]*\n$/);
    const b = await cli('chat', '-m', fixture, '--temp', 'hot');
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^moet: error: [^\n]*--temp[^\n]*\n$/);
  });
});

describe('moet serve', () => {
  it('serves until SIGINT; /health says loading first, then ok', async () => {
    const c = start(['serve', '-m', fixture, '--backend', 'cpu', '--port', '0', '--metrics']);
    await c.waitFor('stderr', /listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(c.stderr())![1]!;
    await c.waitFor('stderr', /ready at/);
    const h = await fetch(`${url}/health`);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify({ prompt: 'Hello', max_tokens: 3 }) });
    expect(r.status).toBe(200);
    c.proc.kill('SIGINT');
    expect(await c.exit).toBe(0);
    expect(c.stderr()).toMatch(/POST \/v1\/completions 200/);
  });

  it('--help lists the endpoints; a missing model file is one error line, exit 1', async () => {
    const h = await cli('serve', '--help');
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('/v1/chat/completions');
    expect(h.stdout).toContain('--port');
    const c = start(['serve', '-m', '/nonexistent/x.gguf', '--port', '0']);
    expect(await c.exit).toBe(1);
    expect(c.stderr()).toMatch(/^moet: error: cannot open \/nonexistent\/x\.gguf: no such file$/m);
    expect(c.stderr()).not.toMatch(/\n\s+at /); // no stack without --verbose
  });
});

describe('moet run flags', () => {
  it('takes -s, -c, -f and the sampler flags', async () => {
    const h = await cli('run', '--help');
    for (const flag of ['-f, --file', '-c, --ctx-size', '-s, --seed', '--top-k', '--top-p', '--min-p', '--repeat-penalty', '--backend', '--ignore-eos']) {
      expect(h.stdout, flag).toContain(flag);
    }
    const a = await cli('run', '-m', fixture, '-p', 'Hi', '-n', '4', '-s', '5', '-c', '64', '--top-k', '10', '--backend', 'cpu', '--no-display-prompt');
    const b = await cli('run', '-m', fixture, '-p', 'Hi', '-n', '4', '--seed', '5', '-c', '64', '--top-k', '10', '--backend', 'cpu', '--no-display-prompt');
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stderr).toContain('sampler seed: 5');
    expect(a.stderr).toContain('context 64');
    // no progress bar on a pipe
    expect(a.stderr).not.toContain('loading model');
  });
});

describe('progress bar', () => {
  it('draws on a TTY only, and erases itself', () => {
    let tty = '';
    const bar = progressBar({ isTTY: true, columns: 60, write: (s: string) => (tty += s) }, 'loading model');
    bar.update(0.5);
    bar.update(0.501); // same percentage: not redrawn
    bar.update(1);
    bar.done();
    expect(tty.split('\r').filter(Boolean)).toHaveLength(3);
    expect(tty).toContain(' 50%');
    expect(tty).toContain('100%');
    expect(tty.endsWith('\r\x1b[K')).toBe(true);
    let pipe = '';
    const quiet = progressBar({ write: (s: string) => (pipe += s) }, 'loading model');
    quiet.update(0.5);
    quiet.done();
    expect(pipe).toBe('');
  });
});
