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

  // Each native call takes a thread of libuv's pool (4 by default) and the model's mutex: concurrent
  // encodes of one model left the other threads waiting on the mutex, and the app's file reads, DNS
  // lookups and crypto waited for them (7 s for a readFile under 20 encodes). They queue in JS instead.
  it("concurrent encodes of one model ask native code for one batch at a time, and each gets its own rows", async () => {
    const m = await EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);
    try {
      const native = m.native;
      const encode = native.encode.bind(native);
      let inFlight = 0;
      let most = 0;
      // (the method is read-only on the native class: defined on the instance instead)
      const replace = (fn: typeof encode): void => void Object.defineProperty(native, 'encode', { value: fn, configurable: true, writable: true });
      replace(async (...args) => {
        most = Math.max(most, ++inFlight);
        try {
          return await encode(...args);
        } finally {
          inFlight--;
        }
      });
      const lists = Array.from({ length: 8 }, (_, k) => Array.from({ length: 6 }, (_, i) => `teks ${k} nombor ${i}`));
      const alone = await Promise.all(lists.map(async (texts) => m.encode(texts, { batchSize: 2 })));
      expect(most).toBe(1);
      for (const [k, texts] of lists.entries()) expect(alone[k]!.data).toEqual((await m.encode(texts, { batchSize: 2 })).data);
      // a failed batch does not hold the turn: the next encode still runs
      replace(async () => Promise.reject(new Error('planted')));
      await expect(m.encode(['x'])).rejects.toThrow('planted');
      replace(encode);
      expect((await m.encode(['x'])).rows).toBe(1);
    } finally {
      m.dispose();
    }
  });
});
