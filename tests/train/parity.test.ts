// The training script's PyTorch forward (train/model.py) against moet's CPU reference on the file
// train/export.ts writes from its export: a small random qwen3moe (GQA, head dim 16, 6 experts, top-2,
// norms away from 1), tied and untied LM head, F32 weights, 40 positions teacher-forced. PyTorch
// computes in float64, moet in f32 (numerics 'exact', f32 KV cache): logits within 1e-4.
//
// Needs python3 with torch (Debian's python3-torch). Without it the test is skipped, except in CI
// (CI=true), where a missing torch fails: .ci/run installs python3-torch.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainBpe } from '../../train/bpe.js';
import { exportGGUF } from '../../train/export.js';
import { EOT, type VocabFile } from '../../train/vocab.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { loadModel } from '../../src/index.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The first python3 that imports torch (MOET_PYTHON, then python3 on PATH, then Debian's). */
function torchPython(): string | null {
  const candidates = [process.env.MOET_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return null;
}

const python = torchPython();
const dir = mkdtempSync(join(tmpdir(), 'moet-parity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 320 tokens: bytes, the merges learned from a short text, fillers, <|endoftext|> */
function smallVocab(): VocabFile {
  const text = 'the quick brown fox jumps over the lazy dog; def main(): return 0\n<svg width="16"/>\n{"a": 1}\n';
  const bpe = trainBpe([text.repeat(3), 'there then these those theory'], 63);
  const tokens = [...bpe.tokens];
  while (tokens.length < 319) tokens.push(`[PAD${tokens.length}]`);
  return { tokens: [...tokens, EOT], merges: bpe.merges, eot: 319 };
}

describe('train/model.py forward vs moet CPU reference', () => {
  it('has python3 with torch (required in CI)', () => {
    if (process.env.CI === 'true') expect(python, 'python3 cannot import torch: apt-get install python3-torch').not.toBeNull();
  });

  describe.each([['untied'], ['tied']])('%s LM head', (kind) => {
    it.skipIf(!python && process.env.CI !== 'true')('logits agree within 1e-4 over 40 positions', async () => {
      expect(python).not.toBeNull();
      const out = join(dir, kind);
      execFileSync(python!, [join(ROOT, 'train', 'reference.py'), '--out', out, '--seed', '7', ...(kind === 'tied' ? ['--tied'] : [])], {
        env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' },
        stdio: ['ignore', 'inherit', 'inherit'],
        timeout: 120_000,
      });
      const gguf = join(out, 'model.gguf');
      await exportGGUF(join(out, 'export'), smallVocab(), gguf, { type: 'f32' });
      const tokens = JSON.parse(readFileSync(join(out, 'tokens.json'), 'utf8')) as number[];
      const buf = readFileSync(join(out, 'logits.f64'));
      const ref = new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
      const model = await loadModel(gguf, { backend: 'cpu', contextLength: 128, numerics: 'exact' });
      try {
        // plain f32 throughout: numerics 'exact' and an f32 KV cache (the default cache is F16, as llama.cpp's)
        expect(model.backend).toBeInstanceOf(CpuBackend);
        const seq = (model.backend as CpuBackend).createSequence(128, { kvF16: false });
        const got = await seq.eval(tokens, { allLogits: true });
        seq.dispose();
        expect(got.length).toBe(ref.length);
        let worst = 0;
        let at = 0;
        for (let i = 0; i < ref.length; i++) {
          const d = Math.abs(got[i]! - ref[i]!);
          if (d > worst) [worst, at] = [d, i];
        }
        console.log(`${kind}: max |logit diff| ${worst.toExponential(2)} at position ${Math.floor(at / 320)}, token ${at % 320}`);
        expect(worst, `position ${Math.floor(at / 320)}, token ${at % 320}: moet ${got[at]} vs torch ${ref[at]}`).toBeLessThan(1e-4);
      } finally {
        await model.dispose();
      }
    }, 180_000);
  });
});
