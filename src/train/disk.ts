// Disk space for training output: free bytes where a folder will be (statfs), the bytes a folder
// holds, and sizes for people (decimal units, as `df -H` and file managers show them).
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

/** 950 B, 12.3 kB, 4.00 MB, 121 GB. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}
