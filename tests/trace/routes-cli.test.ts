// `moet routes` in-process on the qwen3moe-f32 fixture: outputs, windows, errors, --help.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/app.js';
import { fixturePath } from '../fixtures/make.js';
import { parseXml } from './xml.js';

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

let fixture: string;
let dir: string;
beforeAll(async () => {
  fixture = await fixturePath('qwen3moe-f32');
  dir = await mkdtemp(join(tmpdir(), 'moet-routes-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TEXT = 'The <quick> brown & "fox"\njumps.';

describe('moet routes', () => {
  it('--help', async () => {
    const r = await cli('routes', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: moet routes -m FILE/);
    for (const o of ['--json', '--svg', '--html', '--layer', '--backend', '--ctx-size', 'windows']) expect(r.stdout).toContain(o);
    expect((await cli('--help')).stdout).toContain('routes -m FILE');
  });

  it('writes JSON, SVG and HTML and prints a per-layer summary', async () => {
    const [json, svg, html] = ['r.json', 'r.svg', 'r.html'].map((f) => join(dir, f));
    const r = await cli('routes', '-m', fixture, '-p', TEXT, '--json', json!, '--svg', svg!, '--html', html!, '--layer', '2', '--backend', 'cpu');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/tokens, 3 layers, 3 of 10 experts; entropy \(nats\) from probs/);
    expect(r.stdout.trim().split('\n')).toHaveLength(2 + 3);
    const j = JSON.parse(await readFile(json!, 'utf8'));
    expect(j).toMatchObject({ nLayer: 3, k: 3, nExpert: 10, entropySource: 'probs', model: { architecture: 'qwen3moe', backend: 'cpu' } });
    expect(j.windows).toEqual([{ start: 0, end: j.nTokens }]);
    expect(j.tokens).toHaveLength(j.nTokens);
    expect(j.tokens[0]).toMatchObject({ position: 0, text: 'The' });
    expect(j.tokens[0].experts).toHaveLength(3);
    expect(j.tokens[0].experts[0]).toHaveLength(3);
    for (const L of j.layers) {
      expect(L.load.reduce((a: number, b: number) => a + b, 0)).toBe(j.nTokens * 3);
      for (const [a, b, c] of L.coactivation) expect(a < b && c > 0).toBe(true);
    }
    const doc = await readFile(svg!, 'utf8');
    const els = parseXml(doc);
    expect(els.filter((e) => e.name === 'svg' && e.depth === 1)).toHaveLength(3);
    expect(els.some((e) => e.name === 'text' && e.text.startsWith('Expert co-activation in layer 2'))).toBe(true);
    // the token text made it to the axis, escaped (the parser decodes it back)
    expect(els.some((e) => e.name === 'text' && /<|&/.test(e.text) && /^\d+ {2}/.test(e.text))).toBe(true);
    const page = await readFile(html!, 'utf8');
    expect(page).toContain('MoE routing: moet fixture qwen3moe-f32');
    for (const s of page.match(/<svg [\s\S]*?<\/svg>/g)!) parseXml(s);
  });

  it('--json - writes the JSON alone on stdout; --no-probs uses the top-k weights', async () => {
    const r = await cli('routes', '-m', fixture, '-p', TEXT, '--json', '-', '--no-probs');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.entropySource).toBe('topk-weights');
  });

  it('a text longer than the context is evaluated in windows', async () => {
    const f = join(dir, 'long.txt');
    await writeFile(f, 'one two three four five six seven eight nine ten eleven twelve');
    const r = await cli('routes', '-m', fixture, '-f', f, '-c', '8', '--json', join(dir, 'w.json'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^note: \d+ tokens exceed the context \(8\): evaluated in \d+ windows/);
    const j = JSON.parse(await readFile(join(dir, 'w.json'), 'utf8'));
    expect(j.windows.length).toBeGreaterThan(1);
    expect(j.windows[0]).toEqual({ start: 0, end: 8 });
    expect(j.windows[j.windows.length - 1].end).toBe(j.nTokens);
    expect(j.tokens.map((t: { position: number }) => t.position)).toEqual(Array.from({ length: j.nTokens }, (_, i) => i));
  });

  it('errors', async () => {
    const cases: [string[], RegExp][] = [
      [['routes', '-p', 'x'], /-m FILE is required/],
      [['routes', '-m', 'x.gguf'], /exactly one of -p TEXT or -f TEXTFILE/],
      [['routes', '-m', 'x.gguf', '-p', 'a', '-f', 'b'], /exactly one/],
      [['routes', '-m', 'x.gguf', '-p', 'a', '--backend', 'tpu'], /--backend must be cpu or webgpu/],
      [['routes', '-m', 'x.gguf', '-p', 'a', '--layer', '-1'], /--layer must be an integer ≥ 0/],
      [['routes', '-m', 'x.gguf', '-p', 'a', '--bogus'], /Unknown option/],
      [['routes', '-m', join(dir, 'missing.gguf'), '-p', 'a'], /cannot open .*missing\.gguf: no such file/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(/^moet: error: /);
      expect(r.stderr).toMatch(re);
    }
    const r = await cli('routes', '-m', fixture, '-p', 'a', '--layer', '3');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--layer 3 is out of range; the model has layers 0..2/);
    const dense = await cli('routes', '-m', await fixturePath('qwen3-f32'), '-p', 'a');
    expect(dense.code).toBe(1);
    expect(dense.stderr).toMatch(/dense qwen3 model: it has no experts/);
  });
});
