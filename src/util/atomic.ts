// Outputs are written atomically: into a temp file beside the target, fsync'd, then renamed over it,
// so an interrupted or failed write never leaves a half-written file in the target's place.
//
// Only a regular file (or a path that does not exist yet) is replaced that way. A symbolic link is
// followed and the file it ends at is written atomically, so the link stays a link. FIFOs, devices,
// sockets and the /proc/self/fd/N links behind /dev/stdout are written through (opened for appending,
// as a shell's `>>` would): replacing them would put a regular file where a pipe or /dev/null was.
import { closeSync, fsyncSync, lstatSync, openSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { createWriteStream, type WriteStream } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fsReason } from './fs-error.js';
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

/** How a target is written: `atomic` at `path` (temp + rename), or `through` by opening `path`. */
export interface WriteMode {
  kind: 'atomic' | 'through';
  path: string;
}

/** An open file descriptor's magic link (/dev/stdout → /proc/self/fd/1): never resolved, never replaced. */
const FD_LINK = /^\/(?:proc\/(?:self|thread-self|\d+)\/fd|dev\/fd)\/\d+$/;

/** Where and how `target` must be written (follows symbolic links; a folder is an error). */
export function writeModeFor(target: string): WriteMode {
  let path = resolve(target);
  for (let hops = 0; hops <= 40; hops++) {
    if (process.platform === 'linux' && FD_LINK.test(path)) return { kind: 'through', path };
    let st;
    try {
      st = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'atomic', path };
      throw err;
    }
    if (st.isFile()) return { kind: 'atomic', path };
    if (st.isDirectory()) throw new Error('it is a folder');
    if (!st.isSymbolicLink()) return { kind: 'through', path }; // FIFO, device, socket
    const link = readlinkSync(path);
    // a relative link is relative to the folder it lives in (itself perhaps reached through links)
    path = isAbsolute(link) ? link : resolve(realpathSync(dirname(path)), link);
  }
  throw new Error('too many levels of symbolic links');
}

/** Makes a rename durable; best effort (not every platform can fsync a folder). */
function syncFolder(folder: string): void {
  try {
    const fd = openSync(folder, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // ignored: durability of the folder entry is an optimisation, the data itself was fsynced
  }
}

function failure(target: string, err: unknown, tmp: string | null, written?: string): Error {
  // the temp file's name means nothing to the user: fsReason drops the path Node's message ends with
  let msg = fsReason(err, target, written);
  if (tmp) msg = msg.replaceAll(tmp, target);
  return new Error(`could not write ${target}: ${msg}`);
}

/** Writes `data` to `target` atomically (temp file + fsync + rename), or through for pipes and devices. */
export function writeFileAtomic(target: string, data: string | Uint8Array | Uint8Array[]): void {
  let mode: WriteMode;
  try {
    mode = writeModeFor(target);
  } catch (err) {
    throw failure(target, err, null);
  }
  if (mode.kind === 'atomic') removeStaleTemps(mode.path);
  const tmp = mode.kind === 'atomic' ? tempPathFor(mode.path) : null;
  let fd: number | undefined;
  try {
    fd = openSync(tmp ?? mode.path, tmp ? 'w' : 'a');
    const parts = Array.isArray(data) ? data : [data];
    for (const part of parts) {
      const buf = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    if (tmp) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (tmp) {
      renameSync(tmp, mode.path);
      syncFolder(dirname(mode.path));
    }
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    if (tmp) rmSync(tmp, { force: true });
    throw failure(target, err, tmp, mode.path);
  }
}

/**
 * A streaming writer whose output appears at `target` only when `commit()` succeeds; `abort()`
 * (or a failure) removes the temp file and leaves any previous file untouched. Pipes and devices
 * (see writeModeFor) are written through as the chunks come, so there `abort()` cannot take back
 * what was already written.
 */
export class AtomicWriter {
  /** The temp file, or null when writing through to a pipe or device. */
  readonly tmp: string | null;
  /** Where the data goes: the target itself, or the file a link of that name ends at. */
  readonly path: string;
  private readonly stream: WriteStream;
  private failed: Error | undefined;

  constructor(readonly target: string) {
    let mode: WriteMode;
    try {
      mode = writeModeFor(target);
    } catch (err) {
      throw failure(target, err, null);
    }
    this.path = mode.path;
    if (mode.kind === 'atomic') removeStaleTemps(mode.path);
    this.tmp = mode.kind === 'atomic' ? tempPathFor(mode.path) : null;
    this.stream = this.tmp ? createWriteStream(this.tmp) : createWriteStream(mode.path, { flags: 'a' });
    this.stream.on('error', (e) => {
      this.failed = e;
    });
  }

  /** Writes a chunk, waiting for the stream to drain when its buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    if (this.failed) throw failure(this.target, this.failed, this.tmp, this.path);
    if (!this.stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.stream.off('error', onError);
          resolve();
        };
        const onError = (e: Error): void => {
          this.stream.off('drain', onDrain);
          reject(failure(this.target, e, this.tmp, this.path));
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
      throw failure(this.target, e, this.tmp, this.path);
    });
    if (this.failed) {
      this.abortSync();
      throw failure(this.target, this.failed, this.tmp, this.path);
    }
    if (!this.tmp) return;
    const fd = openSync(this.tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(this.tmp, this.path);
    syncFolder(dirname(this.path));
  }

  abort(): void {
    this.stream.destroy();
    this.abortSync();
  }

  private abortSync(): void {
    if (this.tmp) rmSync(this.tmp, { force: true });
  }
}
