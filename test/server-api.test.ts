// `serve()`'s API on loopback with a tiny random model: OpenAI's and TEI's shapes give model.encode's
// vectors, the official openai client works with only a base URL, /health /info /metrics, the API key,
// and every bad input is a 4xx in OpenAI's error shape naming the field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxHeaderSize, request } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import OpenAI from 'openai';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { cosine } from '../src/eval/knn.js';
import { hasTokenizer, getText, metricValue, postJson, serveOn, tinyModel, type OpenAIError, type Served } from './helpers/server.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';
import { serve, type ServeOptions } from '../src/server/server.js';
import { skipNote } from './helpers/fixture.js';

const TEXTS = ['Selamat pagi, apa khabar?', 'Good morning', 'saya suka makan nasi lemak dengan sambal pedas', 'x'];

function expectClose(got: ArrayLike<number>, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  expect(worst).toBeLessThan(1e-6);
}

describe.skipIf(!hasTokenizer)(`l2e serve API ${hasTokenizer ? '' : skipNote('the shared tokenizer')}`, () => {
  let model: EmbeddingModel;
  let s: Served;
  let keyed: Served;

  beforeAll(async () => {
    model = await tinyModel();
    s = await serveOn(model, { maxInputs: 8, maxChars: 200, maxLength: 16, maxQueueTokens: 64, maxBodyBytes: 4096, modelName: 'tiny' });
    keyed = await serveOn(model, { apiKey: 'sekret' });
  });
  afterAll(async () => {
    await s?.handle.close();
    await keyed?.handle.close();
    model?.dispose();
    removeTempDirs();
  });

  it('POST /v1/embeddings answers in OpenAI shape with model.encode vectors (float and base64)', async () => {
    const want = await model.encode(TEXTS);
    const r = await postJson<{ object: string; model: string; data: { object: string; index: number; embedding: number[] }[]; usage: Record<string, number> }>(
      `${s.url}/v1/embeddings`,
      { input: TEXTS, model: 'whatever' },
    );
    expect(r.status).toBe(200);
    expect(r.body.object).toBe('list');
    expect(r.body.model).toBe('tiny');
    expect(r.body.data.map((d) => [d.object, d.index])).toEqual(TEXTS.map((_, i) => ['embedding', i]));
    r.body.data.forEach((d, i) => expectClose(d.embedding, want.row(i)));
    const tokens = model.tokenize(TEXTS).reduce((a, x) => a + x.length, 0);
    expect(r.body.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });

    const b = await postJson<{ data: { embedding: string }[] }>(`${s.url}/v1/embeddings`, { input: TEXTS[0], encoding_format: 'base64' });
    expect(b.status).toBe(200);
    const bytes = Buffer.from(b.body.data[0]!.embedding, 'base64');
    expectClose(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), want.row(0));
  });

  it('takes token-id inputs as the model sees them', async () => {
    const ids = model.tokenize([TEXTS[2]!])[0]!;
    const want = await model.encode([TEXTS[2]!]);
    const one = await postJson<{ data: { embedding: number[] }[] }>(`${s.url}/v1/embeddings`, { input: Array.from(ids) });
    expect(one.status).toBe(200);
    expectClose(one.body.data[0]!.embedding, want.row(0));
    const many = await postJson<{ data: { embedding: number[] }[] }>(`${s.url}/v1/embeddings`, { input: [Array.from(ids), Array.from(ids)] });
    expect(many.body.data).toHaveLength(2);
    expectClose(many.body.data[1]!.embedding, want.row(0));
  });

  it('the official openai client works with only a base URL', async () => {
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const want = await model.encode(TEXTS.slice(0, 2));
    const r = await client.embeddings.create({ model: 'tiny', input: TEXTS.slice(0, 2) });
    expect(r.data).toHaveLength(2);
    r.data.forEach((d, i) => expectClose(d.embedding, want.row(i)));
    const asFloats = await client.embeddings.create({ model: 'tiny', input: TEXTS[0]!, encoding_format: 'float' });
    expectClose(asFloats.data[0]!.embedding, want.row(0));
  });

  it('POST /embed (TEI) and POST /similarity', async () => {
    const want = await model.encode(TEXTS);
    const r = await postJson<number[][]>(`${s.url}/embed`, { inputs: TEXTS });
    expect(r.status).toBe(200);
    expect(r.body).toHaveLength(TEXTS.length);
    r.body.forEach((row, i) => expectClose(row, want.row(i)));
    const one = await postJson<number[][]>(`${s.url}/embed`, { inputs: TEXTS[1], normalize: true });
    expect(one.body).toHaveLength(1);
    expectClose(one.body[0]!, want.row(1));
    // the model normalises itself: raw vectors are not there to give (they were answered normalised)
    const raw = await postJson<{ error: { message: string; param: string } }>(`${s.url}/embed`, { inputs: TEXTS[1], normalize: false });
    expect(raw.status).toBe(400);
    expect(raw.body.error).toMatchObject({
      message: `'normalize': false cannot be done: this model normalises its embeddings itself (config.json "normalized": true)`,
      param: 'normalize',
    });

    const sim = await postJson<number[]>(`${s.url}/similarity`, { inputs: { source_sentence: TEXTS[0], sentences: TEXTS.slice(1) } });
    expect(sim.status).toBe(200);
    expect(sim.body).toHaveLength(3);
    sim.body.forEach((score, i) => expect(Math.abs(score - cosine(want.row(0), want.row(i + 1)))).toBeLessThan(1e-6));
  });

  it('over-long texts: 413 naming the input, or cut when truncate is asked (as encode cuts them)', async () => {
    const long = 'perkataan '.repeat(15);
    const r = await postJson<OpenAIError>(`${s.url}/embed`, { inputs: ['ok', long] });
    expect(r.status).toBe(413);
    expect(r.body.error).toEqual({
      message: `'inputs[1]' is longer than the server's limit of 16 tokens (--max-length); send "truncate": true to cut it`,
      type: 'invalid_request_error',
      param: 'inputs[1]',
      code: 'over_limit',
    });
    // /similarity names the field of the source or sentence at fault, not a position in one list
    for (const [inputs, param] of [
      [{ source_sentence: 'ok', sentences: ['ok', long] }, 'inputs.sentences[1]'],
      [{ source_sentence: long, sentences: ['ok'] }, 'inputs.source_sentence'],
    ] as const) {
      const sim = await postJson<OpenAIError>(`${s.url}/similarity`, { inputs });
      expect(sim.status).toBe(413);
      expect(sim.body.error).toEqual({
        message: `'${param}' is longer than the server's limit of 16 tokens (--max-length); send "truncate": true to cut it`,
        type: 'invalid_request_error',
        param,
        code: 'over_limit',
      });
    }
    const cut = await postJson<number[][]>(`${s.url}/embed`, { inputs: ['ok', long], truncate: true });
    expect(cut.status).toBe(200);
    expectClose(cut.body[1]!, (await model.encode([long], { maxLength: 16 })).row(0));
  });

  it('a text the tokenizer refuses is a 400 naming the input (it was a 500 "internal error")', async () => {
    const wide = await serveOn(model, { maxChars: 2 ** 17 });
    try {
      const run = '-'.repeat(2 ** 16 + 1);
      const r = await postJson<OpenAIError>(`${wide.url}/v1/embeddings`, { input: ['ok', run], truncate: true });
      expect(r.status).toBe(400);
      expect(r.body.error).toEqual({
        message:
          `'input[1]' cannot be tokenised: more than 65536 characters in a row from character 0 on ("------------------------"...) have no point ` +
          'between them where the text can be cut (as in one character repeated), and such a run is tokenised as one piece (slow, and out of ' +
          'memory past a few million): split or shorten the text',
        type: 'invalid_request_error',
        param: 'input[1]',
        code: 'invalid_value',
      });
    } finally {
      await wide.handle.close();
    }
  });

  it('/health, /info and /metrics', async () => {
    expect(await (await fetch(`${s.url}/health`)).json()).toEqual({ status: 'ok' });
    const info = (await (await fetch(`${s.url}/info`)).json()) as Record<string, unknown>;
    expect(info).toMatchObject({
      model: 'tiny',
      dim: model.dim,
      max_length: 16,
      device: 'cpu',
      batching: true,
      max_batch_tokens: 2048,
      max_inputs: 8,
      max_chars: 200,
      max_body_bytes: 4096,
      request_timeout_ms: 60000,
      corpus: null,
    });
    expect(info['version']).toMatch(/^\d+\.\d+\.\d+/);
    const metrics = await getText(`${s.url}/metrics`);
    expect(metricValue(metrics, 'l2e_http_requests_total{route="/health",status="200"}')).toBe(1);
    expect(metricValue(metrics, 'l2e_texts_total')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'l2e_queue_tokens')).toBe(0);
    expect(metrics).toContain('# TYPE l2e_batch_requests histogram');
    expect(metrics).toContain('# TYPE l2e_http_request_duration_seconds histogram');
  });

  it('/health is 503 "loading" until the model promise resolves, and API calls say so', async () => {
    let resolveModel!: (m: EmbeddingModel) => void;
    const pending = new Promise<EmbeddingModel>((r) => (resolveModel = r));
    const handle = await serve(pending, { port: 0 });
    try {
      const h = await fetch(`${handle.url}/health`);
      expect([h.status, await h.json()]).toEqual([503, { status: 'loading' }]);
      const r = await postJson<OpenAIError>(`${handle.url}/v1/embeddings`, { input: 'a' });
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('2');
      expect(r.body.error).toEqual({ message: 'the model is still loading', type: 'overloaded_error', param: null, code: 'loading' });
      resolveModel(model);
      await handle.ready;
      expect((await fetch(`${handle.url}/health`)).status).toBe(200);
      expect((await postJson(`${handle.url}/v1/embeddings`, { input: 'a' })).status).toBe(200);
    } finally {
      await handle.close();
    }
    const failing = await serve(Promise.reject(new Error('no such model')), { port: 0 });
    try {
      await expect(failing.ready).rejects.toThrow('no such model');
      const h = await fetch(`${failing.url}/health`);
      expect([h.status, await h.json()]).toEqual([500, { status: 'failed', error: 'no such model' }]);
      const r = await postJson<OpenAIError>(`${failing.url}/embed`, { inputs: 'a' });
      expect([r.status, r.body.error.message]).toEqual([500, 'the model failed to load: no such model']);
    } finally {
      await failing.close();
    }
    // a promise of a model disposed before it came: failed, as a disposed model given itself is refused
    const gone = await tinyModel();
    gone.dispose();
    const late = await serve(Promise.resolve(gone), { port: 0 });
    try {
      await expect(late.ready).rejects.toThrow('serve: the model has been disposed');
      const h = await fetch(`${late.url}/health`);
      expect([h.status, await h.json()]).toEqual([500, { status: 'failed', error: 'serve: the model has been disposed' }]);
    } finally {
      await late.close();
    }
  });

  it("names the model by its folder, a Hub model by its repo (not its snapshot's commit)", async () => {
    const root = makeTempDir('l2e-serve-name-');
    const folder = join(root, 'kata-kunci');
    const snapshot = join(root, 'hub', 'models--org--kata', 'snapshots', 'a'.repeat(40));
    writeTinyModel(folder, { seed: 3 });
    cpSync(folder, snapshot, { recursive: true }); // (our writers refuse to write into a cache)
    for (const [dir, name] of [[folder, 'kata-kunci'], [snapshot, 'org/kata']] as const) {
      const m = await EmbeddingModel.load(dir);
      const named = await serveOn(m);
      try {
        expect(((await (await fetch(`${named.url}/info`)).json()) as { model: string }).model).toBe(name);
      } finally {
        await named.handle.close();
        m.dispose();
      }
    }
  });

  it('an embedding that overflowed to NaN is a 500 naming the input, never sent as a vector', async () => {
    const m = await tinyModel();
    const dense = m.native.params().find((p) => p.name === 'dense_layer.weight')!;
    m.native.setTensor(dense.name, new Float32Array(dense.numel).fill(1e38));
    const bad = await serveOn(m);
    try {
      const reason = "its embedding has a non-finite value (NaN at index 0): the model's activations overflowed on it (are its weights sound?)";
      const r = await postJson<OpenAIError>(`${bad.url}/v1/embeddings`, { input: ['a', 'b'] });
      expect(r.status).toBe(500);
      expect(r.body.error).toMatchObject({ type: 'server_error', code: 'non_finite_embedding' });
      expect(['input[0]', 'input[1]']).toContain(r.body.error.param);
      expect(r.body.error.message).toBe(`'${r.body.error.param}': ${reason}`);
      const tei = await postJson<OpenAIError>(`${bad.url}/embed`, { inputs: 'a' });
      expect([tei.status, tei.body.error.message]).toEqual([500, `'inputs': ${reason}`]);
    } finally {
      await bad.handle.close();
      m.dispose();
    }
  });

  it('with an API key: 401 without it, 200 with it; the page and /health stay open', async () => {
    const none = await postJson<OpenAIError>(`${keyed.url}/v1/embeddings`, { input: 'a' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(none.body.error).toEqual({
      message: 'a valid API key is required: send "Authorization: Bearer KEY"',
      type: 'authentication_error',
      param: null,
      code: 'invalid_api_key',
    });
    const wrong = await postJson(`${keyed.url}/v1/embeddings`, { input: 'a' }, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${keyed.url}/metrics`)).status).toBe(401);
    const ok = await postJson(`${keyed.url}/v1/embeddings`, { input: 'a' }, { authorization: 'Bearer sekret' });
    expect(ok.status).toBe(200);
    const client = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
    expect((await client.embeddings.create({ model: 'm', input: 'a' })).data).toHaveLength(1);
    expect((await fetch(`${keyed.url}/health`)).status).toBe(200);
    expect((await fetch(`${keyed.url}/`)).status).toBe(200);
  });

  describe('bad input: a 4xx in OpenAI error shape naming the field', () => {
    const cases: [string, string, unknown, number, string, string | null, Record<string, string>?][] = [
      ['malformed JSON', '/v1/embeddings', '{"input": [', 400, 'the request body is not valid JSON (Unexpected end of JSON input)', null],
      ['a body that is not an object', '/v1/embeddings', '[1, 2]', 400, 'the request body must be a JSON object', null],
      ['an empty body', '/embed', '', 400, 'the request body is empty; send a JSON object', null],
      ['input missing', '/v1/embeddings', { model: 'm' }, 400, `'input' is required`, 'input'],
      ['input a number', '/v1/embeddings', { input: 5 }, 400, `'input' must be a string, an array of strings, or an array of token-id arrays, got a number`, 'input'],
      ['input an object', '/embed', { inputs: { a: 1 } }, 400, `'inputs' must be a string or an array of strings, got an object`, 'inputs'],
      ['a mixed array', '/v1/embeddings', { input: ['a', 3] }, 400, `'input[1]' must be a string, got a number`, 'input[1]'],
      ['token ids in TEI', '/embed', { inputs: [1, 2] }, 400, `'inputs' must be a string or an array of strings; 'inputs[0]' is a number`, 'inputs[0]'],
      ['a fractional token id', '/v1/embeddings', { input: [[1, 2.5]] }, 400, `'input[0][1]' must be an integer token id, got the number 2.5`, 'input[0][1]'],
      ['a token id outside the vocabulary', '/v1/embeddings', { input: [1, 5000] }, 400, `'input[1]' is 5000, outside the vocabulary [0, 2000)`, 'input[1]'],
      ['empty input array', '/v1/embeddings', { input: [] }, 400, `'input' must not be empty`, 'input'],
      ['an empty string', '/v1/embeddings', { input: '' }, 400, `'input' must not be an empty string`, 'input'],
      ['an empty string in a list', '/embed', { inputs: ['a', ''] }, 400, `'inputs[1]' must not be an empty string`, 'inputs[1]'],
      ['too many inputs', '/v1/embeddings', { input: Array(9).fill('a') }, 413, `'input' has 9 items; the limit is 8 per request (the server's --max-inputs)`, 'input'],
      ['a text over the character limit', '/v1/embeddings', { input: ['a', 'b'.repeat(201)] }, 413, `'input[1]' has 201 characters; the limit is 200 (the server's --max-chars)`, 'input[1]'],
      // characters, not UTF-16 units: 201 emoji are 402 units
      ['emoji over the character limit', '/embed', { inputs: '😀'.repeat(201) }, 413, `'inputs' has 201 characters; the limit is 200 (the server's --max-chars)`, 'inputs'],
      // JSON can spell half a pair (\ud800), which UTF-8 cannot: refused, as invalid UTF-8 bytes are
      ['half a surrogate pair', '/v1/embeddings', Buffer.from('{"input": ["ok", "ab\\ud800c"]}'), 400, `'input[1]' holds half of a UTF-16 surrogate pair (\\uD800 at index 2), which is not text; send well-formed Unicode`, 'input[1]'],
      ['a lone low surrogate', '/embed', Buffer.from('{"inputs": "\\udc00"}'), 400, `'inputs' holds half of a UTF-16 surrogate pair (\\uDC00 at index 0), which is not text; send well-formed Unicode`, 'inputs'],
      ['a charset other than UTF-8', '/embed', { inputs: 'a' }, 415, `the request body's charset "latin1" is not supported; send JSON in UTF-8`, null, { 'content-type': 'application/json; charset=latin1' }],
      ['a body over the byte limit', '/v1/embeddings', { input: 'a'.repeat(5000) }, 413, "the request body is larger than the limit of 4096 bytes (the server's --max-body-bytes)", null],
      ['dimensions not the model\'s', '/v1/embeddings', { input: 'a', dimensions: 8 }, 400, `'dimensions' is 8 but this model only gives 16-dimensional embeddings`, 'dimensions'],
      ['dimensions a string', '/v1/embeddings', { input: 'a', dimensions: '16' }, 400, `'dimensions' must be an integer, got "16"`, 'dimensions'],
      // 1e999 parses to Infinity, which JSON.stringify wrote as null in the message
      ['dimensions beyond any float', '/v1/embeddings', Buffer.from('{"input":"a","dimensions":1e999}'), 400, `'dimensions' must be an integer, got Infinity`, 'dimensions'],
      ['an unknown encoding_format', '/v1/embeddings', { input: 'a', encoding_format: 'int8' }, 400, `'encoding_format' must be "float" or "base64", got "int8"`, 'encoding_format'],
      ['model not a string', '/v1/embeddings', { input: 'a', model: 3 }, 400, `'model' must be a string, got 3`, 'model'],
      ['normalize not a boolean', '/embed', { inputs: 'a', normalize: 'yes' }, 400, `'normalize' must be true or false, got "yes"`, 'normalize'],
      ['truncate not a boolean', '/embed', { inputs: 'a', truncate: 1 }, 400, `'truncate' must be true or false, got 1`, 'truncate'],
      ['similarity without sentences', '/similarity', { inputs: { source_sentence: 'a' } }, 400, `'inputs.sentences' is required`, 'inputs.sentences'],
      ['similarity with a number as source', '/similarity', { inputs: { source_sentence: 1, sentences: ['a'] } }, 400, `'inputs.source_sentence' must be a string, got 1`, 'inputs.source_sentence'],
      ['a gzip body', '/embed', gzipSync(JSON.stringify({ inputs: 'a' })), 415, `the request body's Content-Encoding "gzip" is not supported; send it uncompressed`, null, { 'content-encoding': 'gzip' }],
      ['search without a corpus', '/search', { query: 'a' }, 404, 'no corpus is loaded: start the server with --corpus FILE', null],
    ];
    it.each(cases)('%s', async (_name, path, body, status, message, param, headers = {}) => {
      const r = await postJson<OpenAIError>(`${s.url}${path}`, body, headers);
      expect(r.status).toBe(status);
      expect(r.body.error.message).toBe(message);
      expect(r.body.error.param).toBe(param);
      expect(r.body.error.type).toBe('invalid_request_error');
    });

    it('null for an optional field is its default (documented), as for truncate and normalize', async () => {
      const body = { input: 'a', encoding_format: null, dimensions: null, model: null, truncate: null };
      const r = await postJson<{ data: { embedding: number[] }[] }>(`${s.url}/v1/embeddings`, body);
      expect(r.status).toBe(200);
      expect(r.body.data[0]!.embedding).toHaveLength(model.dim);
    });

    it('a timer longer than Node keeps is refused (it would fire after 1 ms)', async () => {
      await expect(serve(model, { port: 0, requestTimeoutMs: 2 ** 31 })).rejects.toThrow(
        new Error('serve: requestTimeoutMs must be at most 2147483647 (about 24.8 days, the longest timer Node keeps), got 2147483648'),
      );
      await expect(serve(model, { port: 0, maxWaitMs: 3e9 })).rejects.toThrow(
        new Error('serve: maxWaitMs must be at most 2147483647 (about 24.8 days, the longest timer Node keeps), got 3000000000'),
      );
    });

    it('what a plain-JS caller gets wrong is refused before listening, naming it and its type', async () => {
      const bad: [unknown, unknown, Error][] = [
        [model, { port: 0, apiKey: 12345 }, new TypeError('serve: apiKey must be a string, got 12345')], // it was hashed at each request: 500 naming the key
        [model, { port: 0, host: 5 }, new TypeError('serve: host must be a string, got 5')],
        // no Authorization header carries it: every client was refused
        [model, { port: 0, apiKey: 'k\n' }, new RangeError('serve: apiKey: the key starts or ends with whitespace (a line end read with it?), which no Authorization header carries: remove it')],
        [model, { port: '0' }, new Error('serve: port must be an integer in [0, 65535], got the string "0"')],
        [model, { port: 0, maxWaitMs: '5' }, new Error('serve: maxWaitMs must be ≥ 0, got the string "5"')],
        [model, { port: 0, maxInputs: '8' }, new Error('serve: maxInputs must be a positive integer, got the string "8"')],
        [model, { port: 0, onLog: 'x' }, new TypeError('serve: onLog must be a function, got the string "x"')],
        [model, 'x', new TypeError('serve: options must be an object, got the string "x"')],
        [undefined, { port: 0 }, new TypeError('serve: model must be an EmbeddingModel or a promise of one, got undefined')],
      ];
      for (const [m, options, error] of bad) await expect(serve(m as EmbeddingModel, options as ServeOptions)).rejects.toThrow(error);
      const disposed = await tinyModel();
      disposed.dispose();
      await expect(serve(disposed, { port: 0 })).rejects.toThrow(new Error('serve: the model has been disposed'));
    });

    it('a port in use: the error names the address and why', async () => {
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const port = (blocker.address() as AddressInfo).port;
      try {
        await expect(serve(model, { port })).rejects.toThrow(
          new Error(`could not listen on 127.0.0.1:${port}: the port is in use (choose another port, or 0 for any free one) (EADDRINUSE)`),
        );
      } finally {
        blocker.close();
      }
    });

    it('serve() options of the wrong type are refused (plain-JS callers)', async () => {
      await expect(serve(model, { port: 0, batching: 'no' as unknown as boolean })).rejects.toThrow(
        new TypeError('serve: batching must be true or false, got "no"'),
      );
    });

    it('a request over the queue limit: refused once its inputs so far pass it', async () => {
      const texts = Array<string>(6).fill('perkataan '.repeat(3));
      const lens = model.tokenize(texts, 16).map((x) => x.length);
      const tokens = lens.reduce((a, x) => a + x, 0);
      expect(tokens).toBeGreaterThan(64);
      expect(tokens - lens[5]!).toBeLessThanOrEqual(64); // the last input passes the limit
      const r = await postJson<OpenAIError>(`${s.url}/v1/embeddings`, { input: texts, truncate: true });
      expect(r.status).toBe(413);
      expect(r.body.error.message).toBe(`'input' has too many tokens: its 6 inputs hold ${tokens}, and one request may hold at most 64 (the server's --max-queue-tokens)`);
      expect(r.body.error.param).toBe('input');
      // past the limit at the fifth input: the sixth (outside the vocabulary) is never looked at
      const ids = { input: [Array<number>(16).fill(5), Array<number>(16).fill(5), Array<number>(16).fill(5), Array<number>(16).fill(5), Array<number>(16).fill(5), [10 ** 6]] };
      const early = await postJson<OpenAIError>(`${s.url}/v1/embeddings`, ids);
      expect([early.status, early.body.error.message]).toEqual([413, `'input' has too many tokens: its first 5 of 6 inputs hold 80, and one request may hold at most 64 (the server's --max-queue-tokens)`]);
    });

    it('invalid UTF-8 in the body', async () => {
      const bytes = Buffer.concat([Buffer.from('{"input": "ab'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
      const r = await postJson<OpenAIError>(`${s.url}/v1/embeddings`, bytes);
      expect(r.status).toBe(400);
      expect(r.body.error).toEqual({ message: 'the request body is not valid UTF-8', type: 'invalid_request_error', param: null, code: 'invalid_utf8' });
    });

    it('a body that is not JSON, an unknown route', async () => {
      const r = await fetch(`${s.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
      expect(r.status).toBe(415);
      expect(((await r.json()) as OpenAIError).error.message).toBe('the request body must be JSON (Content-Type: application/json)');
      const nf = await fetch(`${s.url}/v2/nothing`);
      expect(nf.status).toBe(404);
      expect(((await nf.json()) as OpenAIError).error.message).toBe('no route GET /v2/nothing');
    });

    it('200 emoji are 200 characters (400 UTF-16 units), a pair is one; charset=UTF-8 is JSON', async () => {
      const r = await postJson<number[][]>(`${s.url}/embed`, { inputs: ['😀'.repeat(200), 'x😀y'], truncate: true }, { 'content-type': 'application/json; charset="UTF-8"' });
      expect(r.status).toBe(200);
      expectClose(r.body[1]!, (await model.encode(['x😀y'])).row(0));
    });

    it('a request for no route is a 404 whatever its body, which is not read; a served path asked with another method is a 405 naming its methods', async () => {
      const nope = await fetch(`${s.url}/nope`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'garbage' });
      expect([nope.status, ((await nope.json()) as OpenAIError).error]).toEqual([
        404,
        { message: 'no route POST /nope', type: 'invalid_request_error', param: null, code: 'not_found' },
      ]);
      for (const [method, path, body, allow] of [
        ['DELETE', '/v1/embeddings', undefined, 'POST'],
        ['GET', '/v1/embeddings', undefined, 'POST'],
        ['PUT', '/embed', '{"inputs": "a"}', 'POST'],
        ['POST', '/health', '{}', 'GET, HEAD'],
      ] as const) {
        const r = await fetch(`${s.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body });
        expect([r.status, r.headers.get('allow'), ((await r.json()) as OpenAIError).error]).toEqual([
          405,
          allow,
          { message: `${path} takes ${allow}, not ${method}`, type: 'invalid_request_error', param: null, code: 'method_not_allowed' },
        ]);
      }
    });

    it('what the HTTP layer refuses before any route is in the same shape', async () => {
      const bad = await fetch(`${s.url}/v1/embeddings%ZZ`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":"a"}' });
      expect([bad.status, ((await bad.json()) as OpenAIError).error]).toEqual([
        400,
        { message: "the request's URL is not valid: '/v1/embeddings%ZZ' is not a valid url component", type: 'invalid_request_error', param: null, code: 'invalid_url' },
      ]);
      const u = new URL(s.url);
      // halfClose: false sends without ending the client's side (on which Node drops the requests it has
      // not answered yet), for a request that is answered; the server then ends the connection (within
      // 5 s of its first bytes: what came by then, and '[open]', when it does not). `then` is sent when
      // the first bytes come; `pauseMs`: reading then stops that long.
      const raw = (text: string, { halfClose = true, then = '', url = u, pauseMs = 0 } = {}): Promise<string> =>
        new Promise((resolve, reject) => {
          const socket = connect(Number(url.port), url.hostname, () => (halfClose ? socket.end(text) : socket.write(text)));
          let got = '';
          let open: NodeJS.Timeout | undefined;
          const openAfter = (): NodeJS.Timeout =>
            setTimeout(() => {
              socket.destroy();
              resolve(`${got}[open]`);
            }, 5000);
          socket.setEncoding('utf8').on('data', (d: string) => {
            open ??= openAfter();
            if (got === '' && then) socket.write(then);
            if (got === '' && pauseMs > 0) {
              socket.pause(); // the answer stops part-way: the server's buffers fill
              setTimeout(() => socket.resume(), pauseMs);
            }
            got += d;
          });
          socket.on('close', () => (clearTimeout(open), resolve(got))).on('error', reject);
        });
      const answer = (status: string, error: OpenAIError['error']): string => {
        const body = JSON.stringify({ error });
        return `HTTP/1.1 ${status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
      };
      expect(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`)).toBe(
        answer('431 Request Header Fields Too Large', {
          message: `the request's headers (its URL among them) are larger than the limit of ${maxHeaderSize} bytes`,
          type: 'invalid_request_error',
          param: null,
          code: 'headers_too_large',
        }),
      );
      expect(await raw('GARBAGE\r\n\r\n')).toBe(
        answer('400 Bad Request', { message: 'the request is not valid HTTP/1.1 (HPE_INVALID_METHOD)', type: 'invalid_request_error', param: null, code: 'invalid_http' }),
      );
      // Node's own refusal of a request with no Host was a bare 400 with no body, counted nowhere
      const noHost = await raw('GET /health HTTP/1.1\r\nConnection: close\r\n\r\n', { halfClose: false });
      expect(noHost.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
      expect(JSON.parse(noHost.slice(noHost.indexOf('\r\n\r\n') + 4))).toEqual({
        error: { message: 'the request has no Host header (HTTP/1.1 requires one)', type: 'invalid_request_error', param: null, code: 'missing_host' },
      });
      expect((await raw('GET /health HTTP/1.0\r\n\r\n', { halfClose: false })).split('\r\n')[0]).toBe('HTTP/1.1 200 OK'); // HTTP/1.0 needs none
      // a whole request, then bytes that are not HTTP: its answer comes (the 400 took its place), then the end
      const body = '{"input":"a"}';
      const whole = `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const pipelined = await raw(`${whole}GARBAGE\r\n\r\n`, { halfClose: false });
      expect(pipelined.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
      expect(pipelined.toLowerCase()).toContain('\r\nconnection: close\r\n');
      expect(pipelined.match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 200']);
      // two of them: both answered (the first's Connection: close dropped the second)
      const two = await raw(`${whole}${whole}GARBAGE\r\n\r\n`, { halfClose: false });
      expect(two.match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200']);
      expect(two.endsWith('[open]')).toBe(false);
      // the bytes come while a long answer is being sent: it is sent whole, then the connection ends
      // (it stayed open, and a 408 for the bytes followed a minute later): an answer of ~25 MB, more
      // than the sockets' buffers hold while the client does not read
      const wide = await serveOn(model, { maxInputs: 65536, maxQueueTokens: 1 << 20 });
      try {
        const n = 65536;
        const many = JSON.stringify({ input: Array.from({ length: n }, (_, i) => `teks ${i}`) });
        const big = `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(many)}\r\n\r\n${many}`;
        const long = await raw(big, { halfClose: false, then: 'GARBAGE\r\n\r\n', url: new URL(wide.url), pauseMs: 500 });
        expect(long.slice(0, 400)).toMatch(/^HTTP\/1\.1 200 OK/);
        expect(long.endsWith('[open]')).toBe(false);
        expect(long.endsWith('\r\n0\r\n\r\n')).toBe(true); // the chunked answer's end, and nothing after it
        expect(long.match(/"object":"embedding"/g)).toHaveLength(n);
      } finally {
        await wide.handle.close();
      }
      // refused in its body, after the route was found: answered once, counted once, under its route
      const embed400 = (text: string): number => (text.includes('route="/embed",status="400"') ? metricValue(text, 'l2e_http_requests_total{route="/embed",status="400"}') : 0);
      const before = embed400(await getText(`${s.url}/metrics`));
      const chunk = 'POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n';
      expect(await raw(chunk)).toBe(
        answer('400 Bad Request', { message: 'the request is not valid HTTP/1.1 (HPE_INVALID_CHUNK_SIZE)', type: 'invalid_request_error', param: null, code: 'invalid_http' }),
      );
      const metrics = await getText(`${s.url}/metrics`);
      expect(metricValue(metrics, 'l2e_http_requests_total{route="unmatched",status="400"}')).toBe(2);
      expect(metricValue(metrics, 'l2e_http_requests_total{route="unmatched",status="431"}')).toBe(1);
      expect(metricValue(metrics, 'l2e_http_requests_total{route="/health",status="400"}')).toBe(1);
      expect(embed400(metrics)).toBe(before + 1);
      expect(metrics).not.toContain('status="499"');
      expect((await fetch(`${s.url}/health`)).status).toBe(200);
    });

    it('a body cut short by the client is not a crash: the server goes on answering', async () => {
      await new Promise<void>((resolve) => {
        const u = new URL(`${s.url}/v1/embeddings`);
        const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '100' } });
        req.on('error', () => resolve());
        req.write('{"input": "a');
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
      const ok = await postJson(`${s.url}/v1/embeddings`, { input: 'a' });
      expect(ok.status).toBe(200);
    });
  });
});
