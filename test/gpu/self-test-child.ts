// The emulation build's self-checks (cudaEmulationSelfTest, cudaEmulationAsyncSelfTest) in a child
// process: for checks that may end the process, that need a setting read once per process, or whose
// kernel must fail (a kernel's failure is sticky, as on a GPU: every later call of the process fails).
import { spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { testingAddonPath } from '../helpers/testing-addon.mjs';

type SelfTestBinding = 'cudaEmulationSelfTest' | 'cudaEmulationAsyncSelfTest';

/** Runs one self-check in a child, which prints its result, then "survived": its exit and output (stderr, then stdout). */
export function selfTestInChild(
  name: string,
  env: Record<string, string> = {},
  binding: SelfTestBinding = 'cudaEmulationSelfTest',
): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const script = `console.log(require(process.env.L2E_TESTING_ADDON).${binding}(${JSON.stringify(name)})); console.log('survived')`;
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, L2E_TESTING_ADDON: testingAddonPath(), ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, signal: r.signal, stderr: r.stderr + r.stdout };
}

/** A self-check whose kernel must fail while running, in a child that must live on: what it returned (the failure). */
export function fault(name: string, binding: SelfTestBinding = 'cudaEmulationSelfTest'): string {
  const r = selfTestInChild(name, {}, binding);
  expect(r.status, r.stderr).toBe(0);
  return r.stderr.replace(/\nsurvived\n$/, '');
}
