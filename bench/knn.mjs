#!/usr/bin/env node
// Times exact native k-NN: Q queries over a pool of N random unit vectors (default 20k × 20k, dim
// 1536, k 11, cosine and euclidean), next to NumPy (OpenBLAS) doing the same search on the same vectors
// in the same run (bench/numpy_knn.py), and checks that both found the same neighbours.
// Usage: node bench/knn.mjs [--n 20000] [--q 20000] [--dim 1536] [--k 11]
//                           [--metric cosine|euclidean|both] [--no-numpy] [--json FILE]
// Runs the package's own knn() (dist/, from `npm run build:ts`); L2E_NUM_THREADS sets our threads
// (OPENBLAS_NUM_THREADS numpy's; both default to every core).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { knn } from '../dist/eval/knn.js';
import { Embeddings } from '../dist/model/embeddings.js';
import { Rng } from '../dist/util/random.js';
import { machine, machineLine } from './lib/machine.mjs';
import { checkFlags, checkJsonOut, readFlags, writeJsonOut } from './lib/usage.mjs';

checkFlags(import.meta.url, process.argv.slice(2), ['--n', '--q', '--dim', '--k', '--metric', '--no-numpy', '--json']);
const args = readFlags(import.meta.url, process.argv.slice(2), {
  n: { kind: 'int', default: 20000 },
  q: { kind: 'int', default: 20000 },
  dim: { kind: 'int', default: 1536 },
  k: { kind: 'int', default: 11 },
  metric: { kind: 'choice', choices: ['cosine', 'euclidean', 'both'], default: 'both' },
  'no-numpy': { kind: 'switch', default: false },
  json: { kind: 'path' },
});
if (args.json) checkJsonOut('--json', args.json);
const { n: N, q: Q, dim } = args;
const metrics = args.metric === 'both' ? ['cosine', 'euclidean'] : [args.metric];
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

// deterministic random unit vectors (the library's generator + Box–Muller)
const rng = new Rng(12345);
const rand = () => rng.next();
function unitRows(rows) {
  const a = new Float32Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let n = 0;
    for (let d = 0; d < dim; d++) {
      const g = Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
      a[i * dim + d] = g;
      n += g * g;
    }
    n = Math.sqrt(n);
    for (let d = 0; d < dim; d++) a[i * dim + d] /= n;
  }
  return new Embeddings(rows, dim, a);
}

/** NumPy's search of the same rows: its times and its indices, or null (said why) when it cannot run. */
function numpyKnn(files, metric, k) {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // these pin OpenBLAS to a slower kernel: compare against its best
  delete env.OPENBLAS_L2_SIZE;
  const out = join(files.dir, `${metric}.i32`);
  const script = join(repoRoot, 'bench', 'numpy_knn.py');
  const argv = [script, '--queries', files.queries, '--pool', files.pool, '--dim', String(dim), '--k', String(k), '--metric', metric, '--out-indices', out];
  const r = spawnSync('python3', argv, { env, encoding: 'utf8' });
  if (r.status !== 0) {
    console.warn(`numpy k-NN unavailable: ${r.error?.message ?? r.stderr.trim()}`);
    return null;
  }
  const res = JSON.parse(r.stdout);
  const b = readFileSync(out);
  return { ...res, indices: new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) };
}

/**
 * Queries whose k neighbours are the same rows in both searches, in any order: two scores equal to
 * within float32 rounding may come out in either order from two GEMMs' sums.
 */
function sameNeighbours(a, b, k) {
  let same = 0;
  for (let q = 0; q < Q; q++) {
    const x = a.slice(q * k, (q + 1) * k).sort();
    const y = b.slice(q * k, (q + 1) * k).sort();
    if (x.every((v, j) => v === y[j])) same++;
  }
  return same;
}

const host = machine();
const pool = unitRows(N);
const queries = Q === N ? pool : unitRows(Q);
const gflop = (2 * Q * N * dim) / 1e9;
let files = null;
if (!args['no-numpy']) {
  const dir = mkdtempSync(join(tmpdir(), 'l2e-knn-'));
  files = { dir, pool: join(dir, 'pool.f32'), queries: join(dir, 'queries.f32') };
  writeFileSync(files.pool, pool.data);
  writeFileSync(files.queries, queries.data);
}
console.log(`knn: ${Q} queries × ${N} pool, dim ${dim}, k ${Math.min(args.k, N)}, threads ${process.env.L2E_NUM_THREADS ?? 'all'}`);
console.log(`machine: ${machineLine(host)}`);
console.log('metric      ours: s   GFLOP/s   queries/s   numpy: s   GFLOP/s   ours/numpy   same neighbours');
const rows = [];
try {
  for (const metric of metrics) {
    const warm = Math.min(Q, 256);
    await knn(new Embeddings(warm, dim, queries.data.subarray(0, warm * dim)), pool, args.k, { metric }); // warm-up
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const res = await knn(queries, pool, args.k, { metric });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const dc = process.cpuUsage(c0);
    const k = res.k; // (clamped to the pool: the requested k as the row stride counted wrong)
    let selfFirst = null; // the pool searched for its own rows: each ranks itself first
    if (queries === pool) {
      selfFirst = 0;
      for (let i = 0; i < Q; i++) if (res.indices[i * k] === i) selfFirst++;
    }
    const peer = files ? numpyKnn(files, metric, k) : null;
    const row = {
      metric,
      k,
      ours: { seconds: secs, cpuSeconds: (dc.user + dc.system) / 1e6, gflops: gflop / secs, queriesPerSecond: Q / secs },
      numpy: peer ? { version: peer.numpy, seconds: peer.seconds, cpuSeconds: peer.cpuSeconds, gflops: gflop / peer.seconds } : null,
      ratio: peer ? peer.seconds / secs : null,
      sameNeighbours: peer ? sameNeighbours(res.indices, peer.indices, k) : null,
      selfRankedFirst: selfFirst,
    };
    rows.push(row);
    const f = (x, d, w) => (x == null ? '-' : x.toFixed(d)).padStart(w);
    console.log(
      `${metric.padEnd(9)} ${f(secs, 2, 10)} ${f(row.ours.gflops, 1, 9)} ${f(row.ours.queriesPerSecond, 0, 11)} ` +
        `${f(row.numpy?.seconds, 2, 10)} ${f(row.numpy?.gflops, 1, 9)} ${f(row.ratio, 2, 12)} ` +
        `${row.sameNeighbours == null ? '-'.padStart(17) : `${row.sameNeighbours}/${Q}`.padStart(17)}`,
    );
    if (selfFirst !== null) console.log(`${''.padEnd(9)} self ranked first: ${selfFirst}/${Q}`);
  }
} finally {
  if (files) rmSync(files.dir, { recursive: true, force: true });
}
if (args.json) writeJsonOut(args.json, { machine: host, n: N, q: Q, dim, rows });
