// The CUDA backend's per-op timer (cuda/op_events.cpp, what bench/gpu-bench.mjs prints): with op timing
// on, a model created afterwards records CUDA events around every op, the optimizer step and the
// loss, and its totals are filed under the op names once the events complete (all of them when the
// model is disposed). Times are never asserted beyond being positive: in the emulation build they
// are the CPU's.
import { describe, expect, it } from 'vitest';
import type { NativeModel, NativeModelConfig } from '../../src/model/embedding-model.js';
import type { StepOutcome } from '../../src/train/native-train.js';
import { cudaDevice, gpu, gpuNote, randInt, randomWeights } from './gpu-helpers.js';
import { testingAddon } from '../helpers/testing-addon.mjs';
import { Rng } from '../../src/util/random.js';

interface TimedAddon {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
  setOpTiming(on: boolean): void;
  resetOpTimings(): void;
  opTimings(): { op: string; calls: number; seconds: number }[];
  trainInit(m: NativeModel): void;
  trainForward(m: NativeModel, chunk: number, ids: Int32Array, cu: Int32Array, keep: boolean, download: false): Promise<undefined>;
  trainLossChunks(m: NativeModel, chunks: Int32Array, B: number, G: number, temperature: number, inBatch: boolean, gradScale: number): void;
  trainBackward(m: NativeModel, chunk: number, ids: Int32Array, cu: Int32Array): Promise<void>;
  trainRelease(m: NativeModel): void;
  trainStep(m: NativeModel, hyper: Record<string, number>): Promise<StepOutcome>;
}

describe.skipIf(!gpu.usable || cudaDevice !== 'cuda')(`per-op CUDA event timing ${gpuNote}`, () => {
  it('one training step: every op it ran, the loss and the optimizer step are timed, once each call', async () => {
    const a = testingAddon<TimedAddon>();
    const cfg: NativeModelConfig = { vocab: 64, hidden: 32, intermediate: 48, layers: 1, heads: 2, kvHeads: 1, headDim: 16, dense: 8, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true };
    a.setOpTiming(true);
    a.resetOpTimings();
    let m: NativeModel | null = null;
    try {
      m = new a.NativeModel(cfg, 'cuda');
      randomWeights([m], 2);
      a.trainInit(m);
      const rng = new Rng(4, 1);
      const q = { ids: randInt(rng, 7, cfg.vocab), cu: Int32Array.from([0, 3, 7]) };
      const p = { ids: randInt(rng, 9, cfg.vocab), cu: Int32Array.from([0, 2, 5, 6, 9]) };
      await a.trainForward(m, 0, q.ids, q.cu, true, false);
      await a.trainForward(m, 1, p.ids, p.cu, true, false);
      a.trainLossChunks(m, Int32Array.from([0, 1]), 2, 2, 0.05, true, 1);  // two chunks: the queries, the passages
      await a.trainBackward(m, 0, q.ids, q.cu);
      await a.trainBackward(m, 1, p.ids, p.cu);
      a.trainRelease(m);
      const r = await a.trainStep(m, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1, step: 1 });
      expect(Number.isFinite(r.loss) && r.loss > 0 && !r.skipped).toBe(true);
    } finally {
      m?.dispose();
      a.setOpTiming(false);
    }
    const t = new Map(a.opTimings().map((o) => [o.op, o]));
    // per forward: one attention per layer; per backward: one attention_backward; one loss, one step
    expect(t.get('attention')?.calls).toBe(2);
    expect(t.get('attention_backward')?.calls).toBe(2);
    expect(t.get('infonce')?.calls).toBe(1);
    expect(t.get('optimizer_step')?.calls).toBe(1);
    for (const op of ['embedding', 'rmsnorm', 'linear', 'linear_backward', 'rmsnorm_backward', 'upload', 'copy']) {
      expect(t.get(op)?.calls ?? 0, op).toBeGreaterThan(0);
    }
    for (const o of t.values()) expect(o.seconds, o.op).toBeGreaterThanOrEqual(0);
    for (const op of ['linear', 'attention', 'optimizer_step']) expect(t.get(op)!.seconds, op).toBeGreaterThan(0);
    a.resetOpTimings();
  });
});
