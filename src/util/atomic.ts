// Outputs are written atomically: into a temp file beside the target, fsync'd, then renamed over it,
// so an interrupted or failed write never leaves a half-written file in the target's place.
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createWriteStream, type WriteStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { processAlive } from './process.js';

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}`);
}

/** Removes the temp files of `target` that a killed writer left (a tempPathFor name whose pid is gone). */
export function removeStaleTemps(target: string): void {
  const prefix = `.${basename(target)}.tmp-`;
  let names: string[];
  try {
    names = readdirSync(dirname(target));
  } catch {
    return; // no folder yet: nothing stale
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = /^(\d+)-[0-9a-z]+$/.exec(name.slice(prefix.length))?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) rmSync(join(dirname(target), name), { force: true });
  }
}

/** Writes `data` to `target` atomically (temp file + fsync + rename). */
export function writeFileAtomic(target: string, data: string | Uint8Array | Uint8Array[]): void {
  removeStaleTemps(target);
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    const parts = Array.isArray(data) ? data : [data];
    for (const part of parts) {
      const buf = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`could not write ${target}: ${msg}`);
  }
}

/**
 * A streaming writer whose output appears at `target` only when `commit()` succeeds; `abort()`
 * (or a failure) removes the temp file and leaves any previous file untouched.
 */
export class AtomicWriter {
  readonly tmp: string;
  private readonly stream: WriteStream;
  private failed: Error | undefined;

  constructor(readonly target: string) {
    removeStaleTemps(target);
    this.tmp = tempPathFor(target);
    this.stream = createWriteStream(this.tmp);
    this.stream.on('error', (e) => {
      this.failed = e;
    });
  }

  /** Writes a chunk, waiting for the stream to drain when its buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    if (this.failed) throw new Error(`could not write ${this.target}: ${this.failed.message}`);
    if (!this.stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.stream.off('error', onError);
          resolve();
        };
        const onError = (e: Error): void => {
          this.stream.off('drain', onDrain);
          reject(new Error(`could not write ${this.target}: ${e.message}`));
        };
        this.stream.once('drain', onDrain);
        this.stream.once('error', onError);
      });
    }
  }

  async commit(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.stream.end((err?: Error | null) => (err ? reject(err) : resolve()));
    }).catch((e: unknown) => {
      this.abortSync();
      throw new Error(`could not write ${this.target}: ${e instanceof Error ? e.message : String(e)}`);
    });
    if (this.failed) {
      this.abortSync();
      throw new Error(`could not write ${this.target}: ${this.failed.message}`);
    }
    const fd = openSync(this.tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(this.tmp, this.target);
  }

  abort(): void {
    this.stream.destroy();
    this.abortSync();
  }

  private abortSync(): void {
    rmSync(this.tmp, { force: true });
  }
}
