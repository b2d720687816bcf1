// Writes a tiny random Llama embedding model folder (config.json + safetensors weights, and the shared
// tokenizer when ../shared exists, else the generated one of tinyTokenizer.ts) for tests. Values are deterministic for a seed.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type LlamaConfig } from '../../src/model/config.js';
import { writeSafetensors, type DType, type TensorToWrite } from '../../src/model/safetensors.js';
import { parameterNames } from '../../src/model/weights.js';
import { tinyMha } from './fixture.js';
import { writeTinyTokenizer } from './tinyTokenizer.js';

export { repoRoot, sharedDir } from './fixture.js';
export const tinyMhaDir = tinyMha;
export const sharedTokenizer = join(tinyMhaDir, 'tokenizer.json');

export interface TinyModelOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  intermediate?: number;
  /** Default 2000, the shared tokenizer's vocabulary. */
  vocab?: number;
  /** Dense output size; also written to config.json as embedding_size unless null. */
  dense?: number | null;
  withDense?: boolean;
  dtype?: DType;
  /** Number of shards (≥ 2 writes model-0000k-of-0000n.safetensors + index); false/1 = one file. */
  sharded?: boolean | number;
  /** Store names as a causal LM does: `model.` prefix plus an lm_head.weight to be ignored. */
  prefix?: boolean;
  seed?: number;
  layout?: '4.x' | '5.x';
  /** Explicit head_dim (written in both layouts). */
  headDim?: number;
  /** Write a tokenizer.json: the shared one when it exists, else a generated one. Default true. */
  tokenizer?: boolean;
  /** Extra/overriding config.json fields. */
  configExtra?: Record<string, unknown>;
}

export interface TinyModel {
  dir: string;
  config: LlamaConfig;
  configJson: Record<string, unknown>;
  /** Values written per canonical name, as float32 (rounded through the dtype for F16/BF16 by the reader). */
  weights: Map<string, Float32Array>;
  hasTokenizer: boolean;
}

const tempDirs: string[] = [];

/** A fresh folder under os.tmpdir(); removeTempDirs() (e.g. in afterAll) deletes them all. */
export function makeTempDir(prefix = 'l2e-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** mulberry32: small deterministic PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function tinyConfigJson(o: TinyModelOptions = {}): Record<string, unknown> {
  const heads = o.heads ?? 4;
  const json: Record<string, unknown> = {
    architectures: ['LlamaModelEmbedding'],
    model_type: 'llama',
    vocab_size: o.vocab ?? 2000,
    hidden_size: o.hidden ?? 32,
    intermediate_size: o.intermediate ?? 48,
    num_hidden_layers: o.layers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: o.kvHeads ?? heads,
    hidden_act: 'silu',
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    sentence_pooling_method: 'mean',
    normalized: true,
    temperature: 0.02,
    torch_dtype: 'float32',
  };
  if (o.headDim !== undefined) json['head_dim'] = o.headDim;
  const dense = o.dense === undefined ? 16 : o.dense;
  if (dense !== null) json['embedding_size'] = dense;
  if ((o.layout ?? '4.x') === '5.x') {
    json['transformers_version'] = '5.0.0';
    json['rope_parameters'] = { rope_theta: 10000.0, rope_type: 'default' };
    if (json['head_dim'] === undefined) json['head_dim'] = (json['hidden_size'] as number) / heads;
  } else {
    json['transformers_version'] = '4.34.0';
    json['rope_theta'] = 10000.0;
    json['rope_scaling'] = null;
  }
  return { ...json, ...o.configExtra };
}

/** Writes the folder and returns what was written. `dir` is created when missing. */
export function writeTinyModel(dir: string, o: TinyModelOptions = {}): TinyModel {
  mkdirSync(dir, { recursive: true });
  // without its dense layer, a base checkpoint: a causal LM's architecture (an embedding model's
  // config with no dense_layer in its weights is refused as incomplete)
  const configJson = { ...tinyConfigJson(o), ...(o.withDense === false ? { architectures: ['LlamaForCausalLM'] } : {}) };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson, null, 2));
  const config = parseConfig(configJson, join(dir, 'config.json'));

  const withDense = o.withDense ?? true;
  const denseSize = withDense ? (config.denseSize ?? 16) : null;
  const rand = seededRandom(o.seed ?? 1);
  const dtype = o.dtype ?? 'F32';
  const weights = new Map<string, Float32Array>();
  const tensors: TensorToWrite[] = [];
  const prefix = o.prefix ? 'model.' : '';
  for (const spec of parameterNames(config, denseSize)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    // Norm weights near 1, everything else small and centred (like an initialised model).
    const isNorm = spec.name.endsWith('layernorm.weight') || spec.name === 'norm.weight';
    for (let i = 0; i < n; i++) data[i] = (isNorm ? 1 : 0) + (rand() - 0.5) * 0.2;
    weights.set(spec.name, data);
    const name = spec.name.startsWith('dense_layer.') ? spec.name : prefix + spec.name;
    tensors.push({ name, dtype, shape: spec.shape, data });
  }
  if (o.prefix) {
    const data = new Float32Array(config.vocabSize * config.hiddenSize).fill(0.5);
    tensors.push({ name: 'lm_head.weight', dtype, shape: [config.vocabSize, config.hiddenSize], data });
  }

  const shards = o.sharded === true ? 2 : typeof o.sharded === 'number' ? o.sharded : 1;
  if (shards <= 1) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / shards);
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      writeSafetensors(join(dir, file), part, { format: 'pt' });
      for (const t of part) weightMap[t.name] = file;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
  }

  const hasTokenizer = o.tokenizer ?? true;
  if (hasTokenizer) {
    if (existsSync(sharedTokenizer)) copyFileSync(sharedTokenizer, join(dir, 'tokenizer.json'));
    else writeTinyTokenizer(dir);
  }
  return { dir, config, configJson, weights, hasTokenizer };
}
