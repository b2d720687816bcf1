// sgemm throughput: our addon's sgemm next to numpy (OpenBLAS) for square n x n x n products.
// usage: node bench/gemm.mjs [--sizes 512,1024,2048] [--repeats 7] [--kernel avx512|avx2|scalar]
//                            [--no-numpy] [--json FILE]
// The addon is loaded like src/native.ts does: L2E_ADDON if set, else node-gyp-build on the repo root.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const opts = { sizes: [512, 1024, 2048], repeats: 7, kernel: null, numpy: true, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--sizes') opts.sizes = argv[++i].split(',').map(Number);
    else if (a === '--repeats') opts.repeats = Number(argv[++i]);
    else if (a === '--kernel') opts.kernel = argv[++i];
    else if (a === '--no-numpy') opts.numpy = false;
    else if (a === '--json') opts.json = argv[++i];
    else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

function loadAddon() {
  const explicit = process.env.L2E_ADDON;
  return explicit ? require(explicit) : require('node-gyp-build')(repoRoot);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function benchOurs(addon, n, repeats) {
  const a = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const b = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const c = new Float32Array(n * n);
  const run = () => addon.sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n);
  for (let i = 0; i < 2; i++) run(); // warm-up: pool threads, packing buffers, page faults
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return (2 * n ** 3) / median(times) / 1e9;
}

function benchNumpy(sizes, repeats) {
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may pin OpenBLAS to a slower kernel: compare against its best.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
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

const opts = parseArgs(process.argv.slice(2));
const addon = loadAddon();
if (opts.kernel) addon.setGemmKernel(opts.kernel);
const kernel = addon.gemmKernel();
const rows = opts.sizes.map((n) => ({ n, ours: benchOurs(addon, n, opts.repeats) }));
const numpy = opts.numpy ? benchNumpy(opts.sizes, opts.repeats) : null;
for (const row of rows) {
  row.numpy = numpy ? numpy.gflops[String(row.n)] : null;
  row.ratio = row.numpy ? row.ours / row.numpy : null;
}

const fmt = (x, d = 1) => (x == null ? '-' : x.toFixed(d));
console.log(`sgemm C = A B (float32, row-major), kernel=${kernel}, median of ${opts.repeats}`);
console.log('     n   ours GFLOP/s   numpy GFLOP/s   ours/numpy');
for (const r of rows)
  console.log(`${String(r.n).padStart(6)}   ${fmt(r.ours).padStart(12)}   ${fmt(r.numpy).padStart(13)}   ${fmt(r.ratio, 2).padStart(10)}`);
if (numpy) console.log(`numpy: ${JSON.stringify(numpy.info)}`);
if (opts.json) {
  const out = { kernel, repeats: opts.repeats, rows, numpyInfo: numpy?.info ?? null };
  writeFileSync(opts.json, JSON.stringify(out, null, 2) + '\n');
}
