// The Hub client against a local HTTP server speaking the Hub API: listing, the cache layout,
// a connection dropped mid-file (resumed with Range), sha256 mismatch, 401 / 404 / 500, tokens,
// HF_ENDPOINT, datasets, and resolveModel's cache-first lookup.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotDownload, globToRegExp, type SnapshotOptions } from '../src/hub/download.js';
import { resolveModel } from '../src/hub/resolve.js';
import { defaultCacheDir } from '../src/hub/cache.js';
import { makeTempDir, writeTinyModel } from './helpers/tinyModel.js';
import { EmbeddingModel } from '../src/model/embedding-model.js';
import { saveModel } from '../src/train/checkpoint.js';
import { Trainer } from '../src/train/trainer.js';

const gitBlobId = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface FakeFile { path: string; body: Buffer; lfs: boolean; badSha?: boolean; missing?: boolean }
const COMMIT = 'a'.repeat(40);
const weights = randomBytes(300_000);
const repos: Record<string, FakeFile[]> = {
  'models/org/tiny': [
    { path: 'config.json', body: Buffer.from('{"hidden_size": 8}'), lfs: false },
    { path: 'model.safetensors', body: weights, lfs: true },
    { path: 'sub/dir/tokenizer.json', body: Buffer.from('{"model": {}}'), lfs: false },
    { path: 'README.md', body: Buffer.from('# tiny'), lfs: false },
  ],
  'models/org/badsha': [{ path: 'model.safetensors', body: randomBytes(1000), lfs: true, badSha: true }],
  'models/org/gone': [{ path: 'config.json', body: Buffer.from('{}'), lfs: false, missing: true }],
  'models/org/gated': [{ path: 'config.json', body: Buffer.from('{"gated": true}'), lfs: false }],
  'models/org/flaky2': [{ path: 'config.json', body: Buffer.from('{"flaky": 2}'), lfs: false }],
  'models/org/dotdot': [
    { path: 'config.json', body: Buffer.from('{"hidden_size": 8}'), lfs: false },
    { path: 'model.safetensors', body: randomBytes(1000), lfs: true },
    { path: 'sub/../../escape.json', body: Buffer.from('{}'), lfs: false },
  ],
  'datasets/org/ds': [{ path: 'data/train.jsonl', body: Buffer.from('{"query":"q","pos":["p"],"neg":[]}\n'), lfs: false }],
};

const log: { url: string; range?: string; auth?: string }[] = [];
let dropped = 0;
let flaky2Failures = 0;
let server: http.Server;
let endpoint = '';

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url!, 'http://x');
  log.push({ url: url.pathname, range: req.headers.range, auth: req.headers.authorization });
  const api = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
  const resolveM = /^\/(?:(datasets)\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const repoKey = api ? `${api[1]}/${api[2]}` : resolveM ? `${resolveM[1] ?? 'models'}/${resolveM[2]}` : '';
  if (repoKey === 'models/org/private') return void res.writeHead(401).end('{"error":"unauthorized"}');
  if (repoKey === 'models/org/flaky') return void res.writeHead(500).end('oops');
  if (repoKey === 'models/org/flaky2' && api && flaky2Failures++ < 1) return void res.writeHead(502).end('bad gateway');
  if (repoKey === 'models/org/gated' && req.headers.authorization !== 'Bearer s3cret') return void res.writeHead(403).end();
  const files = repos[repoKey];
  if (api) {
    if (!files) return void res.writeHead(404).end('{"error":"Repository not found"}');
    const siblings = files.map((f) => ({
      rfilename: f.path,
      size: f.lfs ? 134 : f.body.length,
      blobId: gitBlobId(f.lfs ? Buffer.from('pointer ' + f.path) : f.body),
      ...(f.lfs ? { lfs: { sha256: f.badSha ? 'f'.repeat(64) : sha256(f.body), size: f.body.length, pointerSize: 134 } } : {}),
    }));
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ id: api[2], sha: COMMIT, siblings }));
  }
  if (resolveM && files) {
    const f = files.find((x) => x.path === decodeURIComponent(resolveM[4]!));
    if (!f || f.missing) return void res.writeHead(404).end('Entry not found');
    if (f.lfs) return void res.writeHead(302, { location: `/cdn/${repoKey}/${f.path}` }).end();
    return void res.writeHead(200, { 'content-length': f.body.length, etag: `"${gitBlobId(f.body)}"` }).end(f.body);
  }
  const cdn = /^\/cdn\/(\w+\/[^/]+\/[^/]+)\/(.+)$/.exec(url.pathname);
  if (cdn) {
    const f = repos[cdn[1]!]!.find((x) => x.path === cdn[2])!;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      res.writeHead(206, { 'content-length': f.body.length - start, 'content-range': `bytes ${start}-${f.body.length - 1}/${f.body.length}` });
      return void res.end(f.body.subarray(start));
    }
    res.writeHead(200, { 'content-length': f.body.length });
    if (f.body.length > 100_000 && dropped++ === 0) {
      // send part of the file, then drop the connection
      res.write(f.body.subarray(0, 120_000), () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    return void res.end(f.body);
  }
  res.writeHead(404).end();
}

beforeAll(async () => {
  // a real sharded model, whose snapshot in the cache is links into blobs/
  const tiny = writeTinyModel(makeTempDir('l2e-hub-src-'), { sharded: 2, seed: 9 });
  repos['models/org/sharded'] = readdirSync(tiny.dir).map((path) => ({ path, body: readFileSync(join(tiny.dir, path)), lfs: path.endsWith('.safetensors') }));
  server = http.createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const fastRetry = { attempts: 3, delayMs: 1 };
const newCache = (): string => makeTempDir('l2e-hub-');

describe('hub: snapshot download', () => {
  it('downloads into the huggingface_hub layout, resuming a dropped connection with Range', async () => {
    const cache = newCache();
    const progress: number[] = [];
    const r = await snapshotDownload('org/tiny', {
      endpoint, cacheDir: cache, retry: fastRetry,
      onProgress: (file, done) => file === 'model.safetensors' && progress.push(done),
    });
    const folder = join(cache, 'models--org--tiny');
    expect(r.dir).toBe(join(folder, 'snapshots', COMMIT));
    expect(r.downloaded.sort()).toEqual(['README.md', 'config.json', 'model.safetensors', 'sub/dir/tokenizer.json']);
    expect(readFileSync(join(folder, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(weights)).toBe(true);
    expect(readFileSync(join(r.dir, 'sub/dir/tokenizer.json'), 'utf8')).toBe('{"model": {}}');
    expect(lstatSync(join(r.dir, 'config.json')).isSymbolicLink()).toBe(true);
    // blobs are named by LFS sha256 / git blob id, and no .incomplete is left
    expect(readdirSync(join(folder, 'blobs')).sort()).toEqual(
      [sha256(weights), ...repos['models/org/tiny']!.filter((f) => !f.lfs).map((f) => gitBlobId(f.body))].sort(),
    );
    const ranged = log.filter((l) => l.url.startsWith('/cdn/models/org/tiny') && l.range);
    expect(ranged.length).toBe(1);
    expect(Number(/bytes=(\d+)-/.exec(ranged[0]!.range!)![1])).toBeGreaterThan(0);
    expect(progress[progress.length - 1]).toBe(weights.length);

    // a second pull finds everything cached, and leaves the snapshot's links as they were (it removed
    // and remade each: a model loading meanwhile found files missing, and a read-only cache failed)
    const links = ['config.json', 'model.safetensors', 'sub/dir/tokenizer.json'].map((f) => lstatSync(join(r.dir, f)).ino);
    const ref = lstatSync(join(folder, 'refs', 'main')).ino;
    const again = await snapshotDownload('org/tiny', { endpoint, cacheDir: cache });
    expect(again.downloaded).toEqual([]);
    expect(['config.json', 'model.safetensors', 'sub/dir/tokenizer.json'].map((f) => lstatSync(join(r.dir, f)).ino)).toEqual(links);
    expect(readdirSync(r.dir).sort()).toEqual(['README.md', 'config.json', 'model.safetensors', 'sub']);
    expect(lstatSync(join(folder, 'refs', 'main')).ino).toBe(ref); // not written again either
  });

  it("a blob's lock: one with our pid that this process does not hold is taken over; a live holder's is waited for, and said", async () => {
    const blobs = (cache: string): string => join(cache, 'models--org--tiny', 'blobs');
    // our pid, left by an earlier process that had it (a container's pid 1 with the cache on a volume)
    const cache = newCache();
    mkdirSync(blobs(cache), { recursive: true });
    writeFileSync(join(blobs(cache), `${sha256(weights)}.lock`), `${process.pid}\n`);
    const waits: unknown[] = [];
    const r = await snapshotDownload('org/tiny', { endpoint, cacheDir: cache, retry: fastRetry, onWait: (...a) => waits.push(a) });
    expect(readFileSync(join(r.dir, 'model.safetensors')).equals(weights)).toBe(true);
    expect(waits).toEqual([]);
    // a live process (pid 1 is always alive): waited for, said once with its pid and the lock
    const other = newCache();
    mkdirSync(blobs(other), { recursive: true });
    const lock = join(blobs(other), `${sha256(weights)}.lock`);
    writeFileSync(lock, '1\n');
    const done = await snapshotDownload('org/tiny', {
      endpoint, cacheDir: other, retry: fastRetry,
      onWait: (...a) => {
        waits.push(a);
        setTimeout(() => rmSync(lock), 50); // the other pull ends
      },
    });
    expect(waits).toEqual([['model.safetensors', 1, lock]]);
    expect(readFileSync(join(done.dir, 'model.safetensors')).equals(weights)).toBe(true);
  });

  it('honours --include globs, HF_ENDPOINT and dataset repos', async () => {
    const cache = newCache();
    const old = process.env['HF_ENDPOINT'];
    process.env['HF_ENDPOINT'] = endpoint;
    try {
      const r = await snapshotDownload('org/tiny', { cacheDir: cache, include: ['*.json'] });
      expect(r.files.sort()).toEqual(['config.json', 'sub/dir/tokenizer.json']);
      const d = await snapshotDownload('org/ds', { cacheDir: cache, repoType: 'dataset' });
      expect(d.dir).toBe(join(cache, 'datasets--org--ds', 'snapshots', COMMIT));
      expect(readFileSync(join(d.dir, 'data/train.jsonl'), 'utf8')).toContain('"query"');
    } finally {
      if (old === undefined) delete process.env['HF_ENDPOINT'];
      else process.env['HF_ENDPOINT'] = old;
    }
    expect(globToRegExp('*.safetensors').test('model-00001-of-00002.safetensors')).toBe(true);
    expect(globToRegExp('model-?.bin').test('model-1.bin')).toBe(true);
    expect(globToRegExp('*.json').test('config.jsonl')).toBe(false);
  });

  it('offline: the cached snapshot without asking the Hub, or an error when none or a file of it is gone', async () => {
    const cache = newCache();
    const online = await snapshotDownload('org/tiny', { endpoint, cacheDir: cache, retry: fastRetry });
    const asked = log.length;
    const r = await snapshotDownload('org/tiny', { endpoint, cacheDir: cache, offline: true, include: ['*.json'] });
    expect(r).toEqual({ dir: online.dir, commit: COMMIT, files: ['config.json', 'sub/dir/tokenizer.json'], downloaded: [], offline: true });
    const old = process.env['HF_HUB_OFFLINE'];
    process.env['HF_HUB_OFFLINE'] = '1';
    try {
      expect((await snapshotDownload('org/tiny', { endpoint, cacheDir: cache })).files).toHaveLength(4);
    } finally {
      if (old === undefined) delete process.env['HF_HUB_OFFLINE'];
      else process.env['HF_HUB_OFFLINE'] = old;
    }
    expect(log.length).toBe(asked); // no request
    await expect(snapshotDownload('org/other', { endpoint, cacheDir: cache, offline: true })).rejects.toThrow(
      `model repo org/other (revision main) is not in the cache ${cache}, and the offline option is set, so it was not downloaded`,
    );
    await expect(snapshotDownload('org/tiny', { endpoint, cacheDir: cache, offline: true, include: ['*.bin'] })).rejects.toThrow(
      `model repo org/tiny (revision main): the cached snapshot ${online.dir} has no file matching *.bin, and the offline option is set, so nothing was downloaded`,
    );
    rmSync(join(cache, 'models--org--tiny', 'blobs', sha256(weights)));
    await expect(snapshotDownload('org/tiny', { endpoint, cacheDir: cache, offline: true })).rejects.toThrow(
      `model repo org/tiny (revision main): the cached snapshot ${online.dir} is incomplete (model.safetensors is missing), and the offline option is set, so it was not downloaded`,
    );
    expect(log.length).toBe(asked);
  });

  it('a cache that is a file (or under one) is said before the Hub is asked, not as mkdir\'s ENOTDIR', async () => {
    const file = join(newCache(), 'cache-file');
    writeFileSync(file, 'x');
    const asked = log.length;
    await expect(snapshotDownload('org/tiny', { endpoint, cacheDir: file })).rejects.toThrow(
      `the Hugging Face cache ${file} is a file, not a folder (HF_HUB_CACHE, HF_HOME or --cache-dir name it)`,
    );
    await expect(snapshotDownload('org/tiny', { endpoint, cacheDir: join(file, 'hub') })).rejects.toThrow(
      `the Hugging Face cache ${join(file, 'hub')}: ${file} is a file, not a folder`,
    );
    expect(log.length).toBe(asked);
  });

  it('an HF_ENDPOINT that is not a URL is named with its value', async () => {
    const old = process.env['HF_ENDPOINT'];
    process.env['HF_ENDPOINT'] = 'notaurl';
    try {
      await expect(snapshotDownload('org/tiny', { cacheDir: newCache() })).rejects.toThrow(
        'HF_ENDPOINT "notaurl" is not an http(s) URL (e.g. https://huggingface.co)',
      );
      process.env['HF_ENDPOINT'] = 'ftp://example.com';
      await expect(snapshotDownload('org/tiny', { cacheDir: newCache() })).rejects.toThrow(
        'HF_ENDPOINT "ftp://example.com" is not an http(s) URL (e.g. https://huggingface.co)',
      );
    } finally {
      if (old === undefined) delete process.env['HF_ENDPOINT'];
      else process.env['HF_ENDPOINT'] = old;
    }
    await expect(snapshotDownload('org/tiny', { cacheDir: newCache(), endpoint: 'huggingface.co' })).rejects.toThrow(
      'the Hub endpoint "huggingface.co" is not an http(s) URL (e.g. https://huggingface.co)',
    );
  });

  it('rejects a file whose sha256 does not match and keeps nothing of it', async () => {
    const cache = newCache();
    await expect(snapshotDownload('org/badsha', { endpoint, cacheDir: cache })).rejects.toThrow(/model.safetensors.*sha256 mismatch/);
    expect(readdirSync(join(cache, 'models--org--badsha', 'blobs'))).toEqual([]);
  });

  it('explains 401/403 (set HF_TOKEN) and sends the token', async () => {
    const cache = newCache();
    await expect(snapshotDownload('org/private', { endpoint, cacheDir: cache })).rejects.toThrow(/HTTP 401.*HF_TOKEN/);
    await expect(snapshotDownload('org/gated', { endpoint, cacheDir: cache, token: '' })).rejects.toThrow(/HTTP 403.*HF_TOKEN/);
    const r = await snapshotDownload('org/gated', { endpoint, cacheDir: cache, token: 's3cret' });
    expect(readFileSync(join(r.dir, 'config.json'), 'utf8')).toBe('{"gated": true}');
  });

  it('a file path that could leave the snapshot is refused before any file is downloaded', async () => {
    const cache = newCache();
    const before = log.length;
    await expect(snapshotDownload('org/dotdot', { endpoint, cacheDir: cache })).rejects.toThrow('org/dotdot: refusing the file path "sub/../../escape.json"');
    expect(log.slice(before).map((l) => l.url)).toEqual(['/api/models/org/dotdot/revision/main']); // the listing alone
    expect(existsSync(join(cache, 'models--org--dotdot'))).toBe(false);
  });

  // a revision was joined into refs/<revision> as given: "../../../x" wrote the commit outside the cache
  // (and offline read a ref from there)
  it('a revision that could name a file outside refs/ is refused before the Hub is asked, online or offline', async () => {
    const cache = newCache();
    const before = log.length;
    for (const revision of ['../../../escaped-ref', '/abs', 'a/../../b', 'a\\b', '', 'x/./y', 'pr/']) {
      for (const offline of [false, true]) {
        await expect(snapshotDownload('org/tiny', { endpoint, cacheDir: cache, revision, offline })).rejects.toThrow(
          new Error(`"${revision}" is not a revision (a branch, tag or commit): no empty, "." or ".." part, no leading "/", no backslash`),
        );
      }
    }
    expect(log.length).toBe(before);
    expect(readdirSync(cache)).toEqual([]);
  });

  it("options of the wrong type are refused naming them (offline: 'false' went offline)", async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ offline: 'false' }, `snapshotDownload: offline must be true or false, got the string "false"`],
      [{ include: '*.json' }, `snapshotDownload: include must be an array of glob patterns (strings), got the string "*.json"`],
      [{ revision: 5 }, 'snapshotDownload: revision must be a string, got 5'],
      [{ repoType: 'space' }, `snapshotDownload: repoType must be "model" or "dataset", got the string "space"`],
    ];
    for (const [opts, message] of bad) {
      await expect(snapshotDownload('org/tiny', { endpoint, cacheDir: newCache(), ...opts } as SnapshotOptions)).rejects.toThrow(new TypeError(message));
    }
    await expect(resolveModel('org/tiny', { endpoint, cacheDir: newCache(), offline: 'no' as unknown as boolean })).rejects.toThrow(
      new TypeError(`resolveModel: offline must be true or false, got the string "no"`),
    );
  });

  it('names the repo or the file on 404', async () => {
    const cache = newCache();
    await expect(snapshotDownload('org/nothing', { endpoint, cacheDir: cache })).rejects.toThrow(/model repo org\/nothing \(revision main\) was not found/);
    await expect(snapshotDownload('org/gone', { endpoint, cacheDir: cache })).rejects.toThrow(/file config.json of model repo org\/gone was not found/);
  });

  it('retries 5xx a few times, then fails clearly', async () => {
    const cache = newCache();
    const before = log.filter((l) => l.url.includes('org/flaky/')).length;
    await expect(snapshotDownload('org/flaky', { endpoint, cacheDir: cache, retry: fastRetry })).rejects.toThrow(/failed after 3 attempts.*HTTP 500/);
    expect(log.filter((l) => l.url.includes('org/flaky/')).length - before).toBe(3);
    const r = await snapshotDownload('org/flaky2', { endpoint, cacheDir: cache, retry: fastRetry });
    expect(r.files).toEqual(['config.json']);
  });
});

describe('hub: resolveModel', () => {
  it('returns a folder as is, a cached id without the network, and downloads otherwise', async () => {
    const dir = makeTempDir('l2e-model-');
    expect(await resolveModel(dir)).toBe(dir);
    const cache = newCache();
    const snap = await resolveModel('org/tiny', { endpoint, cacheDir: cache, retry: fastRetry });
    expect(existsSync(join(snap, 'config.json'))).toBe(true);
    expect(existsSync(join(snap, 'README.md'))).toBe(false); // only what a model needs
    // cached: an unreachable endpoint is never asked
    expect(await resolveModel('org/tiny', { endpoint: 'http://127.0.0.1:9', cacheDir: cache })).toBe(snap);
    await expect(resolveModel('not a/valid id', { cacheDir: cache })).rejects.toThrow(/model folder not found/);
  });

  it('a snapshot cut short (a pull with --include, or one that failed) is completed, not taken as the model', async () => {
    const cache = newCache();
    const partial = await snapshotDownload('org/sharded', { endpoint, cacheDir: cache, retry: fastRetry, include: ['config.json', '*.index.json', 'model-00001-*'] });
    await expect(resolveModel('org/sharded', { cacheDir: cache, offline: true })).rejects.toThrow(
      `its snapshot in the cache (${partial.dir}) lacks model-00002-of-00002.safetensors, and the offline option is set, so it was not downloaded`,
    );
    const snap = await resolveModel('org/sharded', { endpoint, cacheDir: cache, retry: fastRetry });
    expect(snap).toBe(partial.dir);
    expect(existsSync(join(snap, 'model-00002-of-00002.safetensors'))).toBe(true);
    expect(existsSync(join(snap, 'tokenizer.json'))).toBe(true);
  });

  it('a sharded model downloaded into the cache loads (its shards are links into blobs/)', async () => {
    const cache = newCache();
    const snap = await resolveModel('org/sharded', { endpoint, cacheDir: cache, retry: fastRetry });
    expect(lstatSync(join(snap, 'model-00001-of-00002.safetensors')).isSymbolicLink()).toBe(true);
    const model = await EmbeddingModel.load(snap);
    try {
      const emb = await model.encode(['selamat pagi']);
      expect(emb.rows).toBe(1);
      expect(Array.from(emb.data).every(Number.isFinite)).toBe(true);
      // the snapshot's files are links into blobs/ named by their hash: neither a save nor a run writes there
      const blobs = join(cache, 'models--org--sharded', 'blobs');
      const before = readdirSync(blobs).map((b) => [b, sha256(readFileSync(join(blobs, b)))]);
      const said = `is in the Hugging Face cache's snapshot of org/sharded: its files are links to the cache's shared blobs`;
      expect(() => saveModel(model, snap)).toThrow(`saveModel: ${snap} ${said}, which saving would overwrite; save to another folder`);
      await expect(new Trainer(model, { outputDir: join(snap, 'run'), maxSteps: 1 }).fit([])).rejects.toThrow(
        `outputDir ${join(snap, 'run')} ${said}, which a run would overwrite; train into another folder`,
      );
      expect(readdirSync(blobs).map((b) => [b, sha256(readFileSync(join(blobs, b)))])).toEqual(before);
    } finally {
      model.dispose();
    }
  });

  it('finds the default cache folder from the environment', () => {
    expect(defaultCacheDir({ HF_HUB_CACHE: '/a' })).toBe('/a');
    expect(defaultCacheDir({ HF_HOME: '/h' })).toBe(join('/h', 'hub'));
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x' })).toBe(join('/x', 'huggingface', 'hub'));
  });
});
