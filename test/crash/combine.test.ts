// `l2e combine --shuffle` with a small memory budget (buckets on disk) SIGKILLed at seeded random
// moments: the output is either absent or the whole file an uninterrupted run writes, never a part
// of it, and the next run leaves no temp file or bucket folder of the killed one behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killTimes, runL2e, trialCount } from './harness.js';

let root = '';
const inputs: string[] = [];
let reference: Buffer;
let runMs = 0;
const args = (out: string) => ['combine', ...inputs, '--output', out, '--shuffle', '--seed', '3', '--memory-mb', '1'];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'l2e-crash-combine-'));
  for (let f = 0; f < 3; f++) {
    const rows: string[] = [];
    for (let i = 0; i < 12000; i++) rows.push(JSON.stringify({ query: `q ${f} ${i} ${'x'.repeat(i % 50)}`, pos: [`p ${i}`], neg: [`n ${i}`, `m ${i}`] }));
    inputs.push(join(root, `in-${f}.jsonl`));
    writeFileSync(inputs[f]!, rows.join('\n') + '\n');
  }
  const out = join(root, 'reference', 'all.jsonl');
  mkdirSync(join(root, 'reference'));
  const t0 = Date.now();
  const r = await runL2e(args(out));
  runMs = Date.now() - t0;
  expect(r.code, r.stderr).toBe(0);
  reference = readFileSync(out);
}, 300_000);
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('l2e combine under kill -9', () => {
  it('leaves the whole output or none, and the next run cleans up after the killed one', async () => {
    const trials = trialCount(6);
    const times = killTimes(21, trials, Math.round(runMs * 0.3), runMs);
    const outcomes: string[] = [];
    for (const [i, t] of times.entries()) {
      const dir = join(root, `run-${i}`);
      mkdirSync(dir);
      const out = join(dir, 'all.jsonl');
      const r = await runL2e(args(out), { killAfterMs: t });
      const existed = existsSync(out);
      if (existed) expect(readFileSync(out).equals(reference), 'an output that exists is whole').toBe(true);
      const left = readdirSync(dir).filter((n) => n !== 'all.jsonl');
      if (r.killed) {
        // a kill after the final rename leaves the whole output, which a rerun replaces only when asked
        const again = await runL2e(existed ? [...args(out), '--overwrite'] : args(out));
        expect(again.code, again.stderr).toBe(0);
      } else {
        expect(r.code, r.stderr).toBe(0);
      }
      expect(readFileSync(out).equals(reference)).toBe(true);
      expect(readdirSync(dir)).toEqual(['all.jsonl']);
      outcomes.push(`kill at ${t} ms: ${r.killed ? `killed, output ${existed ? 'whole' : 'absent'}` : 'finished'}${left.length ? `, left ${left.join(' ')}` : ''}`);
    }
    console.log(`combine kill trials (run ${runMs} ms):\n  ${outcomes.join('\n  ')}`);
  }, 600_000);
});
