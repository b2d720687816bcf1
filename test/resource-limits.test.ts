// A model or batch that does not fit in memory is a clear error naming what was asked and what is
// available, raised before allocating (native/core/host_memory.*): never an abort, a wrapped size,
// or the kernel's OOM killer.
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAddon } from '../src/native.js';
import type { NativeModel, NativeModelConfig } from '../src/model/embedding-model.js';

interface ModelAddon {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
}
const { NativeModel } = nativeAddon<ModelAddon>();

const tiny: NativeModelConfig = {
  vocab: 32, hidden: 8, intermediate: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 4, dense: 4,
  rmsEps: 1e-6, ropeTheta: 10000, pooling: 'mean', normalized: true,
};

const LIMIT = 'L2E_HOST_MEMORY_LIMIT_MB';
afterEach(() => {
  delete process.env[LIMIT];
});

describe('memory limits', () => {
  it('refuses a config size past int range instead of wrapping it (2^32 + 1 was read as 1)', () => {
    expect(() => new NativeModel({ ...tiny, vocab: 2 ** 32 + 1 }, 'cpu')).toThrow(
      new RangeError('model config: vocab must be an integer below 2^31, got 4294967297'),
    );
    expect(() => new NativeModel({ ...tiny, hidden: 8.5 }, 'cpu')).toThrow('model config: hidden must be an integer below 2^31, got 8.5');
  });

  it('refuses a model larger than memory before allocating, saying what it needs and what is available', () => {
    // 2^30 x 2^14 embeddings alone: 2^44 floats = 64 TiB
    const huge = { ...tiny, vocab: 2 ** 30, hidden: 2 ** 14, heads: 128, kvHeads: 128, headDim: 128 };
    let message = '';
    try {
      new NativeModel(huge, 'cpu');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^holding the model's (\d+) parameters needs (\d+\.\d\d) GiB of host memory but only (\d+\.\d\d GiB|\d+\.\d MiB) is available$/);
    const [, params, gib] = /^holding the model's (\d+) parameters needs (\d+\.\d\d) GiB/.exec(message)!;
    expect(Number(params)).toBeGreaterThan(2 ** 44);
    expect(Number(gib)).toBeCloseTo((Number(params) * 4) / 2 ** 30, 0);
  });

  it('refuses a batch whose activations do not fit, and the model still works after', async () => {
    const m = new NativeModel(tiny, 'cpu');
    try {
      const ids = new Int32Array(20000).map((_, i) => i % 32);
      const cu = Int32Array.of(0, 10000, 20000);
      process.env[LIMIT] = '1';
      // encode runs the batch in groups of whole texts (core/model.h encode_group_tokens): here each
      // 10000-token text alone, whose encode buffers are 10000 x (H + max(H, q) + max(q + 2kv, I, H, P) + I)
      // floats + 10000 x (2 + heads + 1) floats, plus the pooling buffers: 2,120,036 bytes
      await expect(m.encode(ids, cu)).rejects.toThrow(
        new Error(
          'a batch of 10000 tokens (1 text) needs 2.0 MiB of host memory but only 1.0 MiB is available: cut the text shorter (maxLength, --max-length)',
        ),
      );
      delete process.env[LIMIT];
      const small = await m.encode(ids.subarray(0, 8), Int32Array.of(0, 8));
      expect(small.embeddings).toHaveLength(4);
      expect(small.embeddings.every(Number.isFinite)).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('refuses a model over a memory budget set with L2E_HOST_MEMORY_LIMIT_MB', () => {
    process.env[LIMIT] = '1';
    // 32768 x 64 embeddings + 2 layers of 4736 + norm 64 + dense 256 + bias 4 = 2,106,948 floats
    expect(() => new NativeModel({ ...tiny, vocab: 32768, hidden: 64 }, 'cpu')).toThrow(
      new Error("holding the model's 2106948 parameters needs 8.0 MiB of host memory but only 1.0 MiB is available"),
    );
  });

  it.each(['abc', '12MB', '-1', '99999999999999'])('says a L2E_HOST_MEMORY_LIMIT_MB of %j is not a number of MiB', (value) => {
    process.env[LIMIT] = value;
    expect(() => new NativeModel({ ...tiny, vocab: 32768, hidden: 64 }, 'cpu')).toThrow(
      new Error(`L2E_HOST_MEMORY_LIMIT_MB must be a whole number of MiB, got '${value}'`),
    );
  });

  it('says a L2E_HOST_MEMORY_LIMIT_MB of 0 is no budget (it was read as none at all)', () => {
    process.env[LIMIT] = '0';
    expect(() => new NativeModel({ ...tiny, vocab: 32768, hidden: 64 }, 'cpu')).toThrow(
      new Error("L2E_HOST_MEMORY_LIMIT_MB must be at least 1 MiB, got '0' (unset it for no budget)"),
    );
  });
});
