// resolveModel: a model argument as a local folder. An existing folder is used as is; an "org/name"
// id resolves to its cached snapshot (no network when cached), else it is downloaded first (not with
// HF_HUB_OFFLINE=1). A name that is neither says what was tried: the folder, then the Hub id; a name
// written as a path (./x, ../x, /x) is only ever a folder.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { cachedSnapshot, checkRepoId, defaultCacheDir, hubOffline, notCachedReason } from './cache.js';
import { offlineReason, snapshotDownload, type SnapshotOptions } from './download.js';
import { readRegularFileText } from '../util/regular-file.js';
import { describeValue } from '../util/describe.js';
import { checkOptions, optionKeys } from '../util/options.js';

/** What a model needs: configs, tokenizer, safetensors weights (not .bin / .h5 / .onnx duplicates). */
export const MODEL_FILES = ['*.json', '*.safetensors', 'tokenizer.model'];

export interface ResolveOptions extends Pick<SnapshotOptions, 'endpoint' | 'token' | 'retry' | 'idleTimeoutMs' | 'onProgress'> {
  cacheDir?: string;
  revision?: string;
  /** No downloads: only a local folder or a cached snapshot (default: HF_HUB_OFFLINE is 1/true/yes/on). */
  offline?: boolean;
}

const RESOLVE_OPTIONS = optionKeys<ResolveOptions>({
  endpoint: true, token: true, retry: true, idleTimeoutMs: true, onProgress: true, cacheDir: true, revision: true, offline: true,
});

/**
 * The model folder `nameOrDir` names when it is one here, null when it is not and may be a Hub id; a
 * name that can only be a folder (./x, ../x, /x, ~/x) and is not one, or a folder that cannot be a
 * model's, throws. Synchronous: a command checks it before it starts (serve, before it listens).
 */
export function localModelFolder(nameOrDir: string): string | null {
  const local = resolve(nameOrDir);
  if (existsSync(local)) {
    if (!statSync(local).isDirectory()) throw new Error(`${local} is not a model folder`);
    if (!existsSync(join(local, 'config.json'))) {
      // e.g. the demo's output folder, whose model is in model/
      const inner = modelSubfolders(local);
      if (inner.length > 0) {
        const hint = inner.map((d) => relative(process.cwd(), d) + '/').join(' or ');
        throw new Error(`${local} holds no config.json; the model is in a subfolder: use ${hint}`);
      }
    }
    return local;
  }
  // ./x, ../x, /x (and ~/x, which no shell expanded) name a folder, never a Hub id
  if (isAbsolute(nameOrDir) || /^(~|\.{1,2})([\\/]|$)/.test(nameOrDir)) throw new Error(`model folder not found: ${local}`);
  return null;
}

export async function resolveModel(nameOrDir: string, opts: ResolveOptions = {}): Promise<string> {
  if (typeof nameOrDir !== 'string' || nameOrDir === '') throw new TypeError(`resolveModel: expected a model folder or a Hub id (org/name), got ${describeValue(nameOrDir)}`);
  checkOptions('resolveModel', opts, RESOLVE_OPTIONS); // a misspelt offline must not download
  // (as snapshotDownload's: 'false' went offline)
  if (opts.offline !== undefined && typeof opts.offline !== 'boolean') throw new TypeError(`resolveModel: offline must be true or false, got ${describeValue(opts.offline)}`);
  const folder = localModelFolder(nameOrDir);
  if (folder !== null) return folder;
  const local = resolve(nameOrDir); // no folder there: said in the messages below
  try {
    checkRepoId(nameOrDir);
  } catch {
    throw new Error(`model folder not found: ${local} (nor is "${nameOrDir}" a Hugging Face id like org/name)`);
  }
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const revision = opts.revision ?? 'main';
  const cached = cachedSnapshot(cacheDir, nameOrDir, 'model', revision);
  const missing = cached ? missingModelFiles(cached) : null;
  if (cached && missing!.length === 0) return cached;
  // A typo'd local path ("l2e-demo/modl") looks like an id: the folder reading comes first then.
  // Otherwise the Hub's reason leads, the missing folder after it.
  const first = nameOrDir.split('/')[0]!;
  const typo = existsSync(first) && statSync(first).isDirectory();
  const fail = (hubReason: string): Error =>
    new Error(
      typo
        ? `model folder not found: ${local} (${first}/ is a local folder: is the rest of the name misspelt?); tried "${nameOrDir}" as a Hugging Face id: ${hubReason}`
        : `${hubReason} (nor is there a model folder ${local})`,
    );
  if (opts.offline ?? hubOffline()) {
    const where = cached ? `: its snapshot in the cache (${cached}) lacks ${missing!.join(', ')}` : ` ${notCachedReason(cacheDir, nameOrDir, 'model', revision)}`;
    throw fail(`model repo ${nameOrDir}${where}, and ${offlineReason(opts.offline)}, so it was not downloaded`);
  }
  try {
    const result = await snapshotDownload(nameOrDir, { ...opts, cacheDir, revision, repoType: 'model', include: MODEL_FILES });
    return result.dir;
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err));
  }
}

/**
 * What a cached snapshot lacks of a loadable model: config.json and the weights (model.safetensors, or
 * the index and every shard it names). A pull cut short, or one with --include, links some files only.
 */
export function missingModelFiles(dir: string): string[] {
  const missing = existsSync(join(dir, 'config.json')) ? [] : ['config.json'];
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(join(dir, 'model.safetensors'))) return missing;
  if (!existsSync(index)) return [...missing, 'model.safetensors'];
  let shards: string[];
  try {
    const map = (JSON.parse(readRegularFileText(index)) as { weight_map?: Record<string, unknown> }).weight_map ?? {};
    shards = [...new Set(Object.values(map).filter((v): v is string => typeof v === 'string'))];
  } catch {
    return missing; // a broken index: loading it says what is wrong
  }
  return [...missing, ...shards.filter((f) => !existsSync(join(dir, f)))];
}

/** Folders directly inside `dir` that hold a config.json. */
function modelSubfolders(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'config.json')))
      .map((e) => join(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}
