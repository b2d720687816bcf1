// L2E_ADDON names the addon file to load (a separate build folder): a path relative to the working
// folder is taken as one, and a file that is not there is said to be missing, not "rebuild it".
import { spawnSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../src/native.js';

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
});
