// Downloads a repo snapshot from the Hugging Face Hub into the shared cache layout (cache.ts):
//   1. GET {endpoint}/api/{models|datasets}/{repo}/revision/{rev}?blobs=true → commit sha + siblings
//      (each with rfilename, size, blobId = git blob sha1, and lfs.sha256 for LFS files);
//   2. for each wanted file: blobs/<lfs sha256 | blobId>, fetched from
//      {endpoint}/[datasets/]{repo}/resolve/{commit}/{file} into blobs/<etag>.incomplete, resumed with a
//      Range request after a dropped connection, size-checked, sha256-verified for LFS files, renamed;
//      blobs/<etag>.lock (blob-lock.ts) makes a second process wait rather than write the same
//      .incomplete; a killed holder's lock is taken over and its .incomplete resumed;
//   3. snapshots/<commit>/<file> → relative symlink to the blob (a copy where symlinks fail),
//      refs/<revision> ← commit.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { cachedSnapshot, checkRepoId, defaultCacheDir, hubOffline, hubToken, isCommitHash, tokenFault, notCachedReason, checkRevision, refFile, repoFolder, type RepoType } from './cache.js';
import { writeFileAtomic } from '../util/atomic.js';
import { LOCK_STALE_MS, lockBlob, type BlobLock } from './blob-lock.js';
import { fsReason, notAFolder, readTextOrNull, statOrNull } from '../util/fs-error.js';
import { freeBytes } from '../util/disk.js';
import { formatBytes } from '../util/format-bytes.js';
import { getJson, HubError, openUrl, statusError, withRetries, type RetryPolicy } from './http.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, optionKeys, wrongOption } from '../util/options.js';

export interface SnapshotOptions {
  revision?: string;
  repoType?: RepoType;
  /** Glob patterns (fnmatch-style: * and ? match any character including '/'); default: every file. */
  include?: string[];
  cacheDir?: string;
  /** Default $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default $HF_TOKEN. */
  token?: string;
  retry?: RetryPolicy;
  /** A connection that sends nothing for this long is dropped and retried (default 60 s). */
  idleTimeoutMs?: number;
  /** Bytes done / total of one file; called at start (done 0), during, and at the end. */
  onProgress?: (file: string, done: number, total: number | undefined) => void;
  /**
   * Called once when another process (pid `holder`) is fetching the same file and this one waits for
   * it; `lock` is the file that says so (remove it if that process is not a pull of this cache). Another
   * host's lock that its holder has not touched for LOCK_STALE_MS (blob-lock.ts) is taken over.
   */
  onWait?: (file: string, holder: number, lock: string) => void;
  /** No network: the cached snapshot of the revision, or an error (default: HF_HUB_OFFLINE is 1/true/yes/on). */
  offline?: boolean;
}

export interface RepoFile {
  path: string;
  size?: number;
  blobId?: string;
  sha256?: string;
}

export interface SnapshotResult {
  dir: string;
  commit: string;
  files: string[];
  /** Files fetched now (the rest were already in the cache). */
  downloaded: string[];
  /** True when taken from the cache without asking the Hub (offline). */
  offline?: boolean;
}

/** The Hub's base URL: `endpoint`, else $HF_ENDPOINT, else https://huggingface.co; a value that is not an http(s) URL is refused, named. */
function endpointOf(opts: SnapshotOptions): string {
  const fromEnv = process.env['HF_ENDPOINT'];
  const value = opts.endpoint ?? fromEnv ?? 'https://huggingface.co';
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    const name = opts.endpoint !== undefined ? 'the Hub endpoint' : 'HF_ENDPOINT';
    throw new HubError(`${name} ${JSON.stringify(value)} is not an http(s) URL (e.g. https://huggingface.co)`);
  }
  return value.replace(/\/+$/, '');
}

/** fnmatch-style glob → RegExp (whole-string match). */
export function globToRegExp(glob: string): RegExp {
  // a folder's name (sub/) means its files, as huggingface_hub reads such a pattern
  if (glob.endsWith('/')) glob += '*';
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end);
        re += `[${body.startsWith('!') ? '^' + body.slice(1) : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  try {
    return new RegExp(`^${re}$`);
  } catch {
    // a class that is not one ([z-a])
    throw new HubError(`include pattern ${JSON.stringify(glob)} is not a usable glob (a [...] class out of order?)`);
  }
}

/**
 * Refuses, before anything is fetched, a download that cannot fit: the bytes of the `wanted` files not
 * yet whole in `blobs` (less what their .incomplete parts hold) against the free space of its disk.
 * Files whose size or blob name the listing does not give are not counted.
 */
function checkRoom(wanted: RepoFile[], blobs: string, what: string): void {
  let needed = 0;
  for (const f of wanted) {
    const name = f.sha256 ?? f.blobId;
    if (f.size === undefined || name === undefined) continue;
    if (statOrNull(join(blobs, name))?.size === f.size) continue;
    needed += f.size - Math.min(f.size, statOrNull(join(blobs, `${name}.incomplete`))?.size ?? 0);
  }
  const free = freeBytes(blobs);
  if (free !== null && needed > free) {
    throw new HubError(
      `${what}: the download needs ${formatBytes(needed)} but the cache's disk has ${formatBytes(free)} free (${blobs}): ` +
        'free some space, or give another cache folder (--cache-dir, HF_HUB_CACHE)',
    );
  }
}

/** The commit and file list of a repo at a revision. */
export async function repoInfo(repoId: string, opts: SnapshotOptions = {}): Promise<{ commit: string; files: RepoFile[] }> {
  checkRepoId(repoId);
  const type = opts.repoType ?? 'model';
  const revision = opts.revision ?? 'main';
  const url = `${endpointOf(opts)}/api/${type}s/${repoId}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const what = `${type} repo ${repoId} (revision ${revision})`;
  const info = (await getJson({ url, token: opts.token ?? hubToken(), what, idleTimeoutMs: opts.idleTimeoutMs }, opts.retry)) as {
    sha?: unknown;
    siblings?: unknown;
  };
  if (typeof info.sha !== 'string' || !Array.isArray(info.siblings)) {
    throw new HubError(`${what}: unexpected answer from ${url} (no "sha" / "siblings")`);
  }
  // the commit names a folder of the cache: only a real commit hash may (never "../x")
  if (!isCommitHash(info.sha)) throw new HubError(`${what}: unexpected answer from ${url} (commit ${JSON.stringify(info.sha)} is not a 40-digit hex hash)`);
  const files: RepoFile[] = [];
  for (const s of info.siblings as Record<string, unknown>[]) {
    if (typeof s?.['rfilename'] !== 'string') continue;
    const lfs = s['lfs'] as { sha256?: unknown; size?: unknown } | undefined;
    const size = typeof lfs?.size === 'number' ? lfs.size : typeof s['size'] === 'number' ? s['size'] : undefined;
    files.push({
      path: s['rfilename'],
      size,
      blobId: typeof s['blobId'] === 'string' ? s['blobId'] : undefined,
      sha256: typeof lfs?.sha256 === 'string' ? lfs.sha256 : undefined,
    });
  }
  return { commit: info.sha, files };
}

function resolveUrl(endpoint: string, repoId: string, type: RepoType, commit: string, file: string): string {
  const prefix = type === 'dataset' ? '/datasets' : '';
  return `${endpoint}${prefix}/${repoId}/resolve/${encodeURIComponent(commit)}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

/** The blob name huggingface_hub would use: the LFS sha256, else the git blob id; else asks the server (ETag). */
async function etagOf(f: RepoFile, url: string, token: string | undefined, what: string, opts: SnapshotOptions): Promise<string> {
  if (f.sha256) return f.sha256;
  if (f.blobId) return f.blobId;
  // the Hub's own answer, not the CDN's it redirects to: its X-Linked-Etag names the blob (the file's
  // sha256 for LFS), and a CDN's ETag is its own (an MD5 of parts, a base64 id), or a HEAD it refuses
  return withRetries(what, opts.retry ?? {}, async () => {
    const res = await openUrl({ url, token, what, method: 'HEAD', idleTimeoutMs: opts.idleTimeoutMs, crossOrigin: false });
    res.resume();
    const status = res.statusCode ?? 0;
    const err = statusError(status, what, url, res.headers, Boolean(token));
    if (err) throw err;
    const redirected = status >= 300 && status < 400;
    const linked = res.headers['x-linked-etag'] as string | undefined;
    const raw = linked ?? ((redirected ? undefined : res.headers['etag']) as string | undefined);
    if (!raw) throw new HubError(`${what}: the server sent no ${redirected ? 'X-Linked-Etag with its redirect' : 'ETag'}`);
    const size = Number(res.headers['x-linked-size'] ?? NaN);
    if (f.size === undefined && Number.isSafeInteger(size) && size >= 0) f.size = size;
    const etag = raw.replace(/^W\//, '').replace(/"/g, '');
    // an LFS file's X-Linked-Etag is its sha256: the bytes are checked against it, as when the
    // listing gives lfs.sha256 (a mirror that ignores ?blobs=true would otherwise keep any bytes)
    if (linked !== undefined && /^[0-9a-f]{64}$/.test(etag)) f.sha256 = etag;
    return etag;
  });
}

async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest('hex');
}

/** The git blob id of a file: sha1 of "blob <size>\0" and the bytes (what the Hub lists as blobId). */
async function gitBlobIdOfFile(path: string): Promise<string> {
  const h = createHash('sha1').update(`blob ${statSync(path).size}\0`);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest('hex');
}

/** Why the downloaded bytes are not the file (size, LFS sha256, else git blob id), or undefined. */
async function verifyError(path: string, f: RepoFile): Promise<string | undefined> {
  const size = statSync(path).size;
  if (f.size !== undefined && size !== f.size) return `downloaded ${size} bytes, expected ${f.size}`;
  if (f.sha256) {
    const got = await sha256OfFile(path);
    return got === f.sha256 ? undefined : `sha256 mismatch (expected ${f.sha256}, got ${got})`;
  }
  if (f.blobId) {
    const got = await gitBlobIdOfFile(path);
    return got === f.blobId ? undefined : `git blob id mismatch (expected ${f.blobId}, got ${got})`;
  }
  return undefined;
}

/**
 * Downloads `url` into `blob` (resuming `blob`.incomplete), checking size and checksum. A partial
 * left by an earlier run may hold other bytes (another revision, a crash mid-write): when the
 * resumed file fails its check it is dropped and the file fetched whole, once.
 */
async function downloadBlob(
  url: string,
  blob: string,
  f: RepoFile,
  token: string | undefined,
  what: string,
  opts: SnapshotOptions,
  held: BlobLock,
): Promise<void> {
  const incomplete = `${blob}.incomplete`;
  const stale = existsSync(incomplete);
  await fetchInto(url, incomplete, f, token, what, opts, held);
  let bad = await verifyError(incomplete, f);
  if (bad && stale) {
    rmSync(incomplete, { force: true });
    await fetchInto(url, incomplete, f, token, what, opts, held);
    bad = await verifyError(incomplete, f);
  }
  if (bad) {
    rmSync(incomplete, { force: true });
    throw new HubError(`${what}: ${bad}; the partial file was removed, try again`);
  }
  renameSync(incomplete, blob);
}

/** Fetches `url` into `incomplete`, continuing what it holds with a Range request; retried. */
async function fetchInto(url: string, incomplete: string, f: RepoFile, token: string | undefined, what: string, opts: SnapshotOptions, held: BlobLock): Promise<void> {
  await withRetries(what, opts.retry ?? {}, async () => {
    let offset = existsSync(incomplete) ? statSync(incomplete).size : 0;
    if (f.size !== undefined && offset > f.size) {
      rmSync(incomplete, { force: true });
      offset = 0;
    }
    if (f.size !== undefined && offset === f.size && offset > 0) return; // already complete, only unverified
    const res = await openUrl({ url, token, what, headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, idleTimeoutMs: opts.idleTimeoutMs });
    const status = res.statusCode ?? 0;
    const err = statusError(status, what, url, res.headers, Boolean(token));
    if (err) {
      res.resume();
      if (status !== 416) throw err;
      // a stale partial the server cannot continue: drop it and start over on the next attempt
      rmSync(incomplete, { force: true });
      throw Object.assign(new Error(err.message), { code: 'PARTIAL' });
    }
    if (offset > 0 && status !== 206) offset = 0; // the server ignored the range: take the whole body
    const length = Number(res.headers['content-length'] ?? NaN);
    if (f.size !== undefined && Number.isFinite(length) && !res.headers['content-encoding'] && offset + length !== f.size) {
      res.resume();
      throw new HubError(`${what}: ${url} sends ${offset + length} bytes, but the repo's file list says ${f.size}: try again later (the repo may be changing)`);
    }
    const total = f.size ?? (Number.isFinite(length) ? offset + length : undefined);
    const out = createWriteStream(incomplete, { flags: offset > 0 ? 'a' : 'w' });
    // a write error (disk full, permissions) must reject here, not crash the process as an unhandled
    // 'error' event or leave the loop waiting for a 'drain' that never comes
    let writeError: Error | undefined;
    out.on('error', (e) => (writeError ??= e));
    let done = offset;
    let overlong = false;
    opts.onProgress?.(f.path, done, total);
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        if (writeError || held.lost()) break;
        // a body longer than the file (no Content-Length to check first) must not fill the disk
        if (f.size !== undefined && done + chunk.length > f.size) {
          res.destroy();
          overlong = true;
          break;
        }
        if (!out.write(chunk)) await once(out, 'drain').catch(() => undefined);
        done += chunk.length;
        opts.onProgress?.(f.path, done, total);
      }
    } finally {
      if (writeError || held.lost()) res.destroy();
      // a write that fails as the stream is flushed (a small file's only write on a full disk) reaches
      // end()'s callback before any 'error' listener: taken from there
      await new Promise<void>((r) =>
        out.end((e?: Error | null) => {
          writeError ??= e ?? undefined;
          r();
        }),
      );
    }
    if (held.lost()) {
      // HubError: not retried, as the file is another process's now
      throw new HubError(
        `${what}: another process took this download over (its lock ${held.lock} was left untouched for ${LOCK_STALE_MS / 60_000} minutes, or removed): ` +
          'this pull stopped writing it; pull again to use what that process fetches',
      );
    }
    if ((writeError as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') {
      throw new HubError(
        `${what}: the disk is full (what was fetched is kept in ${incomplete}, for the next pull to go on from): ` +
          'free some space, or give another cache folder (--cache-dir, HF_HUB_CACHE)',
      );
    }
    if (writeError) throw new HubError(`${what}: could not write ${incomplete} (${writeError.message})`);
    if (overlong) {
      rmSync(incomplete, { force: true });
      throw new HubError(`${what}: ${url} sends more than the ${f.size} bytes the repo's file list says: try again later (the repo may be changing)`);
    }
    if (total !== undefined && done < total) {
      throw Object.assign(new Error(`connection closed after ${done} of ${total} bytes`), { code: 'PARTIAL' });
    }
  });
}

/**
 * Makes `target` (a snapshot's file) a link to `blob`. A link that is already right is left alone, so
 * a pull of a cached repo changes nothing: a model loading from it meanwhile never finds a file
 * missing, and a cache on a read-only disk can still be pulled. Otherwise the new link is renamed over
 * the old name, never leaving it absent.
 */
function linkIntoSnapshot(blob: string, target: string): void {
  const link = relative(dirname(target), blob);
  try {
    if (readlinkSync(target) === link) return;
  } catch {
    // no link there yet (or a copy, below): made now
  }
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.link-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    symlinkSync(link, tmp);
    renameSync(tmp, target);
  } catch {
    rmSync(tmp, { force: true });
    rmSync(target, { force: true });
    copyFileSync(blob, target); // no symlinks here (e.g. Windows without developer mode)
  }
}

/** What made a call offline, for its messages: the option (a library call's) or the variable. */
export function offlineReason(option: boolean | undefined): string {
  return option === true ? 'the offline option is set' : 'HF_HUB_OFFLINE is set';
}

/**
 * Offline: the cached snapshot of `revision` and its files that match `patterns` (all when none), as
 * huggingface_hub reads its cache with HF_HUB_OFFLINE; an error when there is none, or a file of it
 * is missing (a link to a blob that is gone).
 */
function cachedFiles(repoId: string, type: RepoType, revision: string, cacheDir: string, patterns: RegExp[], include: string[], offlineBy: string): SnapshotResult {
  checkRepoId(repoId);
  const what = `${type} repo ${repoId} (revision ${revision})`;
  const dir = cachedSnapshot(cacheDir, repoId, type, revision);
  if (!dir) throw new HubError(`${what} ${notCachedReason(cacheDir, repoId, type, revision)}, and ${offlineBy}, so it was not downloaded`);
  const files: string[] = [];
  const walk = (sub: string): void => {
    for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const path = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path);
      else if (!patterns.length || patterns.some((p) => p.test(path))) files.push(path);
    }
  };
  walk('');
  files.sort();
  const broken = files.find((f) => !existsSync(join(dir, f)));
  if (broken) throw new HubError(`${what}: the cached snapshot ${dir} is incomplete (${broken} is missing), and ${offlineBy}, so it was not downloaded`);
  if (files.length === 0) {
    throw new HubError(`${what}: the cached snapshot ${dir} has no file matching ${include.join(', ')}, and ${offlineBy}, so nothing was downloaded`);
  }
  return { dir, commit: basename(dir), files, downloaded: [], offline: true };
}

/** Downloads (or finds in the cache) the files of `repoId` at a revision; returns the snapshot folder. */
const SNAPSHOT_OPTIONS = optionKeys<SnapshotOptions>({
  revision: true, repoType: true, include: true, cacheDir: true, endpoint: true, token: true, retry: true, idleTimeoutMs: true,
  onProgress: true, onWait: true, offline: true,
});

/**
 * The options a plain-JS caller may get wrong, refused naming them: `offline: 'false'` went offline
 * (any truthy value did) and the error then blamed HF_HUB_OFFLINE; `include: '*.json'` failed inside
 * as "map is not a function".
 */
function checkSnapshotOptions(opts: SnapshotOptions): void {
  const bad = (key: string, expected: string, got: unknown): never => {
    throw wrongOption('snapshotDownload', key, expected, got);
  };
  if (opts.offline !== undefined && typeof opts.offline !== 'boolean') bad('offline', 'true or false', opts.offline);
  if (opts.repoType !== undefined && opts.repoType !== 'model' && opts.repoType !== 'dataset') bad('repoType', '"model" or "dataset"', opts.repoType);
  if (opts.include !== undefined && !(Array.isArray(opts.include) && opts.include.every((g) => typeof g === 'string'))) {
    bad('include', 'an array of glob patterns (strings)', opts.include);
  }
  for (const key of ['revision', 'cacheDir', 'endpoint', 'token'] as const) {
    if (opts[key] !== undefined && typeof opts[key] !== 'string') bad(key, 'a string', opts[key]);
  }
  // the token itself is not shown: an error message may end up in a log
  const fault = opts.token !== undefined && tokenFault(opts.token);
  if (fault) throw new TypeError(`snapshotDownload: token holds ${fault}`);
}

export async function snapshotDownload(repoId: string, opts: SnapshotOptions = {}): Promise<SnapshotResult> {
  if (typeof repoId !== 'string') throw new TypeError(`snapshotDownload: repoId must be a string (org/name), got ${describeValue(repoId)}`);
  checkOptions('snapshotDownload', opts, SNAPSHOT_OPTIONS);
  checkSnapshotOptions(opts);
  const type = opts.repoType ?? 'model';
  const revision = opts.revision ?? 'main';
  checkRevision(revision); // a revision that could not name a ref is refused before anything is fetched
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  // before the Hub is asked: a cache that cannot be a folder said as such, not as mkdir's ENOTDIR
  const blocked = notAFolder('the Hugging Face cache', cacheDir);
  if (blocked) throw new HubError(`${blocked} (HF_HUB_CACHE, HF_HOME or --cache-dir name it)`);
  const patterns = (opts.include ?? []).map(globToRegExp);
  if (opts.offline ?? hubOffline()) return cachedFiles(repoId, type, revision, cacheDir, patterns, opts.include ?? [], offlineReason(opts.offline));
  const token = opts.token ?? hubToken(); // after the offline return: a cached snapshot needs none
  const { commit, files } = await repoInfo(repoId, { ...opts, token });
  const wanted = patterns.length ? files.filter((f) => patterns.some((p) => p.test(f.path))) : files;
  if (wanted.length === 0) {
    throw new HubError(`${type} repo ${repoId} has no file matching ${(opts.include ?? []).join(', ')} at revision ${revision}`);
  }
  // a path that could leave the snapshot folder refuses the repo before anything of it is fetched; so
  // does one no file can have (a NUL), or a file that is also another's folder (a.json, a.json/b.json)
  const unsafe = wanted.find((f) => f.path.includes('\0') || f.path.split('/').some((part) => part === '..' || part === ''));
  if (unsafe) throw new HubError(`${repoId}: refusing the file path ${JSON.stringify(unsafe.path)}`);
  const paths = new Set(wanted.map((f) => f.path));
  const clash = wanted.find((f) => f.path.split('/').slice(0, -1).some((_, i, parts) => paths.has(parts.slice(0, i + 1).join('/'))));
  if (clash) throw new HubError(`${repoId}: refusing the file list: ${JSON.stringify(clash.path)} lies under another listed file`);
  const folder = repoFolder(cacheDir, repoId, type);
  const blobs = join(folder, 'blobs');
  const snapshot = join(folder, 'snapshots', commit);
  try {
    mkdirSync(blobs, { recursive: true });
  } catch (err) {
    throw new HubError(`${type} repo ${repoId}: could not create ${blobs} in the cache: ${fsReason(err)}`);
  }
  checkRoom(wanted, blobs, `${type} repo ${repoId}`);
  const endpoint = endpointOf(opts);
  const downloaded: string[] = [];
  for (const f of wanted) {
    const url = resolveUrl(endpoint, repoId, type, commit, f.path);
    const what = `file ${f.path} of ${type} repo ${repoId}`;
    const etag = await etagOf(f, url, token, what, opts);
    // the ETag names a file in blobs/: "." and ".." would name folders
    if (!/^[\w.-]+$/.test(etag) || etag === '.' || etag === '..') throw new HubError(`${what}: unusable ETag "${etag}"`);
    const blob = join(blobs, etag);
    const missing = (): boolean => !existsSync(blob) || (f.size !== undefined && statSync(blob).size !== f.size);
    if (missing()) {
      const release = await lockBlob(blob, what, (holder, lock) => opts.onWait?.(f.path, holder, lock));
      try {
        // another process may have fetched it while we waited for the lock
        if (missing()) {
          await downloadBlob(url, blob, f, token, what, opts, release);
          downloaded.push(f.path);
        }
      } finally {
        release();
      }
    }
    if (!downloaded.includes(f.path)) opts.onProgress?.(f.path, statSync(blob).size, statSync(blob).size);
    try {
      linkIntoSnapshot(blob, join(snapshot, f.path));
    } catch (err) {
      throw new HubError(`${type} repo ${repoId}: could not write its snapshot ${snapshot} in the cache: ${fsReason(err)} (give a cache folder you can write: --cache-dir, HF_HUB_CACHE)`);
    }
  }
  const ref = refFile(folder, revision);
  // written only when it changes, as the links: a pull of a cached repo writes nothing
  if (revision !== commit && readTextOrNull(ref)?.trim() !== commit) {
    mkdirSync(dirname(ref), { recursive: true });
    writeFileAtomic(ref, commit); // other tools (huggingface_hub) may read it at any moment
  }
  return { dir: snapshot, commit, files: wanted.map((f) => f.path), downloaded };
}
