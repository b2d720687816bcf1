// Where mining keeps the corpus vectors: in memory when they fit the budget, otherwise in a temp file
// of float32 rows read back block by block — so a corpus whose vectors exceed memory (a million
// 1536-wide vectors are 6 GB) is mined with bounded memory.
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Embeddings } from '../model/embeddings.js';
import { formatBytes } from '../util/format-bytes.js';
import { fsReason } from '../util/fs-error.js';
import { processAlive } from '../util/process.js';
import { trackScratch } from '../util/scratch.js';

export interface VectorStore {
  readonly rows: number;
  readonly dim: number;
  /** Rows [start, start + count) as a matrix (a copy or a view). */
  read(start: number, count: number): Embeddings;
  close(): void;
}

/** All vectors in one matrix. */
export class MemoryStore implements VectorStore {
  constructor(readonly matrix: Embeddings) {}
  get rows(): number {
    return this.matrix.rows;
  }
  get dim(): number {
    return this.matrix.dim;
  }
  read(start: number, count: number): Embeddings {
    const d = this.dim;
    return new Embeddings(count, d, this.matrix.data.subarray(start * d, (start + count) * d));
  }
  close(): void {}
}

/** Stores of mining runs that were killed (their pid is gone). */
function removeStaleStores(parent: string): void {
  for (const name of readdirSync(parent)) {
    const m = /^l2e-mine-store-(\d+)-\w+$/.exec(name);
    if (m && !processAlive(Number(m[1]))) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

/** Vectors appended to a temp file (float32, row-major) and read back by row ranges. */
export class FileStore implements VectorStore {
  private readonly dir: string;
  private readonly fd: number;
  private readonly untrack: () => void = () => {};
  private written = 0;

  /** The folder the store is made in, as failures name it (TMPDIR's when none was given). */
  private readonly where: string;

  constructor(
    readonly rows: number,
    readonly dim: number,
    parent?: string,
  ) {
    const folder = parent ?? tmpdir();
    this.where = parent === undefined ? `${folder} (TMPDIR)` : folder;
    let dir: string | undefined;
    try {
      removeStaleStores(folder);
      // the pid in the name lets a later run remove the store of one that was killed
      dir = mkdtempSync(join(folder, `l2e-mine-store-${process.pid}-`));
      this.untrack = trackScratch(dir); // removed on Ctrl-C too (util/scratch.ts)
      this.fd = openSync(join(dir, 'vectors.f32'), 'w+');
    } catch (err) {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      this.untrack();
      throw this.failure(err);
    }
    this.dir = dir;
  }

  /**
   * A failure to make or write the store (a full disk, most often), said with where it is and the
   * way out: the vectors go to a temp file only when they take more than half of the memory budget.
   */
  private failure(err: unknown): Error {
    const bytes = this.rows * this.dim * 4;
    const mb = Math.ceil((2 * bytes) / (1024 * 1024));
    return new Error(
      `could not write the corpus vectors to a temp file in ${this.where}: ${fsReason(err)}; they take ${formatBytes(bytes)} ` +
        `(more than half of --memory-mb): set TMPDIR to a folder with room for them, or give --memory-mb ${mb} or more to keep them in memory`,
    );
  }

  /** Appends the next rows (in order). */
  append(block: Embeddings): void {
    if (block.dim !== this.dim) throw new Error(`vector store: width ${block.dim}, expected ${this.dim}`);
    if (this.written + block.rows > this.rows) throw new Error('vector store: more rows than declared');
    const bytes = new Uint8Array(block.data.buffer, block.data.byteOffset, block.data.byteLength);
    let off = 0;
    try {
      while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off, this.written * this.dim * 4 + off);
    } catch (err) {
      throw this.failure(err);
    }
    this.written += block.rows;
  }

  read(start: number, count: number): Embeddings {
    if (start < 0 || start + count > this.written) throw new RangeError(`vector store: rows [${start}, ${start + count}) not written`);
    const out = new Embeddings(count, this.dim);
    const bytes = new Uint8Array(out.data.buffer);
    let off = 0;
    while (off < bytes.length) {
      const n = readSync(this.fd, bytes, off, bytes.length - off, start * this.dim * 4 + off);
      if (n <= 0) throw new Error('vector store: unexpected end of the temp file');
      off += n;
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
    rmSync(this.dir, { recursive: true, force: true });
    this.untrack();
  }
}
