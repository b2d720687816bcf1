// The package as its users load it (self-reference by name, through package.json "exports"): the
// same API from `import` and from `require()`, on the Node versions "engines" admits. The packed
// install, TypeScript builds included, is checked by .ci/pack-install.sh.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixture.js';

const built = existsSync(join(repoRoot, 'dist', 'index.js')) && existsSync(join(repoRoot, 'dist', 'index.cjs'));

function keys(code: string, input: 'commonjs' | 'module'): string[] {
  const r = spawnSync(process.execPath, ['--input-type', input, '-e', code], { cwd: repoRoot, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return (JSON.parse(r.stdout) as string[]).sort();
}

describe.skipIf(!built)('package exports (dist/ built)', () => {
  it('require() gives the same exports as import, with no warning', () => {
    const esm = keys("const m = await import('llama2-embedding'); console.log(JSON.stringify(Object.keys(m)))", 'module');
    const cjs = keys("const m = require('llama2-embedding'); console.log(JSON.stringify(Object.keys(m)))", 'commonjs');
    expect(esm).toContain('knn');
    expect(esm).toContain('similarity');
    expect(cjs).toEqual(esm);
  });

  it('"engines" admits only Node versions whose require() loads ES modules unflagged', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe('^20.19.0 || >=22.12.0');
  });
});
