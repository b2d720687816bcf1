// scripts/fuzz.mjs runs test/fuzz/fuzz.run.ts with this config: the suite's settings, or the
// sanitizer run's (leak check after the pass) when L2E_FUZZ_SANITIZE=1.
import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';
import sanitize from '../sanitize/vitest.sanitize.config.js';

const parent = process.env['L2E_FUZZ_SANITIZE'] === '1' ? sanitize : base;
// spread, not mergeConfig: mergeConfig would append to the suite's include list
// (no globalSetup: the targets use src/, not dist/, and fuzz.mjs starts several processes at once)
export default defineConfig({ ...parent, test: { ...parent.test, include: ['test/fuzz/fuzz.run.ts'], globalSetup: [] } });
