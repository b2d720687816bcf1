// Embeddings passed between the benches' processes (bench/precision.mjs's children, the NumPy
// baseline's tofile): float32 values in a raw file, in this machine's byte order (written and read on
// the same machine).
import { readFileSync } from 'node:fs';

/** The file's float32 values, in an array that owns its memory. */
export function readF32(file) {
  // readFileSync may return a view into a larger pooled buffer (a small file; Node 24 pools bigger
  // ones too), at any offset: copy this file's bytes alone
  const b = readFileSync(file);
  if (b.byteLength % 4 !== 0) throw new Error(`${file}: ${b.byteLength} bytes, not a whole number of float32 values`);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
