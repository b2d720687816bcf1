// The Hub client's hard cases, each against local HTTP servers: a redirect to another host must not
// carry the token; a stale .incomplete left by an earlier process (wrong bytes) must not end up in
// the cache; HTTP 416 on a resume; a server that ignores Range; an idle connection (timeout).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshotDownload } from '../src/hub/download.js';
import { makeTempDir } from './helpers/tinyModel.js';

const COMMIT = 'c'.repeat(40);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitBlobId = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

interface Seen { path: string; auth?: string; range?: string }
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen[]) => void;

const servers: http.Server[] = [];
async function serve(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const s = http.createServer((req, res) => {
    seen.push({ path: new URL(req.url!, 'http://x').pathname, auth: req.headers.authorization, range: req.headers.range });
    handler(req, res, seen);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

const newCache = (): string => makeTempDir('l2e-hub-edge-');

/** The revision API of one repo org/x holding `file` (LFS when `lfs`). */
function apiAnswer(file: string, body: Buffer, lfs: boolean): string {
  const sibling = lfs
    ? { rfilename: file, size: 134, blobId: gitBlobId(Buffer.from('pointer')), lfs: { sha256: sha256(body), size: body.length, pointerSize: 134 } }
    : { rfilename: file, size: body.length, blobId: gitBlobId(body) };
  return JSON.stringify({ id: 'org/x', sha: COMMIT, siblings: [sibling] });
}

/** Writes blobs/<name>.incomplete in a fresh cache, as an interrupted earlier run would leave it. */
function cacheWithPartial(name: string, partial: Buffer): string {
  const cache = newCache();
  const blobs = join(cache, 'models--org--x', 'blobs');
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(blobs, `${name}.incomplete`), partial);
  return cache;
}

const fast = { attempts: 3, delayMs: 1 };
const body = randomBytes(50_000);

/** A server for org/x: the API, and the file (honouring `bytes=N-` unless told otherwise). */
function fileServer(file: string, lfs: boolean, o: { ignoreRange?: boolean; refuseRange?: boolean } = {}): Handler {
  return (req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer(file, body, lfs));
    if (path !== `/org/x/resolve/${COMMIT}/${file}`) return void res.writeHead(404).end();
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && o.refuseRange) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    if (range && !o.ignoreRange) {
      const start = Number(range[1]);
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
      return void res.end(body.subarray(start));
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  };
}

describe('hub: tokens and redirects', () => {
  it('sends the token to the Hub but not to another host it redirects to', async () => {
    const cdn = await serve((_req, res) => void res.writeHead(200, { 'content-length': body.length }).end(body));
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer('model.safetensors', body, true));
      res.writeHead(302, { location: `${cdn.url}/blob/model.safetensors?signed=1` }).end();
    });
    // the CDN is reached by another host name (localhost vs 127.0.0.1 would do as well: a port differs)
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), token: 'hf_secret', retry: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    expect(hub.seen.map((s) => s.auth)).toEqual(['Bearer hf_secret', 'Bearer hf_secret']);
    expect(cdn.seen).toHaveLength(1);
    expect(cdn.seen[0]!.auth).toBeUndefined();
  });
});

describe('hub: resuming', () => {
  it('a stale .incomplete of another content (earlier process) is replaced, not completed into a wrong file (LFS, sha256)', async () => {
    const hub = await serve(fileServer('model.safetensors', true));
    const cache = cacheWithPartial(sha256(body), randomBytes(20_000));
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    // first a resume from the stale bytes, then, its checksum wrong, the whole file
    const fileRequests = hub.seen.filter((s) => s.path.includes('/resolve/'));
    expect(fileRequests.map((s) => s.range)).toEqual(['bytes=20000-', undefined]);
    expect(readdirSync(join(cache, 'models--org--x', 'blobs'))).toEqual([sha256(body)]);
  });

  it('the same for a plain git file, checked by its git blob id', async () => {
    const hub = await serve(fileServer('tokenizer.json', false));
    const cache = cacheWithPartial(gitBlobId(body), randomBytes(20_000));
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast });
    expect(readFileSync(join(r.dir, 'tokenizer.json')).equals(body)).toBe(true);
    expect(readdirSync(join(cache, 'models--org--x', 'blobs'))).toEqual([gitBlobId(body)]);
  });

  it('HTTP 416 on a resume: the partial is dropped and the file fetched whole', async () => {
    const hub = await serve(fileServer('model.safetensors', true, { refuseRange: true }));
    const cache = cacheWithPartial(sha256(body), body.subarray(0, 30_000));
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    expect(hub.seen.filter((s) => s.path.includes('/resolve/')).map((s) => s.range)).toEqual(['bytes=30000-', undefined]);
  });

  it('a server that ignores Range (200 with the whole body) gives the whole file, not partial + whole', async () => {
    const hub = await serve(fileServer('model.safetensors', true, { ignoreRange: true }));
    const cache = cacheWithPartial(sha256(body), body.subarray(0, 30_000));
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    expect(hub.seen.filter((s) => s.path.includes('/resolve/')).map((s) => s.range)).toEqual(['bytes=30000-']);
  });
});

describe('hub: idle connections', () => {
  it('a connection that stops sending is timed out, retried and resumed', async () => {
    let stalls = 1;
    const hub = await serve((req, res, seen) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer('model.safetensors', body, true));
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      res.writeHead(range ? 206 : 200, { 'content-length': body.length - start });
      if (stalls-- > 0) return void res.write(body.subarray(start, start + 10_000)); // then silence
      res.end(body.subarray(start));
      void seen;
    });
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: fast, idleTimeoutMs: 200 });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    expect(hub.seen.filter((s) => s.path.includes('/resolve/')).map((s) => s.range)).toEqual([undefined, 'bytes=10000-']);
  });

  it('a server that stops sending in the middle of every file fails after the attempts, saying it was idle (not "aborted")', async () => {
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer('model.safetensors', body, true));
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 10_000)); // then silence, every time
    });
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: { attempts: 2, delayMs: 1 }, idleTimeoutMs: 150 })).rejects.toThrow(
      /model\.safetensors of model repo org\/x: failed after 2 attempts \(no data for 150 ms\)/,
    );
  });

  it('a server that never answers fails after the attempts, saying it was idle', async () => {
    const hub = await serve((req, res) => {
      if (new URL(req.url!, 'http://x').pathname.startsWith('/api/')) return; // no answer at all
      res.writeHead(404).end();
    });
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: { attempts: 2, delayMs: 1 }, idleTimeoutMs: 150 })).rejects.toThrow(
      'model repo org/x (revision main): failed after 2 attempts (could not reach ' + hub.url.slice(7) + ' for model repo org/x (revision main) (no data for 150 ms); check the network connection or HF_ENDPOINT); the Hub may be down, try again later',
    );
  });
});
