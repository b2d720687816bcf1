import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // deletes each file's makeTempDir() folders after it
    setupFiles: ['test/helpers/cleanup.ts'],
    // dist/ as new as src/ before any file runs (the CLI tests run it)
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // native work uses both cores already: run files one at a time for stable memory and timing
    fileParallelism: false,
  },
});
