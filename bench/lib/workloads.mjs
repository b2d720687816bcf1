// Workloads of the benchmarks: the real length mix of the text pools, the random benchmark model
// (created in the addon and, for the NumPy baseline, written as safetensors), and packed batches.
// The RNG, the packing, the random weights and the safetensors writer are the package's own (dist/, from `npm run build:ts`).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initRandomWeights, packBatch } from '../../dist/model/embedding-model.js';
import { writeSafetensors } from '../../dist/model/safetensors.js';
import { Rng } from '../../dist/util/random.js';

/** Uniform [0, 1) draws of the library's generator (src/util/random.ts): the same on every run. */
export function makeRng(seed) {
  const rng = new Rng(seed);
  return () => rng.next();
}

/**
 * Token lengths of the texts in the pools (JSON objects keyed by text), estimated the way
 * ../shared/bench/reference_stack.py does for Llama2's tokenizer on Malay text: chars / 3.5 + BOS,
 * capped at 512. Returns null when the folder is absent.
 */
export function loadLengthMix(poolsDir) {
  if (!existsSync(poolsDir)) return null;
  const lengths = [];
  for (const f of readdirSync(poolsDir).filter((n) => n.endsWith('.json')).sort()) {
    for (const text of Object.keys(JSON.parse(readFileSync(join(poolsDir, f), 'utf8')))) {
      if (text.trim()) lengths.push(Math.min(512, 1 + Math.max(1, Math.round(text.length / 3.5))));
    }
  }
  return lengths.length > 0 ? lengths : null;
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
 * projections uniform with Llama's std 0.02, the dense layer like nn.Linear's default).
 */
export function createRandomModel(addon, config, seed, device = 'cpu') {
  const model = new addon.NativeModel(config, device);
  initRandomWeights(model, config.hidden, seed);
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
