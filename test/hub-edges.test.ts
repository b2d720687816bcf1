// The Hub client's hard cases, each against local HTTP servers: a redirect to another host must not
// carry the token; a stale .incomplete left by an earlier process (wrong bytes) must not end up in
// the cache; HTTP 416 on a resume; a server that ignores Range; an idle connection (timeout).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { snapshotDownload } from '../src/hub/download.js';
import { tokenGoesTo } from '../src/hub/http.js';
import { downloadNotices, retryNotices } from '../src/hub/download-notices.js';
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

describe('hub: what a model load says while it downloads', () => {
  it('a line as each file starts (resumed or not); a large one also at each quarter and its end', () => {
    const said: string[] = [];
    const progress = downloadNotices('org/x', (m) => said.push(m));
    progress('config.json', 0, 700);
    progress('config.json', 700, 700);
    progress('model.safetensors', 0, 20_000_000);
    for (const done of [1_000_000, 5_000_000, 9_999_999, 10_000_000, 16_000_000, 20_000_000, 20_000_000]) progress('model.safetensors', done, 20_000_000);
    progress('tokenizer.json', 1_000, undefined);
    expect(said).toEqual([
      'downloading org/x: config.json (700 B)',
      'downloading org/x: model.safetensors (20.0 MB)',
      'downloading org/x: model.safetensors 25% of 20.0 MB',
      'downloading org/x: model.safetensors 50% of 20.0 MB',
      'downloading org/x: model.safetensors 75% of 20.0 MB',
      'downloaded org/x: model.safetensors',
      'downloading org/x: tokenizer.json, resuming at 1.00 kB',
    ]);
  });
});

describe('hub: tokens and redirects', () => {
  it('the token goes only to the first request\'s scheme, host and port (not in clear text after https)', () => {
    expect(tokenGoesTo('https://huggingface.co', new URL('https://huggingface.co/org/x/resolve/main/a'))).toBe(true);
    expect(tokenGoesTo('https://huggingface.co', new URL('http://huggingface.co/org/x/resolve/main/a'))).toBe(false);
    expect(tokenGoesTo('https://huggingface.co', new URL('https://cdn-lfs.huggingface.co/a'))).toBe(false);
    expect(tokenGoesTo('http://127.0.0.1:8080', new URL('http://127.0.0.1:8081/a'))).toBe(false);
  });

  it('a redirect without a Location is an error naming the URL, not a body to save', async () => {
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer('model.safetensors', body, true));
      res.writeHead(302).end('moved');
    });
    const cache = newCache();
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast })).rejects.toThrow(
      `file model.safetensors of model repo org/x: ${hub.url}/org/x/resolve/${COMMIT}/model.safetensors answered HTTP 302 (a redirect) with no Location`,
    );
    expect(readdirSync(join(cache, 'models--org--x', 'blobs'))).toEqual([]); // no .incomplete holding "moved"
  });

  it('HTTP 429 is retried after the Retry-After asked for; a wait past a minute fails at once, saying so', async () => {
    let refused = 0;
    const hub = await serve((req, res, seen) => {
      if (seen.length === 1) {
        refused++;
        return void res.writeHead(429, { 'retry-after': '1' }).end();
      }
      fileServer('model.safetensors', true)(req, res, seen);
    });
    const started = Date.now();
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    expect(refused).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950); // the 1 s asked for, not the policy's 1 ms
    const busy = await serve((_req, res) => void res.writeHead(429, { 'retry-after': '3600' }).end());
    await expect(snapshotDownload('org/x', { endpoint: busy.url, cacheDir: newCache(), retry: fast })).rejects.toThrow(
      `model repo org/x (revision main): the server asks to wait 3600 s before trying again (too many requests (HTTP 429 from ${busy.url}/api/models/org/x/revision/main?blobs=true), retry after 3600 s); try again later`,
    );
    expect(busy.seen).toHaveLength(1);
  });

  it("a body whose length is not the repo listing's size fails at once, saying both", async () => {
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer('model.safetensors', body, true));
      res.writeHead(200, { 'content-length': body.length - 5 }).end(body.subarray(5));
    });
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: fast })).rejects.toThrow(
      `file model.safetensors of model repo org/x: ${hub.url}/org/x/resolve/${COMMIT}/model.safetensors sends ${body.length - 5} bytes, but the repo's file list says ${body.length}: try again later (the repo may be changing)`,
    );
    expect(hub.seen.filter((x) => x.path.includes('/resolve/'))).toHaveLength(1);
  });

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

describe.skipIf(!existsSync('/dev/full'))('hub: a full disk', () => {
  it("a small file's write that fails as it is flushed (its only write, on a full disk) is said as the full disk, not missed", async () => {
    const config = Buffer.from('{"hidden_size": 8}');
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(apiAnswer('config.json', config, false));
      res.writeHead(200, { 'content-length': config.length }).end(config);
    });
    // the partial file is /dev/full: each write fails with ENOSPC, as on a full disk
    const cache = newCache();
    const blobs = join(cache, 'models--org--x', 'blobs');
    mkdirSync(blobs, { recursive: true });
    const incomplete = join(blobs, `${gitBlobId(config)}.incomplete`);
    symlinkSync('/dev/full', incomplete);
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast })).rejects.toThrow(
      `file config.json of model repo org/x: the disk is full (what was fetched is kept in ${incomplete}, for the next pull to go on from): ` +
        'free some space, or give another cache folder (--cache-dir, HF_HUB_CACHE)',
    );
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

  it('a server that never answers fails after the attempts, saying it was idle, and each attempt that failed as it fails', async () => {
    const hub = await serve((req, res) => {
      if (new URL(req.url!, 'http://x').pathname.startsWith('/api/')) return; // no answer at all
      res.writeHead(404).end();
    });
    const said: string[] = [];
    const onRetry = retryNotices((m) => said.push(m));
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: { attempts: 2, delayMs: 1, onRetry }, idleTimeoutMs: 150 })).rejects.toThrow(
      'model repo org/x (revision main): failed after 2 attempts (could not reach ' + hub.url.slice(7) + ' (no data for 150 ms); check the network connection or HF_ENDPOINT); the Hub may be down, try again later',
    );
    expect(said).toEqual([
      `model repo org/x (revision main): could not reach ${hub.url.slice(7)} (no data for 150 ms); check the network connection or HF_ENDPOINT; trying again (attempt 2 of 2)`,
    ]);
  });
});

describe('hub: answers of mirrors and lying servers', () => {
  const noIds = (file: string): string => JSON.stringify({ id: 'org/x', sha: COMMIT, siblings: [{ rfilename: file }] });

  it("with no blob ids listed, the blob is named by the Hub's X-Linked-Etag, not by the ETag of the CDN it redirects to", async () => {
    const cdn = await serve((req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(403).end(); // a URL signed for GET only
      res.writeHead(200, { etag: '"d41d8cd98f00b204e9800998ecf8427e-3"', 'content-length': body.length }).end(body);
    });
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(noIds('model.safetensors'));
      res.writeHead(302, { location: `${cdn.url}/blob?signed=1`, 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length) }).end();
    });
    const cache = newCache();
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, token: 'hf_secret', retry: fast });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(body)).toBe(true);
    expect(readdirSync(join(cache, 'models--org--x', 'blobs'))).toEqual([sha256(body)]);
    expect(cdn.seen).toHaveLength(1); // the GET only: the HEAD stopped at the Hub's redirect
  });

  it("with no sha256 listed, an LFS file is checked against the Hub's X-Linked-Etag (its sha256): corrupt bytes are refused, not kept", async () => {
    const corrupt = Buffer.from(body);
    corrupt[100] ^= 0xff;
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(noIds('model.safetensors'));
      const linked = { 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length) };
      if (req.method === 'HEAD') return void res.writeHead(200, linked).end();
      res.writeHead(200, { ...linked, 'content-length': corrupt.length }).end(corrupt);
    });
    const cache = newCache();
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast })).rejects.toThrow(
      `file model.safetensors of model repo org/x: sha256 mismatch (expected ${sha256(body)}, got ${sha256(corrupt)}); the partial file was removed, try again`,
    );
    expect(readdirSync(join(cache, 'models--org--x', 'blobs'))).toEqual([]);
  });

  it('a body longer than the listed size is cut off as soon as it passes it, not written to the end', async () => {
    const listed = JSON.stringify({ id: 'org/x', sha: COMMIT, siblings: [{ rfilename: 'config.json', size: 1000, blobId: gitBlobId(body.subarray(0, 1000)) }] });
    let sent = 0;
    const hub = await serve((req, res) => {
      const path = new URL(req.url!, 'http://x').pathname;
      if (path.startsWith('/api/')) return void res.writeHead(200).end(listed);
      res.writeHead(200); // chunked, no Content-Length: an endless body
      const more = (): void => {
        if (res.destroyed || sent > 64 << 20) return void res.end();
        sent += body.length;
        if (res.write(body)) setImmediate(more);
        else res.once('drain', more);
      };
      more();
    });
    const cache = newCache();
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: cache, retry: fast })).rejects.toThrow(
      `file config.json of model repo org/x: ${hub.url}/org/x/resolve/${COMMIT}/config.json sends more than the 1000 bytes the repo's file list says: try again later (the repo may be changing)`,
    );
    expect(sent).toBeLessThan(16 << 20);
    expect(readdirSync(join(cache, 'models--org--x', 'blobs'))).toEqual([]);
  });

  it('a repo that does not exist (401 RepoNotFound to a client without a token, 404 with one) is said to be not found, with the Hub\'s words', async () => {
    const hub = await serve((_req, res) => void res.writeHead(401, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' }).end());
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), retry: fast })).rejects.toThrow(
      'model repo org/x (revision main) was not found (HTTP 401, RepoNotFound): check the name, the revision and --repo-type ' +
        '(a private repo is not found without HF_TOKEN set to a token that can read it). The Hub says: "Repository not found"',
    );
    // with a token sent, the Hub answers 404: the advice is about that token, not about setting one
    const withToken = await serve((_req, res) => void res.writeHead(404, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' }).end());
    await expect(snapshotDownload('org/x', { endpoint: withToken.url, cacheDir: newCache(), token: 'hf_secret', retry: fast })).rejects.toThrow(
      'model repo org/x (revision main) was not found (HTTP 404, RepoNotFound): check the name, the revision and --repo-type ' +
        '(a private repo is not found when the token sent cannot read it: set HF_TOKEN to one that can). The Hub says: "Repository not found"',
    );
    const bare = await serve((_req, res) => void res.writeHead(401).end());
    await expect(snapshotDownload('org/x', { endpoint: bare.url, cacheDir: newCache(), retry: fast })).rejects.toThrow(
      'access to model repo org/x (revision main) was refused (HTTP 401): the repo is private or gated, or the token lacks access, ' +
        'or it does not exist (check the name and --repo-type). Set HF_TOKEN',
    );
  });

  it('a file list with a NUL, or a file that is also a folder of another, is refused before anything is fetched', async () => {
    for (const names of [['a.json', 'a.json/b.json'], ['a.json/b.json', 'a.json'], ['x\0.json']]) {
      const listed = JSON.stringify({ id: 'org/x', sha: COMMIT, siblings: names.map((rfilename) => ({ rfilename, size: 2, blobId: gitBlobId(Buffer.from('{}')) })) });
      const hub = await serve((req, res) => {
        if (new URL(req.url!, 'http://x').pathname.startsWith('/api/')) return void res.writeHead(200).end(listed);
        res.writeHead(200, { 'content-length': 2 }).end('{}');
      });
      const err = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), include: ['*'], retry: fast }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(names[0]!.includes('\0') ? /^org\/x: refusing the file path "x\\u0000\.json"$/ : /^org\/x: refusing the file list: "a\.json\/b\.json" lies under another listed file$/);
      expect(hub.seen.filter((s) => s.path.includes('/resolve/'))).toEqual([]);
    }
  });

  it("a folder's pattern (sub/) takes its files; a glob that is no glob is named", async () => {
    const files = ['sub/a.json', 'sub/b.json', 'c.json'];
    const listed = JSON.stringify({ id: 'org/x', sha: COMMIT, siblings: files.map((rfilename) => ({ rfilename, size: 2, blobId: gitBlobId(Buffer.from('{}')) })) });
    const hub = await serve((req, res) => {
      if (new URL(req.url!, 'http://x').pathname.startsWith('/api/')) return void res.writeHead(200).end(listed);
      res.writeHead(200, { 'content-length': 2 }).end('{}');
    });
    const r = await snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), include: ['sub/'], retry: fast });
    expect(r.files).toEqual(['sub/a.json', 'sub/b.json']);
    await expect(snapshotDownload('org/x', { endpoint: hub.url, cacheDir: newCache(), include: ['[z-a]'], retry: fast })).rejects.toThrow(
      'include pattern "[z-a]" is not a usable glob (a [...] class out of order?)',
    );
  });
});

describe('hub: the token', () => {
  it('is HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file huggingface-cli login writes (HF_TOKEN_PATH, default $HF_HOME/token)', async () => {
    const { hubToken } = await import('../src/hub/cache.js');
    const home = makeTempDir('l2e-hf-home-');
    expect(hubToken({ HF_HOME: home })).toBeUndefined();
    writeFileSync(join(home, 'token'), 'hf_stored\n');
    expect(hubToken({ HF_HOME: home })).toBe('hf_stored');
    expect(hubToken({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: 'hf_old' })).toBe('hf_old');
    expect(hubToken({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: 'hf_old', HF_TOKEN: 'hf_new' })).toBe('hf_new');
    const elsewhere = join(home, 'elsewhere');
    writeFileSync(elsewhere, 'hf_path');
    expect(hubToken({ HF_HOME: home, HF_TOKEN_PATH: elsewhere })).toBe('hf_path');
    expect(hubToken({ XDG_CACHE_HOME: home })).toBeUndefined(); // $XDG_CACHE_HOME/huggingface/token: none
  });

  it('with a line break or space inside is refused naming where it came from (a header refused it, naming neither); a file\'s final newline is not one', async () => {
    const { hubToken } = await import('../src/hub/cache.js');
    const home = makeTempDir('l2e-hf-home-');
    expect(() => hubToken({ HF_HOME: home, HF_TOKEN: 'hf_good\nx' })).toThrow(
      'HF_TOKEN holds a line break inside the token (a Hugging Face token is one word): set HF_TOKEN to the token alone',
    );
    expect(() => hubToken({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: 'hf_a hf_b' })).toThrow(
      'HUGGING_FACE_HUB_TOKEN holds a space or control character inside the token (a Hugging Face token is one word): set HUGGING_FACE_HUB_TOKEN to the token alone',
    );
    writeFileSync(join(home, 'token'), 'hf_good\r\nhf_old\n');
    expect(() => hubToken({ HF_HOME: home })).toThrow(
      `the token file ${join(home, 'token')} (HF_HOME/token) holds a line break inside the token (a Hugging Face token is one word): ` +
        'keep only the token in it, on one line (huggingface-cli login writes it so)',
    );
    const elsewhere = join(home, 'elsewhere');
    writeFileSync(elsewhere, 'hf_good\nhf_old');
    expect(() => hubToken({ HF_HOME: home, HF_TOKEN_PATH: elsewhere })).toThrow(`the token file ${elsewhere} (HF_TOKEN_PATH) holds a line break`);
    writeFileSync(elsewhere, '  hf_good\r\n');
    expect(hubToken({ HF_HOME: home, HF_TOKEN_PATH: elsewhere })).toBe('hf_good');
    // offline, no token is read: a cached snapshot needs none
    vi.stubEnv('HF_TOKEN', 'hf_good\nx');
    const cache = newCache();
    try {
      await expect(snapshotDownload('org/x', { cacheDir: cache, offline: true })).rejects.toThrow(
        `model repo org/x (revision main) is not in the cache ${cache}, and the offline option is set, so it was not downloaded`,
      );
    } finally {
      vi.unstubAllEnvs();
    }
    // the library's option is refused too, before anything is asked, without showing the token
    await expect(snapshotDownload('org/x', { endpoint: 'http://127.0.0.1:9', cacheDir: newCache(), token: 'hf_good\n' })).rejects.toThrow(
      'snapshotDownload: token holds a line break inside the token (a Hugging Face token is one word)',
    );
  });
});
