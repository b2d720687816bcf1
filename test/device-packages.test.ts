// scripts/gpu/device-packages.cjs: the node_modules/ entries a GPU-machine run leaves behind
// (scripts/gpu/pack.sh sets them aside so that a run stays under its 64 MiB), found by walking the
// dependencies of the library and of vitest as Node resolves them. (Named outside the test/gpu prefix:
// `vitest run test/gpu` selects files by it, on the GPU machine too, where node_modules holds only what
// the script keeps.)
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixture.js';
import { makeTempDir } from './helpers/tinyModel.js';

const script = join(repoRoot, 'scripts/gpu/device-packages.cjs');

function run(root: string): { code: number | null; out: string[]; err: string } {
  const r = spawnSync(process.execPath, [script, root], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout.split('\n').filter((l) => l !== ''), err: r.stderr };
}

/** A package folder with a package.json of these dependency fields. */
function pkg(folder: string, fields: Record<string, string[]> = {}): void {
  mkdirSync(folder, { recursive: true });
  const json: Record<string, unknown> = { name: folder.split('node_modules/').pop(), version: '1.0.0' };
  for (const [field, names] of Object.entries(fields)) json[field] = Object.fromEntries(names.map((n) => [n, '*']));
  writeFileSync(join(folder, 'package.json'), JSON.stringify(json));
}

describe('the packages a GPU run leaves behind', () => {
  it('keeps the dependency closure of the library and vitest, nested copies and installed optional and peer ones included', () => {
    const root = makeTempDir();
    const nm = join(root, 'node_modules');
    pkg(root, { dependencies: ['a', '@s/b'], devDependencies: ['x', 'vitest'] });
    pkg(join(nm, 'a'), { dependencies: ['c'], optionalDependencies: ['o', 'not-installed'], peerDependencies: ['p'] });
    pkg(join(nm, '@s/b'), { dependencies: ['d'] });
    pkg(join(nm, '@s/b/node_modules/d')); // the copy @s/b loads; the top-level d is another version
    pkg(join(nm, 'd'));
    for (const name of ['c', 'o', 'p', 'e', 'x', '@s/y', '@t/z']) pkg(join(nm, name));
    pkg(join(nm, 'vitest'), { dependencies: ['e'] });
    mkdirSync(join(nm, '.bin'));
    const r = run(root);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toEqual(['@s/y', '@t/z', 'd', 'x']);
  });

  it('a dependency of the library that is not installed is an error naming it', () => {
    const root = makeTempDir();
    pkg(root, { dependencies: ['absent'] });
    pkg(join(root, 'node_modules/vitest'));
    const r = run(root);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`device-packages: absent is not installed in ${join(root, 'node_modules')} (run npm ci)`);
  });

  it('on this checkout: the test runner and the library stay, the build tools and CPU-only peers go', () => {
    const r = run(repoRoot);
    expect(r.code).toBe(0);
    for (const name of r.out) expect(existsSync(join(repoRoot, 'node_modules', name)), name).toBe(true);
    for (const kept of ['vitest', 'vite', 'fastify', 'prom-client', '@huggingface/tokenizers', 'node-addon-api', 'node-gyp-build'])
      expect(r.out).not.toContain(kept);
    for (const left of ['typescript', 'cmake-js', 'node-llama-cpp', 'playwright-core', 'openai', 'prebuildify'])
      expect(r.out).toContain(left);
  });
});
