// The ASan + UBSan addon (build-asan-emu/) and the environment that runs Node against it; shared by
// scripts/test-sanitize.mjs (the test suite) and scripts/fuzz.mjs --sanitize (the fuzz pass).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

/** A sanitizer runtime shipped with g++ (libasan.so, libubsan.so), or exit 2 saying how to get it. */
function runtime(name) {
  const r = spawnSync(process.env.CXX || 'g++', [`-print-file-name=${name}`], { encoding: 'utf8' });
  const file = (r.stdout || '').trim();
  if (r.status !== 0 || !file.startsWith('/') || !existsSync(file)) {
    console.error(`sanitizers: ${name} not found (g++ -print-file-name=${name} gave "${file}"); install gcc's sanitizer runtimes (Debian: libasan8 libubsan1)`);
    process.exit(2);
  }
  return file;
}

/**
 * Whether the host fuses multiply-adds in hardware (aarch64 always; x86-64 when /proc/cpuinfo says fma).
 * The sanitizer build then compiles the emulated kernels contracting as nvcc may (L2E_CUDA_EMULATE_FMA),
 * where build-emu/ never contracts: CI's emulated GPU suites run on both.
 */
function hostHasFma() {
  if (process.arch === 'arm64') return true;
  if (process.arch !== 'x64') return false;
  try {
    return /^flags\s*:.*\bfma\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Builds (incrementally) the ASan + UBSan addon with -DL2E_SANITIZE=ON into build-asan-emu/ and returns
 * its path: the CPU backend, and the CUDA backend in CPU emulation (native/cuda/emulation), so one
 * build serves the test suite, the GPU suites and the fuzz pass (the test addon is at
 * testingAddonOf(addon)). Its CPU code is a CPU-only build's, less native/core/cuda_unavailable.cpp (the
 * stand-ins of a build without CUDA). L2E_SANITIZE_CMAKE adds cmake-js flags.
 */
export function buildSanitized() {
  const out = 'build-asan-emu';
  const fma = hostHasFma() ? '1' : '0';
  const extra = ['--CDL2E_CUDA_EMULATE=1', `--CDL2E_CUDA_EMULATE_FMA=${fma}`, ...(process.env.L2E_SANITIZE_CMAKE || '').split(/\s+/).filter(Boolean)];
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const run = (command) =>
    spawnSync(process.execPath, [cmakeJs, command, '--out', out, '--CDL2E_SANITIZE=ON', ...extra], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  // cmake-js compile configures a folder only when it has no cache, so its -D flags would not reach one
  // configured before with another value: configure it again then (the build stays incremental)
  const cache = join(root, out, 'CMakeCache.txt');
  const cached = existsSync(cache) ? /^L2E_CUDA_EMULATE_FMA:\w+=(.*)$/m.exec(readFileSync(cache, 'utf8'))?.[1] : undefined;
  if (existsSync(cache) && cached !== fma) {
    console.error(`sanitizers: configuring ${out}/ again (L2E_CUDA_EMULATE_FMA ${cached ?? 'unset'} -> ${fma})`);
    const configure = run('configure');
    if (configure.status !== 0) process.exit(configure.status ?? 1);
  }
  console.error(`sanitizers: building ${out}/ (ASan + UBSan) with ${extra.join(' ')}`);
  const build = run('compile');
  if (build.status !== 0) process.exit(build.status ?? 1);
  const addon = join(root, out, 'Release', 'l2e.node');
  if (!existsSync(addon)) {
    console.error(`sanitizers: the build did not produce ${addon}`);
    process.exit(1);
  }
  return addon;
}

/** The test addon (native/testing) built next to `addon`. */
export function testingAddonOf(addon) {
  return join(dirname(addon), 'testing', 'l2e_testing.node');
}

/**
 * process.env plus what makes every Node process load `addon` under ASan + UBSan (and `testingAddon`
 * for the tests that use the test hooks, when given).
 */
export function sanitizerEnv(addon, testingAddon) {
  const supp = join(root, 'test', 'sanitize', 'lsan.supp');
  return {
    ...process.env,
    L2E_ADDON: addon,
    ...(testingAddon ? { L2E_TESTING_ADDON: testingAddon } : {}),
    // libasan must come first in the process; the addon brings libubsan in itself
    LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so'), process.env.LD_PRELOAD].filter(Boolean).join(':'),
    ASAN_OPTIONS: [
      'halt_on_error=1',
      'exitcode=86',
      'detect_leaks=1',
      // leaks are checked per test file in the test process (test/sanitize/setup.ts), not at the
      // exit of every tool a test starts (sh, mount, node children)
      'leak_check_at_exit=0',
      // a huge malloc is a null we report as an error (the addon checks sizes first anyway)
      'allocator_may_return_null=1',
      // Node itself is not built with ASan: mismatches between its allocator pairs are not ours
      'new_delete_type_mismatch=0',
      'alloc_dealloc_mismatch=0',
      'detect_odr_violation=0',
      // allocation stacks cut to 6 frames: see test/sanitize/lsan.supp (access stacks stay whole)
      'malloc_context_size=6',
      // GCC 12's runtime: with __tls_get_addr intercepted, LeakSanitizer's tracer thread has crashed
      // ("Tracer caught signal 11") in a per-file leak check of a worker (google/sanitizers#1267)
      'intercept_tls_get_addr=0',
    ].join(':'),
    UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=87',
    LSAN_OPTIONS: `suppressions=${supp}:print_suppressions=0`,
  };
}
