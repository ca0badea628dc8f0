import { MoetError } from '../errors.js';

/**
 * The GGUF's vocabulary cannot be used: an unsupported `tokenizer.ggml.model` or `tokenizer.ggml.pre`,
 * or missing / malformed `tokenizer.*` keys. The message names what moet supports.
 */
export class TokenizerError extends MoetError {}
