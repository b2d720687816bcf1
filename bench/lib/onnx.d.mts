// Types of onnx.mjs (plain JavaScript so that bench/*.mjs can load it too).

export const ONNX_TYPE: Readonly<{ FLOAT: 1; UINT8: 2; INT8: 3; INT32: 6; INT64: 7; BOOL: 9 }>;
export const ONNX_DATA_ALIGNMENT: 4096;

export type OnnxTypedArray = Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;
export type OnnxDim = number | string;
export type OnnxAttribute =
  | { f: number }
  | { i: number }
  | { s: string }
  | { floats: number[] }
  | { ints: number[] }
  | { t: { name: string; type: number; dims: number[]; raw: Uint8Array } };

export class OnnxGraph {
  input(name: string, type: number, dims: OnnxDim[]): string;
  output(name: string, type: number, dims: OnnxDim[]): string;
  opset(domain: string, version: number): void;
  constant(name: string, type: number, dims: number[], data: OnnxTypedArray): string;
  weight(name: string, type: number, dims: number[], produce: () => OnnxTypedArray): string;
  op(opType: string, inputs: string[], attrs?: Record<string, OnnxAttribute>, options?: { domain?: string; outputs?: number | string[] }): string;
  write(file: string, options?: { producer?: string; irVersion?: number }): { modelBytes: number; dataBytes: number };
}
