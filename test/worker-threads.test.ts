// The addon in several JS environments at once (the main thread and worker threads, each loading it):
// each environment has its own NativeModel constructor (native/addon/model_binding.cpp). A process-wide
// one was overwritten by each load, so training in the main thread after a worker had loaded the addon
// aborted the process (a handle of another environment) or failed with "expected a NativeModel".
// Run in a child, on dist/, so that an abort fails the test rather than the run.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir, repoRoot, writeTinyModel } from './helpers/tinyModel.js';

const distIndex = join(repoRoot, 'dist', 'index.js');
const hasDist = existsSync(distIndex);

const SCRIPT = `
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
const { EmbeddingModel, Trainer } = await import(${JSON.stringify(distIndex)});
const rows = Array.from({ length: 8 }, (_, i) => ({ query: 'soalan ' + i, pos: ['jawapan ' + i], neg: ['lain ' + (i + 1)] }));
const quiet = { onNotice: () => {} };
if (!isMainThread) {
  const m = await EmbeddingModel.load(workerData.dir);
  await new Trainer(m, { maxSteps: 1, batchSize: 4 }).fit(rows, quiet);
  parentPort.postMessage((await m.encode(['a'])).rows);
  if (workerData.stay) await new Promise((r) => parentPort.once('message', r));
  m.dispose();
} else {
  const [dir, mode] = process.argv.slice(2);
  const m = await EmbeddingModel.load(dir);
  const w = new Worker(new URL(import.meta.url), { workerData: { dir, stay: mode === 'alive' } });
  await new Promise((r) => w.once('message', r));
  if (mode === 'exited') await new Promise((r) => w.once('exit', r));
  const r = await new Trainer(m, { maxSteps: 2, batchSize: 4 }).fit(rows, quiet);
  const e = await m.encode(['b', 'c']);
  if (mode === 'alive') { w.postMessage('go'); await new Promise((r) => w.once('exit', r)); }
  console.log('ok', r.step, e.rows);
}
`;

describe.skipIf(!hasDist)(`the addon in worker threads ${hasDist ? '' : '(skipped: dist/ not built; npm run build:ts)'}`, () => {
  it.each(['alive', 'exited'])('a worker loads, trains and encodes; the main thread then trains and encodes (worker %s)', (mode) => {
    const dir = makeTempDir();
    writeTinyModel(join(dir, 'model'), { seed: 4 });
    const script = join(dir, 'threads.mjs');
    writeFileSync(script, SCRIPT);
    const r = spawnSync(process.execPath, [script, join(dir, 'model'), mode], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).not.toMatch(/FATAL|Abort/);
    expect({ status: r.status, signal: r.signal, out: r.stdout.trim() }).toEqual({ status: 0, signal: null, out: 'ok 2 2' });
  });
});
