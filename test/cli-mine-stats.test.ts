// Choosing mining thresholds: `l2e mine --stats` (a dry run) prints the percentiles of the
// nearest-neighbour distances, and thresholds may be given as those percentiles (`p10`). The corpus
// is six texts on a line (x = 0, 1, 3, 6, 10, 15) so every distance is known by hand. Also: mine
// prints plain progress lines when stderr is not a terminal.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseThreshold, percentile } from '../src/mine/stats.js';
import { validateMineOptions } from '../src/mine/mine.js';
import { corpusNeighbourStats } from '../src/mine/run.js';
import { loadVectorTable } from '../src/eval/vectors.js';
import { tableSource } from '../src/eval/source.js';
import { l2e } from './helpers/cli.js';
import { makeTempDir } from './helpers/tinyModel.js';

const X = [0, 1, 3, 6, 10, 15];
let dir: string;
let corpus: string;
let vectors: string;

beforeAll(() => {
  dir = makeTempDir();
  corpus = join(dir, 'corpus.txt');
  vectors = join(dir, 'vectors.jsonl');
  writeFileSync(corpus, X.map((x) => `t${x}`).join('\n') + '\n');
  writeFileSync(vectors, X.map((x) => JSON.stringify({ text: `t${x}`, embedding: [x, 0] })).join('\n') + '\n');
});

describe('percentiles', () => {
  it('interpolate linearly between closest ranks (numpy default)', () => {
    const xs = [1, 2, 3, 4, 10];
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile(xs, 50)).toBe(3);
    expect(percentile(xs, 100)).toBe(10);
    expect(percentile(xs, 90)).toBeCloseTo(7.6, 12); // rank 3.6: 4 + 0.6 × 6
    expect(percentile([], 50)).toBeNaN();
  });

  it('thresholds are distances or pN', () => {
    expect(parseThreshold('0.45', '--pos-threshold')).toBe(0.45);
    expect(parseThreshold('p10', '--pos-threshold')).toEqual({ percentile: 10 });
    expect(parseThreshold('P2.5', '--pos-threshold')).toEqual({ percentile: 2.5 });
    expect(() => parseThreshold('p120', '--neg-threshold')).toThrow('--neg-threshold p120: a percentile is between p0 and p100');
    expect(parseThreshold('1e-1', '--pos-threshold')).toBe(0.1);
    expect(parseThreshold('.5', '--pos-threshold')).toBe(0.5);
    expect(parseThreshold(' 2. ', '--pos-threshold')).toBe(2);
    for (const bad of ['near', '0x1', '0b10', '1_0', '-0.5', 'Infinity', '', '1e400']) {
      expect(() => parseThreshold(bad, '--pos-threshold')).toThrow(
        `--pos-threshold expects a distance (e.g. 0.45) or a percentile of the neighbour distances (e.g. p10), got "${bad}"`,
      );
    }
  });
});

describe('l2e mine --stats', () => {
  it('prints the percentiles of the nearest and the k nearest distances and writes nothing', async () => {
    const before = readdirSync(dir).sort();
    const r = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--stats', '--k', '2');
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(0);
    // k = 2 by hand: nearest 1,1,2,3,4,5; the two nearest 1,3 | 1,2 | 2,3 | 3,4 | 4,5 | 5,9
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('Euclidean distance to the k = 2 nearest texts (6 texts):');
    expect(lines[1]!.trim().split(/\s+/)).toEqual(['p1', 'p5', 'p10', 'p25', 'p50', 'p75', 'p90', 'p95', 'p99']);
    expect(lines[2]!.trim().split(/\s+/)).toEqual(['nearest', '1.0000', '1.0000', '1.0000', '1.2500', '2.5000', '3.7500', '4.5000', '4.7500', '4.9500']);
    expect(lines[3]!.trim().split(/\s+/)).toEqual(['all', '2', 'nearest', '1.0000', '1.0000', '1.1000', '2.0000', '3.0000', '4.2500', '5.0000', '6.8000', '8.5600']);
    expect(r.out).toContain('e.g. --pos-threshold p5 --neg-threshold p50');
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it('a --k beyond the other texts is reported as the k examined', async () => {
    const r = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--stats', '--k', '100');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('Euclidean distance to the k = 5 nearest texts (6 texts):');
    expect(lines[3]!.trim().split(/\s+/).slice(0, 3)).toEqual(['all', '5', 'nearest']);
  });

  it('a percentile threshold on a corpus with no two texts to measure names the input', async () => {
    const one = join(dir, 'one.txt');
    writeFileSync(one, 't0\nz\n');
    const oneVectors = join(dir, 'one.jsonl');
    writeFileSync(oneVectors, '{"text": "t0", "embedding": [0, 0]}\n{"text": "z", "embedding": [1, 0]}\n');
    const out = join(dir, 'one-mined.jsonl');
    const r = await l2e('mine', '--embeddings', oneVectors, '--input', one, '--output', out, '--pos-threshold', 'p5', '--neg-threshold', 'p50');
    expect([r.code, r.err.split('\n').at(-2)]).toEqual([
      1,
      `l2e mine: error: ${one}: no two texts to measure a distance between, so no percentile threshold (2 texts, 1 of one character)`,
    ]);
    expect(existsSync(out)).toBe(false);
  });

  it('texts of one character are said to be left out, not taken for a sample', async () => {
    const shortCorpus = join(dir, 'short.txt');
    const shortVectors = join(dir, 'short.jsonl');
    const texts = [...X.map((x) => `t${x}`), 'a', 'b'];
    writeFileSync(shortCorpus, texts.join('\n') + '\n');
    writeFileSync(shortVectors, texts.map((t, i) => JSON.stringify({ text: t, embedding: [X[i] ?? 100 + i, 0] })).join('\n') + '\n');
    const r = await l2e('mine', '--embeddings', shortVectors, '--input', shortCorpus, '--stats', '--k', '2');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toBe('Euclidean distance to the k = 2 nearest texts (6 texts; 2 of one character left out):');
  });

  it('percentile thresholds mine exactly what the distances they stand for mine', async () => {
    // k = 5 (all pairs): the 30 distances' p10 is 2 and p70 is 9
    const a = join(dir, 'by-percentile.jsonl');
    const b = join(dir, 'by-distance.jsonl');
    const common = ['--embeddings', vectors, '--input', corpus, '--k', '5', '--max-pos', '2', '--max-neg', '2'];
    const r1 = await l2e('mine', ...common, '--output', a, '--pos-threshold', 'p10', '--neg-threshold', 'p70');
    expect(r1.code).toBe(0);
    expect(r1.err).toContain('thresholds: --pos-threshold 2.0000 (p10) --neg-threshold 9.0000 (p70)\n');
    const mixed = await l2e('mine', ...common, '--output', join(dir, 'mixed.jsonl'), '--pos-threshold', 'p10', '--neg-threshold', '9');
    expect(mixed.err).toContain('thresholds: --pos-threshold 2.0000 (p10) --neg-threshold 9.0000\n');
    const r2 = await l2e('mine', ...common, '--output', b, '--pos-threshold', '2', '--neg-threshold', '9');
    expect(r2.code).toBe(0);
    const rows = readFileSync(a, 'utf8');
    expect(rows).toBe(readFileSync(b, 'utf8'));
    const first = rows.split('\n').map((l) => (l ? (JSON.parse(l) as { query: string; pos: string[]; neg: string[] }) : null))[0]!;
    expect(first.query).toBe('t0');
    expect(first.pos).toEqual(['t1']);
    expect(first.neg.length).toBeGreaterThan(0);
    for (const n of first.neg) expect(['t10', 't15']).toContain(n);
  });

  it('says what is missing or wrong', async () => {
    const out = join(dir, 'never.jsonl');
    const none = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--output', out);
    expect(none.code).toBe(2);
    expect(none.err.split('\n')[0]).toBe('l2e mine: --pos-threshold is required (or --stats to see the distances first)');
    const order = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--output', out, '--pos-threshold', 'p50', '--neg-threshold', 'p10');
    expect(order.code).toBe(2);
    expect(order.err.split('\n')[0]).toBe('l2e mine: --pos-threshold p50 is above --neg-threshold p10: positives and negatives would overlap');
    // one check of the threshold order: the CLI and the library say the same, each naming the options its own way
    const dist = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--output', out, '--metric', 'cosine', '--pos-threshold', '0.8', '--neg-threshold', '0.3');
    const words =
      '--pos-threshold 0.8 is above --neg-threshold 0.3: positives (distance ≤ pos) and negatives (distance > neg) would overlap; both are cosine distances (1 − cos)';
    expect([dist.code, dist.err.split('\n')[0]]).toEqual([2, `l2e mine: ${words}`]);
    expect(() => validateMineOptions({ posThreshold: 0.8, negThreshold: 0.3, metric: 'cosine' })).toThrow(
      words.replace('--pos-threshold', 'posThreshold').replace('--neg-threshold', 'negThreshold'),
    );
    // a distance and a percentile: found once the percentile is a distance, and said with the percentile
    const mixed = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--output', out, '--pos-threshold', '5', '--neg-threshold', 'p10');
    expect([mixed.code, mixed.err.split('\n').at(-2)]).toEqual([
      1,
      'l2e mine: error: --pos-threshold 5 is above --neg-threshold p10 (2): positives (distance ≤ pos) and negatives (distance > neg) would overlap',
    ]);
    const noOut = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--pos-threshold', '1', '--neg-threshold', '2');
    expect(noOut.err.split('\n')[0]).toBe('l2e mine: --output is required (or --stats for a dry run)');
    // flags that would silently do nothing: a dry run's output and thresholds, --fields on a text input
    const dry = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--stats', '--output', out, '--pos-threshold', '1');
    expect([dry.code, dry.err.split('\n')[0]]).toEqual([2, 'l2e mine: --stats is a dry run that writes nothing: --output, --pos-threshold would do nothing with it']);
    const picks = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--stats', '--seed', '7', '--max-pos', '2', '--max-neg', '3');
    expect([picks.code, picks.err.split('\n')[0]]).toEqual([2, 'l2e mine: --stats is a dry run that writes nothing: --max-pos, --max-neg, --seed would do nothing with it']);
    const asText = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--format', 'text', '--fields', 'en,ms', '--output', out, '--pos-threshold', '1', '--neg-threshold', '2');
    expect([asText.code, asText.err.split('\n')[0]]).toEqual([2, `l2e mine: --fields names JSONL fields, but ${corpus} is read as text (--format jsonl reads it as JSONL)`]);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(out)).toBe(false);
  });

  it('checks --k, --memory-mb, --max-pos and --max-neg before any work, with --stats too', async () => {
    const cases: [string[], string][] = [
      [['--stats', '--k', '0'], '--k must be at least 1, got 0'],
      [['--stats', '--k', '-5'], '--k must be at least 1, got -5'],
      [['--stats', '--memory-mb', '-1'], '--memory-mb must be at least 1, got -1'],
      [['--output', join(dir, 'never.jsonl'), '--pos-threshold', '1', '--neg-threshold', '2', '--max-pos', '0'], '--max-pos must be at least 1, got 0'],
      [['--output', join(dir, 'never.jsonl'), '--pos-threshold', '1', '--neg-threshold', '2', '--max-neg', '0'], '--max-neg must be at least 1, got 0'],
    ];
    for (const [rest, message] of cases) {
      const r = await l2e('mine', '--embeddings', vectors, '--input', corpus, ...rest);
      expect([r.code, r.err.split('\n')[0], r.out]).toEqual([2, `l2e mine: ${message}`, '']);
      expect(r.err).not.toMatch(/embed /); // nothing was embedded
    }
  });

  it('--stats on a corpus of one text is an error, not a table of NaN', async () => {
    const one = join(dir, 'one.txt');
    writeFileSync(one, 't0\n');
    const r = await l2e('mine', '--embeddings', vectors, '--input', one, '--stats');
    expect([r.code, r.err.trimEnd().split('\n').pop(), r.out]).toEqual([
      1,
      `l2e mine: error: ${one}: no distances to measure: the corpus needs two distinct texts of more than one character`,
      '',
    ]);
    const source = tableSource(await loadVectorTable(vectors));
    await expect(corpusNeighbourStats(source, { input: corpus, k: 0 })).rejects.toThrow('k must be a positive integer, got 0');
  });

  it('prints plain progress lines for embedding and mining when stderr is not a terminal', async () => {
    const tty = process.stderr.isTTY;
    process.stderr.isTTY = false;
    try {
      const r = await l2e('mine', '--embeddings', vectors, '--input', corpus, '--output', join(dir, 'p.jsonl'), '--pos-threshold', '2', '--neg-threshold', '9');
      expect(r.code).toBe(0);
      expect(r.err).toMatch(/^embed 6\/6 /m);
      expect(r.err).toMatch(/^mine 6\/6 /m);
    } finally {
      process.stderr.isTTY = tty;
    }
  });
});
