// Nearest-neighbour distances of a corpus, to choose mining thresholds. For each query (every text,
// or an evenly spaced sample of them in large corpora) the distances to its k nearest usable texts —
// the candidates mining considers: not itself, not an equal text, not of one character. Mining keeps
// positives at distance ≤ pos-threshold and negatives beyond neg-threshold among exactly these, so
// the percentiles of the pooled distances say what share of candidates a threshold takes
// (`--pos-threshold p10`: the 10th percentile). Percentiles interpolate linearly between closest
// ranks (numpy's default).
import { Embeddings } from '../model/embeddings.js';
import type { KnnMetric } from '../eval/knn.js';
import type { Corpus } from './corpus.js';
import { isShort, MINE_DEFAULTS, searchStore } from './mine.js';
import { MemoryStore, type VectorStore } from './store.js';

/** A threshold given as a distance, or as a percentile (0-100) of the k-nearest distances. */
export type Threshold = number | { percentile: number };

export interface NeighbourStats {
  metric: KnnMetric;
  /** Neighbours examined per text: the k asked for, at most the other texts of the corpus. */
  k: number;
  /** Texts in the corpus. */
  texts: number;
  /** Queries measured (all texts, or a sample; texts of one character are never queries). */
  queries: number;
  /** Whether the queries are an evenly spaced sample of the corpus, not all of it. */
  sampled: boolean;
  /** Texts of one character in the corpus: never measured, never candidates. */
  short: number;
  /** Per measured query, the distance to its nearest usable text (sorted ascending). */
  nearest: Float64Array;
  /** Distances to the k nearest usable texts of every measured query, pooled (sorted ascending). */
  all: Float64Array;
}

export const STATS_PERCENTILES = [1, 5, 10, 25, 50, 75, 90, 95, 99] as const;

/** The p-th percentile (0-100) of ascending `sorted`, interpolating linearly; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (Math.min(100, Math.max(0, p)) / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** "0.45" → 0.45, "p10" → { percentile: 10 }; anything else throws naming the flag. */
export function parseThreshold(raw: string, flag: string): Threshold {
  const m = /^p(\d+(?:\.\d+)?)$/i.exec(raw.trim());
  if (m) {
    const p = Number(m[1]);
    if (p > 100) throw new Error(`${flag} ${raw}: a percentile is between p0 and p100`);
    return { percentile: p };
  }
  // a decimal number (Number() also reads 0x1, 0b10 and 1_0 as distances)
  const v = /^\s*(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?\s*$/i.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(v) || v < 0) {
    throw new Error(`${flag} expects a distance (e.g. 0.45) or a percentile of the neighbour distances (e.g. p10), got "${raw}"`);
  }
  return v;
}

export interface NeighbourStatsOptions {
  k?: number;
  metric?: KnnMetric;
  /** Queries measured at most (evenly spaced over the corpus); default 10,000. */
  sample?: number;
  /** Memory for vector blocks when the vectors are in a file (MiB, default MINE_DEFAULTS.memoryMb). */
  memoryMb?: number;
}

export async function neighbourStats(corpus: Corpus, store: VectorStore, o: NeighbourStatsOptions = {}): Promise<NeighbourStats> {
  const { texts } = corpus;
  const metric = o.metric ?? 'euclidean';
  const k = o.k ?? 100;
  const n = texts.length;
  if (store.rows !== n) throw new Error(`${store.rows} vectors for ${n} texts`);
  const sample = Math.min(n, o.sample ?? 10_000);
  const picks: number[] = [];
  for (let i = 0; i < sample; i++) {
    const q = Math.floor((i * n) / sample);
    if (!isShort(texts[q]!)) picks.push(q); // short texts are never mined
  }
  const rowBytes = store.dim * 4;
  const poolRows = store instanceof MemoryStore ? store.rows : Math.max(1, Math.floor(((o.memoryMb ?? MINE_DEFAULTS.memoryMb) * 1024 * 1024) / 2 / rowBytes));
  const kk = Math.min(k + 1, n); // +1: the query itself
  const nearest: number[] = [];
  const all: number[] = [];
  const block = 1024;
  for (let b0 = 0; b0 < picks.length; b0 += block) {
    const ids = picks.slice(b0, b0 + block);
    const qv = new Embeddings(ids.length, store.dim);
    ids.forEach((q, r) => qv.row(r).set(store.read(q, 1).row(0)));
    const res = await searchStore(qv, store, kk, poolRows, metric);
    ids.forEach((q, r) => {
      let taken = 0;
      for (let t = 0; t < res.k && taken < k; t++) {
        const j = res.indices[r * res.k + t]!;
        if (j === q || texts[j] === texts[q] || isShort(texts[j]!)) continue;
        const s = res.scores[r * res.k + t]!;
        const dist = metric === 'cosine' ? 1 - s : s;
        if (taken === 0) nearest.push(dist);
        all.push(dist);
        taken++;
      }
    });
  }
  const sorted = (a: number[]): Float64Array => Float64Array.from(a).sort();
  const short = texts.reduce((c, t) => c + (isShort(t) ? 1 : 0), 0);
  return { metric, k: Math.max(0, Math.min(k, n - 1)), texts: n, queries: picks.length, sampled: sample < n, short, nearest: sorted(nearest), all: sorted(all) };
}

/** A threshold as a distance: percentiles read from the pooled k-nearest distances. */
export function resolveThreshold(t: Threshold, stats: NeighbourStats): number {
  if (typeof t === 'number') return t;
  if (stats.all.length === 0) throw new Error('no neighbour distances to take a percentile of (is the corpus a single text?)');
  return percentile(stats.all, t.percentile);
}

/** The percentile table `l2e mine --stats` prints. */
export function formatNeighbourStats(s: NeighbourStats): string {
  const what = s.metric === 'cosine' ? 'cosine distance 1 - cos' : 'Euclidean distance';
  const left = s.short > 0 ? `; ${s.short} of one character left out` : '';
  const sampled = s.sampled ? ` (an evenly spaced sample of ${s.queries} of ${s.texts} texts${left})` : ` (${s.queries} texts${left})`;
  const head = ['', ...STATS_PERCENTILES.map((p) => `p${p}`)];
  const row = (label: string, xs: Float64Array): string[] => [label, ...STATS_PERCENTILES.map((p) => percentile(xs, p).toFixed(4))];
  const rows = [head, row('nearest', s.nearest), row(`all ${s.k} nearest`, s.all)];
  const w0 = Math.max(...rows.map((r) => r[0]!.length));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w0) : c.padStart(7))).join(' ');
  return (
    `${what} to the k = ${s.k} nearest texts${sampled}:\n` +
    rows.map(fmt).join('\n') +
    `\n\nMining takes positives at distance <= --pos-threshold and negatives beyond --neg-threshold among\n` +
    `the ${s.k} nearest (the "all" row). A threshold may be a percentile of that row,\n` +
    `e.g. --pos-threshold p5 --neg-threshold p50.\n`
  );
}
