// moet under test, behind the one interface the golden tests use, so that the same test body runs
// for every backend. Which backends run: MOET_GOLDEN_BACKENDS (comma-separated), default "cpu".
import { openGGUF } from '../../gguf/reader.js';
import type { Backend } from '../../src/backend.js';
import { configFromGGUF } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';

export type GoldenBackend = 'cpu' | 'webgpu';

/** The backends the golden tests run, from MOET_GOLDEN_BACKENDS (default: cpu). */
export const GOLDEN_BACKENDS: GoldenBackend[] = (process.env.MOET_GOLDEN_BACKENDS ?? 'cpu')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is GoldenBackend => {
    if (s === 'cpu' || s === 'webgpu') return true;
    if (s) throw new Error(`MOET_GOLDEN_BACKENDS: unknown backend "${s}" (use cpu, webgpu)`);
    return false;
  });

export interface MoetUnderTest {
  readonly nVocab: number;
  /** logits after every token of `tokens`, evaluated as one batch from position 0: [n, nVocab] */
  teacherForced(tokens: number[]): Promise<Float32Array>;
  /** `n` tokens generated greedily (argmax, first on ties) after `prompt`, one decode step each */
  greedy(prompt: number[], n: number): Promise<number[]>;
  dispose(): Promise<void>;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Opens a GGUF file with a moet backend. */
export async function openMoet(path: string, backend: GoldenBackend, contextLength = 256): Promise<MoetUnderTest> {
  if (backend !== 'cpu') throw new Error(`golden tests: backend ${backend} is not wired up yet`);
  const file = await openGGUF(path);
  let be: Backend;
  try {
    const config = configFromGGUF(file.metadata, file.tensorByName);
    be = await CpuBackend.load(file, config);
  } finally {
    await file.close();
  }
  const nVocab = (be as CpuBackend).config.nVocab;
  return {
    nVocab,
    async teacherForced(tokens) {
      const seq = be.createSequence(contextLength);
      try {
        return await seq.eval(tokens, { allLogits: true });
      } finally {
        seq.dispose();
      }
    },
    async greedy(prompt, n) {
      const seq = be.createSequence(contextLength);
      try {
        const out: number[] = [];
        let logits = await seq.eval(prompt);
        for (let i = 0; i < n; i++) {
          const id = argmax(logits);
          out.push(id);
          if (i + 1 < n) logits = await seq.eval([id]);
        }
        return out;
      } finally {
        seq.dispose();
      }
    },
    dispose: () => be.dispose(),
  };
}
