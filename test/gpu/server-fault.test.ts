// A server on the GPU after a kernel fails (emulation build: L2E_CUDA_EMULATE_FAIL makes one fail).
// Every later CUDA call of the process fails then, as the runtime documents, so every request would
// fail until a restart: /health must say so (500, "failed"), so that a liveness probe restarts it.
// Runs dist/ in a child process (the failure is sticky for its whole process).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasTinyMha, repoRoot, tinyMha } from '../helpers/fixture.js';
import { emulated } from './gpu-helpers.js';

const dist = join(repoRoot, 'dist', 'index.js');
const SCRIPT = `
const { EmbeddingModel, serve } = await import(process.argv[1]);
const m = await EmbeddingModel.load(process.argv[2], { device: 'cuda' });
const h = await serve(m, { port: 0 });
await h.ready;
const health = async () => { const r = await fetch(h.url + '/health'); return [r.status, await r.json()]; };
const out = [await health()];
const r = await fetch(h.url + '/v1/embeddings', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: ['apa khabar'] }) });
out.push(r.status, await health());
await h.close();
m.dispose();
console.log(JSON.stringify(out));
`;

describe.skipIf(!emulated || !hasTinyMha || !existsSync(dist))(`a server after a GPU fault ${emulated ? '' : '(skipped: needs the CUDA emulation build to make a kernel fail)'}`, () => {
  it('/health is ok until a kernel fails, then 500 "failed", saying to restart', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT, dist, tinyMha], {
      env: { ...process.env, L2E_CUDA_EMULATE_FAIL: 'rmsnorm_fwd_kernel' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const failure = 'kernel rmsnorm_fwd_kernel failed in block (0,0,0): fault injected by L2E_CUDA_EMULATE_FAIL';
    expect(JSON.parse(r.stdout)).toEqual([
      [200, { status: 'ok' }],
      500,
      [500, { status: 'failed', error: `the GPU is no longer usable: a CUDA kernel failed earlier in this process (${failure}): restart it to use the GPU` }],
    ]);
  });
});
