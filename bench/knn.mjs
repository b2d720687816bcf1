#!/usr/bin/env node
// Times exact native k-NN: Q queries over a pool of N random unit vectors (default 20k × 20k, dim
// 1536, k 11, cosine and euclidean). Usage: node bench/knn.mjs [--n 20000] [--q 20000] [--dim 1536]
// [--k 11] [--metric cosine|euclidean|both]. Loads the addon from L2E_ADDON or the package build.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = process.env.L2E_ADDON ? require(process.env.L2E_ADDON) : require('node-gyp-build')(root);

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const N = Number(args.n ?? 20000), Q = Number(args.q ?? 20000), dim = Number(args.dim ?? 1536), k = Number(args.k ?? 11);
const metrics = (args.metric ?? 'both') === 'both' ? ['cosine', 'euclidean'] : [args.metric];

// deterministic random unit vectors (mulberry32 + Box–Muller)
let s = 12345;
const rand = () => {
  s = (s + 0x6d2b79f5) | 0;
  let t = Math.imul(s ^ (s >>> 15), 1 | s);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
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
  return a;
}
const pool = unitRows(N);
const queries = Q === N ? pool : unitRows(Q);
const gflop = (2 * Q * N * dim) / 1e9;
console.log(`knn: ${Q} queries × ${N} pool, dim ${dim}, k ${k}, threads ${process.env.L2E_NUM_THREADS ?? 'all'}`);
for (const metric of metrics) {
  await addon.knn(queries.subarray(0, Math.min(Q, 256) * dim), Math.min(Q, 256), pool, N, dim, k, metric); // warm-up
  const t0 = process.hrtime.bigint();
  const res = await addon.knn(queries, Q, pool, N, dim, k, metric);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  let selfFirst = 0;
  if (queries === pool) for (let i = 0; i < Q; i++) if (res.indices[i * k] === i) selfFirst++;
  console.log(
    `${metric.padEnd(9)} ${secs.toFixed(2)} s  ${(gflop / secs).toFixed(1)} GFLOP/s  ${(Q / secs).toFixed(0)} queries/s` +
      (queries === pool ? `  self ranked first: ${selfFirst}/${Q}` : ''),
  );
}
