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
  // sm_90a (native/cuda/emulation/ptx_sm90.cpp, checked by selftest_sm90.cpp)
  it('mbarrier: phases, parity, arrival count and tx-count (expect_tx / complete_tx), a wait across warps', () => {
    expect(run('mbarrier')).toBe('ok');
  });

  it('an mbarrier wait that nothing can complete is a launch error, not a hang', () => {
    expect(run('mbarrier_deadlock')).toBe(
      'kernel mbarrier_deadlock_kernel failed in block (0,0,0): deadlock: 32 of 32 threads poll a wait (mbarrier) that nothing can complete any more',
    );
  });

  it('cp.async.bulk.tensor 2D and 3D boxes: 128-byte swizzle, zero fill out of bounds, nothing visible before the mbarrier wait', () => {
    expect(run('tma')).toBe('ok');
  });

  it('cuTensorMapEncodeTiled refuses what the driver contract forbids', () => {
    expect(run('tensor_map_errors')).toBe('ok');
  });

  it('wgmma m64nNk16 bf16: smem descriptors (K-major and N-major, 128B swizzle, no swizzle), register A, results only after wait_group', () => {
    expect(run('wgmma')).toBe('ok');
  });

  it('an accumulator written while its wgmma is in flight is a launch error', () => {
    expect(run('wgmma_write_in_flight')).toBe(
      'kernel wgmma_write_in_flight_kernel failed in block (0,0,0): wgmma: accumulator registers written while their wgmma.mma_async was in flight (before wgmma.wait_group)',
    );
  });

  it('wgmma.mma_async without wgmma.fence is a launch error', () => {
    expect(run('wgmma_nofence')).toBe(
      "kernel wgmma_nofence_kernel failed in block (0,0,0): wgmma.mma_async without a wgmma.fence since the warp's last wgmma.wait_group",
    );
  });
});
