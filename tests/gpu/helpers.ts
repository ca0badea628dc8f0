// Shared by the GPU kernel tests: opening the device (skip locally without an adapter, FAIL in CI),
// a seeded RNG, comparisons that fail with the index and both values, and a child-process runner
// for the tests that a process exits by itself.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { WebGPUUnavailableError } from '../../src/errors.js';
import { createGPU, type GPUContext } from '../../src/runtime/device.js';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Opens a debug-mode GPU context for a test file. Without an adapter: in CI (CI=true) this throws,
 * so the file fails; locally it returns undefined after printing why, and the file's suites skip.
 */
export async function openTestGPU(): Promise<GPUContext | undefined> {
  if (!process.env.XDG_RUNTIME_DIR) {
    process.env.XDG_RUNTIME_DIR = '/tmp/xdg';
    mkdirSync('/tmp/xdg', { recursive: true, mode: 0o700 });
  }
  try {
    return await createGPU({ debug: true });
  } catch (err) {
    if (err instanceof WebGPUUnavailableError && !IN_CI) {
      console.warn(`[moet] GPU tests SKIPPED: ${err.message}`);
      return undefined;
    }
    throw err;
  }
}

/** mulberry32: a small seeded PRNG → [0, 1) */
export { mulberry32 as rng } from '../helpers/random.js';

/** n uniform values in [lo, hi) */
export function randomF32(rand: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
}

/** Σ(a−b)²/Σb² (b the reference) */
export function nmse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : num / den;
}

/**
 * Fails with the first offending index and both values when |a − b| > atol + rtol·|b| (or a value
 * is not finite), or when lengths differ.
 */
export function expectClose(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol = 0): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) {
      expect.fail(`${label}: index ${i}: gpu ${a} vs reference ${b} (|diff| ${Math.abs(a - b)} > ${atol} + ${rtol}·|ref|)`);
    }
  }
}

/**
 * The matrix-product check: normalized MSE ≤ maxNmse (llama.cpp's bar 5e-4), plus no element off by
 * more than `atol` (so one wrong row cannot hide in the average). Returns the measured NMSE.
 */
export function expectProduct(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, maxNmse = 5e-4, atolFrac = 1e-4): number {
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  expectClose(label, actual, expected, atolFrac * Math.max(maxAbs, 1e-30));
  const e = nmse(actual, expected);
  expect(e, `${label}: nmse`).toBeLessThanOrEqual(maxNmse);
  return e;
}

/**
 * Runs `script` (a file in tests/gpu/) with `args` in a child Node (through tsx), for tests that a
 * process exits by itself; kills it after `limitMs`. Resolves with its exit code (or 'timeout') and
 * what it printed.
 */
export async function runChildScript(script: string, args: string[], limitMs: number): Promise<{ code: number | string; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, script), ...args], {
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp/xdg' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('timeout');
    }, limitMs);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c ?? -1);
    });
  });
  return { code, out, err };
}
