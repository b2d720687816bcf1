// The search corpus: embedded at start through the batcher (progress lines), saved to and read back
// from a .npy of its vectors, a mismatched .npy refused with a clear error, POST /search's answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EmbeddingModel } from '../src/model/embedding-model.js';
import { cosine } from '../src/eval/metrics.js';
import { npyBytes } from '../src/util/npy.js';
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
    const b = await serveOn(model, { corpus: CORPUS, corpusVectors: file });
    try {
      await b.handle.corpusReady;
      expect(metricValue(await getText(`${b.url}/metrics`), 'l2e_texts_total')).toBe(0); // nothing re-embedded
      const r = await postJson<typeof first>(`${b.url}/search`, { query: CORPUS[7], k: 3 });
      expect(r.body).toEqual(first);
    } finally {
      await b.handle.close();
    }
  });

  it('a vectors file of another shape is refused, naming it; /search says why', async () => {
    const file = join(makeTempDir(), 'other.npy');
    writeFileSync(file, Buffer.concat(npyBytes(new Float32Array(4 * 16), 4, 16)));
    const s = await serveOn(model, { corpus: CORPUS, corpusVectors: file });
    try {
      const msg = `${file} holds 4x16 vectors but the corpus has 150 texts of 16 dims`;
      await expect(s.handle.corpusReady).rejects.toThrow(msg);
      const r = await postJson<OpenAIError>(`${s.url}/search`, { query: 'x' });
      expect(r.status).toBe(500);
      expect(r.body.error.message).toBe(`the corpus could not be embedded: ${msg}`);
      const info = (await (await fetch(`${s.url}/info`)).json()) as { corpus: unknown };
      expect(info.corpus).toEqual({ texts: 150, embedded: 0, ready: false, error: msg });
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
      expect([q.status, q.body.error.message, q.body.error.param]).toEqual([400, `'query' must be a string`, 'query']);
      const big = await postJson<{ results: unknown[] }>(`${s.url}/search`, { query: 'x', k: 50 });
      expect(big.body.results).toHaveLength(5);
    } finally {
      await s.handle.close();
    }
  });
});
