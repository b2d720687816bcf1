// The CPU backend's per-op timer (cpu/op_timing.h, what the bench's per-op tables print): with op timing
// on, a model created afterwards times every op-table call and files it under the op's name with the
// matrix products' FLOPs (core/op_flops.h). Times are only asserted to be there;
// test/gpu/op-events.test.ts runs the same step on CUDA.
import { describe, expect, it } from 'vitest';
import { stepFlops, timedTrainingStep } from './helpers/timed-step.js';

describe('per-op timing on the CPU', () => {
  it('one training step: each op its calls, time and FLOPs; the products exactly theirs, the other ops none', async () => {
    const { ops, outcome } = await timedTrainingStep('cpu');
    expect(Number.isFinite(outcome.loss) && outcome.loss > 0).toBe(true);
    expect(ops.get('attention')?.calls).toBe(2);
    expect(ops.get('attention_backward')?.calls).toBe(2);
    for (const o of ops.values()) expect(o.seconds, o.op).toBeGreaterThanOrEqual(0);
    expect(ops.get('linear')!.seconds).toBeGreaterThan(0);
    expect(Object.fromEntries([...ops.values()].filter((o) => o.flops > 0).map((o) => [o.op, o.flops]))).toEqual(stepFlops());
  });
});
