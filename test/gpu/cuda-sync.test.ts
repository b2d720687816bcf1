// L2E_CUDA_SYNC=1 (native/cuda/cuda_check.h): a kernel that fails while running is reported by the op
// that launched it, naming that launch, instead of by whichever synchronisation comes next. The CUDA
// emulation build makes a kernel fail on request (L2E_CUDA_EMULATE_FAIL=<kernel>, runtime.cpp) and
// reports execution errors asynchronously, as a GPU does. The setting is read once per process, so
// each case runs a child process: backendOp rmsnorm (whose kernel fails), then swiglu (which must
// work: the error is reported once, not again by the next op).
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

describe.skipIf(!emulated)(`L2E_CUDA_SYNC ${emulated ? '' : '(skipped: needs the CUDA emulation build to make a kernel fail)'}`, () => {
  it('L2E_CUDA_SYNC=1: the failing kernel is reported by the launch that caused it, by name', () => {
    expect(run('1')).toEqual([`rmsnorm: CUDA error in rmsnorm: ${FAILURE}`, 'swiglu: ok']);
  });

  it('unset or 0: the same failure surfaces only at the next synchronisation', () => {
    const atSync = [`rmsnorm: CUDA error in cudaStreamSynchronize(stream_): ${FAILURE}`, 'swiglu: ok'];
    expect(run(undefined)).toEqual(atSync);
    expect(run('0')).toEqual(atSync);
  });
});
