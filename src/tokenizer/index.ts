export { Tokenizer, TokenAttr, type EncodeOptions, type DecodeOptions, type StreamDecoder } from './tokenizer.js';
export { TokenizerError } from './errors.js';
export { PRE_TOKENIZERS, type PreTokenizer } from './pretokenizer.js';
