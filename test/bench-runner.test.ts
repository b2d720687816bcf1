// The microbenchmark runner (bench/run.mjs) end to end on one cheap kernel: the --json file's shape
// and --compare against it. Timings themselves are never asserted (shared machines are noisy).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrt } from '../bench/lib/ort-peer.mjs';
import { testingAddon } from './helpers/testing-addon.mjs';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '..');
const runner = join(repoRoot, 'bench', 'run.mjs');
const CASE = 'op/l2norm_fwd/h512';

interface ResultRow {
  name: string;
  shape: string;
  samples: number;
  median_s: number;
  min_s: number;
  max_s: number;
  q1_s: number;
  q3_s: number;
  rate: { value: number; unit: string } | null;
  extra: Record<string, unknown>;
}
interface BenchFile {
  meta: { quick: boolean; samples: number; gemmKernel: string; filter: string | null; pools: { dir: string; texts: number } | null };
  results: ResultRow[];
  summary: Record<string, unknown>;
  comparison: { name: string; before_s: number; after_s: number; speedup: number }[] | null;
  skipped: string[];
}

const dir = mkdtempSync(join(tmpdir(), 'l2e-bench-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function readJson(path: string): BenchFile {
  return JSON.parse(readFileSync(path, 'utf8')) as BenchFile;
}

describe('bench/run.mjs', () => {
  const first = join(dir, 'first.json');

  it('times one selected kernel and writes its statistics', async () => {
    const { stdout } = await run(process.execPath, [runner, '--quick', '--filter', `^${CASE}$`, '--json', first], {
      cwd: repoRoot,
    });
    expect(stdout).toContain(CASE);
    const out = readJson(first);
    expect(out.meta.quick).toBe(true);
    expect(out.meta.filter).toBe(`^${CASE}$`);
    expect(typeof out.meta.gemmKernel).toBe('string');
    expect(out.results.map((r) => r.name)).toEqual([CASE]);
    const r = out.results[0]!;
    expect(r.samples).toBe(out.meta.samples);
    for (const v of [r.median_s, r.min_s, r.max_s, r.q1_s, r.q3_s]) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    expect(r.min_s).toBeLessThanOrEqual(r.q1_s);
    expect(r.q1_s).toBeLessThanOrEqual(r.median_s);
    expect(r.median_s).toBeLessThanOrEqual(r.q3_s);
    expect(r.q3_s).toBeLessThanOrEqual(r.max_s);
    expect(r.shape).toContain('P=1536');
    expect(Number(r.extra['inner'])).toBeGreaterThanOrEqual(1);
    expect(out.comparison).toBeNull();
    expect(Array.isArray(out.skipped)).toBe(true);
  });

  it('compares a run with an earlier --json file', async () => {
    const second = join(dir, 'second.json');
    const { stdout } = await run(
      process.execPath,
      [runner, '--quick', '--filter', `^${CASE}$`, '--compare', first, '--json', second],
      { cwd: repoRoot },
    );
    expect(stdout).toContain('speedup');
    const out = readJson(second);
    expect(out.comparison).toHaveLength(1);
    const c = out.comparison![0]!;
    expect(c.name).toBe(CASE);
    expect(c.before_s).toBe(readJson(first).results[0]!.median_s);
    expect(c.speedup).toBeCloseTo(c.before_s / c.after_s, 10);
  });

  it('has a kernel and a case for every op of the op table (core/ops.def, through backendOps)', async () => {
    const addon = testingAddon<{ backendOps(): string[]; benchOps(): string[] }>();
    const kernels = addon.benchOps();
    const { stdout } = await run(process.execPath, [runner, '--list'], { cwd: repoRoot });
    const cases = stdout.split('\n');
    // <op>_fwd / <op>_bwd for an op with a backward (bench_binding.cpp's names), else the op's name
    const kernelOf = (op: string): string =>
      op.endsWith('_backward') ? `${op.slice(0, -'_backward'.length)}_bwd` : kernels.includes(`${op}_fwd`) ? `${op}_fwd` : op;
    const ops = addon.backendOps();
    expect(ops.length).toBeGreaterThanOrEqual(20);
    const noKernel = ops.filter((op) => !kernels.includes(kernelOf(op)));
    const noCase = ops.filter((op) => !cases.some((c) => c.startsWith(`op/${kernelOf(op)}/`)));
    expect({ noKernel, noCase }).toEqual({ noKernel: [], noCase: [] });
  });

  it('fails with a clear message when nothing matches the filter', async () => {
    await expect(run(process.execPath, [runner, '--quick', '--filter', '^no-such-case$'], { cwd: repoRoot })).rejects.toThrow(
      /no benchmark case matches/,
    );
  });

  it('takes the text pools from --pools DIR or L2E_POOLS, and refuses a missing folder', async () => {
    const pools = join(dir, 'pools');
    mkdirSync(pools);
    writeFileSync(join(pools, 'a.json'), JSON.stringify({ 'satu dua tiga': 1, 'empat lima': 1, ' ': 1 }));
    writeFileSync(join(pools, 'b.json'), JSON.stringify({ 'enam tujuh lapan sembilan': 1 }));
    const viaFlag = join(dir, 'flag.json');
    await run(process.execPath, [runner, '--quick', '--filter', `^${CASE}$`, '--pools', pools, '--json', viaFlag], { cwd: repoRoot });
    expect(readJson(viaFlag).meta.pools).toEqual({ dir: pools, texts: 3 }); // the blank text is not one
    const viaEnv = join(dir, 'env.json');
    await run(process.execPath, [runner, '--quick', '--filter', `^${CASE}$`, '--json', viaEnv], {
      cwd: repoRoot,
      env: { ...process.env, L2E_POOLS: pools },
    });
    expect(readJson(viaEnv).meta.pools).toEqual({ dir: pools, texts: 3 });
    const missing = join(dir, 'no-pools');
    await expect(run(process.execPath, [runner, '--quick', '--pools', missing], { cwd: repoRoot })).rejects.toThrow(`--pools ${missing}: no such folder`);
  });

  it('--help documents every option and environment variable', async () => {
    const { stdout } = await run(process.execPath, [runner, '--help'], { cwd: repoRoot });
    for (const o of ['--filter', '--list', '--quick', '--samples', '--json', '--compare', '--pools', 'L2E_POOLS', 'L2E_TESTING_ADDON', 'L2E_NUM_THREADS', 'L2E_CPU_SPIN_US']) {
      expect(stdout, o).toContain(o);
    }
  });
});

describe('bench/precision.mjs', () => {
  const script = join(repoRoot, 'bench', 'precision.mjs');
  const pools = resolve(repoRoot, '../shared/data/pools'); // the script's own length mix

  it('refuses a --precisions entry that is not PRECISION[@ISA], naming it', async () => {
    await expect(run(process.execPath, [script, '--precisions', 'fp32,bf16@sse'], { cwd: repoRoot })).rejects.toThrow(
      "--precisions: 'bf16@sse' is not PRECISION[@ISA] with ISA one of scalar, avx2, avx512, amx",
    );
    await expect(run(process.execPath, [script, '--precisions', 'fp16'], { cwd: repoRoot })).rejects.toThrow(
      "--precisions: unknown precision fp16 in 'fp16'",
    );
  });

  it('refuses a --precisions or peer format given twice (their rows were merged into one), naming it', async () => {
    await expect(run(process.execPath, [script, '--precisions', 'fp32,int8,int8'], { cwd: repoRoot })).rejects.toThrow('--precisions: int8 is given twice');
    await expect(run(process.execPath, [script, '--ort', 'INT8,FP32,INT8'], { cwd: repoRoot })).rejects.toThrow('--ort: INT8 is given twice');
  });

  const best = testingAddon<{ cpuIsa(): { best: string } }>().cpuIsa().best;
  it.skipIf(best === 'amx' || !existsSync(pools))('refuses an ISA above the CPU before any work, naming the entry', async () => {
    await expect(run(process.execPath, [script, '--precisions', 'fp32,bf16@amx'], { cwd: repoRoot })).rejects.toThrow(
      `--precisions: bf16@amx needs amx; this CPU's best is ${best}`,
    );
  });

  it.skipIf(!existsSync(pools))('makes a peer that fails in its own process a skipped row; the other rows stand', async () => {
    const out = join(dir, 'precision-peer-fails.json');
    const { stdout } = await run(process.execPath, [script, '--quick', '--texts', '2', '--passes', '1', '--precisions', 'fp32', '--llama', 'none', '--ort', 'FP32', '--json', out], {
      cwd: repoRoot,
      env: { ...process.env, TMPDIR: dir, L2E_BENCH_FAIL_CHILD: 'onnxruntime FP32' },
    });
    const r = JSON.parse(readFileSync(out, 'utf8')) as { rows: { engine: string }[]; skipped: string[] };
    expect(r.rows.map((x) => x.engine)).toEqual(['ours fp32']);
    const ort = await loadOrt();
    const why = 'skip' in ort ? `onnxruntime FP32: ${ort.skip}` : 'onnxruntime FP32: its process failed (failed as L2E_BENCH_FAIL_CHILD asked) in pass 1: not timed';
    expect(r.skipped).toEqual([why]);
    expect(stdout).toContain(`skipped: ${why}`);
  }, 300_000);

  it.skipIf(!existsSync(pools))('runs a PRECISION@ISA entry at that instruction set, beside the others in one table', async () => {
    const out = join(dir, 'precision.json');
    await run(process.execPath, [script, '--quick', '--texts', '4', '--passes', '1', '--precisions', 'fp32,fp32@scalar', '--llama', 'none', '--ort', 'none', '--json', out], {
      cwd: repoRoot,
      env: { ...process.env, TMPDIR: dir },  // its random weights, kept in the temp folder, go with `dir`
    });
    const { rows, ops } = JSON.parse(readFileSync(out, 'utf8')) as {
      rows: { engine: string; isa: string; minCos: number }[];
      ops: Record<string, { op: string; seconds: number }[]>;
    };
    const level = testingAddon<{ cpuIsa(): { isa: string } }>().cpuIsa().isa;
    expect(rows.map((r) => [r.engine, r.isa])).toEqual([['ours fp32', level], ['ours fp32@scalar', 'scalar']]);
    expect(rows[1]!.minCos).toBeGreaterThan(0.99999); // the same model on the scalar kernels
    expect(Object.keys(ops)).toEqual(['fp32', 'fp32@scalar']);
    expect(ops['fp32@scalar']!.find((x) => x.op === 'linear')!.seconds).toBeGreaterThan(0);
  }, 300_000);
});

describe('bench/ uses the library', () => {
  it('loads no addon of its own and re-implements neither the RNG, the packing, the random weights nor the safetensors writer', () => {
    const files = readdirSync(join(repoRoot, 'bench'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.mjs'));
    expect(files.length).toBeGreaterThan(3);
    const own: Record<string, RegExp> = {
      'an addon loader': /node-gyp-build|createRequire|\.node['"]/,
      'an RNG': /0x6d2b79f5|Math\.imul|1103515245/,
      'a safetensors writer': /writeBigUInt64LE|data_offsets/,
      'a packer': /cu\[i \+ 1\]|cuSeqlens\[i \+ 1\]/,
      'a weight initialiser': /setTensor\(/,
    };
    const found = files.flatMap((f) => {
      const text = readFileSync(join(repoRoot, 'bench', f), 'utf8');
      return Object.entries(own).filter(([, re]) => re.test(text)).map(([what]) => `${f}: ${what}`);
    });
    expect(found).toEqual([]);
  });

  it('bench/knn.mjs runs the package knn() next to NumPy on the same vectors, naming the machine', async () => {
    const out = join(dir, 'knn.json');
    const { stdout } = await run(process.execPath, [join(repoRoot, 'bench', 'knn.mjs'), '--n', '300', '--q', '300', '--dim', '32', '--metric', 'cosine', '--json', out]);
    expect(stdout).toContain('self ranked first: 300/300');
    const r = JSON.parse(readFileSync(out, 'utf8')) as { machine: { cpu: string; cores: number }; rows: { metric: string; numpy: unknown; sameNeighbours: number | null }[] };
    expect(stdout).toContain(`machine: ${r.machine.cpu} x ${r.machine.cores}, load average `);
    expect(r.rows.map((x) => x.metric)).toEqual(['cosine']);
    const numpy = spawnSync('python3', ['-c', 'import numpy']).status === 0;
    // both searches are exact: the same 11 rows for every query (a tie at the 11th would be a chance in
    // thousands at these 300 seeded vectors; the order within them is not compared)
    expect(r.rows[0]!.sameNeighbours).toBe(numpy ? 300 : null);
  });
});
