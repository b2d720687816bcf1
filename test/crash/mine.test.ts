// `l2e mine` with its vectors spilled to a temp file (--memory-mb 1), SIGKILLed at seeded random
// moments: the pairs file is either absent or the whole file an uninterrupted run writes, and the
// next run removes the vector store the killed one left in the temp folder.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killTimes, runL2e, trialCount, writeTopicCorpus } from './harness.js';

const N = 4000;
const DIM = 32;
let root = '';
let reference: Buffer;
let runMs = 0;
const args = (out: string) => [
  'mine', '--embeddings', join(root, 'vectors.npy'), '--texts', join(root, 'texts.txt'), '--input', join(root, 'texts.txt'),
  '--output', out, '--pos-threshold', '0.6', '--neg-threshold', '0.9', '--metric', 'cosine', '--memory-mb', '1', '--seed', '5', '--k', '8', '--random-negatives',
];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'l2e-crash-mine-'));
  writeTopicCorpus(root, N, DIM, 40, 7);
  mkdirSync(join(root, 'tmp'));
  const out = join(root, 'reference.jsonl');
  const t0 = Date.now();
  const r = await runL2e(args(out), { env: { TMPDIR: join(root, 'tmp') } });
  runMs = Date.now() - t0;
  expect(r.code, r.stderr).toBe(0);
  reference = readFileSync(out);
  expect(reference.length).toBeGreaterThan(0);
}, 300_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('l2e mine under kill -9', () => {
  it('leaves the whole pairs file or none, and the next run removes the killed one\'s vector store', async () => {
    const trials = trialCount(5);
    const times = killTimes(33, trials, Math.round(runMs * 0.3), runMs);
    const outcomes: string[] = [];
    for (const [i, t] of times.entries()) {
      const dir = join(root, `run-${i}`);
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp, { recursive: true });
      const out = join(dir, 'pairs.jsonl');
      const r = await runL2e(args(out), { env: { TMPDIR: tmp }, killAfterMs: t });
      const existed = existsSync(out);
      if (existed) expect(readFileSync(out).equals(reference), 'a pairs file that exists is whole').toBe(true);
      const stores = readdirSync(tmp);
      if (r.killed) {
        // a kill after the final rename leaves the whole output, which a rerun replaces only when asked
        const again = await runL2e(existed ? [...args(out), '--overwrite'] : args(out), { env: { TMPDIR: tmp } });
        expect(again.code, again.stderr).toBe(0);
      } else {
        expect(r.code, r.stderr).toBe(0);
      }
      expect(readFileSync(out).equals(reference)).toBe(true);
      expect(readdirSync(tmp)).toEqual([]);
      expect(readdirSync(dir).sort()).toEqual(['pairs.jsonl', 'tmp']);
      outcomes.push(`kill at ${t} ms: ${r.killed ? `killed, output ${existed ? 'whole' : 'absent'}` : 'finished'}${stores.length ? `, left ${stores.join(' ')}` : ''}`);
    }
    console.log(`mine kill trials (run ${runMs} ms):\n  ${outcomes.join('\n  ')}`);
  }, 600_000);
});
