// A Hub download on a disk too small for it (a tmpfs, mounted when the test runs as root): refused
// before anything is fetched, saying how much it needs and how much is free; and when the free space
// cannot be known, the full disk met while writing is said as such, the part fetched kept to go on from.
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { snapshotDownload } from '../src/hub/download.js';
import { freeBytes } from '../src/util/disk.js';
import { makeTempDir } from './helpers/tinyModel.js';

vi.mock('../src/util/disk.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/util/disk.js')>();
  return { ...actual, freeBytes: vi.fn(actual.freeBytes) };
});

const canRun = process.platform === 'linux' && process.getuid?.() === 0;

describe.skipIf(!canRun)(`a Hub download on a full disk ${canRun ? '' : '(skipped: needs root to mount a tmpfs)'}`, () => {
  const weights = randomBytes(300_000);
  const sha = createHash('sha256').update(weights).digest('hex');
  const config = Buffer.from('{"hidden_size": 8}');
  const blobId = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
  let fetches = 0;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    if (path.startsWith('/api/')) {
      const siblings = [
        { rfilename: 'config.json', size: config.length, blobId: blobId(config) },
        { rfilename: 'model.safetensors', size: 134, blobId: blobId(Buffer.from('pointer')), lfs: { sha256: sha, size: weights.length, pointerSize: 134 } },
      ];
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ id: 'org/big', sha: 'b'.repeat(40), siblings }));
    }
    fetches++;
    const body = path.endsWith('config.json') ? config : weights;
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const mounts: string[] = [];
  let endpoint = '';
  const ready = new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r())).then(() => {
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
    for (const m of mounts) spawnSync('umount', [m]);
  });
  afterEach(async () => {
    const actual = await vi.importActual<typeof import('../src/util/disk.js')>('../src/util/disk.js');
    vi.mocked(freeBytes).mockImplementation(actual.freeBytes);
  });
  function smallDisk(): string {
    const dir = join(makeTempDir(), 'disk');
    mkdirSync(dir);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]).status).toBe(0);
    mounts.push(dir);
    return dir;
  }

  it('is refused before anything is fetched, with what it needs and what is free', async () => {
    await ready;
    const cacheDir = smallDisk();
    fetches = 0;
    const blobs = join(cacheDir, 'models--org--big', 'blobs');
    await expect(snapshotDownload('org/big', { endpoint, cacheDir })).rejects.toThrow(
      new RegExp(`^model repo org/big: the download needs 300 kB but the cache's disk has [\\d.]+ kB free \\(${blobs}\\): free some space, or give another cache folder \\(--cache-dir, HF_HUB_CACHE\\)$`),
    );
    expect(fetches).toBe(0);
  });

  it('with the free space unknown, the full disk is said as such and the part fetched is kept', async () => {
    await ready;
    const cacheDir = smallDisk();
    vi.mocked(freeBytes).mockReturnValue(null);
    const blobs = join(cacheDir, 'models--org--big', 'blobs');
    await expect(snapshotDownload('org/big', { endpoint, cacheDir, retry: { attempts: 1 } })).rejects.toThrow(
      `file model.safetensors of model repo org/big: the disk is full (what was fetched is kept in ${join(blobs, sha)}.incomplete, for the next pull to go on from): ` +
        'free some space, or give another cache folder (--cache-dir, HF_HUB_CACHE)',
    );
    expect(readdirSync(blobs)).toContain(`${sha}.incomplete`);
    expect(existsSync(join(blobs, sha))).toBe(false);
  });
});
