// Pair mining (the original notebooks, DESIGN.md §1): every text of the corpus is a query; its k
// nearest pool vectors are found exactly (knn), then
//   positives = neighbours at distance ≤ posThreshold (the query itself excluded),
//   negatives = neighbours at distance  > negThreshold among the same k nearest — "hard" negatives:
//               the closest texts that are still clearly different. With `randomNegatives`, rows
//               short of maxNeg are topped up with random pool texts beyond negThreshold.
// Distance: Euclidean on the vectors (the notebooks: 0.45 / 0.8 on unit vectors), or for
// metric 'cosine' the cosine distance 1 − cos (so thresholds are distances in both metrics and
// posThreshold ≤ negThreshold is required in both).
// Candidates equal to the query or of length ≤ 1 (code points) are dropped; versions of one row of a
// multi-field corpus are positives of one another whatever their distance (and never negatives).
// Up to maxPos / maxNeg are sampled (versions first); rows with no positive or no negative are
// skipped and counted. Sampling uses a PRNG seeded by (seed, query index), so the output depends
// only on the corpus, the vectors and the options — not on block sizes or threads.
// The vectors may live in memory or in a file (store.ts): the search then runs block by block, each
// query block against the pool in blocks, merging the running top k, so memory stays bounded.
import { Embeddings } from '../model/embeddings.js';
import type { PairRow } from '../data/jsonl.js';
import { knnOwned, type KnnMetric } from '../eval/knn.js';
import { Rng } from '../util/random.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, optionItself, optionKeys, type OptionNamer } from '../util/options.js';
import type { Corpus } from './corpus.js';
import { MemoryStore, type VectorStore } from './store.js';
import type { Threshold } from './stats.js';

export interface MineOptions {
  posThreshold: number;
  negThreshold: number;
  metric?: KnnMetric;
  maxPos?: number;
  maxNeg?: number;
  seed?: number;
  /** Nearest neighbours examined per query (default 100). */
  k?: number;
  randomNegatives?: boolean;
  /** Queries searched per knn call (memory: block × k results). */
  queryBlock?: number;
  /** Memory for vector blocks when the vectors are in a file (MiB, default MINE_DEFAULTS.memoryMb). */
  memoryMb?: number;
}

export interface MineStats {
  queries: number;
  written: number;
  skippedNoPos: number;
  skippedNoNeg: number;
  /** Queries of length ≤ 1, never mined. */
  skippedShort: number;
}

/** The defaults of mining, here only: `l2e mine` shows and uses these. */
export const MINE_DEFAULTS = {
  metric: 'euclidean',
  maxPos: 6,
  maxNeg: 5,
  seed: 42,
  k: 100,
  randomNegatives: false,
  queryBlock: 1024,
  /** MiB for the vectors (and for vector blocks when they are in a temp file). */
  memoryMb: 4096,
} as const satisfies Omit<Required<MineOptions>, 'posThreshold' | 'negThreshold'>;

/**
 * The one check that positives (distance ≤ pos) and negatives (distance > neg) cannot overlap: the
 * message when pos is above neg, else undefined. Two percentiles compare as percentiles; a percentile
 * and a distance only once the percentile is resolved to a distance. `n` names the options (the CLI: its flags).
 */
export function thresholdOverlap(pos: Threshold, neg: Threshold, metric: KnnMetric = MINE_DEFAULTS.metric, n: OptionNamer = optionItself): string | undefined {
  if (typeof pos === 'number' && typeof neg === 'number' && pos > neg) {
    return (
      `${n('posThreshold')} ${pos} is above ${n('negThreshold')} ${neg}: positives (distance ≤ pos) and negatives ` +
      `(distance > neg) would overlap; both are ${metric === 'cosine' ? 'cosine distances (1 − cos)' : 'Euclidean distances'}`
    );
  }
  if (typeof pos !== 'number' && typeof neg !== 'number' && pos.percentile > neg.percentile) {
    return `${n('posThreshold')} p${pos.percentile} is above ${n('negThreshold')} p${neg.percentile}: positives and negatives would overlap`;
  }
  return undefined;
}

const MINE_OPTIONS = optionKeys<MineOptions>({
  posThreshold: true, negThreshold: true, metric: true, maxPos: true, maxNeg: true, seed: true, k: true, randomNegatives: true, queryBlock: true, memoryMb: true,
});

/** Only the MineOptions of `o` (a run's options hold more). */
export function mineOptionsOf(o: MineOptions): MineOptions {
  return Object.fromEntries(Object.entries(o).filter(([key]) => MINE_OPTIONS.includes(key))) as unknown as MineOptions;
}

/**
 * A threshold option as given to the library: a distance (a non-negative number) or, where `percentiles`
 * (mineToFile), { percentile } from 0 to 100; anything else throws naming the option.
 */
export function checkThreshold(name: string, t: unknown, percentiles = false): void {
  if (typeof t === 'number') {
    if (!Number.isFinite(t) || t < 0) throw new RangeError(`${name} must be a non-negative distance, got ${t}`);
    return;
  }
  const p = percentiles && typeof t === 'object' && t !== null ? (t as { percentile?: unknown }).percentile : undefined;
  if (typeof p === 'number' && p >= 0 && p <= 100) return;
  const kinds = percentiles ? 'a distance (a non-negative number) or { percentile } from 0 to 100' : 'a distance (a non-negative number)';
  throw new TypeError(`${name} must be ${kinds}, got ${describeValue(t)}`);
}

export function validateMineOptions(o: MineOptions): Required<MineOptions> {
  const full: Required<MineOptions> = { ...MINE_DEFAULTS, ...o };
  const { posThreshold: x, negThreshold: y } = full;
  checkThreshold('posThreshold', x);
  checkThreshold('negThreshold', y);
  const overlap = thresholdOverlap(x, y, full.metric);
  if (overlap) throw new Error(overlap);
  if (full.metric !== 'euclidean' && full.metric !== 'cosine') throw new Error(`unknown metric ${String(full.metric)}`);
  for (const key of ['maxPos', 'maxNeg', 'k', 'queryBlock', 'memoryMb'] as const) {
    if (!Number.isInteger(full[key]) || full[key] < 1) throw new Error(`${key} must be a positive integer, got ${describeValue(full[key])}`);
  }
  if (!Number.isInteger(full.seed)) throw new TypeError(`seed must be an integer, got ${describeValue(full.seed)}`);
  if (typeof full.randomNegatives !== 'boolean') throw new TypeError(`randomNegatives must be true or false, got ${describeValue(full.randomNegatives)}`);
  return full;
}

/** A text of at most one code point (never mined, never a candidate). */
export const isShort = (s: string): boolean => {
  let n = 0;
  for (const _ of s) if (++n > 1) return false; // code points, not UTF-16 units
  return true;
};

/** The k best pool rows of each query of a block, merged across pool blocks. */
export interface TopK {
  k: number;
  indices: Int32Array; // [queries × k]
  scores: Float32Array;
}

/**
 * Exact k nearest of `queries` over the whole store, scanning the pool in blocks of `poolRows` and
 * merging the running best lists (ties keep the lower index, like a single knn call).
 */
export async function searchStore(queries: Embeddings, store: VectorStore, k: number, poolRows: number, metric: KnnMetric): Promise<TopK> {
  const nq = queries.rows;
  let best: TopK | undefined;
  const better = metric === 'cosine' ? (a: number, b: number) => a > b : (a: number, b: number) => a < b;
  for (let p0 = 0; p0 < store.rows; p0 += poolRows) {
    const pool = store.read(p0, Math.min(poolRows, store.rows - p0));
    const res = await knnOwned(queries, pool, k, { metric });
    if (!best) {
      const indices = res.indices.map((j) => j + p0);
      best = { k: res.k, indices, scores: res.scores };
      continue;
    }
    const kk = Math.min(k, best.k + res.k);
    const indices = new Int32Array(nq * kk);
    const scores = new Float32Array(nq * kk);
    for (let q = 0; q < nq; q++) {
      let a = 0;
      let b = 0;
      for (let t = 0; t < kk; t++) {
        const takeB = a >= best.k || (b < res.k && better(res.scores[q * res.k + b]!, best.scores[q * best.k + a]!));
        if (takeB) {
          indices[q * kk + t] = res.indices[q * res.k + b]! + p0;
          scores[q * kk + t] = res.scores[q * res.k + b]!;
          b++;
        } else {
          indices[q * kk + t] = best.indices[q * best.k + a]!;
          scores[q * kk + t] = best.scores[q * best.k + a]!;
          a++;
        }
      }
    }
    best = { k: kk, indices, scores };
  }
  if (!best) throw new Error('the pool is empty');
  return best;
}

export async function minePairs(
  corpus: Corpus,
  vectors: Embeddings | VectorStore,
  options: MineOptions,
  emit: (row: PairRow) => Promise<void> | void,
  onProgress?: (done: number, total: number) => void,
): Promise<MineStats> {
  if (typeof corpus !== 'object' || corpus === null || !Array.isArray(corpus.texts) || !Array.isArray(corpus.groups)) {
    throw new TypeError(`minePairs: corpus must be a Corpus ({ texts, groups, rows }: readCorpus), got ${describeValue(corpus)}`);
  }
  const given = vectors as Partial<VectorStore> | null;
  if (!(vectors instanceof Embeddings) && (typeof given !== 'object' || given === null || typeof given.read !== 'function')) {
    throw new TypeError(`minePairs: vectors must be Embeddings (model.encode) or a VectorStore, got ${describeValue(vectors)}`);
  }
  // before the search: without emit the pairs were mined and dropped, and emit: 5 failed only once it was done
  if (typeof emit !== 'function') throw new TypeError(`minePairs: emit must be a function (it is given each pair row), got ${describeValue(emit)}`);
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError(`minePairs: onProgress must be a function, got ${describeValue(onProgress)}`);
  checkOptions('minePairs', options, MINE_OPTIONS);
  const o = validateMineOptions(options);
  const { texts } = corpus;
  if (texts.length === 0) throw new Error('the corpus is empty');
  const store = vectors instanceof Embeddings ? new MemoryStore(vectors) : vectors;
  if (store.rows !== texts.length) throw new Error(`${store.rows} vectors for ${texts.length} texts`);
  // In memory the pool is one block; from a file, half the budget holds a pool block and a quarter
  // the query block (larger query blocks mean fewer passes over the file).
  const rowBytes = store.dim * 4;
  const budget = o.memoryMb * 1024 * 1024;
  const inMemory = store instanceof MemoryStore;
  const poolRows = inMemory ? store.rows : Math.max(1, Math.floor(budget / 2 / rowBytes));
  const queryRows = inMemory ? o.queryBlock : Math.max(o.queryBlock, Math.floor(budget / 4 / rowBytes));
  const siblings = siblingLists(corpus);
  const stats: MineStats = { queries: texts.length, written: 0, skippedNoPos: 0, skippedNoNeg: 0, skippedShort: 0 };
  const usable = (q: number, j: number): boolean => j !== q && texts[j] !== texts[q] && !isShort(texts[j]!);
  const kk = Math.min(o.k + 1, texts.length); // +1: the query itself is usually its own nearest
  const cosine = o.metric === 'cosine';

  for (let start = 0; start < texts.length; start += queryRows) {
    const count = Math.min(queryRows, texts.length - start);
    const qvecs = store.read(start, count);
    const res = await searchStore(qvecs, store, kk, poolRows, o.metric);
    for (let b = 0; b < count; b++) {
      const q = start + b;
      if (isShort(texts[q]!)) {
        stats.skippedShort++;
        continue;
      }
      const rng = new Rng(o.seed, q);
      const sib = siblings.get(q) ?? [];
      const sibSet = new Set(sib);
      const nearPos: number[] = [];
      const nearNeg: number[] = [];
      // k neighbours besides the query: with exact ties the query need not be among its own k+1
      // nearest (ties go to the lower index), and all k+1 would be taken
      let examined = 0;
      for (let t = 0; t < res.k && examined < o.k; t++) {
        const j = res.indices[b * res.k + t]!;
        if (!usable(q, j)) continue;
        examined++;
        if (sibSet.has(j)) continue;
        const s = res.scores[b * res.k + t]!;
        const dist = cosine ? 1 - s : s;
        if (dist <= o.posThreshold) nearPos.push(j);
        else if (dist > o.negThreshold) nearNeg.push(j);
      }
      const versions = sib.filter((j) => usable(q, j));
      const pos = rng.sample(versions, o.maxPos);
      if (pos.length < o.maxPos) pos.push(...rng.sample(nearPos, o.maxPos - pos.length));
      const neg = rng.sample(nearNeg, o.maxNeg);
      if (o.randomNegatives && neg.length < o.maxNeg) {
        topUpRandomNegatives(qvecs.row(b), neg, o.maxNeg, store, rng, (j) => usable(q, j) && !sibSet.has(j), o);
      }
      if (pos.length === 0) stats.skippedNoPos++;
      else if (neg.length === 0) stats.skippedNoNeg++;
      else {
        await emit({ query: texts[q]!, pos: pos.map((j) => texts[j]!), neg: neg.map((j) => texts[j]!) });
        stats.written++;
      }
    }
    onProgress?.(start + count, texts.length);
  }
  return stats;
}

/** For each text index, the other versions from every row it appears in. */
function siblingLists(corpus: Corpus): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const g of corpus.groups) {
    for (const a of g) {
      let list = out.get(a);
      if (!list) out.set(a, (list = []));
      for (const b of g) if (b !== a && !list.includes(b)) list.push(b);
    }
  }
  return out;
}

/** Random pool texts beyond the negative threshold, checked by computing their distance directly. */
function topUpRandomNegatives(
  qv: Float32Array,
  neg: number[],
  maxNeg: number,
  vectors: VectorStore,
  rng: Rng,
  allowed: (j: number) => boolean,
  o: Required<MineOptions>,
): void {
  const chosen = new Set(neg);
  for (let tries = 0; neg.length < maxNeg && tries < 20 * maxNeg; tries++) {
    const j = rng.int(vectors.rows);
    if (chosen.has(j) || !allowed(j)) continue;
    if (distance(qv, vectors.read(j, 1).row(0), o.metric) > o.negThreshold) {
      neg.push(j);
      chosen.add(j);
    }
  }
}

export function distance(a: Float32Array, b: Float32Array, metric: KnnMetric): number {
  let dot = 0, na = 0, nb = 0, d2 = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
    d2 += (a[i]! - b[i]!) * (a[i]! - b[i]!);
  }
  if (metric === 'euclidean') return Math.sqrt(d2);
  return 1 - (na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0);
}
