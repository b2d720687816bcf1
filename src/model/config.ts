// Reads and validates a Llama embedding model's config.json, in both the transformers 4.x layout
// (`rope_theta` at top level) and the 5.x layout (`rope_parameters: {rope_theta, rope_type}`, `head_dim`),
// and writes a 4.x-style config for a saved embedding model.
import { checkPathArg } from '../util/options.js';
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { danglingLink, readFailure } from '../util/fs-error.js';
import { readRegularFileText } from '../util/regular-file.js';
import { parseJson } from '../util/json.js';
import { describeValue } from '../util/describe.js';

export type Pooling = 'mean' | 'cls';

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositionEmbeddings: number;
  /** Output size of `dense_layer` (key `embedding_size`), or null when the config says nothing. */
  denseSize: number | null;
  pooling: Pooling;
  normalized: boolean;
  temperature: number | null;
  bosTokenId: number;
  eosTokenId: number;
  /**
   * config.json's pad_token_id, or null where it is null or absent (as in transformers). As there, it
   * is the embedding table's padding_idx: training gives that row no gradient. (Batches are packed, so
   * no pad token is ever added; only a text's own tokens of that id, e.g. "<unk>" where pad = unk = 0.)
   */
  padTokenId: number | null;
  /** The parsed JSON as read, for fields this interface does not carry. */
  raw: Record<string, unknown>;
}

/**
 * The config key that carries the dense layer's output size. The original models hard-code 1536 and
 * store no key; we write `embedding_size` (and also accept `dense_size` when reading).
 */
export const DENSE_SIZE_KEY = 'embedding_size';

const DEFAULT_ROPE_THETA = 10000;

/** config.json's architecture of an embedding model (the published ones' class): its weights hold the dense layer. */
export const EMBEDDING_ARCHITECTURE = 'LlamaModelEmbedding';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field readers that fail with the file and field named. */
class Fields {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly where: string,
  ) {}

  fail(field: string, what: string): never {
    throw new Error(`${this.where}: field "${field}" ${what}`);
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined && this.obj[field] !== null;
  }

  positiveInt(field: string, fallback?: number): number {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(field, 'is missing');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(field, `must be an integer, got ${JSON.stringify(v)}`);
    if (v <= 0) this.fail(field, `must be positive, got ${v}`);
    return v;
  }

  /**
   * A token id field (bos/eos/pad_token_id): an integer, or a list whose first is the id (some configs
   * list several EOS ids; the first is the one a tokenizer appends); null when it names none (null,
   * absent, an empty list, or a negative id as LLaMA-1-era conversions wrote, "pad_token_id": -1).
   */
  tokenId(field: string): number | null {
    let v = this.obj[field];
    if (Array.isArray(v)) v = v.length > 0 ? v[0] : null;
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      this.fail(field, `must be an integer token id, got ${JSON.stringify(this.obj[field])}`);
    }
    return v;
  }

  /** A positive number that a float32 holds: what the model's float32 arithmetic gets. */
  positiveFloat32(field: string, fallback: number): number {
    const v = this.positiveNumber(field, fallback);
    if (!isPositiveFloat32(v)) this.fail(field, `must be ${FLOAT32_RANGE}, got ${JSON.stringify(v)}`);
    return v;
  }

  positiveNumber(field: string, fallback: number): number {
    const v = this.obj[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(field, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  boolean(field: string, fallback: boolean): boolean {
    const v = this.obj[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  string(field: string, fallback: string): string {
    const v = this.obj[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
}

/** A rope type we implement: the plain HF "rotate-half" rotary embedding. */
function isDefaultRope(ropeType: unknown): boolean {
  return ropeType === undefined || ropeType === null || ropeType === 'default';
}

function readRopeTheta(f: Fields, raw: Record<string, unknown>, where: string): number {
  const scaling = raw['rope_scaling'];
  if (scaling !== undefined && scaling !== null) {
    const type = isRecord(scaling) ? (scaling['rope_type'] ?? scaling['type']) : scaling;
    if (!isRecord(scaling) || !isDefaultRope(type)) {
      throw new Error(
        `${where}: field "rope_scaling" ${JSON.stringify(scaling)} is not supported (only plain rotary embeddings, rope_type "default")`,
      );
    }
  }
  const params = raw['rope_parameters'];
  if (params !== undefined && params !== null) {
    if (!isRecord(params)) throw new Error(`${where}: field "rope_parameters" must be an object`);
    const type = params['rope_type'] ?? params['type'];
    if (!isDefaultRope(type)) {
      throw new Error(
        `${where}: field "rope_parameters.rope_type" ${JSON.stringify(type)} is not supported (only "default")`,
      );
    }
    const pf = new Fields(params, where);
    if (pf.has('rope_theta')) return pf.positiveFloat32('rope_theta', DEFAULT_ROPE_THETA);
  }
  return f.positiveFloat32('rope_theta', DEFAULT_ROPE_THETA);
}

/** Validates a parsed (or raw text) config; `fileName` names the source in every error. */
export function parseConfig(json: string | Record<string, unknown>, fileName = 'config.json'): LlamaConfig {
  let raw: unknown = json;
  if (typeof json === 'string') {
    try {
      raw = parseJson(json);
    } catch (err) {
      throw new Error(`${fileName}: invalid JSON (${(err as Error).message})`);
    }
  }
  if (!isRecord(raw)) throw new Error(`${fileName}: expected a JSON object`);
  const f: Fields = new Fields(raw, fileName); // explicit type: lets `f.fail` (never) narrow

  const modelType = f.string('model_type', 'llama');
  if (modelType !== 'llama') f.fail('model_type', `must be "llama", got ${JSON.stringify(modelType)}`);
  const act = f.string('hidden_act', 'silu');
  // transformers' ACT2FN maps "swish" to the same SiLU
  if (act !== 'silu' && act !== 'swish') f.fail('hidden_act', `${JSON.stringify(act)} is not supported (only "silu", or "swish", the same function)`);
  if (f.boolean('attention_bias', false)) f.fail('attention_bias', 'true is not supported (Llama projections have no bias)');
  if (f.boolean('mlp_bias', false)) f.fail('mlp_bias', 'true is not supported (Llama projections have no bias)');

  const vocabSize = f.positiveInt('vocab_size');
  const hiddenSize = f.positiveInt('hidden_size');
  const intermediateSize = f.positiveInt('intermediate_size');
  const numLayers = f.positiveInt('num_hidden_layers');
  const numHeads = f.positiveInt('num_attention_heads');
  const numKvHeads = f.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    f.fail('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  }
  let headDim: number;
  if (f.has('head_dim')) {
    headDim = f.positiveInt('head_dim');
  } else {
    if (hiddenSize % numHeads !== 0) {
      f.fail('hidden_size', `(${hiddenSize}) must be divisible by num_attention_heads (${numHeads}) when head_dim is absent`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) f.fail('head_dim', `(${headDim}) must be even for rotary embeddings`);

  const denseKey = f.has(DENSE_SIZE_KEY) ? DENSE_SIZE_KEY : 'dense_size';
  const denseSize = f.has(denseKey) ? f.positiveInt(denseKey) : null;

  const pooling = f.string('sentence_pooling_method', 'mean');
  if (pooling !== 'mean' && pooling !== 'cls') {
    f.fail('sentence_pooling_method', `must be "mean" or "cls", got ${JSON.stringify(pooling)}`);
  }
  const temperature = f.has('temperature') ? f.positiveNumber('temperature', 1) : null;

  return {
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.positiveFloat32('rms_norm_eps', 1e-6),
    ropeTheta: readRopeTheta(f, raw, fileName),
    maxPositionEmbeddings: f.positiveInt('max_position_embeddings', 2048),
    denseSize,
    pooling,
    normalized: f.boolean('normalized', true),
    temperature,
    // written back on save; the tokenizer's own files say which ids it adds
    bosTokenId: nonNegative(f.tokenId('bos_token_id')) ?? 1,
    eosTokenId: nonNegative(f.tokenId('eos_token_id')) ?? 2,
    padTokenId: readPadId(f, vocabSize),
    raw,
  };
}

const nonNegative = (id: number | null): number | null => (id !== null && id >= 0 ? id : null);

/**
 * pad_token_id: nn.Embedding's padding_idx in transformers, which takes a negative one as counted from
 * the table's end (-1: the last row, as LLaMA-1-era conversions wrote) and refuses one outside it.
 */
function readPadId(f: Fields, vocabSize: number): number | null {
  const id = f.tokenId('pad_token_id');
  if (id === null) return null;
  if (id >= vocabSize || id < -vocabSize) {
    f.fail('pad_token_id', `(${id}) must be in [-vocab_size, vocab_size) = [${-vocabSize}, ${vocabSize}): it names a row of the embedding table`);
  }
  return id < 0 ? vocabSize + id : id;
}

/** A model folder's file (config.json, tokenizer.json) that is missing, said with what the folder should hold. */
export function missingModelFile(path: string): Error {
  // a link whose target is gone is there, but reads as missing: said with where it points
  const target = danglingLink(path);
  if (target !== null) return new Error(`${path} is a link to ${target}, which does not exist (a model folder holds config.json, the weights and tokenizer.json)`);
  // a SentencePiece model alone (older Llama uploads): said, with how to make the file that is read
  if (basename(path) === 'tokenizer.json' && existsSync(join(dirname(path), 'tokenizer.model'))) {
    return new Error(
      `${dirname(path)} has no tokenizer.json, only a SentencePiece tokenizer.model, which is not read: make tokenizer.json ` +
        'with transformers (AutoTokenizer.from_pretrained(dir).save_pretrained(dir))',
    );
  }
  return new Error(`${dirname(path)} has no ${basename(path)} (a model folder holds config.json, the weights and tokenizer.json)`);
}

/** Reads and validates `dir/config.json`. */
export function readConfig(dir: string): LlamaConfig {
  checkPathArg('readConfig', 'dir', dir, 'folder');
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readRegularFileText(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missingModelFile(file);
    throw readFailure(file, err);
  }
  return parseConfig(text, file);
}

/** The model's sizes: positive integers below 2^31 (what the native side takes). */
const SIZE_FIELDS = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositionEmbeddings'] as const;

/** A positive number that stays positive and finite as a float32 (the model computes in float32). */
export function isPositiveFloat32(v: unknown): v is number {
  return typeof v === 'number' && v > 0 && Math.fround(v) > 0 && Number.isFinite(Math.fround(v));
}
export const FLOAT32_RANGE = 'a positive number that a float32 holds (1.4e-45 to 3.4e38: the model computes in float32)';

/**
 * Throws a TypeError naming `where` and the field unless cfg is a LlamaConfig (parseConfig, readConfig)
 * with every field of the right kind. How the sizes relate (heads × head_dim, ...) the model checks.
 */
export function checkConfigArg(where: string, cfg: unknown): asserts cfg is LlamaConfig {
  const c = cfg as Record<string, unknown> | null;
  if (typeof c !== 'object' || c === null || typeof c['vocabSize'] !== 'number' || typeof c['hiddenSize'] !== 'number' || typeof c['numLayers'] !== 'number')
    throw new TypeError(`${where}: config must be a LlamaConfig (parseConfig, readConfig), got ${describeValue(cfg)}`);
  const bad = (field: string, want: string): never => {
    throw new TypeError(`${where}: config.${field} must be ${want}, got ${describeValue(c[field])}`);
  };
  for (const k of SIZE_FIELDS) {
    const v = c[k];
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v < 2 ** 31)) bad(k, 'a positive integer below 2^31');
  }
  for (const k of ['rmsNormEps', 'ropeTheta']) if (!isPositiveFloat32(c[k])) bad(k, FLOAT32_RANGE);
  const dense = c['denseSize'];
  if (dense !== null && !(typeof dense === 'number' && Number.isInteger(dense) && dense >= 1 && dense < 2 ** 31)) bad('denseSize', 'a positive integer below 2^31 or null');
  if (c['pooling'] !== 'mean' && c['pooling'] !== 'cls') bad('pooling', '"mean" or "cls"');
  if (typeof c['normalized'] !== 'boolean') bad('normalized', 'true or false');
  const pad = c['padTokenId'];
  // (undefined: a config object made before the field was read; it reads as none)
  if (pad !== null && pad !== undefined && !(typeof pad === 'number' && Number.isInteger(pad) && pad >= 0 && pad < (c['vocabSize'] as number)))
    bad('padTokenId', 'null or an id below vocabSize');
}

/**
 * config.json's `field` as the model was read with it (-1, a list), when it still reads as `value`;
 * else `value`.
 */
function asRead<T>(cfg: LlamaConfig, field: string, value: T, read: (f: Fields) => T): unknown {
  const raw = cfg.raw as Record<string, unknown> | undefined;
  if (!raw || !(field in raw)) return value;
  try {
    return read(new Fields(raw, 'config.json')) === value ? raw[field] : value;
  } catch {
    return value;
  }
}

/** config.json's eos_token_id: the list the model was read with (several EOS ids) when it starts with cfg's, else cfg's one id. */
function eosIds(cfg: LlamaConfig): unknown {
  const listed = (cfg.raw as Record<string, unknown> | undefined)?.['eos_token_id'];
  const ids = Array.isArray(listed) && listed.length > 0 && listed.every((v) => Number.isSafeInteger(v)) ? (listed as number[]) : null;
  if (ids !== null && ids[0] === cfg.eosTokenId) return [...ids];
  return asRead(cfg, 'eos_token_id', cfg.eosTokenId, (f) => nonNegative(f.tokenId('eos_token_id')) ?? 2);
}

/**
 * A transformers-4.x-style config.json object for a saved embedding model. `extra` is merged last
 * (e.g. `{ torch_dtype: 'bfloat16' }`). The dense size goes under `embedding_size` (DENSE_SIZE_KEY).
 */
export function configToJson(cfg: LlamaConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  checkConfigArg('configToJson', cfg);
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new TypeError(`configToJson: extra must be an object of config.json keys, got ${describeValue(extra)}`);
  const out: Record<string, unknown> = {
    architectures: [EMBEDDING_ARCHITECTURE],
    model_type: 'llama',
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    hidden_act: 'silu',
    max_position_embeddings: cfg.maxPositionEmbeddings,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    bos_token_id: asRead(cfg, 'bos_token_id', cfg.bosTokenId, (f) => nonNegative(f.tokenId('bos_token_id')) ?? 1),
    eos_token_id: eosIds(cfg),
    pad_token_id: asRead(cfg, 'pad_token_id', cfg.padTokenId ?? null, (f) => readPadId(f, cfg.vocabSize)),
    sentence_pooling_method: cfg.pooling,
    normalized: cfg.normalized,
    temperature: cfg.temperature,
  };
  if (cfg.denseSize !== null) out[DENSE_SIZE_KEY] = cfg.denseSize;
  return { ...out, ...extra };
}
