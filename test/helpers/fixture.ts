// Locating ../shared/fixtures (present for developers and CI; absent elsewhere: the transformers-made
// golden checks skip, while the model tests run on in-repo random models and a generated tokenizer).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
// L2E_TEST_SHARED=/nowhere runs the suite as a bare clone would (without ../shared).
export const sharedDir = process.env['L2E_TEST_SHARED'] ? resolve(process.env['L2E_TEST_SHARED']) : resolve(repoRoot, '..', 'shared');
export const tinyMha = join(sharedDir, 'fixtures', 'tiny-mha');
export const hasTinyMha = existsSync(join(tinyMha, 'case.json'));
export const poolsDir = join(sharedDir, 'data', 'pools');
export const hasPools = existsSync(poolsDir);
export const skipNote = (what: string) => `(skipped: ${what} not found beside the repo at ../shared)`;

export interface FixtureCase {
  queries: string[];
  passages: string[];
  group_size: number;
  temperature: number;
  max_len: number;
  q_ids: number[][];
  p_ids: number[][];
  tokenizer_cases: { text: string; ids: number[] }[];
}

export function readCase(dir: string): FixtureCase {
  return JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as FixtureCase;
}

/** ‖a − b‖ / ‖b‖; NaN anywhere (or differing lengths) gives NaN, which fails every `<` bound. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return NaN;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num) / Math.sqrt(den);
}
