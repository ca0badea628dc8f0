// Deterministic activation-like input for the round-trip tests (arithmetic only, no transcendental
// functions, so the values are the same on every platform): 16 blocks of 256 of near-Gaussian values
// at scales from 1e-6 to 1e4, values on grids that put x·(127/amax) exactly on .5 (rounding ties),
// a block whose largest magnitude is negative and one with +max and −max, zero sub-blocks, and an
// all-zero block.
import { mulberry32 } from '../helpers/random.js';

export function activationInput(): Float32Array {
  const r = mulberry32(2024);
  const g = () => r() + r() + r() + r() - 2;
  const x = new Float32Array(256 * 16);
  const scales = [1e-6, 1e-3, 0.1, 1, 3, 10, 100, 1e4];
  for (let b = 0; b < 8; b++) for (let j = 0; j < 256; j++) x[256 * b + j] = g() * scales[b]!;
  // ties: amax = 127/64 → id = 64, values k/128 → x·id = k/2
  for (let j = 0; j < 256; j++) x[256 * 8 + j] = (j % 32 === 0 ? 127 / 64 : Math.round(g() * 200) / 128);
  // Q8_K ties: max = −127 → iscale = 1, half-integers
  for (let j = 0; j < 256; j++) x[256 * 9 + j] = j === 7 ? -127 : Math.round(g() * 100) + 0.5;
  // largest magnitude negative everywhere
  for (let j = 0; j < 256; j++) x[256 * 10 + j] = j === 100 ? -5 : g();
  // +max and −max of equal magnitude (the first one wins in ggml's Q8_K)
  for (let j = 0; j < 256; j++) x[256 * 11 + j] = j === 3 ? 4 : j === 200 ? -4 : g();
  // zero sub-blocks
  for (let j = 0; j < 256; j++) x[256 * 12 + j] = j < 64 ? 0 : g() * 0.5;
  // block 13 stays all zero
  for (let j = 0; j < 256; j++) x[256 * 14 + j] = (g() * 1e-30); // tiny (subnormal f16 scales)
  for (let j = 0; j < 256; j++) x[256 * 15 + j] = g() * 60000; // near the f16 range
  return x;
}
