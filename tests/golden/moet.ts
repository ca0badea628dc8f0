// moet under test, behind the one interface the golden tests use, so that the same test body runs
// for every backend. Which backends run: MOET_GOLDEN_BACKENDS (comma-separated), default "cpu".
import { openGGUF } from '../../gguf/reader.js';
import type { Backend } from '../../src/backend.js';
import { configFromGGUF } from '../../src/config.js';
import { loadCpuBackend } from '../../src/cpu/backend.js';

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
  /**
   * The decode path, teacher-forced: evaluates `prompt` as one batch, then `forced` one token per
   * step. Returns [forced.length, nVocab]: row 0 follows the prompt, row i follows forced[i-1]
   * (the last forced token is not evaluated). Fed a reference's greedy output, argmax(row i) ==
   * forced[i] for every i means moet generates the same tokens greedily.
   */
  decode(prompt: number[], forced: number[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** Opens a GGUF file with a moet backend. */
export async function openMoet(path: string, backend: GoldenBackend, contextLength = 256): Promise<MoetUnderTest> {
  if (backend !== 'cpu') throw new Error(`golden tests: backend ${backend} is not wired up yet`);
  const file = await openGGUF(path);
  let be: Backend;
  try {
    const config = configFromGGUF(file.metadata, file.tensorByName);
    be = await loadCpuBackend(file, config);
  } finally {
    await file.close();
  }
  const nVocab = (be as Awaited<ReturnType<typeof loadCpuBackend>>).config.nVocab;
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
    async decode(prompt, forced) {
      const seq = be.createSequence(contextLength);
      try {
        const out = new Float32Array(forced.length * nVocab);
        if (forced.length === 0) return out;
        out.set(await seq.eval(prompt), 0);
        for (let i = 1; i < forced.length; i++) out.set(await seq.eval([forced[i - 1]!]), i * nVocab);
        return out;
      } finally {
        seq.dispose();
      }
    },
    dispose: () => be.dispose(),
  };
}
