// Learning-rate schedules with the Hugging Face Trainer's semantics (transformers.optimization):
// a multiplier λ(k) of the base lr at scheduler position k = optimizer steps already taken, so the
// 1-based optimizer step s uses lr · λ(s − 1) (with warm-up the very first step has lr 0, as in HF).
//   constant: λ = 1 after warm-up (HF "constant" when warm-up is 0, "constant_with_warmup" otherwise)
//   linear:   k/W during warm-up, then (T − k)/(T − W) down to 0
//   cosine:   k/W during warm-up, then ½(1 + cos(π·p)), p = (k − W)/(T − W)  (half a cycle)

export type ScheduleName = 'constant' | 'linear' | 'cosine';

export const SCHEDULES: readonly ScheduleName[] = ['constant', 'linear', 'cosine'];

export interface ScheduleSpec {
  name: ScheduleName;
  baseLr: number;
  warmupSteps: number;
  /** Total optimizer steps (needed by linear and cosine; ignored by constant). */
  totalSteps: number;
}

/** Warm-up steps from an explicit count, else from a ratio of the total (HF: ceil(ratio · total)). */
export function warmupSteps(steps: number | undefined, ratio: number | undefined, totalSteps: number): number {
  if (steps !== undefined && steps > 0) {
    if (!Number.isInteger(steps)) throw new Error(`warmupSteps must be a non-negative integer, got ${steps}`);
    return steps;
  }
  if (ratio !== undefined && ratio > 0) {
    if (!(ratio <= 1)) throw new Error(`warmupRatio must be in [0, 1], got ${ratio}`);
    return Math.ceil(ratio * totalSteps);
  }
  return 0;
}

export function lrMultiplier(spec: ScheduleSpec, k: number): number {
  const W = spec.warmupSteps;
  if (k < W) return k / Math.max(1, W);
  if (spec.name === 'constant') return 1;
  const T = spec.totalSteps;
  if (spec.name === 'linear') return Math.max(0, (T - k) / Math.max(1, T - W));
  const progress = (k - W) / Math.max(1, T - W);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Learning rate of 1-based optimizer step `step`. */
export function learningRate(spec: ScheduleSpec, step: number): number {
  return spec.baseLr * lrMultiplier(spec, step - 1);
}

export function parseSchedule(name: string): ScheduleName {
  if ((SCHEDULES as readonly string[]).includes(name)) return name as ScheduleName;
  throw new Error(`unknown lr schedule "${name}" (expected ${SCHEDULES.join(', ')})`);
}
