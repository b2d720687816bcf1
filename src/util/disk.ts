// Disk space: free bytes where a folder will be (statfs), and the bytes a folder holds (sizes for
// people: util/format-bytes.ts). Training output and Hub downloads check them before they write.
import { existsSync, readdirSync, statfsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** Bytes free to an unprivileged writer on the file system that holds (or will hold) `dir`; null if unknown. */
export function freeBytes(dir: string): number | null {
  let d = resolve(dir);
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  try {
    const s = statfsSync(d);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** Bytes of the regular files under `dir`, recursively. */
export function folderBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += folderBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}
