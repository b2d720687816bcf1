// Workloads of the benchmarks: the real length mix of the text pools, the random benchmark model
// (created in the addon and, for the NumPy baseline, written as safetensors), and packed batches.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Deterministic uniform [0, 1) generator (mulberry32): the same draws on every run. */
export function makeRng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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

/** Concatenated tokens and cumulative offsets of a packed batch. */
export function pack(seqs) {
  const cu = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => (cu[i + 1] = cu[i] + s.length));
  const tokens = new Int32Array(cu[seqs.length]);
  seqs.forEach((s, i) => tokens.set(s, cu[i]));
  return { tokens, cuSeqlens: cu };
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
 * A NativeModel with random weights (norms 1, projections uniform with Llama's std 0.02, the dense
 * layer like nn.Linear's default). Returns it with its tensors, for writing the NumPy copy.
 */
export function createRandomModel(addon, config, seed) {
  const model = new addon.NativeModel(config, 'cpu');
  const rng = makeRng(seed);
  const tensors = [];
  for (const p of model.params()) {
    const data = new Float32Array(p.numel);
    if (p.name.endsWith('layernorm.weight') || p.name === 'norm.weight') data.fill(1);
    else {
      const a = p.name.startsWith('dense_layer.') ? 1 / Math.sqrt(config.hidden) : 0.02 * Math.sqrt(3);
      for (let i = 0; i < data.length; i++) data[i] = (rng() * 2 - 1) * a;
    }
    model.setTensor(p.name, data);
    tensors.push({ name: p.name, shape: p.shape, data });
  }
  return { model, tensors };
}

/** Writes float32 tensors as a .safetensors file (8-byte header length, JSON header, raw data). */
export function writeSafetensorsF32(path, tensors) {
  const header = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padTo = Math.ceil((8 + json.length) / 8) * 8 - 8; // data section 8-byte aligned
  json = Buffer.concat([json, Buffer.alloc(padTo - json.length, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const parts = [len, json, ...tensors.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
  writeFileSync(path, Buffer.concat(parts));
}
