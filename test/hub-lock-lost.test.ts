// A pull whose blob lock another process took over (another host's pull, after the lock went untouched
// for the stale time) stops writing the blob's .incomplete, now that process's, and says why; it
// used to go on writing into the same file. The stale time is shortened here (300 ms) for the test.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { snapshotDownload } from '../src/hub/download.js';
import { makeTempDir } from './helpers/tinyModel.js';

vi.mock('../src/hub/blob-lock.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/hub/blob-lock.js')>();
  return { ...actual, lockBlob: (blob: string, what: string, onWait: (holder: number, lock: string) => void) => actual.lockBlob(blob, what, onWait, 300) };
});

describe('a blob lock taken over while downloading', () => {
  const body = randomBytes(2_000_000);
  const sha = createHash('sha256').update(body).digest('hex');
  // the file trickles out, 50 kB every 20 ms: about 0.8 s in all
  const server = http.createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    if (path.startsWith('/api/')) {
      const siblings = [{ rfilename: 'model.safetensors', size: 134, lfs: { sha256: sha, size: body.length, pointerSize: 134 } }];
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ id: 'org/slow', sha: 'c'.repeat(40), siblings }));
    }
    res.writeHead(200, { 'content-length': body.length });
    let at = 0;
    const tick = setInterval(() => {
      if (res.destroyed || at >= body.length) return void clearInterval(tick);
      res.write(body.subarray(at, (at += 50_000)));
      if (at >= body.length) res.end();
    }, 20);
  });
  const ready = new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  afterAll(() => void server.close());

  it('stops the download with a message naming the lock, and leaves the new holder its lock', async () => {
    await ready;
    const cacheDir = makeTempDir();
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const lock = join(cacheDir, 'models--org--slow', 'blobs', `${sha}.lock`);
    const pulling = snapshotDownload('org/slow', { endpoint, cacheDir });
    await new Promise((r) => setTimeout(r, 200)); // the download under way
    expect(existsSync(lock)).toBe(true);
    writeFileSync(lock, '1 another-host 22\n'); // another host's pull took it over
    await expect(pulling).rejects.toThrow(
      `file model.safetensors of model repo org/slow: another process took this download over (its lock ${lock} was left untouched for 2 minutes, or removed): ` +
        'this pull stopped writing it; pull again to use what that process fetches',
    );
    expect(readFileSync(lock, 'utf8')).toBe('1 another-host 22\n');
    expect(existsSync(join(cacheDir, 'models--org--slow', 'blobs', sha))).toBe(false);
  });
});
