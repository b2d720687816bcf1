// A folder's state for "nothing was written" checks.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every file and folder under `dir` with its size, inode and modification time: any write changes it. */
export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      out.push(`${relative(dir, p)} ${st.size} ${st.ino} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}
