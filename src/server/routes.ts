// The server's routes:
//   POST /v1/embeddings  OpenAI: {input, model, encoding_format, dimensions} → {object: "list", data, model, usage}
//   POST /embed          TEI: {inputs, normalize, truncate} → [[...], ...]
//   POST /similarity     TEI: {inputs: {source_sentence, sentences}} → [cosine, ...]
//   POST /search         the page: {query, k} → {results: [{index, text, score}]} over the --corpus
//   GET  /health /info /metrics, and the page (GET / and /app.js).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { cosine } from '../eval/knn.js';
import { cudaStatus, packageRoot } from '../native.js';
import { QueueFullError } from './batcher.js';
import { CorpusVectorsError } from './corpus.js';
import { ApiError, badField, modelDisposed } from './errors.js';
import { inputName, readInputs, toModelInputs, typeName, type Inputs } from './inputs.js';
import { TextError } from '../model/text-error.js';
import type { ServerState } from './server.js';
import { jsonShown } from '../util/describe.js';

type Body = Record<string, unknown>;

function objectBody(req: FastifyRequest): Body {
  const b = req.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw new ApiError(400, 'the request body must be a JSON object', null, 'invalid_body');
  }
  return b as Body;
}

function optBool(body: Body, field: string, fallback: boolean): boolean {
  const v = body[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw badField(field, `'${field}' must be true or false, got ${jsonShown(v)}`, 'invalid_type');
  return v;
}

function loaded(state: ServerState): NonNullable<ServerState['loaded']> {
  if (state.loaded?.model.disposed) throw modelDisposed();
  if (state.loaded) return state.loaded;
  if (state.failed instanceof CorpusVectorsError) {
    throw new ApiError(500, `the search corpus's vectors file does not fit the model: ${state.failed.message}`, null, 'corpus_vectors_failed');
  }
  if (state.failed) throw new ApiError(500, `the model failed to load: ${state.failed.message}`, null, 'model_load_failed');
  throw new ApiError(503, 'the model is still loading', null, 'loading', 'overloaded_error', 2);
}

/**
 * Embeds a request's inputs through the batcher. The work is dropped when the client disconnects or the
 * request outlives the timeout. Returns rows [n × dim] and the number of tokens.
 */
async function embedInputs(
  state: ServerState,
  inputs: Inputs,
  truncate: boolean,
  field: string,
  reply: FastifyReply,
): Promise<{ rows: Float32Array; n: number; tokens: number; dim: number }> {
  const { model, batcher } = loaded(state);
  const o = state.options;
  const ac = new AbortController();
  const onClose = (): void => {
    if (!reply.raw.writableFinished) ac.abort(new ApiError(499, 'the client closed the connection', null, 'client_closed'));
  };
  reply.raw.once('close', onClose);
  const timer = setTimeout(
    () => ac.abort(new ApiError(503, `the request was not answered within ${o.requestTimeoutMs} ms`, null, 'timeout', 'overloaded_error', 1)),
    o.requestTimeoutMs,
  );
  try {
    const limits = { ...state.limits, maxTotalTokens: o.maxQueueTokens };
    let ids: Int32Array[];
    try {
      ids = await toModelInputs(inputs, model.tokenizer, model.config.vocabSize, limits, truncate, field, ac.signal);
    } catch (err) {
      // stopped while tokenising (the client gone, or the timeout): every text dropped, none queued yet
      if (ac.signal.aborted && err === ac.signal.reason) state.metrics.drop(inputs.kind === 'texts' ? inputs.texts.length : inputs.ids.length, err);
      throw err;
    }
    const tokens = ids.reduce((s, x) => s + x.length, 0);
    let rows: Float32Array;
    try {
      rows = await batcher.submit(ids, ac.signal);
    } catch (err) {
      if (err instanceof QueueFullError) {
        throw new ApiError(503, `the server is busy: ${err.message}`, null, 'queue_full', 'overloaded_error', err.retryAfterSeconds);
      }
      if (err instanceof TextError && err.index !== undefined) {
        const name = inputName(inputs, field, err.index);
        throw new ApiError(500, `'${name}': ${err.reason}`, name, 'non_finite_embedding');
      }
      throw err;
    }
    return { rows, n: ids.length, tokens, dim: model.dim };
  } finally {
    clearTimeout(timer);
    reply.raw.off('close', onClose);
  }
}

function rowOf(rows: Float32Array, dim: number, i: number): Float32Array {
  return rows.subarray(i * dim, (i + 1) * dim);
}

function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
  return v.map((x) => x * inv);
}

/** One float32 row as little-endian bytes in base64 (OpenAI's encoding_format "base64"). */
function base64Row(row: Float32Array): string {
  return Buffer.from(row.buffer, row.byteOffset, row.byteLength).toString('base64');
}

/**
 * A JSON list with one item per row, streamed in chunks of ~64 KB as the socket takes them: 2048 rows
 * of 1536 floats is tens of megabytes of JSON, which one JSON.stringify (and the string it makes)
 * would hold the event loop for.
 */
function rowsStream(head: string, rows: Float32Array, n: number, dim: number, item: (i: number, row: Float32Array) => string, tail: string): Readable {
  return Readable.from(
    (function* () {
      let buf = `${head}[`;
      for (let i = 0; i < n; i++) {
        buf += (i > 0 ? ',' : '') + item(i, rowOf(rows, dim, i));
        if (buf.length >= 65536) {
          yield buf;
          buf = '';
        }
      }
      yield `${buf}]${tail}`;
    })(),
    { objectMode: false },
  );
}

const floats = (row: Float32Array): string => JSON.stringify(Array.from(row));

function pageFile(name: string): Buffer {
  return readFileSync(join(packageRoot, 'public', name));
}

export function registerRoutes(app: FastifyInstance, state: ServerState): void {
  const o = state.options;
  const page = { html: pageFile('index.html'), js: pageFile('app.js') };

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(page.html));
  app.get('/index.html', async (_req, reply) => reply.type('text/html; charset=utf-8').send(page.html));
  app.get('/app.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(page.js));

  app.get('/health', async (_req, reply) => {
    if (state.loaded?.model.disposed) return reply.code(503).send({ status: 'disposed', error: modelDisposed().message });
    if (state.loaded?.model.device === 'cuda') {
      // after a kernel fails, every CUDA call of the process fails: a liveness probe must see it and
      // restart the server (each request would fail until then)
      const gpu = cudaStatus();
      if (!gpu.usable) return reply.code(500).send({ status: 'failed', error: `the GPU is no longer usable: ${gpu.reason}` });
    }
    if (state.loaded) return { status: 'ok' };
    if (state.failed) return reply.code(500).send({ status: 'failed', error: state.failed.message });
    return reply.code(503).send({ status: 'loading' });
  });

  app.get('/info', async () => {
    const { model } = loaded(state);
    const c = state.corpus;
    return {
      model: o.modelName,
      version: state.version,
      dim: model.dim,
      max_length: o.maxLength,
      max_position_embeddings: model.config.maxPositionEmbeddings,
      device: model.device,
      normalized: model.config.normalized,
      batching: o.batching,
      max_batch_tokens: o.maxBatchTokens,
      max_wait_ms: o.maxWaitMs,
      max_queue_tokens: o.maxQueueTokens,
      max_inputs: o.maxInputs,
      max_chars: o.maxChars,
      max_body_bytes: o.maxBodyBytes,
      request_timeout_ms: o.requestTimeoutMs,
      corpus: c ? { texts: c.texts.length, embedded: c.embedded, ready: c.ready, error: c.error?.message ?? null } : null,
    };
  });

  app.get('/metrics', async (_req, reply) => {
    const text = await state.metrics.registry.metrics();
    return reply.type(state.metrics.registry.contentType).send(text);
  });

  app.post('/v1/embeddings', async (req, reply) => {
    const body = objectBody(req);
    const { model } = loaded(state);
    const format = body['encoding_format'] ?? 'float';
    if (format !== 'float' && format !== 'base64') {
      throw badField('encoding_format', `'encoding_format' must be "float" or "base64", got ${jsonShown(format)}`);
    }
    const dims = body['dimensions'];
    if (dims !== undefined && dims !== null) {
      if (typeof dims !== 'number' || !Number.isInteger(dims)) {
        throw badField('dimensions', `'dimensions' must be an integer, got ${jsonShown(dims)}`, 'invalid_type');
      }
      if (dims !== model.dim) {
        throw badField('dimensions', `'dimensions' is ${dims} but this model only gives ${model.dim}-dimensional embeddings`);
      }
    }
    // null is an optional field's default here (encoding_format, dimensions, model, as truncate/normalize)
    if (body['model'] !== undefined && body['model'] !== null && typeof body['model'] !== 'string') {
      throw badField('model', `'model' must be a string, got ${jsonShown(body['model'])}`, 'invalid_type');
    }
    const truncate = optBool(body, 'truncate', false);
    const inputs = readInputs(body['input'], 'input', state.limits, true);
    const { rows, n, tokens, dim } = await embedInputs(state, inputs, truncate, 'input', reply);
    const item = (i: number, row: Float32Array): string =>
      `{"object":"embedding","index":${i},"embedding":${format === 'base64' ? `"${base64Row(row)}"` : floats(row)}}`;
    const tail = `,"model":${JSON.stringify(o.modelName)},"usage":${JSON.stringify({ prompt_tokens: tokens, total_tokens: tokens })}}`;
    return reply.type('application/json; charset=utf-8').send(rowsStream('{"object":"list","data":', rows, n, dim, item, tail));
  });

  app.post('/embed', async (req, reply) => {
    const body = objectBody(req);
    const { model } = loaded(state);
    const normalize = optBool(body, 'normalize', true);
    if (!normalize && model.config.normalized) {
      // the L2 normalisation is the model's own last step (config.json "normalized"): the vectors before
      // it are not kept, and answering normalised ones to a request for raw ones would be silently wrong
      throw badField('normalize', `'normalize': false cannot be done: this model normalises its embeddings itself (config.json "normalized": true)`);
    }
    const truncate = optBool(body, 'truncate', false);
    const dir = body['truncation_direction'];
    if (dir !== undefined && dir !== null && dir !== 'Right' && dir !== 'right') {
      throw badField('truncation_direction', `'truncation_direction' must be "Right" (the only one this server does), got ${jsonShown(dir)}`);
    }
    const inputs = readInputs(body['inputs'], 'inputs', state.limits, false);
    const { rows, n, dim } = await embedInputs(state, inputs, truncate, 'inputs', reply);
    const item = (_i: number, row: Float32Array): string => floats(normalize && !model.config.normalized ? l2normalize(row) : row);
    return reply.type('application/json; charset=utf-8').send(rowsStream('', rows, n, dim, item, ''));
  });

  app.post('/similarity', async (req, reply) => {
    const body = objectBody(req);
    loaded(state);
    const inner = body['inputs'];
    if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) {
      throw badField('inputs', `'inputs' must be an object {"source_sentence": string, "sentences": [string, ...]}`, 'invalid_type');
    }
    const src = (inner as Body)['source_sentence'];
    if (typeof src !== 'string') {
      throw badField('inputs.source_sentence', `'inputs.source_sentence' must be a string, got ${src === undefined ? 'nothing' : jsonShown(src)}`, 'invalid_type');
    }
    const others = readInputs((inner as Body)['sentences'], 'inputs.sentences', state.limits, false);
    if (others.kind !== 'texts') throw new Error('unreachable: texts only');
    if (others.single) {
      throw badField('inputs.sentences', `'inputs.sentences' must be an array of strings, got a string`, 'invalid_type');
    }
    readInputs(src, 'inputs.source_sentence', state.limits, false); // same checks for the query
    const truncate = optBool(body, 'truncate', false);
    const names = ['inputs.source_sentence', ...others.texts.map((_, i) => `inputs.sentences[${i}]`)];
    const all: Inputs = { kind: 'texts', texts: [src, ...others.texts], single: false, names };
    const { rows, n, dim } = await embedInputs(state, all, truncate, 'inputs', reply);
    const q = rowOf(rows, dim, 0);
    const scores: number[] = [];
    for (let i = 1; i < n; i++) scores.push(cosine(q, rowOf(rows, dim, i)));
    return scores;
  });

  app.post('/search', async (req, reply) => {
    const body = objectBody(req);
    loaded(state);
    const corpus = state.corpus;
    if (!corpus) throw new ApiError(404, 'no corpus is loaded: start the server with --corpus FILE', null, 'no_corpus');
    if (corpus.error) throw new ApiError(500, `the corpus could not be embedded: ${corpus.error.message}`, null, 'corpus_failed');
    if (!corpus.ready) {
      throw new ApiError(503, `the corpus is still being embedded (${corpus.embedded} of ${corpus.texts.length} texts)`, null, 'loading', 'overloaded_error', 2);
    }
    const k = body['k'] ?? 10;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > 100) {
      throw badField('k', `'k' must be an integer from 1 to 100, got ${jsonShown(k)}`);
    }
    // one text (readInputs' message for other kinds offers arrays, which /search does not take)
    const given = body['query'];
    if (given !== undefined && given !== null && typeof given !== 'string') throw badField('query', `'query' must be a string, got ${typeName(given)}`, 'invalid_type');
    // (an embeddings input may be blank; a search for nothing is a mistake)
    if (typeof given === 'string' && given.length > 0 && given.trim() === '') throw badField('query', `'query' must not be only whitespace`, 'empty_input');
    const query = readInputs(body['query'], 'query', state.limits, false);
    const { rows } = await embedInputs(state, query, true, 'query', reply);
    return { query: body['query'], results: await corpus.search(rows, k) };
  });
}
