// The standalone bench scripts (gemm, knn, gpu-bench, serve): --help prints their header's usage and exits 0,
// and a flag they do not know is refused (exit 2) before anything runs: a typo must not start a
// full-size run.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const bench = (script: string, ...args: string[]) => spawnSync(process.execPath, [`bench/${script}`, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

describe.each([
  ['gemm.mjs', 'sgemm throughput'],
  ['knn.mjs', 'Times exact native k-NN'],
  ['gpu-bench.mjs', 'GPU benchmark driver'],
  ['serve.mjs', 'Load test of `l2e serve`'],
])('bench/%s', (script, first) => {
  it('--help prints the usage from its header', () => {
    const r = bench(script, '--help');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toContain(first);
    expect(r.stdout).not.toContain('//');
  });

  it('an unknown flag is a usage error', () => {
    const r = bench(script, '--no-such-flag');
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`bench/${script}: unknown option --no-such-flag (--help lists them)\n`);
    expect(r.stdout).toBe('');
  });
});

// the text pools of every script that reads them (bench/lib/workloads.mjs poolsFolder): a folder named by
// --pools or L2E_POOLS must exist, before anything runs
describe.each(['serve.mjs', 'precision.mjs', 'run.mjs'])('bench/%s --pools', (script) => {
  it('refuses a --pools folder that is not there, naming it', () => {
    const r = bench(script, '--pools', 'no/such/pools');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--pools ${resolve(root, 'no/such/pools')}: no such folder`);
  });

  it('refuses an L2E_POOLS folder that is not there, naming the variable', () => {
    const r = spawnSync(process.execPath, [`bench/${script}`], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, L2E_POOLS: 'no/such/pools' } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('L2E_POOLS=no/such/pools: no such folder');
  });
});

it('a negative number is a value, not an unknown flag: its script says what range it wants', () => {
  const r = bench('serve.mjs', '--duration', '-1');
  expect(r.status).toBe(1);
  expect(r.stderr).toBe('bench/serve.mjs: --duration must be in (0, 600] seconds, got -1\n');
});
