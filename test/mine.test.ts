// Pair mining: thresholds in both metrics, self / short-text exclusion, sampling bounds and
// determinism, multi-field versions as positives, skip counts, end to end through a file of
// precomputed embeddings, and bad input.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { Embeddings } from '../src/model/embeddings.js';
import { LineError, type PairRow } from '../src/data/jsonl.js';
import { atItsLine, TextError } from '../src/model/text-error.js';
import { readCorpus, type Corpus } from '../src/mine/corpus.js';
import { distance, minePairs, type MineOptions } from '../src/mine/mine.js';
import { corpusNeighbourStats, mineToFile } from '../src/mine/run.js';
import type { EmbeddingSource } from '../src/eval/source.js';
import { FileStore } from '../src/mine/store.js';
import { loadVectorTable } from '../src/eval/vectors.js';
import { tableSource } from '../src/eval/source.js';
import { makeTempDir } from './helpers/tinyModel.js';

// 20 texts on the unit circle 0.1 rad apart: |i-j| <= 4 is within 0.45 (Euclidean), |i-j| >= 9 beyond 0.8.
// Plus "x" (one character, next to t0) and "lonely" (opposite side: no positive).
const angles: [string, number][] = [...Array.from({ length: 20 }, (_, i) => [`t${i}`, i * 0.1] as [string, number]), ['x', 0.02], ['lonely', Math.PI]];
const corpus: Corpus = { texts: angles.map(([t]) => t), groups: [], rows: angles.length };
const vectors = new Embeddings(angles.length, 2, Float32Array.from(angles.flatMap(([, a]) => [Math.cos(a), Math.sin(a)])));
const idx = (t: string): number => corpus.texts.indexOf(t);

async function mine(opts: MineOptions, c: Corpus = corpus, v: Embeddings = vectors) {
  const rows: PairRow[] = [];
  const stats = await minePairs(c, v, opts, (r) => {
    rows.push(r);
  });
  return { rows, stats };
}

describe('mine', () => {
  for (const [metric, X, Y] of [['euclidean', 0.45, 0.8], ['cosine', 0.1, 0.32]] as const) {
    it(`keeps positives within ${X} and negatives beyond ${Y} (${metric})`, async () => {
      const { rows, stats } = await mine({ posThreshold: X, negThreshold: Y, metric, maxPos: 3, maxNeg: 2 });
      expect(stats).toMatchObject({ queries: 22, written: 20, skippedNoPos: 1, skippedNoNeg: 0, skippedShort: 1 });
      for (const r of rows) {
        const q = idx(r.query);
        const eligiblePos = corpus.texts.filter((t, j) => /^t/.test(t) && j !== q && Math.abs(j - q) <= 4);
        const eligibleNeg = corpus.texts.filter((t, j) => t !== r.query && t !== 'x' && (t === 'lonely' || Math.abs(j - q) >= 9));
        expect(r.pos.length).toBe(Math.min(3, eligiblePos.length));
        expect(r.neg.length).toBe(Math.min(2, eligibleNeg.length));
        expect(new Set(r.pos).size).toBe(r.pos.length);
        for (const p of r.pos) {
          expect(eligiblePos).toContain(p);
          expect(distance(vectors.row(q), vectors.row(idx(p)), metric)).toBeLessThanOrEqual(X);
        }
        for (const n of r.neg) {
          expect(eligibleNeg).toContain(n);
          expect(distance(vectors.row(q), vectors.row(idx(n)), metric)).toBeGreaterThan(Y);
        }
        expect(r.pos).not.toContain('x'); // length <= 1 is never a candidate
      }
    });
  }

  it('is deterministic for a seed and varies with it', async () => {
    const opts = { posThreshold: 0.45, negThreshold: 0.8, maxPos: 2, maxNeg: 2, seed: 3 };
    const a = await mine(opts);
    const b = await mine({ ...opts, queryBlock: 5 }); // block size does not matter
    const c = await mine({ ...opts, seed: 4 });
    expect(b.rows).toEqual(a.rows);
    expect(c.rows).not.toEqual(a.rows);
  });

  it('counts rows without negatives when k is too small to reach beyond the threshold', async () => {
    const { stats } = await mine({ posThreshold: 0.45, negThreshold: 0.8, k: 3 });
    expect(stats.written).toBe(0);
    expect(stats.skippedNoNeg).toBe(20);
    expect(stats.skippedNoPos).toBe(1);
  });

  it('examines k neighbours when vectors tie exactly (the query is then not among its own k+1 nearest)', async () => {
    const texts = ['alpha', 'beta', 'gamma', 'delta', 'eta'];
    const v = new Embeddings(5, 2, Float32Array.from([1, 0, 1, 0, 1, 0, 1, 0, -1, 0]));
    const { rows } = await mine({ posThreshold: 0.1, negThreshold: 0.5, k: 2, maxPos: 10, randomNegatives: true }, { texts, groups: [], rows: 5 }, v);
    expect(rows.find((r) => r.query === 'delta')!.pos.sort()).toEqual(['alpha', 'beta']); // (sampled: any order)
  });

  it('random negatives top rows up beyond the threshold', async () => {
    const { rows, stats } = await mine({ posThreshold: 0.45, negThreshold: 0.8, k: 3, maxNeg: 2, randomNegatives: true });
    expect(stats.written).toBe(20);
    for (const r of rows) {
      expect(r.neg.length).toBeGreaterThan(0);
      for (const n of r.neg) expect(distance(vectors.row(idx(r.query)), vectors.row(idx(n)), 'euclidean')).toBeGreaterThan(0.8);
    }
  });

  it('makes the versions of a multi-field row mutual positives, never negatives', async () => {
    const c: Corpus = { ...corpus, groups: [[idx('t0'), idx('t15')]] };
    const { rows } = await mine({ posThreshold: 0.45, negThreshold: 0.8, maxPos: 6, maxNeg: 20 }, c);
    const r0 = rows.find((r) => r.query === 't0')!;
    const r15 = rows.find((r) => r.query === 't15')!;
    expect(r0.pos).toContain('t15');
    expect(r0.neg).not.toContain('t15');
    expect(r15.pos).toContain('t0');
    expect(r15.neg).not.toContain('t0');
    expect(rows.find((r) => r.query === 't5')!.pos).not.toContain('t15');
  });

  it('rejects pos-threshold above neg-threshold, an empty corpus and mismatched vectors', async () => {
    await expect(mine({ posThreshold: 0.9, negThreshold: 0.8 })).rejects.toThrow(/above negThreshold/);
    await expect(mine({ posThreshold: 0.9, negThreshold: 0.8, metric: 'cosine' })).rejects.toThrow(/cosine distances/);
    await expect(mine({ posThreshold: 0.1, negThreshold: 0.8 }, { texts: [], groups: [], rows: 0 }, new Embeddings(0, 2))).rejects.toThrow('the corpus is empty');
    await expect(mine({ posThreshold: 0.1, negThreshold: 0.8 }, corpus, new Embeddings(3, 2))).rejects.toThrow(/3 vectors for 22 texts/);
  });

  // { texts } alone failed as "corpus.groups is not iterable", a Float32Array as "undefined vectors for 3 texts"
  it('a corpus or vectors of the wrong kind are refused naming them', async () => {
    const opts = { posThreshold: 0.1, negThreshold: 0.8 };
    await expect(minePairs({ texts: ['a', 'b'] } as unknown as Corpus, new Embeddings(2, 2), opts, () => {})).rejects.toThrow(
      new TypeError('minePairs: corpus must be a Corpus ({ texts, groups, rows }: readCorpus), got an object'),
    );
    await expect(minePairs({ texts: ['a', 'b'], groups: [], rows: 2 }, new Float32Array(4) as unknown as Embeddings, opts, () => {})).rejects.toThrow(
      new TypeError('minePairs: vectors must be Embeddings (model.encode) or a VectorStore, got a Float32Array'),
    );
  });

  it('a threshold that is not a distance names its option and what it got', async () => {
    // '0.3' showed as 0.3 in "thresholds must be non-negative numbers (got pos 0.3, neg 0.8)"
    await expect(mine({ posThreshold: '0.3' as unknown as number, negThreshold: 0.8 })).rejects.toThrow(
      new TypeError('posThreshold must be a distance (a non-negative number), got the string "0.3"'),
    );
    await expect(mine({ posThreshold: 0.1, negThreshold: -1 })).rejects.toThrow(new RangeError('negThreshold must be a non-negative distance, got -1'));
    await expect(mine({ posThreshold: 0.1, negThreshold: NaN })).rejects.toThrow(new RangeError('negThreshold must be a non-negative distance, got NaN'));
    const run = { input: join(makeTempDir(), 'corpus.txt'), output: join(makeTempDir(), 'pairs.jsonl') };
    const source = (): Promise<never> => Promise.reject(new Error('the thresholds are checked before any source opens'));
    await expect(mineToFile(source, { ...run, posThreshold: { percentile: 5 }, negThreshold: { pct: 50 } as unknown as number })).rejects.toThrow(
      new TypeError('negThreshold must be a distance (a non-negative number) or { percentile } from 0 to 100, got an object'),
    );
  });
});

describe('mine: files', () => {
  const dir = makeTempDir('l2e-mine-');
  const embFile = join(dir, 'emb.jsonl');
  writeFileSync(embFile, angles.map(([t, a]) => JSON.stringify({ text: t, embedding: [Math.cos(a), Math.sin(a)] })).join('\n') + '\n');

  it('mines a JSONL corpus with fields end to end, the same for the same seed', async () => {
    const input = join(dir, 'corpus.jsonl');
    const lines = angles.map(([t]) => ({ left: t, en: t === 't0' ? 't15' : null }));
    writeFileSync(input, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const c = await readCorpus(input, ['left', 'en']);
    expect(c.texts.length).toBe(22);
    expect(c.texts.slice(0, 3)).toEqual(['t0', 't15', 't1']); // order of first appearance
    expect(c.groups).toEqual([[0, 1]]);
    const source = tableSource(await loadVectorTable(embFile));
    const out1 = join(dir, 'pairs1.jsonl'), out2 = join(dir, 'pairs2.jsonl');
    const opts = { input, fields: ['left', 'en'], posThreshold: 0.45, negThreshold: 0.8, maxPos: 2, seed: 1 };
    const r1 = await mineToFile(source, { ...opts, output: out1 });
    await mineToFile(source, { ...opts, output: out2 });
    expect(r1.written).toBe(20);
    const text = readFileSync(out1, 'utf8');
    expect(readFileSync(out2, 'utf8')).toBe(text);
    const rows = text.trim().split('\n').map((l) => JSON.parse(l) as PairRow);
    expect(rows.find((r) => r.query === 't0')!.pos).toContain('t15');
  });

  // the model's TextError counts from the start of the block it was given (blocks of 4096 texts), and
  // the CLI said texts[i], not the file's line
  it("a text the model refuses is named by its line in the corpus, in any block", async () => {
    const input = join(dir, 'refused.txt');
    writeFileSync(input, 'satu\n\ndua\nsatu\ntiga\nempat\nlima\n'); // texts: satu dua tiga empat lima
    const refusing = {
      embed: async (texts: string[]) => {
        const at = texts.indexOf('lima');
        if (at >= 0) throw new TextError('tokenizer', 'too long', at);
        return new Embeddings(texts.length, 2);
      },
      close: () => {},
    };
    const run = { input, output: join(dir, 'refused.jsonl'), posThreshold: 0.1, negThreshold: 0.5, encodeBlock: 2 };
    await expect(mineToFile(refusing, run)).rejects.toThrow(new LineError(input, 7, 'too long'));
    await expect(mineToFile(refusing, { ...run, encodeBlock: 4096 })).rejects.toThrow(new LineError(input, 7, 'too long'));
  });

  // a misspelt field among several was in no row: every row quietly lacked that version, and mining
  // went on without the groups it was asked for
  it('a field in no row of the corpus is an error naming it (one in some rows is a version those rows lack)', async () => {
    const input = join(dir, 'fields.jsonl');
    writeFileSync(input, '{"text":"satu","ms":"one"}\n{"text":"dua"}\n');
    await expect(readCorpus(input, ['text', 'nope'])).rejects.toThrow(`${input}: no row has the field "nope" (of text, nope)`);
    await expect(readCorpus(input, ['nope', 'nada'])).rejects.toThrow(`${input}: no row has the fields "nope", "nada" (of nope, nada)`);
    expect((await readCorpus(input, ['text', 'ms'])).groups).toEqual([[0, 1]]);
  });

  it('an output that appears while mining is kept and the pairs go to <output>.new; with overwrite it is replaced', async () => {
    const input = join(dir, 'raced-corpus.txt');
    writeFileSync(input, angles.map(([t]) => t).join('\n') + '\n');
    const source = tableSource(await loadVectorTable(embFile));
    const out = join(dir, 'raced.jsonl'), ref = join(dir, 'raced-ref.jsonl');
    const opts = { input, posThreshold: 0.45, negThreshold: 0.8, maxPos: 2, seed: 1 };
    await mineToFile(source, { ...opts, output: ref });
    const appear = (stage: string, done: number, total: number): void => {
      if (stage === 'mine' && done === total) writeFileSync(out, 'theirs\n'); // after the check, before the publish
    };
    await expect(mineToFile(source, { ...opts, output: out, onStage: appear })).rejects.toThrow(
      `could not write ${out}: a file of that name appeared while this ran and was kept; the output is in ${out}.new`,
    );
    expect(readFileSync(out, 'utf8')).toBe('theirs\n');
    expect(readFileSync(`${out}.new`, 'utf8')).toBe(readFileSync(ref, 'utf8'));
    await mineToFile(source, { ...opts, output: out, overwrite: true, onStage: appear });
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(ref, 'utf8'));
  });

  it('reads plain text and .json pools', async () => {
    const plain = join(dir, 'plain.txt');
    writeFileSync(plain, 'satu\n dua \n\nsatu\ntiga');
    expect((await readCorpus(plain)).texts).toEqual(['satu', 'dua', 'tiga']);
    const pool = join(dir, 'pool.json');
    writeFileSync(pool, JSON.stringify({ 'a b': 0, 'c d': 1 }));
    expect((await readCorpus(pool)).texts).toEqual(['a b', 'c d']);
    writeFileSync(pool, '\ufeff' + JSON.stringify(['e f', 'g h'])); // a UTF-8 BOM, as editors on Windows write
    expect((await readCorpus(pool)).texts).toEqual(['e f', 'g h']);
    // a library caller has an argument, not the CLI's --format
    const unnamed = join(dir, 'pool.dat');
    writeFileSync(unnamed, 'satu\n');
    await expect(readCorpus(unnamed)).rejects.toThrow(
      new Error(`cannot tell the format of ${unnamed} from its name: use .jsonl, .txt or .json, or give readCorpus's format argument text|jsonl|json`),
    );
    expect((await readCorpus(unnamed, ['text'], 'text')).texts).toEqual(['satu']);
    // a .json corpus has no lines to name: a text's place in its array, or its key's in the object
    writeFileSync(pool, JSON.stringify(['satu', 'dua', ' satu ', 'tiga']));
    const tooLong = new TextError('tokenizer', 'more than 65536 characters', 2); // texts[2] is 'tiga'
    expect(atItsLine(tooLong, await readCorpus(pool))).toEqual(new Error(`${pool}: element [3] of the array: more than 65536 characters`));
    writeFileSync(pool, JSON.stringify({ satu: 1, dua: 2, tiga: 3 }));
    expect(atItsLine(tooLong, await readCorpus(pool))).toEqual(new Error(`${pool}: key 3 of the object: more than 65536 characters`));
    // nor one of mineToFile or corpusNeighbourStats (they said the CLI's --format)
    const never = {} as EmbeddingSource; // the name is refused before any text is embedded
    await expect(corpusNeighbourStats(never, { input: unnamed })).rejects.toThrow(
      new Error(`cannot tell the format of ${unnamed} from its name: use .jsonl, .txt or .json, or give format text|jsonl|json`),
    );
  });

  it('a .json pool with bytes that are not UTF-8 is warned about as a .txt is (it was read silently)', async () => {
    const pool = join(dir, 'latin1.json');
    writeFileSync(pool, Buffer.concat([Buffer.from('[\n"ok",\n"caf'), Buffer.from([0xe9]), Buffer.from('"\n]\n')]));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect((await readCorpus(pool)).texts).toEqual(['ok', 'caf\ufffd']);
      expect(err.mock.calls.map((c) => String(c[0]))).toEqual([
        `llama2-embedding: ${pool}: 1 line has bytes that are not UTF-8, read as U+FFFD (the first: ${pool}:3)\n`,
      ]);
    } finally {
      err.mockRestore();
    }
  });

  it('errors on a text without a vector, bad vectors, and bad thresholds before writing', async () => {
    const input = join(dir, 'extra.txt');
    writeFileSync(input, 't1\nt2\nnot embedded\n');
    const out = join(dir, 'never.jsonl');
    const source = tableSource(await loadVectorTable(embFile));
    await expect(mineToFile(source, { input, output: out, posThreshold: 0.4, negThreshold: 0.8 })).rejects.toThrow(/no embedding for the text "not embedded"/);
    await expect(mineToFile(source, { input, output: out, posThreshold: 0.9, negThreshold: 0.8 })).rejects.toThrow(
      'posThreshold 0.9 is above negThreshold 0.8: positives (distance ≤ pos) and negatives (distance > neg) would overlap; both are Euclidean distances',
    );
    expect(existsSync(out)).toBe(false);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"text":"a","embedding":[1,0]}\n{"text":"b","embedding":[1]}\n');
    await expect(loadVectorTable(bad)).rejects.toThrow(`${bad}:2: embedding has 1 values, expected 2`);
    writeFileSync(bad, '{"text":"a","embedding":[1,0]}\n{"text":"b","embedding":[1e39, 0]}\n');
    await expect(loadVectorTable(bad)).rejects.toThrow(`${bad}:2: embedding[0] is not a finite float32`);
    writeFileSync(bad, '{"text":"a","embedding":[1,null]}\n');
    await expect(loadVectorTable(bad)).rejects.toThrow(`${bad}:1: embedding[1] is not a finite float32 (null)`);
    writeFileSync(bad, '{"text":"a","embedding":[1,1e999]}\n');
    await expect(loadVectorTable(bad)).rejects.toThrow(`${bad}:1: embedding[1] is not a finite float32 (Infinity)`);
  });

  // the first vector of a text given twice was used, whatever the second said
  it('a text given twice with two different vectors is an error naming both lines; twice alike, or once stripped, is fine', async () => {
    const file = join(dir, 'twice.jsonl');
    writeFileSync(file, '{"text":"a","embedding":[1,0]}\n{"text":"b","embedding":[0,1]}\n{"text":"a","embedding":[0,1]}\n');
    await expect(loadVectorTable(file)).rejects.toThrow(`${file}: the text "a" has two different embeddings, at line 1 and at line 3`);
    writeFileSync(file, '{"text":"a","embedding":[1,0]}\n{"text":"a","embedding":[1,0]}\n');
    expect(Array.from((await loadVectorTable(file)).embeddingsFor(['a']).data)).toEqual([1, 0]);
    // " a" and "a" strip alike: the row given as it is looked up ("a") is the one used, wherever it is
    writeFileSync(file, '{"text":" a","embedding":[0,1]}\n{"text":"a","embedding":[1,0]}\n');
    expect(Array.from((await loadVectorTable(file)).embeddingsFor(['a']).data)).toEqual([1, 0]);
  });
});

// With a real model: the tiny fixture from ../shared (skipped when absent).
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tinyModel = join(resolve(repoRoot, '../shared'), 'fixtures', 'tiny-mha');
describe.skipIf(!existsSync(join(tinyModel, 'model.safetensors')))('mine: with the tiny-mha model (../shared fixture)', () => {
  it('mines with the thresholds it was given, reproducibly', async () => {
    const { openEmbeddingSource } = await import('../src/eval/source.js');
    const dir = makeTempDir('l2e-mine-model-');
    const texts = (JSON.parse(readFileSync(join(tinyModel, 'case.json'), 'utf8')) as { tokenizer_cases: { text: string }[] }).tokenizer_cases
      .map((c) => c.text.trim())
      .filter((t, i, all) => t.length > 1 && all.indexOf(t) === i);
    const input = join(dir, 'corpus.jsonl'); // JSONL: some texts hold newlines
    writeFileSync(input, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const source = await openEmbeddingSource({ model: tinyModel, maxLength: 64 });
    try {
      const vecs = await source.embed(texts);
      // thresholds from the distance distribution of this random model: 5% and 50% quantiles
      const d: number[] = [];
      for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) d.push(distance(vecs.row(i), vecs.row(j), 'cosine'));
      d.sort((a, b) => a - b);
      const X = d[Math.floor(d.length * 0.05)]!, Y = d[Math.floor(d.length * 0.5)]!;
      const opts = { input, posThreshold: X, negThreshold: Y, metric: 'cosine' as const, k: 60, seed: 7, encodeBlock: 50 };
      const r = await mineToFile(source, { ...opts, output: join(dir, 'a.jsonl') });
      await mineToFile(source, { ...opts, output: join(dir, 'b.jsonl') });
      expect(r.written).toBeGreaterThan(0);
      expect(r.written + r.skippedNoPos + r.skippedNoNeg + r.skippedShort).toBe(texts.length);
      const out = readFileSync(join(dir, 'a.jsonl'), 'utf8');
      expect(readFileSync(join(dir, 'b.jsonl'), 'utf8')).toBe(out);
      const at = new Map(texts.map((t, i) => [t, i]));
      for (const row of out.trim().split('\n').map((l) => JSON.parse(l) as PairRow)) {
        const q = vecs.row(at.get(row.query)!);
        for (const p of row.pos) expect(distance(q, vecs.row(at.get(p)!), 'cosine')).toBeLessThanOrEqual(X + 1e-5);
        for (const n of row.neg) expect(distance(q, vecs.row(at.get(n)!), 'cosine')).toBeGreaterThan(Y - 1e-5);
        expect(row.pos.length).toBeLessThanOrEqual(6);
        expect(row.neg.length).toBeLessThanOrEqual(5);
      }
    } finally {
      source.close();
    }
  });
});

describe('mine with vectors larger than the memory budget', () => {
  // 400 texts of 2048-wide vectors (3.2 MB) against a 1 MiB budget: the vectors go to a temp file,
  // the pool is searched in blocks of 64 rows and the running top k merged across blocks.
  const n = 400;
  const dim = 2048;
  const texts = Array.from({ length: n }, (_, i) => `text ${i}`);
  const big: Corpus = { texts, groups: [], rows: n };
  // clusters of 8 nearby unit vectors (so there are positives), plus exact duplicates for ties
  const data = new Float32Array(n * dim);
  let s = 7;
  const rand = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const centres = Array.from({ length: n / 8 }, () => Float32Array.from({ length: dim }, rand));
  for (let i = 0; i < n; i++) {
    const c = centres[Math.floor(i / 8)]!;
    let norm = 0;
    for (let d = 0; d < dim; d++) {
      const v = i % 8 === 7 ? data[(i - 1) * dim + d]! : c[d]! + 0.3 * rand(); // every 8th duplicates its neighbour
      data[i * dim + d] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    if (i % 8 !== 7) for (let d = 0; d < dim; d++) data[i * dim + d] /= norm;
  }
  const inMemory = new Embeddings(n, dim, data);

  for (const metric of ['euclidean', 'cosine'] as const) {
    it(`gives exactly the in-memory result (${metric})`, async () => {
      const opts: MineOptions = metric === 'euclidean'
        ? { posThreshold: 0.45, negThreshold: 0.8, metric, k: 20, maxPos: 3, maxNeg: 3, seed: 5 }
        : { posThreshold: 0.1, negThreshold: 0.32, metric, k: 20, maxPos: 3, maxNeg: 3, seed: 5 };
      const expected = await mine(opts, big, inMemory);
      expect(expected.stats.written).toBeGreaterThan(n / 2);
      const store = new FileStore(n, dim);
      try {
        for (let i = 0; i < n; i += 150) store.append(new Embeddings(Math.min(150, n - i), dim, data.subarray(i * dim, Math.min(n, i + 150) * dim)));
        const rows: PairRow[] = [];
        const stats = await minePairs(big, store, { ...opts, memoryMb: 1, queryBlock: 100 }, (r) => {
          rows.push(r);
        });
        expect(stats).toEqual(expected.stats);
        expect(rows).toEqual(expected.rows);
      } finally {
        store.close();
      }
    });
  }

  it('mineToFile keeps the vectors in a temp file past the budget and writes the same pairs', async () => {
    const dir = makeTempDir('l2e-mine-big-');
    const input = join(dir, 'corpus.txt');
    writeFileSync(input, texts.join('\n') + '\n');
    const byText = new Map(texts.map((t, i) => [t, i]));
    const source = {
      dim,
      async embed(batch: string[]): Promise<Embeddings> {
        const out = new Embeddings(batch.length, dim);
        batch.forEach((t, r) => out.data.set(inMemory.row(byText.get(t)!), r * dim));
        return out;
      },
      close(): void {},
    };
    const opts = { input, posThreshold: 0.45, negThreshold: 0.8, k: 20, seed: 5, encodeBlock: 64 };
    await mineToFile(source, { ...opts, output: join(dir, 'a.jsonl'), memoryMb: 1 });
    await mineToFile(source, { ...opts, output: join(dir, 'b.jsonl'), memoryMb: 4096 });
    const a = readFileSync(join(dir, 'a.jsonl'), 'utf8');
    expect(a.length).toBeGreaterThan(100);
    expect(a).toBe(readFileSync(join(dir, 'b.jsonl'), 'utf8'));
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('l2e-mine-store-'))).toEqual([]); // temp files removed
  });
});
