// The CPU backend's host pool (native/cpu/host_pool.h): once a model has a training state, its tensors
// from 1 MiB up are carved from mapped segments that stay mapped when freed, so the next training step
// reuses them instead of mapping (and the kernel zeroing) fresh pages; the model's end gives them all
// back. Counted by the test addon's
// hostPoolCounts (segments mapped, bytes held). A reused block holds an earlier step's values, not the
// zeros of a fresh mapping: the same steps with L2E_CPU_POOL=off (every tensor mapped on its own) must
// give the same weights and moments bit for bit, or some op reads memory it never wrote.
import { afterEach, describe, expect, it } from 'vitest';

import { initRandomWeights, type NativeModel, type NativeModelConfig } from '../src/model/embedding-model.js';
import type { TrainNatives } from '../src/train/native-train.js';
import { Rng } from '../src/util/random.js';
import { testingAddon } from './helpers/testing-addon.mjs';
import { oneChunkStep } from '../bench/lib/train-step.mjs';

interface PoolAddon extends TrainNatives {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
  hostPoolCounts(): { segmentMaps: number; heldBytes: number };
  sanitizerLeakCheck?: () => boolean;
}

const a = testingAddon<PoolAddon>();
// the [tokens, intermediate] F32 activations and their gradients are 2 KiB a token: past 1 MiB from 512 tokens
const cfg: NativeModelConfig = { vocab: 256, hidden: 128, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, headDim: 32, dense: 64, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true };
const B = 4, G = 1; // 4 queries, 4 passages: one chunk of 8 texts

interface Batch { ids: Int32Array; cu: Int32Array; tokens: number }
function batch(seed: number, meanLen: number): Batch {
  const rng = new Rng(seed, 1);
  const lens = Array.from({ length: B * (1 + G) }, () => Math.round(meanLen * (0.75 + 0.5 * rng.next())));
  const cu = new Int32Array(lens.length + 1);
  lens.forEach((l, i) => (cu[i + 1] = cu[i]! + l));
  const ids = new Int32Array(cu[lens.length]!);
  for (let i = 0; i < ids.length; i++) ids[i] = Math.floor(rng.next() * cfg.vocab);
  return { ids, cu, tokens: ids.length };
}
const mid = batch(1, 110), small = batch(2, 60), large = batch(3, 220);

async function step(m: NativeModel, b: Batch, n: number): Promise<void> {
  const r = await oneChunkStep(a, m, b.ids, b.cu, B, G, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1, step: n }, 0.05);
  expect(Number.isFinite(r.loss) && !r.skipped).toBe(true);
}

function model(): NativeModel {
  const m = new a.NativeModel(cfg, 'cpu');
  initRandomWeights(m, cfg.hidden, 7);
  return m;
}

/** The model's weights and AdamW moments, end to end. */
function state(m: NativeModel): Float32Array[] {
  return [...m.params().map((p) => m.getTensor(p.name)), a.trainGetBuffer(m, 'm'), a.trainGetBuffer(m, 'v')];
}

const sanitized = typeof a.sanitizerLeakCheck === 'function'; // host_alloc takes malloc's memory there: no pool
const saved = process.env['L2E_CPU_POOL'];
afterEach(() => {
  if (saved === undefined) delete process.env['L2E_CPU_POOL'];
  else process.env['L2E_CPU_POOL'] = saved;
});

describe('CPU host pool', () => {
  it.skipIf(sanitized)('a training step reuses the segments an earlier step mapped; the model gives them all back', async () => {
    delete process.env['L2E_CPU_POOL'];
    const maps = (): number => a.hostPoolCounts().segmentMaps;
    const held0 = a.hostPoolCounts().heldBytes;
    const m = model();
    try {
      const before = maps();
      await m.encode(mid.ids, mid.cu);
      expect(maps() - before).toBe(0); // no training state: each tensor its own mapping, as before the pool
      a.trainInit(m);
      const mapped: number[] = [];
      for (const [b, n] of [[mid, 1], [mid, 2], [small, 3], [large, 4], [large, 5], [mid, 6]] as const) {
        const k = maps();
        await step(m, b, n);
        mapped.push(maps() - k);
      }
      // the first step maps its large activations; the same batch again and a smaller one map nothing;
      // a larger one maps what no free segment holds, and nothing when it comes again
      expect(mapped[0]).toBeGreaterThan(0);
      expect(mapped.slice(1, 3)).toEqual([0, 0]);
      expect(mapped[3]).toBeGreaterThan(0);
      expect(mapped.slice(4)).toEqual([0, 0]);
      expect(a.hostPoolCounts().heldBytes).toBeGreaterThan(held0);
    } finally {
      m.dispose();
    }
    expect(a.hostPoolCounts().heldBytes).toBe(held0);
  });

  it('steps on reused memory give the weights and moments that steps on fresh memory give, bit for bit', async () => {
    const run = async (pool: 'on' | 'off'): Promise<Float32Array[]> => {
      if (pool === 'off') process.env['L2E_CPU_POOL'] = 'off';
      else delete process.env['L2E_CPU_POOL'];
      const m = model();
      try {
        a.trainInit(m);
        const k = a.hostPoolCounts().segmentMaps;
        let n = 1;
        for (const b of [large, mid, small, large, mid]) await step(m, b, n++);
        if (pool === 'off') expect(a.hostPoolCounts().segmentMaps - k).toBe(0);
        return state(m);
      } finally {
        m.dispose();
      }
    };
    const on = await run('on'), off = await run('off');
    expect(on.length).toBe(off.length);
    on.forEach((t, i) => {
      expect(t.every(Number.isFinite)).toBe(true);
      expect(Buffer.from(t.buffer, t.byteOffset, t.byteLength).equals(Buffer.from(off[i]!.buffer, off[i]!.byteOffset, off[i]!.byteLength)), `tensor ${i}`).toBe(true);
    });
  });

  it('L2E_CPU_POOL other than off or unset: the model is refused, naming the setting', () => {
    process.env['L2E_CPU_POOL'] = 'nosplit';
    expect(() => new a.NativeModel(cfg, 'cpu')).toThrow('L2E_CPU_POOL=nosplit: expected off (each tensor mapped on its own) or unset');
  });
});
