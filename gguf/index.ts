// moet/gguf: read, write and decode GGUF files. No GPU code; usable without the rest of moet.
export {
  openGGUF,
  parseGGUFHeader,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAX_DIMS,
  GGUF_MAX_TENSOR_NAME_BYTES,
  type GGUFFile,
  type GGUFHeader,
  type OpenGGUFOptions,
} from './reader.js';
export { encodeGGUF, writeGGUF, kv, type GGUFWriteOptions, type GGUFWriteTensor } from './writer.js';
export {
  GGMLType,
  GGUFValueType,
  GGML_TYPE_INFO,
  ggmlTypeName,
  rowBytes,
  tensorBytes,
  type GGMLTypeInfo,
  type GGUFMetadataEntry,
  type GGUFScalar,
  type GGUFTensorInfo,
  type GGUFValue,
} from './types.js';
export { GGUFFormatError, UnsupportedQuantError } from './errors.js';
export * from './quants.js';
