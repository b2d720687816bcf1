#!/usr/bin/env node
// Times exact native k-NN: Q queries over a pool of N random unit vectors (default 20k × 20k, dim
// 1536, k 11, cosine and euclidean). Usage: node bench/knn.mjs [--n 20000] [--q 20000] [--dim 1536]
// [--k 11] [--metric cosine|euclidean|both]. Runs the package's own knn() (dist/, from `npm run build:ts`).
import { knn } from '../dist/eval/knn.js';
import { Embeddings } from '../dist/model/embeddings.js';
import { Rng } from '../dist/util/random.js';
import { checkFlags, readFlags } from './lib/usage.mjs';

checkFlags(import.meta.url, process.argv.slice(2), ['--n', '--q', '--dim', '--k', '--metric']);
const args = readFlags(import.meta.url, process.argv.slice(2), {
  n: { kind: 'int', default: 20000 },
  q: { kind: 'int', default: 20000 },
  dim: { kind: 'int', default: 1536 },
  k: { kind: 'int', default: 11 },
  metric: { kind: 'choice', choices: ['cosine', 'euclidean', 'both'], default: 'both' },
});
const { n: N, q: Q, dim } = args;
const metrics = args.metric === 'both' ? ['cosine', 'euclidean'] : [args.metric];

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
const pool = unitRows(N);
const queries = Q === N ? pool : unitRows(Q);
const gflop = (2 * Q * N * dim) / 1e9;
console.log(`knn: ${Q} queries × ${N} pool, dim ${dim}, k ${Math.min(args.k, N)}, threads ${process.env.L2E_NUM_THREADS ?? 'all'}`);
for (const metric of metrics) {
  const warm = Math.min(Q, 256);
  await knn(new Embeddings(warm, dim, queries.data.subarray(0, warm * dim)), pool, args.k, { metric }); // warm-up
  const t0 = process.hrtime.bigint();
  const res = await knn(queries, pool, args.k, { metric });
  const k = res.k; // (clamped to the pool: the requested k as the row stride counted wrong)
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  let selfFirst = 0;
  if (queries === pool) for (let i = 0; i < Q; i++) if (res.indices[i * k] === i) selfFirst++;
  console.log(
    `${metric.padEnd(9)} ${secs.toFixed(2)} s  ${(gflop / secs).toFixed(1)} GFLOP/s  ${(Q / secs).toFixed(0)} queries/s` +
      (queries === pool ? `  self ranked first: ${selfFirst}/${Q}` : ''),
  );
}
