// Finds a model folder's safetensors weights and checks every tensor's name and shape against the config.
// The result is an index of byte ranges (absolute file offsets) that the native reader preads.
import { checkOptions, checkPathArg, optionKeys, wrongOption } from '../util/options.js';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkConfigArg, type LlamaConfig } from './config.js';
import { describeValue } from '../util/describe.js';
import { loadableDType, readSafetensorsHeader, readSafetensorsIndex, type DType, type TensorEntry } from './safetensors.js';

export interface WeightEntry {
  /** Canonical name, without a `model.` prefix. */
  name: string;
  /** The name in the file (errors name it). */
  fileName: string;
  file: string;
  /** Always a loadable dtype: openWeights refuses a needed tensor stored as anything else. */
  dtype: DType;
  shape: number[];
  offset: number;
  byteLength: number;
}

export interface WeightIndex {
  /** In parameterNames() order; dense_layer.* only when hasDense. */
  tensors: WeightEntry[];
  hasDense: boolean;
  /** The dense layer's output size: from the file when present, else the config's (null when unknown). */
  denseSize: number | null;
  /** Absolute paths of the safetensors files read. */
  files: string[];
}

export interface ParameterSpec {
  name: string;
  shape: number[];
}

/**
 * Every parameter of the embedding model in the fixed order the native side and training use:
 * embed_tokens; per layer input_layernorm, q, k, v, o, post_attention_layernorm, gate, up, down;
 * norm; then dense_layer weight and bias when denseSize is not null.
 */
export function parameterNames(config: LlamaConfig, denseSize: number | null): ParameterSpec[] {
  checkConfigArg('parameterNames', config);
  if (denseSize !== null && !(Number.isInteger(denseSize) && denseSize > 0))
    throw new TypeError(`parameterNames: denseSize must be a positive integer or null (no dense layer), got ${describeValue(denseSize)}`);
  return [...parameterSpecs(config, denseSize)];
}

/**
 * parameterNames' list one entry at a time: a file is checked against it without building it (a
 * config's num_hidden_layers of 1e9 made a list that filled the heap before the first missing tensor).
 */
function* parameterSpecs(config: LlamaConfig, denseSize: number | null): Generator<ParameterSpec> {
  const { vocabSize: V, hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim } = config;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  yield { name: 'embed_tokens.weight', shape: [V, H] };
  for (let l = 0; l < config.numLayers; l++) {
    const p = `layers.${l}.`;
    yield* [
      { name: `${p}input_layernorm.weight`, shape: [H] },
      { name: `${p}self_attn.q_proj.weight`, shape: [q, H] },
      { name: `${p}self_attn.k_proj.weight`, shape: [kv, H] },
      { name: `${p}self_attn.v_proj.weight`, shape: [kv, H] },
      { name: `${p}self_attn.o_proj.weight`, shape: [H, q] },
      { name: `${p}post_attention_layernorm.weight`, shape: [H] },
      { name: `${p}mlp.gate_proj.weight`, shape: [I, H] },
      { name: `${p}mlp.up_proj.weight`, shape: [I, H] },
      { name: `${p}mlp.down_proj.weight`, shape: [H, I] },
    ];
  }
  yield { name: 'norm.weight', shape: [H] };
  if (denseSize !== null) {
    yield* [
      { name: 'dense_layer.weight', shape: [denseSize, H] },
      { name: 'dense_layer.bias', shape: [denseSize] },
    ];
  }
}

/** Tensors a causal-LM checkpoint carries that the embedding model has no use for. */
function isIgnored(name: string): boolean {
  // (the model's own rotary buffer, as newer transformers write it: model.rotary_emb.inv_freq, or unprefixed)
  return name === 'lm_head.weight' || name.startsWith('lm_head.') || name === 'rotary_emb.inv_freq' || name.endsWith('.rotary_emb.inv_freq');
}

export interface OpenWeightsOptions {
  /** Skip layers at or past config.numLayers (e.g. keep the first 2 layers of a 7B checkpoint). Default false. */
  ignoreExtraLayers?: boolean;
}

interface Found {
  files: string[];
  tensors: TensorEntry[];
  /** What errors call the source (the file, or the index for sharded checkpoints). */
  source: string;
}

function findTensors(dir: string): Found {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) {
    const h = readSafetensorsHeader(single);
    return { files: [h.file], tensors: h.tensors, source: h.file };
  }
  const indexFile = join(dir, 'model.safetensors.index.json');
  if (existsSync(indexFile)) {
    const idx = readSafetensorsIndex(indexFile);
    return { files: idx.files, tensors: [...idx.tensors.values(), ...idx.unlisted], source: idx.indexFile };
  }
  let names: string[];
  try {
    // (a checkpoint's AdamW moments are never a model's weights: a checkpoint without model.safetensors
    // was read as its optimizer.safetensors, "tensor embed_tokens.weight is missing")
    names = readdirSync(dir).filter((n) => n.endsWith('.safetensors') && n !== 'optimizer.safetensors').sort();
  } catch (err) {
    throw new Error(`${dir}: cannot list model folder (${(err as Error).message})`);
  }
  if (names.length === 1) {
    const h = readSafetensorsHeader(join(dir, names[0]));
    return { files: [h.file], tensors: h.tensors, source: h.file };
  }
  if (names.length === 0) throw new Error(`${dir}: no weights found (expected model.safetensors or model.safetensors.index.json)`);
  throw new Error(`${dir}: several .safetensors files (${names.join(', ')}) and no model.safetensors.index.json to say which`);
}

const OPEN_WEIGHTS_OPTIONS = optionKeys<OpenWeightsOptions>({ ignoreExtraLayers: true });

/** Opens a model folder's weights and validates them against `config`. */
export function openWeights(dir: string, config: LlamaConfig, options: OpenWeightsOptions = {}): WeightIndex {
  checkPathArg('openWeights', 'dir', dir, 'folder');
  checkConfigArg('openWeights', config);
  checkOptions('openWeights', options, OPEN_WEIGHTS_OPTIONS);
  if (options.ignoreExtraLayers !== undefined && typeof options.ignoreExtraLayers !== 'boolean') {
    throw wrongOption('openWeights', 'ignoreExtraLayers', 'true or false', options.ignoreExtraLayers);
  }
  const folder = resolve(dir);
  const found = findTensors(folder);
  const where = (t: TensorEntry) => `${t.file}: tensor "${t.name}"`;

  // Canonical name -> entry, with the `model.` prefix of causal-LM checkpoints stripped.
  const byName = new Map<string, TensorEntry>();
  for (const t of found.tensors) {
    if (isIgnored(t.name)) continue;
    const name = t.name.startsWith('model.') ? t.name.slice('model.'.length) : t.name;
    if (isIgnored(name)) continue;
    const layer = /^layers\.(\d+)\./.exec(name);
    if (layer && Number(layer[1]) >= config.numLayers) {
      if (options.ignoreExtraLayers) continue;
      throw new Error(`${where(t)}: layer ${layer[1]} is beyond the config's num_hidden_layers = ${config.numLayers}`);
    }
    if (byName.has(name)) throw new Error(`${where(t)}: duplicates "${byName.get(name)?.name}" once the "model." prefix is removed`);
    byName.set(name, t);
  }

  const denseW = byName.get('dense_layer.weight');
  const denseB = byName.get('dense_layer.bias');
  if ((denseW === undefined) !== (denseB === undefined)) {
    const present = (denseW ?? denseB) as TensorEntry;
    const missing = denseW ? 'dense_layer.bias' : 'dense_layer.weight';
    throw new Error(`${where(present)}: found without "${missing}" (the dense layer needs both)`);
  }
  const hasDense = denseW !== undefined;
  let denseSize = config.denseSize;
  if (denseW) {
    if (denseW.shape.length !== 2) {
      throw new Error(`${where(denseW)}: expected shape [dense, ${config.hiddenSize}], got [${denseW.shape.join(', ')}]`);
    }
    const fileSize = denseW.shape[0];
    if (config.denseSize !== null && fileSize !== config.denseSize) {
      throw new Error(`${where(denseW)}: has ${fileSize} outputs but the config says ${config.denseSize}`);
    }
    denseSize = fileSize;
  }

  const tensors: WeightEntry[] = [];
  // the layers the file holds, for a config that asks for more
  let lastLayer = -1;
  for (const name of byName.keys()) lastLayer = Math.max(lastLayer, Number(/^layers\.(\d+)\./.exec(name)?.[1] ?? -1));
  for (const spec of parameterSpecs(config, hasDense ? denseSize : null)) {
    const t = byName.get(spec.name);
    if (!t) {
      const layer = Number(/^layers\.(\d+)\./.exec(spec.name)?.[1] ?? -1);
      const held = lastLayer < 0 ? 'no layers' : lastLayer === 0 ? 'layer 0 only' : `layers 0 to ${lastLayer}`;
      const more = layer > lastLayer ? ` (it holds ${held}, but config.json's num_hidden_layers is ${config.numLayers})` : '';
      throw new Error(`${found.source}: tensor "${spec.name}" is missing (expected shape [${spec.shape.join(', ')}])${more}`);
    }
    const same = t.shape.length === spec.shape.length && t.shape.every((d, i) => d === spec.shape[i]);
    if (!same) throw new Error(`${where(t)}: expected shape [${spec.shape.join(', ')}], got [${t.shape.join(', ')}]`);
    // only the tensors loaded must be loadable: an ignored lm_head, buffer or extra layer may be any dtype
    const dtype = loadableDType(t);
    tensors.push({ name: spec.name, fileName: t.name, file: t.file, dtype, shape: t.shape, offset: t.offset, byteLength: t.byteLength });
    byName.delete(spec.name);
  }
  const [extra] = byName.values();
  if (extra) throw new Error(`${where(extra)}: unexpected tensor (not a parameter of this Llama model)`);

  return { tensors, hasDense, denseSize, files: found.files };
}
