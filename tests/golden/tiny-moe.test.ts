// Golden test on the trained model that ships with moet (models/tiny-moe.gguf, docs/tiny-moe.md):
// trained weights give peaked distributions, where an error that random weights hide shows. Against
// llama.cpp (node-llama-cpp 3.22.1, CPU) on the same file, for every backend in MOET_GOLDEN_BACKENDS
// (default cpu,webgpu), moet's default numerics:
//   - the tokenizer gives llama.cpp's tokens for a text of the three domains (held-out prose, Python, SVG);
//   - teacher-forced over 192 positions of that text: mean KL(llama.cpp ‖ moet) < 1e-3, top-1 ≥ 99%;
//   - Session.generate at temperature 0 from its first 8 tokens: llama.cpp's 64 greedy tokens.
// And the text is fair: llama.cpp agrees with itself on it (one batch vs one token per call) far inside
// those bounds. The first held-out documents are not: at position 181 of their text two experts of
// layer 3 are within 1.4e-3 of each other in the router (0.21364 vs 0.21335), llama.cpp's own two code
// paths choose differently there (KL 1.4e-2 at that position), and so does moet's GPU (top-1 98.96%,
// greedy 59/64 there; CPU: 100%, 64/64). docs/tiny-moe.md has both figures. The text below is made of
// the second held-out document of each domain.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyHeldOutPath, tinyModelPath } from '../../src/index.js';
import { compareLogits, type DistributionStats } from './compare.js';
import { llamaReference, type LlamaReference } from './llama.js';
import { GOLDEN_BACKENDS, openMoet } from './moet.js';

const POSITIONS = 192;
const GENERATE = 64;
/** llama.cpp's figures are cached under the file's content hash (its name does not change with it) */
const cacheDir = join(
  import.meta.dirname, '..', 'fixtures', 'generated',
  `tiny-moe-${createHash('sha256').update(readFileSync(tinyModelPath)).digest('hex').slice(0, 12)}`,
);

/** The second held-out text of each of prose, code and SVG, about 1000 characters each. */
function referenceText(): string {
  const docs = readFileSync(tinyHeldOutPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { domain: string; text: string });
  return ['prose', 'code', 'svg'].map((d) => docs.filter((x) => x.domain === d)[1]!.text.slice(0, 1000)).join('\n');
}

const lines: string[] = [];
const fmt = (x: number) => x.toExponential(2);

describe('golden: the shipped tiny MoE vs llama.cpp', () => {
  let ref: LlamaReference;
  let self: DistributionStats;
  let selfGreedy: number[];
  const text = referenceText();

  beforeAll(async () => {
    mkdirSync(cacheDir, { recursive: true });
    const o = { text, positions: POSITIONS, generate: GENERATE, cacheDir };
    ref = await llamaReference(tinyModelPath, o);
    const inc = await llamaReference(tinyModelPath, { ...o, mode: 'incremental' });
    self = compareLogits(ref.logits, inc.logits, ref.nVocab);
    selfGreedy = inc.greedy;
    lines.push(`tiny-moe llama.cpp batched vs incremental: KL mean ${fmt(self.meanKL)} max ${fmt(self.maxKL)} top-1 ${(100 * self.top1).toFixed(1)}%`);
  });

  it('is fair: llama.cpp agrees with itself (batched vs one token per call) well inside the bounds', () => {
    expect(self.meanKL).toBeLessThan(1e-4);
    expect(self.top1).toBe(1);
    expect(selfGreedy).toEqual(ref.greedy);
  });

  describe.each(GOLDEN_BACKENDS)('[%s]', (backend) => {
    let tf: DistributionStats;
    let generated: number[];
    let tokens: number[];

    beforeAll(async () => {
      const moet = await openMoet(tinyModelPath, backend, 512);
      try {
        tokens = moet.model.tokenize(text);
        tf = compareLogits(ref.logits, await moet.teacherForced(ref.tokens), ref.nVocab);
        generated = (await moet.generate(ref.prompt, GENERATE)).ids;
      } finally {
        await moet.dispose();
      }
      let k = 0;
      while (k < ref.greedy.length && generated[k] === ref.greedy[k]) k++;
      lines.push(`tiny-moe ${backend.padEnd(6)} n=${tf.positions} KL mean ${fmt(tf.meanKL)} max ${fmt(tf.maxKL)} top-1 ${(100 * tf.top1).toFixed(1)}% greedy ${k}/${ref.greedy.length}`);
    });

    it('tokenizes the reference text as llama.cpp does', () => {
      expect(tokens).toEqual(ref.textTokens);
    });

    it(`teacher-forced over ${POSITIONS} positions: mean KL < 1e-3, top-1 ≥ 99%`, () => {
      expect(tf.positions).toBe(POSITIONS);
      expect(tf.meanKL).toBeLessThan(1e-3);
      expect(tf.top1).toBeGreaterThanOrEqual(0.99);
    });

    it(`Session.generate (temperature 0) yields llama.cpp's ${GENERATE} greedy tokens`, () => {
      expect(ref.greedy.length).toBe(GENERATE);
      expect(generated).toEqual(ref.greedy);
    });
  });
});

afterAll(() => {
  if (lines.length) console.log(['', 'shipped tiny MoE vs llama.cpp (KL in nats):', ...lines].join('\n'));
});
