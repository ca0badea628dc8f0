// GGUF value types, ggml tensor types and their block geometry.
// Source of truth: ggml docs/gguf.md, gguf-py constants.py (GGML_QUANT_SIZES); see shared/docs/gguf.md.

/** GGUF metadata value types (u32 on disk). */
export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types (u32 on disk). Only the ones moet knows are listed. */
export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_XS = 23,
  BF16 = 30,
  MXFP4 = 39,
}

export interface GGMLTypeInfo {
  name: string;
  /** elements per block */
  blockSize: number;
  /** bytes per block */
  typeSize: number;
}

/** Block geometry of every ggml type the reader accepts (gguf-py GGML_QUANT_SIZES). */
export const GGML_TYPE_INFO: Readonly<Record<number, GGMLTypeInfo>> = {
  [GGMLType.F32]: { name: 'F32', blockSize: 1, typeSize: 4 },
  [GGMLType.F16]: { name: 'F16', blockSize: 1, typeSize: 2 },
  [GGMLType.Q4_0]: { name: 'Q4_0', blockSize: 32, typeSize: 18 },
  [GGMLType.Q4_1]: { name: 'Q4_1', blockSize: 32, typeSize: 20 },
  [GGMLType.Q5_0]: { name: 'Q5_0', blockSize: 32, typeSize: 22 },
  [GGMLType.Q5_1]: { name: 'Q5_1', blockSize: 32, typeSize: 24 },
  [GGMLType.Q8_0]: { name: 'Q8_0', blockSize: 32, typeSize: 34 },
  [GGMLType.Q8_1]: { name: 'Q8_1', blockSize: 32, typeSize: 36 },
  [GGMLType.Q2_K]: { name: 'Q2_K', blockSize: 256, typeSize: 84 },
  [GGMLType.Q3_K]: { name: 'Q3_K', blockSize: 256, typeSize: 110 },
  [GGMLType.Q4_K]: { name: 'Q4_K', blockSize: 256, typeSize: 144 },
  [GGMLType.Q5_K]: { name: 'Q5_K', blockSize: 256, typeSize: 176 },
  [GGMLType.Q6_K]: { name: 'Q6_K', blockSize: 256, typeSize: 210 },
  [GGMLType.Q8_K]: { name: 'Q8_K', blockSize: 256, typeSize: 292 },
  [GGMLType.IQ4_XS]: { name: 'IQ4_XS', blockSize: 256, typeSize: 136 },
  [GGMLType.BF16]: { name: 'BF16', blockSize: 1, typeSize: 2 },
  [GGMLType.MXFP4]: { name: 'MXFP4', blockSize: 32, typeSize: 17 },
};

/** Name of a ggml type id, or `type<N>` for an unknown one. */
export function ggmlTypeName(type: number): string {
  return GGML_TYPE_INFO[type]?.name ?? `type${type}`;
}

/** Bytes of one row of `ne0` elements. Throws RangeError if ne0 is not a multiple of the block size. */
export function rowBytes(type: number, ne0: number): number {
  const info = GGML_TYPE_INFO[type];
  if (!info) throw new RangeError(`unknown ggml type ${type}`);
  if (ne0 % info.blockSize !== 0) {
    throw new RangeError(`row length ${ne0} is not a multiple of ${info.name}'s block size ${info.blockSize}`);
  }
  return (ne0 / info.blockSize) * info.typeSize;
}

/** Bytes of a whole tensor of shape `ne` (ggml order, ne[0] fastest). */
export function tensorBytes(type: number, ne: readonly number[]): number {
  let rows = 1;
  for (let i = 1; i < ne.length; i++) rows *= ne[i]!;
  return rowBytes(type, ne[0] ?? 1) * rows;
}

/** A metadata value as the reader returns it. Arrays of numbers come back as plain arrays
 * (bigint for 64-bit integers), arrays of strings as string[]. */
export type GGUFScalar = number | bigint | boolean | string;
export type GGUFValue = GGUFScalar | GGUFScalar[];

/** One metadata entry with its on-disk type (arrays also carry their element type). */
export interface GGUFMetadataEntry {
  key: string;
  type: GGUFValueType;
  /** element type when `type` is ARRAY */
  arrayType?: GGUFValueType;
  value: GGUFValue;
}

/** One tensor's description from the header. */
export interface GGUFTensorInfo {
  name: string;
  /** ggml order: shape[0] is the fastest-varying dimension (row length). */
  shape: number[];
  type: GGMLType;
  /** offset relative to the start of the data section, as stored */
  relativeOffset: number;
  /** absolute byte offset in the file */
  offset: number;
  /** byte size of the tensor data */
  byteLength: number;
}
