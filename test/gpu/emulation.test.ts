// The CUDA emulation build checks itself (native/cuda/emulation/selftest_binding.cpp): its mma.sync
// and ldmatrix against matrices computed independently of the fragment tables' users, and misuse
// that must be a clear launch error rather than a hang or a silent result. Emulation build only;
// elsewhere (a real GPU, the CPU build) the suite says why it skips.
import { describe, expect, it } from 'vitest';
import { addon, emulated } from './gpu-helpers.js';

interface SelfTest {
  cudaEmulationSelfTest(name: string): string;
}

describe.skipIf(!emulated)(`CUDA emulation self-checks ${emulated ? '' : '(skipped: not the CUDA emulation build)'}`, () => {
  const run = (name: string): string => (addon() as unknown as SelfTest).cudaEmulationSelfTest(name);

  it('mma.sync m16n8k16 bf16: D = A B + C exactly for small exact values', () => {
    expect(run('mma')).toBe('ok');
  });

  it('ldmatrix .x4 and .x4.trans deliver every element where the PTX ISA says', () => {
    expect(run('ldmatrix')).toBe('ok');
  });

  it('a __syncthreads reached by half the block is a launch error', () => {
    expect(run('divergent_barrier')).toBe(
      'kernel divergent_barrier_kernel failed in block (0,0,0): __syncthreads reached by 32 of 64 threads (the others exited)',
    );
  });

  it('a shuffle with a partial mask is a launch error', () => {
    expect(run('partial_mask')).toBe(
      'kernel partial_mask_kernel failed in block (0,0,0): __shfl_xor_sync with a partial mask (the emulation requires every lane of the warp)',
    );
  });

  it('a shuffle that half the warp never reaches is a launch error', () => {
    expect(run('out_of_warp')).toBe(
      'kernel out_of_warp_kernel failed in block (0,0,0): __shfl_xor_sync reached by 16 of the 32 lanes of warp 0 (the others exited or wait at __syncthreads)',
    );
  });
});
