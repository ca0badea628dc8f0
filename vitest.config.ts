import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // GPU and llama.cpp tests share one 2-core machine: keep files from fighting over it.
    fileParallelism: false,
  },
});
