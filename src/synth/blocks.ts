// Random but valid quantized blocks, written directly (no f32 → quantizer round trip, which would take
// hours for a 17 GiB model in TypeScript). Every block decodes to values of roughly zero mean and the
// requested standard deviation: the quants are uniform random, the scales random in a narrow band
// around the value that gives `std`, and for the K-quants with mins (Q4_K, Q5_K) each sub-block's min
// is chosen to cancel the mean of its quants. Deterministic for a given PRNG state.
//
// Block layouts: shared/docs/quants.md. Only the types a Q4_K_M file can hold are generated: F32,
// Q4_K, Q6_K, Q5_K (attn_output of 8-expert models), Q8_0, Q5_0 and Q5_1 (fallbacks for rows that are
// not a multiple of 256; Q8_0 also for attn_k/attn_v of 8-expert models); and MXFP4, gpt-oss's experts.
import { f32ToF16 } from '../../gguf/quants.js';
import { GGMLType, ggmlTypeName, tensorBytes } from '../../gguf/types.js';
import { SynthRng } from './rng.js';

/** Standard deviation of a uniform integer on [0, n). */
function uniformStd(n: number): number {
  return Math.sqrt((n * n - 1) / 12);
}

/**
 * f16 bits of d0·(0.8 + 0.4·i/256) for each random byte i: the per-block scale jitter comes from a
 * byte the random fill already put in the block, so no per-block PRNG call or f16 conversion is needed.
 * With `signed`, bit 7 of a second byte flips the sign (a negative d is valid and removes the small
 * mean of the asymmetric ranges [−32, 31], [−16, 15]).
 */
function halfTable(d0: number): Uint16Array {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) t[i] = f32ToF16(Math.max(d0 * (0.8 + (0.4 * i) / 256), 6e-8));
  return t;
}

/** Packs 6-bit scales and mins of 8 sub-blocks into the 12 bytes at `o` (Q4_K / Q5_K layout). */
function packScales(out: Uint8Array, o: number, sc: Uint8Array, m: Uint8Array): void {
  for (let j = 0; j < 4; j++) {
    out[o + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
    out[o + 4 + j] = m[j]! | ((m[j + 4]! >> 4) << 6);
    out[o + 8 + j] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
  }
}

/**
 * Q4_K / Q5_K: `half d; half dmin; u8 scales[12]; (Q5_K: u8 qh[32];) u8 qs[128]`. Sub-block scales
 * sc ∈ [32, 63], dmin = r·d (r = 8 for Q4_K, 16 for Q5_K) and mins m = round(sc·mid/r), so that
 * d·sc·q − dmin·m ≈ d·sc·(q − mid), mid = 7.5 (Q4_K) or 15.5 (Q5_K): zero-mean values.
 * The header bytes are random on entry (the whole tensor was filled with random words).
 */
function fillKWithMins(out: Uint8Array, blockBytes: number, levels: number, std: number): void {
  const nb = out.length / blockBytes;
  const mid = (levels - 1) / 2;
  const ratio = 2 * Math.ceil(mid); // dmin = ratio·d: 8 (Q4_K), 16 (Q5_K)
  const d0 = std / (48.4 * uniformStd(levels));
  const dT = halfTable(d0);
  const dminT = halfTable(ratio * d0);
  const mOf = new Uint8Array(64);
  for (let s = 0; s < 64; s++) mOf[s] = Math.min(63, Math.round((s * mid) / ratio));
  const sc = new Uint8Array(8);
  const m = new Uint8Array(8);
  for (let b = 0, o = 0; b < nb; b++, o += blockBytes) {
    for (let j = 0; j < 8; j++) {
      sc[j] = 32 + (out[o + 4 + j]! & 31);
      m[j] = mOf[sc[j]!]!;
    }
    const r = out[o + 12]!;
    const dh = dT[r]!;
    const mh = dminT[r]!;
    out[o] = dh & 255;
    out[o + 1] = dh >>> 8;
    out[o + 2] = mh & 255;
    out[o + 3] = mh >>> 8;
    packScales(out, o + 4, sc, m);
  }
}

/** Q6_K: `u8 ql[128]; u8 qh[64]; i8 scales[16]; half d`; q − 32 ∈ [−32, 31], scales ±[48, 111]. */
function fillQ6K(out: Uint8Array, std: number): void {
  const nb = out.length / 210;
  const dT = halfTable(std / (81 * uniformStd(64)));
  for (let b = 0, o = 0; b < nb; b++, o += 210) {
    for (let j = o + 192; j < o + 208; j++) {
      const r = out[j]!;
      const s = 48 + (r & 63);
      out[j] = r & 128 ? 256 - s : s; // i8 −s or +s
    }
    const h = dT[out[o + 208]!]!;
    out[o + 208] = h & 255;
    out[o + 209] = h >>> 8;
  }
}

/** Q8_0 / Q5_0 / Q5_1: a half d (sign random) at the start; Q5_1 also `half m = −15.5·d`. */
function fillSmall(out: Uint8Array, blockBytes: number, levels: number, std: number, withMin: boolean): void {
  const nb = out.length / blockBytes;
  const d0 = std / uniformStd(levels);
  const dT = halfTable(d0);
  const mT = withMin ? halfTable(15.5 * d0) : null;
  for (let b = 0, o = 0; b < nb; b++, o += blockBytes) {
    const r = out[o]!;
    if (mT) {
      // Q5_1: y = d·q + m, q ∈ [0, 31]
      const h = dT[r]!;
      const mh = mT[r]! | 0x8000;
      out[o] = h & 255;
      out[o + 1] = h >>> 8;
      out[o + 2] = mh & 255;
      out[o + 3] = mh >>> 8;
    } else {
      const h = dT[r]! | (out[o + 1]! & 0x80 ? 0x8000 : 0);
      out[o] = h & 255;
      out[o + 1] = h >>> 8;
    }
    if (levels === 255) for (let j = o + 2; j < o + 34; j++) if (out[j] === 0x80) out[j] = 0x81;
  }
}

/** RMS of the 16 E2M1 codes (ggml's doubled kvalues 0, ±1, ±2, ±3, ±4, ±6, ±8, ±12) drawn uniformly. */
const MXFP4_CODE_RMS = Math.sqrt((2 * (1 + 4 + 9 + 16 + 36 + 64 + 144)) / 16);

/**
 * MXFP4 (gpt-oss experts): `u8 e; u8 qs[16]`, y = kvalues[q] · 2^(e − 128). The codes are the random
 * bits as they are (symmetric, so zero mean); the scale, a power of two, is 2^k or 2^(k+1) per block
 * with the probability that makes the mean square come out at std².
 */
function fillMXFP4(out: Uint8Array, std: number): void {
  const nb = out.length / 17;
  const k = Math.floor(Math.log2(std / MXFP4_CODE_RMS));
  const ratio = std / (MXFP4_CODE_RMS * 2 ** k); // in [1, 2)
  const up = Math.round((256 * (ratio * ratio - 1)) / 3); // P(2^(k+1)) · 256
  const e0 = Math.min(254, Math.max(1, k + 128));
  for (let b = 0, o = 0; b < nb; b++, o += 17) out[o] = out[o]! < up ? e0 + 1 : e0;
}

/** Types synthBlocks can generate. */
export const SYNTH_TYPES: readonly GGMLType[] = [GGMLType.F32, GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.Q5_0, GGMLType.Q5_1, GGMLType.MXFP4];

/**
 * The bytes of a tensor of `type` and `shape` holding random values of mean `mean` (F32 only: the
 * quantized types are centred on 0) and standard deviation about `std`.
 * @throws RangeError for a type not in SYNTH_TYPES or a row length that is not a multiple of its block
 */
export function synthBlocks(type: GGMLType, shape: readonly number[], std: number, rng: SynthRng, mean = 0): Uint8Array {
  const bytes = tensorBytes(type, shape);
  // fill everything with random bits first: quants (and for F32 the raw stream feeding Box-Muller)
  const out = new Uint8Array(Math.ceil(bytes / 4) * 4);
  if (type === GGMLType.F32) {
    rng.fillNormal(new Float32Array(out.buffer), std, mean);
    return out;
  }
  if (mean !== 0) throw new RangeError(`synthBlocks: a mean (${mean}) is only supported for F32`);
  rng.fillU32(new Uint32Array(out.buffer));
  const view = out.subarray(0, bytes);
  switch (type) {
    case GGMLType.Q4_K: fillKWithMins(view, 144, 16, std); break;
    case GGMLType.Q5_K: fillKWithMins(view, 176, 32, std); break;
    case GGMLType.Q6_K: fillQ6K(view, std); break;
    case GGMLType.Q8_0: fillSmall(view, 34, 255, std, false); break;
    case GGMLType.Q5_0: fillSmall(view, 22, 32, std, false); break;
    case GGMLType.Q5_1: fillSmall(view, 24, 32, std, true); break;
    case GGMLType.MXFP4: fillMXFP4(view, std); break;
    default: throw new RangeError(`synthBlocks: cannot generate ${ggmlTypeName(type)} blocks`);
  }
  return bytes === out.length ? out : out.subarray(0, bytes);
}
