// Runs everywhere: asking for device 'cuda' either works (a usable GPU) or fails with a clear error —
// "no CUDA backend in this build" (CPU-only binary) or "no CUDA GPU is usable" (CUDA binary without a
// GPU or driver), or names the missing cuBLAS — and never crashes the process. (What nvcc makes of the
// kernels, SASS, PTX and registers: cuda-compile.test.ts.)
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EmbeddingModel, type NativeModelConfig } from '../src/model/embedding-model.js';
import { cudaStatus } from '../src/index.js';
import { nativeAddon } from '../src/native.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

interface Addon {
  NativeModel: new (config: NativeModelConfig, device: string) => { dispose(): void };
}

const tiny: NativeModelConfig = {
  vocab: 32, hidden: 16, intermediate: 24, layers: 1, heads: 2, kvHeads: 1, headDim: 8, dense: 8,
  rmsEps: 1e-5, ropeTheta: 10000, pooling: 'mean', normalized: true,
};
const clearError = /no CUDA backend|no CUDA GPU is usable|libcublas\.so\.13\/\.12 not found/;

function cudaWorks(): boolean {
  try {
    new (nativeAddon<Addon>().NativeModel)(tiny, 'cuda').dispose();
    return true;
  } catch {
    return false;
  }
}

describe('device cuda without a usable GPU', () => {
  const works = cudaWorks();

  it.skipIf(works)('new NativeModel(cfg, "cuda") throws a clear error', () => {
    const { NativeModel } = nativeAddon<Addon>();
    expect(() => new NativeModel(tiny, 'cuda')).toThrow(clearError);
  });

  it.skipIf(works)('cudaStatus() says why, in the words the backend throws', () => {
    const status = cudaStatus();
    expect(status.usable).toBe(false);
    expect(status.name).toBeUndefined();
    if (!status.compiled) {
      expect(status.reason).toBe('this build has no CUDA backend');
      expect(status.devices).toBe(0);
    } else {
      expect(status.reason).toMatch(/^no CUDA GPU is usable: |libcublas/);
      // no driver loaded (no /dev/nvidiactl): the reason says so, not the runtime's "driver version is insufficient"
      if (!existsSync('/dev/nvidiactl') && !status.emulated) expect(status.reason).toBe("no CUDA GPU is usable: no NVIDIA driver found (libcuda.so.1 could not be loaded); use device 'cpu'");
      expect(() => new (nativeAddon<Addon>().NativeModel)(tiny, 'cuda')).toThrow(`device 'cuda' requested but ${status.reason}`);
    }
  });

  it.skipIf(!works)('cudaStatus() of a usable GPU names the device and its memory', () => {
    const status = cudaStatus();
    expect(status).toMatchObject({ compiled: true, usable: true, reason: '' });
    expect(status.devices).toBeGreaterThan(0);
    expect(typeof status.name).toBe('string');
  });

  it.skipIf(works)("EmbeddingModel.load(dir, {device: 'cuda'}) rejects", async () => {
    const dir = writeTinyModel(makeTempDir()).dir;
    await expect(EmbeddingModel.load(dir, { device: 'cuda' })).rejects.toThrow(clearError);
    removeTempDirs();
  });

  it('an unknown device is an error too', () => {
    const { NativeModel } = nativeAddon<Addon>();
    expect(() => new NativeModel(tiny, 'tpu')).toThrow(/unknown device 'tpu'/);
  });
});
