// A worker thread terminated (worker.terminate()) while an encode or a knn of ours runs in it: the
// native work finishes on its thread and then finds its JS environment gone. Creating the result there
// threw a Napi::Error that could not be thrown into JS, and the process aborted (SIGABRT) with the
// worker; the addon is built with NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS (binding.gyp, CMakeLists.txt)
// so that the result is dropped with the environment. The real package (dist/) in a child process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './helpers/fixture.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

let dir = '';
beforeAll(() => {
  dir = makeTempDir();
  writeTinyModel(join(dir, 'model'), { seed: 3 });
}, 120_000);
afterAll(() => removeTempDirs());

function run(mode: 'encode' | 'knn'): { status: number | null; signal: NodeJS.Signals | null; out: string; err: string } {
  const lib = pathToFileURL(join(repoRoot, 'dist', 'index.js')).href;
  const body = join(dir, `worker-${mode}.mjs`);
  writeFileSync(
    body,
    `import { EmbeddingModel, Embeddings, knn } from ${JSON.stringify(lib)};
import { parentPort } from 'node:worker_threads';
if (${JSON.stringify(mode)} === 'knn') {
  const q = new Embeddings(2000, 64); q.data.fill(1);
  const p = new Embeddings(50000, 64); p.data.fill(0.5);
  void knn(q, p, 3);
} else {
  const m = await EmbeddingModel.load(${JSON.stringify(join(dir, 'model'))});
  const texts = Array.from({ length: 2000 }, (_, i) => 'teks yang agak panjang dengan nombor '.repeat(40) + i);
  let told = false; // once the first native batch runs, not while the texts are tokenised
  void m.encode(texts, { batchSize: 256, onBatch: () => { if (!told) parentPort.postMessage('busy'); told = true; } });
}
if (${JSON.stringify(mode)} === 'knn') parentPort.postMessage('busy');
`,
  );
  const main = `import { Worker } from 'node:worker_threads';
const w = new Worker(${JSON.stringify(body)});
await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
await new Promise((r) => setTimeout(r, 30));
await w.terminate();
console.log('main thread alive');
`;
  const mainFile = join(dir, `main-${mode}.mjs`);
  writeFileSync(mainFile, main);
  const r = spawnSync(process.execPath, [mainFile], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

describe('a worker thread terminated while our native work runs in it', () => {
  it.each(['knn', 'encode'] as const)('%s: the process lives on', (mode) => {
    for (let trial = 0; trial < 3; trial++) {
      const r = run(mode);
      expect({ status: r.status, signal: r.signal, out: r.out }, r.err).toEqual({ status: 0, signal: null, out: 'main thread alive\n' });
    }
  }, 120_000);
});
