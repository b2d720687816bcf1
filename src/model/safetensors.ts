// safetensors files: validated header reading (the header only, never the data) and an atomic writer.
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets}},
// then the data section; data_offsets are relative to the data section's start.
import { checkPathArg } from '../util/options.js';
import { danglingLink } from '../util/fs-error.js';
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { endianness } from 'node:os';
import { writeFileAtomic } from '../util/atomic.js';
import { openRegularFile, readRegularFileText } from '../util/regular-file.js';
import { parseJson } from '../util/json.js';
import { describeValue } from '../util/describe.js';
import { counted } from '../util/plural.js';
/** The dtypes the model loads (the native reader and readTensorF32 convert these to float32). */
export type DType = 'F32' | 'F16' | 'BF16';

/**
 * Every dtype the safetensors format defines: a header may hold any of them, e.g. a float64 lm_head or an
 * int64 buffer that the model never loads. Only the DType ones can be loaded (see loadableDType).
 */
export type StoredDType =
  | DType
  | 'BOOL'
  | 'F4'
  | 'F6_E2M3'
  | 'F6_E3M2'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'F8_E8M0'
  | 'F8_E4M3FNUZ'
  | 'F8_E5M2FNUZ'
  | 'I16'
  | 'U16'
  | 'I32'
  | 'U32'
  | 'C64'
  | 'F64'
  | 'I64'
  | 'U64';

/**
 * Bits per element of every safetensors dtype, as the reference implementation defines them
 * (huggingface/safetensors, safetensors/src/tensor.rs, `Dtype::bitsize`). F4 and F6_* are sub-byte: a
 * tensor of them must hold a whole number of bytes (its `MisalignedSlice` rule).
 */
export const DTYPE_BITS: Readonly<Record<StoredDType, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8,
  F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

/** Bytes per element (DTYPE_BITS / 8: a fraction for the sub-byte F4 and F6_* dtypes). */
export const DTYPE_BYTES: Readonly<Record<StoredDType, number>> = Object.fromEntries(
  Object.entries(DTYPE_BITS).map(([d, bits]) => [d, bits / 8]),
) as Record<StoredDType, number>;

const LOADABLE: readonly DType[] = ['F32', 'F16', 'BF16'];

function isStoredDType(d: string): d is StoredDType {
  return Object.hasOwn(DTYPE_BITS, d);
}

export function isLoadableDType(d: StoredDType): d is DType {
  return (LOADABLE as readonly string[]).includes(d);
}

/** The tensor's dtype when the model can load it; otherwise fails naming the file and tensor. */
export function loadableDType(entry: Pick<TensorEntry, 'file' | 'name' | 'dtype'>): DType {
  if (isLoadableDType(entry.dtype)) return entry.dtype;
  throw new Error(`${entry.file}: tensor "${entry.name}": unsupported dtype ${entry.dtype} (supported: ${LOADABLE.join(', ')})`);
}

/** Headers beyond this are refused: real ones are a few hundred KB. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorEntry {
  name: string;
  /** Absolute path of the file holding the tensor. */
  file: string;
  /** Any safetensors dtype: check loadableDType(entry) before loading the data. */
  dtype: StoredDType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Absolute offset of the data section (8 + header length). */
  dataOffset: number;
  /** In header order. */
  tensors: TensorEntry[];
  byName: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Reads exactly `length` bytes at `position` of `fd`, into `into` when given (a view of it is returned),
 * or fails naming the file.
 */
function readExactly(fd: number, length: number, position: number, file: string, into?: Uint8Array): Buffer {
  const buf = into ?? Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new Error(`${file}: unexpected end of file`);
    done += n;
  }
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function parseEntry(file: string, name: string, value: unknown, dataOffset: number, dataSize: number): TensorEntry {
  const where = `${file}: tensor "${name}"`;
  if (!isRecord(value)) throw new Error(`${where}: entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw new Error(`${where}: dtype must be a string`);
  if (!isStoredDType(dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw new Error(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    throw new Error(`${where}: data_offsets must be two non-negative integers, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new Error(`${where}: data_offsets [${begin}, ${end}] has begin > end`);
  if (end > dataSize) {
    throw new Error(`${where}: data_offsets end ${end} is past the data section (${dataSize} bytes; file truncated?)`);
  }
  const dims = shape as number[];
  const elements = elementCount(dims);
  if (elements === null) throw new Error(`${where}: ${dtype} shape [${dims.join(', ')}]: its element count overflows (past 2^53 - 1)`);
  const bits = elements * DTYPE_BITS[dtype];
  if (Number.isSafeInteger(bits) && bits % 8 !== 0) {
    throw new Error(`${where}: ${dtype} shape [${dims.join(', ')}] is ${bits} bits, not a whole number of bytes`);
  }
  const expected = bits / 8;
  if (!Number.isSafeInteger(bits) || expected !== end - begin) {
    throw new Error(`${where}: ${dtype} shape [${dims.join(', ')}] needs ${expected} bytes but data_offsets span ${end - begin}`);
  }
  return { name, file, dtype, shape: [...dims], offset: dataOffset + begin, byteLength: end - begin };
}

/** Reads and validates a safetensors header without reading the data. Entries carry absolute offsets. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  checkPathArg('readSafetensorsHeader', 'path', path, 'file');
  const file = resolve(path);
  let fd: number;
  try {
    fd = openRegularFile(file);
  } catch (err) {
    // a link whose blob is gone (an HF cache cleaned by hand) said as such, as for config.json
    const link = danglingLink(file);
    if (link !== null) throw new Error(`${file}: it is a link to ${link}, which does not exist`);
    throw new Error(`${file}: cannot open safetensors file (${(err as Error).message})`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) throw new Error(`${file}: ${fileSize} bytes is too short for a safetensors file (needs an 8-byte header length)`);
    const n = readExactly(fd, 8, 0, file).readBigUInt64LE(0);
    if (n > BigInt(fileSize - 8)) throw new Error(`${file}: header length ${n} is past the end of the file (${fileSize} bytes)`);
    if (n > BigInt(MAX_HEADER_BYTES)) throw new Error(`${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const headerLength = Number(n);
    const bytes = readExactly(fd, headerLength, 8, file);

    let json: unknown;
    try {
      json = parseJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (err) {
      throw new Error(`${file}: header is not valid UTF-8 JSON (${(err as Error).message})`);
    }
    if (!isRecord(json)) throw new Error(`${file}: header must be a JSON object`);

    const dataOffset = 8 + headerLength;
    const dataSize = fileSize - dataOffset;
    const metadata: Record<string, string> = {};
    const tensors: TensorEntry[] = [];
    for (const [name, value] of Object.entries(json)) {
      if (name === '__metadata__') {
        if (value === null) continue; // none, as the Python safetensors library reads it
        if (!isRecord(value)) throw new Error(`${file}: __metadata__ must be an object of strings`);
        for (const [k, v] of Object.entries(value)) {
          if (typeof v !== 'string') throw new Error(`${file}: __metadata__ value for "${k}" must be a string`);
          metadata[k] = v;
        }
        continue;
      }
      tensors.push(parseEntry(file, name, value, dataOffset, dataSize));
    }

    // The tensors fill the data section end to end, as the reference implementation requires
    // (Metadata::validate, and read_metadata's MetadataIncompleteBuffer): sorted by (begin, end), each
    // starts where the one before ends, the first at 0, and the last ends at the end of the file.
    const sorted = [...tensors].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
    let end = 0;
    for (const [i, cur] of sorted.entries()) {
      const begin = cur.offset - dataOffset;
      if (begin < end) throw new Error(`${file}: tensor "${cur.name}" overlaps tensor "${sorted[i - 1]!.name}"`);
      if (begin > end) {
        const before = i === 0 ? 'the data section starts' : `tensor "${sorted[i - 1]!.name}" ends`;
        throw new Error(`${file}: tensor "${cur.name}" begins at byte ${begin} of the data section, where ${before} at ${end}: the tensors must fill it without gaps`);
      }
      end = begin + cur.byteLength;
    }
    if (end !== dataSize) {
      throw new Error(`${file}: ${counted(dataSize - end, 'byte')} after the tensors' data (the data section is ${counted(dataSize, 'byte')}; the tensors end at ${end})`);
    }
    return { file, fileSize, dataOffset, tensors, byName: new Map(tensors.map((t) => [t.name, t])), metadata };
  } finally {
    closeSync(fd);
  }
}

export interface SafetensorsIndex {
  indexFile: string;
  /** Absolute shard paths, in first-seen order. */
  files: string[];
  /** Each weight_map tensor, from its shard's header. */
  tensors: Map<string, TensorEntry>;
  /**
   * Tensors of the shards that weight_map does not list: a loader of every shard's tensors (transformers)
   * takes them too, so the caller checks them as it checks the listed ones.
   */
  unlisted: TensorEntry[];
  metadata: Record<string, unknown>;
}

/**
 * Reads a sharded checkpoint's index (`model.safetensors.index.json`): every shard must lie inside the
 * index's folder and exist, each tensor must be in the shard its weight_map names, and no shard may hold
 * a tensor the map names in another (which of the two a loader takes is not defined: transformers loads
 * every shard, the later one winning, where the map chose the other).
 */
export function readSafetensorsIndex(indexPath: string): SafetensorsIndex {
  const indexFile = resolve(indexPath);
  const folder = dirname(indexFile);
  let json: unknown;
  try {
    json = parseJson(readRegularFileText(indexFile));
  } catch (err) {
    throw new Error(`${indexFile}: cannot read index (${(err as Error).message})`);
  }
  if (!isRecord(json) || !isRecord(json['weight_map'])) throw new Error(`${indexFile}: expected an object with a "weight_map" object`);
  const metadata = isRecord(json['metadata']) ? json['metadata'] : {};

  const headers = new Map<string, SafetensorsHeader>();
  const shardFor = (tensor: string, shard: string): SafetensorsHeader => {
    const known = headers.get(shard);
    if (known) return known;
    const where = `${indexFile}: tensor "${tensor}"`;
    const abs = resolve(folder, shard);
    const rel = relative(folder, abs);
    if (isAbsolute(shard) || rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      throw new Error(`${where}: shard "${shard}" is outside the model folder`);
    }
    // the name must stay in the folder; a link there may point anywhere: the Hugging Face cache's
    // snapshots are links into its blobs/ folder, and the folder's owner made them
    let real: string;
    try {
      real = realpathSync(abs);
    } catch {
      throw new Error(`${where}: shard file "${shard}" does not exist`);
    }
    if (!statSync(real).isFile()) throw new Error(`${where}: shard "${shard}" is not a file`);
    const header = readSafetensorsHeader(abs);
    headers.set(shard, header);
    return header;
  };

  const tensors = new Map<string, TensorEntry>();
  for (const [name, shard] of Object.entries(json['weight_map'])) {
    if (typeof shard !== 'string' || shard === '') throw new Error(`${indexFile}: tensor "${name}": shard must be a file name`);
    const entry = shardFor(name, shard).byName.get(name);
    if (!entry) throw new Error(`${indexFile}: tensor "${name}" is not in its shard "${shard}"`);
    tensors.set(name, entry);
  }
  const weightMap = json['weight_map'];
  const unlisted: TensorEntry[] = [];
  for (const [shard, header] of headers) {
    for (const [name, entry] of header.byName) {
      const mapped = weightMap[name];
      if (mapped === shard) continue;
      if (typeof mapped === 'string') {
        throw new Error(`${header.file}: tensor "${name}" is here too, but ${indexFile} names shard "${mapped}" for it: which copy is the model's is not defined; remove one`);
      }
      unlisted.push(entry);
    }
  }
  return { indexFile, files: [...headers.values()].map((h) => h.file), tensors, unlisted, metadata };
}

export interface TensorToWrite {
  name: string;
  dtype: DType;
  shape: number[];
  /** Float32Array values (converted for F16/BF16), or Uint16Array raw half bits for F16/BF16. */
  data: Float32Array | Uint16Array;
}

/**
 * The product of `dims`, or null when a running product passes 2^53 - 1. The running product, as the
 * reference's checked_mul: [2^40, 2^40, 0] is refused, not taken as 0 elements for its last 0.
 */
function elementCount(dims: readonly number[]): number | null {
  let elements = 1;
  for (const d of dims) {
    elements *= d;
    if (!Number.isSafeInteger(elements)) return null;
  }
  return elements;
}

function tensorBytes(t: TensorToWrite, where: string): Uint8Array {
  if (!Array.isArray(t.shape)) throw new TypeError(`${where}: shape must be an array of dimensions, got ${describeValue(t.shape)}`);
  if (!(t.data instanceof Float32Array || t.data instanceof Uint16Array))
    throw new TypeError(`${where}: data must be a Float32Array or a Uint16Array of half bits, got ${describeValue(t.data)}`);
  if (t.shape.some((d) => !isNonNegativeInt(d))) throw new Error(`${where}: shape must be non-negative integers, got [${t.shape.join(', ')}]`);
  const elements = elementCount(t.shape as number[]);
  if (elements === null) throw new Error(`${where}: shape [${t.shape.join(', ')}]: its element count overflows (past 2^53 - 1), which no reader takes`);
  if (t.data.length !== elements) throw new Error(`${where}: shape [${t.shape.join(', ')}] needs ${elements} values, got ${t.data.length}`);
  let arr: Float32Array | Uint16Array;
  if (t.dtype === 'F32') {
    if (!(t.data instanceof Float32Array)) throw new Error(`${where}: F32 data must be a Float32Array`);
    arr = t.data;
  } else if (t.dtype === 'F16' || t.dtype === 'BF16') {
    arr = t.data instanceof Float32Array ? (t.dtype === 'F16' ? f32ToF16(t.data) : f32ToBf16(t.data)) : t.data;
  } else {
    throw new Error(`${where}: unsupported dtype ${String(t.dtype)}`);
  }
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/**
 * Writes a safetensors file atomically (util/atomic.ts: a temp file beside it, fsync, rename; a link
 * stays a link). A failed write leaves any existing file untouched. Tensors are stored in the order given.
 */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  checkPathArg('writeSafetensors', 'path', path, 'file');
  if (!Array.isArray(tensors)) throw new TypeError(`writeSafetensors: tensors must be an array of {name, dtype, shape, data}, got ${describeValue(tensors)}`);
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
      throw new TypeError(`writeSafetensors: metadata must be an object of strings (the format's __metadata__), got ${describeValue(metadata)}`);
    const bad = Object.entries(metadata).find(([, v]) => typeof v !== 'string');
    if (bad) throw new TypeError(`writeSafetensors: metadata.${bad[0]} must be a string (__metadata__ holds strings only), got ${describeValue(bad[1])}`);
  }
  const file = resolve(path);
  if (endianness() !== 'LE') throw new Error('writeSafetensors: big-endian hosts are not supported');
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  const payloads: Uint8Array[] = [];
  let offset = 0;
  for (const [i, t] of tensors.entries()) {
    if (typeof t !== 'object' || t === null || typeof t.name !== 'string')
      throw new TypeError(`writeSafetensors: tensors[${i}] must be a {name, dtype, shape, data} object, got ${describeValue(t)}`);
    const where = `${file}: tensor "${t.name}"`;
    if (t.name === '' || t.name === '__metadata__') throw new Error(`${where}: invalid tensor name`);
    if (t.name in header) throw new Error(`${where}: duplicate tensor name`);
    const bytes = tensorBytes(t, where);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    payloads.push(bytes);
    offset += bytes.byteLength;
  }
  // Pad the JSON with spaces so the data section starts 8-byte aligned.
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded > json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(json.length));

  writeFileAtomic(path, [lengthBytes, json, ...payloads]);
}

// ---- float32 <-> half conversions (round to nearest, ties to even; NaN stays NaN) ----

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function bitsOf(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0];
}

function fromBits(bits: number): number {
  u32Scratch[0] = bits;
  return f32Scratch[0];
}

/** bfloat16 bits of one float32 value. */
export function f32ToBf16Bits(x: number): number {
  const b = bitsOf(x);
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff; // NaN: keep it quiet
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even.
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits of one float32 value. */
export function f32ToF16Bits(x: number): number {
  const b = bitsOf(x);
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // half's biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow: infinity
  if (e <= 0) {
    // half subnormal (or zero): shift the full 24-bit significand down to units of 2^-24
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const kept = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (kept + (rest > half || (rest === half && (kept & 1) !== 0) ? 1 : 0));
  }
  const h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // a carry out of the mantissa correctly bumps the exponent (up to infinity)
  return sign | (h + (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0) ? 1 : 0));
}

export function bf16BitsToF32(h: number): number {
  return fromBits((h & 0xffff) << 16);
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function f32ToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]);
  return out;
}

export function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = bf16BitsToF32(src[i]);
  return out;
}

export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(src[i]);
  return out;
}

/**
 * Reads one tensor's values as float32 (checks, tests and the AdamW moments of a checkpoint; model
 * weights are read by the native side). F32 data is read straight into the result (little-endian host).
 */
export function readTensorF32(entry: TensorEntry): Float32Array {
  const dtype = loadableDType(entry);
  const n = entry.byteLength / DTYPE_BYTES[dtype];
  const fd = openSync(entry.file, 'r');
  try {
    if (dtype === 'F32') {
      const out = new Float32Array(n);
      readExactly(fd, entry.byteLength, entry.offset, entry.file, new Uint8Array(out.buffer));
      return out;
    }
    const bytes = readExactly(fd, entry.byteLength, entry.offset, entry.file);
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = bytes.readUInt16LE(i * 2);
    return dtype === 'F16' ? f16ToF32(bits) : bf16ToF32(bits);
  } finally {
    closeSync(fd);
  }
}
