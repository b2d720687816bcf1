// binding.gyp (node-gyp) and CMakeLists.txt (cmake-js) must build the same sources: binding.gyp
// takes scripts/native-sources.cjs's list, CMake globs the same folders; this keeps them equal.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
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

  it('the list is every C++ source under those folders, found independently (a file the builds would skip fails)', () => {
    // an independent walk: every C/C++ source at any depth, whatever its extension
    const found: string[] = [];
    const walk = (rel: string): void => {
      for (const e of readdirSync(join(repoRoot, rel), { withFileTypes: true })) {
        const path = `${rel}/${e.name}`;
        if (e.isDirectory()) walk(path);
        else if (/\.(c|cc|cpp|cxx|c\+\+)$/.test(e.name)) found.push(path);
      }
    };
    for (const d of dirs) walk(d);
    expect(nativeSources().sort()).toEqual(found.sort());
    expect(found).toContain('native/core/model.cpp');
    expect(found).toContain('native/cpu/isa.cpp');
  });
});
