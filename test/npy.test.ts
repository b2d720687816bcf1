// The one .npy module: what npyBytes writes, parseNpy reads back bit for bit; the header is padded so
// the data starts at a multiple of 64; other dtypes and malformed headers are refused by name.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { loadVectorTable } from '../src/eval/vectors.js';
import { npyBytes, npyHeader, parseNpy } from '../src/util/npy.js';
import { makeTempDir } from './helpers/tinyModel.js';

const join = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

describe('npy', () => {
  it('round-trips float32 matrices of several shapes bit for bit', () => {
    for (const [rows, cols] of [[0, 0], [0, 5], [1, 1], [3, 7], [17, 64], [2, 1000]] as const) {
      const data = new Float32Array(rows * cols);
      for (let i = 0; i < data.length; i++) data[i] = Math.fround(Math.sin(i * 1.7) * 1e3) / 7;
      if (data.length > 2) data.set([-0, 3.4028234663852886e38], 0);
      const bytes = join(npyBytes(data, rows, cols));
      const back = parseNpy(bytes, 'x.npy');
      expect([back.rows, back.cols]).toEqual([rows, cols]);
      expect(back.data).toBeInstanceOf(Float32Array);
      expect(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength)).toEqual(
        Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      );
      expect(bytes.length).toBe(npyHeader('<f4', rows, cols).length + rows * cols * 4);
    }
  });

  it('writes the header NumPy expects, padded with spaces to a multiple of 64 and ended by a newline', () => {
    for (const [rows, cols] of [[1, 1], [123456789, 4096], [10 ** 15, 10 ** 15]] as const) {
      const pre = npyHeader('<f4', rows, cols);
      expect(pre.length % 64).toBe(0);
      expect(Array.from(pre.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
      expect(pre[8]! | (pre[9]! << 8)).toBe(pre.length - 10);
      const header = Buffer.from(pre.subarray(10)).toString('latin1');
      expect(header.trimEnd()).toBe(`{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`);
      expect(header.endsWith(' \n') || header.endsWith('}\n')).toBe(true);
    }
    expect(Buffer.from(npyHeader('<f4', 2, 3)).toString('latin1')).toBe(
      "\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + ' '.repeat(58) + '\n',
    );
  });

  it('reads float64 and Fortran order into C-order float32', () => {
    const f8 = Buffer.alloc(6 * 8);
    [1, 4, 2, 5, 3, 6].forEach((v, i) => f8.writeDoubleLE(v, i * 8));
    const m = parseNpy(join([npyHeader('<f8', 2, 3, true), f8]));
    expect([m.rows, m.cols, Array.from(m.data)]).toEqual([2, 3, [1, 2, 3, 4, 5, 6]]);
  });

  it('refuses other dtypes, other ranks, malformed headers and short data, naming the file', () => {
    const body = new Uint8Array(64);
    expect(() => parseNpy(join([npyHeader('>f4', 2, 2), body]), 'a.npy')).toThrow(
      "a.npy: dtype >f4 is not supported (use little-endian float32 '<f4' or float64 '<f8')",
    );
    expect(() => parseNpy(join([npyHeader('<i4', 2, 2), body]), 'a.npy')).toThrow("a.npy: dtype <i4 is not supported");
    const noOrder = Buffer.from(npyHeader('<f4', 1, 1)).toString('latin1').replace("'fortran_order': False", "'fortran_order': 0    ");
    expect(() => parseNpy(Buffer.from(noOrder, 'latin1'), 'b.npy')).toThrow(/^b\.npy: malformed \.npy header /);
    const rank3 = Buffer.from(npyHeader('<f4', 1, 1)).toString('latin1').replace('(1, 1), }', '(1,1,1), }');
    expect(() => parseNpy(Buffer.from(rank3, 'latin1'), 'c.npy')).toThrow('c.npy: expected a 2-D matrix, got shape (1,1,1)');
    expect(() => parseNpy(join([npyHeader('<f4', 2, 2), new Uint8Array(12)]), 'd.npy')).toThrow(
      'd.npy: data is truncated (12 bytes for 2x2 <f4)',
    );
    expect(() => parseNpy(Buffer.from('hello world'), 'e.npy')).toThrow('e.npy: not a .npy file');
    expect(() => npyBytes(new Float32Array(5), 2, 3)).toThrow('npy: 5 values for a 2x3 matrix');
  });

  // .NPY was read as JSONL: "POOL.NPY:1: invalid JSON"
  it('a vector table named .NPY (any case) is read as a .npy', async () => {
    const dir = makeTempDir();
    const file = joinPath(dir, 'POOL.NPY');
    writeFileSync(file, Buffer.concat(npyBytes(new Float32Array([1, 0, 0, 1]), 2, 2)));
    writeFileSync(joinPath(dir, 'texts.txt'), 'satu\ndua\n');
    const table = await loadVectorTable(file, { textsFile: joinPath(dir, 'texts.txt') });
    expect([table.rows, table.dim]).toEqual([2, 2]);
    expect(Array.from(table.embeddingsFor(['dua']).row(0))).toEqual([0, 1]);
  });
});
