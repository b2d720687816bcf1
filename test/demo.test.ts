// The demo end to end, shortened (fewer steps, fixed seed), through the CLI as a user runs it: it
// must really learn — retrieval on held-out concepts clearly better after training than before —
// and write its data, the model in the Hugging Face layout, metrics.json and the two charts. Its
// saved model then meets issue 18's accuracy target for reduced precision on the same held-out
// pairs (src/demo/precision.ts), on this run's model rather than a second training run.
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import type { PairRow } from '../src/data/jsonl.js';
import { evaluatePrecisions, formatPrecisionComparison, metricDelta, TOP_K_KEYS } from '../src/demo/precision.js';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { makeTempDir } from './helpers/tinyModel.js';

type M = Record<'positive score' | 'negative score' | 'top1' | 'top3' | 'top5' | 'top10', number>;

describe('l2e demo (shortened)', () => {
  let out: string;
  let code: number;
  const stdout: string[] = [];

  beforeAll(async () => {
    out = makeTempDir('l2e-demo-');
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array) => {
      stdout.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    try {
      code = await main(['demo', '--output', out, '--steps', '2000', '--seed', '42']);
    } finally {
      process.stdout.write = write;
    }
  }, 300_000);

  it('trains a model that retrieves held-out translations clearly better than before', async () => {
    expect(code).toBe(0);
    expect(stdout.join('')).toMatch(/metric\s+before\s+after/);

    const { before, after } = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { before: M; after: M };
    for (const k of ['positive score', 'negative score', 'top1', 'top3', 'top5', 'top10'] as const) {
      expect(Number.isFinite(before[k]) && Number.isFinite(after[k]), k).toBe(true);
    }
    // Measured: at 2000 steps top-1 goes from ~0.07 to 0.11-0.15 and top-10 from ~0.12 to 0.36-0.42 on
    // held-out concepts (three seeds); the bounds leave room for run-to-run float differences.
    expect(after.top1).toBeGreaterThan(before.top1 * 1.3);
    expect(after.top10).toBeGreaterThan(before.top10 * 2.5);

    const losses = JSON.parse(readFileSync(join(out, 'losses.json'), 'utf8')) as number[];
    expect(losses.length).toBe(2000);
    const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-100))).toBeLessThan(mean(losses.slice(0, 100)) / 3);

    for (const f of ['train.jsonl', 'test.jsonl', 'loss.svg', 'metrics.svg', 'model/config.json', 'model/model.safetensors', 'model/tokenizer.json']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    expect(readFileSync(join(out, 'loss.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<path d="M/);
    const cfg = JSON.parse(readFileSync(join(out, 'model/config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg['sentence_pooling_method']).toBe('mean');
    expect(cfg['temperature']).toBe(0.02);

    // the saved model reloads and encodes with the real Llama 2 tokenizer
    const m = await EmbeddingModel.load(join(out, 'model'));
    expect(Array.from(m.tokenize(['Hello world!'])[0]!)).toEqual([1, 15043, 3186, 29991]);
    const e = await m.encode(['muka tersengih', 'grinning face']);
    expect(Math.hypot(...e.row(0))).toBeCloseTo(1, 5);
    m.dispose();
  });

  // The target: "int8 encode: on the demo's held-out pairs top-1/3/5/10 within ±0.01 of fp32"
  // (bf16 held to the same). The bounds:
  // - top-k within ±0.01 of fp32 (the issue's). One hit moves top-k by 1 / pairs (460 held-out pairs:
  //   0.0022), so 0.01 allows four pairs whose query and a rival pool text trade places around rank k;
  // - every pool text's embedding at cosine >= 0.9999 (bf16) / >= 0.999 (int8) to its fp32 one (the
  //   issue's bounds, as precision-model.test.ts asserts them on random models), and below 1: the
  //   reduced-precision kernels really ran;
  // - positive / negative score within 2 sqrt(2 (1 - c)) of fp32, c the smallest of those cosines: for
  //   unit vectors |q'·p' - q·p| <= |q' - q| + |p' - p| and |u' - u| = sqrt(2 (1 - cos(u, u'))), so
  //   each pair's cosine, and so their mean, moves by no more (derived, not measured).
  // The demo's model is small (hidden 128, MLP 344, dense 256) but its int8 is the same per-channel
  // weights and per-token activations as at the 600M shape; bench/precision-eval.mjs prints the table
  // for the full demo model and for the 600M shape on these pairs.
  it('its model at bf16 and int8 retrieves the held-out pairs within ±0.01 of fp32 (top-1/3/5/10)', async () => {
    const TOP_K_BOUND = 0.01;
    const MIN_COS = { bf16: 0.9999, int8: 0.999 } as const;
    const rows = readFileSync(join(out, 'test.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as PairRow);
    const cmp = await evaluatePrecisions(join(out, 'model'), rows, ['bf16', 'int8']);
    const report = formatPrecisionComparison(cmp); // in every failure message
    expect(cmp.results.map((r) => r.precision)).toEqual(['fp32', 'bf16', 'int8']);
    expect(cmp.pairs).toBe(rows.length); // one (query, pos) pair per held-out row
    // the saved model reloaded in fp32 scores what the demo measured on the model it trained
    const { after } = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { after: M };
    const fp32 = cmp.results[0]!;
    for (const k of TOP_K_KEYS) expect(fp32.metrics[k], `${k}\n${report}`).toBeCloseTo(after[k], 6);
    for (const r of cmp.results.slice(1)) {
      const p = r.precision as 'bf16' | 'int8';
      expect(r.minCos, `${p}\n${report}`).toBeGreaterThanOrEqual(MIN_COS[p]); // NaN fails
      expect(r.minCos, `${p}\n${report}`).toBeLessThan(1 - 1e-9);
      for (const k of TOP_K_KEYS) expect(Math.abs(metricDelta(r, fp32, k)), `${p} ${k}\n${report}`).toBeLessThanOrEqual(TOP_K_BOUND);
      const scoreBound = 2 * Math.sqrt(2 * (1 - r.minCos));
      for (const k of ['positive score', 'negative score'] as const)
        expect(Math.abs(metricDelta(r, fp32, k)), `${p} ${k}\n${report}`).toBeLessThanOrEqual(scoreBound);
    }
  }, 120_000);
});
