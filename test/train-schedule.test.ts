// Learning-rate schedules follow the Hugging Face Trainer (transformers.optimization): the 1-based
// optimizer step s uses lr · λ(s − 1).
import { describe, expect, it } from 'vitest';
import { learningRate, lrMultiplier, parseSchedule, warmupSteps, type ScheduleSpec } from '../src/train/schedule.js';
import { resolveOptions, RECIPE_DEFAULTS } from '../src/train/options.js';

const spec = (name: ScheduleSpec['name'], warm: number, total: number): ScheduleSpec => ({ name, baseLr: 1, warmupSteps: warm, totalSteps: total });

describe('lr schedules', () => {
  it('constant: 1 throughout; with warm-up a linear ramp from 0 (HF constant_with_warmup)', () => {
    expect([1, 2, 50].map((s) => learningRate(spec('constant', 0, 10), s))).toEqual([1, 1, 1]);
    expect([1, 2, 3, 4, 5].map((s) => learningRate(spec('constant', 4, 10), s))).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });

  it('linear: warm-up then a straight line to 0 at the last step, never negative', () => {
    const s = spec('linear', 2, 10);
    expect([1, 2, 3, 4, 10, 11, 20].map((k) => learningRate(s, k))).toEqual([0, 0.5, 1, 7 / 8, 1 / 8, 0, 0]);
  });

  it('cosine: warm-up then half a cosine, 0.5 half-way, 0 at the end', () => {
    const s = spec('cosine', 2, 12);
    expect(lrMultiplier(s, 1)).toBe(0.5);
    expect(lrMultiplier(s, 2)).toBe(1);
    expect(lrMultiplier(s, 7)).toBeCloseTo(0.5, 12);
    expect(lrMultiplier(s, 12)).toBeCloseTo(0, 12);
    expect(lrMultiplier(s, 4)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 0.2)), 12);
  });

  it('warm-up from steps or ratio (HF: ceil(ratio · total)); steps win', () => {
    expect(warmupSteps(0, 0.1, 95)).toBe(10);
    expect(warmupSteps(3, 0.5, 100)).toBe(3);
    expect(warmupSteps(undefined, undefined, 100)).toBe(0);
    expect(() => parseSchedule('exp')).toThrow(/unknown lr schedule "exp"/);
  });
});

describe('trainer options', () => {
  it('defaults are the recipe', () => {
    const o = resolveOptions({});
    expect(o).toMatchObject({
      batchSize: 8,
      groupSize: 3,
      temperature: 0.02,
      lr: 2e-5,
      schedule: 'constant',
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      maxGradNorm: 0.5,
      queryMaxLen: 8192,
      passageMaxLen: 8192,
      inBatchNegatives: true,
      gradientAccumulationSteps: 1,
    });
    expect(o.chunkTokens).toBe(RECIPE_DEFAULTS.chunkTokens);
  });

  it('bad values are named', () => {
    expect(() => resolveOptions({ batchSize: 0 })).toThrow(/batchSize must be an integer ≥ 1/);
    expect(() => resolveOptions({ temperature: 0 })).toThrow(/temperature must be a positive number/);
    // 1e-300 is 0 as a float32: refused here, not by the native loss with no flag named (and an empty folder left)
    expect(() => resolveOptions({ temperature: 1e-300 })).toThrow(
      'temperature must be a positive number that a float32 holds (1.4e-45 to 3.4e38: the model computes in float32), got 1e-300',
    );
    // a float32, but 1 / it is not: every score infinite, and the run said to diverge ("try a lower lr")
    expect(() => resolveOptions({ temperature: 1e-40 })).toThrow(
      'temperature must be at least 2.94e-39 (the scores are divided by it in float32, and 1 / 1e-40 is past its range), got 1e-40',
    );
    expect(resolveOptions({ temperature: 3e-39 }).temperature).toBe(3e-39);
    // a group of 3e9 passages ran Node out of memory (an abort)
    expect(() => resolveOptions({ groupSize: 3e9 })).toThrow('groupSize must be at most 65536, got 3000000000');
    expect(() => resolveOptions({ batchSize: 65537 })).toThrow('batchSize must be at most 65536, got 65537');
    expect(() => resolveOptions({ batchSize: 4096, groupSize: 200 })).toThrow(
      'groupSize 200 with batchSize 4096 makes a score matrix of 4096 × 819200, more than the 2147483647 entries a step can hold',
    );
    expect(resolveOptions({ batchSize: 4096, groupSize: 64 }).groupSize).toBe(64);
    expect(() => resolveOptions({ groupSize: 1, inBatchNegatives: false })).toThrow(
      'groupSize 1 with inBatchNegatives off leaves each query only its positive to score: the loss is always 0 and nothing is learned; use a larger groupSize or in-batch negatives',
    );
    expect(() => resolveOptions({ lr: NaN })).toThrow(/lr must be/);
    expect(() => resolveOptions({ beta2: 1 })).toThrow(/beta2 must be in \[0, 1\)/);
    expect(() => resolveOptions({ resume: true })).toThrow(/resume needs outputDir/);
  });
});
