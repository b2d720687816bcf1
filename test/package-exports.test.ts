// The package as its users load it (self-reference by name, through package.json "exports"): the
// same API from `import` and from `require()`, on the Node versions "engines" admits. The packed
// install, TypeScript builds included, is checked by .ci/pack-install.sh.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
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

  // Node 20.17/20.18's require() of ES modules (--experimental-require-module) overflowed its stack on
  // the one cycle there was (eval/knn <-> eval/metrics)
  it('no module of dist/ imports itself through others', () => {
    const dist = join(repoRoot, 'dist');
    const files = (readdirSync(dist, { recursive: true, encoding: 'utf8' })).filter((f) => f.endsWith('.js')).map((f) => join(dist, f));
    const imports = new Map(
      files.map((f) => [f, [...readFileSync(f, 'utf8').matchAll(/^(?:import|export)\b[^'"\n]*?\bfrom\s+['"](\.[^'"]+)['"]/gm)].map((m) => resolve(dirname(f), m[1]!))]),
    );
    expect(imports.get(join(dist, 'eval', 'metrics.js'))).toContain(join(dist, 'eval', 'knn.js')); // the pattern reads imports
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      path.push(f);
      for (const d of imports.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push(path.slice(path.indexOf(d)).map((x) => relative(dist, x)).join(' -> '));
        else if (!state.has(d)) visit(d);
      }
      path.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('"engines" admits only Node versions whose require() loads ES modules unflagged', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe('^20.19.0 || >=22.12.0');
  });
});
