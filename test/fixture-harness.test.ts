// The harness contract: `node scripts/fixture-check.mjs <fixtureDir> <out.safetensors>` writes q_emb,
// p_emb, loss and grad.<name> that agree with the fixture's expected.safetensors; it exits non-zero
// naming the first difference when token ids differ.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nativeAddonPath } from '../src/native.js';
import { readSafetensorsHeader, readTensorF32 } from '../src/model/safetensors.js';
import { hasTinyMha, relError, repoRoot, skipNote, tinyMha } from './helpers/fixture.js';
import { makeTempDir, removeTempDirs } from './helpers/tinyModel.js';

// The script imports ../dist/fixture.js. Run it against the sources as they are now, not whatever
// dist/ a past build left: compile src/ afresh into a scratch package root (inside node_modules so
// that the dependencies resolve) beside a copy of the script, with this addon (L2E_ADDON).
const scratch = join(repoRoot, 'node_modules', '.cache', 'l2e-fixture-harness');
const script = join(scratch, 'scripts', 'fixture-check.mjs');
const env = { ...process.env, L2E_ADDON: nativeAddonPath() };

function tensors(file: string): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const t of readSafetensorsHeader(file).tensors) m.set(t.name, readTensorF32(t));
  return m;
}

describe.skipIf(!hasTinyMha)(`scripts/fixture-check.mjs ${hasTinyMha ? '' : skipNote('fixtures/tiny-mha')}`, () => {
  beforeAll(() => {
    rmSync(scratch, { recursive: true, force: true });
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', join(scratch, 'dist'), '--declaration', 'false', '--sourceMap', 'false', '--inlineSources', 'false'];
    const r = spawnSync(process.execPath, [tsc, ...args], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    mkdirSync(join(scratch, 'scripts'), { recursive: true });
    cpSync(join(repoRoot, 'scripts', 'fixture-check.mjs'), script);
  }, 300_000);
  afterAll(() => {
    removeTempDirs();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('writes every expected tensor within tolerance', () => {
    const out = join(makeTempDir(), 'ours.safetensors');
    const r = spawnSync(process.execPath, [script, tinyMha, out], { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    const ours = tensors(out);
    const ref = tensors(join(tinyMha, 'expected.safetensors'));
    for (const name of ['q_emb', 'p_emb', 'loss']) expect(ours.has(name), name).toBe(true);
    for (const [name, data] of ours) {
      const tol = name === 'loss' ? 1e-5 : 1e-4;
      expect(relError(data, ref.get(name)!), name).toBeLessThan(tol);
    }
    expect([...ours.keys()].filter((n) => n.startsWith('grad.')).length).toBe([...ref.keys()].filter((n) => n.startsWith('grad.')).length);
  });

  it('exits non-zero naming the first token-id difference', () => {
    const dir = makeTempDir();
    cpSync(tinyMha, dir, { recursive: true });
    const fx = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as { p_ids: number[][] };
    fx.p_ids[1]![3] = 7;
    writeFileSync(join(dir, 'case.json'), JSON.stringify(fx));
    const r = spawnSync(process.execPath, [script, dir, join(dir, 'out.safetensors')], { encoding: 'utf8', env });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/p_ids\[1\] differs at token 3/);
  });
});
