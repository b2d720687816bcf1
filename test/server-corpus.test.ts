// The search corpus: embedded at start through the batcher (progress lines), saved to and read back
// from a .npy of its vectors, a mismatched .npy refused with a clear error (before listening where no
// model is needed), POST /search's answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EmbeddingModel } from '../src/model/embedding-model.js';
import { cosine } from '../src/eval/knn.js';
import { CorpusVectorsError } from '../src/server/corpus.js';
import { serve } from '../src/server/server.js';
import { npyBytes, npyHeader } from '../src/util/npy.js';
import { hasTokenizer, getText, metricValue, postJson, serveOn, tinyModel, type OpenAIError } from './helpers/server.js';
import { makeTempDir, removeTempDirs } from './helpers/tinyModel.js';
import { skipNote } from './helpers/fixture.js';

const CORPUS = Array.from({ length: 150 }, (_, i) => `ayat nombor ${i} tentang ${['kucing', 'kereta', 'nasi', 'hujan', 'buku'][i % 5]}`);

describe.skipIf(!hasTokenizer)(`search corpus ${hasTokenizer ? '' : skipNote('the shared tokenizer')}`, () => {
  let model: EmbeddingModel;
  beforeAll(async () => {
    model = await tinyModel();
  });
  afterAll(() => {
    model?.dispose();
    removeTempDirs();
  });

  it('embeds the corpus with progress, saves its vectors, and a second start reads them back', async () => {
    const file = join(makeTempDir(), 'corpus.npy');
    const log: string[] = [];
    const a = await serveOn(model, { corpus: CORPUS, corpusVectors: file, onLog: (l) => log.push(l) });
    let first: { results: { index: number; text: string; score: number }[] };
    try {
      await a.handle.corpusReady;
      expect(log[0]).toBe('corpus: embedded 64/150 texts');
      expect(log.at(-1)).toBe('corpus: embedded 150/150 texts');
      expect(existsSync(file)).toBe(true);
      const r = await postJson<typeof first>(`${a.url}/search`, { query: CORPUS[7], k: 3 });
      expect(r.status).toBe(200);
      first = r.body;
      const want = await model.encode(CORPUS);
      expect(first.results[0]).toMatchObject({ index: 7, text: CORPUS[7] });
      for (const hit of first.results) expect(Math.abs(hit.score - cosine(want.row(7), want.row(hit.index)))).toBeLessThan(1e-5);
      expect(first.results[1]!.score).toBeLessThanOrEqual(first.results[0]!.score);
    } finally {
      await a.handle.close();
    }
    expect(JSON.parse(readFileSync(`${file}.json`, 'utf8'))).toMatchObject({ format: 'l2e-corpus-vectors-1', rows: 150, dim: model.dim });
    const logB: string[] = [];
    const b = await serveOn(model, { corpus: CORPUS, corpusVectors: file, onLog: (l) => logB.push(l) });
    try {
      await b.handle.corpusReady;
      expect(logB).toContain(`corpus: read 150 vectors from ${file} (8 of them checked against the model)`);
      // nothing embedded through the server's queue: the 8 rows of the check were, by the model, before ready
      expect(metricValue(await getText(`${b.url}/metrics`), 'l2e_texts_total')).toBe(0);
      const r = await postJson<typeof first>(`${b.url}/search`, { query: CORPUS[7], k: 3 });
      expect(r.body).toEqual(first);
    } finally {
      await b.handle.close();
    }
  });

  // 64 texts were one submission: long ones took the whole request queue while the corpus was embedded,
  // and 64 texts of more tokens than the queue holds waited for room forever
  it('the corpus goes to the batcher in parts of at most maxBatchTokens tokens, with the same vectors', async () => {
    const s = await serveOn(model, { corpus: CORPUS, maxBatchTokens: 40, maxQueueTokens: 64, maxLength: 32 });
    try {
      await s.handle.corpusReady; // 64 texts of ~12 tokens: more than the queue's 64
      expect(metricValue(await getText(`${s.url}/metrics`), 'l2e_texts_total')).toBe(150);
      const r = await postJson<{ results: { index: number; score: number }[] }>(`${s.url}/search`, { query: CORPUS[7], k: 3 });
      const want = await model.encode(CORPUS);
      expect(r.body.results[0]!.index).toBe(7);
      for (const hit of r.body.results) expect(Math.abs(hit.score - cosine(want.row(7), want.row(hit.index)))).toBeLessThan(1e-5);
    } finally {
      await s.handle.close();
    }
  });

  // A vectors file that could not be the corpus's used to be found out only after the server listened
  // and said it was ready: what needs no model is now checked before it listens, the width at load.
  it('a vectors file that cannot be read, is not a .npy or has not one row per text is refused before listening, naming it', async () => {
    const dir = makeTempDir();
    const refused = async (file: string, message: string): Promise<void> => {
      const started = serve(model, { port: 0, corpus: CORPUS, corpusVectors: file });
      const err = await started.then(async (h) => void (await h.close()), (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe(message);
      expect(err).toBeInstanceOf(CorpusVectorsError);
    };
    const rows = join(dir, 'rows.npy');
    writeFileSync(rows, Buffer.concat(npyBytes(new Float32Array(4 * 16), 4, 16)));
    await refused(rows, `${rows} holds 4x16 vectors but the corpus has 150 texts: expected 150 rows, one per text`);
    const junk = join(dir, 'junk.npy');
    writeFileSync(junk, 'not a matrix');
    await refused(junk, `${junk}: not a .npy file`);
    const ints = join(dir, 'ints.npy');
    writeFileSync(ints, Buffer.concat([npyHeader('<i4', 150, 16), new Uint8Array(150 * 16 * 4)]));
    await refused(ints, `${ints}: dtype <i4 is not supported (use little-endian float32 '<f4' or float64 '<f8')`);
    const folder = join(dir, 'folder.npy');
    mkdirSync(folder);
    await refused(folder, `${folder} cannot be read: EISDIR: illegal operation on a directory, read`);
    // a row of NaN passed when not among the rows checked, and every search then failed
    const nan = join(dir, 'nan.npy');
    const data = new Float32Array(150 * 16).fill(0.25);
    data[5 * 16 + 3] = NaN;
    writeFileSync(nan, Buffer.concat(npyBytes(data, 150, 16)));
    await refused(nan, `${nan}: row 5 has a non-finite value (NaN at index 3); remove it to embed the corpus again`);
    // a folder that cannot take the file: said before the corpus is embedded, not after
    const nowhere = join(dir, 'no', 'such', 'v.npy');
    await refused(nowhere, `${nowhere}: the corpus vectors could not be saved there: the folder ${join(dir, 'no', 'such')} does not exist`);
    // FILE.json that is not the server's record: the corpus itself was replaced by it, a damaged one skipped
    const texts = join(dir, 'texts.json');
    writeFileSync(texts, JSON.stringify(['a', 'b']));
    const why = (file: string, what: string): string =>
      `${file}.json: ${what}; the server reads and writes that name: move it away, or give --corpus-vectors another name`;
    await refused(join(dir, 'texts'), why(join(dir, 'texts'), `it is not the record of corpus vectors that the server writes beside ${join(dir, 'texts')} (format l2e-corpus-vectors-1)`));
    expect(readFileSync(texts, 'utf8')).toBe('["a","b"]');
    writeFileSync(`${rows}.json`, '{"format":"l2e-corpus-vectors-1",');
    const damaged = await serve(model, { port: 0, corpus: CORPUS, corpusVectors: rows }).then(async (h) => void (await h.close()), (e: unknown) => e);
    expect(damaged).toBeInstanceOf(CorpusVectorsError);
    const [head, tail] = why(rows, `it cannot be read as the record the server writes beside ${rows}: ~`).split('~');
    expect((damaged as Error).message.startsWith(head!) && (damaged as Error).message.endsWith(tail!)).toBe(true); // (JSON.parse's words vary by Node)
  });

  it("a vectors file of another width than the model's rejects ready, naming it; /health and /search say why", async () => {
    const file = join(makeTempDir(), 'narrow.npy');
    writeFileSync(file, Buffer.concat(npyBytes(new Float32Array(150 * 8), 150, 8)));
    const handle = await serve(model, { port: 0, corpus: CORPUS, corpusVectors: file });
    try {
      const msg = `${file} holds 150x8 vectors but the model's embeddings have 16 dims: expected 150x16`;
      const err = await handle.ready.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toBe(msg);
      expect(err).toBeInstanceOf(CorpusVectorsError);
      await expect(handle.corpusReady).rejects.toBe(err);
      const health = await fetch(`${handle.url}/health`);
      expect([health.status, await health.json()]).toEqual([500, { status: 'failed', error: msg }]);
      const r = await postJson<OpenAIError>(`${handle.url}/search`, { query: 'x' });
      expect([r.status, r.body.error.code, r.body.error.message]).toEqual([500, 'corpus_vectors_failed', `the search corpus's vectors file does not fit the model: ${msg}`]);
    } finally {
      await handle.close();
    }
  });

  // A vectors file of the right shape but not this corpus's (other texts, or another model's vectors)
  // gave wrong search results without a word: ours is refused by its fingerprint (FILE.json), any
  // file by the rows embedded again at start, both before ready; a file of the right vectors without
  // one is used.
  it('a vectors file of other texts or another model rejects ready; the right vectors without a fingerprint are used', async () => {
    const dir = makeTempDir();
    const refused = async (corpus: string[], file: string, message: string | RegExp): Promise<void> => {
      const handle = await serve(model, { port: 0, corpus, corpusVectors: file });
      try {
        const err = await handle.ready.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(CorpusVectorsError);
        if (typeof message === 'string') expect((err as Error).message).toBe(message);
        else expect((err as Error).message).toMatch(message);
        await expect(handle.corpusReady).rejects.toBe(err);
        // every route says why the server cannot serve
        const r = await postJson<OpenAIError>(`${handle.url}/search`, { query: 'x' });
        expect([r.status, r.body.error.code]).toEqual([500, 'corpus_vectors_failed']);
        expect(r.body.error.message).toBe(`the search corpus's vectors file does not fit the model: ${(err as Error).message}`);
      } finally {
        await handle.close();
      }
    };
    // ours, written for CORPUS, then started with as many other texts
    const ours = join(dir, 'ours.npy');
    const a = await serveOn(model, { corpus: CORPUS, corpusVectors: ours });
    await a.handle.corpusReady;
    await a.handle.close();
    const other = CORPUS.map((t) => `${t} lagi`);
    await refused(other, ours, `${ours} holds the vectors of other texts (${ours}.json says what it was made from); remove both to embed this corpus again`);
    // the same texts cut at another token limit: said as that
    const cut = await serve(model, { port: 0, corpus: CORPUS, corpusVectors: ours, maxLength: 64 });
    try {
      await expect(cut.ready).rejects.toThrow(
        `${ours} holds the vectors of texts cut at 512 tokens (${ours}.json says so), and this server cuts at 64 (--max-length): ` +
          'serve with --max-length 512, or remove both to embed the corpus again',
      );
    } finally {
      await cut.close();
    }
    // without the fingerprint: the sample of rows embedded again finds them another corpus's
    rmSync(`${ours}.json`);
    await refused(other, ours, new RegExp(`^${ours.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not hold this model's vectors of the corpus: row 0 \\("ayat nombor 0 tentang kucing lagi"\\) is at cosine 0\\.\\d{4} to its embedding now; remove it to embed the corpus again$`));
    // another model's vectors of these very texts (an encode with other weights)
    const foreign = join(dir, 'foreign.npy');
    const shifted = await model.encode(CORPUS);
    for (let i = 0; i < shifted.data.length; i++) shifted.data[i] = shifted.data[(i + 1) % shifted.data.length]!;
    writeFileSync(foreign, Buffer.concat(npyBytes(shifted.data, shifted.rows, shifted.dim)));
    await refused(CORPUS, foreign, /does not hold this model's vectors of the corpus: row 0 /);
    // the right vectors, written by `l2e encode` (no fingerprint)...
    const encoded = join(dir, 'encoded.npy');
    const right = await model.encode(CORPUS);
    writeFileSync(encoded, Buffer.concat(npyBytes(right.data, right.rows, right.dim)));
    // ...of a corpus edited since at a row between the 8 sampled (0, 21, ..., 85, 106, ...): every row of
    // a file without its record is checked (the sample alone served the stale row)
    const edited = CORPUS.map((t, i) => (i === 100 ? 'teks yang lain sama sekali' : t));
    await refused(edited, encoded, /does not hold this model's vectors of the corpus: row 100 \("teks yang lain sama sekali"\)/);
    expect(existsSync(`${encoded}.json`)).toBe(false);
    // ...of these texts: used, once every row is checked, and the record written for the next start
    const logs: string[] = [];
    const s = await serveOn(model, { corpus: CORPUS, corpusVectors: encoded, onLog: (line) => logs.push(line) });
    try {
      await s.handle.corpusReady;
      const r = await postJson<{ results: { index: number }[] }>(`${s.url}/search`, { query: CORPUS[9], k: 1 });
      expect(r.body.results[0]!.index).toBe(9);
      expect(logs).toContain(`corpus: ${encoded} has no ${encoded}.json (the fingerprint of its texts): checking all 150 rows against the model once`);
      expect(logs).toContain(`corpus: read 150 vectors from ${encoded} (150 of them checked against the model)`);
    } finally {
      await s.handle.close();
    }
    await refused(edited, encoded, `${encoded} holds the vectors of other texts (${encoded}.json says what it was made from); remove both to embed this corpus again`);
  });

  it('a corpus text the tokenizer refuses fails the corpus, named by its place in the whole corpus', async () => {
    const texts = CORPUS.map((t, i) => (i === 69 ? '-'.repeat(2 ** 16 + 1) : t)); // in the second part of 64
    const s = await serveOn(model, { corpus: texts });
    try {
      await expect(s.handle.corpusReady).rejects.toThrow(/^'corpus text 70' cannot be tokenised: more than 65536 characters in a row /);
    } finally {
      await s.handle.close();
    }
  });

  it("/search checks 'k' and 'query'", async () => {
    const s = await serveOn(model, { corpus: CORPUS.slice(0, 5) });
    try {
      await s.handle.corpusReady;
      const k = await postJson<OpenAIError>(`${s.url}/search`, { query: 'x', k: 0 });
      expect([k.status, k.body.error.message, k.body.error.param]).toEqual([400, `'k' must be an integer from 1 to 100, got 0`, 'k']);
      const q = await postJson<OpenAIError>(`${s.url}/search`, { query: ['a'] });
      expect([q.status, q.body.error.message, q.body.error.param]).toEqual([400, `'query' must be a string, got an array`, 'query']);
      const n = await postJson<OpenAIError>(`${s.url}/search`, { query: 5 });
      expect([n.status, n.body.error.message]).toEqual([400, `'query' must be a string, got a number`]);
      const blank = await postJson<OpenAIError>(`${s.url}/search`, { query: ' \t\n' });
      expect([blank.status, blank.body.error.message, blank.body.error.param]).toEqual([400, `'query' must not be only whitespace`, 'query']);
      const big = await postJson<{ results: unknown[] }>(`${s.url}/search`, { query: 'x', k: 50 });
      expect(big.body.results).toHaveLength(5);
    } finally {
      await s.handle.close();
    }
  });
});
