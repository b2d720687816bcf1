// L2E_CUDA_SYNC=1 (native/cuda/cuda_check.h): a kernel that fails while running is reported by the op
// that launched it, naming that launch, instead of by whichever synchronisation comes next. The CUDA
// emulation build makes a kernel fail on request (L2E_CUDA_EMULATE_FAIL=<kernel>, runtime.cpp) and
// reports execution errors asynchronously, as a GPU does. The setting is read once per process, so
// each case runs a child process: backendOp rmsnorm (whose kernel fails), then swiglu, which fails
// with the same error at its first call: a kernel's failure is sticky, as on a GPU (the runtime's
// cudaErrorLaunchFailure: "any further CUDA work will return the same error").
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { testingAddonPath } from '../helpers/testing-addon.mjs';
import { emulated } from './gpu-helpers.js';

const SCRIPT = `
const a = require(process.env.L2E_TESTING_ADDON);
const x = new Float32Array(16).fill(0.5);
const ops = [['rmsnorm', { x, w: x, T: 2, H: 8, eps: 1e-5 }], ['swiglu', { gate: x, up: x, n: 16 }]];
const out = [];
for (const [op, args] of ops) {
  try { a.backendOp('cuda', op, args); out.push(op + ': ok'); } catch (e) { out.push(op + ': ' + e.message); }
}
console.log(JSON.stringify(out));
`;

function run(sync: string | undefined): string[] {
  const env: NodeJS.ProcessEnv = { ...process.env, L2E_TESTING_ADDON: testingAddonPath(), L2E_CUDA_EMULATE_FAIL: 'rmsnorm_fwd_kernel' };
  delete env['L2E_CUDA_SYNC'];
  if (sync !== undefined) env['L2E_CUDA_SYNC'] = sync;
  const r = spawnSync(process.execPath, ['-e', SCRIPT], { env, encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as string[];
}

const FAILURE = 'kernel rmsnorm_fwd_kernel failed in block (0,0,0): fault injected by L2E_CUDA_EMULATE_FAIL';
// what every such error adds (cuda_check.h)
const LOST = ' (after a kernel fails, every CUDA call of this process fails: restart it to use the GPU)';
// swiglu's first call, its upload
const AFTER = `swiglu: CUDA error in cudaMemcpyAsync(static_cast<char*>(dst.ptr) + s0 * es, stage.data(), n * es, cudaMemcpyHostToDevice, stream_): ${FAILURE}${LOST}`;

describe.skipIf(!emulated)(`L2E_CUDA_SYNC ${emulated ? '' : '(skipped: needs the CUDA emulation build to make a kernel fail)'}`, () => {
  it('L2E_CUDA_SYNC=1: the failing kernel is reported by the launch that caused it, by name', () => {
    expect(run('1')).toEqual([`rmsnorm: CUDA error in rmsnorm: ${FAILURE}${LOST}`, AFTER]);
  });

  // What a user's process sees after a kernel fault on a GPU: each call an error naming the fault, no
  // abort (destructors and dispose() meet failing CUDA calls too), and a clean exit.
  it('a model after the fault: every encode fails naming it, dispose() works, the process exits normally', () => {
    const script = `
      const a = require(process.env.L2E_TESTING_ADDON);
      const m = new a.NativeModel({ vocab: 32, hidden: 16, intermediate: 24, layers: 1, heads: 2, kvHeads: 2, headDim: 8, dense: 8,
        rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true }, 'cuda');
      const ids = Int32Array.from([1, 5, 7]), cu = Int32Array.from([0, 3]);
      (async () => {
        for (let i = 0; i < 2; i++) await m.encode(ids, cu).then(() => console.log('ok'), (e) => console.log(e.message));
        const long = new Int32Array(3000).fill(5); // activations the pool has no room for yet: a cudaMalloc
        await m.encode(long, Int32Array.from([0, 3000])).then(() => console.log('ok'), (e) => console.log(e.message));
        m.dispose();
        console.log('disposed');
      })();`;
    const env: NodeJS.ProcessEnv = { ...process.env, L2E_TESTING_ADDON: testingAddonPath(), L2E_CUDA_EMULATE_FAIL: 'rmsnorm_fwd_kernel' };
    delete env['L2E_CUDA_SYNC'];
    const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe(`CUDA error in cudaStreamSynchronize(stream_): ${FAILURE}${LOST}`);
    expect(lines[1]).toBe(`CUDA error in cudaHostAlloc(&st.host, st.bytes, cudaHostAllocDefault): ${FAILURE}${LOST}`);
    // (it was "CUDA out of memory allocating 0 MiB (0 MiB free of 0 MiB …)")
    expect(lines[2]).toBe(`CUDA error in cudaMalloc: ${FAILURE}${LOST}`);
    expect(lines[3]).toBe('disposed');
  });

  it('unset or 0: the same failure surfaces only at the next synchronisation', () => {
    const atSync = [`rmsnorm: CUDA error in cudaStreamSynchronize(stream_): ${FAILURE}${LOST}`, AFTER];
    expect(run(undefined)).toEqual(atSync);
    expect(run('0')).toEqual(atSync);
  });
});
