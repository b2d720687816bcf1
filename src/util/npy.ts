// NumPy .npy (format 1.0) for float32 matrices: the encode command's binary output.

/** The bytes of a .npy file holding a C-order float32 matrix [rows, cols]. */
export function npyBytes(data: Float32Array, rows: number, cols: number): Uint8Array[] {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  // magic (6) + version (2) + header length (2) + header + '\n' must be a multiple of 64
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const pre = new Uint8Array(10 + header.length);
  pre.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  pre[8] = header.length & 0xff;
  pre[9] = header.length >> 8;
  pre.set(Buffer.from(header, 'latin1'), 10);
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return [pre, body];
}
