// Loads the native addon once (prebuilt binary or local build, through node-gyp-build). Each module
// declares the typed shape of the natives it uses and reads them through nativeAddon<T>().
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
/** Package root: this file lives in src/ (tests) or dist/ (built). */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

let cached: unknown;

function load(): unknown {
  if (cached === undefined) {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    try {
      // L2E_ADDON names a .node file to load instead (a separate build folder, a CUDA build).
      const explicit = process.env['L2E_ADDON'];
      cached = explicit ? require(explicit) : nodeGypBuild(packageRoot);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw new Error(
        `llama2-embedding: the native addon could not be loaded (${msg}). ` +
          'Build it with `npm run build:native` (cmake-js) or `npx node-gyp rebuild`.',
      );
    }
  }
  return cached;
}

/** The addon, typed by the caller's view of the functions it needs. */
export function nativeAddon<T>(): T {
  return load() as T;
}
