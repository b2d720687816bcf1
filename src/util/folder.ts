// mkdir -p for outputs, said as the user can act on it. Node's recursive mkdir reports ENOENT where
// the truth is a read-only file system (EROFS) or a file in the way (ENOTDIR, EEXIST): here each
// missing level is made in turn, so the error is the one of the level that failed, named.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { danglingLink, fsReason, statOrNull } from './fs-error.js';

/**
 * Makes `dir` and the folders above it that are missing. On failure throws an Error whose message is
 * the reason, naming the level at fault when it is not `dir` itself (callers say what they were doing).
 */
export function makeFolder(dir: string): void {
  const target = resolve(dir);
  const where = (p: string): string => (p === target ? '' : `${p}: `);
  const missing: string[] = [];
  for (let p = target; ; p = dirname(p)) {
    const st = statOrNull(p); // links followed
    if (st) {
      if (!st.isDirectory()) throw new Error(`${where(p)}${st.isFile() ? 'it is a file, not a folder' : 'it is not a folder'}`);
      break;
    }
    const link = danglingLink(p);
    if (link !== null) throw new Error(`${where(p)}it is a link to ${link}, which does not exist (make that folder, or give another)`);
    missing.push(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing.reverse()) {
    try {
      mkdirSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && statOrNull(p)?.isDirectory()) continue; // made meanwhile
      throw new Error(`${where(p)}${fsReason(err)}`);
    }
  }
}
