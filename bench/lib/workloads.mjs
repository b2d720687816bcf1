// Workloads of the benchmarks: the real length mix of the text pools, the random benchmark model
// (created in the addon and, for the NumPy baseline, written as safetensors), and packed batches.
// The RNG, the packing, the random weights and the safetensors writer are the package's own (dist/, from `npm run build:ts`).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initRandomWeights, packBatch } from '../../dist/model/embedding-model.js';
import { readSafetensorsHeader, writeSafetensors } from '../../dist/model/safetensors.js';
import { parameterNames } from '../../dist/model/weights.js';
import { parseConfig } from '../../dist/model/config.js';
import { Rng } from '../../dist/util/random.js';
import { oneChunkStep } from './train-step.mjs';

/** Uniform [0, 1) draws of the library's generator (src/util/random.ts): the same on every run. */
export function makeRng(seed) {
  const rng = new Rng(seed);
  return () => rng.next();
}

const DEFAULT_POOLS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/data/pools');

/**
 * The text pools' folder (JSON objects keyed by text): `flag` (a script's --pools DIR), else $L2E_POOLS,
 * else ../shared/data/pools beside the repository. A folder that the flag or the variable names must
 * exist; the default may be absent (the scripts then skip or fall back, and say so).
 */
export function poolsFolder(flag) {
  if (flag !== null && flag !== undefined) {
    const dir = resolve(flag);
    if (!existsSync(dir)) throw new Error(`--pools ${dir}: no such folder`);
    if (!statSync(dir).isDirectory()) throw new Error(`--pools ${dir}: not a folder (the pools are a folder of .json files)`);
    return dir;
  }
  if (process.env.L2E_POOLS) {
    const dir = resolve(process.env.L2E_POOLS);
    if (!existsSync(dir)) throw new Error(`L2E_POOLS=${process.env.L2E_POOLS}: no such folder`);
    return dir;
  }
  return DEFAULT_POOLS;
}

/** The pools' texts that are not blank, files in name order; null when the folder is absent or has none. */
export function loadPoolTexts(poolsDir) {
  if (!existsSync(poolsDir)) return null;
  const texts = [];
  for (const f of readdirSync(poolsDir).filter((n) => n.endsWith('.json')).sort()) {
    const file = join(poolsDir, f);
    let pool;
    try {
      pool = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`${file}: not a pool (${err instanceof Error ? err.message : String(err)})`);
    }
    // a pool is an object whose keys are the texts (a list's keys are "0", "1", ...: read as texts)
    if (typeof pool !== 'object' || pool === null || Array.isArray(pool)) throw new Error(`${file}: not a pool (a JSON object whose keys are the texts)`);
    for (const text of Object.keys(pool)) if (text.trim()) texts.push(text);
  }
  return texts.length > 0 ? texts : null;
}

/**
 * Token lengths of the texts in the pools, estimated the way ../shared/bench/reference_stack.py does for
 * Llama2's tokenizer on Malay text: chars / 3.5 + BOS, capped at 512. Returns null without pools.
 */
export function loadLengthMix(poolsDir) {
  return loadPoolTexts(poolsDir)?.map((text) => Math.min(512, 1 + Math.max(1, Math.round(text.length / 3.5)))) ?? null;
}

/** n lengths drawn from the mix. */
export function drawLengths(mix, n, rng) {
  return Array.from({ length: n }, () => mix[Math.floor(rng() * mix.length)]);
}

/** Random token ids (never BOS/EOS/unk) for sequences of the given lengths. */
export function randomSequences(lengths, vocab, rng) {
  return lengths.map((L) => Int32Array.from({ length: L }, () => 3 + Math.floor(rng() * (vocab - 3))));
}

/** Concatenated tokens and cumulative offsets of a packed batch: the library's packing. */
export const pack = packBatch;

/** The recipe's optimizer (lr 2e-5, AdamW without decay, clip 0.5) for a step numbered `step`. */
export const recipeHyper = (step) => ({ lr: 2e-5, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0.5, step });

/** The trainer's one-chunk step (train-step.mjs) with the recipe's optimizer and temperature 0.02. */
export async function recipeTrainStep(addon, model, ids, cu, B, G, step) {
  const r = await oneChunkStep(addon, model, ids, cu, B, G, recipeHyper(step));
  if (!Number.isFinite(r.loss) || r.skipped) throw new Error(`training step ${step}: loss ${r.loss}, gradient norm ${r.gradNorm}`);
}

/** The benchmark model: a random Llama2 of 4 layers, hidden 512, 8 heads (MLP ratio of Llama2-7B). */
export const BENCH_MODEL = {
  vocab: 32000,
  hidden: 512,
  intermediate: 1376,
  layers: 4,
  heads: 8,
  kvHeads: 8,
  headDim: 64,
  dense: 1536,
  rmsEps: 1e-5,
  ropeTheta: 10000,
  pooling: 'mean',
  normalized: true,
};

/**
 * A NativeModel of `addon` (the test addon) with the library's random weights (initRandomWeights: norms 1,
 * projections uniform with Llama's std 0.02, the dense layer like nn.Linear's default); `weights`: its
 * RandomWeightOptions ({ tiled: true } where only the speed is measured).
 */
export function createRandomModel(addon, config, seed, device = 'cpu', weights = {}) {
  const model = new addon.NativeModel(config, device);
  initRandomWeights(model, config.hidden, seed, weights);
  return { model };
}

/** A model's tensors as float32 on the host (for writing the NumPy copy). */
export function modelTensors(model) {
  return model.params().map((p) => ({ name: p.name, shape: p.shape, data: model.getTensor(p.name) }));
}

/** Writes float32 tensors as a .safetensors file, with the library's writer. */
export function writeSafetensorsF32(path, tensors) {
  writeSafetensors(path, tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: t.data })));
}

/** The published "600M" shape (the first 2 layers of Llama2-7B), as the addon's NativeModel names it. */
export const SHAPE_600M = {
  vocab: 32000, hidden: 4096, intermediate: 11008, layers: 2, heads: 32, kvHeads: 32, headDim: 128, dense: 1536,
  rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true,
};

/** The model's tensors in the native layout order: the library's parameter list for this shape. */
function tensorSpecs(c) {
  const { hidden, intermediate, layers, heads, kvHeads, headDim, vocab, dense } = c;
  // a whole LlamaConfig (parameterNames checks every field; the positions do not shape a tensor)
  const config = parseConfig(
    {
      vocab_size: vocab, hidden_size: hidden, intermediate_size: intermediate, num_hidden_layers: layers, num_attention_heads: heads,
      num_key_value_heads: kvHeads, head_dim: headDim, rms_norm_eps: c.rmsEps, rope_theta: c.ropeTheta, embedding_size: dense,
    },
    'the bench shape',
  );
  return parameterNames(config, dense);
}

/**
 * Random weights like createRandomModel (norms 1, projections uniform with
 * std 0.02, the dense layer like nn.Linear), streamed tensor by tensor into a safetensors file.
 * Returns loadTensors() sources (bench/precision.mjs, bench/precision-eval.mjs). Reused when the file exists with the expected size.
 */
export function writeRandomWeights(c, seed) {
  const specs = tensorSpecs(c);
  const file = join(os.tmpdir(), `l2e-bench-precision-h${c.hidden}-l${c.layers}-v${c.vocab}-s${seed}.safetensors`);
  const bytes = specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1) * 4, 0);
  const sourcesOf = () =>
    readSafetensorsHeader(file).tensors.map((t) => ({ name: t.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype }));
  if (existsSync(file)) {
    try {
      const sources = sourcesOf();
      if (sources.reduce((sum, t) => sum + t.length, 0) === bytes) return sources;
    } catch {
      // an unreadable or other file: written again below
    }
  }
  console.error(`writing random weights (${(bytes / 1e9).toFixed(2)} GB) to ${file} ...`);
  const rng = makeRng(seed);
  const tensors = specs.map((s) => {
    const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    if (s.name.endsWith('layernorm.weight') || s.name === 'norm.weight') data.fill(1);
    else {
      const a = s.name.startsWith('dense_layer.') ? 1 / Math.sqrt(c.hidden) : 0.02 * Math.sqrt(3);
      for (let i = 0; i < data.length; i++) data[i] = (rng() * 2 - 1) * a;
    }
    return { name: s.name, dtype: 'F32', shape: s.shape, data };
  });
  writeSafetensors(file, tensors); // the library's writer (atomic)
  return sourcesOf();
}
