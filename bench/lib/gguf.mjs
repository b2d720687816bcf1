// A small GGUF writer, for the bench only (it hands our models to llama.cpp). Written from the GGUF
// format spec (version 3, little-endian):
//
//   header      magic "GGUF" (4 bytes), version u32 = 3, tensor_count u64, metadata_kv_count u64
//   metadata    per key: key (string), value type u32, value
//               string = u64 byte length + UTF-8 bytes (no terminator)
//               array  = item type u32 + u64 count + the items (arrays of strings: strings one after another)
//   tensor info per tensor: name (string), n_dims u32, dims u64[n_dims] (ne[0] first: the innermost,
//               contiguous dimension, so a row-major [rows, cols] matrix is written as [cols, rows]),
//               ggml type u32, offset u64 (from the start of the data section; a multiple of the alignment)
//   padding     zeros up to a multiple of general.alignment (default 32), then the data section
//   data        each tensor's bytes at its offset, zero padding between tensors
//
// Tensor encodings (ggml types): F32 (0), F16 (1), BF16 (30), and Q8_0 (8): blocks of 32 consecutive
// values of a row, each 34 bytes: the scale d as an IEEE half, then 32 int8 quants q with x ≈ d·q,
// d = max|x| / 127 (q = round(x / d), half away from zero), so the row length must be a multiple of 32.
// F16 and BF16 round to nearest even (the library's converters, dist/model/safetensors.js).
//
// The file is written to a temporary name beside the target and renamed into place when complete.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { f32ToBf16, f32ToF16, f32ToF16Bits } from '../../dist/model/safetensors.js';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types. */
export const GGUF_TYPE = Object.freeze({
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9,
  UINT64: 10, INT64: 11, FLOAT64: 12,
});

/** Tensor types this writer encodes: ggml type id, bytes per block, values per block. */
export const GGML_TYPES = Object.freeze({
  F32: { id: 0, blockBytes: 4, blockValues: 1 },
  F16: { id: 1, blockBytes: 2, blockValues: 1 },
  Q8_0: { id: 8, blockBytes: 34, blockValues: 32 },
  BF16: { id: 30, blockBytes: 2, blockValues: 1 },
});

const SCALAR_BYTES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function typeOf(name) {
  const t = GGML_TYPES[name];
  if (!t) throw new Error(`gguf: unknown tensor type ${name} (F32, F16, BF16 or Q8_0)`);
  return t;
}

/** Bytes of a tensor of shape [.., cols] (row-major, last dimension contiguous) in type `typeName`. */
export function tensorByteLength(typeName, shape) {
  const t = typeOf(typeName);
  const cols = shape[shape.length - 1];
  if (cols % t.blockValues !== 0) {
    throw new Error(`gguf: ${typeName} needs rows of a multiple of ${t.blockValues} values; this tensor's rows have ${cols}`);
  }
  const n = shape.reduce((a, b) => a * b, 1);
  return (n / t.blockValues) * t.blockBytes;
}

/** Q8_0 blocks of `x` (length a multiple of 32). */
export function quantizeQ8_0(x) {
  if (x.length % 32 !== 0) throw new Error(`gguf: Q8_0 needs a multiple of 32 values, got ${x.length}`);
  const out = new Uint8Array((x.length / 32) * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let i = b * 32; i < b * 32 + 32; i++) amax = Math.max(amax, Math.abs(x[i]));
    const d = amax / 127;
    const inv = d > 0 ? 1 / d : 0;
    view.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let i = 0; i < 32; i++) {
      const v = x[b * 32 + i] * inv;
      view.setInt8(b * 34 + 2 + i, Math.sign(v) * Math.floor(Math.abs(v) + 0.5));
    }
  }
  return out;
}

/** The bytes of float32 values `x` in type `typeName`. */
export function encodeTensor(typeName, x) {
  switch (typeName) {
    case 'F32':
      return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    case 'F16': {
      const h = f32ToF16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'BF16': {
      const h = f32ToBf16(x);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'Q8_0':
      return quantizeQ8_0(x);
    default:
      return typeOf(typeName); // throws for unknown names
  }
}

/** A growable little-endian byte buffer for the header part of the file. */
class ByteWriter {
  constructor() {
    this.buf = Buffer.alloc(1 << 16);
    this.n = 0;
  }
  reserve(k) {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }
  u8(v) { this.reserve(1); this.buf.writeUInt8(v, this.n); this.n += 1; }
  i8(v) { this.reserve(1); this.buf.writeInt8(v, this.n); this.n += 1; }
  u16(v) { this.reserve(2); this.buf.writeUInt16LE(v, this.n); this.n += 2; }
  i16(v) { this.reserve(2); this.buf.writeInt16LE(v, this.n); this.n += 2; }
  u32(v) { this.reserve(4); this.buf.writeUInt32LE(v, this.n); this.n += 4; }
  i32(v) { this.reserve(4); this.buf.writeInt32LE(v, this.n); this.n += 4; }
  f32(v) { this.reserve(4); this.buf.writeFloatLE(v, this.n); this.n += 4; }
  f64(v) { this.reserve(8); this.buf.writeDoubleLE(v, this.n); this.n += 8; }
  u64(v) {
    // two u32 halves (counts and offsets here are below 2^53)
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new Error(`gguf: ${v} is not a u64 this writer can store`);
    this.u32(v % 2 ** 32);
    this.u32(Math.floor(v / 2 ** 32));
  }
  i64(v) { this.reserve(8); this.buf.writeBigInt64LE(BigInt(v), this.n); this.n += 8; }
  str(s) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.reserve(b.length);
    b.copy(this.buf, this.n);
    this.n += b.length;
  }
  scalar(type, v, key) {
    switch (type) {
      case GGUF_TYPE.UINT8: return this.u8(v);
      case GGUF_TYPE.INT8: return this.i8(v);
      case GGUF_TYPE.UINT16: return this.u16(v);
      case GGUF_TYPE.INT16: return this.i16(v);
      case GGUF_TYPE.UINT32: return this.u32(v);
      case GGUF_TYPE.INT32: return this.i32(v);
      case GGUF_TYPE.FLOAT32: return this.f32(v);
      case GGUF_TYPE.BOOL: return this.u8(v ? 1 : 0);
      case GGUF_TYPE.STRING: return this.str(String(v));
      case GGUF_TYPE.UINT64: return this.u64(v);
      case GGUF_TYPE.INT64: return this.i64(v);
      case GGUF_TYPE.FLOAT64: return this.f64(v);
      default: throw new Error(`gguf: metadata ${key}: unknown value type ${type}`);
    }
  }
  pad(alignment) {
    const k = (alignment - (this.n % alignment)) % alignment;
    this.reserve(k);
    this.buf.fill(0, this.n, this.n + k);
    this.n += k;
  }
  bytes() {
    return this.buf.subarray(0, this.n);
  }
}

/**
 * Writes a GGUF file.
 * @param {string} path
 * @param {{
 *   metadata: Array<{ key: string, type: number, value: unknown, itemType?: number }>,
 *   tensors: Array<{ name: string, shape: number[], type: 'F32'|'F16'|'BF16'|'Q8_0', data: () => Float32Array }>,
 *   alignment?: number,
 * }} spec  tensor shapes are row-major (last dimension contiguous); `data` is called once per tensor,
 *   in order, while its bytes are written, so a large model need not be in memory at once. A
 *   general.alignment entry in `metadata` sets the alignment (else `alignment`, else 32).
 * @returns {{ dataOffset: number, tensors: Array<{ name: string, offset: number, byteLength: number }>, bytes: number }}
 */
export function writeGguf(path, spec) {
  const alignKv = spec.metadata.find((m) => m.key === 'general.alignment');
  const alignment = alignKv ? Number(alignKv.value) : (spec.alignment ?? GGUF_DEFAULT_ALIGNMENT);
  if (!(Number.isInteger(alignment) && alignment > 0 && alignment % 8 === 0)) {
    throw new Error(`gguf: the alignment must be a positive multiple of 8, got ${alignment}`);
  }
  const seen = new Set();
  for (const m of spec.metadata) {
    if (seen.has(m.key)) throw new Error(`gguf: metadata key ${m.key} given twice`);
    seen.add(m.key);
  }
  const h = new ByteWriter();
  h.buf.write(GGUF_MAGIC, 0, 'latin1');
  h.n = 4;
  h.u32(GGUF_VERSION);
  h.u64(spec.tensors.length);
  h.u64(spec.metadata.length);
  for (const m of spec.metadata) {
    h.str(m.key);
    h.u32(m.type);
    if (m.type === GGUF_TYPE.ARRAY) {
      if (m.itemType === undefined || m.itemType === GGUF_TYPE.ARRAY) throw new Error(`gguf: metadata ${m.key}: an array needs a scalar itemType`);
      h.u32(m.itemType);
      h.u64(m.value.length);
      for (const v of m.value) h.scalar(m.itemType, v, m.key);
    } else h.scalar(m.type, m.value, m.key);
  }
  const layout = [];
  let offset = 0;
  for (const t of spec.tensors) {
    const byteLength = tensorByteLength(t.type, t.shape);
    h.str(t.name);
    h.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) h.u64(t.shape[d]);
    h.u32(typeOf(t.type).id);
    h.u64(offset);
    layout.push({ name: t.name, offset, byteLength });
    offset += byteLength;
    offset += (alignment - (offset % alignment)) % alignment;
  }
  h.pad(alignment);
  const dataOffset = h.n;

  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, h.bytes());
    let pos = dataOffset;
    const zeros = Buffer.alloc(alignment);
    spec.tensors.forEach((t, i) => {
      const data = t.data();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== n) throw new Error(`gguf: tensor ${t.name} has ${data.length} values, its shape [${t.shape.join(', ')}] needs ${n}`);
      const bytes = encodeTensor(t.type, data);
      if (pos !== dataOffset + layout[i].offset) throw new Error(`gguf: internal layout error at tensor ${t.name}`);
      writeSync(fd, bytes);
      pos += bytes.length;
      const pad = (alignment - ((pos - dataOffset) % alignment)) % alignment;
      if (pad > 0 && i < spec.tensors.length - 1) {
        writeSync(fd, zeros, 0, pad);
        pos += pad;
      }
    });
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
    return { dataOffset, tensors: layout, bytes: pos };
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(tmp, { force: true });
    throw err;
  }
}
