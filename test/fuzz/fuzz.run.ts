// `npm run fuzz -- --seconds N [--target NAME] [--seed S] [--keep]` (scripts/fuzz.mjs): runs every
// target for N seconds in this vitest worker. A finding fails the run and is written to
// test/fuzz/crashes/<target>/; with --keep, inputs that reached new coverage join the corpus.
// Before each input runs it is written to $L2E_FUZZ_STATE/<target>.current, so when native code
// kills the process, scripts/fuzz.mjs finds the input and keeps it as a crash.
import { afterAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzz } from './engine.js';
import { keepInput, keptInputs } from './corpus.js';
import { closeHubServer, removeScratch, targets } from './targets.js';

const seconds = Number(process.env['L2E_FUZZ_SECONDS'] ?? '0');
const only = process.env['L2E_FUZZ_TARGET'] ?? '';
const seed = Number(process.env['L2E_FUZZ_SEED'] ?? '1');
const keep = process.env['L2E_FUZZ_KEEP'] === '1';
const state = process.env['L2E_FUZZ_STATE'] ?? '';
const report = process.env['L2E_FUZZ_REPORT'] ?? '';
const named = only === '' ? [] : only.split(',');
const unknown = named.filter((n) => !targets.some((t) => t.name === n));
const selected = targets.filter((x) => only === '' || named.includes(x.name));
// this process's share when scripts/fuzz.mjs runs several at once (--jobs): "i/n", every n-th target from the i-th
const [shard, shards] = (process.env['L2E_FUZZ_SHARD'] ?? '0/1').split('/').map(Number) as [number, number];
const mine = selected.filter((_, i) => i % shards === shard);

afterAll(async () => {
  await closeHubServer();
  removeScratch();
});

const stats: Record<string, unknown> = {};

// a --target that names no target fails the run (in one process of several), naming the targets
describe.runIf(unknown.length > 0 && shard === 0)('fuzz --target', () => {
  it('names fuzz targets', () => {
    expect.fail(`fuzz: no target named ${unknown.join(', ')}; the targets: ${targets.map((t) => t.name).join(', ')}`);
  });
});

describe.runIf(seconds > 0 && unknown.length === 0 && mine.length > 0)('fuzz', () => {
  for (const t of mine) {
    it(t.name, async () => {
      const current = state ? join(state, `${t.name}.current`) : undefined;
      const corpus = [...keptInputs('corpus', t.name), ...keptInputs('crashes', t.name)].map((k) => k.data);
      const s = await fuzz(t, {
        seconds,
        seed,
        corpus,
        currentFile: current,
        onNewInput: keep ? (d) => keepInput('corpus', t.name, d) : undefined,
      });
      if (current) rmSync(current, { force: true });
      const kept = s.findings.map((f) => keepInput('crashes', t.name, f.input));
      stats[t.name] = { execs: s.execs, corpus: s.corpus, features: s.features, findings: s.findings.length };
      if (report) writeFileSync(report, JSON.stringify(stats, null, 2) + '\n');
      console.log(`fuzz ${t.name}: ${s.execs} execs in ${seconds} s, corpus ${s.corpus}, ${s.features} coverage features, ${s.findings.length} findings`);
      expect(s.findings.map((f, i) => `${kept[i]}: ${f.reason}`)).toEqual([]);
    }, (seconds + 120) * 1000);
  }
});
