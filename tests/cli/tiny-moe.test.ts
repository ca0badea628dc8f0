// The model that ships with moet (models/tiny-moe.gguf, docs/tiny-moe.md): it is in the package, the
// public API points at it, `moet demo` runs it on both backends, `moet routes --specialization`
// measures expert specialization on a labelled set.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/app.js';
import { DEMO_PROMPTS } from '../../src/cli/demo.js';
import { loadModel, tinyHeldOutPath, tinyModelPath } from '../../src/index.js';

const ROOT = join(import.meta.dirname, '..', '..');

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) } });
  return { code, stdout, stderr };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moet-tiny-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the shipped tiny MoE', () => {
  it('tinyModelPath is a qwen3moe of at most 8 MB that loadModel opens', async () => {
    expect(tinyModelPath).toBe(join(ROOT, 'models', 'tiny-moe.gguf'));
    expect((await stat(tinyModelPath)).size).toBeLessThanOrEqual(8 * 1024 * 1024);
    const model = await loadModel(tinyModelPath, { backend: 'cpu' });
    try {
      expect(model.info.architecture).toBe('qwen3moe');
      expect(model.config).toMatchObject({ nLayer: 4, nExpert: 8, nExpertUsed: 2, nVocab: 4096 });
    } finally {
      await model.dispose();
    }
  });

  it('is in the npm package, with its held-out set', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, maxBuffer: 64 << 20 }, (e, so) => (e ? reject(e) : resolve(so))),
    );
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    expect(files).toContain('models/tiny-moe.gguf');
    expect(files).toContain('models/tiny-moe-heldout.jsonl');
    const lines = (await readFile(tinyHeldOutPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { domain: string });
    expect(new Set(lines.map((l) => l.domain))).toEqual(new Set(['prose', 'code', 'svg', 'json']));
  });

  it.each(['cpu', 'webgpu'])('moet demo runs it on %s: one prompt per domain, time to first token', async (backend) => {
    const r = await cli('demo', '-n', '8', '--backend', backend);
    expect(r.code, r.stderr).toBe(0);
    for (const { domain, prompt } of DEMO_PROMPTS) {
      expect(r.stderr).toContain(`--- ${domain} ---`);
      expect(r.stdout).toContain(prompt);
    }
    expect(r.stderr).toContain(`backend ${backend}`);
    expect(r.stderr).toMatch(/first token \d+\.\d+ s after the process started/);
  });

  it('moet routes --specialization: per-layer mutual information on a labelled set', async () => {
    const docs = (await readFile(tinyHeldOutPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { domain: string; text: string });
    const set = ['prose', 'code', 'svg', 'json'].flatMap((d) => docs.filter((x) => x.domain === d).slice(0, 2).map((x) => ({ domain: d, text: x.text.slice(0, 300) })));
    const setPath = join(dir, 'set.jsonl');
    await writeFile(setPath, set.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const jsonPath = join(dir, 'spec.json');
    const svgPath = join(dir, 'spec.svg');
    const r = await cli('routes', '--specialization', '--domains', setPath, '--backend', 'cpu', '--json', jsonPath, '--svg', svgPath);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('I(domain; expert)');
    const j = JSON.parse(await readFile(jsonPath, 'utf8')) as { domains: string[]; layers: { mutualInformation: number; share: number[][] }[]; texts: number };
    expect(j.texts).toBe(8);
    expect(j.domains).toEqual(['prose', 'code', 'svg', 'json']);
    expect(j.layers).toHaveLength(4);
    for (const L of j.layers) {
      expect(L.mutualInformation).toBeGreaterThan(0);
      expect(L.share).toHaveLength(8);
    }
    expect(await readFile(svgPath, 'utf8')).toContain('Expert specialization by domain');
  });

  it('moet routes --domains refuses a file that is not labelled JSON lines', async () => {
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"text": "no domain"}\n');
    const r = await cli('routes', '--domains', bad, '--backend', 'cpu');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('line 1 has no string "domain" and "text"');
  });
});
