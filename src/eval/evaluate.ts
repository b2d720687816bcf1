// Evaluates one or more test files with an embedding source: build each file's pool, embed it,
// compute the notebook metrics (metrics.ts).
import { basename, extname } from 'node:path';
import { computeMetrics, readTestSet, type Metrics } from './metrics.js';
import type { EmbeddingSource } from './source.js';
import { atItsLine } from '../model/text-error.js';

export interface FileEvaluation {
  /** The file's basename without its extension. */
  name: string;
  file: string;
  metrics: Metrics;
  poolSize: number;
  /** (query, pos) pairs behind the top-k rates. */
  pairs: number;
}

export function testName(file: string): string {
  return basename(file, extname(file));
}

export async function evaluateFile(
  file: string,
  source: EmbeddingSource,
  opts: { limit?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<FileEvaluation> {
  const name = testName(file);
  const set = await readTestSet(file, opts.limit ?? 1000, file);
  if (set.pool.length === 0) throw new Error(`${file}: the pool is empty (no non-empty strings in the first ${opts.limit ?? 1000} rows)`);
  const vectors = await source.embed(set.pool, opts.onProgress).catch((err: unknown) => {
    throw atItsLine(err, set);
  });
  const metrics = await computeMetrics(set, vectors);
  return { name, file, metrics, poolSize: set.pool.length, pairs: set.pairs.length / 2 };
}

/** A plain-text table: one row per test file. */
export function formatTable(results: FileEvaluation[]): string {
  const cols = ['test', 'pool', 'pairs', 'positive score', 'negative score', 'top1', 'top3', 'top5', 'top10'];
  const fmt = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(4));
  const rows = results.map((r) => [
    r.name,
    String(r.poolSize),
    String(r.pairs),
    fmt(r.metrics['positive score']),
    fmt(r.metrics['negative score']),
    fmt(r.metrics.top1),
    fmt(r.metrics.top3),
    fmt(r.metrics.top5),
    fmt(r.metrics.top10),
  ]);
  const widths = cols.map((c, j) => Math.max(c.length, ...rows.map((r) => r[j]!.length)));
  const line = (cells: string[]): string => cells.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join('  ');
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}
