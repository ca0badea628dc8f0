// Golden tests: moet against llama.cpp (node-llama-cpp 3.22.1, CPU) on every fixture, for every
// backend in MOET_GOLDEN_BACKENDS (default: cpu,webgpu; both run every fixture: qwen3moe, qwen3,
// qwen35moe, qwen35).
// See shared/docs/matching-llamacpp.md.
//
// The primary assertion: moet with its default numerics ('llamacpp': activations rounded before
// every quantized product, and the F16-cache attention, exactly as llama.cpp's CPU backend does it;
// src/backend.ts Numerics) against llama.cpp on the SAME file, the quantized fixture itself, with the
// targets as written:
//   - teacher-forced over ≥ 64 positions: mean KL(llama.cpp ‖ moet) < 1e-3, top-1 agreement ≥ 99%;
//   - the decode path (one token per call, fed llama.cpp's greedy tokens): the same 32 greedy picks;
//   - Session.generate at temperature 0: llama.cpp's 32 greedy tokens.
// Additionally, for quantized fixtures, numerics 'exact' (plain f32) against llama.cpp on the F32 twin
// (tests/fixtures/make.ts: the same weights stored as the f32 values their blocks decode to, which
// llama.cpp multiplies exactly): teacher-forced mean KL below a much tighter per-backend bound.
//
// Each fixture line of the printed table: positions, mean/max KL and top-1 against llama.cpp on the
// file, the decode path's KL and greedy match, Session.generate's match, and the twin check.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, fixturePath, fixtureSpec, type FixtureName } from '../fixtures/make.js';
import { argmax, compareLogits, type DistributionStats } from './compare.js';
import { DEFAULT_TEXT, llamaReference, type LlamaReference } from './llama.js';
import { backendRuns, GOLDEN_BACKENDS, openMoet, type GoldenBackend } from './moet.js';

/** shared/docs/matching-llamacpp.md */
const TARGET = { meanKL: 1e-3, top1: 0.99 };
/** mean KL bound of numerics 'exact' against llama.cpp on the F32 twin (exact f32 on both sides), per backend */
const TWIN_KL: Record<GoldenBackend, number> = { cpu: 1e-5, webgpu: 1e-3 };

/** teacher-forced positions per fixture (the real-vocabulary one is slow on the CPU reference) */
function positionsFor(name: FixtureName): number {
  return fixtureSpec(name).vocab === 'qwen3' ? 100 : 128;
}

/** first index where moet's argmax differs from the forced (reference greedy) token; n if none */
function greedyMatch(rows: Float32Array, forced: number[], nVocab: number): number {
  for (let i = 0; i < forced.length; i++) {
    if (argmax(rows.subarray(i * nVocab, (i + 1) * nVocab)) !== forced[i]) return i;
  }
  return forced.length;
}

function commonPrefix(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

interface FixtureResult {
  fixture: string;
  backend: GoldenBackend;
  /** default numerics vs llama.cpp on the file: teacher-forced */
  tf: DistributionStats;
  /** the decode path fed llama.cpp's greedy tokens: step distributions, and steps until moet's argmax first differs */
  decode: DistributionStats;
  decodeGreedy: number;
  /** Session.generate's agreement with llama.cpp's greedy tokens */
  generate: number;
  generated: number;
  /** numerics 'exact' vs llama.cpp on the F32 twin (quantized fixtures only) */
  twin: DistributionStats | null;
}

const results: FixtureResult[] = [];

const fmt = (x: number) => x.toExponential(2);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function line(r: FixtureResult): string {
  const head = `${r.fixture.padEnd(26)} ${r.backend.padEnd(6)} n=${r.tf.positions}`;
  const main =
    `vs llama.cpp (same file): KL mean ${fmt(r.tf.meanKL)} max ${fmt(r.tf.maxKL)} top-1 ${pct(r.tf.top1)} | ` +
    `decode KL ${fmt(r.decode.meanKL)} greedy ${r.decodeGreedy}/${r.generated} | generate ${r.generate}/${r.generated}`;
  if (!r.twin) return `${head} | ${main}`;
  return `${head} | ${main} | exact vs F32 twin: KL mean ${fmt(r.twin.meanKL)} top-1 ${pct(r.twin.top1)}`;
}

/**
 * How many of the reference's greedy tokens Session.generate reproduced. llama.cpp's greedy loop
 * runs through end-of-generation tokens; moet stops there (yielding the EOG id only when it flushes
 * held-back text), so stopping exactly on the reference's EOG token counts as the full sequence.
 */
function generateAgreement(ids: number[], stopReason: string | undefined, ref: number[], eog: ReadonlySet<number>): number {
  const k = commonPrefix(ids, ref);
  if (k === ref.length) return k;
  if (stopReason === 'eog' && k === ids.length) {
    if (eog.has(ref[k]!) || (k > 0 && eog.has(ids[k - 1]!))) return ref.length;
  }
  return k;
}

describe.each(GOLDEN_BACKENDS)('golden vs llama.cpp [%s]', (backend) => {
  describe.each(FIXTURES.filter((f) => backendRuns(backend, fixtureSpec(f).arch)))('%s', (name) => {
    let r: FixtureResult;
    let ref: LlamaReference;
    let moetAddsBos = false;
    let moetTokens: number[];

    beforeAll(async () => {
      const quantized = fixtureSpec(name).quant !== 'f32';
      const positions = positionsFor(name);
      const path = await fixturePath(name);
      ref = await llamaReference(path, { positions });
      const V = ref.nVocab;
      const moet = await openMoet(path, backend);
      let tf: Float32Array;
      let rows: Float32Array;
      let gen: Awaited<ReturnType<typeof moet.generate>>;
      const eog = moet.model.tokenizer.eogIds;
      try {
        expect(moet.nVocab).toBe(V);
        // node-llama-cpp's tokenize never adds BOS; moet adds it where the vocabulary says so (SPM)
        const tok = moet.model.tokenizer;
        moetTokens = moet.model.tokenize(DEFAULT_TEXT);
        if (tok.addBos && moetTokens[0] === tok.bosId) moetTokens = moetTokens.slice(1);
        moetAddsBos = tok.addBos;
        tf = await moet.teacherForced(ref.tokens);
        rows = await moet.decode(ref.prompt, ref.greedy);
        gen = await moet.generate(ref.prompt, ref.greedy.length);
      } finally {
        await moet.dispose();
      }
      let twin: DistributionStats | null = null;
      if (quantized) {
        const refT = await llamaReference(await fixturePath(name, 'f32twin'), { positions });
        const exact = await openMoet(path, backend, 256, 'exact');
        try {
          twin = compareLogits(refT.logits, await exact.teacherForced(refT.tokens), V);
        } finally {
          await exact.dispose();
        }
      }
      r = {
        fixture: name,
        backend,
        tf: compareLogits(ref.logits, tf, V),
        decode: compareLogits(ref.greedyLogits, rows, V),
        decodeGreedy: greedyMatch(rows, ref.greedy, V),
        generate: generateAgreement(gen.ids, gen.stopReason, ref.greedy, eog),
        generated: ref.greedy.length,
        twin,
      };
      results.push(r);
      console.log(line(r));
    });

    it('tokenizes the reference text exactly as llama.cpp does', () => {
      expect(moetTokens).toEqual(ref.textTokens);
      expect(moetAddsBos, 'BOS added by moet exactly where the vocabulary asks for it').toBe(fixtureSpec(name).vocab === 'mistral');
    });

    it(`teacher-forced on the same file: mean KL < ${TARGET.meanKL}, top-1 ≥ ${100 * TARGET.top1}% over ≥ 64 positions`, () => {
      expect(r.tf.positions).toBeGreaterThanOrEqual(64);
      expect(r.tf.meanKL).toBeLessThan(TARGET.meanKL);
      expect(r.tf.top1).toBeGreaterThanOrEqual(TARGET.top1);
    });

    it('decode path on the same file: the 32 greedy picks agree, step mean KL < 1e-3', () => {
      expect(r.generated).toBe(32);
      expect(r.decodeGreedy).toBe(r.generated);
      expect(r.decode.meanKL).toBeLessThan(TARGET.meanKL);
    });

    it("Session.generate (temperature 0) on the same file yields llama.cpp's 32 greedy tokens", () => {
      expect(r.generate).toBe(r.generated);
    });

    it(`numerics 'exact' against llama.cpp on the F32 twin: mean KL < ${TWIN_KL[backend]}, top-1 ≥ 99%`, () => {
      if (!r.twin) return; // an F32 fixture is its own twin: covered above
      expect(r.twin.meanKL).toBeLessThan(TWIN_KL[backend]);
      expect(r.twin.top1).toBeGreaterThanOrEqual(TARGET.top1);
    });
  });
});

afterAll(() => {
  if (results.length === 0) return;
  console.log(['', 'golden summary (KL in nats, mean over positions):', ...results.map(line)].join('\n'));
});
