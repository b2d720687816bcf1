// `serve(model, options)`: the embeddings server on fastify. Routes (see routes.ts) speak OpenAI's and
// TEI's shapes; every text goes through one Batcher (dynamic batching, bounded queue); every error is
// JSON in OpenAI's error shape, those of the HTTP layer below the routes too (a URL that is not valid,
// headers over Node's limit, bytes that are not HTTP). close() stops accepting, lets in-flight requests
// finish, then resolves; requestTimeoutMs bounds each phase of a request, so that one client cannot hold
// close() open: receiving it, answering it, and the client's reading of the answer.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { STATUS_CODES, maxHeaderSize, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { basename, join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { cacheSnapshotRepo } from '../hub/cache.js';
import { type Device, type EmbeddingModel } from '../model/embedding-model.js';
import { packageRoot } from '../native.js';
import { Batcher } from './batcher.js';
import { CorpusIndex } from './corpus.js';
import { ApiError, modelDisposed } from './errors.js';
import type { InputLimits } from './inputs.js';
import { ServerMetrics } from './metrics.js';
import { registerRoutes } from './routes.js';
import { sweepMs, watchReceiving } from './receive-timeout.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, optionKeys } from '../util/options.js';
import { parseJson } from '../util/json.js';

export interface ServeOptions {
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 8080; 0 picks a free port (see handle.port). */
  port?: number;
  /** When set, every API route needs `Authorization: Bearer KEY` (the page and /health do not). */
  apiKey?: string;
  /** Tokens per packed batch (default by device: DEFAULT_MAX_BATCH_TOKENS). */
  maxBatchTokens?: number;
  /** Longest wait for more requests before a batch starts (default 5 ms). */
  maxWaitMs?: number;
  /** Tokens allowed to wait; beyond, 503 with Retry-After (default 262144). */
  maxQueueTokens?: number;
  /** Merge concurrent requests into shared batches (default true); false encodes each alone. */
  batching?: boolean;
  /** Inputs per request (default 2048). */
  maxInputs?: number;
  /** Characters per text (default 65536). */
  maxChars?: number;
  /** Request body bytes (default 16 MiB). */
  maxBodyBytes?: number;
  /**
   * Tokens per input, BOS included (default: the model's max_position_embeddings); longer → 413 unless
   * the request asks to truncate. Above max_position_embeddings is allowed, with a notice at load.
   */
  maxLength?: number;
  /**
   * A request not answered within this long is dropped with a 503 (default 60000 ms). The same bound
   * holds for receiving a request (not received in full: 408) and for the client's reading of the
   * answer (a client that reads none of it for this long is disconnected).
   */
  requestTimeoutMs?: number;
  /** Texts for the search page. */
  corpus?: string[];
  /**
   * A .npy of the corpus vectors: read when it exists, written after embedding otherwise. One that
   * cannot be read, is not a .npy matrix, or has not one row per text is refused before listening
   * (serve() rejects, CorpusVectorsError); one of another width than the model's, or of other texts'
   * or another model's vectors (a sample of rows is embedded again), by `ready`.
   */
  corpusVectors?: string;
  /** The `model` name in responses (default: the model folder's name; a Hub model's repo id). */
  modelName?: string;
  /** One-line notices (listening, corpus progress); default: none. */
  onLog?: (line: string) => void;
}

export interface ServerHandle {
  /** http://host:port */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /**
   * Resolves when the model is loaded; rejects when loading fails, or when the model does not fit the
   * options (maxQueueTokens below its input length, a corpusVectors file that is not its vectors of
   * the corpus).
   */
  readonly ready: Promise<void>;
  /** Resolves when the corpus is embedded (at once without one). */
  readonly corpusReady: Promise<void>;
  /** Stops accepting connections, finishes requests in flight, then resolves. Idempotent. */
  close(): Promise<void>;
}

/** Options with their defaults filled in. */
export type ResolvedOptions = Required<Omit<ServeOptions, 'apiKey' | 'corpus' | 'corpusVectors' | 'modelName' | 'onLog'>> &
  Pick<ServeOptions, 'apiKey' | 'corpusVectors'> & { modelName: string; onLog: (line: string) => void };

/** What a route needs: the loaded model and its batcher (null while loading). */
export interface ServerState {
  options: ResolvedOptions;
  limits: InputLimits;
  metrics: ServerMetrics;
  version: string;
  loaded: { model: EmbeddingModel; batcher: Batcher } | null;
  corpus: CorpusIndex | null;
  /** Why the model could not be loaded. */
  failed: Error | null;
}

/**
 * Tokens per packed batch by device. On the CPU backend a packed batch's throughput falls once its
 * activations leave the caches (measured with the demo's model shape: 18k tokens/s at ~450 tokens per
 * batch, 8k at ~28k), while a GPU wants large batches.
 */
export const DEFAULT_MAX_BATCH_TOKENS: Record<Device, number> = { cpu: 2048, cuda: 16384 };

const PUBLIC_PATHS = new Set(['/', '/index.html', '/app.js', '/health']);

/** The longest delay a Node timer keeps (2^31 - 1 ms, about 24.8 days): a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why `v` ms cannot be a timer's delay (a sentence to follow its name), or undefined when it can. */
export function timerTooLong(v: number): string | undefined {
  return v > MAX_TIMER_MS ? `must be at most ${MAX_TIMER_MS} (about 24.8 days, the longest timer Node keeps), got ${v}` : undefined;
}

function timerMs(name: string, v: number): number {
  const why = timerTooLong(v);
  if (why) throw new Error(`serve: ${name} ${why}`);
  return v;
}

function positive(name: string, v: number, integer = true): number {
  if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isInteger(v))) {
    throw new Error(`serve: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${describeValue(v)}`);
  }
  return v;
}

const SERVE_OPTIONS = optionKeys<ServeOptions>({
  host: true, port: true, apiKey: true, maxBatchTokens: true, maxWaitMs: true, maxQueueTokens: true, batching: true, maxInputs: true,
  maxChars: true, maxBodyBytes: true, maxLength: true, requestTimeoutMs: true, corpus: true, corpusVectors: true, modelName: true, onLog: true,
});

/**
 * Why `key` can never match an Authorization header (null: it can): HTTP trims a header value's
 * surrounding whitespace and carries no control characters, so a key read with its line end (a secret
 * file, `$'KEY\n'`) locked every client out with 401s.
 */
export function apiKeyProblem(key: string): string | null {
  if (key !== key.trim()) return 'the key starts or ends with whitespace (a line end read with it?), which no Authorization header carries: remove it';
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'the key holds a control character, which no Authorization header carries';
  return null;
}

function resolveOptions(o: ServeOptions): ResolvedOptions {
  checkOptions('serve', o, SERVE_OPTIONS); // a misspelt apiKey must not leave the server open
  if (o.corpus !== undefined && (!Array.isArray(o.corpus) || !o.corpus.every((t) => typeof t === 'string'))) {
    throw new TypeError(`serve: corpus must be an array of strings (the texts; the CLI's --corpus reads them from a file), got ${describeValue(o.corpus)}`);
  }
  // checked before anything uses them: a number as apiKey failed inside the hash at every request,
  // answering 500 with the key in the message
  for (const key of ['host', 'apiKey', 'corpusVectors', 'modelName'] as const) {
    const v = o[key];
    if (v !== undefined && typeof v !== 'string') throw new TypeError(`serve: ${key} must be a string, got ${describeValue(v)}`);
  }
  const keyProblem = typeof o.apiKey === 'string' && o.apiKey !== '' ? apiKeyProblem(o.apiKey) : null;
  if (keyProblem) throw new RangeError(`serve: apiKey: ${keyProblem}`);
  if (o.onLog !== undefined && typeof o.onLog !== 'function') throw new TypeError(`serve: onLog must be a function, got ${describeValue(o.onLog)}`);
  const r = {
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 8080,
    apiKey: o.apiKey === '' ? undefined : o.apiKey,
    maxBatchTokens: o.maxBatchTokens === undefined ? 0 : positive('maxBatchTokens', o.maxBatchTokens), // 0: by device, at load
    maxWaitMs: o.maxWaitMs ?? 5,
    maxQueueTokens: positive('maxQueueTokens', o.maxQueueTokens ?? 262144),
    batching: o.batching ?? true,
    maxInputs: positive('maxInputs', o.maxInputs ?? 2048),
    maxChars: positive('maxChars', o.maxChars ?? 65536),
    maxBodyBytes: positive('maxBodyBytes', o.maxBodyBytes ?? 16 * 1024 * 1024),
    maxLength: o.maxLength === undefined ? 0 : positive('maxLength', o.maxLength), // 0: the model's, at load
    requestTimeoutMs: timerMs('requestTimeoutMs', positive('requestTimeoutMs', o.requestTimeoutMs ?? 60000)),
    corpusVectors: o.corpusVectors,
    modelName: o.modelName ?? 'l2e',
    onLog: o.onLog ?? (() => {}),
  };
  if (typeof r.batching !== 'boolean') throw new TypeError(`serve: batching must be true or false, got ${JSON.stringify(r.batching)}`);
  if (typeof r.maxWaitMs !== 'number' || !(r.maxWaitMs >= 0)) throw new Error(`serve: maxWaitMs must be ≥ 0, got ${describeValue(r.maxWaitMs)}`);
  timerMs('maxWaitMs', r.maxWaitMs);
  if (!Number.isInteger(r.port) || r.port < 0 || r.port > 65535) throw new Error(`serve: port must be an integer in [0, 65535], got ${describeValue(r.port)}`);
  if (r.maxLength > 0) checkQueueFits(r);
  return r;
}

/** Why the server could not listen, in words that name the host and port. */
function listenFailure(err: unknown, host: string, port: number): Error {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const why: Record<string, string> = {
    EADDRINUSE: 'the port is in use (choose another port, or 0 for any free one)',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EADDRNOTAVAIL: "the address is not one of this machine's",
    ENOTFOUND: 'no such host',
    EAI_AGAIN: 'the host name could not be resolved',
  };
  if (code === undefined || !(code in why)) return err instanceof Error ? err : new Error(String(err));
  return new Error(`could not listen on ${host}:${port}: ${why[code]} (${code})`, { cause: err });
}

/** maxQueueTokens below maxLength (given, or the model's once loaded): one long text could never be queued. */
export class QueueTooSmallError extends Error {
  constructor(
    readonly maxQueueTokens: number,
    readonly maxLength: number,
  ) {
    super(`serve: maxQueueTokens (${maxQueueTokens}) must be at least maxLength (${maxLength}), or a single long text could never be queued`);
  }
}

function checkQueueFits(r: { maxQueueTokens: number; maxLength: number }): void {
  if (r.maxQueueTokens < r.maxLength) throw new QueueTooSmallError(r.maxQueueTokens, r.maxLength);
}

function readVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function sameKey(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Fastify's own errors (body limits, media type, …) in our shape and words. */
function toApiError(err: unknown, maxBodyBytes: number): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, `the request body is larger than the limit of ${maxBodyBytes} bytes (the server's --max-body-bytes)`, null, 'body_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'the request body must be JSON (Content-Type: application/json)', null, 'unsupported_media_type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'the request body is empty; send a JSON object', null, 'empty_body');
    case 'FST_ERR_BAD_URL':
      return new ApiError(400, `the request's URL is not valid: ${e.message}`, null, 'invalid_url');
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return new ApiError(e.statusCode, e.message ?? 'bad request', null, e.code ?? null);
  // the details go to the server's log (the error handler), not to the client: they may name files,
  // or values a client must not see
  return new ApiError(500, "internal error (the server's log has the details)", null, 'internal_error');
}

/**
 * The answer to a request Node's HTTP parser refused before any route saw it (Fastify's clientError
 * handler): headers over Node's limit (431), a request not received in full in time (408), bytes that
 * are not HTTP (400). Written only where no answer has begun on the connection, which then closes.
 */
function clientErrorAnswer(err: NodeJS.ErrnoException, requestTimeoutMs: number): ApiError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError(431, `the request's headers (its URL among them) are larger than the limit of ${maxHeaderSize} bytes`, null, 'headers_too_large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError(408, `the request was not received in full within ${requestTimeoutMs} ms`, null, 'request_timeout');
  }
  return new ApiError(400, `the request is not valid HTTP/1.1 (${err.code ?? err.message})`, null, 'invalid_http');
}

/** The charset a Content-Type names, lower-cased and unquoted; undefined when it names none. */
function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType ?? '');
  return m ? m[2]!.toLowerCase() : undefined;
}

/**
 * Closes the connection of a response whose client has read none of it for `ms` (its socket's
 * inactivity timer, armed as the answer is sent; Node re-arms that timer for keep-alive once the
 * response is finished). A client that stops reading would otherwise hold the answer's memory, and
 * close(), forever.
 */
function closeWhenUnread(res: ServerResponse, ms: number): void {
  res.setTimeout(ms, () => {
    if (!res.writableFinished) res.socket?.destroy();
  });
}

/**
 * Starts the server for `model` (or a promise of it: the server listens at once, and answers 503 with
 * /health "loading" until it resolves). The caller keeps ownership of the model (dispose it after close()).
 */
export async function serve(model: EmbeddingModel | Promise<EmbeddingModel>, options: ServeOptions = {}): Promise<ServerHandle> {
  const o = resolveOptions(options);
  // a model that cannot serve is refused before listening, not answered 503 (disposed) or 500 (not a model)
  const m = model as Partial<EmbeddingModel> | null | undefined;
  const promised = typeof (model as { then?: unknown } | null)?.then === 'function';
  if (!promised && (typeof m !== 'object' || m === null || typeof m.encode !== 'function')) {
    throw new TypeError(`serve: model must be an EmbeddingModel or a promise of one, got ${describeValue(model)}`);
  }
  if (!promised && m!.disposed) throw new Error('serve: the model has been disposed');
  const corpus = options.corpus ? new CorpusIndex(options.corpus) : null;
  // a vectors file that cannot be the corpus's is refused before listening (the rest by ready)
  if (corpus && o.corpusVectors !== undefined) corpus.readSaved(o.corpusVectors);
  const metrics = new ServerMetrics();
  const state: ServerState = {
    options: o,
    limits: { maxInputs: o.maxInputs, maxChars: o.maxChars, maxLength: o.maxLength },
    metrics,
    version: readVersion(),
    loaded: null,
    corpus,
    failed: null,
  };

  // every request is counted once, by route and status, when its connection is done with it: 499 when
  // it ended before the answer was sent in full (the client went away, or stopped reading)
  const count = (route: string, status: number, seconds: number): void => {
    metrics.requests.inc({ route, status: String(status) });
    metrics.latency.observe({ route }, seconds);
  };
  // the answer to the last request parsed on each connection (pipelined ones are answered in turn)
  const lastAnswer = new WeakMap<object, ServerResponse>();
  // a routed request the HTTP parser then refused (its body not valid HTTP): the status written for it
  const refusedMidRequest = new WeakMap<object, number>();

  const app: FastifyInstance = Fastify({
    bodyLimit: o.maxBodyBytes,
    requestTimeout: o.requestTimeoutMs, // receiving a request
    // Node enforces both on a sweep (every 30 s by default: a 1 s limit answered 408 after up to 80 s)
    // requireHostHeader: Node's own refusal of an HTTP/1.1 request with no Host was a bare 400, in no
    // shape and counted nowhere: the onRequest hook refuses it
    http: { headersTimeout: o.requestTimeoutMs, connectionsCheckingInterval: sweepMs(o.requestTimeoutMs), requireHostHeader: false },
    forceCloseConnections: 'idle',
    return503OnClosing: false, // our onRequest hook answers, in our error shape
    logger: false,
    frameworkErrors: (err, _req, reply) => {
      const api = toApiError(err, o.maxBodyBytes);
      count('unmatched', api.status, 0);
      void (reply as FastifyReply).code(api.status).send(api.body());
    },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Duplex) => {
      // the client is gone (reset, or its end of the connection closed mid-request): nothing to answer
      if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || socket.destroyed) return void socket.destroy();
      const last = lastAnswer.get(socket);
      if (last && last.req.complete && !last.writableFinished) {
        // requests received whole, then bytes that are not HTTP (pipelined after them): their answers
        // are still owed, and the connection ends after the last; the bytes get none (a 400 was read as
        // the answer to the request before them)
        if (!last.headersSent) last.shouldKeepAlive = false; // Node ends the connection after it
        else last.once('finish', () => (socket as Socket).destroySoon()); // begun as keep-alive: ended here
        return;
      }
      // an answer already begun on this connection would be corrupted by another one
      const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (socket.writable && !inFlight?.headersSent) {
        const api = clientErrorAnswer(err, o.requestTimeoutMs);
        const body = JSON.stringify(api.body());
        if (inFlight) refusedMidRequest.set(inFlight, api.status); // counted under its route as it closes
        else count('unmatched', api.status, 0);
        socket.write(
          `HTTP/1.1 ${api.status} ${STATUS_CODES[api.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
  });

  // JSON bodies only: strict UTF-8 first (invalid bytes are an error, not silently replaced), then JSON.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    const charset = charsetOf(req.headers['content-type']);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      done(new ApiError(415, `the request body's charset "${charset}" is not supported; send JSON in UTF-8`, null, 'unsupported_charset'), undefined);
      return;
    }
    const encoding = req.headers['content-encoding']?.trim().toLowerCase();
    if (encoding && encoding !== 'identity') {
      const msg = `the request body's Content-Encoding "${encoding}" is not supported; send it uncompressed`;
      done(new ApiError(415, msg, null, 'unsupported_encoding'), undefined);
      return;
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      done(new ApiError(400, 'the request body is not valid UTF-8', null, 'invalid_utf8'), undefined);
      return;
    }
    if (text.trim() === '') {
      done(new ApiError(400, 'the request body is empty; send a JSON object', null, 'empty_body'), undefined);
      return;
    }
    try {
      done(null, parseJson(text));
    } catch (err) {
      done(new ApiError(400, `the request body is not valid JSON (${(err as Error).message})`, null, 'invalid_json'), undefined);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const api = toApiError(err, o.maxBodyBytes);
    if (api.status >= 500 && api.code === 'internal_error') o.onLog(`error: internal error: ${err instanceof Error ? err.message : String(err)}`);
    if (api.retryAfter !== undefined) void reply.header('retry-after', String(api.retryAfter));
    if (api.status === 401) void reply.header('www-authenticate', 'Bearer'); // RFC 9110: a 401 names its scheme
    if (api.status === 405) void reply.header('allow', allowedMethods(req).join(', ')); // and a 405 its methods
    void reply.code(api.status).send(api.body());
  });
  /** The methods the request's path has routes for (none: the path is not served). */
  const allowedMethods = (req: FastifyRequest): string[] => {
    const url = req.url.split('?')[0]!;
    return ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].filter((method) => app.hasRoute({ method, url }));
  };
  // a path served for other methods is a 405 naming them (with Allow), not a 404
  const notFound = (req: FastifyRequest): ApiError => {
    const path = req.url.split('?')[0];
    const allowed = allowedMethods(req);
    if (allowed.length > 0) return new ApiError(405, `${path} takes ${allowed.join(', ')}, not ${req.method}`, null, 'method_not_allowed');
    return new ApiError(404, `no route ${req.method} ${path}`, null, 'not_found');
  };
  app.setNotFoundHandler(async (req) => {
    throw notFound(req); // answered by the error handler (a 405's Allow there)
  });

  let closingNow = false;
  const stalled = watchReceiving(app.server, o.requestTimeoutMs); // swept while closing
  app.server.on('request', (req: IncomingMessage, res: ServerResponse) => lastAnswer.set(req.socket, res));
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    reply.raw.once('close', () => {
      const status = reply.raw.writableFinished ? reply.statusCode : (refusedMidRequest.get(reply.raw) ?? 499);
      count(req.routeOptions.url ?? 'unmatched', status, (performance.now() - started) / 1000);
    });
    if (closingNow) throw new ApiError(503, 'the server is shutting down', null, 'shutting_down', 'overloaded_error', 5);
    if (req.raw.httpVersion === '1.1' && req.headers.host === undefined) {
      throw new ApiError(400, 'the request has no Host header (HTTP/1.1 requires one)', null, 'missing_host');
    }
    if (o.apiKey && !PUBLIC_PATHS.has(req.url.split('?')[0]!)) {
      const auth = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameKey(m[1]!.trim(), o.apiKey)) {
        throw new ApiError(401, 'a valid API key is required: send "Authorization: Bearer KEY"', null, 'invalid_api_key');
      }
    }
    // before its body is read: a request for no route is a 404, whatever it carries
    if (req.is404) throw notFound(req);
  });

  // While closing, responses end their connections (else a keep-alive client holds close() open).
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closingNow) void reply.header('connection', 'close');
    closeWhenUnread(reply.raw, o.requestTimeoutMs);
    return payload;
  });

  registerRoutes(app, state);

  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await app.close();
    throw listenFailure(err, o.host, o.port);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const hostForUrl = o.host.includes(':') ? `[${o.host}]` : o.host;

  const ready = Promise.resolve(model)
    .then(async (m) => {
      // as for a model given itself, above: a loaded model that was disposed before it came cannot serve
      if (m.disposed) throw new Error('serve: the model has been disposed');
      // a Hub model's folder is its snapshot's commit: the repo names it
      if (!options.modelName && m.dir) o.modelName = cacheSnapshotRepo(m.dir) ?? basename(m.dir);
      if (o.maxBatchTokens === 0) o.maxBatchTokens = DEFAULT_MAX_BATCH_TOKENS[m.device];
      if (o.maxLength === 0) {
        o.maxLength = m.config.maxPositionEmbeddings;
        checkQueueFits(o);
      }
      state.limits.maxLength = o.maxLength;
      m.warnMaxLength(o.maxLength); // the batches go to native code directly: said here, once
      // a saved corpus vectors file against the model (its width, its texts, a sample embedded again,
      // by the model itself: no request waits on it yet): a file that cannot serve fails ready, never
      // the server after it
      await state.corpus?.checkSaved({
        dim: m.dim,
        maxLength: o.maxLength,
        embed: async (texts) => (await m.encode(texts, { maxLength: o.maxLength })).data,
        onLog: o.onLog,
      });
      const batcher: Batcher = new Batcher(
        async (tokens, cuSeqlens) => {
          if (m.disposed) throw modelDisposed(); // queued before dispose(), not yet on the device
          return (await m.hold((native) => native.encode(tokens, cuSeqlens))).embeddings;
        },
        m.dim,
        { maxBatchTokens: o.maxBatchTokens, maxWaitMs: o.maxWaitMs, maxQueueTokens: o.maxQueueTokens, merge: o.batching },
        metrics.batcherEvents(() => batcher.tokensPerSecond),
      );
      state.loaded = { model: m, batcher };
    })
    .catch((err: unknown) => {
      // loading failed, or the model does not fit the options (its maxLength past maxQueueTokens, a
      // corpus vectors file that is not this model's vectors of the corpus)
      state.failed = err instanceof Error ? err : new Error(String(err));
      throw state.failed;
    });
  const corpusReady = ready.then(async () => {
    const corpus = state.corpus;
    if (!corpus) return;
    const { model: m, batcher } = state.loaded!;
    let lastShown = -1;
    try {
      await corpus.build({
        batcher,
        tokenizer: m.tokenizer,
        vocabSize: m.config.vocabSize,
        dim: m.dim,
        maxLength: o.maxLength,
        vectorsFile: o.corpusVectors,
        submitTokens: o.maxBatchTokens,
        onSaveFailed: (why) => o.onLog(`corpus: the vectors embedded could not be saved (${why}); they are served all the same`),
        onProgress: (done, total) => {
          const tenth = Math.floor((done / total) * 10);
          if (tenth !== lastShown) {
            lastShown = tenth;
            o.onLog(`corpus: embedded ${done}/${total} texts`);
          }
        },
        onRead: (rows, checked) => o.onLog(`corpus: read ${rows} vectors from ${o.corpusVectors} (${checked} of them checked against the model)`),
      });
    } catch (err) {
      corpus.error = err instanceof Error ? err : new Error(String(err));
      throw corpus.error;
    }
  });
  // a failure is reported through the handle's promises and /health; never an unhandled rejection
  ready.catch(() => {});
  corpusReady.catch(() => {});

  let closing: Promise<void> | null = null;
  return {
    url: `http://${hostForUrl}:${port}`,
    host: o.host,
    port,
    ready,
    corpusReady,
    close() {
      closing ??= (async () => {
        closingNow = true;
        state.corpus?.cancel();
        const stopSweep = stalled.sweepWhileClosing();
        try {
          await app.close(); // stops accepting; in-flight requests finish first
        } finally {
          stopSweep();
        }
        await state.loaded?.batcher.idle(); // the corpus's batches, if it is still being embedded
      })();
      return closing;
    },
  };
}
