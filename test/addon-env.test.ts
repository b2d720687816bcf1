// L2E_ADDON names the addon file to load (a separate build folder): a path relative to the working
// folder is taken as one, and a file that is not there is said to be missing, not "rebuild it".
import { spawnSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { nativeAddonPath } from '../src/native.js';
import { addonFileProblem } from '../src/addon-file.js';
import { makeTempDir } from './helpers/tinyModel.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// loads the addon through the built library, as an app would
const probe = "import('./dist/native.js').then((n) => n.nativeAddon()).catch((e) => { console.error(e.message); process.exit(3); })";
const run = (addon: string) => spawnSync(process.execPath, ['-e', probe], { cwd: root, env: { ...process.env, L2E_ADDON: addon }, encoding: 'utf8' });

describe('L2E_ADDON', () => {
  it('a path relative to the working folder loads that file', () => {
    const r = run(relative(root, nativeAddonPath()));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('a file that is not there is named as missing', () => {
    const r = run('no/such/l2e.node');
    expect(r.status).toBe(3);
    expect(r.stderr.trim()).toBe(`llama2-embedding: L2E_ADDON=no/such/l2e.node: no such file (${join(root, 'no/such/l2e.node')})`);
  });

  // a truncated addon was dlopen()ed and killed the process with SIGBUS, no message; a text file was
  // run as JavaScript; another package's addon loaded and failed as "NativeModel is not a constructor"
  it('a file that is not this package\'s whole addon is refused before it is loaded, saying why', () => {
    const dir = makeTempDir('l2e-addon-env-');
    const cut = join(dir, 'cut.node');
    const whole = readFileSync(nativeAddonPath());
    writeFileSync(cut, whole.subarray(0, 4000));
    const script = join(dir, 'script.node');
    writeFileSync(script, 'process.stderr.write("RAN AS JAVASCRIPT\\n")\n');
    const short = join(dir, 'short.node');
    writeFileSync(short, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]), Buffer.alloc(24)]));
    // a shared library of the system's, loaded by this process, which is no Node addon
    const maps = readFileSync('/proc/self/maps', 'utf8');
    const lib = /\s(\/\S+\/libm\.so\.6)$/m.exec(maps)?.[1] ?? /\s(\/\S+\.so[.\d]*)$/m.exec(maps)![1]!;
    const cases: [string, RegExp][] = [
      [short, /^llama2-embedding: L2E_ADDON=\S+short\.node: it is cut short: 30 bytes, fewer than an ELF header \(an interrupted copy\?\) \(/],
      [lib, new RegExp(`^llama2-embedding: L2E_ADDON=${lib.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: it does not load as a Node addon \\(Module did not self-register: .+\\) \\(`)],
      [cut, /^llama2-embedding: L2E_ADDON=\S+cut\.node: it is cut short: 4000 bytes, where its ELF headers reach byte \d+ \(an interrupted copy\?\) \(/],
      [script, /^llama2-embedding: L2E_ADDON=\S+script\.node: it is not a native addon \(a \.node file is a shared library\) \(/],
      [dir, /^llama2-embedding: L2E_ADDON=\S+: it is a folder, not a \.node file \(/],
    ];
    for (const [file, said] of cases) {
      const r = run(file);
      expect([r.status, r.signal], file).toEqual([3, null]);
      expect(r.stderr.trim()).toMatch(said);
    }
    expect(addonFileProblem(nativeAddonPath())).toBeNull();
  });

  // require() took a name not ending in .node for JavaScript: "Invalid or unexpected token"
  it('an addon under another name (l2e.so) loads as the addon', () => {
    const other = join(makeTempDir('l2e-addon-env-'), 'l2e.so');
    copyFileSync(nativeAddonPath(), other);
    const r = run(other);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

});
