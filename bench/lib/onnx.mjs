// A writer of ONNX model files (ModelProto, protobuf wire format), for the ONNX Runtime peer of
// bench/precision.mjs: only what a feed-forward graph needs (nodes with attributes, initializers,
// typed inputs and outputs). Field numbers are those of onnx/onnx.proto; the wire format is
// protobuf's (varints, length-delimited fields, 32-bit little-endian floats).
//
// Large initializers go to an external data file beside the model (TensorProto.data_location =
// EXTERNAL with "location", "offset", "length"), each at a 4096-byte offset as onnx.proto advises, so
// that the model file stays small and a 2 GB model does not hit protobuf's 2 GiB message limit. Both
// files are written to temporary names and renamed into place when complete.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename } from 'node:path';

/** TensorProto.DataType values. */
export const ONNX_TYPE = Object.freeze({ FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9 });
const TYPE_BYTES = { 1: 4, 2: 1, 3: 1, 6: 4, 7: 8, 9: 1 };
/** AttributeProto.AttributeType values. */
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 };
/** External data offsets are multiples of this (onnx.proto: page size, for mmap). */
export const ONNX_DATA_ALIGNMENT = 4096;

const utf8 = new TextEncoder();

/** One protobuf message being encoded: fields appended in order, encode() joins them. */
class Message {
  parts = [];

  varint(v) {
    let x = BigInt.asUintN(64, BigInt(v)); // int64 fields: negatives as ten-byte two's complement
    const out = [];
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x !== 0n) b |= 0x80;
      out.push(b);
    } while (x !== 0n);
    this.parts.push(Uint8Array.from(out));
    return this;
  }
  key(field, wire) {
    return this.varint((field << 3) | wire);
  }
  int(field, v) {
    return this.key(field, 0).varint(v);
  }
  bytes(field, data) {
    this.key(field, 2).varint(data.length);
    this.parts.push(data);
    return this;
  }
  string(field, s) {
    return this.bytes(field, utf8.encode(s));
  }
  message(field, m) {
    return this.bytes(field, m.encode());
  }
  float(field, f) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, f, true);
    this.key(field, 5);
    this.parts.push(b);
    return this;
  }
  packedInts(field, xs) {
    const m = new Message();
    for (const x of xs) m.varint(x);
    return this.bytes(field, m.encode());
  }
  packedFloats(field, xs) {
    const b = new Uint8Array(4 * xs.length);
    const dv = new DataView(b.buffer);
    xs.forEach((x, i) => dv.setFloat32(4 * i, x, true));
    return this.bytes(field, b);
  }
  encode() {
    const n = this.parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) (out.set(p, o), (o += p.length));
    return out;
  }
}

/** A ValueInfoProto of a tensor: dims are numbers (fixed) or strings (symbolic). */
function valueInfo({ name, type, dims }) {
  const shape = new Message();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Message().int(1, d) : new Message().string(2, d));
  const tensorType = new Message().int(1, type).message(2, shape);
  return new Message().string(1, name).message(2, new Message().message(1, tensorType));
}

/** A TensorProto: raw bytes inside, or a range of the external data file. */
function tensorProto({ name, type, dims, raw, external }) {
  const m = new Message().packedInts(1, dims).int(2, type).string(8, name);
  if (external) {
    const entry = (k, v) => new Message().string(1, k).string(2, v);
    m.message(13, entry('location', external.location));
    m.message(13, entry('offset', String(external.offset)));
    m.message(13, entry('length', String(external.length)));
    m.int(14, 1); // EXTERNAL
  } else m.bytes(9, raw);
  return m;
}

/** An AttributeProto from a value given as { f }, { i }, { s }, { floats }, { ints } or { t }. */
function attribute(name, v) {
  const m = new Message().string(1, name);
  if ('f' in v) return m.int(20, ATTR.FLOAT).float(2, v.f);
  if ('i' in v) return m.int(20, ATTR.INT).int(3, v.i);
  if ('s' in v) return m.int(20, ATTR.STRING).string(4, v.s);
  if ('floats' in v) return m.int(20, ATTR.FLOATS).packedFloats(7, v.floats);
  if ('ints' in v) return m.int(20, ATTR.INTS).packedInts(8, v.ints);
  if ('t' in v) return m.int(20, ATTR.TENSOR).message(5, tensorProto(v.t));
  throw new Error(`onnx: attribute ${name} has no value of a known kind`);
}

const bytesOf = (type, data) => {
  if (data instanceof Uint8Array) return data;
  const b = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (TYPE_BYTES[type] * (data.length ?? 0) !== b.length) throw new Error('onnx: tensor data does not match its type');
  return b;
};

/**
 * A graph under construction. op() appends a node and returns its output's name (named when given,
 * else generated); constant() adds a small initializer held in the model file;
 * weight() one whose bytes go to the external data file, produced only when write() reaches it.
 */
export class OnnxGraph {
  nodes = [];
  inits = [];
  inputs = [];
  outputs = [];
  next = 0;
  opsets = new Map([['', 17]]);

  /** Declares a graph input (dims: numbers or symbolic names). */
  input(name, type, dims) {
    this.inputs.push({ name, type, dims });
    return name;
  }
  /** Declares a graph output. */
  output(name, type, dims) {
    this.outputs.push({ name, type, dims });
    return name;
  }
  /** Uses an operator set besides the default domain's (e.g. 'com.microsoft', 1). */
  opset(domain, version) {
    this.opsets.set(domain, version);
  }
  /**
   * A small initializer stored in the model file. `data`: a typed array of the type's elements. A
   * name given again is the same constant (its first data).
   */
  constant(name, type, dims, data) {
    if (this.inits.some((t) => t.name === name)) return name;
    this.inits.push({ name, type, dims, raw: bytesOf(type, data) });
    return name;
  }
  /** A large initializer in the external data file: `produce()` returns its elements when written. */
  weight(name, type, dims, produce) {
    this.inits.push({ name, type, dims, produce });
    return name;
  }
  /** Appends a node; returns the name of its first output (`outputs`: a count or names). */
  op(opType, inputs, attrs = {}, { domain = '', outputs = 1 } = {}) {
    const id = this.next++;
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, (_, i) => `${opType}_${id}${i ? `_${i}` : ''}`) : outputs;
    this.nodes.push({ opType, inputs, outputs: outs, attrs, domain, name: `${opType}_${id}` });
    return outs[0];
  }

  /**
   * Writes `file` (the model) and `file`.data (the external initializers), each through a temporary
   * name. Returns { modelBytes, dataBytes }.
   */
  write(file, { producer = 'llama2-embedding bench', irVersion = 8 } = {}) {
    const dataFile = `${file}.data`;
    const location = basename(dataFile);
    const tmpData = `${dataFile}.tmp-${process.pid}`;
    const tmpModel = `${file}.tmp-${process.pid}`;
    let offset = 0;
    try {
      const placed = [];
      const fd = openSync(tmpData, 'w');
      try {
        for (const t of this.inits) {
          if (!t.produce) {
            placed.push(t);
            continue;
          }
          const bytes = bytesOf(t.type, t.produce());
          const n = t.dims.reduce((a, b) => a * b, 1);
          if (bytes.length !== n * TYPE_BYTES[t.type]) throw new Error(`onnx: initializer ${t.name} has ${bytes.length} bytes, its shape [${t.dims.join(', ')}] needs ${n * TYPE_BYTES[t.type]}`);
          offset += (ONNX_DATA_ALIGNMENT - (offset % ONNX_DATA_ALIGNMENT)) % ONNX_DATA_ALIGNMENT;
          for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, offset + done);
          placed.push({ ...t, external: { location, offset, length: bytes.length } });
          offset += bytes.length;
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const graph = new Message();
      for (const n of this.nodes) {
        const node = new Message();
        for (const i of n.inputs) node.string(1, i);
        for (const o of n.outputs) node.string(2, o);
        node.string(3, n.name).string(4, n.opType);
        for (const [k, v] of Object.entries(n.attrs)) node.message(5, attribute(k, v));
        if (n.domain) node.string(7, n.domain);
        graph.message(1, node);
      }
      graph.string(2, 'main');
      for (const t of placed) graph.message(5, tensorProto(t));
      for (const v of this.inputs) graph.message(11, valueInfo(v));
      for (const v of this.outputs) graph.message(12, valueInfo(v));
      const model = new Message().int(1, irVersion).string(2, producer);
      model.message(7, graph);
      for (const [domain, version] of this.opsets) model.message(8, new Message().string(1, domain).int(2, version));
      const bytes = model.encode();
      const mfd = openSync(tmpModel, 'w');
      try {
        for (let done = 0; done < bytes.length; ) done += writeSync(mfd, bytes, done, bytes.length - done);
        fsyncSync(mfd);
      } finally {
        closeSync(mfd);
      }
      renameSync(tmpData, dataFile);
      renameSync(tmpModel, file);
      return { modelBytes: bytes.length, dataBytes: offset };
    } finally {
      rmSync(tmpData, { force: true });
      rmSync(tmpModel, { force: true });
    }
  }
}
