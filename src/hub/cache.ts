// The Hugging Face Hub cache layout, shared with huggingface_hub (so either tool reuses the other's
// downloads):  {cache}/{models|datasets}--{org}--{name}/
//                 blobs/<etag>                 file contents, named by git blob sha1 or LFS sha256
//                 snapshots/<commit>/<path>    relative symlinks (or copies) into blobs/
//                 refs/<revision>              the commit a branch or tag pointed to when last fetched
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { describeValue } from '../util/describe.js';
import { readTextOrNull } from '../util/fs-error.js';

export type RepoType = 'model' | 'dataset';

/** $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_HUB_CACHE']) return env['HF_HUB_CACHE'];
  return join(hfHome(env), 'hub');
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
function hfHome(env: NodeJS.ProcessEnv): string {
  return env['HF_HOME'] || join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'huggingface');
}

/**
 * The token huggingface_hub would send: $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN (its older name), else
 * the file `huggingface-cli login` writes ($HF_TOKEN_PATH, default $HF_HOME/token); undefined when none.
 */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  // surrounding whitespace (the file's final newline) is dropped, as huggingface_hub drops it
  for (const key of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const v = env[key]?.trim();
    if (v) return checkToken(v, key, `set ${key} to the token alone`);
  }
  const file = env['HF_TOKEN_PATH'] || join(hfHome(env), 'token');
  const stored = readTextOrNull(file)?.trim();
  const from = `the token file ${file} (${env['HF_TOKEN_PATH'] ? 'HF_TOKEN_PATH' : 'HF_HOME/token'})`;
  return stored ? checkToken(stored, from, 'keep only the token in it, on one line (huggingface-cli login writes it so)') : undefined;
}

/**
 * What in `token` cannot be sent as one, or undefined: a line break or another space or control
 * character inside it (an HTTP header refuses it, for every repo, public ones too, without naming
 * where the token came from; huggingface_hub would join the lines into another token).
 */
export function tokenFault(token: string): string | undefined {
  const what = /[\r\n]/.test(token) ? 'a line break' : /[\s\x00-\x1f\x7f]/.test(token) ? 'a space or control character' : undefined;
  return what && `${what} inside the token (a Hugging Face token is one word)`;
}

/** `token`, once it holds nothing tokenFault refuses; else an error naming `source` and what to do. */
function checkToken(token: string, source: string, todo: string): string {
  const fault = tokenFault(token);
  if (fault) throw new Error(`${source} holds ${fault}: ${todo}`);
  return token;
}

/** Whether HF_HUB_OFFLINE asks for no network, as huggingface_hub reads it. */
export function hubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'true', 'yes', 'on'].includes((env['HF_HUB_OFFLINE'] ?? '').trim().toLowerCase());
}

export function checkRepoId(repoId: string): void {
  if (!/^(?:[\w.-]+\/)?[\w.-]+$/.test(repoId) || repoId.includes('--') || repoId.includes('..')) {
    throw new Error(`"${repoId}" is not a Hugging Face repo id (expected org/name)`);
  }
}

/**
 * `refs/<revision>` of a repo's cache folder, once `revision` is shown to name a file there: a branch
 * or tag may hold "/" (refs/pr/1), but no empty, "." or ".." part, no leading "/" and no backslash or
 * NUL ("../../x" wrote the commit outside the cache, and offline read a ref from there).
 */
export function refFile(folder: string, revision: string): string {
  return join(folder, 'refs', checkRevision(revision));
}

/** `revision`, once shown to name a file under refs/ (refFile); else an error saying what it may not hold. */
export function checkRevision(revision: string): string {
  if (typeof revision !== 'string') throw new TypeError(`revision must be a string (a branch, tag or commit), got ${describeValue(revision)}`);
  if (revision.split('/').some((part) => part === '' || part === '.' || part === '..') || /[\\\0]/.test(revision)) {
    throw new Error(`"${revision}" is not a revision (a branch, tag or commit): no empty, "." or ".." part, no leading "/", no backslash`);
  }
  return revision;
}

export function repoFolder(cacheDir: string, repoId: string, type: RepoType): string {
  return join(cacheDir, `${type}s--${repoId.split('/').join('--')}`);
}

export const isCommitHash = (rev: string): boolean => /^[0-9a-f]{40}$/.test(rev);

/** The cached snapshot folder of `revision` (a branch, tag or commit), or undefined when not cached. */
export function cachedSnapshot(cacheDir: string, repoId: string, type: RepoType, revision: string): string | undefined {
  const folder = repoFolder(cacheDir, repoId, type);
  let commit = revision;
  if (!isCommitHash(revision)) {
    const ref = refFile(folder, revision);
    if (!existsSync(ref)) return undefined;
    commit = readFileSync(ref, 'utf8').trim();
  }
  const snap = join(folder, 'snapshots', commit);
  return existsSync(snap) ? snap : undefined;
}

/**
 * Why `revision` of a repo has no cached snapshot (cachedSnapshot gave none), said after the repo:
 * "is not in the cache …", or, when a ref names a snapshot that is gone, which ref and which commit.
 */
export function notCachedReason(cacheDir: string, repoId: string, type: RepoType, revision: string): string {
  const ref = refFile(repoFolder(cacheDir, repoId, type), revision);
  if (isCommitHash(revision) || !existsSync(ref)) return `is not in the cache ${cacheDir}`;
  return `is not in the cache: ${ref} names the snapshot ${readFileSync(ref, 'utf8').trim()}, which is not there`;
}

/**
 * The repo whose cached snapshot `dir` is (`<cache>/models--org--name/snapshots/<commit>`, or a folder
 * in one), else null. Its files are links into the cache's content-addressed blobs, shared by every
 * snapshot of the repo: a file written there goes into a blob, which then no longer holds its hash.
 */
export function cacheSnapshotRepo(dir: string): string | null {
  let path = resolve(dir);
  try {
    path = realpathSync(path);
  } catch {
    // not there yet: its name says
  }
  for (let p = path; dirname(p) !== p; p = dirname(p)) {
    const repo = /^(?:models|datasets|spaces)--(.+)$/.exec(basename(dirname(dirname(p))));
    if (basename(dirname(p)) === 'snapshots' && repo) return repo[1]!.replace('--', '/');
  }
  return null;
}

/**
 * Whether `file` (a real path, links resolved) is a blob of a Hugging Face cache
 * (`<cache>/models--org--name/blobs/<etag>`): content named by its hash and shared by the repo's
 * snapshots, and by any folder of links into them (huggingface_hub's local-dir downloads made those).
 */
export function isCacheBlob(file: string): boolean {
  return basename(dirname(file)) === 'blobs' && /^(?:models|datasets|spaces)--.+$/.test(basename(dirname(dirname(file))));
}

/**
 * Whether `file` (a real path) is a cache's content: a blob, or a file in a snapshot (a cache made
 * where links are not possible holds copies there).
 */
export function isCacheContent(file: string): boolean {
  return isCacheBlob(file) || cacheSnapshotRepo(dirname(file)) !== null;
}

/**
 * Why `dir` (as `shown`) must not be written, or null: it is in a cache snapshot, whose files are
 * links to blobs shared by every snapshot of the repo. `who` is what would write ("saving", "a run"),
 * `instead` the advice ("save to another folder").
 */
export function cacheSnapshotRefusal(dir: string, shown: string, who: string, instead: string): string | null {
  const repo = cacheSnapshotRepo(dir);
  if (repo === null) return null;
  return `${shown} is in the Hugging Face cache's snapshot of ${repo}: its files are links to the cache's shared blobs, which ${who} would overwrite; ${instead}`;
}
