// One training step of a small model with the per-op timer on (cpu/op_timing.h; on CUDA its events,
// cuda/op_events.cpp), and the matrix products' FLOPs the timer must file for it (core/op_flops.h):
// test/op-timing.test.ts runs it on the CPU, test/gpu/op-events.test.ts on CUDA.
import { initRandomWeights, type NativeModel, type NativeModelConfig } from '../../src/model/embedding-model.js';
import type { StepOutcome } from '../../src/train/native-train.js';
import { testingAddon } from './testing-addon.mjs';

export interface OpTime {
  op: string;
  calls: number;
  seconds: number;
  flops: number;
}

interface TimedAddon {
  NativeModel: new (config: NativeModelConfig, device: string) => NativeModel;
  setOpTiming(on: boolean): void;
  resetOpTimings(): void;
  opTimings(): OpTime[];
  trainInit(m: NativeModel): void;
  trainForward(m: NativeModel, chunk: number, ids: Int32Array, cu: Int32Array, keep: boolean, download: false): Promise<undefined>;
  trainLossChunks(m: NativeModel, chunks: Int32Array, B: number, G: number, temperature: number, inBatch: boolean, gradScale: number): void;
  trainBackward(m: NativeModel, chunk: number, ids: Int32Array, cu: Int32Array): Promise<void>;
  trainRelease(m: NativeModel): void;
  trainStep(m: NativeModel, hyper: Record<string, number>): Promise<StepOutcome>;
}

const cfg: NativeModelConfig = { vocab: 64, hidden: 32, intermediate: 48, layers: 1, heads: 2, kvHeads: 1, headDim: 16, dense: 8, rmsEps: 1e-5, ropeTheta: 1e4, pooling: 'mean', normalized: true };
// 2 queries of 3 and 4 tokens, 4 passages of 2, 3, 1 and 3 (B = 2, group 2)
const q = { ids: Int32Array.from([1, 5, 9, 1, 7, 3, 60]), cu: Int32Array.from([0, 3, 7]) };
const p = { ids: Int32Array.from([1, 2, 1, 4, 8, 1, 1, 33, 12]), cu: Int32Array.from([0, 2, 5, 6, 9]) };

/** Runs the step on `device`; returns each op's totals and the step's outcome. */
export async function timedTrainingStep(device: string): Promise<{ ops: Map<string, OpTime>; outcome: StepOutcome }> {
  const a = testingAddon<TimedAddon>();
  a.setOpTiming(true);
  a.resetOpTimings();
  let m: NativeModel | null = null;
  let outcome: StepOutcome;
  try {
    m = new a.NativeModel(cfg, device);
    initRandomWeights(m, cfg.hidden, 2);
    a.trainInit(m);
    await a.trainForward(m, 0, q.ids, q.cu, true, false);
    await a.trainForward(m, 1, p.ids, p.cu, true, false);
    a.trainLossChunks(m, Int32Array.from([0, 1]), 2, 2, 0.05, true, 1); // two chunks: the queries, the passages
    await a.trainBackward(m, 0, q.ids, q.cu);
    await a.trainBackward(m, 1, p.ids, p.cu);
    a.trainRelease(m);
    outcome = await a.trainStep(m, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1, step: 1 });
  } finally {
    m?.dispose(); // the CUDA timer files its last events here
    a.setOpTiming(false);
  }
  const ops = new Map(a.opTimings().map((o) => [o.op, o]));
  a.resetOpTimings();
  return { ops, outcome };
}

/**
 * The step's matrix products, from the shapes: the linear weights (q, k, v, o, gate, up, down and the
 * dense layer: N of them) are applied to each of the 16 tokens, 2 N FLOPs a token forward and 4 N
 * backward (dW, and dx, which every layer's input needs: the first one's for the embedding's gradient);
 * the attention's causal (query, key) pairs, len^2 / 2 a sequence as op_flops.h counts them, are
 * (9 + 16 + 4 + 9 + 1 + 9) / 2 = 24 per head, 2 products of 2 hd FLOPs each forward and 5 backward.
 */
export function stepFlops(): Record<'linear' | 'linear_backward' | 'attention' | 'attention_backward', number> {
  const H = cfg.hidden, qd = cfg.heads * cfg.headDim, kvd = cfg.kvHeads * cfg.headDim, I = cfg.intermediate;
  const N = cfg.layers * (H * qd + 2 * H * kvd + qd * H + 3 * H * I) + cfg.dense * H;
  const tokens = q.ids.length + p.ids.length, pairs = 24;
  return {
    linear: 2 * N * tokens,
    linear_backward: 4 * N * tokens,
    attention: 2 * 2 * cfg.headDim * cfg.heads * pairs,
    attention_backward: 5 * 2 * cfg.headDim * cfg.heads * pairs,
  };
}
