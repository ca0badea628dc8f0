// Typed errors of moet. Each says what is wrong and what to do about it.
export { GGUFFormatError, UnsupportedQuantError } from '../gguf/errors.js';

/** Base class of moet's own errors (GGUF errors have their own base in moet/gguf). */
export class MoetError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The file's `general.architecture` is not one moet runs, or a required key is missing. */
export class UnsupportedArchitectureError extends MoetError {}

/** A model is missing a tensor its architecture needs, or a tensor has the wrong shape. */
export class ModelFormatError extends MoetError {}

/** No WebGPU adapter could be found. */
export class WebGPUUnavailableError extends MoetError {}

/** The GPU device was lost while work was pending. */
export class DeviceLostError extends MoetError {}

/** A session was asked to go past its context length. */
export class ContextOverflowError extends MoetError {
  constructor(readonly contextLength: number, readonly requested: number) {
    super(
      `context overflow: ${requested} tokens do not fit in the context of ${contextLength}; ` +
        `create the model with a larger contextLength or call session.reset()`,
    );
  }
}

/** An operation was aborted through an AbortSignal. */
export class AbortError extends MoetError {}

/** A call used an object after dispose(). */
export class DisposedError extends MoetError {}

/**
 * A GPU memory budget (loadModel's `gpuMemoryBudget`, `--gpu-memory`) too small for the model: the
 * weights that always stay on the GPU plus, per Mixture-of-Experts layer, the experts one token
 * uses (a decode step runs them together) must fit. `minimum` is the smallest budget that loads.
 */
export class GpuMemoryBudgetError extends MoetError {
  constructor(
    message: string,
    /** the budget asked for, in bytes */
    readonly budget: number,
    /** the smallest budget this model loads with, in bytes */
    readonly minimum: number,
  ) {
    super(message);
  }
}
