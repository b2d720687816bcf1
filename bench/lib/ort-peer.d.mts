// Types of ort-peer.mjs (plain JavaScript so that bench/*.mjs can load it too).
import type * as Ort from 'onnxruntime-node';

export function loadOrt(): Promise<{ ort: typeof Ort; version: string } | { skip: string }>;
export interface OrtEmbedder {
  embed(seqs: ArrayLike<number>[]): Promise<Float32Array>;
  dispose(): Promise<void>;
}
/** Whether ONNX Runtime's u8 x s8 int8 kernels saturate on this CPU (x86 without VNNI): its sessions then run u8 x u8. */
export function ortU8S8Saturates(): boolean;
export function openOrtEmbedder(ort: typeof Ort, modelPath: string, options: { threads: number; dim: number }): Promise<OrtEmbedder>;
export function paddedBatches<T extends ArrayLike<number>>(seqs: T[], limits: { texts: number; tokens: number; padding: number }): T[][];
