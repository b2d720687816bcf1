// Types of llama-gguf.mjs (plain JavaScript so that bench/*.mjs can load it too).
import type { GgmlTypeName, GgufMetadataEntry, GgufTensorSpec } from './gguf.mjs';

/** The model shape, as bench/precision.mjs and the addon's NativeModel name it. */
export interface LlamaShape {
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsEps?: number;
  ropeTheta?: number;
  maxPositions?: number;
}

export function permuteRotaryRows(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array;
export function llamaTensors(c: LlamaShape, type: GgmlTypeName, tensor: (name: string) => Float32Array): GgufTensorSpec[];
export function llamaTokenizerMetadata(tokenizerJson: unknown, tokenizerConfig?: Record<string, unknown>): GgufMetadataEntry[];
export function llamaMetadata(c: LlamaShape, type: GgmlTypeName, tokenizerMetadata: GgufMetadataEntry[], name?: string): GgufMetadataEntry[];
export function projectPooled(pooled: ArrayLike<number>, denseWeight: Float32Array, denseBias: Float32Array): Float32Array;
