// The precision comparison of src/demo/precision.ts: its table and its differences. The comparison
// itself, on the demo's trained model and held-out pairs, is in demo.test.ts (one training run).
import { describe, expect, it } from 'vitest';

import { formatPrecisionComparison, metricDelta, type PrecisionEvaluation } from '../src/demo/precision.js';
import type { Metrics } from '../src/eval/metrics.js';

const metrics = (top1: number, neg: number | null): Metrics => ({
  'positive score': 0.8,
  'negative score': neg,
  top1,
  top3: 0.25,
  top5: 0.3,
  top10: 0.4,
});
const result = (precision: 'fp32' | 'int8', m: Metrics, minCos: number): PrecisionEvaluation => ({
  precision,
  metrics: m,
  minCos,
  meanCos: minCos,
  encodeSeconds: 1.5,
});

describe('the precision comparison table', () => {
  it('prints each precision with its difference to fp32, and a dash where a metric is missing', () => {
    const text = formatPrecisionComparison({
      poolTexts: 900,
      pairs: 460,
      results: [result('fp32', metrics(0.1674, 0.46), 1), result('int8', metrics(0.1652, null), 0.99951)],
    });
    expect(text.split('\n')).toEqual([
      'metric             fp32      int8        Δ',
      '---------------  ------  --------  -------',
      'positive score   0.8000    0.8000  +0.0000',
      'negative score   0.4600         —        —',
      'top1             0.1674    0.1652  -0.0022',
      'top3             0.2500    0.2500  +0.0000',
      'top5             0.3000    0.3000  +0.0000',
      'top10            0.4000    0.4000  +0.0000',
      'cos to fp32 min       1  0.999510         ',
      'encode s           1.50      1.50         ',
      '',
    ]);
  });

  it('a missing metric is a NaN difference, which fails any bound', () => {
    const fp32 = result('fp32', metrics(0.1, 0.4), 1);
    const q8 = result('int8', metrics(0.1, null), 0.9995);
    expect(metricDelta(q8, fp32, 'negative score')).toBeNaN();
    expect(Math.abs(metricDelta(q8, fp32, 'negative score')) <= 0.01).toBe(false);
  });
});
