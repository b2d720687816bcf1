// Types of train-step.mjs (plain JavaScript so that bench/*.mjs can load it too).
import type { NativeModel } from '../../src/model/embedding-model.js';
import type { OptimizerHyper, StepOutcome, TrainNatives } from '../../src/train/native-train.js';

/** The trainer's one-chunk step on a packed batch of B queries and B*G passages; the step's outcome. */
export function oneChunkStep(
  addon: TrainNatives,
  model: NativeModel,
  ids: Int32Array,
  cu: Int32Array,
  B: number,
  G: number,
  hyper: OptimizerHyper,
  temperature?: number,
): Promise<StepOutcome>;
