// A model disposed under a running serve(): /health says so (503) and requests, queued ones included,
// get a clear error (a batch already on the device finishes: model-dispose.test.ts, hold()).
import { afterAll, describe, expect, it } from 'vitest';
import { hasTokenizer, postJson, serveOn, tinyModel, type OpenAIError } from './helpers/server.js';
import { removeTempDirs } from './helpers/tinyModel.js';
import { skipNote } from './helpers/fixture.js';

afterAll(() => removeTempDirs());

const DISPOSED = 'the model has been disposed (EmbeddingModel.dispose() was called while the server runs); restart the server';

describe.skipIf(!hasTokenizer)(`serve() with its model disposed ${hasTokenizer ? '' : skipNote('the shared tokenizer')}`, () => {
  it('/health answers 503 "disposed"; embedding requests a 503 naming the cause, queued ones too', async () => {
    const model = await tinyModel();
    const s = await serveOn(model, { maxWaitMs: 300 });
    try {
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
      const queued = postJson<OpenAIError>(`${s.url}/embed`, { inputs: ['Selamat pagi'] });
      await new Promise((r) => setTimeout(r, 100)); // waiting in the batcher for company
      model.dispose();
      const q = await queued;
      expect(q.status).toBe(503);
      expect(q.body.error.message).toBe(DISPOSED);
      const h = await fetch(`${s.url}/health`);
      expect(h.status).toBe(503);
      expect(await h.json()).toEqual({ status: 'disposed', error: DISPOSED });
      for (const [path, body] of [
        ['/v1/embeddings', { input: 'a' }],
        ['/embed', { inputs: 'a' }],
        ['/similarity', { inputs: { source_sentence: 'a', sentences: ['b'] } }],
      ] as const) {
        const r = await postJson<OpenAIError>(`${s.url}${path}`, body);
        expect(r.status).toBe(503);
        expect(r.body).toEqual({ error: { message: DISPOSED, type: 'server_error', param: null, code: 'model_disposed' } });
      }
    } finally {
      await s.handle.close();
    }
  });
});
