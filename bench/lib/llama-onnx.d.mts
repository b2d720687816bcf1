// Types of llama-onnx.mjs (plain JavaScript so that bench/*.mjs can load it too).
import type { OnnxGraph } from './onnx.mjs';
import type { LlamaShape } from './llama-gguf.mjs';

export type OnnxFormat = 'FP32' | 'INT8' | 'INT8B32';
export const ONNX_FORMATS: OnnxFormat[];

export function transpose(w: Float32Array, rows: number, cols: number): Float32Array;
export function quantizeColumns(w: Float32Array, N: number, K: number): { q: Int8Array; scale: Float32Array };
export function quantizeBlocks(w: Float32Array, N: number, K: number): { codes: Uint8Array; scale: Float32Array };
export function llamaOnnxGraph(c: LlamaShape & { dense: number }, format: OnnxFormat, tensor: (name: string) => Float32Array): OnnxGraph;
