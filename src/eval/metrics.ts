// The evaluation of the original llama2-embedding notebooks, reproduced exactly (DESIGN.md §1):
//
// - pool: every distinct stripped, non-empty string among query / pos / neg of the first `limit` rows;
// - "positive score": mean of cos(query, pos) over every (row, pos) PAIR of the first `limit` rows whose
//   query is in the pool — a mean over pairs, not a mean of per-row means (the notebooks appended one
//   score per pair to one list and averaged it), so a row with 3 positives weighs 3×;
// - "negative score": the same over (row, neg) pairs of 1 − cos(query, neg);
// - "topK" (K = 1, 3, 5, 10): for every (query, pos) pair of the WHOLE file whose two strings are in
//   the pool, rank all pool vectors by cosine to the positive; a hit when the query is among the top K,
//   where K becomes K+1 when the positive itself is among the top K (its self-match is allowed for).
//   Ties in the ranking go to the lower pool index (pool order = first appearance in the file).
//   topK = hits / pairs.
//
// Strings are compared after Python's str.strip() (pyStrip) everywhere, as the notebooks did, so a
// query with stray spaces still finds its pool entry.
import { Embeddings } from '../model/embeddings.js';
import { pairRowProblem, readPairRows } from '../data/jsonl.js';
import { cosine, gatherRows, knn } from './knn.js';
// (cosine lives with knn, which metrics imports: an import cycle between the two overflowed the stack
// of Node 20.17/20.18's require() of ES modules)
import { pyStrip } from './strip.js';
import { describeValue, positiveInteger } from '../util/describe.js';
import { checkPathArg } from '../util/options.js';
import type { TextLines } from '../model/text-error.js';

export const TOP_KS = [1, 3, 5, 10] as const;

export interface Metrics {
  'positive score': number;
  /** null when the first `limit` rows have no negatives at all. */
  'negative score': number | null;
  top1: number;
  top3: number;
  top5: number;
  top10: number;
}

/** One test file reduced to pool indices; TextLines: its file and each pool text's first line (readTestSet). */
export interface TestSet extends TextLines {
  name: string;
  /** Distinct stripped non-empty strings, in order of first appearance. */
  pool: string[];
  /** The first `limit` rows whose query is in the pool, as pool indices (empty strings dropped). */
  rows: { query: number; pos: number[]; neg: number[] }[];
  /** (query, pos) pool-index pairs over the whole file with both strings in the pool: [q0, p0, q1, p1, ...]. */
  pairs: Int32Array;
  /** Rows read from the file. */
  fileRows: number;
}

export interface TestRow {
  query: string;
  pos: string[];
  neg: string[];
  /** The row's line in its file, when it came from one: the pool keeps each text's first. */
  line?: number;
}

/**
 * Builds a TestSet in one pass over `rows`: the first `limit` rows are kept (they define the pool and
 * the scores); later rows are reduced to their (query, pos) index pairs at once, so a large file
 * costs memory only for the pool.
 */
export async function buildTestSet(
  name: string,
  rows: AsyncIterable<TestRow> | Iterable<TestRow>,
  limit = 1000,
): Promise<TestSet> {
  if (typeof name !== 'string') throw new TypeError(`buildTestSet: name must be a string, got ${describeValue(name)}`);
  const it = rows as Partial<AsyncIterable<TestRow> & Iterable<TestRow>> | null;
  if (typeof it !== 'object' || it === null || (typeof it[Symbol.asyncIterator] !== 'function' && typeof it[Symbol.iterator] !== 'function'))
    throw new TypeError(`buildTestSet: rows must be an iterable or async iterable of {query, pos, neg} rows, got ${describeValue(rows)}`);
  positiveInteger('buildTestSet: limit', limit);
  const index = new Map<string, number>();
  const pool: string[] = [];
  const lines: number[] = [];
  const add = (s: string, line: number | undefined): void => {
    const t = pyStrip(s);
    if (t !== '' && !index.has(t)) {
      index.set(t, pool.length);
      pool.push(t);
      if (line !== undefined) lines.push(line);
    }
  };
  const head: TestRow[] = [];
  const tailPairs: number[] = [];
  let n = 0;
  for await (const row of rows) {
    // each row checked as a file's line is (pairRowProblem): a bad one failed inside as "row.neg is not iterable"
    const problem = pairRowProblem(row);
    if (problem !== null) throw new TypeError(`buildTestSet: row ${n} of ${name}: ${problem}, got ${describeValue(row)}`);
    if (n < limit) {
      head.push(row);
      add(row.query, row.line);
      for (const s of row.pos) add(s, row.line);
      for (const s of row.neg) add(s, row.line);
    } else {
      collectPairs(row, index, tailPairs); // the pool is complete: resolve now, keep nothing else
    }
    n++;
  }
  const pairs: number[] = []; // in file order: the head rows' pairs, then the rest
  for (const r of head) collectPairs(r, index, pairs);
  for (const x of tailPairs) pairs.push(x);
  const ids = (list: string[]): number[] =>
    list.map((s) => index.get(pyStrip(s))).filter((i): i is number => i !== undefined);
  const testRows: TestSet['rows'] = [];
  for (const r of head) {
    const q = index.get(pyStrip(r.query));
    if (q !== undefined) testRows.push({ query: q, pos: ids(r.pos), neg: ids(r.neg) });
  }
  // (lines only when every pool text's row had one)
  return { name, pool, rows: testRows, pairs: Int32Array.from(pairs), fileRows: n, ...(lines.length === pool.length ? { lines } : {}) };
}

function collectPairs(row: TestRow, index: Map<string, number>, out: number[]): void {
  const q = index.get(pyStrip(row.query));
  if (q === undefined) return;
  for (const s of row.pos) {
    const p = index.get(pyStrip(s));
    if (p !== undefined) out.push(q, p);
  }
}

/** Reads a test JSONL file (streamed); every line must be a {query, pos, neg} row (errors name file:line). */
export async function readTestSet(file: string, limit = 1000, name = file): Promise<TestSet> {
  checkPathArg('readTestSet', 'file', file, 'file'); // first: name defaults to it, and would be blamed for it
  positiveInteger('readTestSet: limit', limit);
  if (typeof name !== 'string') throw new TypeError(`readTestSet: name must be a string, got ${describeValue(name)}`);
  async function* rows(): AsyncGenerator<TestRow> {
    for await (const { line, value } of readPairRows(file)) yield { ...value, line };
  }
  const set = await buildTestSet(name, rows(), limit);
  if (set.fileRows === 0) throw new Error(`${file}: no rows`);
  return { ...set, source: file };
}


/**
 * Computes the metrics from the pool's vectors (`vectors.row(i)` embeds `set.pool[i]`).
 * Throws when there is nothing to measure (empty pool, no positive pair).
 */
export async function computeMetrics(set: TestSet, vectors: Embeddings): Promise<Metrics> {
  if (typeof set !== 'object' || set === null || !Array.isArray(set.pool)) throw new TypeError(`computeMetrics: set must be a TestSet (readTestSet, buildTestSet), got ${describeValue(set)}`);
  if (!(vectors instanceof Embeddings)) throw new TypeError(`computeMetrics: vectors must be Embeddings, got ${describeValue(vectors)}`);
  if (set.pool.length === 0) throw new Error(`${set.name}: the pool is empty (no non-empty strings in the first rows)`);
  if (vectors.rows !== set.pool.length) {
    throw new Error(`${set.name}: ${vectors.rows} vectors for a pool of ${set.pool.length} texts`);
  }
  let posSum = 0;
  let posN = 0;
  let negSum = 0;
  let negN = 0;
  for (const r of set.rows) {
    const q = vectors.row(r.query);
    for (const p of r.pos) {
      posSum += cosine(q, vectors.row(p));
      posN++;
    }
    for (const n of r.neg) {
      negSum += 1 - cosine(q, vectors.row(n));
      negN++;
    }
  }
  if (posN === 0) throw new Error(`${set.name}: no (query, pos) pair in the first rows to score`);
  const npairs = set.pairs.length / 2;
  if (npairs === 0) throw new Error(`${set.name}: no (query, pos) pair with both strings in the pool`);

  // Rank the pool by cosine to each distinct positive: the K+1 best are all any K needs.
  const maxK = TOP_KS[TOP_KS.length - 1]! + 1;
  const positives = [...new Set(Array.from({ length: npairs }, (_, i) => set.pairs[2 * i + 1]!))];
  const slot = new Map(positives.map((p, i) => [p, i] as const));
  const found = await knn(gatherRows(vectors, positives), vectors, maxK, { metric: 'cosine' });
  const hits = TOP_KS.map(() => 0);
  for (let i = 0; i < npairs; i++) {
    const q = set.pairs[2 * i]!;
    const p = set.pairs[2 * i + 1]!;
    const ranked = found.indices.subarray(slot.get(p)! * found.k, (slot.get(p)! + 1) * found.k);
    TOP_KS.forEach((k, j) => {
      if (isTopKHit(ranked, q, p, k)) hits[j]!++;
    });
  }
  const rate = (j: number): number => hits[j]! / npairs;
  return {
    'positive score': posSum / posN,
    'negative score': negN > 0 ? negSum / negN : null,
    top1: rate(0),
    top3: rate(1),
    top5: rate(2),
    top10: rate(3),
  };
}

/** `ranked`: pool indices by decreasing cosine to the positive `p`. The self-match allowance lives here. */
export function isTopKHit(ranked: ArrayLike<number>, q: number, p: number, k: number): boolean {
  let kk = k;
  for (let t = 0; t < Math.min(k, ranked.length); t++) if (ranked[t] === p) kk = k + 1;
  for (let t = 0; t < Math.min(kk, ranked.length); t++) if (ranked[t] === q) return true;
  return false;
}
