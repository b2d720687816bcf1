#!/usr/bin/env node
// npm run test:sanitize [-- vitest args, e.g. test/knn.test.ts]
// 1. builds the addon with ASan + UBSan into build-asan/ (cmake-js, -DL2E_SANITIZE=ON, CPU only unless
//    L2E_SANITIZE_CMAKE names more, e.g. "--CDL2E_CUDA_EMULATION=ON" for an emulated GPU backend);
// 2. runs the test suite with libasan (and libubsan) preloaded into every process it starts and
//    L2E_ADDON pointing at that build, so every test that reaches native code runs under the
//    sanitizers, CLI child processes included;
// 3. any sanitizer report fails the run: ASan/UBSan stop the process at the first report
//    (halt_on_error, -fno-sanitize-recover), LeakSanitizer runs after each test file
//    (test/sanitize/setup.ts) with test/sanitize/lsan.supp for Node's own allocations.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildSanitized, root, sanitizerEnv } from './sanitize-env.mjs';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;
const addon = buildSanitized();
console.error(`test:sanitize: build done (${elapsed()})`);
const env = sanitizerEnv(addon);
const args = ['run', '--config', 'test/sanitize/vitest.sanitize.config.ts', ...process.argv.slice(2)];
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const r = spawnSync(process.execPath, [vitest, ...args], { cwd: root, stdio: 'inherit', env });
console.error(`test:sanitize: ${r.status === 0 ? 'clean' : `FAILED (exit ${r.status ?? r.signal})`} (${elapsed()})`);
process.exit(r.status ?? 1);
