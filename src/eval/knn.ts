// Exact k-nearest-neighbour search over a pool of embeddings, in native code (native/cpu/knn.cpp):
// blocked sgemm + per-row partial selection, both cores, memory bounded by tiles (never N×N).
import { Embeddings } from '../model/embeddings.js';
import { nativeAddon } from '../native.js';

export type KnnMetric = 'cosine' | 'euclidean';

interface KnnNative {
  knn(
    queries: Float32Array,
    nq: number,
    pool: Float32Array,
    np: number,
    dim: number,
    k: number,
    metric: KnnMetric,
  ): Promise<{ indices: Int32Array; scores: Float32Array }>;
}

export interface KnnResult {
  /** Neighbours per query: min(k, pool rows). */
  k: number;
  /** [queries × k] pool row indices, best first (ties: lower index first). */
  indices: Int32Array;
  /** [queries × k] cosine similarity (descending) or Euclidean distance (ascending). */
  scores: Float32Array;
}

/**
 * The k nearest pool rows of every query row. k larger than the pool is clamped to the pool size
 * (see `result.k`). Cosine treats a zero vector as similarity 0 to everything.
 */
export async function knn(
  queries: Embeddings,
  pool: Embeddings,
  k: number,
  opts: { metric?: KnnMetric } = {},
): Promise<KnnResult> {
  const metric = opts.metric ?? 'cosine';
  if (metric !== 'cosine' && metric !== 'euclidean') throw new Error(`knn: unknown metric "${String(metric)}"`);
  if (queries.dim !== pool.dim) throw new Error(`knn: queries have dim ${queries.dim}, pool has dim ${pool.dim}`);
  if (pool.rows === 0) throw new Error('knn: the pool is empty');
  if (!Number.isInteger(k) || k < 1) throw new Error(`knn: k must be a positive integer, got ${k}`);
  const kk = Math.min(k, pool.rows);
  if (queries.rows === 0) return { k: kk, indices: new Int32Array(0), scores: new Float32Array(0) };
  const { indices, scores } = await nativeAddon<KnnNative>().knn(
    queries.data,
    queries.rows,
    pool.data,
    pool.rows,
    pool.dim,
    kk,
    metric,
  );
  return { k: kk, indices, scores };
}

/** Rows `rows` of `emb` gathered into a new matrix (for searching with a subset as queries). */
export function gatherRows(emb: Embeddings, rows: ArrayLike<number>): Embeddings {
  const out = new Embeddings(rows.length, emb.dim);
  for (let i = 0; i < rows.length; i++) out.data.set(emb.row(rows[i]!), i * emb.dim);
  return out;
}
