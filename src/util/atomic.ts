// Outputs are written atomically: into a temp file beside the target, fsync'd, then renamed over it,
// so an interrupted or failed write never leaves a half-written file in the target's place.
//
// Only a regular file (or a path that does not exist yet) is replaced that way. A symbolic link is
// followed and the file it ends at is written atomically, so the link stays a link, unless it ends in
// a Hugging Face cache (a blob, or a snapshot's copy): a blob is named by its content's hash and shared
// by every snapshot that links to it, so there the link itself is replaced by the new file and the
// cache keeps its models (a model folder of links into the cache, as huggingface_hub's local-dir
// downloads made, saved over with --overwrite, changed the cached model for every user of it). A
// write into a snapshot's folder itself is refused. FIFOs, devices,
// sockets and the /proc/self/fd/N links behind /dev/stdout are written through (opened for appending,
// as a shell's `>>` would): replacing them would put a regular file where a pipe or /dev/null was.
// A link to one of this process's own descriptors (/dev/stdout, /dev/fd/N) open on a regular file is
// written through that descriptor itself, not a new open of it: with stdout redirected to a file
// (`> out.jsonl`), a second open has an offset of its own, and what went through fd 1 (a summary)
// overwrote the data.
//
// A write told not to replace (PublishOptions.replace false: a command's output without --overwrite)
// publishes by link(2), which fails when the name exists, so the check and the publish are one step: a
// file that appeared at the target after the command checked it (checkOutput) is kept, and the output
// goes to the first free `<target>.new`, `.new-2`, ..., which the error names. Nothing is lost.
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createWriteStream, type WriteStream } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { cacheSnapshotRepo, isCacheContent } from '../hub/cache.js';
import { fsReason, regularFileOn } from './fs-error.js';
import { isNamedPipe, openPipeForWriting } from './pipe.js';
import { processAlive } from './process.js';
import { trackScratch } from './scratch.js';

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

/** How a target is written: `atomic` at `path` (temp + rename), or `through` by opening `path`, or through `fd`. */
export interface WriteMode {
  kind: 'atomic' | 'through';
  path: string;
  /** `path` is a link to this descriptor of this process: written through it, never opened or closed. */
  fd?: number;
}

/** An open file descriptor's magic link (/dev/stdout → /proc/self/fd/1): never resolved, never replaced. */
const FD_LINK = /^\/(?:proc\/(self|thread-self|\d+)\/fd|dev\/fd)\/(\d+)$/;

/** The descriptor of this process an FD_LINK path names (/proc/self/fd/1: 1); else undefined. */
export function namedDescriptor(path: string): number | undefined {
  const m = FD_LINK.exec(path);
  if (!m) return undefined;
  const owner = m[1];
  return owner === undefined || owner === 'self' || owner === 'thread-self' || Number(owner) === process.pid ? Number(m[2]) : undefined;
}

/**
 * The descriptor an FD_LINK path names when it is one of this process's and open on a regular file
 * (the case of a shared offset); else undefined. A pipe or terminal is opened anew, as before: Node may
 * have made its own stdout or stderr non-blocking, where a write through it can fail with EAGAIN.
 */
function ownDescriptor(path: string): number | undefined {
  const fd = namedDescriptor(path);
  return fd !== undefined && regularFileOn(fd) !== null ? fd : undefined;
}

/** Where and how `target` must be written (follows symbolic links; a folder is an error). */
export function writeModeFor(target: string): WriteMode {
  let path = resolve(target);
  // a folder of a cache snapshot (perhaps reached through a link): its entries are the cache's own
  const repo = cacheSnapshotRepo(dirname(path));
  if (repo !== null) throw new Error(`it is in the Hugging Face cache's snapshot of ${repo}, whose files the cache shares; write it elsewhere`);
  for (let hops = 0; hops <= 40; hops++) {
    if (process.platform === 'linux' && FD_LINK.test(path)) return { kind: 'through', path, fd: ownDescriptor(path) };
    let st;
    try {
      st = lstatSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'atomic', path };
      throw err;
    }
    if (st.isFile()) return { kind: 'atomic', path: hops > 0 && isCacheContent(realpathSync(path)) ? resolve(target) : path };
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

/** How a write treats a file found at its target when it renames its temp file into place. */
export interface PublishOptions {
  /** Replace it (the default). With false it is kept and the output goes to a `.new` name (see above). */
  replace?: boolean;
}

/** A write with `replace: false` found a file at its target: that file was kept, the output is at `path`. */
export class OutputMovedError extends Error {
  override name = 'OutputMovedError';
  constructor(
    readonly target: string,
    readonly path: string,
  ) {
    super(`could not write ${target}: a file of that name appeared while this ran and was kept; the output is in ${path}`);
  }
}

/** link(2)'s errors that mean the filesystem makes no hard links (FAT, some FUSE and network mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** Moves `from` to `to` unless `to` exists (a dangling link counts); false when it does. */
function moveNoClobber(from: string, to: string): boolean {
  try {
    linkSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return false;
    if (!NO_HARD_LINKS.has(code)) throw err;
    // no hard links here: the check and the rename are two steps, microseconds apart
    try {
      lstatSync(to);
      return false;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    renameSync(from, to);
    return true;
  }
  unlinkSync(from);
  return true;
}

/** Puts the finished temp file `tmp` at `path` (see PublishOptions), then makes that durable. */
function publish(tmp: string, target: string, path: string, options: PublishOptions): void {
  if (options.replace ?? true) renameSync(tmp, path);
  else if (!moveNoClobber(tmp, path)) {
    for (let i = 1; ; i++) {
      const other = i === 1 ? `${path}.new` : `${path}.new-${i}`;
      if (moveNoClobber(tmp, other)) {
        syncFolder(dirname(path));
        throw new OutputMovedError(target, other);
      }
    }
  }
  syncFolder(dirname(path));
}

function failure(target: string, err: unknown, tmp: string | null, written?: string): Error {
  if (err instanceof OutputMovedError) return err;
  // the temp file's name means nothing to the user: fsReason drops the path Node's message ends with
  let msg = fsReason(err, target, written);
  if (tmp) msg = msg.replaceAll(tmp, target);
  return new Error(`could not write ${target}: ${msg}`);
}

/**
 * Opens the temp file that will replace `path`, with `path`'s permissions when it exists: a file the
 * user made private (600) stays private when it is replaced, not the umask's 644.
 */
function openTemp(tmp: string, path: string): number {
  const fd = openSync(tmp, 'w');
  const old = statSync(path, { throwIfNoEntry: false });
  if (old?.isFile()) {
    try {
      fchmodSync(fd, old.mode & 0o7777);
    } catch (err) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw err;
    }
  }
  return fd;
}

/** Writes `data` to `target` atomically (temp file + fsync + rename), or through for pipes and devices. */
export function writeFileAtomic(target: string, data: string | Uint8Array | Uint8Array[], options: PublishOptions = {}): void {
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
    fd = tmp ? openTemp(tmp, mode.path) : (mode.fd ?? openSync(mode.path, 'a'));
    const parts = Array.isArray(data) ? data : [data];
    for (const part of parts) {
      const buf = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    if (tmp) fsyncSync(fd);
    if (fd !== mode.fd) closeSync(fd);
    fd = undefined;
    if (tmp) publish(tmp, target, mode.path, options);
  } catch (err) {
    if (fd !== undefined && fd !== mode.fd) closeSync(fd);
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
  /** Undefined while a named pipe waits for its reader (`opening`). */
  private stream: WriteStream | undefined;
  private opening: Promise<WriteStream> | undefined;
  private aborted = false;
  private readonly abandoned = new AbortController(); // abort() ends a pipe's wait for its reader
  private failed: Error | undefined;
  private untrack: () => void = () => {};

  constructor(
    readonly target: string,
    private readonly options: PublishOptions = {},
  ) {
    let mode: WriteMode;
    try {
      mode = writeModeFor(target);
    } catch (err) {
      throw failure(target, err, null);
    }
    this.path = mode.path;
    if (mode.kind === 'atomic') removeStaleTemps(mode.path);
    this.tmp = mode.kind === 'atomic' ? tempPathFor(mode.path) : null;
    if (this.tmp) {
      // opened here, not by the stream in the background: an abort() right after finds the file to
      // remove (a stream still opening created it after the removal), and an unwritable folder fails now
      let fd: number;
      try {
        fd = openTemp(this.tmp, this.path);
      } catch (err) {
        throw failure(target, err, this.tmp, this.path);
      }
      this.untrack = trackScratch(this.tmp);
      this.attach(createWriteStream(this.tmp, { fd }));
    } else if (mode.fd !== undefined) {
      this.attach(createWriteStream('', { fd: mode.fd, autoClose: false })); // an own descriptor, as it is
    } else if (isNamedPipe(mode.path)) {
      // it waits for its reader (util/pipe.ts): the first write or the commit waits with it
      this.opening = openPipeForWriting(mode.path, { signal: this.abandoned.signal }).then((fd) => this.attach(createWriteStream('', { fd })));
      this.opening.catch((e: unknown) => (this.failed = e instanceof Error ? e : new Error(String(e))));
    } else {
      this.attach(createWriteStream(mode.path, { flags: 'a' })); // a device
    }
  }

  private attach(stream: WriteStream): WriteStream {
    this.stream = stream;
    stream.on('error', (e) => {
      this.failed = e;
    });
    if (this.aborted) stream.destroy(); // a pipe whose reader came after abort()
    return stream;
  }

  /** The stream, once a named pipe has its reader. */
  private async ready(): Promise<WriteStream> {
    try {
      return this.stream ?? (await this.opening!);
    } catch (err) {
      throw failure(this.target, err, this.tmp, this.path);
    }
  }

  /** Writes a chunk, waiting for the stream to drain when its buffer is full. */
  async write(chunk: string | Uint8Array): Promise<void> {
    const stream = await this.ready();
    if (this.failed) throw failure(this.target, this.failed, this.tmp, this.path);
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          stream.off('error', onError);
          resolve();
        };
        const onError = (e: Error): void => {
          stream.off('drain', onDrain);
          reject(failure(this.target, e, this.tmp, this.path));
        };
        stream.once('drain', onDrain);
        stream.once('error', onError);
      });
    }
  }

  async commit(): Promise<void> {
    const stream = await this.ready();
    await new Promise<void>((resolve, reject) => {
      stream.end((err?: Error | null) => (err ? reject(err) : resolve()));
    }).catch((e: unknown) => {
      this.abortSync();
      throw failure(this.target, e, this.tmp, this.path);
    });
    if (this.failed) {
      this.abortSync();
      throw failure(this.target, this.failed, this.tmp, this.path);
    }
    if (!this.tmp) return;
    try {
      const fd = openSync(this.tmp, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      publish(this.tmp, this.target, this.path, this.options);
      this.untrack();
    } catch (err) {
      this.abortSync();
      throw failure(this.target, err, this.tmp, this.path);
    }
  }

  abort(): void {
    this.aborted = true;
    this.abandoned.abort(new Error('the output was abandoned'));
    this.stream?.destroy();
    this.abortSync();
  }

  private abortSync(): void {
    if (this.tmp) rmSync(this.tmp, { force: true });
    this.untrack();
  }
}
