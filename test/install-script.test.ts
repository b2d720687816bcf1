// scripts/install.cjs, as npm runs it in an installed package: a prebuilt that loads is used (whatever
// L2E_CPU_ISA the installing shell has: that is the library's choice at run time), and when it does not
// load or no compiler toolchain can run, the message says what happened (a signal, a missing node-gyp),
// not only "install a compiler".
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../src/native.js';
import { repoRoot } from './helpers/fixture.js';
import { makeTempDir } from './helpers/tinyModel.js';

/** A package folder holding install.cjs and `prebuilt` as its linux prebuilt; node-gyp-build from this checkout. */
function packageWith(prebuilt: Buffer): string {
  const root = makeTempDir('l2e-install-');
  mkdirSync(join(root, 'scripts'));
  copyFileSync(join(repoRoot, 'scripts', 'install.cjs'), join(root, 'scripts', 'install.cjs'));
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'node.napi.glibc.node'), prebuilt);
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  return root;
}

/** install.cjs run as npm would, without npm's node-gyp and with no node-gyp on the PATH. */
function install(root: string, env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_config_')));
  return spawnSync(process.execPath, [join(root, 'scripts', 'install.cjs')], {
    cwd: root,
    encoding: 'utf8',
    env: { ...clean, PATH: '/nonexistent', ...env },
  });
}

describe.skipIf(process.platform !== 'linux')('the install script', () => {
  it("uses a prebuilt that loads, whatever the installing shell's L2E_CPU_ISA (a good binary was thrown away)", () => {
    const r = install(packageWith(readFileSync(nativeAddonPath())), { L2E_CPU_ISA: 'bogus' });
    expect([r.status, r.stderr.trim()]).toEqual([0, `llama2-embedding: using the prebuilt binary ${join('prebuilds', `${process.platform}-${process.arch}`, 'node.napi.glibc.node')}`]);
  });

  it('builds from source when npm_config_build_from_source asks, as true or as 1 (1 was ignored), not as false', () => {
    const root = packageWith(readFileSync(nativeAddonPath()));
    const building = 'building the native addon from source with node-gyp (needs python3, make and a C++17 compiler)';
    for (const [value, why] of [['true', '--build-from-source was given'], ['1', 'npm_config_build_from_source=1']]) {
      const r = install(root, { npm_config_build_from_source: value });
      expect([r.status, r.stderr.trim().split('\n')[0]]).toEqual([1, `llama2-embedding: ${why}; ${building}`]); // (no node-gyp here)
    }
    for (const value of ['false', '0', '']) expect(install(root, { npm_config_build_from_source: value }).status).toBe(0);
  });

  it('says a prebuilt that killed its probe was killed, and that node-gyp could not be run', () => {
    const r = install(packageWith(readFileSync(nativeAddonPath()).subarray(0, 4000)));
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^llama2-embedding: the prebuilt binary \S+ does not load \((killed by SIG[A-Z]+|.*[Ee]rror.*)\); building the native addon from source/);
    expect(lines.at(-1)).toBe(
      'llama2-embedding: could not run node-gyp: spawnSync node-gyp ENOENT. Install it (npm install -g node-gyp) or run the install through npm.',
    );
  });
});
