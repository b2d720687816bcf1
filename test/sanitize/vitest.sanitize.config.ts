// `npm run test:sanitize` (scripts/test-sanitize.mjs): the test suite, or with --gpu the GPU suites,
// against the ASan + UBSan addon in build-asan-emu/ (L2E_ADDON, L2E_TESTING_ADDON: the CPU backend and
// the CUDA emulation), with a LeakSanitizer check after every test file (setup.ts).
import { availableParallelism } from 'node:os';
import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../../vitest.config.js';

export default mergeConfig(
  base,
  defineConfig({
    test: {
      setupFiles: ['test/sanitize/setup.ts'],
      // tests of a timing property skip themselves here (ASan slows the native code they measure against)
      env: { L2E_SANITIZER_RUN: '1' },
      exclude: [
        '**/node_modules/**',
        // long learning runs over the same native code as train.test.ts and golden-grad.test.ts,
        // 5x slower under ASan (over 5 minutes each): not worth the CI time
        'test/train-learning.test.ts',
        'test/demo.test.ts',
        // kill -9 of CLI children: process behaviour, not memory; their children would run under ASan too
        'test/crash/**',
        // SIGINT / SIGTERM to CLI children mid-run (exiting with work in flight): process behaviour too
        'test/cli-signals.test.ts',
        // a worker thread terminated with our native work in flight: process behaviour too (the work
        // finishes after its environment is gone, and what it held goes with the process)
        'test/worker-terminate.test.ts',
        // the shipped addon's export list: this build adds its leak-check binding (sanitizer_binding.cpp)
        'test/shipped-addon.test.ts',
        // drives Chromium, which would inherit the preloaded ASan runtime; the server's native work is
        // covered by the other server tests
        'test/server-page.test.ts',
        // llama.cpp's prebuilt binary (node-llama-cpp), not our code, under the preloaded runtime: its own
        // allocations would be leak reports (the precision bench's children load it too); the GGUF
        // writer's own tests (gguf-writer) still run
        'test/gguf-peer.test.ts',
        'test/bench-precision.test.ts',
        // ONNX Runtime's prebuilt binary (onnxruntime-node) likewise; the file's writer tests are JavaScript
        'test/onnx-peer.test.ts',
        // peak-RSS bounds: ASan's shadow memory and redzones are not the library's memory
        'test/encode-memory.test.ts',
        // nvcc compiling the kernels (run without the sanitizer runtime): no code of ours runs
        'test/cuda-compile.test.ts',
        // the bench runner's options and files around one op (l2norm), which the op tests run here already
        'test/bench-runner.test.ts',
        // a timing property of the JavaScript tokenising slices (timer gaps while a corpus is tokenised),
        // over native encode calls the encode tests run here already
        'test/event-loop.test.ts',
        // the GPU loan's shell scripts with stub node, vitest and python3: no code of ours is native there
        'test/loan-scripts.test.ts',
        // the Hub cache's lock files: JavaScript, files and timers only (its timing bounds would be measured
        // beside another file under ASan)
        'test/blob-lock.test.ts',
      ],
      // gc() before each leak check, so objects only waiting for a finalizer are freed first
      execArgv: ['--expose-gc'],
      // files side by side, as many as there are cores: under the sanitizers a file keeps 1.3 of 2 cores
      // busy on average (Node and the runtime's bookkeeping run on one), and ten of the slowest files took
      // 117 s two at a time against 158 s one at a time on 2 cores; the timing tests skip themselves here
      fileParallelism: true,
      maxWorkers: availableParallelism(),
      // native code runs 2-5x slower under ASan
      testTimeout: 600_000,
      hookTimeout: 600_000,
    },
  }),
);
