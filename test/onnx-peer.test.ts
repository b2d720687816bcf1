// The bench's ONNX graph of our model run by the peer, ONNX Runtime through onnxruntime-node (a dev
// dependency: without it these tests are skipped with the reason). A small random model (GQA: 4 heads,
// 2 kv heads) in FP32 and INT8: ONNX Runtime's embeddings of token ids, batched with right padding,
// must equal ours; and the protobuf the writer makes must carry what the graph says.
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { llamaOnnxGraph, quantizeBlocks, quantizeColumns, transpose, type OnnxFormat } from '../bench/lib/llama-onnx.mjs';
import { ONNX_DATA_ALIGNMENT, ONNX_TYPE, OnnxGraph } from '../bench/lib/onnx.mjs';
import { loadOrt, openOrtEmbedder, paddedBatches } from '../bench/lib/ort-peer.mjs';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { writeSafetensors } from '../src/model/safetensors.js';
import { parameterNames } from '../src/model/weights.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

const peer = await loadOrt();
const skipReason = 'skip' in peer ? peer.skip : null;
if (skipReason) console.warn(`onnx-peer tests skipped: ${skipReason}`);

const TEXTS = [
  'saya tak boleh makan nasi lemak kat KL lah',
  'The government said that the state would act.',
  'a',
  'kerajaan negeri Selangor menyatakan bahawa 2024 sedap gila!!!',
];

/**
 * 1 − cos allowed against our fp32 embeddings (1 − cos ≈ ε²/2 for a relative error ε). FP32: the
 * rounding of the arithmetic in another order (observed up to 7e-8): 1e-6. INT8: weights per output
 * channel and activations per tensor in 8 bits (ε ~ 1/254 per value; a few % after two layers): 1e-3
 * (observed up to 2.2e-4; 0.14 on an AVX2 CPU without VNNI, whose u8 x s8 products saturate, until
 * the peer set ORT's x64quantprecision there: bench/lib/ort-peer.mjs ortU8S8Saturates); INT8B32 the same bound (observed up to 4.4e-4: its activations are
 * quantised too, in blocks of 32; a zero point off by one code, planted, gives 1.03e-3). A wrong
 * layout gives 1e-2 or worse: the rotary halves swapped 7.7e-2, no causal mask 0.55 (both planted).
 */
const BOUND: Record<OnnxFormat, number> = { FP32: 1e-6, INT8: 1e-3, INT8B32: 1e-3 };

describe('ONNX writer, quantisation and batching', () => {
  it('a graph round-trips its names, opsets and external data at aligned offsets', () => {
    const dir = makeTempDir('l2e-onnx-writer-');
    const g = new OnnxGraph();
    g.opset('com.microsoft', 1);
    g.input('x', ONNX_TYPE.FLOAT, ['batch', 3]);
    const big = Float32Array.from({ length: 1000 }, (_, i) => i);
    g.weight('w1', ONNX_TYPE.FLOAT, [1000], () => big);
    g.weight('w2', ONNX_TYPE.INT8, [5], () => Int8Array.of(-1, 2, -3, 4, -127));
    g.constant('c', ONNX_TYPE.INT64, [1], BigInt64Array.of(-1n));
    expect(g.constant('c', ONNX_TYPE.INT64, [1], BigInt64Array.of(7n))).toBe('c');
    g.op('Add', ['x', 'c'], { axes: { ints: [-1] } }, { outputs: ['y'] });
    g.output('y', ONNX_TYPE.FLOAT, ['batch', 3]);
    const file = join(dir, 'm.onnx');
    const { dataBytes } = g.write(file);
    const data = readFileSync(`${file}.data`);
    expect(dataBytes).toBe(ONNX_DATA_ALIGNMENT + 5);
    expect(data.length).toBe(dataBytes);
    expect(new Float32Array(data.buffer, data.byteOffset, 1000)).toEqual(big);
    expect(Array.from(new Int8Array(data.buffer, data.byteOffset + ONNX_DATA_ALIGNMENT, 5))).toEqual([-1, 2, -3, 4, -127]);
    const model = readFileSync(file);
    const text = model.toString('latin1');
    for (const s of ['com.microsoft', 'm.onnx.data', 'w1', 'w2', 'batch', 'Add', String(ONNX_DATA_ALIGNMENT)]) expect(text).toContain(s);
    // -1 as an int64 varint: ten bytes, 0xff x 9 then 0x01
    expect(model.includes(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe(true);
  });

  it('padded batches: at most `texts` sequences, `tokens` padded tokens and `padding` x the real ones', () => {
    const seqs = [512, 300, 290, 100, 90, 80, 10, 9, 8, 7].map((n) => new Array<number>(n).fill(1));
    const lengths = (limits: { texts: number; tokens: number; padding: number }) => paddedBatches(seqs, limits).map((b) => b.map((s) => s.length));
    // 512 alone (with 300: 1024 padded for 812 real > 1.25x); 300, 290 (600 for 590); 100..80 (300 for 270);
    // 10..7 (40 for 34)
    expect(lengths({ texts: 64, tokens: 4096, padding: 1.25 })).toEqual([[512], [300, 290], [100, 90, 80], [10, 9, 8, 7]]);
    expect(lengths({ texts: 2, tokens: 4096, padding: 1.25 })).toEqual([[512], [300, 290], [100, 90], [80], [10, 9], [8, 7]]);
    expect(lengths({ texts: 64, tokens: 200, padding: 100 })).toEqual([[512], [300], [290], [100, 90], [80, 10], [9, 8, 7]]);
  });

  it('transpose, per-column int8 and 8-bit block quantisation', () => {
    expect(Array.from(transpose(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
    const { q, scale } = quantizeColumns(Float32Array.of(0.5, -1, 0.25, 0, 0, 0), 2, 3);
    expect(Array.from(scale)).toEqual([Math.fround(1 / 127), 0]);
    expect(Array.from(q)).toEqual([64, 0, -127, 0, 32, 0]); // [K, N]: column n is output channel n
    // MatMulNBits' blocks of 32 along k: [N, blocks, 32] codes offset by 128, k past K is code 128
    const w = new Float32Array(2 * 33);
    w.set([0.5, -1, 0.25]);
    w[32] = 2; // row 0's second block
    w[33 + 1] = -0.5; // row 1
    const b = quantizeBlocks(w, 2, 33);
    expect(Array.from(b.scale)).toEqual([1 / 127, 2 / 127, 0.5 / 127, 0].map(Math.fround));
    const codes = (n: number, blk: number) => Array.from(b.codes.subarray((n * 2 + blk) * 32, (n * 2 + blk + 1) * 32));
    expect(codes(0, 0).slice(0, 4)).toEqual([192, 1, 160, 128]);
    expect(codes(0, 1)).toEqual([255, ...new Array<number>(31).fill(128)]);
    expect(codes(1, 0).slice(0, 3)).toEqual([128, 1, 128]);
    expect(codes(1, 1)).toEqual(new Array<number>(32).fill(128));
  });
});

describe.skipIf(skipReason !== null)(`ONNX Runtime runs the bench's ONNX graph${skipReason ? ` (skipped: ${skipReason})` : ''}`, async () => {
  const dir = makeTempDir('l2e-onnx-peer-');
  const tiny = writeTinyModel(join(dir, 'model'), { hidden: 64, heads: 4, kvHeads: 2, intermediate: 96, layers: 2, dense: 24, seed: 5 });
  // q and k 5x larger than the helper's: attention far from uniform, so that the rotary layout and
  // the causal mask show in the embeddings
  const shapes = new Map(parameterNames(tiny.config, 24).map((p) => [p.name, p.shape]));
  for (const [name, w] of tiny.weights) if (/\.(q|k)_proj\./.test(name)) w.forEach((v, i) => (w[i] = 5 * v));
  writeSafetensors(join(tiny.dir, 'model.safetensors'), [...tiny.weights].map(([name, data]) => ({ name, dtype: 'F32', shape: shapes.get(name)!, data })));
  const ours = await EmbeddingModel.load(tiny.dir);
  const ids = ours.tokenize(TEXTS);
  const ourEmb = await ours.encode(TEXTS);
  ours.dispose();
  const shape = {
    vocab: tiny.config.vocabSize, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 16, dense: 24,
    rmsEps: tiny.config.rmsNormEps, ropeTheta: tiny.config.ropeTheta, maxPositions: 128,
  };

  for (const format of ['FP32', 'INT8', 'INT8B32'] as const) {
    it(`${format}: our embeddings (1 - cos <= ${BOUND[format]}), one text at a time and batched with padding`, async () => {
      if ('skip' in peer) throw new Error(peer.skip);
      const file = join(dir, `model-${format}.onnx`);
      llamaOnnxGraph(shape, format, (name) => tiny.weights.get(name)!).write(file);
      const e = await openOrtEmbedder(peer.ort, file, { threads: 2, dim: 24 });
      try {
        const batched = await e.embed(ids);
        for (const [i, seq] of ids.entries()) {
          const alone = await e.embed([seq]);
          const ref = ourEmb.row(i);
          for (const emb of [alone, batched.subarray(i * 24, (i + 1) * 24)]) {
            let dot = 0;
            for (let j = 0; j < 24; j++) dot += emb[j]! * ref[j]!;
            expect(1 - dot).toBeLessThanOrEqual(BOUND[format]); // NaN fails
            expect(1 - dot).toBeGreaterThanOrEqual(-1e-6);
          }
        }
      } finally {
        await e.dispose();
      }
    });
  }
});
