// Heavy native work runs off the main thread: timers keep firing while a long encode runs.
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';
import { hasTinyMha, skipNote } from './helpers/fixture.js';

describe.skipIf(!hasTinyMha)(`async encode ${hasTinyMha ? '' : skipNote('the shared tokenizer')}`, () => {
  afterAll(() => removeTempDirs());

  it('a timer fires while encode is in flight', async () => {
    const tiny = writeTinyModel(makeTempDir(), { hidden: 256, heads: 4, intermediate: 688, layers: 4 });
    const m = await EmbeddingModel.load(tiny.dir);
    const texts = Array.from({ length: 16 }, (_, i) => `teks nombor ${i} `.repeat(60));
    let ticks = 0;
    let encodeDone = false;
    let ticksBeforeDone = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 1);
    const p = m.encode(texts, { batchSize: 16, maxLength: 1024 }).then((e) => {
      encodeDone = true;
      ticksBeforeDone = ticks;
      return e;
    });
    expect(encodeDone).toBe(false); // encode returned a pending promise at once
    const emb = await p;
    clearInterval(timer);
    expect(emb.rows).toBe(16);
    expect(ticksBeforeDone).toBeGreaterThan(0);
    m.dispose();
  });
});
