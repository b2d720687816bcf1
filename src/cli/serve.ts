// `l2e serve`: the embeddings server (OpenAI- and TEI-compatible, dynamic batching, search page) until
// SIGTERM, SIGINT or SIGHUP, which stop accepting, finish the requests in flight and exit 0 (a second
// one exits at once).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCorpusAs, type CorpusFormat } from '../mine/corpus.js';
import { localModelFolder } from '../hub/resolve.js';
import { readConfig } from '../model/config.js';
import { EmbeddingModel } from '../model/embedding-model.js';
import { cudaStatus } from '../native.js';
import { CorpusVectorsError } from '../server/corpus.js';
import { apiKeyProblem, QueueTooSmallError, serve, timerTooLong, type ServerHandle } from '../server/server.js';
import { opt, UsageError } from './args.js';
import type { Command } from './command.js';
import { stopGracefully } from './signals.js';
import { deviceOf, positiveInt } from './source-options.js';

export const command: Command = {
  name: 'serve',
  ownsSignals: true,
  summary: 'embeddings server: OpenAI and TEI endpoints, dynamic batching, search page',
  usage: `Usage: l2e serve --model DIR|org/name [--device cpu|cuda] [--host 127.0.0.1] [--port 8080]
                 [--corpus FILE] [--api-key KEY] [limits…]

Serves the model over HTTP until SIGTERM/SIGINT/SIGHUP (then finishes the requests in flight and
exits 0; a second signal exits at once):
  POST /v1/embeddings  OpenAI's shape (point an OpenAI client's base URL at http://HOST:PORT/v1)
  POST /embed          TEI's shape {"inputs", "normalize", "truncate"}
  POST /similarity     TEI's shape {"inputs": {"source_sentence", "sentences"}} → cosine scores
  POST /search         {"query", "k"} → the k nearest texts of --corpus
  GET  /health /info /metrics (Prometheus), and GET / a search page over --corpus.
Concurrent requests are merged into packed batches of at most --max-batch-tokens, waiting at most
--max-wait-ms for company; beyond --max-queue-tokens waiting, requests get 503 with Retry-After.
The API key may also come from L2E_API_KEY. Listens on 127.0.0.1 only unless --host says otherwise.`,
  options: {
    model: { kind: 'string', help: 'model folder or hub id', metavar: 'DIR', required: true },
    device: { kind: 'string', help: 'cpu or cuda', default: 'cpu' },
    host: { kind: 'string', help: 'address to listen on', default: '127.0.0.1' },
    port: { kind: 'integer', help: 'port (0: any free port)', default: 8080 },
    'api-key': { kind: 'string', help: 'require "Authorization: Bearer KEY" (or set L2E_API_KEY)', metavar: 'KEY' },
    corpus: { kind: 'string', help: 'texts for the search page: JSONL, plain lines or a .json list', metavar: 'FILE' },
    'corpus-field': { kind: 'string', help: 'JSONL field holding the corpus text', default: 'text' },
    'corpus-format': { kind: 'string', help: "the corpus's format when its name does not say: text, jsonl or json", metavar: 'FORMAT' },
    'corpus-vectors': {
      kind: 'string',
      help: ".npy of the corpus vectors: read if present (checked: its shape, FILE.json's fingerprint of the texts, 8 rows embedded again; every row when FILE.json is missing), else written with FILE.json",
      metavar: 'FILE',
    },
    'max-batch-tokens': { kind: 'integer', help: 'tokens per packed batch (default 2048 on cpu, 16384 on cuda)' },
    'max-wait-ms': { kind: 'number', help: 'longest wait for more requests before a batch', default: 5 },
    'max-queue-tokens': { kind: 'integer', help: 'tokens allowed to wait (beyond: 503)', default: 262144 },
    batching: { kind: 'boolean', help: 'merge concurrent requests (--no-batching: one request per batch)', default: true },
    'max-length': {
      kind: 'integer',
      help: "tokens per input, BOS included (longer: 413 unless truncate); default the model's max_position_embeddings (above it: a warning)",
    },
    'max-inputs': { kind: 'integer', help: 'inputs per request', default: 2048 },
    'max-chars': { kind: 'integer', help: 'characters (Unicode code points) per text', default: 65536 },
    'max-body-bytes': { kind: 'integer', help: 'request body size limit', default: 16 * 1024 * 1024 },
    'request-timeout-ms': {
      kind: 'integer',
      help: 'drop a request not answered within this long (503), or not received in full (408); close the connection of a client that reads none of its answer for this long',
      default: 60000,
    },
    'model-name': { kind: 'string', help: "the `model` in responses and /info (default: the model folder's name)", metavar: 'NAME' },
  },
  async run(args) {
    const device = deviceOf(args);
    const port = opt.num(args, 'port')!;
    if (port < 0 || port > 65535) throw new UsageError(`--port must be in [0, 65535], got ${port}`);
    const timer = (name: string, v: number): number => {
      const why = timerTooLong(v);
      if (why) throw new UsageError(`--${name} ${why}`);
      return v;
    };
    const maxWaitMs = timer('max-wait-ms', opt.num(args, 'max-wait-ms')!);
    if (maxWaitMs < 0) throw new UsageError(`--max-wait-ms must be ≥ 0, got ${maxWaitMs}`);
    const int = (name: string): number => positiveInt(args, name)!;
    const modelName = opt.str(args, 'model-name');
    if (modelName?.trim() === '') throw new UsageError('--model-name must not be empty');
    const keyFlag = opt.str(args, 'api-key');
    const apiKey = keyFlag ?? process.env['L2E_API_KEY'];
    if (apiKey !== undefined) {
      const keyFrom = keyFlag !== undefined ? '--api-key' : 'L2E_API_KEY';
      // (an empty L2E_API_KEY, a secret not filled in, served every client without a key)
      if (apiKey === '') throw new UsageError(`${keyFrom} is set but empty: set a key, or unset it to serve without one`);
      const why = apiKeyProblem(apiKey);
      if (why) throw new UsageError(`${keyFrom}: ${why}`);
    }
    const options = {
      host: opt.str(args, 'host')!,
      port,
      apiKey,
      maxBatchTokens: positiveInt(args, 'max-batch-tokens'),
      maxWaitMs,
      maxQueueTokens: int('max-queue-tokens'),
      batching: opt.bool(args, 'batching'),
      maxLength: positiveInt(args, 'max-length'), // default: the model's, once loaded
      maxInputs: int('max-inputs'),
      maxChars: int('max-chars'),
      maxBodyBytes: int('max-body-bytes'),
      requestTimeoutMs: timer('request-timeout-ms', int('request-timeout-ms')),
      corpusVectors: opt.str(args, 'corpus-vectors'),
      modelName,
      onLog: (line: string) => process.stderr.write(`${line}\n`),
    };
    if (options.maxLength !== undefined && options.maxQueueTokens < options.maxLength) {
      throw new UsageError(`--max-queue-tokens (${options.maxQueueTokens}) must be at least --max-length (${options.maxLength})`);
    }
    // without --max-length the model's input length bounds the queue: a model folder here says it
    // before the server listens (a Hub id is resolved while it listens, and says it once loaded)
    const modelRef = opt.str(args, 'model')!;
    const folderLength = options.maxLength === undefined ? folderInputLength(modelRef) : undefined;
    if (folderLength !== undefined && options.maxQueueTokens < folderLength) throw queueTooSmall(options.maxQueueTokens, folderLength);
    let corpus: string[] | undefined;
    const corpusFile = opt.str(args, 'corpus');
    for (const flag of ['corpus-field', 'corpus-format', 'corpus-vectors']) {
      if (corpusFile === undefined && args.given.has(flag)) throw new UsageError(`--${flag} is for the search corpus: give --corpus FILE too`);
    }
    const corpusFormat = opt.str(args, 'corpus-format');
    if (corpusFormat !== undefined && !['text', 'jsonl', 'json'].includes(corpusFormat)) {
      throw new UsageError(`--corpus-format must be text, jsonl or json, got ${corpusFormat}`);
    }
    if (corpusFile !== undefined) {
      corpus = (await readCorpusAs(corpusFile, [opt.str(args, 'corpus-field')!], corpusFormat as CorpusFormat | undefined, '--corpus-format')).texts;
      if (corpus.length === 0) throw new Error(`${corpusFile}: no texts`);
      process.stderr.write(`corpus: ${corpus.length} texts from ${corpusFile}\n`);
    }

    // a model folder that is not there (or cannot be a model's) fails before the server listens, not
    // once it is listening; a Hub id is resolved while it listens
    localModelFolder(modelRef);
    const load = (): Promise<EmbeddingModel> => EmbeddingModel.load(modelRef, { device });
    // a GPU that is not there fails the command before it listens (its load fails with the reason)
    if (device === 'cuda' && !cudaStatus().usable) (await load()).dispose();
    // the load starts once serve() has refused what it can without the model (a --corpus-vectors file
    // of another row count), so that such a refusal ends the command at once
    let startLoading!: () => void;
    const loading = new Promise<void>((resolve) => (startLoading = resolve)).then(load);
    loading.catch(() => {}); // reported through handle.ready below
    // the model, loaded for a server that it does not fit, is freed once it comes
    const disposeModel = (): void => void loading.then((m) => m.dispose(), () => {});
    // a --corpus-vectors file that cannot serve: the flag and the file, before listening or once the
    // model is loaded, never after "ready"
    const vectorsFailure = (err: unknown): unknown => (err instanceof CorpusVectorsError ? new Error(`--corpus-vectors ${err.message}`, { cause: err }) : err);
    let handle: ServerHandle;
    try {
      handle = await serve(loading, { ...options, corpus });
    } catch (err) {
      throw vectorsFailure(err);
    }
    startLoading();
    process.stderr.write(`listening on ${handle.url} (model loading…)\n`);
    let signalled = false; // a stop asked for: the corpus embedding it cancels is no failure
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => {
      stop = () => {
        signalled = true;
        void handle.close().then(resolve);
      };
    });
    // a second signal ends the process at once, dropping the requests still in flight
    const unhook = stopGracefully('serve', 'finishing requests in flight, then exiting', 'dropping the requests in flight', stop).off;
    let model: EmbeddingModel | undefined;
    try {
      // a stop asked for while the model loads (or the corpus vectors are checked) ends the wait: no
      // "ready" after it, and no failure of what it interrupted
      await Promise.race([handle.ready, stopped]);
      if (!signalled) model = await loading;
    } catch (err) {
      if (!signalled) {
        unhook();
        await handle.close();
        disposeModel();
        if (err instanceof QueueTooSmallError) throw queueTooSmall(err.maxQueueTokens, err.maxLength);
        throw vectorsFailure(err);
      }
    }
    if (!model) {
      // (signalled)
      unhook();
      await stopped;
      disposeModel();
      process.stderr.write('stopped\n');
      return 0;
    }
    process.stderr.write(`ready: ${model.dim}-dim embeddings on ${model.device}; open ${handle.url}/ for the search page\n`);
    // a search corpus that cannot be embedded stops the server, as a --corpus file that cannot be read
    // does before it listens (a vectors file that cannot serve failed ready above)
    let corpusFailure: Error | undefined;
    const corpusFailed = handle.corpusReady.then(
      () => {
        if (corpus) process.stderr.write(`corpus: ready (${corpus.length} texts)\n`);
        return new Promise<void>(() => {}); // served until a signal
      },
      (err: unknown) => {
        if (signalled) return stopped; // closing cancelled the embedding: exit as the signal asked
        corpusFailure = new Error(`corpus: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      },
    );
    await Promise.race([stopped, corpusFailed]);
    unhook();
    if (corpusFailure) {
      await handle.close();
      model.dispose();
      throw corpusFailure;
    }
    model.dispose();
    process.stderr.write('stopped\n');
    return 0;
  },
};

function queueTooSmall(maxQueueTokens: number, maxLength: number): UsageError {
  return new UsageError(
    `--max-queue-tokens (${maxQueueTokens}) must be at least the model's input length (${maxLength}, its max_position_embeddings): raise it, or give a smaller --max-length`,
  );
}

/** The max_position_embeddings of a model folder's config.json; undefined for anything else (the load says what is wrong). */
function folderInputLength(model: string): number | undefined {
  if (!existsSync(join(model, 'config.json'))) return undefined;
  try {
    return readConfig(model).maxPositionEmbeddings;
  } catch {
    return undefined;
  }
}
