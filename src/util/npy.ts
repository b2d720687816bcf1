// NumPy .npy (format 1.0 written; 1.0, 2.0 and 3.0 read) for 2-D float matrices: the encode command's
// binary output, the server's vector cache and eval's precomputed vectors. Layout: magic "\x93NUMPY",
// version (2 bytes), header length (2 bytes, 4 from version 2.0), a Python dict literal padded with
// spaces and ended by '\n' so that the data starts at a multiple of 64, then the data.

export interface NpyMatrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

/** The descriptors read: little-endian float32 and float64. */
export type NpyDescr = '<f4' | '<f8';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** The magic, version 1.0, header length and header of a 2-D matrix, padded to a multiple of 64 bytes. */
export function npyHeader(descr: string, rows: number, cols: number, fortranOrder = false): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortranOrder ? 'True' : 'False'}, 'shape': (${rows}, ${cols}), }`;
  // magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = new Uint8Array(10 + header.length);
  pre.set([...MAGIC, 1, 0], 0);
  pre[8] = header.length & 0xff;
  pre[9] = header.length >> 8;
  pre.set(Buffer.from(header, 'latin1'), 10);
  return pre;
}

/** The bytes of a .npy file holding a C-order float32 matrix [rows, cols]. */
export function npyBytes(data: Float32Array, rows: number, cols: number): Uint8Array[] {
  if (data.length !== rows * cols) throw new Error(`npy: ${data.length} values for a ${rows}x${cols} matrix`);
  return [npyHeader('<f4', rows, cols), new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
}

/** Parses a .npy holding a 2-D little-endian float32 or float64 matrix (C or Fortran order). */
export function parseNpy(bytes: Uint8Array, name = 'npy'): NpyMatrix {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Error(`${name}: not a .npy file`);
  const major = bytes[6]!;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new Error(`${name}: truncated .npy header`);
    headerLen = dv.getUint32(8, true);
    start = 12;
  } else {
    throw new Error(`${name}: unsupported .npy version ${major}`);
  }
  if (start + headerLen > bytes.length) throw new Error(`${name}: truncated .npy header`);
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`${name}: malformed .npy header ${JSON.stringify(header.trim())}`);
  }
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.length !== 2 || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${name}: expected a 2-D matrix, got shape (${shapeText})`);
  }
  // past 2^53 a dimension is no longer the number written: (0, 9007199254740993) read as ...992
  if (shape.some((d) => !Number.isSafeInteger(d))) throw new Error(`${name}: shape (${shapeText}) is too large`);
  const [rows, cols] = shape as [number, number];
  const width = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (width === 0) throw new Error(`${name}: dtype ${descr} is not supported (use little-endian float32 '<f4' or float64 '<f8')`);
  const body = start + headerLen;
  if (bytes.length - body < rows * cols * width) {
    throw new Error(`${name}: data is truncated (${bytes.length - body} bytes for ${rows}x${cols} ${descr})`);
  }
  const data = new Float32Array(rows * cols);
  // an empty matrix has nothing to read: (10^12, 0) must not loop over 10^12 empty rows
  if (data.length === 0) return { rows, cols, data };
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      // C order: element (i, j) at i*cols + j; Fortran order: at j*rows + i
      const e = fortran === 'True' ? j * rows + i : i * cols + j;
      data[i * cols + j] = width === 4 ? dv.getFloat32(body + e * 4, true) : dv.getFloat64(body + e * 8, true);
    }
  }
  return { rows, cols, data };
}
