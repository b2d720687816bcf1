// Memory while encoding, at every precision: a child process loads a model and encodes a batch of
// 64 texts (4,000+ tokens); its resident memory may grow by the weights' bytes while loading and,
// while encoding, only by one encode group's activations (core/model.h: at most 1/32 of the
// weights' bytes as held, or 64 tokens, or the longest text, which forms a group alone), not by the
// whole batch's. Also: a batch split into groups gives
// the embeddings of its texts encoded one at a time, and the fp32 weights, pre-packed for the GEMM
// by encode, read back (and train) as they were written.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { openWeights } from '../src/model/weights.js';
import { testingAddon } from './helpers/testing-addon.mjs';
import { makeTempDir, seededRandom, writeTinyModel, type TinyModel } from './helpers/tinyModel.js';

const SHAPE = { hidden: 512, intermediate: 1376, heads: 8, kvHeads: 8, layers: 2, vocab: 16000, dense: 256 };
const MiB = 1 << 20;
// Besides weights and activations: the thread pool, GEMM packing buffers and the warm-up encode's
// small batch. Measured 1.5-1.7 MiB at every precision with our large buffers (weights, activations,
// the load's 16 MiB read buffer) mapped on their own (core/host_memory.h host_alloc); 4.3-5.5 MiB
// when they came from malloc, whose arenas kept what was freed (the read buffer's space, the
// warm-up's activations).
const LOAD_SLACK = 3 * MiB;
// While encoding, besides the group's activations: GEMM packing buffers and the quantised
// activations of the int8 kernels (measured 0.6-1.4 MiB on a Xeon with AMX; 2.6 MiB for bf16 on an
// AMD EPYC, AVX-512 BF16 without AMX; 3.0-3.4 MiB for bf16 on an AVX2 EPYC without AVX-512, whose
// kernel keeps x in fp32, so its packed activations (cpu/gemm_lowp.cpp) take twice the bf16 pairs'
// bytes: 8 bytes per row and k pair, about 0.7 MiB per thread for down_proj's group here).
const SLACK = 4 * MiB;

interface NativeModelT {
  loadTensors(s: object[], chunkBytes?: number): Promise<void>;
  getTensor(name: string): Float32Array;
  encode(ids: Int32Array, cu: Int32Array): Promise<{ embeddings: Float32Array }>;
  weightBytes: number;
  encodeGroupTokens: number;
  dispose(): void;
}
interface Natives {
  NativeModel: new (config: object, device: string, precision?: string) => NativeModelT;
}

let tiny: TinyModel;
let sources: object[];
let nativeConfig: object;
const lengths: number[] = [];
let tokens: number[] = [];
let cuSeqlens: number[] = [0];

beforeAll(() => {
  tiny = writeTinyModel(join(makeTempDir(), 'model'), { ...SHAPE, tokenizer: false, seed: 3 });
  const c = tiny.config;
  nativeConfig = {
    vocab: c.vocabSize, hidden: c.hiddenSize, intermediate: c.intermediateSize, layers: c.numLayers, heads: c.numHeads,
    kvHeads: c.numKvHeads, headDim: c.headDim, dense: SHAPE.dense, rmsEps: c.rmsNormEps, ropeTheta: c.ropeTheta,
    pooling: 'mean', normalized: true,
  };
  sources = openWeights(tiny.dir, c).tensors.map((t) => ({ name: t.name, path: t.file, offset: t.offset, length: t.byteLength, dtype: t.dtype }));
  const rand = seededRandom(11);
  for (let i = 0; i < 64; i++) lengths.push(16 + Math.floor(rand() * 112));
  tokens = lengths.flatMap((n) => Array.from({ length: n }, () => 3 + Math.floor(rand() * (SHAPE.vocab - 3))));
  for (const n of lengths) cuSeqlens.push(cuSeqlens[cuSeqlens.length - 1]! + n);
});

/**
 * Activation bytes per token of an encode (core/model.cpp activation_bytes_per_token(false)): x_in,
 * h1, one buffer for q, k, v (then o_proj's output, then gate, then proj), up; rstd1, rstd2, lse.
 */
function encodeBytesPerToken(): number {
  const { hidden: H, intermediate: I, heads, kvHeads, dense: P } = SHAPE;
  const qd = H, kvd = (H / heads) * kvHeads;
  return (H + Math.max(H, qd) + Math.max(qd + 2 * kvd, I, H, P) + I) * 4 + (2 + heads) * 4 + 4;
}

describe.each(['fp32', 'bf16', 'int8'])('peak memory while encoding in %s', (precision) => {
  it('stays within the weights plus one encode group, whatever the batch', () => {
    const jobFile = join(makeTempDir(), 'job.json');
    writeFileSync(jobFile, JSON.stringify({ config: nativeConfig, precision, sources, tokens, cuSeqlens }));
    const child = fileURLToPath(new URL('./helpers/encode-memory-child.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [child, jobFile], { encoding: 'utf8', env: { ...process.env, L2E_NUM_THREADS: '2' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = JSON.parse(r.stdout) as { base: number; loaded: number; peak: number; weightBytes: number; finite: boolean };
    expect(m.finite).toBe(true);
    // a group's tokens: 1/32 of the weights' bytes, at least 64, and a longer text alone
    const group = Math.max(m.weightBytes / 32, 64 * encodeBytesPerToken(), Math.max(...lengths) * encodeBytesPerToken());
    const batch = tokens.length * encodeBytesPerToken();
    expect(batch).toBeGreaterThan(4 * (group + SLACK)); // the batch at once would exceed the bound
    expect(m.loaded - m.base).toBeLessThanOrEqual(m.weightBytes + LOAD_SLACK);
    expect(m.peak - m.loaded).toBeLessThanOrEqual(group + SLACK);
  });
});

describe('encode in groups', () => {
  const addon = () => testingAddon<Natives>();

  it('gives each text the embedding it has when encoded alone, in every precision', async () => {
    for (const precision of ['fp32', 'int8']) {
      const model = new (addon().NativeModel)(nativeConfig, 'cpu', precision);
      await model.loadTensors(sources);
      const { embeddings } = await model.encode(Int32Array.from(tokens), Int32Array.from(cuSeqlens));
      const P = SHAPE.dense;
      for (const i of [0, 17, 40, 63]) {
        const one = await model.encode(Int32Array.from(tokens.slice(cuSeqlens[i], cuSeqlens[i + 1])), Int32Array.from([0, lengths[i]!]));
        const row = embeddings.subarray(i * P, (i + 1) * P);
        for (let j = 0; j < P; j++) expect(Math.abs(row[j]! - one.embeddings[j]!)).toBeLessThanOrEqual(1e-5);
      }
      model.dispose();
    }
  });

  it('reads the fp32 weights back unchanged after an encode pre-packed them', async () => {
    const model = new (addon().NativeModel)(nativeConfig, 'cpu', 'fp32');
    await model.loadTensors(sources);
    const names = ['layers.0.self_attn.q_proj.weight', 'layers.1.mlp.down_proj.weight', 'dense_layer.weight'];
    const first = await model.encode(Int32Array.from(tokens.slice(0, 40)), Int32Array.from([0, 40]));
    for (const n of names) expect(model.getTensor(n)).toEqual(tiny.weights.get(n));
    const again = await model.encode(Int32Array.from(tokens.slice(0, 40)), Int32Array.from([0, 40]));
    expect(again.embeddings).toEqual(first.embeddings);
    model.dispose();
  });

  it('runs groups of 1/32 of the weights\' bytes as held in activations, or 64 tokens, at every precision', async () => {
    const expected = { fp32: 0, bf16: 0, int8: 0 };
    for (const precision of ['fp32', 'bf16', 'int8'] as const) {
      const model = new (addon().NativeModel)(nativeConfig, 'cpu', precision);
      await model.loadTensors(sources);
      expected[precision] = Math.max(64, Math.floor(Math.floor(model.weightBytes / 32) / encodeBytesPerToken()));
      expect([precision, model.encodeGroupTokens]).toEqual([precision, expected[precision]]);
      model.dispose();
    }
    expect(expected.fp32).toBeGreaterThan(64); // at fp32 the share, not the floor, sets it at this shape
  });

  it('names the bad token by its position in the whole batch', async () => {
    const model = new (addon().NativeModel)(nativeConfig, 'cpu', 'fp32');
    await model.loadTensors(sources);
    const bad = tokens.slice();
    bad[3000] = SHAPE.vocab;
    await expect(model.encode(Int32Array.from(bad), Int32Array.from(cuSeqlens))).rejects.toThrow(
      `token id ${SHAPE.vocab} at position 3000 is outside the vocabulary (vocab_size ${SHAPE.vocab})`,
    );
    model.dispose();
  });
});
