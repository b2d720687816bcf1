// The standalone bench scripts (gemm, knn, gpu-bench, serve): --help prints their header's usage and exits 0,
// and a flag they do not know is refused (exit 2) before anything runs: a typo must not start a
// full-size run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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

// values: a missing one, a stray word or a bare --n started the full-size run; "--sizes 64,abc" crashed
// after timing 64; --repeats 0 printed NaN; a --json folder that is not there failed after the run
describe('bench/gemm.mjs and bench/knn.mjs values', () => {
  it.each([
    ['knn.mjs', ['--n'], '--n needs a value'],
    ['knn.mjs', ['300'], 'unexpected argument "300"'],
    ['knn.mjs', ['--k', '0'], '--k must be a positive integer, got "0"'],
    ['knn.mjs', ['--metric', 'foo'], '--metric must be one of cosine, euclidean, both, got "foo"'],
    ['gemm.mjs', ['--sizes', '64,abc'], '--sizes must be a positive integer, got "abc"'],
    ['gemm.mjs', ['--repeats', '0'], '--repeats must be a positive integer, got "0"'],
    ['gemm.mjs', ['--kernel', 'foo'], '--kernel must be one of avx512, avx2, scalar, got "foo"'],
    ['gemm.mjs', ['--json', 'no/such/x.json'], `--json no/such/x.json: the folder ${resolve(root, 'no/such')} does not exist`],
  ])('bench/%s %j is refused before anything runs', (script, args, said) => {
    const r = bench(script, ...args);
    expect([r.status, r.stderr, r.stdout]).toEqual([2, `bench/${script}: ${said} (--help lists the options)\n`, '']);
  });

  it('knn counts "self ranked first" with the k it got (a k past the pool is clamped)', () => {
    const r = bench('knn.mjs', '--n', '200', '--q', '200', '--dim', '8', '--k', '500', '--metric', 'cosine');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('self ranked first: 200/200');
  });
});

// a --compare file that is not there or not a run's results failed after the whole run, taking --json's
// results with it; so did a --json folder that is not there
describe('bench/run.mjs --compare and --json', () => {
  it.each([
    [['--compare', 'no-such.json'], '--compare no-such.json: no such file'],
    [['--compare', 'package.json'], '--compare package.json: not the results of an earlier run (no "results" list; write one with --json)'],
    [['--json', 'no/such/r.json'], `--json no/such/r.json: the folder ${resolve(root, 'no/such')} does not exist`],
    [['--filter', '('], '--filter (: Invalid regular expression: /(/: Unterminated group'],
  ])('%j is refused before the run', (args, said) => {
    const r = bench('run.mjs', '--quick', ...args);
    expect([r.status, r.stderr, r.stdout]).toEqual([1, `${said}\n`, '']);
  });
});

// each script's --json: a folder that is not there failed after the whole run (precision, precision-eval,
// serve), the next flag was taken as the file (`--json --quick` wrote a file named --quick, and ran
// without --quick), and run.mjs's results replaced its own --compare baseline
describe.each(['run.mjs', 'precision.mjs', 'precision-eval.mjs', 'serve.mjs'])('bench/%s --json', (script) => {
  it('is checked before the run: its folder, and a value that is the next flag', () => {
    const said = script === 'serve.mjs' ? 'bench/serve.mjs: ' : ''; // (serve names itself in every error)
    const missing = bench(script, '--json', 'no/such/x.json');
    expect([missing.status, missing.stderr]).toEqual([1, `${said}--json no/such/x.json: the folder ${resolve(root, 'no/such')} does not exist\n`]);
    const flag = bench(script, '--json', script === 'serve.mjs' ? '--pools' : '--quick');
    expect([flag.status, flag.stderr]).toEqual([1, `${said}--json needs a value\n`]);
  });
});

describe('bench/run.mjs --json and --compare', () => {
  it('the results may not replace the --compare file they are compared with', () => {
    const dir = mkdtempSync(join(tmpdir(), 'l2e-bench-json-'));
    try {
      const earlier = join(dir, 'r.json');
      writeFileSync(earlier, '{"results": []}\n');
      const r = bench('run.mjs', '--quick', '--compare', earlier, '--json', earlier);
      expect([r.status, r.stderr]).toEqual([1, `--json ${earlier}: is the run's --compare file; write the results to another\n`]);
      expect(readFileSync(earlier, 'utf8')).toBe('{"results": []}\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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

// a pool file that was not JSON failed with JSON.parse's words alone; a list's keys ("0", "1", ...) were
// read as its texts; a file as --pools was a bare ENOTDIR
describe('bench pools', () => {
  it('a --pools file and a pool that is not one are named', async () => {
    const r = bench('run.mjs', '--pools', 'package.json');
    expect([r.status, r.stderr]).toEqual([1, `--pools ${resolve(root, 'package.json')}: not a folder (the pools are a folder of .json files)\n`]);
    const workloads: string = '../bench/lib/workloads.mjs'; // (a bench module without declarations)
    const { loadPoolTexts } = (await import(workloads)) as { loadPoolTexts: (dir: string) => string[] | null };
    const dir = mkdtempSync(join(tmpdir(), 'l2e-bench-pools-'));
    try {
      writeFileSync(join(dir, 'a.json'), '{"satu": 1, "dua": 2}');
      expect(loadPoolTexts(dir)).toEqual(['satu', 'dua']);
      writeFileSync(join(dir, 'b.json'), '["satu", "dua"]');
      expect(() => loadPoolTexts(dir)).toThrow(`${join(dir, 'b.json')}: not a pool (a JSON object whose keys are the texts)`);
      writeFileSync(join(dir, 'b.json'), '{satu');
      expect(() => loadPoolTexts(dir)).toThrow(new RegExp(`^${join(dir, 'b.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a pool \\(`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

it('a negative number is a value, not an unknown flag: its script says what range it wants', () => {
  const r = bench('serve.mjs', '--duration', '-1');
  expect(r.status).toBe(1);
  expect(r.stderr).toBe('bench/serve.mjs: --duration must be in (0, 600] seconds, got -1\n');
});
