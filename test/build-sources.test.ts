// binding.gyp (node-gyp) and CMakeLists.txt (cmake-js) must build the same sources: binding.gyp
// takes scripts/native-sources.cjs's list, CMake globs the same folders; this keeps them equal.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixture.js';
import { makeTempDir } from './helpers/tinyModel.js';

const require = createRequire(import.meta.url);
const { nativeSources, testingSources, dirs, testingDir } = require('../scripts/native-sources.cjs') as {
  nativeSources: () => string[];
  testingSources: () => string[];
  dirs: string[];
  testingDir: string;
};

describe('native build sources', () => {
  it('binding.gyp uses the shared source lists: the addon\'s and the test addon\'s', () => {
    const gyp = readFileSync(join(repoRoot, 'binding.gyp'), 'utf8');
    expect(gyp).toContain('"sources": ["<!@(node scripts/native-sources.cjs)"]');
    expect(gyp).toContain('"sources": ["<!@(node scripts/native-sources.cjs testing)"]');
  });

  it('CMakeLists.txt globs exactly the folders of the shared list, and native/testing for the test addon only', () => {
    const cmake = readFileSync(join(repoRoot, 'CMakeLists.txt'), 'utf8');
    const glob = (block: string): string[] =>
      [...block.matchAll(/\$\{CMAKE_SOURCE_DIR\}\/(native\/[a-z]+)\/\*\.cpp/g)].map((m) => m[1]!);
    const addonBlock = /file\(GLOB L2E_CORE_SOURCES[^)]*\)/.exec(cmake)![0];
    const testingBlock = /file\(GLOB L2E_TESTING_SOURCES[^)]*\)/.exec(cmake)![0];
    expect(glob(addonBlock).sort()).toEqual([...dirs].sort());
    expect(glob(testingBlock)).toEqual([testingDir]);
    expect(glob(cmake).sort()).toEqual([...dirs, testingDir].sort());
  });

  it('the test addon builds the addon\'s sources and native/testing\'s', () => {
    const own = testingSources().filter((f) => !nativeSources().includes(f));
    expect(testingSources().slice(0, nativeSources().length)).toEqual(nativeSources());
    expect(own).toContain('native/testing/backend_ops_binding.cpp');
    for (const f of own) expect(f.startsWith(`${testingDir}/`)).toBe(true);
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

  it('an emulation build folder stays one when it is configured again without L2E_CUDA_EMULATE (as ninja does when a source is added)', () => {
    const out = makeTempDir();
    const env = (emulate?: string): NodeJS.ProcessEnv => {
      const e = { ...process.env };
      delete e['L2E_CUDA_EMULATE'];
      if (emulate !== undefined) e['L2E_CUDA_EMULATE'] = emulate;
      return e;
    };
    const configure = (args: string[], e: NodeJS.ProcessEnv): string => {
      const r = spawnSync(args[0]!, args.slice(1), { cwd: repoRoot, env: e, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const emulated = 'l2e: CUDA backend in CPU emulation (native/cuda/emulation)';
    expect(configure([process.execPath, require.resolve('cmake-js/bin/cmake-js'), 'configure', '--out', out], env('1'))).toContain(emulated);
    expect(configure(['cmake', out], env())).toContain(emulated);
    expect(readFileSync(join(out, 'CMakeCache.txt'), 'utf8')).toMatch(/^L2E_CUDA_EMULATE:BOOL=1$/m);
  });
});
