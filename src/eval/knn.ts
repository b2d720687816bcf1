// Exact k-nearest-neighbour search over a pool of embeddings, in native code (native/cpu/knn.cpp):
// blocked sgemm + per-row partial selection, both cores, memory bounded by tiles (never N×N).
import { Embeddings } from '../model/embeddings.js';
import { nativeAddon } from '../native.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, optionKeys } from '../util/options.js';

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

/** One neighbour of a query: a pool row and its score. */
export interface KnnMatch {
  /** Row of the pool. */
  index: number;
  /** Cosine similarity, or Euclidean distance with metric 'euclidean'. */
  score: number;
}

export interface KnnResult {
  /** Neighbours per query: min(k, pool rows) (one fewer with excludeSelf). */
  k: number;
  /** [queries × k] pool row indices, best first (ties: lower index first): the fast flat form. */
  indices: Int32Array;
  /** [queries × k] cosine similarity (descending) or Euclidean distance (ascending). */
  scores: Float32Array;
  /** The neighbours of query `q`, best first. */
  neighbors(q: number): KnnMatch[];
  /** The neighbours of every query: `matches()[q][j]` is query q's (j+1)-th nearest pool row. */
  matches(): KnnMatch[][];
}

export interface KnnOptions {
  metric?: KnnMetric;
  /**
   * The queries are the pool's own rows (query i is pool row i, e.g. `knn(emb, emb, k, ...)`): leave
   * each query's own row out of its neighbours. Needs as many query rows as pool rows.
   */
  excludeSelf?: boolean;
}

const KNN_OPTIONS = optionKeys<KnnOptions>({ metric: true, excludeSelf: true });

/**
 * The k nearest pool rows of every query row. k larger than the pool is clamped to the pool size
 * (see `result.k`). Cosine treats a zero vector as similarity 0 to everything. The search reads
 * copies of `queries` and `pool`, taken at the call: the caller may change, transfer (postMessage)
 * or drop their arrays while it runs.
 */
export async function knn(queries: Embeddings, pool: Embeddings, k: number, opts: KnnOptions = {}): Promise<KnnResult> {
  return search(queries, pool, k, opts, true);
}

/**
 * knn() over arrays that only the library holds (a server's corpus, mine's vector blocks): read in
 * place, as nothing else can change or transfer them while the native search runs.
 */
export async function knnOwned(queries: Embeddings, pool: Embeddings, k: number, opts: KnnOptions = {}): Promise<KnnResult> {
  return search(queries, pool, k, opts, false);
}

async function search(queries: Embeddings, pool: Embeddings, k: number, opts: KnnOptions, copy: boolean): Promise<KnnResult> {
  checkMatrix('queries', queries);
  checkMatrix('pool', pool);
  checkOptions('knn', opts, KNN_OPTIONS);
  if (opts.excludeSelf !== undefined && typeof opts.excludeSelf !== 'boolean') {
    throw new TypeError(`knn: excludeSelf must be true or false, got ${describeValue(opts.excludeSelf)}`);
  }
  const metric = opts.metric ?? 'cosine';
  if (metric !== 'cosine' && metric !== 'euclidean') throw new TypeError(`knn: unknown metric "${String(metric)}"`);
  if (queries.dim !== pool.dim) throw new Error(`knn: queries have dim ${queries.dim}, pool has dim ${pool.dim}`);
  if (pool.rows === 0) throw new Error('knn: the pool is empty');
  if (typeof k !== 'number') throw new TypeError(`knn: k must be a positive integer, got ${describeValue(k)}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`knn: k must be a positive integer, got ${describeValue(k)}`);
  const self = opts.excludeSelf === true;
  if (self && queries.rows !== pool.rows) {
    throw new Error(`knn: excludeSelf needs the queries to be the pool's rows, got ${queries.rows} queries for ${pool.rows} pool rows`);
  }
  const kk = Math.min(k, self ? pool.rows - 1 : pool.rows);
  if (queries.rows === 0 || kk === 0) return knnResult(kk, queries.rows, new Int32Array(0), new Float32Array(0));
  // with excludeSelf, one more is searched: the query's own row is usually among them
  const searched = self ? kk + 1 : kk;
  // the native search reads these on a worker thread: a caller's array detached (transferred) or
  // changed meanwhile would be read freed or torn, so the public knn hands it copies
  const poolData = copy ? pool.data.slice() : pool.data;
  const queryData = !copy ? queries.data : queries.data === pool.data ? poolData : queries.data.slice();
  const { indices, scores } = await nativeAddon<KnnNative>().knn(queryData, queries.rows, poolData, pool.rows, pool.dim, searched, metric);
  if (!self) return knnResult(kk, queries.rows, indices, scores);
  const outIdx = new Int32Array(queries.rows * kk);
  const outScores = new Float32Array(queries.rows * kk);
  for (let q = 0; q < queries.rows; q++) {
    let o = 0;
    for (let j = 0; j < searched && o < kk; j++) {
      const at = q * searched + j;
      if (indices[at] === q) continue;
      outIdx[q * kk + o] = indices[at]!;
      outScores[q * kk + o] = scores[at]!;
      o++;
    }
  }
  return knnResult(kk, queries.rows, outIdx, outScores);
}

/** Plain-JS callers: an Embeddings (or its shape) before the native code sees it. */
function checkMatrix(name: string, m: unknown): void {
  const e = m as Partial<Embeddings> | null;
  const shaped = typeof e === 'object' && e !== null && Number.isInteger(e.rows) && e.rows! >= 0 && Number.isInteger(e.dim) && e.dim! > 0;
  const why = !shaped
    ? typeof e === 'object' && e !== null
      ? `its rows and dim are ${String(e.rows)} and ${String(e.dim)}`
      : `got ${describeValue(m)}`
    : !(e.data instanceof Float32Array)
      ? `its data is ${describeValue(e.data)}`
      : e.data.length !== e.rows! * e.dim!
        ? `its data has ${e.data.length} values for ${e.rows}x${e.dim}`
        : '';
  if (why) throw new TypeError(`knn: ${name} must be an Embeddings (rows, dim and data: a Float32Array of rows×dim values); ${why}`);
}

/** The result for `queries` query rows (carried: with k 0 the flat arrays cannot tell how many). */
function knnResult(k: number, queries: number, indices: Int32Array, scores: Float32Array): KnnResult {
  const neighbors = (q: number): KnnMatch[] => {
    // (a string '0' is no row: it was called out of range, which it is not)
    if (!Number.isInteger(q)) throw new (typeof q === 'number' ? RangeError : TypeError)(`knn: query must be an integer in [0, ${queries}), got ${describeValue(q)}`);
    if (q < 0 || q >= queries) throw new RangeError(`knn: query ${q} out of range [0, ${queries})`);
    const out: KnnMatch[] = [];
    for (let j = 0; j < k; j++) out.push({ index: indices[q * k + j]!, score: scores[q * k + j]! });
    return out;
  };
  return {
    k,
    indices,
    scores,
    neighbors,
    matches: () => Array.from({ length: queries }, (_, q) => neighbors(q)),
  };
}

/** cos(a, b) in double precision; 0 when either vector is zero. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/**
 * Cosine similarity of two vectors (embedding rows, arrays), in float64; 0 when either is all zeros,
 * as in knn. The models' embeddings are unit length, so this is also their dot product.
 */
export function similarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (const [name, v] of [['a', a], ['b', b]] as const) {
    if (typeof v !== 'object' || v === null || typeof v.length !== 'number') throw new TypeError(`similarity: ${name} must be an array of numbers, got ${describeValue(v)}`);
  }
  if (a.length !== b.length) throw new Error(`similarity: vectors of lengths ${a.length} and ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    for (const [name, v] of [['a', a], ['b', b]] as const) {
      // (strings such as '1' are not finite numbers, but not for the reason NaN is)
      if (typeof v[i] !== 'number') throw new TypeError(`similarity: ${name} must be an array of numbers; ${name}[${i}] is ${describeValue(v[i])}`);
    }
    if (!Number.isFinite(a[i]!) || !Number.isFinite(b[i]!)) throw new Error('similarity: a vector has a non-finite value');
  }
  return cosine(a, b);
}

/** Rows `rows` of `emb` gathered into a new matrix (for searching with a subset as queries). */
export function gatherRows(emb: Embeddings, rows: ArrayLike<number>): Embeddings {
  const out = new Embeddings(rows.length, emb.dim);
  for (let i = 0; i < rows.length; i++) out.data.set(emb.row(rows[i]!), i * emb.dim);
  return out;
}
