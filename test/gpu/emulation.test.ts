// The CUDA emulation build checks itself (native/cuda/emulation/selftest_binding.cpp): its mma.sync
// and ldmatrix against matrices computed independently of the fragment tables' users, and misuse
// that must be a clear launch error rather than a hang or a silent result; fresh NaN-filled static
// shared memory in every block; out-of-bounds reads that end the process naming the kernel (in a child
// process), and under the sanitizers (npm run test:sanitize -- --gpu) those only AddressSanitizer
// sees. Emulation build only; elsewhere (a real GPU, the CPU build) the suite says why it skips.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { testingAddonPath } from '../helpers/testing-addon.mjs';
import { addon, emulated } from './gpu-helpers.js';
import { fault, selfTestInChild } from './self-test-child.js';

interface SelfTest {
  cudaEmulationSelfTest(name: string): string;
}

/** The sanitizer build (scripts/test-sanitize.mjs with --gpu) has the leak-check binding. */
const sanitized = emulated && 'sanitizerLeakCheck' in (addon() as object);

describe.skipIf(!emulated)(`CUDA emulation self-checks ${emulated ? '' : '(skipped: not the CUDA emulation build)'}`, () => {
  const run = (name: string): string => (addon() as unknown as SelfTest).cudaEmulationSelfTest(name);

  it('mma.sync m16n8k16 bf16: D = A B + C exactly for small exact values', () => {
    expect(run('mma')).toBe('ok');
  });

  it('ldmatrix .x4 and .x4.trans deliver every element where the PTX ISA says', () => {
    expect(run('ldmatrix')).toBe('ok');
  });

  it('ex2.approx.ftz.f32: powers of two, subnormal inputs and results flushed, the special values', () => {
    expect(run('ex2')).toBe('ok');
  });

  it('__float_as_uint gives the binary32 encoding: signed zeros, a subnormal, infinity, a NaN\'s payload', () => {
    expect(run('float_as_uint')).toBe('ok');
  });

  it('__any_sync is non-zero in every lane iff some lane votes true (none, each lane alone, all)', () => {
    expect(run('any_sync')).toBe('ok');
  });

  it('atomicAdd and atomicCAS on int: each old value returned once, one CAS winner, a failed compare stores nothing', () => {
    expect(run('atomics')).toBe('ok');
  });

  it('atomicAdd on float flushes subnormal inputs and results to signed zero in global memory, not in shared', () => {
    expect(run('atomics_float')).toBe('ok');
  });

  it('a __syncthreads reached by half the block is a launch error', () => {
    expect(fault('divergent_barrier')).toBe(
      'kernel divergent_barrier_kernel failed in block (0,0,0): __syncthreads reached by 32 of 64 threads (the others exited)',
    );
  });

  it('a shuffle with a partial mask is a launch error', () => {
    expect(fault('partial_mask')).toBe(
      'kernel partial_mask_kernel failed in block (0,0,0): __shfl_xor_sync with a partial mask (the emulation requires every lane of the warp)',
    );
  });

  it('a shuffle that half the warp never reaches is a launch error', () => {
    expect(fault('out_of_warp')).toBe(
      'kernel out_of_warp_kernel failed in block (0,0,0): __shfl_xor_sync reached by 16 of the 32 lanes of warp 0 (the others exited or wait at __syncthreads)',
    );
  });
  it('over 48 KiB of dynamic shared memory a launch needs the kernel\'s limit raised to its size (cudaFuncSetAttribute)', () => {
    expect(run('smem_default')).toBe(
      'kernel smem_default_kernel: 65536 bytes of dynamic shared memory, over its limit of 49152 (the default: raise it with cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))',
    );
    expect(run('smem_raised')).toBe('ok');
    expect(run('smem_short')).toBe('kernel smem_short_kernel: 65536 bytes of dynamic shared memory, over its limit of 57344 (set by cudaFuncSetAttribute)');
  });
  it('static and dynamic shared memory share the device\'s limit per block (16 KiB static with all but 8 KiB of it dynamic fails)', () => {
    expect(run('smem_sum_fits')).toBe('ok');
    expect(fault('smem_sum_over')).toBe(
      "kernel smem_sum_kernel failed in block (0,0,0): static (16384 bytes) and dynamic (224256 bytes) shared memory of the block exceed the device's 232448 bytes",
    );
  });
  // sm_90a (native/cuda/emulation/ptx_sm90.cpp, checked by selftest_sm90.cpp)
  it('mbarrier: phases, parity, arrival count and tx-count (expect_tx / complete_tx), a wait across warps', () => {
    expect(run('mbarrier')).toBe('ok');
  });

  it('an mbarrier wait that nothing can complete is a launch error, not a hang', () => {
    expect(fault('mbarrier_deadlock')).toBe(
      'kernel mbarrier_deadlock_kernel failed in block (0,0,0): deadlock: 32 of 32 threads poll a wait (mbarrier) that nothing can complete any more',
    );
  });

  it('an arrive-on in a phase whose previous phase no wait saw complete is a launch error', () => {
    expect(fault('mbarrier_overrun')).toBe(
      'kernel mbarrier_overrun_kernel failed in block (0,0,0): mbarrier.arrive: an arrive-on in a phase of the mbarrier at offset 0 whose previous phase no test_wait or try_wait has seen complete',
    );
  });

  it('cp.async.bulk.tensor 2D and 3D boxes: 128-byte swizzle, zero fill out of bounds, nothing but NaN before the mbarrier wait', () => {
    expect(run('tma')).toBe('ok');
  });

  it('a store into a bulk tensor copy\'s destination before the copy completes is a launch error', () => {
    expect(fault('tma_write_in_flight')).toBe(
      'kernel tma_kernel failed in block (0,0,0): cp.async.bulk.tensor: shared memory at offset 1038, the destination of a copy in flight, was written (by a store or another copy) before the copy completed',
    );
  });

  it('a bulk tensor copy on an mbarrier whose initialisation was not fenced to the async proxy is a launch error', () => {
    expect(fault('tma_init_unfenced')).toBe(
      'kernel tma_kernel failed in block (0,0,0): cp.async.bulk.tensor: its mbarrier was initialised with no fence.mbarrier_init or fence.proxy.async since',
    );
  });

  it('cp.reduce.async.bulk.tensor adds a box (dense, or 128-byte swizzled) into global memory, skipping what lies outside, once its bulk group is waited for', () => {
    expect(run('bulk_reduce')).toBe('ok');
    expect(run('bulk_reduce_swizzled')).toBe('ok');
  });

  it('a bulk reduction\'s source stored with no fence.proxy.async, or written before its wait, is a launch error', () => {
    expect(fault('bulk_reduce_unfenced')).toBe(
      'kernel bulk_reduce_kernel failed in block (0,0,0): cp.reduce.async.bulk.tensor: shared memory at offset 0 was written by the generic proxy with no fence.proxy.async before this read',
    );
    expect(fault('bulk_reduce_write_in_flight')).toBe(
      'kernel bulk_reduce_kernel failed in block (0,0,0): cp.async.bulk.wait_group: shared memory at offset 0, read by a cp.reduce.async.bulk.tensor in flight, was written before this wait',
    );
  });

  it('cuTensorMapEncodeTiled refuses what the driver contract forbids', () => {
    expect(run('tensor_map_errors')).toBe('ok');
  });

  it('wgmma m64nNk16 bf16: smem descriptors (K-major and N-major, 128B swizzle, no swizzle), register A (NaN in flight, two products on the same registers), results only after wait_group', () => {
    expect(run('wgmma')).toBe('ok');
  });

  it('an accumulator written while its wgmma is in flight is a launch error', () => {
    expect(fault('wgmma_write_in_flight')).toBe(
      'kernel wgmma_write_in_flight_kernel failed in block (0,0,0): wgmma: accumulator registers written while their wgmma.mma_async was in flight (before wgmma.wait_group)',
    );
  });

  it('a register A operand written while its wgmma is in flight is a launch error, a second product issued on it too; lanes may share one array', () => {
    expect(fault('wgmma_a_in_flight')).toBe(
      'kernel wgmma_a_in_flight_kernel failed in block (0,0,0): wgmma: A operand registers written while their wgmma.mma_async was in flight (before wgmma.wait_group)',
    );
    expect(fault('wgmma_a_rewritten')).toBe(
      'kernel wgmma_a_rewritten_kernel failed in block (0,0,0): wgmma: A operand registers written while their wgmma.mma_async was in flight (before wgmma.wait_group)',
    );
    expect(run('wgmma_a_shared')).toBe('ok');
  });

  it('wgmma.mma_async without wgmma.fence is a launch error', () => {
    expect(fault('wgmma_nofence')).toBe(
      "kernel wgmma_nofence_kernel failed in block (0,0,0): wgmma.mma_async without a wgmma.fence since the warp's last wgmma.wait_group",
    );
  });

  it('wgmma operands stored by st.shared need the writers\' fence.proxy.async after the stores (the async proxy reads them)', () => {
    expect(fault('wgmma_proxy_early')).toBe(
      'kernel wgmma_proxy_early_kernel failed in block (0,0,0): wgmma.mma_async: shared memory at offset 0 was written by the generic proxy with no fence.proxy.async before this read',
    );
  });

  it('a shared-memory operand written while its wgmma is in flight is a launch error, even fenced', () => {
    expect(fault('wgmma_smem_in_flight')).toBe(
      'kernel wgmma_smem_in_flight_kernel failed in block (0,0,0): wgmma.wait_group: shared memory at offset 0, read by a wgmma.mma_async in flight, was written before this wait',
    );
  });

  // .aligned: "all threads in the warpgroup must execute the same wgmma.mma_async instruction" (and fence,
  // commit_group, wait_group, setmaxnreg); the warps run apart here, so each warp's sequence is compared
  it('the warps of a warpgroup executing different wgmma instructions (another B, another wait count, a product skipped, a warp leaving early) is a launch error', () => {
    const mma = (b: string) => `wgmma.mma_async (n 16, A in shared memory, scale-d 0, A 0x1000080000, B ${b})`;
    const same = '(.aligned: the same instruction)';
    expect(fault('wgmma_warps_operands')).toBe(
      `kernel wgmma_warps_operands_kernel failed in block (0,0,0): warp 1 executed ${mma('0x1000080004')} where warp 0 of its warpgroup executed ${mma('0x1000080000')} ${same}`,
    );
    expect(fault('wgmma_warps_wait')).toBe(
      `kernel wgmma_warps_wait_kernel failed in block (0,0,0): warp 3 executed wgmma.wait_group 1 where warp 0 of its warpgroup executed wgmma.wait_group 0 ${same}`,
    );
    expect(fault('wgmma_warps_skip')).toBe(
      `kernel wgmma_warps_skip_kernel failed in block (0,0,0): warp 2 executed wgmma.commit_group where warp 0 of its warpgroup executed ${mma('0x1000080000')} ${same}`,
    );
    // seen only when the block ends: nothing follows the wait the warp left out
    expect(fault('wgmma_warps_early')).toBe(
      'kernel wgmma_warps_early_kernel failed in block (0,0,0): warp 3 executed 3 of the 4 wgmma/setmaxnreg instructions of its warpgroup (.aligned: the same instructions)',
    );
  });

  // "wgmma.wait_group": "wait until only N or fewer of the most recent wgmma-groups are pending ... Operand
  // N is an integer constant" (the PTX ISA bounds N by nothing)
  it('wgmma.wait_group N >= 8: with N or fewer groups pending nothing completes, with more the oldest complete; lanes with different N are a launch error', () => {
    expect(run('wgmma_wait_many')).toBe('ok');
    expect(fault('wgmma_lanes_wait')).toBe(
      'kernel wgmma_lanes_wait_kernel failed in block (0,0,0): wgmma.wait_group: the lanes of warp 0 differ in N (0 in lane 0, 1 in lane 5; .sync: the same instruction)',
    );
  });

  it('setmaxnreg: warpgroups give and take registers; a bad count or an incomplete warpgroup is a launch error', () => {
    expect(run('setmaxnreg')).toBe('ok');
    expect(fault('setmaxnreg_count')).toBe(
      'kernel setmaxnreg_count_kernel failed in block (0,0,0): setmaxnreg: register count 236 is not a multiple of 8 in [24, 256]',
    );
    expect(fault('setmaxnreg_incomplete')).toBe(
      "kernel setmaxnreg_incomplete_kernel failed in block (0,0,0): setmaxnreg: the warp's warpgroup is incomplete (4 warps)",
    );
  });

  // cuBLAS's cublasOperation_t: CUBLAS_OP_C "the conjugate transpose operation"; every emulated type is real
  it('cublasGemmEx: CUBLAS_OP_C gives bit for bit what CUBLAS_OP_T gives (real types); another operation, a short lda or a complex type stays refused', () => {
    expect(run('cublas_op_c')).toBe('ok');
  });

  // a GPU's cuBLAS kernels fault on a pageable host operand; the emulation read it, and the GEMM passed
  it('cublasGemmEx: an operand outside device memory faults, reported at the next synchronisation, naming it', () => {
    expect(fault('cublas_host_operand')).toMatch(/^cublasGemmEx: B: 46 bytes from \d+ are not inside one device allocation \(a host pointer\?\)$/);
  });

  it('every block starts with NaN static shared memory (not an earlier block\'s), shared by its threads', () => {
    expect(run('static_shared')).toBe('ok');
  });

  // L2E_CUDA_EMULATE_DEVICE (runtime.cpp): the device's compute capability and shared-memory limit, so
  // that what the kernels choose for an A100 or an RTX card runs too (CI: ops.test.ts at 8.0 and 8.6)
  it('L2E_CUDA_EMULATE_DEVICE: 8.6 reports that capability, refuses the sm_90a kernels and a block over 99 KiB; an unknown one makes the device unusable', () => {
    const script = `
      const a = require(process.env.L2E_TESTING_ADDON);
      console.log(a.cudaStatus().computeCapability);
      const none = new Float32Array(0), cu = Int32Array.from([0]);
      try { a.backendOp('cuda', 'attention', { q: none, k: none, v: none, cu, nh: 1, nkv: 1, hd: 64, attentionKernel: 'sm90wg2' }); } catch (e) { console.log(e.message); }
      const one = new Float32Array(128).fill(0.5), cu1 = Int32Array.from([0, 1]); // a 128 KiB block: the variant q128w8k64s3
      try { a.backendOp('cuda', 'attention', { q: one, k: one, v: one, cu: cu1, nh: 1, nkv: 1, hd: 128, attentionKernel: 'sm80', attentionVariant: 'q128w8k64s3' }); console.log('ok'); } catch (e) { console.log(e.message); }`;
    const child = (device: string) => spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, L2E_TESTING_ADDON: testingAddonPath(), L2E_CUDA_EMULATE_DEVICE: device }, encoding: 'utf8', timeout: 120_000,
    });
    const r = child('8.6');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual([
      '8.6',
      "attention kernel 'sm90wg2' needs a compute capability 9.0 GPU (H100/H200) and a build with sm_90a",
      'CUDA error in cudaFuncSetAttribute(flash_fwd_kernel<Shape>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Shape::smem)): ' +
        "cudaFuncSetAttribute: 131072 bytes of dynamic shared memory exceed the device's limit",
    ]);
    expect(child('9.0').stdout.trim().split('\n')).toEqual(['9.0', 'ok']); // sm90wg2 on an empty batch: checked, nothing thrown
    const bad = 'const s = require(process.env.L2E_TESTING_ADDON).cudaStatus(); console.log(JSON.stringify([s.usable, s.reason]))';
    const status = spawnSync(process.execPath, ['-e', bad], {
      env: { ...process.env, L2E_TESTING_ADDON: testingAddonPath(), L2E_CUDA_EMULATE_DEVICE: '7.5' }, encoding: 'utf8',
    });
    expect(JSON.parse(status.stdout)).toEqual([false, "no CUDA GPU is usable: the CUDA emulation's L2E_CUDA_EMULATE_DEVICE='7.5' is none of 8.0, 8.6, 8.9, 9.0"]);
  });

  // L2E_CUDA_EMULATE_MATH (approx_math.h): CI runs the op suites again under "worst", where every
  // approximate function errs by its documented bound, so that no test's bounds need the exact values
  it('L2E_CUDA_EMULATE_MATH: "exact" gives ex2, __expf and rsqrtf correctly rounded; "worst" each at most its documented error from it, both ways, the special values exact; another value makes the device unusable', () => {
    const exact = ['ex2', '__expf', 'rsqrtf'].map((f) => `${f} 70: 70 exact, 0 within, 0 at the bound (0 up), 0 over`).join('; ') + '\nsurvived\n';
    expect(selfTestInChild('approx_math', { L2E_CUDA_EMULATE_MATH: 'exact' }).stderr).toBe(exact);
    expect(selfTestInChild('approx_math', { L2E_CUDA_EMULATE_MATH: '' }).stderr).toBe(exact);  // the default
    const worst = selfTestInChild('approx_math', { L2E_CUDA_EMULATE_MATH: 'worst' }).stderr;
    const counts = worst.replace(/\nsurvived\n$/, '').split('; ').map((p) => {
      const m = /^(\S+) 70: (\d+) exact, (\d+) within, (\d+) at the bound \((\d+) up\), (\d+) over$/.exec(p);
      expect(m, p).not.toBeNull();
      const [, name, ex, within, at, up, over] = m!;
      return { name, exact: Number(ex), within: Number(within), at: Number(at), up: Number(up), over: Number(over) };
    });
    expect(counts.map((c) => c.name)).toEqual(['ex2', '__expf', 'rsqrtf']);
    // 2^(+-0) and e^(+-0) are 1 exactly (the ISA's table of special values); rsqrtf has no zero argument here
    expect(counts.map((c) => [c.exact, c.over])).toEqual([[2, 0], [2, 0], [0, 0]]);
    for (const c of counts) {
      // all but the specials err by the bound, save where a power of two leaves no float that far (one edge case each at most)
      expect(c.within, c.name).toBeLessThanOrEqual(1);
      expect(c.at + c.within + c.exact, c.name).toBe(70);
      expect(c.up, c.name).toBeGreaterThan(8);  // both ways, about half each: a one-way bias would cancel in a softmax
      expect(c.up, c.name).toBeLessThan(60);
    }
    const why = "the CUDA emulation's L2E_CUDA_EMULATE_MATH='fast' is neither 'exact' nor 'worst'";
    expect(selfTestInChild('approx_math', { L2E_CUDA_EMULATE_MATH: 'fast' }).stderr).toBe(`kernel approx_math_kernel: ${why}\nsurvived\n`);
  });

  // L2E_CUDA_EMULATE_SCHEDULE (runtime.cpp): CI runs ops.test.ts and attention-*.test.ts again under "warps:1", where a warp runs
  // ahead of the others as far as the kernel's synchronisation lets it
  it('schedules: "rounds" brings every thread to a meeting point first, "warps:<seed>" lets a warp run ahead and hands the SM on at arrivals', () => {
    const rounds = selfTestInChild('schedule', { L2E_CUDA_EMULATE_SCHEDULE: 'rounds' });
    expect(rounds.stderr).toBe("warp 0 saw warp 1's write\nsurvived\n");
    expect(selfTestInChild('schedule', { L2E_CUDA_EMULATE_SCHEDULE: '' }).stderr).toBe(rounds.stderr);  // the default
    expect(selfTestInChild('schedule', { L2E_CUDA_EMULATE_SCHEDULE: 'warps:1' }).stderr).toBe('warp 0 ran ahead of warp 1\nsurvived\n');
    // at an mbarrier arrival "warps" draws the next warp: a waiter may run before the arriving thread goes on
    expect(selfTestInChild('arrival_switch', { L2E_CUDA_EMULATE_SCHEDULE: 'rounds' }).stderr).toBe('thread 0 wrote before warp 1 ran\nsurvived\n');
    const drawn = new Set([1, 2, 3, 4, 5, 6, 7, 8].map((seed) => selfTestInChild('arrival_switch', { L2E_CUDA_EMULATE_SCHEDULE: `warps:${seed}` }).stderr));
    expect([...drawn].sort()).toEqual(['thread 0 wrote before warp 1 ran\nsurvived\n', 'warp 1 ran between the arrival and the write\nsurvived\n']);
  });

  it('a schedule that is neither makes the device unusable, with the setting named: cudaStatus says so and a launch fails', () => {
    const why = "the CUDA emulation's L2E_CUDA_EMULATE_SCHEDULE='warps' is neither 'rounds' nor 'warps:<seed>'";
    const bad = selfTestInChild('schedule', { L2E_CUDA_EMULATE_SCHEDULE: 'warps' });
    expect(bad.signal).toBeNull();
    expect(bad.stderr).toBe(`kernel schedule_kernel: ${why}\nsurvived\n`);
    const script = 'const s = require(process.env.L2E_TESTING_ADDON).cudaStatus(); console.log(JSON.stringify([s.compiled, s.usable, s.reason]))';
    const status = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, L2E_TESTING_ADDON: testingAddonPath(), L2E_CUDA_EMULATE_SCHEDULE: 'warps:x' },
      encoding: 'utf8',
    });
    expect(status.stderr).toBe('');
    expect(JSON.parse(status.stdout)).toEqual([true, false, `no CUDA GPU is usable: ${why.replace("'warps'", "'warps:x'")}`]);
  });

  // the runtime's cudaErrorLaunchFailure: "any further CUDA work will return the same error. To continue
  // using CUDA, the process must be terminated and relaunched"
  it('a kernel that failed while running fails every later check of its process with the same error, as on a GPU', () => {
    const script = "const a = require(process.env.L2E_TESTING_ADDON); for (const n of ['wgmma_nofence', 'mma', 'ldmatrix']) console.log(a.cudaEmulationSelfTest(n))";
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, L2E_TESTING_ADDON: testingAddonPath() }, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    const failure = "kernel wgmma_nofence_kernel failed in block (0,0,0): wgmma.mma_async without a wgmma.fence since the warp's last wgmma.wait_group";
    expect(r.stdout.trim().split('\n')).toEqual([failure, `cudaMalloc failed: ${failure}`, `cudaMalloc failed: ${failure}`]);
    expect(run('mma')).toBe('ok'); // another process: untouched
  });

  it('a read past the end of a device allocation ends the process naming the kernel, block and thread', () => {
    const r = selfTestInChild('oob_global_after');
    expect(r.signal).toBe('SIGABRT');
    expect(r.stderr).toContain(
      'l2e CUDA emulation: out-of-bounds memory access (or stack overflow) in kernel oob_global_after_kernel, block (0,0,0), thread (0,0,0)\n',
    );
    expect(r.stderr).not.toContain('survived');
  });
});

describe.skipIf(!emulated)(`CUDA emulation: reads only AddressSanitizer sees ${emulated ? '' : '(skipped: not the CUDA emulation build)'}`, () => {
  // No guard page covers the bytes in front of a device allocation or of a static shared array. The
  // sanitizer build poisons them (runtime.cpp) and its report ends the process (exit code 86); the
  // plain build reads them unnoticed, which is why CI runs these suites under the sanitizers too.
  it.each([
    ['oob_global_before', 'oob_global_before_kernel'],
    ['oob_shared_before', 'oob_shared_before_kernel'],
  ])(`%s: ${sanitized ? 'AddressSanitizer reports the read in the kernel' : 'unnoticed without the sanitizers'}`, (name, kernel) => {
    const r = selfTestInChild(name);
    if (sanitized) {
      expect(r.status).toBe(86);
      expect(r.stderr).toContain('ERROR: AddressSanitizer: use-after-poison on address');
      expect(r.stderr).toContain(`in ${kernel}`);
      expect(r.stderr).not.toContain('survived');
    } else {
      expect(r.status).toBe(0);
      expect(r.stderr).toContain('survived');
    }
  });
});
