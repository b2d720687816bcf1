// The kept inputs of each fuzz target: test/fuzz/corpus/<target>/ (inputs that reached new coverage,
// kept with `npm run fuzz -- --keep`) and test/fuzz/crashes/<target>/ (every finding, kept as a
// regression case once fixed). File names are the input's sha1, so an input is kept once.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fuzzDir = dirname(fileURLToPath(import.meta.url));

export type Kind = 'corpus' | 'crashes';

export function keptInputs(kind: Kind, target: string): { file: string; data: Uint8Array }[] {
  const dir = join(fuzzDir, kind, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && !n.endsWith('.md'))
    .sort()
    .map((n) => ({ file: join(dir, n), data: new Uint8Array(readFileSync(join(dir, n))) }));
}

export function keepInput(kind: Kind, target: string, data: Uint8Array): string {
  const dir = join(fuzzDir, kind, target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, createHash('sha1').update(data).digest('hex').slice(0, 16));
  if (!existsSync(file)) writeFileSync(file, data);
  return file;
}
