// Once before any test file (vitest globalSetup): dist/, which the CLI tests run (bin/l2e.js) and the
// package tests load, rebuilt when a source file is newer, so that no test runs an older build, and no
// file rebuilds it while another one, beside it (the sanitizer run), loads it. Where TypeScript is not
// installed (a GPU machine: scripts/gpu/device-packages.cjs leaves it out) dist/ is used as it came.
import { existsSync } from 'node:fs';
import { ensureDist, tscPath } from '../crash/harness.js';

export default function setup(): void {
  if (existsSync(tscPath)) ensureDist();
}
