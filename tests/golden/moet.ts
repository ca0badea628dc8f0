import { SUPPORTED_ARCHITECTURES, type Architecture } from '../../src/config.js';
// moet under test, behind the one interface the golden tests use, so that the same test body runs
// for every backend. Which backends run: MOET_GOLDEN_BACKENDS (comma-separated), default "cpu,webgpu".
// Everything goes through the public API (loadModel, Model, Session) except the batched
// teacher-forced evaluation, which needs the logits of every position: Session.eval returns only the
// last one, so that one call goes to the model's backend sequence (the prefill path).
import { loadModel, type BackendName, type Model, type Numerics, type StopReason } from '../../src/index.js';

export type GoldenBackend = BackendName;

/** The backends the golden tests run, from MOET_GOLDEN_BACKENDS (default: cpu,webgpu). */
export const GOLDEN_BACKENDS: GoldenBackend[] = (process.env.MOET_GOLDEN_BACKENDS ?? 'cpu,webgpu')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is GoldenBackend => {
    if (s === 'cpu' || s === 'webgpu') return true;
    if (s) throw new Error(`MOET_GOLDEN_BACKENDS: unknown backend "${s}" (use cpu, webgpu)`);
    return false;
  });

/** Whether a backend runs an architecture (every one runs on both). */
export function backendRuns(_backend: GoldenBackend, arch: string): boolean {
  return SUPPORTED_ARCHITECTURES.includes(arch as Architecture);
}

export interface MoetUnderTest {
  readonly model: Model;
  readonly nVocab: number;
  /** logits after every token of `tokens`, evaluated as one batch from position 0: [n, nVocab] */
  teacherForced(tokens: number[]): Promise<Float32Array>;
  /**
   * The decode path, teacher-forced (Session.eval): evaluates `prompt` as one call, then `forced`
   * one token per call. Returns [forced.length, nVocab]: row 0 follows the prompt, row i follows
   * forced[i-1] (the last forced token is not evaluated).
   */
  decode(prompt: number[], forced: number[]): Promise<Float32Array>;
  /** Session.generate with temperature 0 (greedy) after `prompt`: the ids and why it stopped */
  generate(prompt: number[], maxTokens: number): Promise<{ ids: number[]; stopReason: StopReason | undefined }>;
  dispose(): Promise<void>;
}

/** Opens a GGUF file with a moet backend through loadModel (default numerics unless given). */
export async function openMoet(path: string, backend: GoldenBackend, contextLength = 256, numerics?: Numerics): Promise<MoetUnderTest> {
  const model = await loadModel(path, { backend, contextLength, numerics });
  const nVocab = model.config.nVocab;
  return {
    model,
    nVocab,
    async teacherForced(tokens) {
      const seq = model.backend.createSequence(contextLength);
      try {
        return await seq.eval(tokens, { allLogits: true });
      } finally {
        seq.dispose();
      }
    },
    async decode(prompt, forced) {
      const session = model.createSession();
      try {
        const out = new Float32Array(forced.length * nVocab);
        if (forced.length === 0) return out;
        out.set(await session.eval(prompt), 0);
        for (let i = 1; i < forced.length; i++) out.set(await session.eval([forced[i - 1]!]), i * nVocab);
        return out;
      } finally {
        session.dispose();
      }
    },
    async generate(prompt, maxTokens) {
      const session = model.createSession();
      try {
        const ids: number[] = [];
        for await (const t of session.generate(prompt, { maxTokens, temperature: 0 })) ids.push(t.id);
        return { ids, stopReason: session.lastTimings?.stopReason };
      } finally {
        session.dispose();
      }
    },
    dispose: () => model.dispose(),
  };
}
