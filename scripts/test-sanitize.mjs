#!/usr/bin/env node
// npm run test:sanitize [-- --gpu] [-- vitest args, e.g. test/knn.test.ts]
// 1. builds the addon with ASan + UBSan into build-asan-emu/ (cmake-js, -DL2E_SANITIZE=ON: the CPU
//    backend, and the CUDA backend in CPU emulation, native/cuda/emulation);
// 2. runs the test suite with libasan (and libubsan) preloaded into every process it starts and
//    L2E_ADDON and L2E_TESTING_ADDON pointing at that build, so every test that reaches native code
//    runs under the sanitizers, CLI child processes included; with --gpu, the GPU suites (test/gpu,
//    or the files named), where a skipped test fails the run as in CI;
// 3. any sanitizer report fails the run: ASan/UBSan stop the process at the first report
//    (halt_on_error, -fno-sanitize-recover), LeakSanitizer runs after each test file
//    (test/sanitize/setup.ts) with test/sanitize/lsan.supp for Node's own allocations.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSanitized, root, sanitizerEnv, testingAddonOf } from './sanitize-env.mjs';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;
const gpu = process.argv.includes('--gpu');
const rest = process.argv.slice(2).filter((a) => a !== '--gpu');
const addon = buildSanitized();
console.error(`test:sanitize: build done (${elapsed()})`);
// the test addon of the same build too: the tests that call kernels directly (gradcheck, gemm, the
// precision kernels, the op table) then run them instrumented
const env = sanitizerEnv(addon, testingAddonOf(addon));
const args = ['run', '--config', 'test/sanitize/vitest.sanitize.config.ts'];
let report;
if (gpu) {
  report = join(mkdtempSync(join(tmpdir(), 'l2e-sanitize-')), 'results.json');
  args.push('--reporter=default', '--reporter=json', `--outputFile.json=${report}`);
  if (!rest.some((a) => !a.startsWith('-'))) args.push('test/gpu');
} else if (!rest.some((a) => !a.startsWith('-'))) {
  // the build runs the GPU suites too (on the emulation), but those are --gpu's run
  args.push('--exclude', 'test/gpu/**');
}
args.push(...rest);
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const r = spawnSync(process.execPath, [vitest, ...args], { cwd: root, stdio: 'inherit', env });
let status = r.status ?? 1;
if (report) {
  // the emulation build runs every GPU suite: a skip means a suite did not run here
  try {
    const counts = JSON.parse(readFileSync(report, 'utf8'));
    const skipped = counts.numPendingTests + (counts.numTodoTests || 0);
    console.error(`test:sanitize --gpu: ${counts.numPassedTests} passed, ${counts.numFailedTests} failed, ${skipped} skipped`);
    if (skipped > 0 || counts.numPassedTests === 0) {
      console.error('test:sanitize --gpu: nothing may be skipped in the emulation build');
      if (status === 0) status = 1;
    }
  } catch (err) {
    console.error(`test:sanitize --gpu: no test results (${err instanceof Error ? err.message : String(err)})`);
    if (status === 0) status = 1;
  }
  rmSync(join(report, '..'), { recursive: true, force: true });
}
console.error(`test:sanitize${gpu ? ' --gpu' : ''}: ${status === 0 ? 'clean' : `FAILED (${r.status === 0 ? 'skipped tests' : `exit ${r.status ?? r.signal}`})`} (${elapsed()})`);
process.exit(status);
