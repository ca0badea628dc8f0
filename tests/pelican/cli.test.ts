// `moet pelican` end to end on the shipped tiny model (CPU backend, a few tokens): the output folder,
// summary.json, the gallery, and the parity check against llama.cpp (node-llama-cpp) under greedy
// decoding; bad input as one-line errors.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/app.js';
import type { PelicanSummary } from '../../src/pelican/run.js';
import { decodePng } from '../render/png-stats.js';

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

const NS = 'xmlns="http://www.w3.org/2000/svg"';
let dir: string;
let promptSet: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-pelican-'));
  promptSet = join(dir, 'prompts.jsonl');
  // the tiny model is not a chat model: one answer is started with a whole (closed) SVG, so the run
  // has a picture to render whatever the model adds; the other is started as an open <svg> tag, which
  // the model continues as an icon file (and, in a few tokens, never closes)
  await writeFile(
    promptSet,
    [
      { id: 'closed', prompt: 'Generate an SVG of a pelican riding a bicycle', prefill: `<svg ${NS} viewBox="0 0 20 10"><rect width="20" height="10" fill="#0000ff"/><path d="M0 0 L20 10" stroke="#fff"/></svg>\n` },
      { id: 'open', prompt: 'Generate an SVG of a pelican riding a bicycle', prefill: `<svg ${NS} viewBox="0 0 16 16">\n` },
    ].map((o) => JSON.stringify(o)).join('\n') + '\n',
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('moet pelican on the tiny model', () => {
  it('writes answers, SVGs, PNGs, timings, summary.json and the gallery', async () => {
    const out = join(dir, 'out');
    const r = await cli('pelican', '--backend', 'cpu', '--prompt-set', promptSet, '--runs', '1', '-n', '12', '--seed', '7', '-o', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('moet: 1 ok, 0 no svg, 1 invalid (of 2)');
    expect(r.stdout).toContain(`gallery: ${out}/index.html`);
    expect(r.stderr).toMatch(/pelican: closed-1 moet: ok \(3 elements, 1 paths\) · [\d.]+ t\/s prompt, /);
    expect(r.stderr).toMatch(/pelican: open-1 moet: invalid: .* · [\d.]+ t\/s prompt, [\d.]+ t\/s gen, 12 tokens \(length\)/);

    const s = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as PelicanSummary;
    expect(s.model).toMatchObject({ architecture: 'qwen3moe', backend: 'cpu', contextLength: 512 });
    expect(s.settings).toMatchObject({ runs: 1, seed: 7, maxTokens: 12, greedy: false });
    expect(s.llama).toBeUndefined();
    expect(s.runs.map((x) => [x.dir, x.seed])).toEqual([['closed-1', 7], ['open-1', 7]]);
    const [closed, open] = s.runs as [PelicanSummary['runs'][0], PelicanSummary['runs'][0]];
    // after a whole SVG file the model ends the text (the tiny model's training documents end at </svg>)
    expect(closed.moet).toMatchObject({ status: 'ok', svg: { elements: 3, paths: 1, width: 20, height: 10 }, png: { width: 512, height: 256 } });
    expect(closed.moet.promptTps).toBeGreaterThan(0);
    expect(closed.moet.promptTokens).toBe(closed.promptTokens);
    expect(open.moet).toMatchObject({ generatedTokens: 12, evalRuns: 11, stopReason: 'length' });
    expect(open.moet.genTps).toBeGreaterThan(0);
    expect(open.moet.status).toMatch(/^invalid: not well-formed XML: /);
    expect(open.moet.note).toMatch(/cut at the token limit/);

    // the files
    const png = decodePng(await readFile(join(out, 'closed-1', 'moet.png')));
    expect([png.width, png.height]).toEqual([512, 256]);
    expect([...png.rgba.subarray(4 * (512 * 200 + 20), 4 * (512 * 200 + 20) + 3)]).toEqual([0, 0, 255]);
    expect(await readFile(join(out, 'closed-1', 'moet.svg'), 'utf8')).toMatch(/^<svg [^]*<\/svg>$/);
    const raw = await readFile(join(out, 'closed-1', 'moet.raw.txt'), 'utf8');
    expect(raw.startsWith(`<svg ${NS} viewBox="0 0 20 10">`)).toBe(true);
    expect(raw.length).toBeGreaterThan(150);
    expect(await readFile(join(out, 'closed-1', 'prompt.txt'), 'utf8')).toBe(
      `<|im_start|>user\nGenerate an SVG of a pelican riding a bicycle<|im_end|>\n<|im_start|>assistant\n<svg ${NS} viewBox="0 0 20 10">` +
        `<rect width="20" height="10" fill="#0000ff"/><path d="M0 0 L20 10" stroke="#fff"/></svg>\n`,
    );
    expect(existsSync(join(out, 'open-1', 'moet.invalid.svg.txt'))).toBe(true);
    expect(existsSync(join(out, 'open-1', 'moet.svg'))).toBe(false);
    expect(JSON.parse(await readFile(join(out, 'open-1', 'run.json'), 'utf8'))).toEqual(open);
    const html = await readFile(join(out, 'index.html'), 'utf8');
    expect(html).toContain('<img src="closed-1/moet.png"');
    expect(html).toContain('open #1');
  });

  it('--compare-llama --temp 0: llama.cpp from the same prompt tokens generates the same tokens', async () => {
    const out = join(dir, 'llama');
    const r = await cli('pelican', '--backend', 'cpu', '--prompt-set', promptSet, '--runs', '1', '-n', '24', '--temp', '0', '--compare-llama', '--llama-threads', '2', '-o', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('parity: 2 of 2 runs identical (greedy: PASS)');
    expect(r.stderr).toContain('pelican: open-1 parity: identical (24 tokens)');
    const s = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as PelicanSummary;
    expect(s.parity).toEqual({ greedy: true, compared: 2, identical: 2, pass: true });
    expect(s.llama).toMatchObject({ nodeLlamaCppVersion: '3.22.1', gpu: 'cpu', threads: 2 });
    for (const run of s.runs) {
      const n = run.moet.generatedTokens;
      expect(run.parity).toEqual({ greedy: true, identical: true, moetTokens: n, llamaTokens: n, firstDiff: null });
      expect(run.llama).toMatchObject({ engine: 'llama.cpp', status: run.moet.status, promptTokens: run.promptTokens, generatedTokens: n, stopReason: run.moet.stopReason });
      // same tokens, same text
      expect(await readFile(join(out, run.dir, 'llama.raw.txt'), 'utf8')).toBe(await readFile(join(out, run.dir, 'moet.raw.txt'), 'utf8'));
    }
    expect(s.runs[1]!.moet.generatedTokens).toBe(24);
    expect(s.runs[1]!.llama!.genTps).toBeGreaterThan(0);
    expect(existsSync(join(out, 'closed-1', 'llama.png'))).toBe(true);
    const html = await readFile(join(out, 'index.html'), 'utf8');
    expect(html).toContain('<th>llama.cpp</th>');
    expect(html).toContain('<img src="closed-1/llama.png"');
    expect(html).toContain('token parity: 2 of 2 runs identical — greedy: PASS');
  });

  it('bad input: exit 1 and one line on stderr', async () => {
    const cases: [string[], RegExp][] = [
      [['--runs', '0'], /pelican: --runs must be an integer ≥ 1, got "0"/],
      [['-n', 'lots'], /pelican: --max-tokens must be an integer ≥ 1/],
      [['--think', '--no-think'], /at most one of --think and --no-think/],
      [['--backend', 'tpu'], /--backend must be cpu or webgpu/],
      [['--prompt-set', join(dir, 'missing.txt')], /cannot open .*missing.txt: no such file/],
      [['--prompt-set', promptSet, '--bogus'], /pelican: Unknown option '--bogus'/],
      [['-m', join(dir, 'prompts.jsonl'), '--prompt-set', promptSet, '-o', join(dir, 'x')], /GGUFFormatError/],
    ];
    for (const [args, msg] of cases) {
      const r = await cli('pelican', ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"prompt": "a", "temperature": 1}\n');
    const r = await cli('pelican', '--prompt-set', bad);
    expect(r.stderr).toMatch(/^moet: error: PromptSetError: .*bad.jsonl, line 1: unknown field "temperature"/);
  });

  it('a prompt longer than the context is a recorded error, not a crash; exit 1 when every run failed', async () => {
    const long = join(dir, 'long.txt');
    await writeFile(long, `Generate an SVG of ${'a very long pelican '.repeat(40)}\n`);
    const out = join(dir, 'long');
    const r = await cli('pelican', '--backend', 'cpu', '--prompt-set', long, '-n', '4', '-c', '64', '-o', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/moet: error: ContextOverflowError: context overflow: \d+ tokens do not fit in the context of 64/);
    expect(r.stderr).toContain('moet: error: pelican: every run failed');
    const s = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as PelicanSummary;
    expect(s.totals.moet).toEqual({ ok: 0, noSvg: 0, invalid: 0, error: 1 });
    expect(existsSync(join(out, 'index.html'))).toBe(true);
  });

  it('--help', async () => {
    const r = await cli('pelican', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: moet pelican/);
    expect((await cli('--help')).stdout).toContain('pelican [-m FILE]');
  });
});
