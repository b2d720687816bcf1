import { describeValue } from '../util/describe.js';

/** A dense row-major float32 matrix of embeddings: `rows` texts × `dim` values. */
export class Embeddings {
  readonly rows: number;
  readonly dim: number;
  readonly data: Float32Array;

  constructor(rows: number, dim: number, data?: Float32Array) {
    if (typeof rows !== 'number' || typeof dim !== 'number') {
      throw new TypeError(`Embeddings: rows and dim must be numbers (new Embeddings(rows, dim, data?)), got ${describeValue(rows)} and ${describeValue(dim)}`);
    }
    if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(dim) || dim <= 0) {
      throw new RangeError(`Embeddings: invalid shape ${rows}x${dim}: rows must be a whole number >= 0 and dim >= 1`);
    }
    if (data !== undefined && !(data instanceof Float32Array)) {
      throw new TypeError(`Embeddings: data must be a Float32Array, got ${describeValue(data)}`);
    }
    if (data && data.length !== rows * dim) {
      throw new Error(`Embeddings: data has ${data.length} values, expected ${rows}x${dim}`);
    }
    this.rows = rows;
    this.dim = dim;
    this.data = data ?? new Float32Array(rows * dim);
  }

  /** A view (no copy) of row i. */
  row(i: number): Float32Array {
    if (typeof i !== 'number') throw new TypeError(`row: i must be a row number, got ${describeValue(i)}`);
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw new RangeError(`row ${i} out of range [0, ${this.rows})`);
    return this.data.subarray(i * this.dim, (i + 1) * this.dim);
  }

  /** Copies of every row, as plain arrays of Float32Array. */
  toArrays(): Float32Array[] {
    const out: Float32Array[] = [];
    for (let i = 0; i < this.rows; i++) out.push(this.row(i).slice());
    return out;
  }
}
