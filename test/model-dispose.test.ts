// dispose() while calls are in flight: they finish, later calls throw, and the native memory is freed
// when the last of them ends.
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

afterAll(() => removeTempDirs());

const load = (): Promise<EmbeddingModel> => EmbeddingModel.load(writeTinyModel(makeTempDir()).dir);

describe('EmbeddingModel.dispose', () => {
  it('an encode called before dispose() finishes, and the native model is freed after it', async () => {
    const m = await load();
    const want = await m.encode(['Selamat pagi']);
    const nat = m.native;
    const p = m.encode(['Selamat pagi']);
    m.dispose();
    expect(m.disposed).toBe(true);
    expect(nat.disposed).toBe(false); // still in use
    await expect(m.encode(['a'])).rejects.toThrow('this EmbeddingModel has been disposed');
    expect(() => m.native).toThrow('this EmbeddingModel has been disposed');
    expect(Array.from((await p).data)).toEqual(Array.from(want.data));
    expect(nat.disposed).toBe(true);
  });

  it('dispose() between the batches of a long encode lets its remaining batches run', async () => {
    const m = await load();
    const nat = m.native;
    const texts = Array.from({ length: 200 }, (_, i) => `teks nombor ${i}`);
    let seen = 0;
    const emb = await m.encode(texts, {
      batchSize: 8,
      onBatch: (b) => {
        seen++;
        if (b.index === 1) m.dispose();
        if (b.index > 1) expect(nat.disposed).toBe(false);
      },
    });
    expect(seen).toBe(25);
    expect(emb.rows).toBe(200);
    expect(emb.row(199).every(Number.isFinite)).toBe(true);
    expect(nat.disposed).toBe(true);
  });

  it('dispose() before a call: the call throws and the memory is freed at once', async () => {
    const m = await load();
    const nat = m.native;
    m.dispose();
    expect(nat.disposed).toBe(true);
    await expect(m.encode(['a'])).rejects.toThrow('this EmbeddingModel has been disposed');
    await expect(m.hold(async () => 1)).rejects.toThrow('this EmbeddingModel has been disposed');
    m.dispose(); // twice: nothing more
  });

  it('hold(): the memory is freed after the last of several calls in flight, even one that fails', async () => {
    const m = await load();
    const nat = m.native;
    let finish!: () => void;
    const held = m.hold(async (n) => {
      await new Promise<void>((resolve) => (finish = resolve));
      return n.params().length;
    });
    const failing = m.hold(async () => {
      throw new Error('boom');
    });
    const enc = m.encode(['a', 'b']);
    m.dispose();
    await expect(failing).rejects.toThrow('boom');
    expect((await enc).rows).toBe(2);
    expect(nat.disposed).toBe(false);
    finish();
    expect(await held).toBeGreaterThan(0);
    expect(nat.disposed).toBe(true);
  });
});
