// The bench's GGUF writer (bench/lib/gguf.mjs, bench/lib/llama-gguf.mjs) parsed back by a reader written
// here from the format spec, with no peer installed: magic, version, counts, metadata values, tensor
// infos (dims innermost first), offsets aligned, the tensor bytes of each encoding (F32 exact; F16, BF16
// within half a unit in the last place; Q8_0 within half a step of its block scale), the rotary
// permutation of q/k, the tokenizer metadata, and the writer's errors.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GGML_TYPES, GGUF_TYPE, encodeTensor, writeGguf, type GgmlTypeName } from '../bench/lib/gguf.mjs';
import { llamaMetadata, llamaTensors, llamaTokenizerMetadata, permuteRotaryRows, type LlamaShape } from '../bench/lib/llama-gguf.mjs';
import { bf16BitsToF32, f16BitsToF32 } from '../src/model/safetensors.js';
import { makeTempDir, seededRandom } from './helpers/tinyModel.js';
import { tinyTokenizerJson } from './helpers/tinyTokenizer.js';


interface ParsedTensor {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}
interface Parsed {
  version: number;
  kv: Map<string, { type: number; value: unknown }>;
  tensors: ParsedTensor[];
  dataOffset: number;
  bytes: Buffer;
}

/** A GGUF v3 reader: enough of the spec to check what the writer wrote. */
function parseGguf(bytes: Buffer, alignment = 32): Parsed {
  let p = 0;
  const u32 = () => ((p += 4), bytes.readUInt32LE(p - 4));
  const u64 = () => ((p += 8), Number(bytes.readBigUInt64LE(p - 8)));
  const str = () => {
    const n = u64();
    p += n;
    return bytes.toString('utf8', p - n, p);
  };
  const scalar = (type: number): unknown => {
    switch (type) {
      case GGUF_TYPE.UINT8: return ((p += 1), bytes.readUInt8(p - 1));
      case GGUF_TYPE.INT8: return ((p += 1), bytes.readInt8(p - 1));
      case GGUF_TYPE.UINT16: return ((p += 2), bytes.readUInt16LE(p - 2));
      case GGUF_TYPE.INT16: return ((p += 2), bytes.readInt16LE(p - 2));
      case GGUF_TYPE.UINT32: return u32();
      case GGUF_TYPE.INT32: return ((p += 4), bytes.readInt32LE(p - 4));
      case GGUF_TYPE.FLOAT32: return ((p += 4), bytes.readFloatLE(p - 4));
      case GGUF_TYPE.BOOL: return ((p += 1), bytes.readUInt8(p - 1) !== 0);
      case GGUF_TYPE.STRING: return str();
      case GGUF_TYPE.UINT64: return u64();
      case GGUF_TYPE.INT64: return ((p += 8), Number(bytes.readBigInt64LE(p - 8)));
      case GGUF_TYPE.FLOAT64: return ((p += 8), bytes.readDoubleLE(p - 8));
      default: throw new Error(`unknown value type ${type} at byte ${p}`);
    }
  };
  if (bytes.toString('latin1', 0, 4) !== 'GGUF') throw new Error('bad magic');
  p = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, { type: number; value: unknown }>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    if (type === GGUF_TYPE.ARRAY) {
      const itemType = u32();
      const n = u64();
      kv.set(key, { type, value: Array.from({ length: n }, () => scalar(itemType)) });
    } else kv.set(key, { type, value: scalar(type) });
  }
  const tensors: ParsedTensor[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const dims = Array.from({ length: nDims }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const dataOffset = Math.ceil(p / alignment) * alignment;
  expect(bytes.subarray(p, dataOffset).every((b) => b === 0)).toBe(true); // the padding is zeros
  return { version, kv, tensors, dataOffset, bytes };
}

function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

const TYPE_NAMES: GgmlTypeName[] = ['F32', 'F16', 'BF16', 'Q8_0'];

describe('GGUF writer layout', () => {
  const dir = makeTempDir('l2e-gguf-');
  const shapes: Record<string, number[]> = { a: [3, 64], b: [97], c: [5, 32] }; // b's 388 bytes need padding
  const data = Object.fromEntries(Object.entries(shapes).map(([k, s], i) => [k, randomF32(s.reduce((x, y) => x * y, 1), 10 + i)]));
  data['a']![7] = 0; // a zero, and a block of zeros (Q8_0's scale 0)
  data['c']!.fill(0, 32, 64);

  for (const typeName of TYPE_NAMES) {
    it(`writes ${typeName} tensors at aligned offsets and reads back`, () => {
      const file = join(dir, `t-${typeName}.gguf`);
      const spec = {
        metadata: [
          { key: 'general.architecture', type: GGUF_TYPE.STRING, value: 'llama' },
          { key: 'test.u32', type: GGUF_TYPE.UINT32, value: 4096 },
          { key: 'test.f32', type: GGUF_TYPE.FLOAT32, value: 1e-5 },
          { key: 'test.bool', type: GGUF_TYPE.BOOL, value: true },
          { key: 'test.strings', type: GGUF_TYPE.ARRAY, itemType: GGUF_TYPE.STRING, value: ['<s>', '▁saya', ''] },
          { key: 'test.ints', type: GGUF_TYPE.ARRAY, itemType: GGUF_TYPE.INT32, value: [1, -2, 3] },
        ],
        tensors: Object.entries(shapes).map(([name, shape]) => ({
          name,
          shape,
          type: name === 'b' ? ('F32' as const) : typeName,
          data: () => data[name]!,
        })),
      };
      const layout = writeGguf(file, spec);
      const bytes = readFileSync(file);
      const g = parseGguf(bytes);
      expect(g.version).toBe(3);
      expect(g.kv.size).toBe(6);
      expect(g.kv.get('general.architecture')).toEqual({ type: GGUF_TYPE.STRING, value: 'llama' });
      expect(g.kv.get('test.u32')!.value).toBe(4096);
      expect(g.kv.get('test.f32')!.value).toBe(Math.fround(1e-5));
      expect(g.kv.get('test.bool')!.value).toBe(true);
      expect(g.kv.get('test.strings')!.value).toEqual(['<s>', '▁saya', '']);
      expect(g.kv.get('test.ints')!.value).toEqual([1, -2, 3]);
      expect(g.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c']);
      expect(g.tensors.map((t) => t.dims)).toEqual([[64, 3], [97], [32, 5]]);
      const id = GGML_TYPES[typeName].id;
      expect(g.tensors.map((t) => t.type)).toEqual([id, 0, id]);
      expect(g.dataOffset).toBe(layout.dataOffset);
      expect(g.dataOffset % 32).toBe(0);
      for (const t of g.tensors) expect(t.offset % 32).toBe(0);
      expect(g.tensors.map((t) => t.offset)).toEqual(layout.tensors.map((t) => t.offset));
      const last = layout.tensors[2]!;
      expect(bytes.length).toBe(g.dataOffset + last.offset + last.byteLength);
      expect(layout.bytes).toBe(bytes.length);

      for (const t of g.tensors) {
        const src = data[t.name]!;
        const at = g.dataOffset + t.offset;
        const back = decode(bytes, at, t.type, src.length);
        const bound = errorBound(t.type, src);
        let worst = 0;
        for (let i = 0; i < src.length; i++) worst = Math.max(worst, Math.abs(back[i]! - src[i]!) - bound[i]!);
        expect(worst).toBeLessThanOrEqual(0); // NaN fails here too
      }
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    });
  }

  it('Q8_0 blocks: the f16 scale is max|x| / 127 and the largest quant is ±127', () => {
    const x = randomF32(64, 3, 0.05);
    x[40] = -0.2;
    const q = Buffer.from(encodeTensor('Q8_0', x));
    expect(q.length).toBe(68);
    for (let b = 0; b < 2; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
      expect(Math.abs(f16BitsToF32(q.readUInt16LE(b * 34)) - amax / 127)).toBeLessThanOrEqual((amax / 127) * 2 ** -11);
      const quants = Array.from({ length: 32 }, (_, i) => q.readInt8(b * 34 + 2 + i));
      expect(Math.max(...quants.map(Math.abs))).toBe(127);
    }
    expect(q.readInt8(34 + 2 + 8)).toBe(-127);
  });

  it('refuses Q8_0 rows that are not a multiple of 32, and leaves no file', () => {
    const file = join(dir, 'bad.gguf');
    expect(() =>
      writeGguf(file, { metadata: [], tensors: [{ name: 'w', shape: [2, 48], type: 'Q8_0', data: () => new Float32Array(96) }] }),
    ).toThrow('gguf: Q8_0 needs rows of a multiple of 32 values; this tensor\'s rows have 48');
    expect(existsSync(file)).toBe(false);
  });

  it('a tensor whose data does not fit its shape fails and leaves neither the file nor a temporary', () => {
    const file = join(dir, 'short.gguf');
    expect(() =>
      writeGguf(file, { metadata: [], tensors: [{ name: 'w', shape: [2, 32], type: 'F32', data: () => new Float32Array(63) }] }),
    ).toThrow('gguf: tensor w has 63 values, its shape [2, 32] needs 64');
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('short.gguf'))).toEqual([]);
  });

  it('refuses a metadata key given twice', () => {
    const kv = { key: 'general.name', type: GGUF_TYPE.STRING, value: 'x' };
    expect(() => writeGguf(join(dir, 'dup.gguf'), { metadata: [kv, kv], tensors: [] })).toThrow('gguf: metadata key general.name given twice');
  });
});

describe('llama GGUF of our model', () => {
  const shape: LlamaShape = { vocab: 300, hidden: 64, intermediate: 96, layers: 1, heads: 4, kvHeads: 2, headDim: 16 };

  it('permutes q/k rows per head from rotate-half to adjacent pairs', () => {
    const heads = 2;
    const d = 4;
    const cols = 3;
    const w = Float32Array.from({ length: heads * d * cols }, (_, i) => i);
    const p = permuteRotaryRows(w, heads, d, cols);
    // head rows [r0 r1 | r2 r3] (halves) become [r0 r2 r1 r3]
    const rowsOf = (a: Float32Array) => Array.from({ length: heads * d }, (_, r) => a[r * cols]! / cols);
    expect(rowsOf(p)).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  });

  it('names, shapes and types the tensors as llama.cpp does; q and k permuted, the rest as is', () => {
    const tensors = new Map<string, Float32Array>();
    const get = (name: string) => {
      if (!tensors.has(name)) tensors.set(name, randomF32(1 << 16, tensors.size + 1).subarray(0, sizeOf(name)));
      return tensors.get(name)!;
    };
    const sizeOf = (name: string): number => {
      const { vocab: V, hidden: H, intermediate: I, heads, kvHeads, headDim: d } = shape;
      if (name.endsWith('norm.weight')) return H;
      if (name === 'embed_tokens.weight') return V * H;
      if (name.includes('q_proj') || name.includes('o_proj')) return heads * d * H;
      if (name.includes('k_proj') || name.includes('v_proj')) return kvHeads * d * H;
      return I * H;
    };
    const specs = llamaTensors(shape, 'Q8_0', get);
    expect(specs.map((t) => [t.name, t.shape.join('x'), t.type])).toEqual([
      ['token_embd.weight', '300x64', 'Q8_0'],
      ['blk.0.attn_norm.weight', '64', 'F32'],
      ['blk.0.attn_q.weight', '64x64', 'Q8_0'],
      ['blk.0.attn_k.weight', '32x64', 'Q8_0'],
      ['blk.0.attn_v.weight', '32x64', 'Q8_0'],
      ['blk.0.attn_output.weight', '64x64', 'Q8_0'],
      ['blk.0.ffn_norm.weight', '64', 'F32'],
      ['blk.0.ffn_gate.weight', '96x64', 'Q8_0'],
      ['blk.0.ffn_up.weight', '96x64', 'Q8_0'],
      ['blk.0.ffn_down.weight', '64x96', 'Q8_0'],
      ['output_norm.weight', '64', 'F32'],
    ]);
    const byName = new Map(specs.map((t) => [t.name, t.data()]));
    expect(byName.get('blk.0.attn_q.weight')).toEqual(permuteRotaryRows(get('layers.0.self_attn.q_proj.weight'), 4, 16, 64));
    expect(byName.get('blk.0.attn_k.weight')).toEqual(permuteRotaryRows(get('layers.0.self_attn.k_proj.weight'), 2, 16, 64));
    expect(byName.get('blk.0.attn_k.weight')).not.toEqual(get('layers.0.self_attn.k_proj.weight'));
    expect(byName.get('blk.0.attn_v.weight')).toBe(get('layers.0.self_attn.v_proj.weight'));
  });

  it('writes the llama keys and the tokenizer from tokenizer.json: pieces, scores from merge ranks, types', () => {
    const tj = tinyTokenizerJson() as { model: { vocab: Record<string, number>; merges: string[] } }; // merges as "left right"
    const meta = llamaMetadata(shape, 'BF16', llamaTokenizerMetadata(tj, { add_bos_token: true, add_eos_token: false }));
    const kv = new Map(meta.map((m) => [m.key, m.value]));
    expect(kv.get('general.architecture')).toBe('llama');
    expect(kv.get('general.file_type')).toBe(32);
    expect(kv.get('llama.embedding_length')).toBe(64);
    expect(kv.get('llama.attention.head_count_kv')).toBe(2);
    expect(kv.get('llama.rope.dimension_count')).toBe(16);
    expect(kv.get('llama.pooling_type')).toBe(1);
    const tokens = kv.get('tokenizer.ggml.tokens') as string[];
    const scores = kv.get('tokenizer.ggml.scores') as number[];
    const types = kv.get('tokenizer.ggml.token_type') as number[];
    expect(tokens.length).toBe(Object.keys(tj.model.vocab).length);
    for (const [piece, id] of Object.entries(tj.model.vocab)) expect(tokens[id]).toBe(piece);
    expect(types.slice(0, 4)).toEqual([2, 3, 3, 6]); // <unk> unknown, <s> </s> control, <0x00> byte
    expect(types[tj.model.vocab['a']!]).toBe(1);
    expect(tj.model.merges.length).toBeGreaterThan(10);
    tj.model.merges.forEach((m, rank) => expect(scores[tj.model.vocab[m.replace(' ', '')]!]).toBe(-rank || 0));
    expect(kv.get('tokenizer.ggml.bos_token_id')).toBe(1);
    expect(kv.get('tokenizer.ggml.add_bos_token')).toBe(true);
    expect(kv.get('tokenizer.ggml.add_space_prefix')).toBe(true);
    // and it is a writable file
    const file = join(makeTempDir('l2e-gguf-'), 'tok.gguf');
    writeGguf(file, { metadata: meta, tensors: [] });
    expect(parseGguf(readFileSync(file)).kv.get('tokenizer.ggml.tokens')!.value).toEqual(tokens);
  });
});

/** float32 values of `n` elements of ggml type `type` at byte `at`. */
function decode(bytes: Buffer, at: number, type: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (type === 0) for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(at + 4 * i);
  else if (type === 1) for (let i = 0; i < n; i++) out[i] = f16BitsToF32(bytes.readUInt16LE(at + 2 * i));
  else if (type === 30) for (let i = 0; i < n; i++) out[i] = bf16BitsToF32(bytes.readUInt16LE(at + 2 * i));
  else if (type === 8) {
    for (let b = 0; b < n / 32; b++) {
      const d = f16BitsToF32(bytes.readUInt16LE(at + 34 * b));
      for (let i = 0; i < 32; i++) out[b * 32 + i] = d * bytes.readInt8(at + 34 * b + 2 + i);
    }
  } else throw new Error(`type ${type}`);
  return out;
}

/** Per-element error allowed: 0 for F32, half an ulp for F16/BF16, half a step (plus the scale's own f16 rounding) for Q8_0. */
function errorBound(type: number, x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  const ulpHalf = (v: number, mantissa: number) => (v === 0 ? 0 : 2 ** (Math.floor(Math.log2(Math.abs(v))) - mantissa - 1));
  for (let i = 0; i < x.length; i++) {
    if (type === 1) out[i] = Math.max(ulpHalf(x[i]!, 10), 2 ** -25); // f16 subnormals: a fixed step of 2^-24
    else if (type === 30) out[i] = ulpHalf(x[i]!, 7);
  }
  if (type === 8) {
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
      const d = amax / 127;
      for (let i = 0; i < 32; i++) out[b * 32 + i] = d / 2 + 127 * d * 2 ** -11;
    }
  }
  return out;
}
