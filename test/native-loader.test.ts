// Choosing the CUDA prebuilt at load time: used only when present, a driver is there and the binary
// reports a usable GPU; otherwise a one-line notice and the CPU build (never a crash).
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCudaPrebuilt, nativeAddon, nativeAddonPath } from '../src/native.js';
import { makeTempDir } from './helpers/tinyModel.js';

interface Status {
  cudaStatus(): { compiled: boolean; usable: boolean; reason: string };
}

function rootWithCudaPrebuilt(content: string | null): string {
  const root = makeTempDir('l2e-loader-');
  const dir = join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  if (content === null) copyFileSync(nativeAddonPath(), join(dir, 'l2e.node'));
  else writeFileSync(join(dir, 'l2e.node'), content);
  return root;
}

describe('CUDA prebuilt selection', () => {
  it('is skipped silently without a driver or without the file', () => {
    const notices: string[] = [];
    expect(loadCudaPrebuilt(rootWithCudaPrebuilt(null), { driverPresent: false, notice: (m) => notices.push(m) })).toBeUndefined();
    expect(loadCudaPrebuilt(makeTempDir(), { driverPresent: true, notice: (m) => notices.push(m) })).toBeUndefined();
    expect(notices).toEqual([]);
  });

  it('is used only when the binary reports a usable GPU; otherwise one notice says why', () => {
    const status = nativeAddon<Status>().cudaStatus();
    const notices: string[] = [];
    const r = loadCudaPrebuilt(rootWithCudaPrebuilt(null), { driverPresent: true, notice: (m) => notices.push(m) });
    if (status.usable) {
      expect(r).toBeDefined();
      expect(notices).toEqual([]);
    } else {
      expect(r).toBeUndefined();
      expect(notices).toHaveLength(1);
      expect(notices[0]).toContain(`CUDA prebuilt not used (${status.reason}); using the CPU build`);
    }
  });

  it('a broken CUDA prebuilt falls back with a notice', () => {
    const notices: string[] = [];
    const root = rootWithCudaPrebuilt('not a shared object');
    const r = loadCudaPrebuilt(root, { driverPresent: true, notice: (m) => notices.push(m) });
    expect(r).toBeUndefined();
    const file = join(root, 'prebuilds', 'cuda', `${process.platform}-${process.arch}`, 'l2e.node');
    expect(notices).toEqual([`llama2-embedding: CUDA prebuilt ${file} not used (it is not a native addon (a .node file is a shared library)); using the CPU build`]);
  });
});
