// File-system errors for users: Node's message ("ENOENT: no such file or directory, open '/x/.y.tmp-1-a'")
// ends with the path the call used, which for atomic writes is a temp file the user never named.
// `fsReason` keeps the code and description and drops that path; callers name the user's own path.
// For a target that is a symbolic link, the folder that is missing is the one the link points into.
// `readFailure` says a failed read of an input the same way for every reader.
import { fstatSync, lstatSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** The file's stat (links followed), or null when there is none to read. */
export function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** Where `p` points when it is a symbolic link to nothing (or to nothing it can reach); else null. */
export function danglingLink(p: string): string | null {
  try {
    return statOrNull(p) === null && lstatSync(p).isSymbolicLink() ? readlinkSync(p) : null;
  } catch {
    return null;
  }
}

/** What the open descriptor `fd` reads or writes when that is a regular file (a `< file` or `> file` redirect); else null. */
export function regularFileOn(fd: number): Stats | null {
  try {
    const st = fstatSync(fd);
    return st.isFile() ? st : null;
  } catch {
    return null;
  }
}

/** The file's UTF-8 text, or null when it cannot be read (gone, or never there). */
export function readTextOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The folder a write of `target` goes into, as the user should read it: the folder of `target` as
 * they named it, or, when `target` is a link (`written` is where it ends), the folder it points into.
 */
export function targetFolder(target: string, written?: string): string {
  return written !== undefined && resolve(written) !== resolve(target) ? dirname(written) : dirname(target);
}

/** A failed read of the input `file` (as the user named it), said as its readers say it. */
export function readFailure(file: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new Error(`${file}: no such file`);
  if (code === 'EISDIR') return new Error(`${file}: it is a folder, not a file`);
  if (code === 'ENOTREG') return new Error(`${file}: ${(err as Error).message}`); // regular-file.ts
  return new Error(`${file}: could not read: ${fsReason(err)}`);
}

/** The reason of a failed file-system call on `target` (`written`: where a link of that name ends). */
export function fsReason(err: unknown, target?: string, written?: string): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT' && target !== undefined) return `the folder ${targetFolder(target, written)} does not exist`;
  if (e.code && e.syscall) return err.message.replace(/, [a-z]+ '[\s\S]*$/, '');
  return err.message;
}

/**
 * What keeps `dir` from being a folder a command creates or writes into: it, or the nearest of its
 * parents that exists, when that is not a folder; null when nothing is in the way.
 */
export function fileInTheWay(dir: string): string | null {
  for (let p = dir; ; p = dirname(p)) {
    const st = statOrNull(p);
    if (st !== null) return st.isDirectory() ? null : p;
    if (dirname(p) === p) return null;
  }
}

/** "--output out is a file, not a folder" / "--log a/b/log.jsonl: a is a file, not a folder", or null. */
export function notAFolder(name: string, dir: string, shown: string = dir): string | null {
  const file = fileInTheWay(dir);
  if (file === null) return null;
  return file === shown ? `${name} ${shown} is a file, not a folder` : `${name} ${shown}: ${file} is a file, not a folder`;
}
