// Tokenising a large corpus must not hold the event loop for seconds: encodeBatchAsync and
// EmbeddingModel.encode tokenise in short slices, so timers keep firing. The corpus is grown until
// tokenising it in one go blocks for at least 1 s (so the test can tell the two apart on any
// machine); the slices must then keep every gap between timer ticks below a fifth of that (the
// slices are 10 ms; the margin is for a busy machine's scheduling, measured up to ~120 ms under a
// load average of 15 on 2 cores).
import { describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';


/** The longest gap between ticks of a 2 ms interval while `work` runs. */
async function longestGap<T>(work: () => Promise<T>): Promise<{ gap: number; result: T }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 2);
  try {
    const result = await work();
    gap = Math.max(gap, performance.now() - last);
    return { gap, result };
  } finally {
    clearInterval(timer);
  }
}

describe('tokenising a large corpus keeps the event loop turning', () => {
  it('encodeBatchAsync (same ids as encodeBatch) and EmbeddingModel.encode', async () => {
    const model = await EmbeddingModel.load(writeTinyModel(makeTempDir(), { hidden: 32, layers: 1 }).dir);
    try {
      const text = (i: number): string => `teks nombor ${i} tentang makan nasi lemak di kedai mamak pada waktu pagi `.repeat(3);
      let corpus: string[] = [];
      let blockMs = 0;
      let ids: Int32Array[] = [];
      const block = (): number => {
        const t0 = performance.now();
        ids = model.tokenizer.encodeBatch(corpus, 64);
        return performance.now() - t0;
      };
      for (let n = 100; blockMs < 1000 && n <= 100 * 2 ** 10; n *= 2) {
        corpus = Array.from({ length: n }, (_, i) => text(i));
        blockMs = block();
      }
      blockMs = block(); // again, warm (the first runs include compiling the tokenizer's code)
      expect(blockMs).toBeGreaterThanOrEqual(1000);
      const bound = blockMs / 5;

      const sliced = await longestGap(() => model.tokenizer.encodeBatchAsync(corpus, 64));
      expect(sliced.result).toEqual(ids);
      expect(sliced.gap, `one block: ${blockMs.toFixed(0)} ms`).toBeLessThan(bound);

      const encoded = await longestGap(() => model.encode(corpus, { maxLength: 64, batchSize: 256 }));
      expect(encoded.result.rows).toBe(corpus.length);
      expect(encoded.gap, `one block: ${blockMs.toFixed(0)} ms`).toBeLessThan(bound);
    } finally {
      model.dispose();
    }
  }, 300_000);
});
