// The CUDA pools' peak counters that bench/gpu-bench.mjs reads around the recipe steps:
// cudaPoolPeakLive (bytes in blocks handed out, torch.cuda.max_memory_allocated's measure) and
// cudaPoolPeakReserved (bytes in cudaMalloc'd segments). A reset starts a peak again from the bytes held
// now and returns the peak before, so two resets in a row read the bytes held now.
import { describe, expect, it } from 'vitest';
import { testingAddon } from '../helpers/testing-addon.mjs';
import { addon, cudaDevice, cuSeqlens, gpu, gpuNote, randInt, randomWeights } from './gpu-helpers.js';
import type { TrainNatives } from '../../src/train/native-train.js';
import { Rng } from '../../src/util/random.js';

interface Peaks {
  cudaPoolPeakLive(reset?: boolean): number;
  cudaPoolPeakReserved(reset?: boolean): number;
}

const config = { vocab: 64, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, headDim: 16, dense: 32, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean' as const, normalized: true };

describe.skipIf(!gpu.usable || cudaDevice !== 'cuda')(`CUDA pool peaks ${gpuNote}`, () => {
  it('the live peak holds the bf16 weights, grows by an encode, stays within the reserved peak, and falls back when the model goes', async () => {
    const p = testingAddon<Peaks>();
    const liveNow = (): number => (p.cudaPoolPeakLive(true), p.cudaPoolPeakLive(true));
    const base = liveNow();  // other models of this process
    const m = new (addon().NativeModel)(config, 'cuda');
    try {
      randomWeights([m], 3);
      const params = m.params().reduce((s, t) => s + t.numel, 0);
      const loaded = liveNow();
      expect(loaded - base).toBeGreaterThanOrEqual(2 * params);  // bf16 weights on the device
      p.cudaPoolPeakReserved(true);
      const lens = [17, 1, 40];
      const cu = cuSeqlens(lens);
      const ids = randInt(new Rng(5, 1), cu[lens.length]!, config.vocab);
      const out = await m.encode(ids, cu);
      expect(out.embeddings.every(Number.isFinite)).toBe(true);
      const encodePeak = p.cudaPoolPeakLive();
      // the activations of 58 tokens: at least one [T, hidden] bf16 buffer beyond the weights
      expect(encodePeak - loaded).toBeGreaterThanOrEqual(58 * config.hidden * 2);
      expect(encodePeak).toBeLessThanOrEqual(p.cudaPoolPeakReserved());
      // what the model keeps after an encode (its buffers for the next) is reused by the same batch again
      const kept = liveNow();
      expect(kept).toBeLessThan(encodePeak);
      await m.encode(ids, cu);
      expect(p.cudaPoolPeakLive()).toBe(encodePeak);
      expect(liveNow()).toBe(kept);
    } finally {
      m.dispose();
    }
    expect(liveNow()).toBe(base);
  });

  // What training adds to the bf16 weights: F32 gradients and AdamW moments, and the F32 master held as
  // halves (native/core/master_halves.h) whose bf16 half is the weights themselves: 14 bytes a
  // parameter, not the 16 of a whole F32 master beside them; less the embedding table's F32 gradient,
  // which the training step holds apart, only for the rows a step's batches name
  // (native/cuda/table_rows.cu): none before a backward. Its own buffers (descriptors, norm partials,
  // a slot and a flag for each row of the table) are under half a byte a parameter at this size, where
  // the table (4096 x 64) is 80% of the parameters.
  it('training state: 14 bytes a parameter beside the weights, less 4 a parameter of the embedding table', () => {
    const p = testingAddon<Peaks>();
    const liveNow = (): number => (p.cudaPoolPeakLive(true), p.cudaPoolPeakLive(true));
    const m = new (addon().NativeModel)({ ...config, vocab: 4096 }, 'cuda');
    try {
      randomWeights([m], 3);
      const params = m.params().reduce((s, t) => s + t.numel, 0);
      const loaded = liveNow();
      testingAddon<TrainNatives>().trainInit(m);  // the addon whose pools p counts
      const added = liveNow() - loaded;
      const table = 4096 * config.hidden;
      expect(added).toBeGreaterThanOrEqual(14 * params - 4 * table);
      expect(added).toBeLessThan(14 * params - 4 * table + 0.5 * params);
    } finally {
      m.dispose();
    }
  });
});
