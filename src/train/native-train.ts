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

export interface StepOutcome {
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The norm or the pending loss was not finite: no update was made (the gradients are zeroed). */
  skipped: boolean;
  /** The pending loss: sum of the trainLossChunks losses since the last trainTakeLoss. */
  loss: number;
}

export interface TrainNatives {
  trainInit(model: NativeModel): void;
  /** The chunk's embeddings stay on the backend for trainLossChunks; returned unless download is false. */
  trainForward(model: NativeModel, chunk: number, ids: Int32Array, cuSeqlens: Int32Array, keep: boolean): Promise<Float32Array>;
  trainForward(model: NativeModel, chunk: number, ids: Int32Array, cuSeqlens: Int32Array, keep: boolean, download: false): Promise<undefined>;
  /** Without dEmb: the chunk's slice of the gradients trainLossChunks left on the backend. */
  trainBackward(model: NativeModel, chunk: number, ids: Int32Array, cuSeqlens: Int32Array, dEmb?: Float32Array): Promise<void>;
  trainLoss(model: NativeModel, q: Float32Array, p: Float32Array, B: number, G: number, temperature: number, inBatch: boolean): LossResult;
  /**
   * InfoNCE over the kept embeddings of the chunks, whose rows end to end are the B queries, then the
   * B*G passages; the loss joins the pending loss and d loss / d embeddings × gradScale stay on the
   * backend. Nothing is read back.
   */
  trainLossChunks(model: NativeModel, chunks: Int32Array, B: number, G: number, temperature: number, inBatch: boolean, gradScale: number): void;
  /** Reads back and clears the pending loss. */
  trainTakeLoss(model: NativeModel): number;
  trainStep(model: NativeModel, hyper: OptimizerHyper): Promise<StepOutcome>;
  trainGetBuffer(model: NativeModel, which: TrainBufferName): Float32Array;
  trainSetBuffer(model: NativeModel, which: TrainBufferName, data: Float32Array): void;
  trainRelease(model: NativeModel): void;
}

export function trainNatives(): TrainNatives {
  return nativeAddon<TrainNatives>();
}
