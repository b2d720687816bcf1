// `npm run test:sanitize` (scripts/test-sanitize.mjs): the test suite against the ASan + UBSan addon
// in build-asan/ (L2E_ADDON), with a LeakSanitizer check after every test file (setup.ts).
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../../vitest.config.js';

export default mergeConfig(
  base,
  defineConfig({
    test: {
      setupFiles: ['test/sanitize/setup.ts'],
      // gc() before each leak check, so objects only waiting for a finalizer are freed first
      execArgv: ['--expose-gc'],
      // native code runs 2-5x slower under ASan
      testTimeout: 600_000,
      hookTimeout: 600_000,
    },
  }),
);
