// Evaluation metrics: a hand-computed case, the `limit` cut, a randomized comparison with a direct
// O(N²) computation of the notebook definitions, and bad test files.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Embeddings } from '../src/model/embeddings.js';
import { buildTestSet, computeMetrics, isTopKHit, readTestSet, type TestRow } from '../src/eval/metrics.js';
import { Rng } from '../src/util/random.js';
import { npyHeader, parseNpy } from '../src/util/npy.js';
import { makeTempDir } from './helpers/tinyModel.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const vec2: Record<string, number[]> = { a: [1, 0], b: [0.8, 0.6], c: [0, 1], d: [-1, 0] };
const handRows: TestRow[] = [
  { query: 'a', pos: ['b'], neg: ['c'] },
  { query: ' b ', pos: ['a', 'd'], neg: [] },
];

function vectorsFor(pool: string[], table: Record<string, number[]>): Embeddings {
  const dim = Object.values(table)[0]!.length;
  const e = new Embeddings(pool.length, dim);
  pool.forEach((t, i) => e.data.set(table[t]!, i * dim));
  return e;
}

describe('metrics: hand-computed', () => {
  it('scores per (row, pos) pair and applies the self-match allowance', async () => {
    const set = await buildTestSet('hand', handRows, 1000);
    expect(set.pool).toEqual(['a', 'b', 'c', 'd']);
    const m = await computeMetrics(set, vectorsFor(set.pool, vec2));
    // pairs: cos(a,b)=0.8, cos(b,a)=0.8, cos(b,d)=-0.8 -> mean over pairs 0.8/3
    expect(m['positive score']).toBeCloseTo(0.8 / 3, 6);
    expect(m['negative score']).toBeCloseTo(1, 6); // 1 - cos(a, c)
    // (b,d): ranking by cos to d is d, c, b, a -> misses top1 (k grows to 2: d, c), hits top3
    expect(m.top1).toBeCloseTo(2 / 3, 12);
    expect(m.top3).toBe(1);
    expect(m.top5).toBe(1);
    expect(m.top10).toBe(1);
    expect(Object.keys(m)).toEqual(['positive score', 'negative score', 'top1', 'top3', 'top5', 'top10']);
  });

  it('builds the pool from the first `limit` rows but counts top-k pairs over the whole file', async () => {
    const set = await buildTestSet('hand', handRows, 1);
    expect(set.pool).toEqual(['a', 'b', 'c']);
    expect(set.rows.length).toBe(1);
    expect(Array.from(set.pairs)).toEqual([0, 1, 1, 0]); // (b, d) dropped: d is not in the pool
    const m = await computeMetrics(set, vectorsFor(set.pool, vec2));
    expect(m['positive score']).toBeCloseTo(0.8, 6);
    expect(m.top1).toBe(1);
  });

  it("strips strings like Python's str.strip()", async () => {
    const { pyStrip } = await import('../src/eval/strip.js');
    expect(pyStrip('\x1c\t a b \x85\u3000')).toBe('a b');
    expect(pyStrip('\ufeffa\u200b')).toBe('\ufeffa\u200b'); // not whitespace to Python
    expect(pyStrip(' \n ')).toBe('');
  });

  it('isTopKHit: k grows by one only when the positive is inside the top k', () => {
    expect(isTopKHit([5, 9, 2], 9, 5, 1)).toBe(true); // positive first, query second
    expect(isTopKHit([7, 9, 5], 9, 5, 1)).toBe(false);
    expect(isTopKHit([7, 5, 9], 9, 5, 2)).toBe(true);
    expect(isTopKHit([7, 9, 5], 9, 5, 2)).toBe(true);
    expect(isTopKHit([7, 8, 9], 9, 5, 2)).toBe(false);
  });
});

describe('metrics: randomized against a direct computation', () => {
  it('agrees with an O(N²) implementation of the definitions', async () => {
    const rng = new Rng(11);
    const words = Array.from({ length: 70 }, (_, i) => `text ${i}`);
    const pick = (): string => {
      const w = words[rng.int(words.length)]!;
      const r = rng.int(10);
      return r === 0 ? `  ${w}\n` : r === 1 ? '   ' : w; // padding and empty strings too
    };
    const rows: TestRow[] = Array.from({ length: 120 }, () => ({
      query: pick(),
      pos: Array.from({ length: 1 + rng.int(3) }, pick),
      neg: Array.from({ length: rng.int(4) }, pick),
    }));
    const dim = 16;
    const table: Record<string, number[]> = {};
    for (const w of words) table[w] = Array.from({ length: dim }, () => rng.next() * 2 - 1);
    const limit = 60;

    // direct computation
    const pool: string[] = [];
    for (const r of rows.slice(0, limit)) {
      for (const s of [r.query, ...r.pos, ...r.neg]) if (s.trim() && !pool.includes(s.trim())) pool.push(s.trim());
    }
    const cos = (x: string, y: string): number => {
      const a = table[x]!, b = table[y]!;
      let d = 0, na = 0, nb = 0;
      for (let i = 0; i < dim; i++) {
        d += a[i]! * b[i]!;
        na += a[i]! ** 2;
        nb += b[i]! ** 2;
      }
      return d / Math.sqrt(na * nb);
    };
    const posScores: number[] = [];
    const negScores: number[] = [];
    for (const r of rows.slice(0, limit)) {
      const q = r.query.trim();
      if (!pool.includes(q)) continue;
      for (const p of r.pos) if (p.trim()) posScores.push(cos(q, p.trim()));
      for (const n of r.neg) if (n.trim()) negScores.push(1 - cos(q, n.trim()));
    }
    const hits = [0, 0, 0, 0];
    let pairs = 0;
    for (const r of rows) {
      const q = r.query.trim();
      if (!pool.includes(q)) continue;
      for (const p0 of r.pos) {
        const p = p0.trim();
        if (!pool.includes(p)) continue;
        pairs++;
        const ranked = pool.map((t, i) => ({ i, s: cos(p, t) })).sort((x, y) => y.s - x.s || x.i - y.i);
        [1, 3, 5, 10].forEach((k, j) => {
          let top = ranked.slice(0, k).map((x) => pool[x.i]);
          if (top.includes(p)) top = ranked.slice(0, k + 1).map((x) => pool[x.i]);
          if (top.includes(q)) hits[j]!++;
        });
      }
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

    const set = await buildTestSet('random', rows, limit);
    expect(set.pool).toEqual(pool);
    const m = await computeMetrics(set, vectorsFor(set.pool, table));
    expect(pairs).toBeGreaterThan(100);
    expect(m['positive score']).toBeCloseTo(mean(posScores), 6);
    expect(m['negative score']).toBeCloseTo(mean(negScores), 6);
    expect(m.top1).toBeCloseTo(hits[0]! / pairs, 12);
    expect(m.top3).toBeCloseTo(hits[1]! / pairs, 12);
    expect(m.top5).toBeCloseTo(hits[2]! / pairs, 12);
    expect(m.top10).toBeCloseTo(hits[3]! / pairs, 12);
    expect(m.top1).toBeLessThan(m.top10);
  });
});

describe('metrics: bad input', () => {
  const dir = makeTempDir('l2e-metrics-');
  it('names file:line for a row missing a field or with a wrong type', async () => {
    const f = join(dir, 'missing.jsonl');
    writeFileSync(f, '{"query":"a","pos":["b"],"neg":[]}\n\n{"query":"a","neg":[]}\n');
    await expect(readTestSet(f)).rejects.toThrow(`${f}:3: missing "pos"`);
    const g = join(dir, 'type.jsonl');
    writeFileSync(g, '{"query":"a","pos":["b", 3],"neg":[]}\n');
    await expect(readTestSet(g)).rejects.toThrow(`${g}:1: "pos"[1] must be a string`);
    const h = join(dir, 'json.jsonl');
    writeFileSync(h, '{"query":"a","pos":["b"],"neg":[]}\n{"query": \n');
    await expect(readTestSet(h)).rejects.toThrow(`${h}:2: invalid JSON`);
  });

  it('rejects an empty pool, no pairs, and a vector count that does not match the pool', async () => {
    const empty = await buildTestSet('empty', [{ query: ' ', pos: [''], neg: [] }]);
    await expect(computeMetrics(empty, new Embeddings(0, 2))).rejects.toThrow(/pool is empty/);
    const nopos = await buildTestSet('nopos', [{ query: 'a', pos: [], neg: ['c'] }]);
    await expect(computeMetrics(nopos, vectorsFor(nopos.pool, vec2))).rejects.toThrow(/no \(query, pos\) pair/);
    const set = await buildTestSet('hand', handRows);
    await expect(computeMetrics(set, new Embeddings(3, 2))).rejects.toThrow(/3 vectors for a pool of 4/);
  });

  // a row without neg failed inside as "row.neg is not iterable", a null row as "Cannot read properties of null"
  it('buildTestSet refuses a row that is not {query, pos, neg}, naming it', async () => {
    const good = { query: 'a', pos: ['b'], neg: [] };
    await expect(buildTestSet('rows', [good, { query: 'a', pos: ['b'] } as unknown as TestRow])).rejects.toThrow(
      new TypeError('buildTestSet: row 1 of rows: missing "neg", got an object'),
    );
    await expect(buildTestSet('rows', [null as unknown as TestRow])).rejects.toThrow(new TypeError('buildTestSet: row 0 of rows: expected a JSON object, got null'));
  });

  it('reports a null negative score when there are no negatives', async () => {
    const set = await buildTestSet('noneg', [{ query: 'a', pos: ['b'], neg: [] }]);
    const m = await computeMetrics(set, vectorsFor(set.pool, vec2));
    expect(m['negative score']).toBeNull();
    expect(m['positive score']).toBeCloseTo(0.8, 6);
  });
});

// With a real model: the tiny fixture from ../shared (skipped when absent). The eval of a model
// must equal the eval of the same model's vectors written to a file and read back.
const sharedDir = resolve(repoRoot, '../shared');
const tinyModel = join(sharedDir, 'fixtures', 'tiny-mha');
describe.skipIf(!existsSync(join(tinyModel, 'model.safetensors')))('metrics: with the tiny-mha model (../shared fixture)', () => {
  it('gives the same metrics from the model and from its exported vectors', async () => {
    const { openEmbeddingSource, tableSource } = await import('../src/eval/source.js');
    const { evaluateFile } = await import('../src/eval/evaluate.js');
    const { loadVectorTable } = await import('../src/eval/vectors.js');
    const texts = (JSON.parse(readFileSync(join(tinyModel, 'case.json'), 'utf8')) as { tokenizer_cases: { text: string }[] }).tokenizer_cases
      .map((c) => c.text.trim())
      .filter((t, i, all) => t !== '' && all.indexOf(t) === i);
    const n = Math.floor(texts.length / 3);
    const dir = makeTempDir('l2e-metrics-model-');
    const testFile = join(dir, 'tiny-test.jsonl');
    writeFileSync(testFile, Array.from({ length: n }, (_, i) => JSON.stringify({ query: texts[i], pos: [texts[i + n]], neg: [texts[i + 2 * n]] })).join('\n'));

    const source = await openEmbeddingSource({ model: tinyModel, maxLength: 64 });
    let fromModel;
    let pool: string[];
    try {
      fromModel = await evaluateFile(testFile, source);
      pool = (await readTestSet(testFile)).pool;
      const vectors = await source.embed(pool);
      writeFileSync(join(dir, 'emb.jsonl'), pool.map((t, i) => JSON.stringify({ text: t, embedding: Array.from(vectors.row(i)) })).join('\n'));
    } finally {
      source.close();
    }
    expect(fromModel.name).toBe('tiny-test');
    expect(fromModel.poolSize).toBe(3 * n);
    const m = fromModel.metrics;
    for (const v of Object.values(m)) {
      expect(Number.isFinite(v)).toBe(true);
    }
    expect(m['positive score']).toBeGreaterThanOrEqual(-1);
    expect(m['positive score']).toBeLessThanOrEqual(1);
    expect(m.top1).toBeLessThanOrEqual(m.top10);
    const fromFile = await evaluateFile(testFile, tableSource(await loadVectorTable(join(dir, 'emb.jsonl'))));
    expect(fromFile.metrics).toEqual(m);
  });
});

describe('eval: precomputed vectors (.npy / JSONL)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'l2e-vectors-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  function npy(descr: string, shape: [number, number], values: number[], fortran = false): Buffer {
    const width = descr.endsWith('8') ? 8 : 4;
    const body = Buffer.alloc(values.length * width);
    values.forEach((v, i) => (width === 8 ? body.writeDoubleLE(v, i * 8) : body.writeFloatLE(v, i * 4)));
    return Buffer.concat([npyHeader(descr, shape[0], shape[1], fortran), body]);
  }

  it('reads float32 / float64, C and Fortran order, with texts as lines or a JSON array', async () => {
    const { loadVectorTable } = await import('../src/eval/vectors.js');
    expect(Array.from(parseNpy(npy('<f4', [2, 3], [1, 2, 3, 4, 5, 6])).data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(parseNpy(npy('<f8', [2, 3], [1, 4, 2, 5, 3, 6], true)).data)).toEqual([1, 2, 3, 4, 5, 6]);
    writeFileSync(join(dir, 'v.npy'), npy('<f8', [4, 2], [1, 0, 0.8, 0.6, 0, 1, -1, 0]));
    writeFileSync(join(dir, 'texts.txt'), 'a\nb\nc\nd\n');
    writeFileSync(join(dir, 'texts.json'), JSON.stringify(['a', 'b', 'c', 'd']));
    for (const t of ['texts.txt', 'texts.json']) {
      const table = await loadVectorTable(join(dir, 'v.npy'), { textsFile: join(dir, t) });
      const set = await buildTestSet('hand', handRows);
      const m = await computeMetrics(set, table.embeddingsFor(set.pool));
      expect(m['positive score']).toBeCloseTo(0.8 / 3, 6);
    }
  });

  it('names the missing text, the bad row, and malformed files', async () => {
    const { loadVectorTable } = await import('../src/eval/vectors.js');
    writeFileSync(join(dir, 'three.txt'), 'a\nb\nc\n');
    writeFileSync(join(dir, 'v3.npy'), npy('<f4', [3, 2], [1, 0, 0.8, 0.6, 0, 1]));
    const table = await loadVectorTable(join(dir, 'v3.npy'), { textsFile: join(dir, 'three.txt') });
    const set = await buildTestSet('hand', handRows);
    expect(() => table.embeddingsFor(set.pool)).toThrow(/no embedding for the text "d"/);
    writeFileSync(join(dir, 'nan.npy'), npy('<f4', [3, 2], [1, 0, NaN, 0.6, 0, 1]));
    await expect(loadVectorTable(join(dir, 'nan.npy'), { textsFile: join(dir, 'three.txt') })).rejects.toThrow(/row 1 \(text #2 of .*three.txt\) has a non-finite value/);
    await expect(loadVectorTable(join(dir, 'v.npy'), { textsFile: join(dir, 'three.txt') })).rejects.toThrow(/has 4 rows but .*three.txt has 3 texts/);
    await expect(loadVectorTable(join(dir, 'v3.npy'))).rejects.toThrow(/needs --texts/);
    expect(() => parseNpy(npy('>f4', [1, 1], [1]))).toThrow(/not supported/);
    expect(() => parseNpy(Buffer.from('hello world'))).toThrow(/not a .npy/);
    expect(() => parseNpy(npy('<f4', [2, 2], [1, 2, 3]))).toThrow(/truncated/);
    const jsonl = join(dir, 'inf.jsonl');
    writeFileSync(jsonl, '{"text":"a","embedding":[1,0]}\n{"text":"b","embedding":[1e999,0]}\n');
    await expect(loadVectorTable(jsonl)).rejects.toThrow(`${jsonl}:2: embedding[0] is not a finite float32`);
  });
});
