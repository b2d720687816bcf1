// The typed face of the native training calls (native/addon/train_binding.cpp).
import { nativeAddon } from '../native.js';
import type { NativeModel } from '../model/embedding-model.js';

export type TrainBufferName = 'grads' | 'm' | 'v';

export interface OptimizerHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global-norm clipping threshold; 0 disables. */
  maxGradNorm: number;
  /** 1-based AdamW step (bias correction). */
  step: number;
}

export interface LossResult {
  loss: number;
  /** d loss / d query embeddings [B*P]. */
  dq: Float32Array;
  /** d loss / d passage embeddings [B*G*P]. */
  dp: Float32Array;
  /** q·pᵀ/τ [B, B*G] (−inf outside the scored set). */
  scores: Float32Array;
}

export interface TrainNatives {
  trainInit(model: NativeModel): void;
  trainForward(model: NativeModel, chunk: number, ids: Int32Array, cuSeqlens: Int32Array, keep: boolean): Promise<Float32Array>;
  trainBackward(model: NativeModel, chunk: number, ids: Int32Array, cuSeqlens: Int32Array, dEmb: Float32Array): Promise<void>;
  trainLoss(model: NativeModel, q: Float32Array, p: Float32Array, B: number, G: number, temperature: number, inBatch: boolean): LossResult;
  trainStep(model: NativeModel, hyper: OptimizerHyper): Promise<{ gradNorm: number; skipped: boolean }>;
  trainGetBuffer(model: NativeModel, which: TrainBufferName): Float32Array;
  trainSetBuffer(model: NativeModel, which: TrainBufferName, data: Float32Array): void;
  trainRelease(model: NativeModel): void;
}

export function trainNatives(): TrainNatives {
  return nativeAddon<TrainNatives>();
}
