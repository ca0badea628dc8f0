// The public API of moet. Nothing else is exported from the package root; see docs/api.md.

export {
  loadModel,
  DEFAULT_BACKEND,
  DEFAULT_CONTEXT_LENGTH,
  type Model,
  type Session,
  type BackendName,
  type LoadModelOptions,
  type ModelInfo,
  type ExpertInfo,
  type QuantMixEntry,
  type TokenizeOptions,
  type DetokenizeOptions,
  type GenerateOptions,
  type GeneratedToken,
  type GenerationTimings,
  type StopReason,
  type SessionEvalOptions,
} from './model.js';

export type { Numerics } from './backend.js';

export type { GpuMemoryBudget, ExpertCacheOptions, ExpertCacheStats, ExpertLayerStats } from './gpu/expert-cache.js';
export type { EvictionPolicy } from './gpu/expert-slots.js';

export { tinyModelPath, tinyHeldOutPath } from './tiny.js';

export * from './trace/index.js';

export {
  CHATML_TEMPLATE,
  type ChatMessage,
  type ChatOptions,
  type ChatTemplateOptions,
  type ChatChunk,
  type ChatChunkKind,
  type ChatResult,
  type ChatToolCall,
} from './chat.js';

export { startServer, DEFAULT_MAX_BODY_BYTES, type ServerOptions, type MoetServer } from './server/index.js';

export { Sampler, DEFAULT_SAMPLER_OPTIONS, type SamplerOptions } from './sampler.js';

export type { Tokenizer, StreamDecoder } from './tokenizer/index.js';

export {
  MoetError,
  GGUFFormatError,
  UnsupportedQuantError,
  UnsupportedArchitectureError,
  ModelFormatError,
  WebGPUUnavailableError,
  DeviceLostError,
  ContextOverflowError,
  AbortError,
  DisposedError,
  GpuMemoryBudgetError,
} from './errors.js';
export { TokenizerError } from './tokenizer/index.js';
