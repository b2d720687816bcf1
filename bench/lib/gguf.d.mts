// Types of gguf.mjs (plain JavaScript so that bench/*.mjs can load it too).

export const GGUF_MAGIC: 'GGUF';
export const GGUF_VERSION: 3;
export const GGUF_DEFAULT_ALIGNMENT: 32;
export const GGUF_TYPE: Readonly<{
  UINT8: 0; INT8: 1; UINT16: 2; INT16: 3; UINT32: 4; INT32: 5; FLOAT32: 6; BOOL: 7; STRING: 8; ARRAY: 9;
  UINT64: 10; INT64: 11; FLOAT64: 12;
}>;
export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | 'Q8_0';
export const GGML_TYPES: Readonly<Record<GgmlTypeName, { id: number; blockBytes: number; blockValues: number }>>;

export interface GgufMetadataEntry {
  key: string;
  type: number;
  value: unknown;
  /** The item type of an ARRAY value. */
  itemType?: number;
}
export interface GgufTensorSpec {
  name: string;
  /** Row-major, last dimension contiguous. */
  shape: number[];
  type: GgmlTypeName;
  /** Called once, while the tensor is written. */
  data: () => Float32Array;
}
export interface GgufLayout {
  dataOffset: number;
  tensors: { name: string; offset: number; byteLength: number }[];
  bytes: number;
}

export function tensorByteLength(typeName: GgmlTypeName, shape: number[]): number;
export function quantizeQ8_0(x: Float32Array): Uint8Array;
export function encodeTensor(typeName: GgmlTypeName, x: Float32Array): Uint8Array;
export function writeGguf(path: string, spec: { metadata: GgufMetadataEntry[]; tensors: GgufTensorSpec[]; alignment?: number }): GgufLayout;
