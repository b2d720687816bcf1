// `l2e pull` killed with SIGKILL at random moments (fixed seed) against a slow local hub, then run
// again: a file in the snapshot is always whole and correct, the next run resumes the partial
// download (taking over the dead process's lock), and nothing is left behind. Two pulls of the same
// file at once: both succeed, the file is fetched once, and it is not corrupted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killTimes, runL2e, trialCount } from './harness.js';

const SHA = 'c0ffee0123456789abcdef0123456789abcdef01';
const weights = Buffer.alloc(3 << 20);
for (let i = 0; i < weights.length; i++) weights[i] = (i * 2654435761) >>> 24;
const config = Buffer.from('{"model_type": "llama"}\n');
const files: Record<string, Buffer> = { 'model.safetensors': weights, 'config.json': config };
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The git blob id the Hub lists for a plain file (the client checks it). */
const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const configBlob = gitBlobId(config);
const served: Record<string, number> = {};

let server: Server;
let endpoint = '';
let root = '';

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'l2e-crash-pull-'));
  server = createServer((req, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/api/models/org/name/revision/main')) {
      const siblings = [
        { rfilename: 'model.safetensors', size: weights.length, lfs: { sha256: sha256(weights), size: weights.length } },
        { rfilename: 'config.json', size: config.length, blobId: configBlob },
      ];
      res.end(JSON.stringify({ sha: SHA, siblings }));
      return;
    }
    const m = /^\/org\/name\/resolve\/[0-9a-f]+\/(.+)$/.exec(url);
    const body = m ? files[decodeURIComponent(m[1]!)] : undefined;
    if (!body) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = range ? Number(range[1]) : 0;
    res.writeHead(range ? 206 : 200, { 'content-length': body.length - from });
    // slowly: 24 KiB every 10 ms, so a kill lands mid-file
    let at = from;
    const name = m![1]!;
    const tick = setInterval(() => {
      const end = Math.min(body.length, at + (24 << 10));
      res.write(body.subarray(at, end));
      served[name] = (served[name] ?? 0) + end - at;
      at = end;
      if (at >= body.length) {
        clearInterval(tick);
        res.end();
      }
    }, 10);
    res.on('close', () => clearInterval(tick));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

/** killAfterMs from the spawn, or with fromFirstByte from the first byte of the weights this run receives. */
function pull(cache: string, killAfterMs?: number, fromFirstByte = false) {
  const before = served['model.safetensors'] ?? 0;
  const killClockStarts = fromFirstByte ? () => (served['model.safetensors'] ?? 0) > before : undefined;
  return runL2e(['pull', 'org/name', '--cache-dir', cache], { env: { HF_ENDPOINT: endpoint }, killAfterMs, killClockStarts });
}

/** Every blob that is not a partial or a lock is whole; every snapshot file is whole. */
function checkCache(cache: string): { partial: boolean } {
  const repo = join(cache, 'models--org--name');
  const blobs = join(repo, 'blobs');
  let partial = false;
  const wanted = new Set(Object.values(files).map((b) => b.toString('base64')));
  for (const name of existsSync(blobs) ? readdirSync(blobs) : []) {
    if (name.endsWith('.incomplete')) {
      partial = true;
      continue;
    }
    if (name.endsWith('.lock')) continue;
    expect(wanted.has(readFileSync(join(blobs, name)).toString('base64')), `blob ${name} is whole`).toBe(true);
  }
  const snap = join(repo, 'snapshots', SHA);
  for (const [name, body] of Object.entries(files)) {
    if (existsSync(join(snap, name))) expect(readFileSync(join(snap, name)).equals(body), `snapshot ${name} is whole`).toBe(true);
  }
  return { partial };
}

describe('l2e pull under kill -9', () => {
  it('never shows a partial file, and the next run resumes and cleans up', async () => {
    const cache = join(root, 'killed');
    const trials = trialCount(6);
    const times = killTimes(15, trials, 300, 2500);
    // every other trial counts from the first byte of the weights (a 3 MiB file sent over >= 1.3 s):
    // those land mid-download even when a loaded machine starts the process slowly
    const fromByte = killTimes(16, trials, 0, 1000);
    let midDownload = 0;
    for (const [i, t] of times.entries()) {
      const r = i % 2 === 1 ? await pull(cache, fromByte[i], true) : await pull(cache, t);
      if (!r.killed) expect(r.code, r.stderr).toBe(0);
      if (checkCache(cache).partial) midDownload++;
      // start over now and then, so kills land early in the download too
      if (!r.killed) rmSync(cache, { recursive: true, force: true });
    }
    // the kills did land while a file was half-fetched
    expect(midDownload).toBeGreaterThan(0);
    const done = await pull(cache);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout.trim()).toBe(join(cache, 'models--org--name', 'snapshots', SHA));
    checkCache(cache);
    const left = readdirSync(join(cache, 'models--org--name', 'blobs')).filter((n) => n.endsWith('.incomplete') || n.endsWith('.lock'));
    expect(left).toEqual([]);
    console.log(`pull kill trials: ${trials}, kill times ${times.map((t, i) => (i % 2 === 1 ? `${fromByte[i]} after the first byte` : t)).join(', ')} ms, ${midDownload} left a partial download that the next run resumed`);
  }, 300_000);

  it('two pulls of the same file at once: both succeed, one download, no corruption', async () => {
    const cache = join(root, 'twice');
    served['model.safetensors'] = 0;
    const [a, b] = await Promise.all([pull(cache), pull(cache)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    checkCache(cache);
    expect(readFileSync(join(a.stdout.trim(), 'model.safetensors')).equals(weights)).toBe(true);
    expect(served['model.safetensors']).toBe(weights.length);
    expect(readdirSync(join(cache, 'models--org--name', 'blobs')).sort()).toEqual([configBlob, sha256(weights)].sort());
  }, 120_000);
});
