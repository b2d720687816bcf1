// scripts/gpu/loan.sh and run.sh, the one call of a GPU loan, driven without a GPU: stub commands on PATH
// (node's bench and vitest, python3, nvidia-smi) fault, hang, ignore SIGTERM or print half a JSON block
// where the real ones might, so that the call's handling of each is proven before the loan: every stage
// bounded, what was measured before a fault or a hang kept, a retry's rows filling only gaps (and
// labelled), the reference's figures rebuilt from its log, the timeline written, at most 8 files.
// Also the JSON chores of scripts/gpu/loan-json.cjs and the ratio table's "eager only" rows.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs bench script without type declarations
import { tableRows } from '../bench/gpu-bench.mjs';
import { makeTempDir } from './helpers/tinyModel.js';

const root = resolve(import.meta.dirname, '..');

// The stub bench (bench/gpu-bench.mjs's measuring modes): each adds its figures to --out as the real one
// does, and faults (exit 1 after some figures), hangs, or hangs ignoring SIGTERM as the scenario says.
const STUB_BENCH = String.raw`
const fs = require('node:fs');
const args = process.argv.slice(2), env = process.env;
const arg = (f) => (args.includes(f) ? args[args.indexOf(f) + 1] : undefined);
fs.appendFileSync(env.STUB_CALLS, JSON.stringify({ args, attention: env.L2E_CUDA_ATTENTION, kernels: env.GPU_BENCH_KERNELS }) + '\n');
const out = arg('--out');
const res = out && fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : {};
const add = (figures) => {
  Object.assign(res, { device: 'Stub H100' }, figures);
  fs.writeFileSync(out + '.tmp-1', JSON.stringify(res));
  fs.renameSync(out + '.tmp-1', out);
};
const hang = (ignoreTerm) => {
  if (ignoreTerm) process.on('SIGTERM', () => console.log('SIGTERM ignored'));
  setInterval(() => {}, 1000);
};
if (args.includes('--profile')) console.log('600m recipe step profile: 10.00 ms a step (100.0 steps/s)');
else if (args.includes('--plan')) console.log('fwd 18\nbwd 14\nwg2 6\npp 6\nbwd90 12');
else if (args.includes('--sweep')) {
  const kind = arg('--kinds');
  add({ ['attn.sweep.' + kind + '.default.S2048_tflops']: 100 });
  if (kind === 'bwd90') hang(false);
  else if (kind === 'pp') fs.writeFileSync(out + '.tmp-4242', 'a writer killed before its rename');
} else if (args.includes('--models') && !args.includes('--resume')) {
  add({ '600m.encode_bf16.texts_per_s': 5000, '600m.train.steps_per_s': 150 });
  console.error('CUDA error: an illegal memory access was encountered');
  process.exit(1);
} else if (args.includes('--models')) {
  if (env.L2E_CUDA_ATTENTION !== 'sm80') process.exit(3);
  // the 600m figure is one the first run has: the merge must keep the first run's
  add({ '600m.encode_bf16.texts_per_s': -1, '1b.encode_bf16.texts_per_s': 3000, '1b.train.steps_per_s': 80 });
} else if (args.includes('--attention')) {
  const k = env.GPU_BENCH_KERNELS;
  if (k === 'auto') add({ 'attn.causal.S2048.fwd_tflops': 400, 'attn.causal.S2048.fwdbwd_tflops': 300 });
  else if (k === 'sm90wg2') {
    add({ 'attn.sm90wg2.causal.S512.fwd_tflops': 200 });
    process.exit(1);
  } else if (k === 'sm90pp') hang(false);
  else add({ ['attn.' + k + '.causal.S2048.fwd_tflops']: 350 });
} else process.exit(9);
`;

// The stub vitest: the never-run forward suite hangs ignoring SIGTERM (timeout -k must kill it), the rest pass.
const STUB_VITEST = String.raw`
const files = process.argv.slice(3).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--exclude');
console.log('stub vitest', process.argv.slice(3).join(' '));
if (files.includes('test/gpu/attention-sm90.test.ts')) {
  process.on('SIGTERM', () => console.log('SIGTERM ignored'));
  setInterval(() => {}, 1000);
} else console.log(' Test Files  ' + files.length + ' passed (' + files.length + ')');
`;

// reference_stack.py cut in its third model: two JSON blocks whole, the third half printed, no anchor.json
const STUB_PYTHON = `#!/bin/bash
printf '{\\n "ceiling.bf16_gemm_8192_tflops": 700.5,\\n "attn.sdpa_flash.causal.S2048.fwdbwd_tflops": 250,\\n "attn.sdpa_cudnn.causal.S2048.fwd_tflops": NaN\\n}\\n'
echo 'Some warning {with braces}'
printf '{\\n "600m.train_recipe_step.steps_per_s": 30,\\n "600m.encode_bf16.texts_per_s": 2500\\n}\\n'
printf '{\\n "1b.params": 10,\\n'
echo 'Traceback (most recent call last): torch.OutOfMemoryError'
exit 1
`;

/** A copy of the scripts in a scratch "repository" with stub commands first on PATH; returns its env. */
function stubLoan(dir: string): { repo: string; out: string; env: NodeJS.ProcessEnv } {
  const repo = join(dir, 'repo'), out = join(dir, 'out'), bin = join(dir, 'bin'), stubs = join(dir, 'stubs'), shared = join(dir, 'shared');
  for (const d of [join(repo, 'scripts/gpu'), join(repo, '.gpu'), join(repo, 'build/Release/testing'), bin, stubs, join(shared, 'data/pools')]) mkdirSync(d, { recursive: true });
  for (const f of ['loan.sh', 'run.sh', 'profile.sh', 'cublas-path.sh', 'loan-json.cjs']) copyFileSync(join(root, 'scripts/gpu', f), join(repo, 'scripts/gpu', f));
  writeFileSync(join(repo, '.gpu/on-device.sh'), '# stub: nothing to unpack\n');
  writeFileSync(join(repo, 'build/Release/testing/l2e_testing.node'), '');
  writeFileSync(join(shared, 'data/pools/pool.json'), '{"a text": 1}\n');
  writeFileSync(join(stubs, 'addon.cjs'), 'exports.cudaStatus = () => ({ compiled: true, usable: true, emulated: false, name: "Stub H100" });\n');
  writeFileSync(join(stubs, 'bench.cjs'), STUB_BENCH);
  writeFileSync(join(stubs, 'vitest.cjs'), STUB_VITEST);
  const exe = (name: string, text: string) => {
    writeFileSync(join(bin, name), text);
    chmodSync(join(bin, name), 0o755);
  };
  // node: the bench's measuring modes and vitest go to the stubs; --table and everything else to the real
  // node (the table is the real bench's, run from this checkout)
  exe('node', `#!/bin/bash
case "$1" in
  node_modules/vitest/vitest.mjs) shift; exec "${process.execPath}" "${stubs}/vitest.cjs" "$@";;
  bench/gpu-bench.mjs) shift; [ "$1" = --table ] && exec "${process.execPath}" "${root}/bench/gpu-bench.mjs" "$@"
    exec "${process.execPath}" "${stubs}/bench.cjs" "$@";;
esac
exec "${process.execPath}" "$@"
`);
  exe('python3', STUB_PYTHON);
  for (const tool of ['nvidia-smi', 'nvcc', 'cuobjdump']) exe(tool, `#!/bin/bash\necho "stub ${tool}"\n`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${bin}:${process.env['PATH']}`,
    OUT: out,
    L2E_SHARED: shared,
    L2E_ADDON: join(stubs, 'addon.cjs'),
    L2E_TESTING_ADDON: join(repo, 'build/Release/testing/l2e_testing.node'),
    L2E_CUBLAS: 'stub', // cublas-path.sh would search the disk
    STUB_CALLS: join(dir, 'calls.jsonl'),
  };
  for (const k of ['DEADLINE', 'RUN_S', 'STEP_S', 'SKIP_TESTS', 'SKIP_OURS', 'SKIP_SWEEP', 'SKIP_REF', 'EXTRA', 'COMPILED_S', 'L2E_LOAN_T0', 'GPU_BENCH_KERNELS', 'L2E_CUDA_ATTENTION'])
    delete env[k];
  return { repo, out, env };
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

describe('scripts/gpu/loan.sh with stub commands', () => {
  it('a fault, a hang and a SIGTERM-deaf hang each cost only their own stage; every measured figure comes back', () => {
    const dir = makeTempDir();
    const { repo, out, env } = stubLoan(dir);
    // small limits where a stub hangs (a share is never under 10 s); the keeps under DEADLINE leave them as they are
    const t0 = Date.now();
    const r = spawnSync('bash', [join(repo, 'scripts/gpu/loan.sh')], {
      env: { ...env, RUN_S: '420', NEW_TESTS_S: '3', ATTN_S: '14', SWEEP_S: '30', STEP_S: '20' },
      encoding: 'utf8',
      timeout: 150_000,
    });
    const log = `${r.stdout}${r.stderr}`;
    expect(r.status, log).toBe(0);
    expect(Date.now() - t0, log).toBeLessThan(100_000);

    // at most 8 files, no temporary file a killed writer left
    const files = filesUnder(out);
    expect(files.filter((f) => !f.startsWith('results/')), log).toEqual(['anchor.json', 'env.txt', 'gpu-tests.log', 'ours.json', 'ours.log', 'ref.log']);
    expect(files.filter((f) => f.startsWith('results/'))).toHaveLength(1);

    // the timeline: each stage's exit status and time; the SIGTERM-deaf suite killed 5 s after its limit
    const timeline = readFileSync(join(out, 'env.txt'), 'utf8');
    for (const line of [
      /GPU tests \(but the never-run kernels'\): exit 0 after \d+ s of \d+/,
      /GPU tests test\/gpu\/attention-sm90\.test\.ts: exit 137 \(time limit\) after \d+ s of 3/,
      /GPU tests test\/gpu\/attention-sm90-backward\.test\.ts: exit 0/,
      /CUDA build tests \(beside the GPU suites\): exit 0/,
      /ours, model rows: exit 1 /,
      /ours, model rows again \(sm80 attention\): exit 0/,
      /ours, attention rows: sm90wg2: exit 1 /,
      /ours, attention rows: sm90pp: exit 124 \(time limit\)/,
      /sweep bwd90: exit 124 \(time limit\)/,
      /sweep fwd: exit 0/,
      /reference stack: exit 1 /,
      /run\.sh done/,
      /recipe step profile, pool arena: profile exit 0/,
      /recipe step profile, pool nosplit: profile exit 0/,
    ])
      expect(timeline, log).toMatch(line);
    expect(timeline).toMatch(/^\[\+\d+ s\] setup done \(run\.sh all, DEADLINE in \d+ s\)$/m);

    // the suites after the hung one ran, and their logs came back
    const tests = readFileSync(join(out, 'gpu-tests.log'), 'utf8');
    expect(tests).toContain('stub vitest test/gpu --exclude test/gpu/attention-sm90.test.ts --exclude test/gpu/attention-sm90-backward.test.ts');
    expect(tests).toContain('stub vitest test/gpu/attention-sm90-backward.test.ts');
    expect(tests).toContain('stub vitest test/cuda-build.test.ts test/cuda-compile.test.ts');

    // ours: the first run's figures, the retry's for what it lacked (listed), the attention rows of every
    // kernel up to a fault, the sweep's kinds (the hung one's figure before its hang included)
    const ours = json(join(out, 'ours.json'));
    expect(ours).toMatchObject({
      '600m.encode_bf16.texts_per_s': 5000,
      '600m.train.steps_per_s': 150,
      '1b.train.steps_per_s': 80,
      'merged.sm80_attention_retry': ['1b.encode_bf16.texts_per_s', '1b.train.steps_per_s'],
      'attn.causal.S2048.fwdbwd_tflops': 300,
      'attn.sm80.causal.S2048.fwd_tflops': 350,
      'attn.sm90.causal.S2048.fwd_tflops': 350,
      'attn.sm90wg2.causal.S512.fwd_tflops': 200,
    });
    for (const kind of ['bwd90', 'wg2', 'pp', 'bwd', 'fwd']) expect(ours[`attn.sweep.${kind}.default.S2048_tflops`], kind).toBe(100);
    const calls = readFileSync(env['STUB_CALLS']!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { args: string[]; attention?: string; kernels?: string });
    expect(calls.find((c) => c.args.includes('--resume'))).toMatchObject({ attention: 'sm80' });
    expect(calls.filter((c) => c.args.includes('--attention')).map((c) => c.kernels)).toEqual(['auto', 'sm80', 'sm90', 'sm90wg2', 'sm90pp']);
    expect(calls.filter((c) => c.args.includes('--kinds')).map((c) => c.args[c.args.indexOf('--kinds') + 1])).toEqual(['bwd90', 'wg2', 'pp', 'bwd', 'fwd']);

    // the reference's figures rebuilt from the blocks its log holds whole (NaN as null), and in the table
    const anchor = json(join(out, 'anchor.json'));
    expect(anchor).toMatchObject({
      'ceiling.bf16_gemm_8192_tflops': 700.5,
      'attn.sdpa_cudnn.causal.S2048.fwd_tflops': null,
      '600m.train_recipe_step.steps_per_s': 30,
      rebuilt_from_log: 'reference_stack.py exit 1 before writing anchor.json',
    });
    expect(anchor).not.toHaveProperty('1b.params');
    const saved = json(join(out, files.find((f) => f.startsWith('results/'))!)) as { rows: { workload: string; ratio?: number; met?: boolean; eagerOnly?: boolean }[] };
    const row = (w: string) => saved.rows.find((x) => x.workload === w);
    expect(row('600M recipe steps/s')).toMatchObject({ ratio: 5, met: true });
    expect(row('600M encode texts/s')).toMatchObject({ ratio: 2, eagerOnly: true });
    expect(row('600M encode texts/s')!.met).toBeUndefined();
    expect(log).toContain('— (eager only)');

    // the profiles' logs at the end of ours.log
    expect(readFileSync(join(out, 'ours.log'), 'utf8')).toMatch(/== recipe step profile, device pool: nosplit\n600m recipe step profile/);
  }, 160_000);

  it('past DEADLINE every stage is skipped, and the tables are still printed and saved without ours.json or anchor.json', () => {
    const dir = makeTempDir();
    const { repo, out, env } = stubLoan(dir);
    const r = spawnSync('bash', [join(repo, 'scripts/gpu/run.sh'), 'all'], {
      env: { ...env, DEADLINE: String(Math.floor(Date.now() / 1000) - 1) },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const log = `${r.stdout}${r.stderr}`;
    expect(r.status, log).toBe(0);
    const timeline = readFileSync(join(out, 'env.txt'), 'utf8');
    for (const stage of ["GPU tests (but the never-run kernels')", 'ours, model rows', 'ours, attention rows: auto', 'sweep bwd90', 'reference stack'])
      expect(timeline, log).toContain(`${stage}: skipped (no time left before DEADLINE)`);
    expect(existsSync(env['STUB_CALLS']!) ? readFileSync(env['STUB_CALLS']!, 'utf8') : '').not.toContain('--models');
    expect(log).toContain(`(no results of ours at ${join(out, 'ours.json')}: ENOENT)`);
    expect(filesUnder(join(out, 'results'))).toHaveLength(1);
  }, 70_000);
});

describe('scripts/gpu/loan.sh on a machine where CUDA is not usable', () => {
  it('stops at once with exit 3, the reason in env.txt (which comes back), and runs no profile', () => {
    const dir = makeTempDir();
    const { repo, out, env } = stubLoan(dir);
    writeFileSync(env['L2E_ADDON']!, 'exports.cudaStatus = () => ({ compiled: true, usable: false, emulated: false, reason: "no NVIDIA driver found" });\n');
    const r = spawnSync('bash', [join(repo, 'scripts/gpu/loan.sh')], { env, encoding: 'utf8', timeout: 60_000 });
    const log = `${r.stdout}${r.stderr}`;
    expect(r.status, log).toBe(3);
    const timeline = readFileSync(join(out, 'env.txt'), 'utf8');
    expect(timeline).toContain('gpu-run: CUDA is not usable: no NVIDIA driver found');
    expect(timeline).toMatch(/\] stopped: CUDA is not usable \(exit 1; the lines above\)/);
    expect(log).toContain('== no recipe step profiles: CUDA is not usable here');
    expect(log).not.toContain('recipe step profile, device pool');
    expect(existsSync(env['STUB_CALLS']!)).toBe(false); // no test, bench or reference stage ran
  }, 70_000);
});

describe('scripts/gpu/loan-json.cjs', () => {
  const helper = (...args: string[]) => spawnSync(process.execPath, [join(root, 'scripts/gpu/loan-json.cjs'), ...args], { encoding: 'utf8' });

  it('merge: only the figures ours lacks, listed under merged.LABEL; the retry file deleted', () => {
    const dir = makeTempDir();
    const [ours, from] = [join(dir, 'ours.json'), join(dir, 'from.json')];
    writeFileSync(ours, JSON.stringify({ device: 'A', x: 1 }));
    writeFileSync(from, JSON.stringify({ device: 'A', x: 2, y: 3 }));
    expect(helper('merge', ours, from, 'retry').status).toBe(0);
    expect(json(ours)).toEqual({ device: 'A', x: 1, y: 3, 'merged.retry': ['y'] });
    expect(existsSync(from)).toBe(false);
    // nothing to merge is no error
    expect(helper('merge', ours, from, 'retry').stdout).toContain(`(nothing to merge: no ${from})`);
  });

  it('anchor: a complete file kept, NaN written as null, a cut one rebuilt from the log, neither an exit 1', () => {
    const dir = makeTempDir();
    const [anchor, log] = [join(dir, 'anchor.json'), join(dir, 'ref.log')];
    writeFileSync(anchor, '{"a": 1}');
    expect(helper('anchor', anchor, log, 'why').status).toBe(0);
    expect(json(anchor)).toEqual({ a: 1 });
    writeFileSync(anchor, '{"a": NaN, "b": -Infinity, "c": 2}');
    expect(helper('anchor', anchor, log, 'why').status).toBe(0);
    expect(json(anchor)).toEqual({ a: null, b: null, c: 2 });
    writeFileSync(anchor, '{"a": 1, "b"');
    writeFileSync(log, '{\n "a": 5\n}\nnoise\n{\n "a": 6,\n "b": 7\n}\n');
    expect(helper('anchor', anchor, log, 'cut').status).toBe(0);
    expect(json(anchor)).toEqual({ a: 6, b: 7, rebuilt_from_log: 'cut' });
    const none = helper('anchor', join(dir, 'none.json'), join(dir, 'none.log'), 'x');
    expect([none.status, none.stdout.trim()]).toEqual([1, `no anchor.json rebuilt: ${join(dir, 'none.log')} has no complete JSON block`]);
  });
});

describe('gpu-bench --table without a torch.compile figure', () => {
  type Row = { workload: string; ratio?: number; met?: boolean; eagerOnly?: boolean };
  const rowsOf = tableRows as (ours: object, eager: object, compiled?: object) => Row[];
  const ours = { '600m.encode_bf16.texts_per_s': 6000, '600m.train.steps_per_s': 150, 'attn.causal.S2048.fwdbwd_tflops': 300 };
  const eager = { '600m.encode_bf16.texts_per_s': 2000, '600m.train_recipe_step.steps_per_s': 30, 'attn.sdpa_flash.causal.S2048.fwdbwd_tflops': 250 };

  it('a row whose target is to the better of eager and compiled is "eager only", not judged; eager and kernel rows are judged', () => {
    const rows = new Map(rowsOf(ours, eager).map((r) => [r.workload, r]));
    expect(rows.get('600M encode texts/s')).toMatchObject({ ratio: 3, met: undefined, eagerOnly: true });
    expect(rows.get('600M recipe steps/s')).toMatchObject({ ratio: 5, met: true });
    expect(rows.get('600M recipe steps/s')).not.toHaveProperty('eagerOnly');
    expect(rows.get('attn fwd+bwd d128 causal S=2048')).toMatchObject({ ratio: 1.2, met: true });
    // with the compiled figure the row is judged again
    expect(rowsOf(ours, eager, { '600m.encode_bf16.texts_per_s': 3500 }).find((r) => r.workload === '600M encode texts/s')).toMatchObject({ met: false });
  });
});
