// The demo's held-out pairs at every weight precision (issue 18: "int8 encode: on the demo's held-out
// pairs top-1/3/5/10 within ±0.01 of fp32"). One saved model is loaded at fp32, bf16 and int8; each
// time the held-out pool is encoded as the demo encodes it and scored with the published metrics;
// the metrics are compared with fp32's, and every pool text's embedding with its fp32 embedding.
// test/precision-demo.test.ts asserts the bounds; bench/precision-eval.mjs prints the table.
import { cosine } from '../eval/knn.js';
import { buildTestSet, computeMetrics, TOP_KS, type Metrics } from '../eval/metrics.js';
import { EmbeddingModel, PRECISIONS, type Precision } from '../model/embedding-model.js';
import type { PairRow } from '../data/jsonl.js';
import { encodeDemoPool } from './run.js';

export interface PrecisionEvaluation {
  precision: Precision;
  metrics: Metrics;
  /** Cosine of each pool text's embedding to its fp32 embedding: the smallest and the mean. */
  minCos: number;
  meanCos: number;
  /** Seconds to encode the pool (after loading). */
  encodeSeconds: number;
}

export interface PrecisionComparison {
  poolTexts: number;
  /** (query, pos) pairs that top-k counts over: one flipped hit moves top-k by 1 / pairs. */
  pairs: number;
  /** fp32 first, then the others in the order asked. */
  results: PrecisionEvaluation[];
}

export const METRIC_KEYS = ['positive score', 'negative score', 'top1', 'top3', 'top5', 'top10'] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];
export const TOP_K_KEYS = TOP_KS.map((k) => `top${k}` as const);

/** metric(result) - metric(fp32); NaN when either is missing (no negatives), so a bound check fails. */
export function metricDelta(r: PrecisionEvaluation, fp32: PrecisionEvaluation, key: MetricKey): number {
  const a = r.metrics[key], b = fp32.metrics[key];
  return a === null || b === null ? NaN : a - b;
}

/**
 * Loads the model in `modelDir` at fp32 and at each of `precisions` in turn (one at a time, so only
 * one copy of the weights is held), encodes the pool of `rows` (the demo's test rows, or any
 * {query, pos, neg} rows) and scores it.
 */
export async function evaluatePrecisions(
  modelDir: string,
  rows: PairRow[],
  precisions: readonly Precision[] = PRECISIONS,
  options: { limit?: number; onNotice?: (message: string) => void } = {},
): Promise<PrecisionComparison> {
  const set = await buildTestSet('held-out', rows, options.limit ?? 1000);
  const order: Precision[] = ['fp32', ...precisions.filter((p) => p !== 'fp32')];
  const results: PrecisionEvaluation[] = [];
  let reference: Float32Array | null = null;
  for (const precision of order) {
    const model = await EmbeddingModel.load(modelDir, { precision });
    try {
      const started = performance.now();
      const emb = await encodeDemoPool(model, set.pool);
      const encodeSeconds = (performance.now() - started) / 1000;
      reference ??= emb.data;
      let minCos = Infinity, sum = 0;
      for (let i = 0; i < emb.rows; i++) {
        const c = cosine(emb.row(i), reference.subarray(i * emb.dim, (i + 1) * emb.dim));
        minCos = Math.min(minCos, c); // NaN stays NaN
        sum += c;
      }
      const metrics = await computeMetrics(set, emb);
      results.push({ precision, metrics, minCos, meanCos: sum / emb.rows, encodeSeconds });
      options.onNotice?.(`${precision}: pool of ${set.pool.length} texts encoded in ${encodeSeconds.toFixed(1)} s`);
    } finally {
      model.dispose();
    }
  }
  return { poolTexts: set.pool.length, pairs: set.pairs.length / 2, results };
}

/** The comparison as a text table: one row per metric, a column per precision and its Δ to fp32. */
export function formatPrecisionComparison(c: PrecisionComparison): string {
  const fp32 = c.results[0]!;
  const f = (v: number | null): string => (v === null || Number.isNaN(v) ? '—' : v.toFixed(4));
  const d = (v: number): string => (Number.isNaN(v) ? '—' : (v >= 0 ? '+' : '') + v.toFixed(4));
  const header = ['metric', ...c.results.flatMap((r) => (r === fp32 ? [r.precision] : [r.precision, 'Δ']))];
  const body = METRIC_KEYS.map((k) => [
    k,
    ...c.results.flatMap((r) => (r === fp32 ? [f(r.metrics[k])] : [f(r.metrics[k]), d(metricDelta(r, fp32, k))])),
  ]);
  body.push(['cos to fp32 min', ...c.results.flatMap((r) => (r === fp32 ? ['1'] : [r.minCos.toFixed(6), '']))]);
  body.push(['encode s', ...c.results.flatMap((r) => (r === fp32 ? [r.encodeSeconds.toFixed(2)] : [r.encodeSeconds.toFixed(2), '']))]);
  const rowsOut = [header, ...body];
  const widths = header.map((_, i) => Math.max(...rowsOut.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n') + '\n';
}
