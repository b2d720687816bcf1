// resolveModel: a model argument as a local folder. An existing folder is used as is; an "org/name"
// id resolves to its cached snapshot (no network when cached), else it is downloaded first.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cachedSnapshot, checkRepoId, defaultCacheDir } from './cache.js';
import { snapshotDownload, type SnapshotOptions } from './download.js';

/** What a model needs: configs, tokenizer, safetensors weights (not .bin / .h5 / .onnx duplicates). */
export const MODEL_FILES = ['*.json', '*.safetensors', 'tokenizer.model'];

export interface ResolveOptions extends Pick<SnapshotOptions, 'endpoint' | 'token' | 'retry' | 'idleTimeoutMs' | 'onProgress'> {
  cacheDir?: string;
  revision?: string;
}

export async function resolveModel(nameOrDir: string, opts: ResolveOptions = {}): Promise<string> {
  const local = resolve(nameOrDir);
  if (existsSync(local) && statSync(local).isDirectory()) return local;
  try {
    checkRepoId(nameOrDir);
  } catch {
    throw new Error(`model folder not found: ${local} (nor is "${nameOrDir}" a Hugging Face id like org/name)`);
  }
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const revision = opts.revision ?? 'main';
  const cached = cachedSnapshot(cacheDir, nameOrDir, 'model', revision);
  if (cached && existsSync(join(cached, 'config.json'))) return cached;
  const result = await snapshotDownload(nameOrDir, { ...opts, cacheDir, revision, repoType: 'model', include: MODEL_FILES });
  return result.dir;
}
