// EmbeddingModel: a Llama2 embedding model loaded into the native addon, with its tokenizer.
// Texts are tokenised here, grouped into packed batches of similar length (no padding), encoded by
// native code off the main thread, and returned in input order.
import { basename } from 'node:path';
import { nonFiniteReason, nonFiniteValue, TextError } from './text-error.js';
import { checkConfigArg, EMBEDDING_ARCHITECTURE, readConfig, type LlamaConfig } from './config.js';
import { Embeddings } from './embeddings.js';
import { checkTexts, TextTokenizer } from './tokenizer.js';
import { openWeights } from './weights.js';
import { buildCommand, nativeAddon, packageRoot } from '../native.js';
import { Rng } from '../util/random.js';
import { describeValue, positiveInteger } from '../util/describe.js';
import { checkOptions, optionKeys } from '../util/options.js';

export type Device = 'cpu' | 'cuda';
/**
 * How the CPU holds the weight matrices: fp32, or converted once at load to bf16 (round to nearest
 * even) or int8 (symmetric, one scale per output channel) and held only in that form, for
 * inference (native/core/lowp.h). Norms and the dense bias stay fp32; training needs fp32.
 */
export type Precision = 'fp32' | 'bf16' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'int8'];

/** The native model object (native/addon/model_binding.cpp). */
export interface NativeModel {
  readonly device: string;
  readonly disposed: boolean;
  readonly precision: Precision;
  /** Bytes the weights occupy as held (fp32 buffer + converted matrices). */
  readonly weightBytes: number;
  /** Tokens per group an encode runs in (whole texts; a longer text alone): bounds its activations. */
  readonly encodeGroupTokens: number;
  params(): { name: string; shape: number[]; numel: number; offset: number }[];
  /**
   * A NaN or infinite value is an error naming the file, the tensor (`tensor`: its name in the file) and an index.
   * chunkBytes (tests): the size of the pieces each tensor is read in (default 16 MB).
   */
  loadTensors(
    sources: { name: string; path: string; offset: number; length: number; dtype: string; tensor?: string }[],
    chunkBytes?: number,
  ): Promise<void>;
  setTensor(name: string, data: Float32Array): void;
  getTensor(name: string): Float32Array;
  encode(ids: Int32Array, cuSeqlens: Int32Array, wantHidden?: boolean): Promise<{ embeddings: Float32Array; hidden?: Float32Array }>;
  dispose(): void;
}

export interface NativeModelConfig {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  dense: number;
  rmsEps: number;
  ropeTheta: number;
  pooling: 'mean' | 'cls';
  normalized: boolean;
  /** The embedding table's padding_idx (no gradient); null or absent: none. */
  padTokenId?: number | null;
}

interface ModelAddon {
  NativeModel: new (config: NativeModelConfig, device: string, precision: Precision) => NativeModel;
  cudaStatus?: () => { compiled: boolean; usable: boolean; reason: string };
}

/** Width of the dense projection when neither the checkpoint nor the options say (the published models). */
export const DEFAULT_DENSE_SIZE = 1536;
/** The recipe's truncation length for queries and passages. */
export const DEFAULT_MAX_LENGTH = 8192;

export interface LoadOptions {
  device?: Device;
  /** Weights as fp32 (default), or converted at load to bf16 or int8 (CPU, inference only). */
  precision?: Precision;
  /** Dense layer width when the checkpoint has none (a base LlamaForCausalLM); default config.json's embedding_size, else 1536. */
  denseSize?: number;
  /** Seed of the new dense layer's initialisation when the checkpoint has none. */
  seed?: number;
  /** Use only the first N decoder layers of the checkpoint (e.g. 2 of Llama2-7B's 32 for "600M"). */
  numLayers?: number;
  /** Hugging Face Hub cache folder, for `org/name` model ids. */
  cacheDir?: string;
  revision?: string;
  /** Called with a one-line notice (e.g. "dense_layer initialised"). Default: stderr. */
  onNotice?: (message: string) => void;
}

export interface EncodeOptions {
  /** Texts per packed batch (default 32). */
  batchSize?: number;
  /** Truncation length in tokens, BOS included (default 8192). */
  maxLength?: number;
  /** Upper bound on tokens per packed batch, to bound memory (default 32768). */
  maxBatchTokens?: number;
  onProgress?: (done: number, total: number) => void;
  /** Called before each packed batch goes to native code (a batch of long texts can take minutes). */
  onBatch?: (batch: BatchInfo) => void;
}

const ENCODE_OPTIONS = optionKeys<EncodeOptions>({ batchSize: true, maxLength: true, maxBatchTokens: true, onProgress: true, onBatch: true });
const LOAD_OPTIONS = optionKeys<LoadOptions>({
  device: true, precision: true, denseSize: true, seed: true, numLayers: true, cacheDir: true, revision: true, onNotice: true,
});

/** EmbeddingModel.create's options. */
export interface CreateOptions {
  /** Seed of the random weights (default 0). */
  seed?: number;
  device?: Device;
  precision?: Precision;
}
const CREATE_OPTIONS = optionKeys<CreateOptions>({ seed: true, device: true, precision: true });

/** EmbeddingModel.encodeParts's options: encode's, and the part size. */
export interface EncodePartsOptions extends EncodeOptions {
  /** Texts per part (default 4096): each part's batches are planned, run and yielded before the next part's. */
  partSize?: number;
}
const PARTS_OPTIONS = optionKeys<EncodePartsOptions>({
  batchSize: true, maxLength: true, maxBatchTokens: true, onProgress: true, onBatch: true, partSize: true,
});

/** One part of encodeParts: the embeddings of texts[start] to texts[start + embeddings.rows - 1]. */
export interface EncodedPart {
  start: number;
  embeddings: Embeddings;
}

export interface BatchInfo {
  /** 0-based index of this batch among `batches`. */
  index: number;
  batches: number;
  /** Texts and tokens in this batch. */
  texts: number;
  tokens: number;
  /** Texts encoded before this batch, of `total`. */
  done: number;
  total: number;
}

export class EmbeddingModel {
  private nativeModel: NativeModel | null;
  /** Calls using the native model now (encode, hold): dispose() frees it after the last one ends. */
  private holds = 0;
  /** Settles when the last native encode asked for has ended: the next one waits for it (inTurn). */
  private nativeTurn: Promise<void> = Promise.resolve();
  private disposeRequested = false;

  private constructor(
    readonly config: LlamaConfig,
    readonly tokenizer: TextTokenizer,
    native: NativeModel,
    /** Width of the embeddings (dense_layer output). */
    readonly dim: number,
    /** Folder the model was loaded from (null for a model created in memory). */
    readonly dir: string | null,
    readonly device: Device,
    private readonly notice: (message: string) => void = defaultNotice,
  ) {
    this.nativeModel = native;
  }

  /**
   * Loads a model folder (config.json, *.safetensors, tokenizer.json) or a Hugging Face model id
   * (`org/name`, resolved through the hub cache, downloaded when missing).
   */
  static async load(dirOrName: string, options: LoadOptions = {}): Promise<EmbeddingModel> {
    checkOptions('load', options, LOAD_OPTIONS);
    checkLoadOptions(options);
    const dir = await resolveModelDir(dirOrName, options);
    let config = readConfig(dir);
    if (options.numLayers !== undefined) {
      if (!Number.isInteger(options.numLayers) || options.numLayers < 1 || options.numLayers > config.numLayers) {
        throw new Error(`numLayers must be an integer in [1, ${config.numLayers}] for ${dir}, got ${describeValue(options.numLayers)}`);
      }
      config = { ...config, numLayers: options.numLayers };
    }
    const weights = openWeights(dir, config, { ignoreExtraLayers: options.numLayers !== undefined });
    const tokenizer = TextTokenizer.fromDir(dir);
    if (tokenizer.vocabSize > config.vocabSize) {
      throw new Error(
        `${dir}: tokenizer.json has ${tokenizer.vocabSize} tokens but config.json says vocab_size ${config.vocabSize}`,
      );
    }
    const architectures = config.raw['architectures'];
    if (!weights.hasDense && Array.isArray(architectures) && architectures.includes(EMBEDDING_ARCHITECTURE)) {
      // (a damaged or half-exported embedding model was encoded through a random dense layer, exit 0)
      throw new Error(
        `${dir}: config.json names the architecture ${EMBEDDING_ARCHITECTURE} (an embedding model, whose weights hold its dense layer), ` +
          `but ${weights.files.map((f) => basename(f)).join(', ')} ${weights.files.length === 1 ? 'holds' : 'hold'} no dense_layer.weight or dense_layer.bias: the weights are incomplete ` +
          '(a base causal-LM checkpoint, e.g. LlamaForCausalLM, gets a new dense layer)',
      );
    }
    // the file's dense layer; else the one asked for, config.json's embedding_size, or the default
    const dense = weights.hasDense ? weights.denseSize! : (options.denseSize ?? config.denseSize ?? DEFAULT_DENSE_SIZE);
    const device = options.device ?? 'cpu';
    const native = createNative(config, dense, device, options.precision);
    try {
      await native.loadTensors(
        weights.tensors.map((t) => ({ name: t.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype, tensor: t.fileName })),
      );
      if (!weights.hasDense) {
        initDenseLayer(native, config.hiddenSize, dense, options.seed ?? 0, drawUniform);
        (options.onNotice ?? defaultNotice)(
          `${dir} has no dense_layer (a base causal-LM checkpoint): initialised a new ${config.hiddenSize}→${dense} ` +
            `dense layer like nn.Linear's default (uniform ±1/√${config.hiddenSize}, seed ${options.seed ?? 0})`,
        );
      }
    } catch (err) {
      native.dispose();
      throw err;
    }
    return new EmbeddingModel({ ...config, denseSize: dense }, tokenizer, native, dense, dir, device, options.onNotice);
  }

  /** A model with random weights (tests, benchmarks, the demo's starting point). */
  static create(
    config: LlamaConfig,
    tokenizer: TextTokenizer,
    options: CreateOptions = {},
  ): EmbeddingModel {
    checkConfigArg('create', config);
    if (!(tokenizer instanceof TextTokenizer)) throw new TypeError(`create: tokenizer must be a TextTokenizer (TextTokenizer.fromDir), got ${describeValue(tokenizer)}`);
    checkOptions('create', options, CREATE_OPTIONS);
    if (options.seed !== undefined && !Number.isInteger(options.seed)) throw new TypeError(`create: seed must be an integer, got ${describeValue(options.seed)}`);
    tokenizer.assertFitsModel(config.vocabSize); // as load checks: else ids past the table fail at the first encode
    const dense = config.denseSize ?? DEFAULT_DENSE_SIZE;
    const device = options.device ?? 'cpu';
    const native = createNative(config, dense, device, options.precision);
    initRandomWeights(native, config.hiddenSize, options.seed ?? 0);
    return new EmbeddingModel({ ...config, denseSize: dense }, tokenizer, native, dense, null, device);
  }

  /** The native model; throws once disposed. */
  get native(): NativeModel {
    if (this.disposed) throw new Error('this EmbeddingModel has been disposed');
    return this.nativeModel!;
  }

  /** How the weights are held ('fp32' unless loaded with another precision). */
  get precision(): Precision {
    return this.native.precision;
  }

  /** True from dispose() on (the native memory itself is freed when the last call in flight ends). */
  get disposed(): boolean {
    return this.disposeRequested || !this.nativeModel || this.nativeModel.disposed;
  }

  /**
   * Runs `fn` with the native model held: a dispose() meanwhile frees the memory only after `fn` has
   * settled. For code that uses `native` across awaits (the server's batches, training).
   */
  async hold<T>(fn: (native: NativeModel) => Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError(`hold: fn must be a function, got ${describeValue(fn)}`);
    const release = this.acquire();
    try {
      return await fn(this.nativeModel!);
    } finally {
      release();
    }
  }

  /**
   * `job` once the native jobs asked for before it have ended. Native calls of one model run one at a
   * time (its mutex), each on a thread of libuv's pool (4 by default): twenty encodes at once left three
   * threads waiting on the mutex, and a file read of the app waited 7 s for one.
   */
  private inTurn<T>(job: () => Promise<T>): Promise<T> {
    const before = this.nativeTurn;
    let ended!: () => void;
    this.nativeTurn = new Promise<void>((r) => (ended = r));
    return before.then(job).finally(ended);
  }

  /** Counts a call in flight (throws once disposed); the function returned ends it, once. */
  private acquire(): () => void {
    if (this.disposed) throw new Error('this EmbeddingModel has been disposed');
    this.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holds === 0 && this.disposeRequested) this.free();
    };
  }

  private free(): void {
    this.nativeModel?.dispose();
    this.nativeModel = null;
  }

  /** Token ids of each text (BOS prepended, truncated at maxLength). */
  tokenize(texts: string[], maxLength = DEFAULT_MAX_LENGTH): Int32Array[] {
    checkTexts('tokenize', texts);
    return this.tokenizer.encodeBatch(texts, maxLength);
  }

  /** Embeddings of `texts`, in input order (one row per text). */
  async encode(texts: string[], options: EncodeOptions = {}): Promise<Embeddings> {
    const release = this.acquire(); // at the call, before any await: a dispose() after it waits
    try {
      // one part: every batch planned over all the texts, the longest first
      const parts = this.partsHeld(this.nativeModel!, 'encode', texts, options, ENCODE_OPTIONS, Number.MAX_SAFE_INTEGER);
      let out: Embeddings | null = null;
      for await (const part of parts) out = part.embeddings;
      return out ?? new Embeddings(0, this.dim);
    } finally {
      release();
    }
  }

  /**
   * Embeddings of `texts` a part at a time, in input order: each part of `partSize` texts is yielded
   * once its batches have run, so a caller can write it and drop it (memory: one part's embeddings).
   * Every text is tokenised before the first batch, so a text the tokenizer refuses fails before any
   * work. The model is held from the first next() until the loop ends (a `break` ends it; a generator
   * left unfinished keeps a dispose() from freeing the model).
   */
  async *encodeParts(texts: string[], options: EncodePartsOptions = {}): AsyncGenerator<EncodedPart> {
    const release = this.acquire();
    try {
      yield* this.partsHeld(this.nativeModel!, 'encodeParts', texts, options, PARTS_OPTIONS, null);
    } finally {
      release();
    }
  }

  private async *partsHeld(
    native: NativeModel,
    where: string,
    given: string[],
    options: EncodePartsOptions | null,
    known: readonly string[],
    /** null: the option's (default 4096) */
    wholePart: number | null,
  ): AsyncGenerator<EncodedPart> {
    checkTexts(where, given); // a sparse array's holes read as undefined: refused
    // a copy: the tokenising takes turns with the event loop, and the caller's array may change meanwhile
    const texts: string[] = Array.from(given);
    checkOptions(where, options, known);
    // before the tokenising, which can take long
    const batchSize = positiveInteger('batchSize', options.batchSize ?? 32);
    const maxBatchTokens = positiveInteger('maxBatchTokens', options.maxBatchTokens ?? 32768);
    const partSize = wholePart ?? positiveInteger('partSize', options.partSize ?? 4096);
    const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
    this.tokenizer.checkMaxLength(maxLength); // also with no texts, which the tokeniser would never see
    for (const key of ['onBatch', 'onProgress'] as const) {
      if (options[key] !== undefined && typeof options[key] !== 'function') throw new TypeError(`${where}: ${key} must be a function, got ${describeValue(options[key])}`);
    }
    const ids = await this.tokenizer.encodeBatchAsync(texts, maxLength); // large inputs: not one long block
    this.warnBeyondPositions(ids, options.maxLength);
    // each part's batches (their rows counted from the part's start), all planned first for the batch count
    const parts: { start: number; batches: number[][] }[] = [];
    for (let start = 0; start < texts.length; start += partSize) {
      parts.push({ start, batches: planBatches(ids.slice(start, start + partSize), batchSize, maxBatchTokens) });
    }
    const batchCount = parts.reduce((n, p) => n + p.batches.length, 0);
    let done = 0;
    let index = 0;
    for (const { start, batches } of parts) {
      const out = new Embeddings(Math.min(partSize, texts.length - start), this.dim);
      for (const batch of batches) {
        const { tokens, cuSeqlens } = packBatch(batch.map((i) => ids[start + i]!));
        options.onBatch?.({ index: index++, batches: batchCount, texts: batch.length, tokens: tokens.length, done, total: texts.length });
        const { embeddings } = await this.inTurn(() => native.encode(tokens, cuSeqlens));
        batch.forEach((row, j) => {
          const bad = nonFiniteValue(embeddings, j, this.dim);
          if (bad !== null) throw new TextError('encode', nonFiniteReason(bad), start + row);
          out.data.set(embeddings.subarray(j * this.dim, (j + 1) * this.dim), row * this.dim);
        });
        done += batch.length;
        options.onProgress?.(done, texts.length);
      }
      yield { start, embeddings: out };
    }
  }

  /**
   * Says once (through the load's onNotice) when `maxLength` is above the model's
   * max_position_embeddings, in encode's words: for callers that tokenise themselves (the server).
   */
  warnMaxLength(maxLength: number): void {
    this.warnBeyondPositions([], maxLength);
  }

  /**
   * Positions beyond max_position_embeddings were never trained (rotary embeddings extrapolate):
   * says so when asked for a longer maxLength, or when texts are longer (once per model).
   */
  private warnedPositions = false;
  private warnBeyondPositions(ids: Int32Array[], maxLength: number | undefined): void {
    const limit = this.config.maxPositionEmbeddings;
    if (this.warnedPositions) return;
    const longer = ids.reduce((n, t) => n + (t.length > limit ? 1 : 0), 0);
    if (maxLength === undefined ? longer === 0 : maxLength <= limit) return;
    this.warnedPositions = true;
    const asked = maxLength === undefined ? '' : `max length ${maxLength} is above the model's max_position_embeddings ${limit}; `;
    const found = longer > 0 ? `${longer} of ${ids.length} texts are longer than ${limit} tokens; ` : '';
    this.notice(
      `${asked}${found}positions beyond ${limit} were not trained and embeddings of longer texts may be poor ` +
        `(truncate with --max-length ${limit} / maxLength: ${limit})`,
    );
  }

  /** Frees the native memory. Calls in flight finish first; later encode and hold calls throw (tokenize, which needs no native memory, still works). */
  dispose(): void {
    this.disposeRequested = true;
    if (this.holds === 0) this.free();
  }
}

/** Concatenates sequences into one packed batch with cumulative offsets. */
export function packBatch(seqs: Int32Array[]): { tokens: Int32Array; cuSeqlens: Int32Array } {
  tokenSeqs('packBatch', 'seqs', seqs);
  const cuSeqlens = new Int32Array(seqs.length + 1);
  for (let i = 0; i < seqs.length; i++) cuSeqlens[i + 1] = cuSeqlens[i]! + seqs[i]!.length;
  const tokens = new Int32Array(cuSeqlens[seqs.length]!);
  seqs.forEach((s, i) => tokens.set(s, cuSeqlens[i]!));
  return { tokens, cuSeqlens };
}

/**
 * Groups text indices into batches of similar length (sorted by token count, longest first), at most
 * `batchSize` texts and `maxTokens` tokens each (a single longer text still gets its own batch).
 */
export function planBatches(ids: Int32Array[], batchSize: number, maxTokens: number): number[][] {
  tokenSeqs('planBatches', 'ids', ids);
  positiveInteger('batchSize', batchSize);
  positiveInteger('maxBatchTokens', maxTokens);
  const order = ids.map((_, i) => i).sort((a, b) => ids[b]!.length - ids[a]!.length || a - b);
  const batches: number[][] = [];
  let cur: number[] = [];
  let tokens = 0;
  for (const i of order) {
    const len = ids[i]!.length;
    if (cur.length > 0 && (cur.length >= batchSize || tokens + len > maxTokens)) {
      batches.push(cur);
      cur = [];
      tokens = 0;
    }
    cur.push(i);
    tokens += len;
  }
  if (cur.length > 0) batches.push(cur);
  return batches;
}

/** Throws a TypeError naming `where` and `name` unless v is an array of Int32Array token sequences. */
function tokenSeqs(where: string, name: string, v: unknown): asserts v is Int32Array[] {
  if (!Array.isArray(v)) throw new TypeError(`${where}: ${name} must be an array of Int32Array token ids, got ${describeValue(v)}`);
  const i = v.findIndex((s) => !(s instanceof Int32Array));
  if (i >= 0) throw new TypeError(`${where}: ${name}[${i}] must be an Int32Array of token ids, got ${describeValue(v[i])}`);
}

/** A plain-JS caller's load options of the wrong type, named before anything is read (a number as cacheDir, ...). */
function checkLoadOptions(o: LoadOptions): void {
  for (const key of ['cacheDir', 'revision'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') throw new TypeError(`load: ${key} must be a string, got ${describeValue(o[key])}`);
  }
  if (o.onNotice !== undefined && typeof o.onNotice !== 'function') throw new TypeError(`load: onNotice must be a function, got ${describeValue(o.onNotice)}`);
  if (o.denseSize !== undefined && !(Number.isInteger(o.denseSize) && o.denseSize >= 1)) {
    throw new TypeError(`load: denseSize must be a positive integer, got ${describeValue(o.denseSize)}`);
  }
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new TypeError(`load: seed must be an integer, got ${describeValue(o.seed)}`);
}

function createNative(config: LlamaConfig, dense: number, device: Device, precision: Precision = 'fp32'): NativeModel {
  // a plain-JS caller's `device: 1` loaded on the CPU and left model.device 1, which a server then read
  if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`device must be 'cpu' or 'cuda', got ${describeValue(device)}`);
  if (!PRECISIONS.includes(precision)) {
    throw new TypeError(`precision must be one of ${PRECISIONS.join(', ')}, got ${String(precision)}`);
  }
  if (precision !== 'fp32' && device !== 'cpu') {
    throw new Error(`precision '${precision}' is for the CPU device (the CUDA backend runs its weights in bf16 already)`);
  }
  const addon = nativeAddon<ModelAddon>();
  if (device === 'cuda' && addon.cudaStatus?.().compiled === false) throw new Error(cudaMissingMessage(packageRoot));
  const { NativeModel } = addon;
  return new NativeModel(
    {
      vocab: config.vocabSize,
      hidden: config.hiddenSize,
      intermediate: config.intermediateSize,
      layers: config.numLayers,
      heads: config.numHeads,
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
      dense,
      rmsEps: config.rmsNormEps,
      ropeTheta: config.ropeTheta,
      pooling: config.pooling,
      normalized: config.normalized,
      padTokenId: config.padTokenId ?? null,
    },
    device,
    precision,
  );
}

/**
 * Random weights for every parameter of `native` (EmbeddingModel.create; benchmarks call it on a model
 * of the test addon): norms 1, projections and embeddings uniform with Llama's std 0.02
 * (initializer_range), the dense layer like nn.Linear's default. Deterministic for a seed (and `tiled`).
 */
export function initRandomWeights(native: Pick<NativeModel, 'params' | 'setTensor'>, hidden: number, seed: number, o: RandomWeightOptions = {}): void {
  const rng = new Rng(seed, 1);
  const uniform = o.tiled ? tiledUniform(seed) : (n: number, a: number, r: Rng = rng): Float32Array => drawUniform(n, a, r);
  let dense = 0;
  for (const p of native.params()) {
    if (p.name === 'dense_layer.weight') dense = p.shape[0]!;
    if (p.name.startsWith('dense_layer.')) continue; // below, like nn.Linear
    const norm = p.name.endsWith('layernorm.weight') || p.name === 'norm.weight';
    // else Llama's initializer_range 0.02, as a uniform of the same standard deviation
    native.setTensor(p.name, norm ? new Float32Array(p.numel).fill(1) : uniform(p.numel, 0.02 * Math.sqrt(3)));
  }
  initDenseLayer(native, hidden, dense, seed, o.tiled ? tiledUniform(seed) : drawUniform);
}

export interface RandomWeightOptions {
  /**
   * One block of TILE_DRAWS draws per seed, tiled and scaled for every tensor: for speed measurements,
   * where only the scales matter (a draw per element takes about 20 ns: 11 s for a 600M model).
   */
  tiled?: boolean;
}

/** Drawn per tensor element with `rng`: `n` values uniform in ±a. */
function drawUniform(n: number, a: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * a;
  return out;
}

/** A prime: no two rows of a matrix (their lengths powers of two or their multiples) repeat each other. */
const TILE_DRAWS = 1_000_003;
const tiles = new Map<number, Float64Array>();

/** `n` values uniform in ±a, the seed's block of draws repeated (`rng` unused: the block is the seed's). */
function tiledUniform(seed: number): (n: number, a: number) => Float32Array {
  let block = tiles.get(seed);
  if (!block) {
    const rng = new Rng(seed, 11);
    block = Float64Array.from({ length: TILE_DRAWS }, () => rng.next() * 2 - 1);
    tiles.set(seed, block);
  }
  const b = block;
  return (n, a) => {
    const out = new Float32Array(n);
    const head = Math.min(n, TILE_DRAWS);
    for (let i = 0; i < head; i++) out[i] = b[i]! * a;
    for (let k = head; k < n; k *= 2) out.copyWithin(k, 0, Math.min(k, n - k));
    return out;
  };
}

/** nn.Linear's default init: weight and bias uniform in ±1/√fan_in (kaiming_uniform with a = √5). */
function initDenseLayer(
  native: Pick<NativeModel, 'setTensor'>,
  hidden: number,
  dense: number,
  seed: number,
  uniform: (n: number, a: number, rng: Rng) => Float32Array,
): void {
  const rng = new Rng(seed, 7);
  const bound = 1 / Math.sqrt(hidden);
  native.setTensor('dense_layer.weight', uniform(dense * hidden, bound, rng));
  native.setTensor('dense_layer.bias', uniform(dense, bound, rng));
}

/** The error for device 'cuda' with an addon built without CUDA: the build command for where the package is. */
export function cudaMissingMessage(root: string): string {
  return `device 'cuda' is not available: this build of llama2-embedding has no CUDA backend; build it with ${buildCommand(root, true)}`;
}

function defaultNotice(message: string): void {
  process.stderr.write(`llama2-embedding: ${message}\n`);
}

async function resolveModelDir(dirOrName: string, options: LoadOptions): Promise<string> {
  if (typeof dirOrName !== 'string' || dirOrName === '') throw new TypeError(`EmbeddingModel.load: a model folder or hub id is required, got ${describeValue(dirOrName)}`);
  // a local folder, else a Hub id through the cache (downloaded when missing, unless HF_HUB_OFFLINE)
  const { resolveModel } = await import('../hub/resolve.js');
  const { downloadNotices, retryNotices } = await import('../hub/download-notices.js');
  const notice = options.onNotice ?? defaultNotice;
  return resolveModel(dirOrName, {
    cacheDir: options.cacheDir,
    revision: options.revision,
    onProgress: downloadNotices(dirOrName, notice),
    // a stalled or failing Hub is said as each attempt fails, not after minutes of silence
    retry: { onRetry: retryNotices(notice) },
  });
}
