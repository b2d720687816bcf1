// binding.gyp (node-gyp) and CMakeLists.txt (cmake-js) must build the same sources: binding.gyp
// takes scripts/native-sources.cjs's list, CMake globs the same folders; this keeps them equal.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixture.js';

const require = createRequire(import.meta.url);
const { nativeSources, dirs } = require('../scripts/native-sources.cjs') as {
  nativeSources: () => string[];
  dirs: string[];
};

describe('native build sources', () => {
  it('binding.gyp uses the shared source list', () => {
    const gyp = readFileSync(join(repoRoot, 'binding.gyp'), 'utf8');
    expect(gyp).toContain('<!@(node scripts/native-sources.cjs)');
  });

  it('CMakeLists.txt globs exactly the folders of the shared list', () => {
    const cmake = readFileSync(join(repoRoot, 'CMakeLists.txt'), 'utf8');
    const globbed = [...cmake.matchAll(/\$\{CMAKE_SOURCE_DIR\}\/(native\/[a-z]+)\/\*\.cpp/g)].map((m) => m[1]);
    expect(globbed.sort()).toEqual([...dirs].sort());
  });

  it('the list covers every .cpp of those folders and nothing else', () => {
    const list = nativeSources();
    expect(list.length).toBeGreaterThan(5);
    for (const f of list) expect(f).toMatch(/^native\/(core|cpu|addon)\/[\w-]+\.cpp$/);
    expect(list).toContain('native/core/model.cpp');
    expect(list).toContain('native/cpu/gemm.cpp');
  });
});
