// The CPU thread pool (native/cpu/parallel.cpp): a worker waits for its next region, and the caller for
// the workers, by spinning L2E_CPU_SPIN_US microseconds (default 50) and then sleeping on a condition
// variable. Each setting is read once per process, so each runs in a child (helpers/thread-pool-child.mjs:
// five training steps of a small model). Sleeping at once (0) takes the sleeping path at every hand-off,
// where a lost wake-up hangs the child (the run's timeout fails it; a planted one, the worker's notify
// left out, hung every setting); more threads than a region's parts has workers that sit a region out.
// Whatever the waits, each part runs once on the same range: the same losses and the same weights and
// moments, bit for bit, as spinning gives at the same thread count. Both settings are checked when a
// model is created: anything but a whole number in range is refused, naming the variable.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const child = fileURLToPath(new URL('./helpers/thread-pool-child.mjs', import.meta.url));

interface Outcome { losses?: number[]; state?: string; error?: string }
function run(threads: number | string, spin: string): Outcome {
  const env: NodeJS.ProcessEnv = { ...process.env, L2E_NUM_THREADS: String(threads) };
  if (spin === 'unset') delete env['L2E_CPU_SPIN_US'];
  else env['L2E_CPU_SPIN_US'] = spin;
  const r = spawnSync(process.execPath, [child], { encoding: 'utf8', env, timeout: 60_000 });
  expect(r.signal, `${threads} threads, L2E_CPU_SPIN_US=${spin}: ${r.stderr}`).toBeNull();
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Outcome;
}

describe('CPU thread pool', () => {
  // unset and empty: the default; 100000: the longest spin allowed
  it.each([
    [2, 'unset', '0'],
    [3, 'unset', '0'],
    [5, '1', '0'],
    [2, '', '100000'],
  ])('%i threads: L2E_CPU_SPIN_US=%s and =%s train the same, bit for bit', (threads, spin, other) => {
    const a = run(threads, spin), b = run(threads, other);
    expect(a.error).toBeUndefined();
    expect(a.losses).toHaveLength(5);
    expect(a.losses!.every(Number.isFinite)).toBe(true);
    expect(a.state).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toEqual(a);
  }, 130_000);

  it.each(['5x', '-1', '100001', ' 5', '1e3'])('L2E_CPU_SPIN_US=%s: the model is refused, naming the setting', (v) => {
    expect(run(2, v)).toEqual({ error: `L2E_CPU_SPIN_US=${v}: expected microseconds from 0 to 100000 (0: sleep at once)` });
  });

  it.each(['257', 'abc', '2x', '-1', ' 2'])('L2E_NUM_THREADS=%s: the model is refused, naming the setting', (v) => {
    expect(run(v, 'unset')).toEqual({ error: `L2E_NUM_THREADS=${v}: expected a whole number of threads from 0 to 256 (0 or unset: one for each core)` });
  });

  it.each(['0', '', '256'])('L2E_NUM_THREADS=%s is taken', (v) => {
    const r = run(v, 'unset');
    expect(r.error).toBeUndefined();
    expect(r.losses!.every(Number.isFinite)).toBe(true);
  });
});
