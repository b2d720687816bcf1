// bench/gpu-bench.mjs with --smoke shapes on the emulation build: the code a GPU loan runs
// (scripts/gpu/run.sh: our rows, the tile sweep and the ratio table; profile.sh: the recipe step's
// profile) runs on every commit, so that a loan's minutes are not lost to a bench that broke since the
// last one. Each run exits 0 and writes every figure it owes: positive and finite (the values
// themselves mean nothing in the emulation). On a real GPU this suite skips: the loan runs the bench itself next.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir } from '../helpers/tinyModel.js';
import { emulated, gpuNote } from './gpu-helpers.js';

const root = resolve(import.meta.dirname, '../..');
const pools = existsSync(join(root, '../shared/data/pools'));

/** `node bench/gpu-bench.mjs ...args` (the addon from this run's environment, `env` added): its exit status and output. */
function bench(...args: (string | Record<string, string>)[]): { status: number | null; out: string } {
  const env = { ...process.env, ...Object.assign({}, ...args.filter((a) => typeof a === 'object')) } as NodeJS.ProcessEnv;
  const flags = args.filter((a): a is string => typeof a === 'string');
  const r = spawnSync(process.execPath, ['bench/gpu-bench.mjs', ...flags], { cwd: root, encoding: 'utf8', timeout: 600_000, env });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The keys of `obj` whose values are not positive finite numbers. */
const notPositive = (obj: Record<string, unknown>, keys: string[]): string[] =>
  keys.filter((k) => !(typeof obj[k] === 'number' && Number.isFinite(obj[k]) && (obj[k] as number) > 0));

const note = !emulated ? `(skipped: not the emulation build ${gpuNote})` : !pools ? '(skipped: no ../shared/data/pools)' : '';

describe.skipIf(!emulated || !pools)(`bench/gpu-bench.mjs --smoke on the emulation build ${note}`, () => {
  it('our rows as run.sh measures them (the model rows, then the attention rows a kernel a process, all in one file): every section runs, its figures are written, and --table saves the run', () => {
    const dir = makeTempDir();
    const out = join(dir, 'ours.json');
    const r = bench('--smoke', '--models', '--out', out);
    expect(r.status, r.out).toBe(0);
    for (const kernels of ['auto', 'sm80,sm90,sm90wg2,sm90pp']) {
      const a = bench('--smoke', '--attention', '--out', out, { GPU_BENCH_KERNELS: kernels });
      expect(a.status, a.out).toBe(0);
    }
    const res = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    expect([res['emulated'], res['smoke']]).toEqual([true, true]);
    const figures = ['attn.causal.S64.fwd_tflops', 'attn.causal.S64.fwdbwd_tflops', ...['sm80', 'sm90', 'sm90wg2', 'sm90pp'].map((k) => `attn.${k}.causal.S64.fwd_tflops`)];
    for (const key of ['encode_bf16.texts_per_s', 'train.steps_per_s', 'train.real_tokens_per_s', 'train.pool_live_peak_GiB', 'train.peak_GiB', 'train.train_state_GiB', 'train.long.S64.tokens_per_s'])
      figures.push(`600m.${key}`);
    expect(notPositive(res, figures)).toEqual([]);
    const ops = res['600m.train.ops'] as Record<string, { calls: number; seconds: number }>;
    expect(Object.keys(ops)).toEqual(expect.arrayContaining(['linear', 'linear_backward', 'attention', 'attention_backward', 'optimizer_step']));
    // run.sh's retry after a fault: only the models whose rows the file lacks (here none)
    const again = bench('--smoke', '--models', '--resume', out, '--out', join(dir, 'again.json'));
    expect([again.status, again.out], again.out).toEqual([0, expect.stringContaining(`--resume ${out}: every model measured already`)]);
    expect(Object.keys(JSON.parse(readFileSync(join(dir, 'again.json'), 'utf8')) as object).filter((k) => k.startsWith('600m.'))).toEqual([]);
    // the ratio table over it, saved as a loan saves it (no reference figures here: every ratio empty)
    const saved = join(dir, 'results');
    const t = bench('--table', out, join(dir, 'no-anchor.json'), '--save', saved);
    expect(t.status, t.out).toBe(0);
    const [file] = readdirSync(saved);
    const run = JSON.parse(readFileSync(join(saved, file!), 'utf8')) as { rows: { workload: string; ours?: number }[] };
    expect(run.rows.find((row) => row.workload === '600M recipe steps/s')?.ours).toBe(res['600m.train.steps_per_s']);
  });

  it('the tile sweep: every family of variants measured at both lengths, and its best named', () => {
    const out = join(makeTempDir(), 'sweep.json');
    const r = bench('--sweep', '--smoke', '--out', out);
    expect(r.status, r.out).toBe(0);
    const res = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    const keys = Object.keys(res).filter((k) => k.startsWith('attn.sweep.') && k.endsWith('_tflops'));
    for (const family of ['fwd', 'bwd', 'wg2', 'pp', 'bwd90'])
      for (const S of [64, 130]) {
        const measured = keys.filter((k) => k.startsWith(`attn.sweep.${family}.`) && k.endsWith(`.S${S}_tflops`));
        expect(measured.length, `${family} S=${S}`).toBeGreaterThan(1);
        const best = res[`attn.sweep.${family}.best.S${S}`];
        expect(measured, `${family} S=${S}`).toContain(`attn.sweep.${family}.${String(best)}.S${S}_tflops`);
      }
    expect(notPositive(res, keys)).toEqual([]);
    // --plan (what run.sh shares the sweep's time by): each kind's count of what it measured
    const plan = bench('--sweep', '--smoke', '--plan');
    expect(plan.status, plan.out).toBe(0);
    const counts = Object.fromEntries(['fwd', 'bwd', 'wg2', 'pp', 'bwd90'].map((f) => [f, keys.filter((k) => k.startsWith(`attn.sweep.${f}.`)).length]));
    expect(Object.fromEntries(plan.out.trim().split('\n').map((l) => [l.split(' ')[0], Number(l.split(' ')[1])]))).toEqual(counts);
  });

  it('the sweep kind by kind (--kinds, one process each as run.sh runs them): each adds its figures to the file; an unknown kind is a usage error', () => {
    const out = join(makeTempDir(), 'sweep.json');
    for (const kinds of ['wg2', 'fwd,bwd90']) expect(bench('--sweep', '--smoke', '--kinds', kinds, '--out', out).status).toBe(0);
    const res = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    const families = new Set(Object.keys(res).filter((k) => k.endsWith('_tflops')).map((k) => k.split('.')[2]));
    expect([...families].sort()).toEqual(['bwd90', 'fwd', 'wg2']);
    const bad = bench('--sweep', '--smoke', '--kinds', 'fwd,nope');
    expect(bad.status).toBe(2);
    expect(bad.out).toContain('gpu-bench: --kinds fwd,nope: expected a comma-separated subset of fwd,bwd,wg2,pp,bwd90');
  });

  it('the recipe step profile: host time per call and the per-op device time', () => {
    const r = bench('--profile', '--smoke');
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/600m recipe step profile: [\d.]+ ms a step/);
    expect(r.out).toMatch(/optimizer_step +\d+ calls/);
    // the matrix products with their rate (core/op_flops.h), the other ops without
    expect(r.out).toMatch(/linear_backward +\d+ calls +[\d.]+ ms +[\d.]+% +[\d.]+ TFLOP\/s/);
    expect(r.out).toMatch(/rmsnorm +\d+ calls +[\d.]+ ms +[\d.]+%\n/);
    expect(r.out).toMatch(/device time [\d.]+ ms a step/);
  });
});
