// The fp32 master weights of CUDA training held as halves (native/core/master_halves.h): the bf16
// parameters the forward reads (the master rounded to nearest, ties away from zero) and a buffer of
// the master's low 16 bits. Written and read through setTensor / getTensor while training (the
// checkpoints' path), a table of more than the 4M values the host converts at a time comes back bit
// for bit, with values planted where rounding is delicate; the weights the forward reads are the
// master's rounding. (AdamW on the halves: ops.test.ts and step-sync.test.ts.)
import { describe, expect, it } from 'vitest';
import type { NativeModel } from '../../src/model/embedding-model.js';
import { trainNatives } from '../../src/train/native-train.js';
import { nativeAddon } from '../../src/native.js';
import { Rng } from '../../src/util/random.js';
import { bf16TiesAway, cudaDevice, gpu, gpuNote, type GpuAddon, randomWeights } from './gpu-helpers.js';

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe.skipIf(!gpu.usable || cudaDevice !== 'cuda')(`CUDA master weights as halves ${gpuNote}`, () => {
  it('setTensor and getTensor while training: every value back bit for bit, the weights its rounding', () => {
    const { NativeModel: Native } = nativeAddon<GpuAddon>();
    // the table: 33000 x 128 = 4,224,000 values, past one host chunk of 2^22
    const m: NativeModel = new Native({ vocab: 33000, hidden: 128, intermediate: 64, layers: 1, heads: 2, kvHeads: 1, headDim: 64, dense: 8, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true }, 'cuda');
    try {
      randomWeights([m], 7);
      const nat = trainNatives();
      nat.trainInit(m);
      const table = m.params().find((p) => p.name === 'embed_tokens.weight')!;
      expect(table.numel).toBeGreaterThan(2 ** 22);
      const rng = new Rng(11, 1);
      const values = new Float32Array(table.numel).map(() => (rng.next() - 0.5) * 0.1);
      const planted = [
        0x3f808000, 0xbf818000, 0x3f7fffff, 0x3f7f8000, 0x7f7fffff, 0xff7f8000, 0x7f800000, 0xff800000, 0x00008000,
        0x0000ffff, 0x00000001, 0x80000000, 0x00000000, 0x7fc00000, 0x7f800001, 0x7fffffff,
      ];
      // each planted value near the start, on both sides of the chunk boundary, and near the end
      const bits = bitsOf(values);
      for (const [k, b] of planted.entries()) for (const i of [k, 2 ** 22 - 1 - k, 2 ** 22 + k, table.numel - 1 - k]) bits[i] = b;
      m.setTensor(table.name, values);
      const back = bitsOf(m.getTensor(table.name));
      const params = (nat as unknown as { trainGetBuffer(m: NativeModel, w: string): Float32Array }).trainGetBuffer(m, 'params');
      const weights = params.subarray(table.offset, table.offset + table.numel);
      // NaN stays NaN (its payload need not come back), every other value bit for bit; the weights the
      // forward reads are the master's rounding, ties away from zero
      const wrong: string[] = [];
      for (let i = 0; i < values.length && wrong.length < 5; i++) {
        const v = values[i]!;
        const backOk = Number.isNaN(v) ? Number.isNaN(new Float32Array(back.buffer, back.byteOffset, back.length)[i]!) : back[i] === bits[i];
        const weightOk = Number.isNaN(v) ? Number.isNaN(weights[i]!) : Object.is(weights[i], bf16TiesAway(v));
        if (!backOk || !weightOk) wrong.push(`[${i}] 0x${bits[i]!.toString(16)}: master 0x${back[i]!.toString(16)}, weight ${weights[i]}`);
      }
      expect(wrong).toEqual([]);
    } finally {
      m.dispose();
    }
  });
});
