// Heavy native work runs off the main thread: timers keep firing while a long encode runs.
import { describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';

describe('async encode', () => {
  it('a timer fires while encode is in flight', async () => {
    const tiny = writeTinyModel(makeTempDir(), { hidden: 256, heads: 4, intermediate: 688, layers: 4 });
    const m = await EmbeddingModel.load(tiny.dir);
    const texts = Array.from({ length: 16 }, (_, i) => `teks nombor ${i} `.repeat(60));
    let ticks = 0;
    let ticksBeforeDone = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 1);
    const t0 = performance.now();
    const p = m.encode(texts, { batchSize: 16, maxLength: 1024 }).then((e) => {
      ticksBeforeDone = ticks;
      return e;
    });
    const syncMs = performance.now() - t0; // the part of encode() that ran before it returned
    const emb = await p;
    const totalMs = performance.now() - t0;
    clearInterval(timer);
    expect(emb.rows).toBe(16);
    // the native work ran while the event loop turned: the timer fired before the result came,
    // and encode() itself returned after a small part of the whole time
    expect(ticksBeforeDone).toBeGreaterThan(0);
    // (a timing bound: not under the sanitizer run, where files run side by side and ASan's runtime
    // shares the main thread)
    if (process.env['L2E_SANITIZER_RUN'] !== '1') expect(syncMs).toBeLessThan(totalMs / 4);
    m.dispose();
  });
});
