// Runs everywhere: asking for device 'cuda' either works (a usable GPU) or fails with a clear error —
// "no CUDA backend in this build" (CPU-only binary) or "no CUDA GPU is usable" (CUDA binary without a
// GPU or driver), or names the missing cuBLAS — and never crashes the process.
import { describe, expect, it } from 'vitest';
import { EmbeddingModel, type NativeModelConfig } from '../src/model/embedding-model.js';
import { nativeAddon } from '../src/native.js';
import { makeTempDir, removeTempDirs, writeTinyModel } from './helpers/tinyModel.js';

interface Addon {
  NativeModel: new (config: NativeModelConfig, device: string) => { dispose(): void };
  cudaInfo?: () => { usable: boolean; error?: string };
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

  // a CPU-only build has no cudaInfo (the test above covers its error)
  const hasCudaInfo = typeof nativeAddon<Addon>().cudaInfo === 'function';
  it.skipIf(works || !hasCudaInfo)(`a CUDA build without a GPU says why (cudaInfo)${hasCudaInfo ? '' : ' (skipped: a CPU-only build)'}`, () => {
    const info = nativeAddon<Addon>().cudaInfo!();
    expect(info.usable).toBe(false);
    expect(() => new (nativeAddon<Addon>().NativeModel)(tiny, 'cuda')).toThrow(/no CUDA GPU is usable|libcublas/);
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
