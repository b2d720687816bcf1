// The emulator's cp.async (native/cuda/emulation/ptx_async.cpp) checks itself: copy sizes, zero fill,
// commit and wait groups, and that the asynchrony is modelled (a copy lands only at its wait), so a
// pipeline with one wait too few is caught (a planted bug) instead of passing by luck. Emulation build
// only; elsewhere the suite says why it skips.
import { describe, expect, it } from 'vitest';
import { addon, emulated } from './gpu-helpers.js';
import { fault } from './self-test-child.js';

interface AsyncSelfTest {
  cudaEmulationAsyncSelfTest(name: string): string;
}

describe.skipIf(!emulated)(`CUDA emulation cp.async ${emulated ? '' : '(skipped: not the CUDA emulation build)'}`, () => {
  const run = (name: string): string => (addon() as unknown as AsyncSelfTest).cudaEmulationAsyncSelfTest(name);

  it('sizes 16/8/4, src-size zero fill, wait_group N and wait_all land exactly the groups the PTX ISA says', () => {
    expect(run('groups')).toBe('ok');
  });

  it('a two-stage pipeline with the right waits sums every tile exactly', () => {
    expect(run('pipeline')).toBe('ok');
  });

  it('the same pipeline with one wait too few (planted bug) fails: a stage refilled while the copy into it is in flight', () => {
    expect(fault('pipeline_missing_wait', 'cudaEmulationAsyncSelfTest')).toBe(
      'kernel pipeline_kernel failed in block (0,0,0): cp.async.wait_group: shared memory at offset 2, the destination of a cp.async in flight, was written (by a store or another copy) before the copy completed',
    );
  });

  it('a wider block after a narrower one with the same index and grid gets per-thread state for every thread', () => {
    expect(run('shape_change')).toBe('ok');
  });

  it('cp.async.cg of 8 bytes is a launch error', () => {
    expect(fault('cg_size', 'cudaEmulationAsyncSelfTest')).toBe('kernel cg_size_kernel failed in block (0,0,0): cp.async.cg: cp-size must be 16');
  });

  it('what the PTX ISA leaves undefined is a launch error: two copies of a group to the same bytes, a destination or source written in flight', () => {
    expect(fault('same_location', 'cudaEmulationAsyncSelfTest')).toBe(
      'kernel same_location_kernel failed in block (0,0,0): cp.async: two copies of one cp.async-group to the same shared memory',
    );
    expect(fault('write_in_flight', 'cudaEmulationAsyncSelfTest')).toBe(
      'kernel write_in_flight_kernel failed in block (0,0,0): cp.async.wait_group: shared memory at offset 26, the destination of a cp.async in flight, was written (by a store or another copy) before the copy completed',
    );
    expect(fault('source_modified', 'cudaEmulationAsyncSelfTest')).toBe(
      'kernel source_modified_kernel failed in block (0,0,0): cp.async.wait_group: the source of a cp.async in flight was modified before the copy completed',
    );
  });

  it('two threads copying the same data to the same bytes is no error: what either leaves there is the same', () => {
    expect(run('same_data')).toBe('ok');
  });

  it('a destination not aligned to cp-size is a launch error', () => {
    expect(fault('misaligned', 'cudaEmulationAsyncSelfTest')).toBe(
      'kernel misaligned_kernel failed in block (0,0,0): cp.async: address not aligned to cp-size',
    );
  });
});
