// serve()'s token limit per input: by default the model's max_position_embeddings (the tiny model's
// 512), not a fixed 8192; a larger maxLength is allowed with encode's notice, once; the 413 names the
// server's limit and /info reports the one that applies.
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { hasTokenizer, postJson, serveOn, type OpenAIError } from './helpers/server.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';
import { skipNote } from './helpers/fixture.js';
import { serve } from '../src/server/server.js';

afterAll(() => removeTempDirs());

async function load(notices: string[]): Promise<EmbeddingModel> {
  return EmbeddingModel.load(writeTinyModel(makeTempDir(), { seed: 3 }).dir, { onNotice: (m) => notices.push(m) });
}

const ids = (n: number): number[] => [1, ...Array<number>(n - 1).fill(5)];

describe.skipIf(!hasTokenizer)(`serve() maxLength ${hasTokenizer ? '' : skipNote('the shared tokenizer')}`, () => {
  it("defaults to the model's max_position_embeddings: /info says so, one token more is a 413 naming --max-length", async () => {
    const notices: string[] = [];
    const model = await load(notices);
    const s = await serveOn(model);
    try {
      const info = (await (await fetch(`${s.url}/info`)).json()) as Record<string, unknown>;
      expect(info).toMatchObject({ max_length: 512, max_position_embeddings: 512 });
      expect((await postJson(`${s.url}/v1/embeddings`, { input: ids(512) })).status).toBe(200);
      const r = await postJson<OpenAIError>(`${s.url}/v1/embeddings`, { input: ids(513) });
      expect(r.status).toBe(413);
      const message = `'input' is longer than the server's limit of 512 tokens (--max-length); send "truncate": true to cut it`;
      expect([r.body.error.message, r.body.error.param, r.body.error.code]).toEqual([message, 'input', 'over_limit']);
      expect(notices).toEqual([]);
    } finally {
      await s.handle.close();
      model.dispose();
    }
  });

  it('a maxLength above max_position_embeddings is served, with encode\'s notice once at load', async () => {
    const notices: string[] = [];
    const model = await load(notices);
    const s = await serveOn(model, { maxLength: 600 });
    try {
      expect(notices).toEqual([
        "max length 600 is above the model's max_position_embeddings 512; positions beyond 512 were not trained " +
          'and embeddings of longer texts may be poor (truncate with --max-length 512 / maxLength: 512)',
      ]);
      expect((await postJson(`${s.url}/v1/embeddings`, { input: ids(600) })).status).toBe(200);
      expect((await postJson(`${s.url}/v1/embeddings`, { input: ids(600) })).status).toBe(200);
      expect(notices).toHaveLength(1);
      const info = (await (await fetch(`${s.url}/info`)).json()) as Record<string, unknown>;
      expect(info['max_length']).toBe(600);
    } finally {
      await s.handle.close();
      model.dispose();
    }
  });

  it("a queue too small for the model's default length fails at load, saying why", async () => {
    const model = await load([]);
    const handle = await serve(model, { port: 0, maxQueueTokens: 100 });
    try {
      const why = 'serve: maxQueueTokens (100) must be at least maxLength (512), or a single long text could never be queued';
      await expect(handle.ready).rejects.toThrow(why);
      const h = await fetch(`${handle.url}/health`);
      expect(h.status).toBe(500);
      expect(await h.json()).toEqual({ status: 'failed', error: why });
    } finally {
      await handle.close();
      model.dispose();
    }
  });
});
