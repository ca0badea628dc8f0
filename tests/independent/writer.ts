// A second, independent source of GGUF files for the golden tests (issue 13).
//
// Nothing here comes from moet's own writer (gguf/writer.ts), its codecs (gguf/quants.ts) or its
// fixture generator (tests/fixtures, src/synth): the metadata section is serialized by
// @huggingface/gguf's serializeGgufMetadata, the tensor infos and data by the few lines below, and
// the quantized blocks are not made by quantizing anything: each block's fields (scales, mins,
// quants) are drawn at random straight from the block layouts in shared/docs/quants.md, so a file
// holds bit patterns a quantizer might never produce (6-bit mins above the scales, Q6_K negative
// scales, every qh bit pattern). What the weights mean is whatever llama.cpp decodes them to.
//
// The choices moet's writer never makes are parameters of the model description (models.ts):
// the order of the metadata keys, the order of the tensors, general.alignment, which optional keys
// are left to llama.cpp's defaults.
import { writeFileSync } from 'node:fs';
import { serializeGgufMetadata, GGUFValueType, type GGUFTypedMetadata } from '@huggingface/gguf';

// ---- a PRNG of its own (xoshiro128**, seeded from a string by FNV-1a + splitmix32) ---------------

export class Xoshiro {
  private s = new Uint32Array(4);
  constructor(seed: string) {
    let h = 0x811c9dc5;
    for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
    for (let i = 0; i < 4; i++) {
      h = (h + 0x9e3779b9) >>> 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r;
  }
  /** uniform in [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }
  /** uniform integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  /** standard normal (Box-Muller) */
  normal(): number {
    const u = 1 - this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float());
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---- f16 / bf16 bit patterns ---------------------------------------------------------------------

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE half bits of a finite f32 value, round to nearest even (no NaN/inf handling needed here). */
export function halfBits(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7bff; // clamp to the largest finite half
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

// ---- random blocks, per ggml type ----------------------------------------------------------------

/** ggml type ids (shared/docs/gguf.md) with block geometry (elements, bytes). */
export const TYPES = {
  F32: { id: 0, block: 1, bytes: 4 },
  F16: { id: 1, block: 1, bytes: 2 },
  Q4_0: { id: 2, block: 32, bytes: 18 },
  Q4_1: { id: 3, block: 32, bytes: 20 },
  Q5_0: { id: 6, block: 32, bytes: 22 },
  Q5_1: { id: 7, block: 32, bytes: 24 },
  Q8_0: { id: 8, block: 32, bytes: 34 },
  Q4_K: { id: 12, block: 256, bytes: 144 },
  Q5_K: { id: 13, block: 256, bytes: 176 },
  Q6_K: { id: 14, block: 256, bytes: 210 },
  BF16: { id: 30, block: 1, bytes: 2 },
} as const;
export type TypeName = keyof typeof TYPES;

/**
 * `count` values (a whole number of blocks) of type `type` whose decoded values have about the
 * standard deviation `std` and mean about 0. Float types: normal values. Quantized types: random
 * fields (the per-block scales are themselves random around the value that gives `std`).
 */
export function randomBlocks(type: TypeName, count: number, std: number, rng: Xoshiro): Uint8Array {
  const t = TYPES[type];
  if (count % t.block !== 0) throw new Error(`${type}: ${count} values is not a whole number of ${t.block}-blocks`);
  const nb = count / t.block;
  const out = new Uint8Array(nb * t.bytes);
  const v = new DataView(out.buffer);
  const jitter = () => 0.6 + 0.8 * rng.float(); // per-block scale spread
  for (let b = 0; b < nb; b++) {
    const o = b * t.bytes;
    switch (type) {
      case 'F32':
        v.setFloat32(o, std * rng.normal(), true);
        break;
      case 'F16':
        v.setUint16(o, halfBits(std * rng.normal()), true);
        break;
      case 'BF16': {
        f32buf[0] = std * rng.normal();
        v.setUint16(o, u32buf[0]! >>> 16, true);
        break;
      }
      case 'Q8_0': // half d; i8 qs[32]; uniform q in [-127, 127] has std 73.3
        v.setUint16(o, halfBits((std / 73.3) * jitter()), true);
        for (let i = 0; i < 32; i++) v.setInt8(o + 2 + i, rng.int(-127, 127));
        break;
      case 'Q4_0': // half d; u8 qs[16]; q - 8 with q uniform in [0, 15]: std 4.61
        v.setUint16(o, halfBits((std / 4.61) * jitter()), true);
        for (let i = 0; i < 16; i++) out[o + 2 + i] = rng.int(0, 255);
        break;
      case 'Q4_1': { // half d; half m; u8 qs[16]; d*q + m
        const d = (std / 4.61) * jitter();
        v.setUint16(o, halfBits(d), true);
        v.setUint16(o + 2, halfBits(-7.5 * d + 0.5 * d * rng.normal()), true);
        for (let i = 0; i < 16; i++) out[o + 4 + i] = rng.int(0, 255);
        break;
      }
      case 'Q5_0': // half d; u32 qh; u8 qs[16]; q - 16, q uniform in [0, 31]: std 9.23
        v.setUint16(o, halfBits((std / 9.23) * jitter()), true);
        v.setUint32(o + 2, rng.u32(), true);
        for (let i = 0; i < 16; i++) out[o + 6 + i] = rng.int(0, 255);
        break;
      case 'Q5_1': { // half d; half m; u32 qh; u8 qs[16]
        const d = (std / 9.23) * jitter();
        v.setUint16(o, halfBits(d), true);
        v.setUint16(o + 2, halfBits(-15.5 * d + 0.5 * d * rng.normal()), true);
        v.setUint32(o + 4, rng.u32(), true);
        for (let i = 0; i < 16; i++) out[o + 8 + i] = rng.int(0, 255);
        break;
      }
      case 'Q4_K':
      case 'Q5_K': {
        // half d; half dmin; u8 scales[12]; (Q5_K: u8 qh[32];) u8 qs[128]
        // value = d*sc*q - dmin*m with 6-bit sc, m; q in [0, 15] (Q5_K: [0, 31])
        const qMean = type === 'Q4_K' ? 7.5 : 15.5;
        const qStd = type === 'Q4_K' ? 4.61 : 9.23;
        const sc: number[] = [];
        const mn: number[] = [];
        for (let j = 0; j < 8; j++) {
          const s = rng.int(16, 63);
          sc.push(s);
          // m ≈ sc keeps the sub-block's mean near 0 (dmin = d·qMean below), off by a few steps
          mn.push(Math.max(0, Math.min(63, s + rng.int(-3, 3))));
        }
        const d = (std / (qStd * 40)) * jitter();
        v.setUint16(o, halfBits(d), true);
        v.setUint16(o + 2, halfBits(d * qMean), true);
        // 6-bit packing: j < 4 in the low bits of bytes j (scale) and j+4 (min); j >= 4 split between
        // the low/high nibbles of byte j+4 and the top two bits of bytes j-4 (scale) and j (min)
        const s12 = new Uint8Array(12);
        for (let j = 0; j < 4; j++) {
          s12[j] = (sc[j]! & 63) | ((sc[j + 4]! >> 4) << 6);
          s12[j + 4] = (mn[j]! & 63) | ((mn[j + 4]! >> 4) << 6);
          s12[j + 8] = (sc[j + 4]! & 15) | ((mn[j + 4]! & 15) << 4);
        }
        out.set(s12, o + 4);
        const rest = type === 'Q4_K' ? 128 : 160;
        for (let i = 0; i < rest; i++) out[o + 16 + i] = rng.int(0, 255);
        break;
      }
      case 'Q6_K': {
        // u8 ql[128]; u8 qh[64]; i8 scales[16]; half d; value = d*sc*(q - 32), q in [0, 63]: std 18.5
        for (let i = 0; i < 192; i++) out[o + i] = rng.int(0, 255);
        for (let i = 0; i < 16; i++) {
          const s = rng.int(12, 100);
          v.setInt8(o + 192 + i, rng.float() < 0.2 ? -s : s);
        }
        v.setUint16(o + 208, halfBits((std / (18.5 * 56)) * jitter()), true);
        break;
      }
    }
  }
  return out;
}

// ---- the file ------------------------------------------------------------------------------------

export interface IndependentTensor {
  name: string;
  /** ggml order: ne0 (contiguous) first */
  shape: number[];
  type: TypeName;
  data: Uint8Array;
}

/**
 * Writes a GGUF v3 file: the metadata section by @huggingface/gguf (in the order of the object's
 * keys), then the tensor infos and the data in the order of `tensors`, packed as llama.cpp requires
 * (each tensor at the next multiple of `alignment`, which must equal general.alignment when the
 * metadata has it).
 */
export function writeIndependentGGUF(path: string, metadata: Record<string, { type: GGUFValueType; value: unknown; subType?: GGUFValueType }>, tensors: IndependentTensor[], alignment = 32): void {
  const declared = metadata['general.alignment']?.value;
  if ((declared ?? 32) !== alignment) throw new Error(`alignment ${alignment} differs from general.alignment ${String(declared)}`);
  const typed = {
    version: { value: 3, type: GGUFValueType.UINT32 },
    tensor_count: { value: BigInt(tensors.length), type: GGUFValueType.UINT64 },
    kv_count: { value: 0n, type: GGUFValueType.UINT64 },
    ...metadata,
  } as unknown as GGUFTypedMetadata;
  // alignment 1: no padding after the key/value pairs (the tensor infos follow them directly)
  const head = serializeGgufMetadata(typed, { alignment: 1 });
  const enc = new TextEncoder();
  const infoParts: Uint8Array[] = [];
  let dataOffset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const ti = TYPES[t.type];
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.byteLength !== (n / ti.block) * ti.bytes) throw new Error(`${t.name}: ${t.data.byteLength} bytes for ${n} ${t.type} values`);
    const name = enc.encode(t.name);
    const info = new Uint8Array(8 + name.length + 4 + 8 * t.shape.length + 4 + 8);
    const dv = new DataView(info.buffer);
    let p = 0;
    dv.setBigUint64(p, BigInt(name.length), true); p += 8;
    info.set(name, p); p += name.length;
    dv.setUint32(p, t.shape.length, true); p += 4;
    for (const d of t.shape) { dv.setBigUint64(p, BigInt(d), true); p += 8; }
    dv.setUint32(p, ti.id, true); p += 4;
    dataOffset = Math.ceil(dataOffset / alignment) * alignment;
    offsets.push(dataOffset);
    dv.setBigUint64(p, BigInt(dataOffset), true);
    infoParts.push(info);
    dataOffset += t.data.byteLength;
  }
  const infoLen = infoParts.reduce((a, b) => a + b.length, 0);
  const dataStart = Math.ceil((head.length + infoLen) / alignment) * alignment;
  const total = dataStart + Math.ceil(dataOffset / alignment) * alignment;
  const file = new Uint8Array(total);
  file.set(head, 0);
  let p = head.length;
  for (const part of infoParts) { file.set(part, p); p += part.length; }
  tensors.forEach((t, i) => file.set(t.data, dataStart + offsets[i]!));
  writeFileSync(path, file);
}
