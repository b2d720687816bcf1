// sgemm throughput: our addon's sgemm next to numpy (OpenBLAS) for square n x n x n products.
// usage: node bench/gemm.mjs [--sizes 512,1024,2048] [--repeats 7] [--threads N]
//                            [--kernel avx512|avx2|scalar] [--no-numpy] [--json FILE]
// sgemm is a test hook: the addon is the test addon (test/helpers/testing-addon.mjs).
// --threads N sets L2E_NUM_THREADS for us and OPENBLAS_NUM_THREADS for numpy (default: all cores).
// Besides wall-clock GFLOP/s it reports GFLOP per CPU-second of the process: on a machine shared
// with other work that is the fairer view of single-threaded runs (time spent descheduled is not
// counted), while multi-threaded OpenBLAS also counts its spin-waiting.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testingAddon } from '../test/helpers/testing-addon.mjs';
import { machine, machineLine } from './lib/machine.mjs';
import { median } from './lib/stats.mjs';
import { checkFlags, checkJsonOut, readFlags, writeJsonOut } from './lib/usage.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = readFlags(import.meta.url, argv, {
    sizes: { kind: 'ints', default: [512, 1024, 2048] },
    repeats: { kind: 'int', default: 7 },
    threads: { kind: 'int' },
    kernel: { kind: 'choice', choices: ['avx512', 'avx2', 'scalar'] },
    'no-numpy': { kind: 'switch', default: false },
    json: { kind: 'path' },
  });
  return { sizes: o.sizes, repeats: o.repeats, threads: o.threads, kernel: o.kernel, numpy: !o['no-numpy'], json: o.json };
}

function loadAddon() {
  return testingAddon();
}

/** GFLOP/s of the median and fastest wall time, and GFLOP per median CPU-second. */
function rates(n, wall, cpu) {
  const gflop = (2 * n ** 3) / 1e9;
  return { median: gflop / median(wall), best: gflop / Math.min(...wall), perCpuSecond: gflop / median(cpu) };
}

function benchOurs(addon, n, repeats) {
  const a = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const b = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const c = new Float32Array(n * n);
  const run = () => addon.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
  for (let i = 0; i < 2; i++) run(); // warm-up: pool threads, packing buffers, page faults
  const wall = [], cpu = [];
  for (let i = 0; i < repeats; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    run();
    wall.push(Number(process.hrtime.bigint() - t0) / 1e9);
    const dc = process.cpuUsage(c0);
    cpu.push((dc.user + dc.system) / 1e6);
  }
  return rates(n, wall, cpu);
}

function benchNumpy(sizes, repeats, threads) {
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may pin OpenBLAS to a slower kernel: compare against its best.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (threads) env.OPENBLAS_NUM_THREADS = String(threads);
  const script = join(repoRoot, 'bench', 'numpy_gemm.py');
  const r = spawnSync('python3', [script, '--sizes', sizes.join(','), '--repeats', String(repeats)], {
    env,
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    console.warn(`numpy benchmark unavailable: ${r.error?.message ?? r.stderr.trim()}`);
    return null;
  }
  return JSON.parse(r.stdout);
}

checkFlags(import.meta.url, process.argv.slice(2), ['--sizes', '--repeats', '--threads', '--kernel', '--no-numpy', '--json']);
const opts = parseArgs(process.argv.slice(2));
if (opts.json) checkJsonOut('--json', opts.json);
if (opts.threads) process.env.L2E_NUM_THREADS = String(opts.threads); // read when the pool starts
const addon = loadAddon();
if (opts.kernel) addon.setGemmKernel(opts.kernel);
const kernel = addon.gemmKernel();
const host = machine();
const rows = opts.sizes.map((n) => ({ n, ours: benchOurs(addon, n, opts.repeats) }));
const numpy = opts.numpy ? benchNumpy(opts.sizes, opts.repeats, opts.threads) : null;
for (const row of rows) {
  row.numpy = numpy ? numpy.gflops[String(row.n)] : null;
  row.ratio = row.numpy ? row.ours.median / row.numpy.median : null;
}

const fmt = (x, d = 1) => (x == null ? '-' : x.toFixed(d));
const threads = opts.threads ?? 'all';
console.log(`sgemm C = A B (float32, row-major), kernel=${kernel}, threads=${threads}, ${opts.repeats} runs`);
console.log(`machine: ${machineLine(host)}`);
console.log('GFLOP/s: median wall (best wall) [per CPU-second]');
console.log('     n                        ours                       numpy   ours/numpy (median wall)');
const cell = (r) => (r ? `${fmt(r.median)} (${fmt(r.best)}) [${fmt(r.perCpuSecond)}]` : '-');
for (const r of rows)
  console.log(`${String(r.n).padStart(6)}   ${cell(r.ours).padStart(25)}   ${cell(r.numpy).padStart(25)}   ${fmt(r.ratio, 2).padStart(8)}`);
if (numpy) console.log(`numpy: ${JSON.stringify(numpy.info)}`);
// Both libraries use every core they are given: other work on the machine skews the wall times
// (numpy's most: OpenBLAS threads spin-wait for each other).
const load = Math.max(host.load1, machine().load1);
if (load > 1.5) console.log(`warning: load average ${load.toFixed(2)} while benchmarking; rerun on an idle machine`);
if (opts.json) {
  const out = { machine: host, kernel, threads, repeats: opts.repeats, loadAverage: load, rows, numpyInfo: numpy?.info ?? null };
  writeJsonOut(opts.json, out);
}
