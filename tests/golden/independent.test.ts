// Golden tests on GGUF files moet did not write (issue 13): tests/independent/ writes them with
// @huggingface/gguf's metadata serializer, its own tensor packing and quant blocks drawn field by
// field, in layouts moet's own writer never produces (shuffled keys and tensors, general.alignment
// ≠ 32, llama.cpp's KV defaults, odd token types, head dim 16, n_embd 96 / 160, 7 and 9 experts,
// every weight type). For each fixture and backend, against llama.cpp (node-llama-cpp 3.22.1, CPU):
//   - teacher-forced over 128 positions (100 with the real vocabulary): mean KL(llama.cpp ‖ moet) < 1e-3 (quantized) or
//     < 1e-5 (all F32), top-1 agreement ≥ 99%;
//   - Session.generate at temperature 0: llama.cpp's 32 greedy tokens;
//   - moet's tokenizer gives llama.cpp's tokens for the reference text.
// And the fixture is fair: llama.cpp agrees with itself (one batch vs one token per call) far
// inside those bounds, so a failure is moet's and not the fixture's sensitivity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INDEPENDENT_SPECS, independentPath } from '../independent/models.js';
import { compareLogits, type DistributionStats } from './compare.js';
import { DEFAULT_TEXT, llamaReference, type LlamaReference } from './llama.js';
import { GOLDEN_BACKENDS, openMoet } from './moet.js';

/** teacher-forced positions (as golden.test.ts: the real-vocabulary fixture is slow on the CPU reference) */
const positionsFor = (vocab: string) => (vocab === 'qwen3' ? 100 : 128);
const TOP1 = 0.99;
const klBound = (f32: boolean) => (f32 ? 1e-5 : 1e-3);
/** text for the odd vocabulary: its special tokens, digits, and words outside its merges */
const TEXT = `${DEFAULT_TEXT} <think>yes</think> <|im_start|> 12345 ümlaut`;

const lines: string[] = [];
const fmt = (x: number) => x.toExponential(2);

describe.each(INDEPENDENT_SPECS.map((s) => [s.name, s] as const))('independent fixture %s', (_name, spec) => {
  const f32 = Object.entries(spec.types).every(([, t]) => t === 'F32');
  let path: string;
  let ref: LlamaReference;
  let self: DistributionStats;
  const positions = positionsFor(spec.vocab);

  beforeAll(async () => {
    path = await independentPath(spec);
    ref = await llamaReference(path, { text: TEXT, positions });
    const inc = await llamaReference(path, { text: TEXT, positions, mode: 'incremental' });
    self = compareLogits(ref.logits, inc.logits, ref.nVocab);
    lines.push(`${spec.name.padEnd(18)} llama.cpp batched vs incremental: KL mean ${fmt(self.meanKL)} top-1 ${self.top1}`);
  });

  it('is fair: llama.cpp agrees with itself (batched vs one token per call) well inside the bounds', () => {
    expect(self.meanKL).toBeLessThan(klBound(f32) / 10);
    expect(self.top1).toBe(1);
  });

  describe.each(GOLDEN_BACKENDS)('[%s]', (backend) => {
    let tf: DistributionStats;
    let generated: number[];
    let tokens: number[];

    beforeAll(async () => {
      const moet = await openMoet(path, backend);
      try {
        tokens = moet.model.tokenize(TEXT);
        tf = compareLogits(ref.logits, await moet.teacherForced(ref.tokens), ref.nVocab);
        generated = (await moet.generate(ref.prompt, ref.greedy.length)).ids;
      } finally {
        await moet.dispose();
      }
      let k = 0;
      while (k < ref.greedy.length && generated[k] === ref.greedy[k]) k++;
      lines.push(`${spec.name.padEnd(18)} ${backend.padEnd(6)} n=${tf.positions} KL mean ${fmt(tf.meanKL)} max ${fmt(tf.maxKL)} top-1 ${tf.top1} greedy ${k}/${ref.greedy.length}`);
    });

    it('tokenizes the reference text as llama.cpp does', () => {
      expect(tokens).toEqual(ref.textTokens);
    });

    it(`teacher-forced: mean KL < ${klBound(f32)}, top-1 ≥ 99%`, () => {
      expect(tf.positions).toBe(positions);
      expect(tf.meanKL).toBeLessThan(klBound(f32));
      expect(tf.top1).toBeGreaterThanOrEqual(TOP1);
    });

    it("Session.generate (temperature 0) yields llama.cpp's 32 greedy tokens", () => {
      expect(ref.greedy.length).toBe(32);
      expect(generated).toEqual(ref.greedy);
    });
  });
});

afterAll(() => {
  if (lines.length) console.log(['', 'independent fixtures vs llama.cpp (KL in nats):', ...lines].join('\n'));
});
