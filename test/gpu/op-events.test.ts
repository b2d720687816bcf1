// The CUDA backend's per-op timer (cuda/op_events.cpp, what bench/gpu-bench.mjs prints): with op timing
// on, a model created afterwards records CUDA events around every op, the optimizer step and the
// loss, and its totals are filed under the op names once the events complete (all of them when the
// model is disposed), with the matrix products' FLOPs (core/op_flops.h). Times are never asserted beyond
// being positive: in the emulation build they are the CPU's.
import { describe, expect, it } from 'vitest';
import { cudaDevice, gpu, gpuNote } from './gpu-helpers.js';
import { stepFlops, timedTrainingStep } from '../helpers/timed-step.js';

describe.skipIf(!gpu.usable || cudaDevice !== 'cuda')(`per-op CUDA event timing ${gpuNote}`, () => {
  it('one training step: every op it ran, the loss and the optimizer step are timed, once each call, with their FLOPs', async () => {
    const { ops: t, outcome: r } = await timedTrainingStep('cuda');
    expect(Number.isFinite(r.loss) && r.loss > 0 && !r.skipped).toBe(true);
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
    // the matrix products' FLOPs (core/op_flops.h), the other ops' 0
    const flops = stepFlops();
    expect(Object.fromEntries([...t.values()].filter((o) => o.flops > 0).map((o) => [o.op, o.flops]))).toEqual(flops);
  });
});
