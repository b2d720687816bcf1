import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readConfig } from '../src/model/config.js';
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16,
  f32ToBf16Bits,
  f32ToF16,
  f32ToF16Bits,
  MAX_HEADER_BYTES,
  readSafetensorsHeader,
  readSafetensorsIndex,
  readTensorF32,
  writeSafetensors,
  type DType,
} from '../src/model/safetensors.js';
import { openWeights, parameterNames } from '../src/model/weights.js';
import { makeTempDir, seededRandom, tinyMhaDir, writeTinyModel } from './helpers/tinyModel.js';
import { tinyTokenizerJson } from './helpers/tinyTokenizer.js';
import { skipNote } from './helpers/fixture.js';


/** A raw file: u64 header length (or an override), the header text, then `dataBytes` zero bytes. */
function rawFile(header: unknown, dataBytes: number, lengthOverride?: bigint): string {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(text.length));
  const file = join(makeTempDir(), 'bad.safetensors');
  writeFileSync(file, Buffer.concat([len, text, Buffer.alloc(dataBytes)]));
  return file;
}

const t = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

describe('safetensors: half conversions round to nearest even', () => {
  it('hand-picked values', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway to the next power: rounds up to infinity
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001);
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal: even is 0
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 units: even is 2
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f16BitsToF32(f32ToF16Bits(NaN))).toBeNaN();
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie: stays even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie: goes up to even
    expect(f32ToBf16Bits(3.4e38)).toBe(0x7f80); // rounds past the largest bf16 to infinity
    expect(bf16BitsToF32(f32ToBf16Bits(NaN))).toBeNaN();
  });

  it('every finite half value round-trips, and every midpoint goes to the even neighbour', () => {
    for (const [toBits, fromBits, maxFinite] of [
      [f32ToF16Bits, f16BitsToF32, 0x7bff],
      [f32ToBf16Bits, bf16BitsToF32, 0x7f7f],
    ] as const) {
      for (let h = 0; h <= maxFinite; h++) {
        for (const sign of [0, 0x8000]) {
          const x = fromBits(h | sign);
          expect(toBits(x)).toBe(h | sign);
          if (h < maxFinite) {
            const mid = (x + fromBits((h + 1) | sign)) / 2; // exact in float32
            const even = h % 2 === 0 ? h : h + 1;
            if (toBits(mid) !== (even | sign)) expect({ h, sign, got: toBits(mid) }).toBe(even | sign);
          }
        }
      }
    }
  });
});

describe('safetensors: writer and reader round-trip', () => {
  it.each(['F32', 'F16', 'BF16'] as DType[])('%s', (dtype) => {
    const rand = seededRandom(7);
    const a = Float32Array.from({ length: 35 }, () => rand() * 8 - 4);
    const b = Float32Array.from({ length: 6 }, () => rand());
    const file = join(makeTempDir(), 'x.safetensors');
    writeSafetensors(
      file,
      [
        { name: 'a', dtype, shape: [5, 7], data: a },
        { name: 'empty', dtype, shape: [0, 3], data: new Float32Array(0) },
        { name: 'b', dtype, shape: [6], data: b },
      ],
      { format: 'pt' },
    );
    const h = readSafetensorsHeader(file);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.dataOffset % 8).toBe(0);
    expect(h.tensors.map((e) => e.name)).toEqual(['a', 'empty', 'b']);
    const ea = h.byName.get('a')!;
    const bytes = dtype === 'F32' ? 4 : 2;
    expect(ea).toMatchObject({ dtype, shape: [5, 7], offset: h.dataOffset, byteLength: 35 * bytes, file });
    expect(h.byName.get('b')!.offset).toBe(h.dataOffset + 35 * bytes);
    expect(h.fileSize).toBe(h.dataOffset + 41 * bytes);
    const round = (x: Float32Array) => (dtype === 'F32' ? x : dtype === 'F16' ? Float32Array.from(f32ToF16(x), f16BitsToF32) : Float32Array.from(f32ToBf16(x), bf16BitsToF32));
    expect(readTensorF32(ea)).toEqual(round(a));
    expect(readTensorF32(h.byName.get('b')!)).toEqual(round(b));
    expect(readTensorF32(h.byName.get('empty')!)).toEqual(new Float32Array(0));
    if (dtype !== 'F32') {
      const rel = Math.max(...a.map((x, i) => Math.abs(x - readTensorF32(ea)[i]) / Math.abs(x)));
      expect(rel).toBeLessThan(dtype === 'F16' ? 2 ** -10 : 2 ** -7);
    }
  });

  it('accepts raw half bits and writes the exact bytes', () => {
    const file = join(makeTempDir(), 'raw.safetensors');
    writeSafetensors(file, [{ name: 'h', dtype: 'BF16', shape: [2], data: Uint16Array.of(0x3f80, 0xc000) }]);
    const e = readSafetensorsHeader(file).byName.get('h')!;
    expect([...readFileSync(file).subarray(e.offset, e.offset + 4)]).toEqual([0x80, 0x3f, 0x00, 0xc0]);
    expect(readTensorF32(e)).toEqual(Float32Array.of(1, -2));
  });

  it('rejects bad tensors before touching the disk', () => {
    const file = join(makeTempDir(), 'w.safetensors');
    const ok = { name: 'a', dtype: 'F32' as const, shape: [2], data: new Float32Array(2) };
    expect(() => writeSafetensors(file, [ok, { ...ok, name: 'b', shape: [3] }])).toThrow(/tensor "b": shape \[3\] needs 3 values, got 2/);
    expect(() => writeSafetensors(file, [ok, ok])).toThrow(/tensor "a": duplicate tensor name/);
    expect(() => writeSafetensors(file, [{ ...ok, data: new Uint16Array(2) }])).toThrow(/F32 data must be a Float32Array/);
    expect(() => writeSafetensors(file, [{ ...ok, shape: [-2] }])).toThrow(/shape must be non-negative integers/);
    // a shape whose product passes 2^53 - 1 on the way to 0: the reader refuses it, so the writer does
    expect(() => writeSafetensors(file, [{ ...ok, shape: [2 ** 40, 2 ** 40, 0], data: new Float32Array(0) }])).toThrow(
      'tensor "a": shape [1099511627776, 1099511627776, 0]: its element count overflows (past 2^53 - 1), which no reader takes',
    );
    expect(existsSync(file)).toBe(false);
  });
});

const hasTinyMhaWeights = existsSync(join(tinyMhaDir, 'model.safetensors'));
describe.skipIf(!hasTinyMhaWeights)(`safetensors: shared fixture ${hasTinyMhaWeights ? '' : skipNote('the tiny-mha fixture')}`, () => {
  it('reads the tiny-mha header with absolute offsets', () => {
    const h = readSafetensorsHeader(join(tinyMhaDir, 'model.safetensors'));
    expect(h.dataOffset).toBe(8 + 2096);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.byName.get('embed_tokens.weight')).toMatchObject({ dtype: 'F32', shape: [2000, 64], offset: 8 + 2096 + 12480, byteLength: 512000 });
    const w = openWeights(tinyMhaDir, readConfig(tinyMhaDir));
    expect(w.hasDense).toBe(true);
    expect(w.denseSize).toBe(48);
    expect(w.tensors.map((e) => e.name)).toEqual(parameterNames(readConfig(tinyMhaDir), 48).map((p) => p.name));
  });
});

describe('safetensors: bad input is refused with the file (and tensor) named', () => {
  it('short, truncated and oversized headers', () => {
    const tiny = join(makeTempDir(), 'tiny.safetensors');
    writeFileSync(tiny, Buffer.alloc(5));
    expect(() => readSafetensorsHeader(tiny)).toThrow(/tiny\.safetensors: 5 bytes is too short/);
    expect(() => readSafetensorsHeader(rawFile({}, 0, 1000n))).toThrow(/bad\.safetensors: header length 1000 is past the end of the file \(10 bytes\)/);
    expect(() => readSafetensorsHeader(rawFile({}, 0, 2n ** 63n))).toThrow(/header length \d+ is past the end/);
    const huge = rawFile({}, 0, BigInt(MAX_HEADER_BYTES + 1));
    truncateSync(huge, MAX_HEADER_BYTES + 64); // sparse: costs no disk
    expect(() => readSafetensorsHeader(huge)).toThrow(/exceeds the 104857600-byte limit/);
    expect(() => readSafetensorsHeader(join(makeTempDir(), 'none.safetensors'))).toThrow(/none\.safetensors: cannot open/);
  });

  it('header that is not a UTF-8 JSON object', () => {
    expect(() => readSafetensorsHeader(rawFile('{"a": ', 0))).toThrow(/bad\.safetensors: header is not valid UTF-8 JSON/);
    expect(() => readSafetensorsHeader(rawFile(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'), 0))).toThrow(/not valid UTF-8 JSON/);
    expect(() => readSafetensorsHeader(rawFile('[1]', 0))).toThrow(/header must be a JSON object/);
    expect(() => readSafetensorsHeader(rawFile({ __metadata__: { a: 1 } }, 0))).toThrow(/__metadata__ value for "a" must be a string/);
    expect(() => readSafetensorsHeader(rawFile({ __metadata__: 'pt' }, 0))).toThrow(/__metadata__ must be an object of strings/);
    // null is no metadata, as the Python safetensors library reads it
    expect(readSafetensorsHeader(rawFile({ __metadata__: null, x: t('F32', [2], [0, 8]) }, 8)).metadata).toEqual({});
  });

  it('dtypes: the header reads every safetensors dtype; only F32, F16 and BF16 load', () => {
    const i64 = rawFile({ x: t('I64', [2], [0, 16]) }, 16);
    const x = readSafetensorsHeader(i64).byName.get('x')!;
    expect(x).toMatchObject({ dtype: 'I64', shape: [2], byteLength: 16 });
    expect(() => readTensorF32(x)).toThrow(`${i64}: tensor "x": unsupported dtype I64 (supported: F32, F16, BF16)`);
    expect(() => readSafetensorsHeader(rawFile({ x: t('Q4', [2], [0, 2]) }, 16))).toThrow(/tensor "x": unknown dtype "Q4"/);
    expect(() => readSafetensorsHeader(rawFile({ x: t('toString', [2], [0, 2]) }, 16))).toThrow(/tensor "x": unknown dtype "toString"/);
    // bits per element from huggingface/safetensors (safetensors/src/tensor.rs, Dtype::bitsize)
    const bits: Record<string, number> = {
      BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F8_E4M3FNUZ: 8, F8_E5M2FNUZ: 8,
      I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
    };
    const header: Record<string, unknown> = {};
    let end = 0;
    for (const [dtype, b] of Object.entries(bits)) {
      const n = (4 * 3 * b) / 8; // shape [4, 3]: a whole number of bytes even for F4 and F6
      header[`t_${dtype}`] = t(dtype, [4, 3], [end, end + n]);
      end += n;
    }
    const all = readSafetensorsHeader(rawFile(header, end));
    expect(all.tensors.map((e) => [e.dtype, e.byteLength])).toEqual(Object.entries(bits).map(([d, b]) => [d, (12 * b) / 8]));
  });

  it('non-loadable dtypes: data_offsets must span shape × element size, whole bytes, without overlap', () => {
    const read = (header: unknown, data = 64) => () => readSafetensorsHeader(rawFile(header, data));
    expect(read({ w: t('F64', [2, 3], [0, 24]) })).toThrow(/bad\.safetensors: tensor "w": F64 shape \[2, 3\] needs 48 bytes but data_offsets span 24/);
    expect(read({ w: t('I64', [2], [0, 12]) })).toThrow(/tensor "w": I64 shape \[2\] needs 16 bytes but data_offsets span 12/);
    expect(read({ w: t('U8', [5], [0, 4]) })).toThrow(/tensor "w": U8 shape \[5\] needs 5 bytes but data_offsets span 4/);
    expect(read({ w: t('F4', [3], [0, 2]) })).toThrow(/tensor "w": F4 shape \[3\] is 12 bits, not a whole number of bytes/);
    expect(read({ w: t('F6_E2M3', [2], [0, 2]) })).toThrow(/tensor "w": F6_E2M3 shape \[2\] is 12 bits, not a whole number of bytes/);
    expect(read({ w: t('F4', [4], [0, 3]) })).toThrow(/tensor "w": F4 shape \[4\] needs 2 bytes but data_offsets span 3/);
    expect(read({ a: t('F64', [2], [0, 16]), b: t('BOOL', [4], [12, 16]) })).toThrow(/tensor "b" overlaps tensor "a"/);
    expect(read({ a: t('F64', [2], [0, 16]), b: t('I32', [4], [16, 32]) }, 32)().tensors.map((e) => e.byteLength)).toEqual([16, 16]);
  });

  it('shapes and offsets', () => {
    const read = (entry: unknown, data = 16) => () => readSafetensorsHeader(rawFile({ w: entry }, data));
    expect(read(t('F32', [2, 2], [0, 12]))).toThrow(/tensor "w": F32 shape \[2, 2\] needs 16 bytes but data_offsets span 12/);
    expect(read(t('F32', [2, -2], [0, 16]))).toThrow(/tensor "w": shape must be an array of non-negative integers/);
    const big = 2 ** 40;
    expect(read(t('F32', [big, big, 0], [0, 0]))).toThrow(`tensor "w": F32 shape [${big}, ${big}, 0]: its element count overflows (past 2^53 - 1)`);
    expect(read(t('F32', [2 ** 26, 2 ** 27], [0, 16]))).toThrow(`tensor "w": F32 shape [${2 ** 26}, ${2 ** 27}]: its element count overflows (past 2^53 - 1)`);
    expect(read(t('F32', [0, 2 ** 53 - 1], [0, 0]), 0)().tensors[0]).toMatchObject({ shape: [0, 2 ** 53 - 1], byteLength: 0 });
    expect(read(t('F32', '4', [0, 16]))).toThrow(/tensor "w": shape must be/);
    expect(read(t('F32', [4], [8, 4]))).toThrow(/tensor "w": data_offsets \[8, 4\] has begin > end/);
    expect(read(t('F32', [4], [0]))).toThrow(/tensor "w": data_offsets must be two non-negative integers/);
    expect(read(t('F32', [4], [0, 16]), 15)).toThrow(/tensor "w": data_offsets end 16 is past the data section \(15 bytes/);
    expect(read(t('F32', [4], [0, 16.5]))).toThrow(/data_offsets must be two non-negative integers/);
    expect(read(42)).toThrow(/tensor "w": entry must be an object/);
  });

  it('overlapping tensors', () => {
    const file = rawFile({ a: t('F32', [4], [0, 16]), b: t('F16', [4], [8, 16]) }, 16);
    expect(() => readSafetensorsHeader(file)).toThrow(/tensor "b" overlaps tensor "a"/);
    const touching = rawFile({ a: t('F32', [2], [0, 8]), e: t('F32', [0], [8, 8]), b: t('F32', [2], [8, 16]) }, 16);
    expect(readSafetensorsHeader(touching).tensors).toHaveLength(3);
  });

  it('gaps and trailing bytes: the tensors must fill the data section, as the reference implementation requires', () => {
    const read = (header: unknown, data: number) => () => readSafetensorsHeader(rawFile(header, data));
    expect(read({ a: t('F32', [2], [8, 16]) }, 16)).toThrow(
      'bad.safetensors: tensor "a" begins at byte 8 of the data section, where the data section starts at 0: the tensors must fill it without gaps',
    );
    expect(read({ a: t('F32', [2], [0, 8]), b: t('F16', [2], [12, 16]) }, 16)).toThrow(
      'bad.safetensors: tensor "b" begins at byte 12 of the data section, where tensor "a" ends at 8: the tensors must fill it without gaps',
    );
    expect(read({ a: t('F32', [2], [0, 8]) }, 12)).toThrow(
      "bad.safetensors: 4 bytes after the tensors' data (the data section is 12 bytes; the tensors end at 8)",
    );
    expect(read({ __metadata__: { format: 'pt' } }, 1)).toThrow(
      "bad.safetensors: 1 byte after the tensors' data (the data section is 1 byte; the tensors end at 0)",
    );
    // in any order in the header, zero-sized ones anywhere: the file the reference reads
    const ok = read({ b: t('F32', [2], [8, 16]), z: t('I8', [0], [8, 8]), a: t('F32', [2], [0, 8]), y: t('I8', [0], [16, 16]) }, 16)();
    expect(ok.tensors.map((e) => e.name)).toEqual(['b', 'z', 'a', 'y']);
    expect(read({}, 0)().tensors).toEqual([]);
  });

  it('a file truncated after writing', () => {
    const file = join(makeTempDir(), 'cut.safetensors');
    writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
    truncateSync(file, readSafetensorsHeader(file).fileSize - 1);
    expect(() => readSafetensorsHeader(file)).toThrow(/cut\.safetensors: tensor "a": data_offsets end 16 is past the data section/);
  });
});

describe('safetensors: atomic write', () => {
  const one = (v: number) => [{ name: 'a', dtype: 'F32' as const, shape: [1], data: Float32Array.of(v) }];

  it('replaces the old file and leaves no temp files', () => {
    const dir = makeTempDir();
    const file = join(dir, 'm.safetensors');
    writeSafetensors(file, one(1));
    writeSafetensors(file, one(2));
    expect(readTensorF32(readSafetensorsHeader(file).byName.get('a')!)).toEqual(Float32Array.of(2));
    expect(readdirSync(dir)).toEqual(['m.safetensors']);
  });

  it.skipIf(process.getuid?.() === 0)('a write into a read-only folder fails clearly and keeps the old file (skipped as root)', () => {
    const dir = makeTempDir();
    const file = join(dir, 'm.safetensors');
    writeSafetensors(file, one(1));
    const before = readFileSync(file);
    chmodSync(dir, 0o555);
    try {
      expect(() => writeSafetensors(file, one(2))).toThrow(`could not write ${file}: permission denied`);
    } finally {
      chmodSync(dir, 0o755);
    }
    expect(readFileSync(file)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['m.safetensors']);
  });

  it('a failed rename leaves what was there and no temp file', () => {
    const dir = makeTempDir();
    const target = join(dir, 'm.safetensors');
    mkdirSync(target);
    writeFileSync(join(target, 'keep'), 'x');
    expect(() => writeSafetensors(target, one(2))).toThrow(`could not write ${target}: it is a folder`);
    expect(readFileSync(join(target, 'keep'), 'utf8')).toBe('x');
    expect(readdirSync(dir)).toEqual(['m.safetensors']);
    expect(() => writeSafetensors(join(dir, 'no', 'such', 'x.safetensors'), one(1))).toThrow(
      `could not write ${join(dir, 'no', 'such', 'x.safetensors')}: the folder ${join(dir, 'no', 'such')} does not exist`,
    );
  });

  it('writes through a symbolic link: the link stays a link, the file it names gets the data', () => {
    const dir = makeTempDir();
    mkdirSync(join(dir, 'store'));
    writeSafetensors(join(dir, 'store', 'real.safetensors'), one(1));
    const link = join(dir, 'model.safetensors');
    symlinkSync(join('store', 'real.safetensors'), link);
    writeSafetensors(link, one(3));
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readTensorF32(readSafetensorsHeader(join(dir, 'store', 'real.safetensors')).byName.get('a')!)).toEqual(Float32Array.of(3));
    expect(readdirSync(dir).sort()).toEqual(['model.safetensors', 'store']);
    expect(readdirSync(join(dir, 'store'))).toEqual(['real.safetensors']);
  });
});

describe('safetensors: sharded index', () => {
  it('reads shards through the weight_map', () => {
    const m = writeTinyModel(makeTempDir(), { sharded: 3, tokenizer: false });
    const idx = readSafetensorsIndex(join(m.dir, 'model.safetensors.index.json'));
    expect(idx.files).toHaveLength(3);
    expect(idx.tensors.size).toBe(parameterNames(m.config, 16).length);
    const e = idx.tensors.get('norm.weight')!;
    expect(e.file).toBe(join(m.dir, 'model-00003-of-00003.safetensors'));
    expect(readTensorF32(e)).toEqual(m.weights.get('norm.weight'));
  });

  function withMap(edit: (map: Record<string, string>, dir: string) => void): () => unknown {
    const m = writeTinyModel(makeTempDir(), { sharded: 2, tokenizer: false });
    const indexFile = join(m.dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    edit(index.weight_map, m.dir);
    writeFileSync(indexFile, JSON.stringify(index));
    return () => readSafetensorsIndex(indexFile);
  }

  it('refuses missing shards, wrong shards and shards outside the folder', () => {
    expect(withMap((m) => (m['norm.weight'] = 'gone.safetensors'))).toThrow(/index\.json: tensor "norm\.weight": shard file "gone\.safetensors" does not exist/);
    expect(withMap((m) => (m['norm.weight'] = 'model-00001-of-00002.safetensors'))).toThrow(/tensor "norm\.weight" is not in its shard "model-00001-of-00002\.safetensors"/);
    expect(withMap((m) => (m['norm.weight'] = '../model.safetensors'))).toThrow(/tensor "norm\.weight": shard "\.\.\/model\.safetensors" is outside the model folder/);
    expect(withMap((m) => (m['norm.weight'] = '/etc/passwd'))).toThrow(/is outside the model folder/);
    expect(withMap((m) => (m['norm.weight'] = 3 as unknown as string))).toThrow(/tensor "norm\.weight": shard must be a file name/);
    // a link in the folder may point outside it, as the Hugging Face cache's snapshots point into
    // blobs/: it is the name that must stay in the folder
    const m = writeTinyModel(makeTempDir(), { sharded: 2, tokenizer: false });
    const blobs = makeTempDir();
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      renameSync(join(m.dir, shard), join(blobs, `blob-${shard}`));
      symlinkSync(relative(m.dir, join(blobs, `blob-${shard}`)), join(m.dir, shard));
    }
    const linked = readSafetensorsIndex(join(m.dir, 'model.safetensors.index.json'));
    expect([...linked.tensors.keys()].sort()).toEqual([...m.weights.keys()].sort());
    for (const [name, e] of linked.tensors) expect(readTensorF32(e), name).toEqual(m.weights.get(name));
    const dir = makeTempDir();
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
    expect(() => readSafetensorsIndex(join(dir, 'model.safetensors.index.json'))).toThrow(/expected an object with a "weight_map" object/);
  });

  // transformers loads every tensor of every shard (a later shard's copy over an earlier one's): a
  // shard's tensor that the map leaves out, or names in another shard, was ignored, and the model
  // computed with other weights than transformers'
  it("a shard's tensors beyond the weight_map: one the map names in another shard is refused, the others checked as the model's", () => {
    const extra = (dir: string, tensors: string[]): void =>
      writeSafetensors(join(dir, 'extra.safetensors'), tensors.map((name) => ({ name, dtype: 'F32' as const, shape: [32], data: new Float32Array(32).fill(5) })));
    const twice = withMap((map, dir) => {
      extra(dir, ['norm.weight', 'foo.bar']);
      map['foo.bar'] = 'extra.safetensors';
    });
    expect(twice).toThrow(/extra\.safetensors: tensor "norm\.weight" is here too, but .*index\.json names shard "model-00002-of-00002\.safetensors" for it: which copy is the model's is not defined; remove one$/);
    // left out of the map: read from its shard, as transformers reads it
    const m = writeTinyModel(makeTempDir(), { sharded: 2, tokenizer: false });
    const indexFile = join(m.dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { weight_map: Record<string, string> };
    delete index.weight_map['norm.weight'];
    writeFileSync(indexFile, JSON.stringify(index));
    const w = openWeights(m.dir, m.config);
    expect(readTensorF32(w.tensors.find((e) => e.name === 'norm.weight')!)).toEqual(m.weights.get('norm.weight'));
    // and one that is no parameter of the model is refused, as in a single file
    index.weight_map['foo.bar'] = 'extra.safetensors';
    extra(m.dir, ['foo.bar', 'layers.0.bogus']);
    writeFileSync(indexFile, JSON.stringify(index));
    expect(() => openWeights(m.dir, m.config)).toThrow(/extra\.safetensors: tensor "foo\.bar": unexpected tensor \(not a parameter of this Llama model\)/);
  });
});

describe('weights: openWeights', () => {
  it('indexes a single-file model in canonical order', () => {
    const m = writeTinyModel(makeTempDir(), { layers: 3, heads: 8, kvHeads: 2, dense: 12, tokenizer: false });
    const w = openWeights(m.dir, m.config);
    expect(w.hasDense).toBe(true);
    expect(w.denseSize).toBe(12);
    expect(w.files).toEqual([join(m.dir, 'model.safetensors')]);
    const specs = parameterNames(m.config, 12);
    expect(specs).toHaveLength(1 + 3 * 9 + 1 + 2);
    expect(w.tensors.map((e) => [e.name, e.shape])).toEqual(specs.map((s) => [s.name, s.shape]));
    expect(w.tensors.find((e) => e.name === 'layers.1.self_attn.k_proj.weight')!.shape).toEqual([8, 32]);
    for (const e of w.tensors) expect(readTensorF32(e)).toEqual(m.weights.get(e.name));
  });

  it('sharded, BF16, 5.x layout', () => {
    const m = writeTinyModel(makeTempDir(), { sharded: true, dtype: 'BF16', layout: '5.x', tokenizer: false });
    const w = openWeights(m.dir, m.config);
    expect(w.files).toHaveLength(2);
    expect(w.tensors.every((e) => e.dtype === 'BF16')).toBe(true);
    const norm = w.tensors.find((e) => e.name === 'norm.weight')!;
    expect(readTensorF32(norm)).toEqual(Float32Array.from(f32ToBf16(m.weights.get('norm.weight')!), bf16BitsToF32));
  });

  it('strips the model. prefix and ignores lm_head; no dense layer is reported, not an error', () => {
    const m = writeTinyModel(makeTempDir(), { prefix: true, withDense: false, dtype: 'F16', tokenizer: false });
    expect(readSafetensorsHeader(join(m.dir, 'model.safetensors')).byName.has('model.norm.weight')).toBe(true);
    const w = openWeights(m.dir, m.config);
    expect(w.hasDense).toBe(false);
    expect(w.denseSize).toBe(16); // from the config's embedding_size: the size to initialise
    expect(w.tensors.map((e) => e.name)).toEqual(parameterNames(m.config, null).map((s) => s.name));
    expect(w.tensors[0].name).toBe('embed_tokens.weight');
    const m2 = writeTinyModel(makeTempDir(), { withDense: false, dense: null, tokenizer: false });
    expect(openWeights(m2.dir, m2.config)).toMatchObject({ hasDense: false, denseSize: null });
  });

  it('finds a single differently named .safetensors; refuses none or several', () => {
    const m = writeTinyModel(makeTempDir(), { tokenizer: false });
    writeSafetensors(join(m.dir, 'weights.safetensors'), [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    rmSync(join(m.dir, 'model.safetensors'));
    expect(() => openWeights(m.dir, m.config)).toThrow(/weights\.safetensors: tensor "embed_tokens\.weight" is missing/);
    writeSafetensors(join(m.dir, 'other.safetensors'), [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    expect(() => openWeights(m.dir, m.config)).toThrow(/several \.safetensors files \(other\.safetensors, weights\.safetensors\)/);
    expect(() => openWeights(makeTempDir(), m.config)).toThrow(/no weights found \(expected model\.safetensors or model\.safetensors\.index\.json\)/);
  });

  /** A valid model whose tensor list is edited before writing. */
  function edited(edit: (tensors: { name: string; dtype: DType; shape: number[]; data: Float32Array }[]) => void, layers = 2) {
    const m = writeTinyModel(makeTempDir(), { layers, tokenizer: false });
    const tensors = parameterNames(m.config, 16).map((s) => ({ name: s.name, dtype: 'F32' as DType, shape: s.shape, data: m.weights.get(s.name)! }));
    edit(tensors);
    writeSafetensors(join(m.dir, 'model.safetensors'), tensors);
    return m;
  }
  const open = (m: ReturnType<typeof edited>) => () => openWeights(m.dir, m.config);

  it('refuses missing tensors, wrong shapes, extra layers and strays', () => {
    expect(open(edited((ts) => ts.splice(3, 1)))).toThrow(/model\.safetensors: tensor "layers\.0\.self_attn\.k_proj\.weight" is missing \(expected shape \[32, 32\]\)/);
    expect(
      open(edited((ts) => ts.splice(2, 1, { name: 'layers.0.self_attn.q_proj.weight', dtype: 'F32', shape: [32, 31], data: new Float32Array(32 * 31) }))),
    ).toThrow(/model\.safetensors: tensor "layers\.0\.self_attn\.q_proj\.weight": expected shape \[32, 32\], got \[32, 31\]/);
    const extra = edited((ts) => ts.push({ name: 'layers.2.input_layernorm.weight', dtype: 'F32', shape: [32], data: new Float32Array(32) }));
    expect(open(extra)).toThrow(/tensor "layers\.2\.input_layernorm\.weight": layer 2 is beyond the config's num_hidden_layers = 2/);
    expect(openWeights(extra.dir, extra.config, { ignoreExtraLayers: true }).tensors).toHaveLength(parameterNames(extra.config, 16).length);
    expect(open(edited((ts) => ts.push({ name: 'layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [32], data: new Float32Array(32) })))).toThrow(
      /tensor "layers\.0\.self_attn\.q_proj\.bias": unexpected tensor/,
    );
    expect(open(edited((ts) => ts.push({ name: 'model.norm.weight', dtype: 'F32', shape: [32], data: new Float32Array(32) })))).toThrow(
      /tensor "model\.norm\.weight": duplicates "norm\.weight"/,
    );
  });

  it('refuses half a dense layer or a dense size that disagrees with the config', () => {
    expect(open(edited((ts) => ts.pop()))).toThrow(/tensor "dense_layer\.weight": found without "dense_layer\.bias"/);
    expect(open(edited((ts) => ts.splice(ts.length - 2, 1)))).toThrow(/tensor "dense_layer\.bias": found without "dense_layer\.weight"/);
    const wide = edited((ts) => {
      ts.splice(ts.length - 2, 2, { name: 'dense_layer.weight', dtype: 'F32', shape: [20, 32], data: new Float32Array(640) }, {
        name: 'dense_layer.bias',
        dtype: 'F32',
        shape: [20],
        data: new Float32Array(20),
      });
    });
    expect(open(wide)).toThrow(/tensor "dense_layer\.weight": has 20 outputs but the config says 16/);
    expect(openWeights(wide.dir, { ...wide.config, denseSize: null }).denseSize).toBe(20);
    const badBias = edited((ts) => ts.splice(ts.length - 1, 1, { name: 'dense_layer.bias', dtype: 'F32', shape: [15], data: new Float32Array(15) }));
    expect(open(badBias)).toThrow(/tensor "dense_layer\.bias": expected shape \[16\], got \[15\]/);
  });
});

/** Writes a safetensors file from raw bytes, any dtype string (writeSafetensors only writes F32, F16 and BF16). */
function writeRawSafetensors(file: string, tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): void {
  const header: Record<string, unknown> = {};
  let end = 0;
  for (const x of tensors) {
    header[x.name] = { dtype: x.dtype, shape: x.shape, data_offsets: [end, end + x.bytes.byteLength] };
    end += x.bytes.byteLength;
  }
  const text = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  writeFileSync(file, Buffer.concat([len, text, ...tensors.map((x) => x.bytes)]));
}

describe('weights: tensors the model does not load may have any dtype', () => {
  const f64 = (values: ArrayLike<number>) => new Uint8Array(Float64Array.from(values).buffer);
  const i64 = (values: bigint[]) => new Uint8Array(BigInt64Array.from(values).buffer);
  type Raw = { name: string; dtype: string; shape: number[]; bytes: Uint8Array };

  /**
   * A causal-LM style checkpoint (`model.` prefix, F32 parameters and a dense layer) of `layers` layers,
   * written with `edit` applied to its raw tensor list.
   */
  function checkpoint(edit: (tensors: Raw[], config: ReturnType<typeof readConfig>) => void, layers = 2) {
    const m = writeTinyModel(makeTempDir(), { layers, vocab: 64, tokenizer: false });
    const tensors: Raw[] = parameterNames(m.config, 16).map((s) => {
      const data = m.weights.get(s.name)!;
      const name = s.name.startsWith('dense_layer.') ? s.name : `model.${s.name}`;
      return { name, dtype: 'F32', shape: s.shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    });
    edit(tensors, m.config);
    const file = join(m.dir, 'model.safetensors');
    writeRawSafetensors(file, tensors);
    return { ...m, file };
  }
  const loadsAll = (m: ReturnType<typeof checkpoint>, config = m.config, options = {}) => {
    const w = openWeights(m.dir, config, options);
    expect(w.tensors.map((e) => e.name)).toEqual(parameterNames(config, 16).map((s) => s.name));
    expect(w.tensors.every((e) => e.dtype === 'F32')).toBe(true);
    for (const e of w.tensors) expect(readTensorF32(e), e.name).toEqual(m.weights.get(e.name));
  };

  it('a float64 lm_head.weight is ignored', () => {
    const m = checkpoint((ts, c) => {
      // first in the header, as some exporters write it
      ts.unshift({ name: 'lm_head.weight', dtype: 'F64', shape: [c.vocabSize, c.hiddenSize], bytes: f64(new Float64Array(c.vocabSize * c.hiddenSize).fill(0.25)) });
    });
    expect(readSafetensorsHeader(m.file).byName.get('lm_head.weight')).toMatchObject({ dtype: 'F64', byteLength: 64 * 32 * 8 });
    loadsAll(m);
  });

  it('a model.safetensors link to a blob that is gone is said as such', () => {
    const dir = makeTempDir();
    const file = join(dir, 'model.safetensors');
    symlinkSync('../blobs/abc123', file);
    expect(() => readSafetensorsHeader(file)).toThrow(new Error(`${file}: it is a link to ../blobs/abc123, which does not exist`));
  });

  it('an int64 rotary_emb.inv_freq buffer is ignored', () => {
    const m = checkpoint((ts) => {
      ts.splice(1, 0, { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'I64', shape: [4], bytes: i64([1n, 2n, 3n, 4n]) });
    });
    expect(readSafetensorsHeader(m.file).byName.get('model.layers.0.self_attn.rotary_emb.inv_freq')!.dtype).toBe('I64');
    loadsAll(m);
    // the model's one buffer, unprefixed (it was "unexpected tensor")
    loadsAll(checkpoint((ts) => void ts.splice(1, 0, { name: 'rotary_emb.inv_freq', dtype: 'F32', shape: [4], bytes: Buffer.from(new Float32Array(4).buffer) })));
  });

  it('a float64 tensor in a layer dropped by ignoreExtraLayers is skipped', () => {
    const m = checkpoint((ts, c) => {
      ts.push({ name: 'model.layers.2.input_layernorm.weight', dtype: 'F64', shape: [c.hiddenSize], bytes: f64(new Float64Array(c.hiddenSize).fill(1)) });
    });
    loadsAll(m, m.config, { ignoreExtraLayers: true });
    expect(() => openWeights(m.dir, m.config)).toThrow(
      `${m.file}: tensor "model.layers.2.input_layernorm.weight": layer 2 is beyond the config's num_hidden_layers = 2`,
    );
    // the same checkpoint read as 1 layer: layer 1 (F32) and layer 2 (F64) both dropped
    loadsAll(m, { ...m.config, numLayers: 1 }, { ignoreExtraLayers: true });
  });

  it('a needed parameter stored as float64 is refused, naming the file and tensor', () => {
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const m = checkpoint((ts) => {
      const i = ts.findIndex((x) => x.name === name);
      const { bytes } = ts[i]!;
      ts[i] = { ...ts[i]!, dtype: 'F64', bytes: f64(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)) };
    });
    expect(readSafetensorsHeader(m.file).byName.get(name)!.dtype).toBe('F64');
    let message = '';
    try {
      openWeights(m.dir, m.config);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(`${m.file}: tensor "${name}": unsupported dtype F64 (supported: F32, F16, BF16)`);
  });
});

describe('test helper: writeTinyModel', () => {
  it('is deterministic for a seed and writes a tokenizer (the shared one when it exists, else a generated one)', () => {
    const a = writeTinyModel(makeTempDir(), { seed: 3 });
    const b = writeTinyModel(makeTempDir(), { seed: 3 });
    const c = writeTinyModel(makeTempDir(), { seed: 4, tokenizer: false });
    expect(a.weights.get('norm.weight')).toEqual(b.weights.get('norm.weight'));
    expect(a.weights.get('norm.weight')).not.toEqual(c.weights.get('norm.weight'));
    expect(a.hasTokenizer).toBe(true);
    const shared = join(tinyMhaDir, 'tokenizer.json');
    const written = readFileSync(join(a.dir, 'tokenizer.json'), 'utf8');
    expect(written).toBe(existsSync(shared) ? readFileSync(shared, 'utf8') : JSON.stringify(tinyTokenizerJson()));
    expect(c.hasTokenizer).toBe(false);
    expect(existsSync(join(c.dir, 'tokenizer.json'))).toBe(false);
  });
});
