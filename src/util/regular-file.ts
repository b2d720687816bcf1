// Model files (config.json, tokenizer.json, safetensors headers and indexes) are read only from regular
// files. A FIFO opened for reading blocks until a writer comes, inside a synchronous open where no
// signal handler runs (Ctrl-C could not stop it); a device such as /dev/zero never ends (read until
// memory ran out, then an abort). The open does not block (O_NONBLOCK), and the file's type is checked
// on the open descriptor, so what is checked is what is read.
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';

/** What a path that is neither a regular file nor a folder is, as messages say it ("it is a pipe"). */
export function specialFileKind(st: Stats): string {
  if (st.isFIFO()) return 'a pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * Opens `file` for reading, refusing anything but a regular file: a folder gives EISDIR, as a read of
 * one would, anything else ENOTREG; open's own errors (ENOENT, EACCES) are thrown as they are. Every
 * one of them goes to the callers' readFailure (fs-error.ts).
 */
export function openRegularFile(file: string): number {
  const fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read`), { code: 'EISDIR', syscall: 'read' });
    // ENOTREG: our own code, for readFailure (fs-error.ts), which puts the file's name before it
    if (!st.isFile()) throw Object.assign(new Error(`it is ${specialFileKind(st)}, not a regular file`), { code: 'ENOTREG' });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * The UTF-8 text of the regular file `file` (see openRegularFile), without the byte order mark some
 * Windows editors put first (JSON.parse refuses it; it is no part of the text).
 */
export function readRegularFileText(file: string): string {
  const fd = openRegularFile(file);
  try {
    const text = readFileSync(fd, 'utf8');
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  } finally {
    closeSync(fd);
  }
}
