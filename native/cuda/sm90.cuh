// sm_90a building blocks of the Hopper attention kernels (attention_sm90*.cu, attention_bwd_sm90.cu):
// mbarrier waits and arrivals, TMA tile loads (cp.async.bulk.tensor) completing on an mbarrier, and wgmma (warpgroup
// matrix products, bf16 in, fp32 accumulators) with shared-memory matrix descriptors. With nvcc the
// inline PTX; in the emulation build (L2E_CUDA_EMULATION) the emulator's versions
// (emulation/ptx_sm90.h, which cites the PTX ISA sections). The PTX is valid only in the sm_90a image:
// callers compile their bodies under L2E_SM90A_DEVICE.
//
// Descriptors (PTX ISA "Matrix Descriptor Format"): start address >> 4 in bits 0-13, leading byte
// offset >> 4 in 16-29, stride byte offset >> 4 in 32-45, swizzle mode in 62-63 (1 = 128B). The tiles
// here are 64 rows of 64 bf16 (128 bytes) per swizzle-atom column, 8 KiB, 1024-byte aligned, written by
// TMA with the 128-byte swizzle: row r at r * 128, its 16-byte chunk c at chunk c ^ (r % 8).
//   K-major operand (Q as A, K as B; k = head dim): SBO = 1024 (the next 8 rows); LBO unused (16);
//     k-step kk (16 columns) starts at (kk / 4) * 8 KiB + (kk % 4) * 32 bytes.
//   N-major operand (V as B; k = key, n = head dim): SBO = 1024 (the next 8 keys), LBO = 8 KiB (the
//     next 64 columns: the next atom column); k-step kk starts at kk * 16 rows * 128 bytes.
//   MN-major A (the backward's dS, stored [key][query]; wgmma_ss_tt): as the N-major B, m in place of n.
// Every start address keeps bits 7-9 of its tile's (1024-aligned) offsets: the descriptors' base offset
// stays 0. Shared memory written by plain stores or cp.async is read by wgmma only after the writers'
// fence_proxy_async and a barrier.
#pragma once
#include "cuda/device_utils.cuh"
#include "cuda/mma.cuh"

#ifdef L2E_CUDA_EMULATION
#include "cuda/emulation/cuda.h"
#include "cuda/emulation/ptx_sm90.h"
#ifndef __grid_constant__
#define __grid_constant__
#endif
#define L2E_SM90A_DEVICE 1
#else
#include <cuda.h>
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define L2E_SM90A_DEVICE 1
#endif
#endif

namespace l2e {
namespace cuda {
namespace sm90 {

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return uint64_t((addr & 0x3ffffu) >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32) | (uint64_t(1) << 62);
}

#ifdef L2E_CUDA_EMULATION
namespace ep = ::l2e::emu::ptx;
__device__ __forceinline__ void bar_init(uint32_t bar, unsigned count) { ep::mbarrier_init(bar, count); }
__device__ __forceinline__ void bar_init_fence() { ep::fence_mbarrier_init(); }
__device__ __forceinline__ void bar_arrive(uint32_t bar) { ep::mbarrier_arrive(bar); }
__device__ __forceinline__ void bar_arrive_expect_tx(uint32_t bar, uint32_t bytes) { ep::mbarrier_arrive_expect_tx(bar, bytes); }
__device__ __forceinline__ void bar_wait(uint32_t bar, uint32_t parity) {
  while (!ep::mbarrier_try_wait_parity(bar, parity)) {
  }
}
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2) {
  const int32_t c[3] = {c0, c1, c2};
  ep::cp_async_bulk_tensor_g2s(dst, map, bar, c);
}
__device__ __forceinline__ void wgmma_fence() { ep::wgmma_fence(); }
__device__ __forceinline__ void wgmma_commit() { ep::wgmma_commit_group(); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { ep::wgmma_wait_group(N); }
template <int M>
__device__ __forceinline__ void wgmma_ss(float (&d)[M], uint64_t da, uint64_t db, int scale_d) {
  static_assert(M == 32 || M == 64, "n = 64 or 128");
  ep::wgmma_m64k16_bf16_ss(d, 2 * M, da, db, scale_d, 0, 0);
}
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], uint64_t da, uint64_t db, int scale_d) { wgmma_ss(d, da, db, scale_d); }
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() { ep::setmaxnreg(N, true); }
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() { ep::setmaxnreg(N, false); }
template <int M>
__device__ __forceinline__ void wgmma_rs_nt(float (&d)[M], uint32_t (&a)[4], uint64_t db, int scale_d) {
  ep::wgmma_m64k16_bf16_rs(d, 2 * M, a, db, scale_d, 1);
}
template <int M>
__device__ __forceinline__ void fence_operands(float (&)[M]) {}
template <int M>
__device__ __forceinline__ void wgmma_ss_tt(float (&d)[M], uint64_t da, uint64_t db, int scale_d) {
  static_assert(M == 16 || M == 32, "n = 32 or 64");
  ep::wgmma_m64k16_bf16_ss(d, 2 * M, da, db, scale_d, 1, 1);
}
__device__ __forceinline__ void fence_proxy_async() { ep::fence_proxy_async(); }
__device__ __forceinline__ void tma_reduce_add_3d(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2) {
  const int32_t c[3] = {c0, c1, c2};
  ep::cp_reduce_async_bulk_tensor_add_s2g(map, c, src);
}
__device__ __forceinline__ void bulk_commit() { ep::cp_async_bulk_commit_group(); }
template <int N>
__device__ __forceinline__ void bulk_wait_read() { ep::cp_async_bulk_wait_group(N, true); }
#elif defined(L2E_SM90A_DEVICE)
__device__ __forceinline__ void bar_init(uint32_t bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void bar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void bar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void bar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ bool bar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n.reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}
// A phase that never completes (a wrong expect_tx byte count, a lost arrival) would spin forever and hang
// the process; after kBarWaitTimeoutNs the kernel traps instead, which the host sees as a launch failure
// ("unspecified launch failure") at the next synchronisation. The clock is read only once a wait fails.
// The trap sits in a function of its own, never inlined: a trap instruction in the kernel body makes
// ptxas (13.0) give up allocating registers per setmaxnreg region, so that every thread of a 384-thread
// block is held to 168 registers and the consumers' 240 are never used (a 64 x 128 S, its P and a
// 64 x 128 O then spill; test/cuda-compile.test.ts checks ptxas reports no spills).
static __device__ __noinline__ void bar_wait_timed_out() { __trap(); }
constexpr unsigned long long kBarWaitTimeoutNs = 2000000000ull;
__device__ __forceinline__ void bar_wait(uint32_t bar, uint32_t parity) {
  if (bar_try_wait(bar, parity)) return;
  unsigned long long t0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  while (!bar_try_wait(bar, parity)) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    if (t - t0 > kBarWaitTimeoutNs) bar_wait_timed_out();
  }
}
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// keeps the accumulators in registers across the asynchronous products
template <int M>
__device__ __forceinline__ void fence_operands(float (&d)[M]) {
#pragma unroll
  for (int i = 0; i < M; i++) asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_ss_n128_(float (&d)[64], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(da), "l"(db), "r"(scale_d));
}
template <int M>
__device__ __forceinline__ void wgmma_ss(float (&d)[M], uint64_t da, uint64_t db, int scale_d) {
  static_assert(M == 32 || M == 64, "n = 64 or 128");
  if constexpr (M == 32) wgmma_ss_n64(d, da, db, scale_d);
  else wgmma_ss_n128_(d, da, db, scale_d);
}
// The warpgroup's per-thread register budget (every warp of the warpgroup executes it; a multiple of 8
// in [24, 256]): a producer gives registers back to the block's pool, consumers take them.
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
__device__ __forceinline__ void wgmma_rs_n64_(float (&d)[32], const uint32_t (&a)[4], uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_rs_n128_(float (&d)[64], const uint32_t (&a)[4], uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
template <int M>
__device__ __forceinline__ void wgmma_rs_nt(float (&d)[M], uint32_t (&a)[4], uint64_t db, int scale_d) {
  static_assert(M == 32 || M == 64, "n = 64 or 128");
  if constexpr (M == 32) wgmma_rs_n64_(d, a, db, scale_d);
  else wgmma_rs_n128_(d, a, db, scale_d);
}
// Both operands MN-major in shared memory (imm-trans-a = imm-trans-b = 1): A stored [k][m], B [k][n].
__device__ __forceinline__ void wgmma_ss_tt_n32_(float (&d)[16], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(da), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ void wgmma_ss_tt_n64_(float (&d)[32], uint64_t da, uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(scale_d));
}
template <int M>
__device__ __forceinline__ void wgmma_ss_tt(float (&d)[M], uint64_t da, uint64_t db, int scale_d) {
  static_assert(M == 16 || M == 32, "n = 32 or 64");
  if constexpr (M == 16) wgmma_ss_tt_n32_(d, da, db, scale_d);
  else wgmma_ss_tt_n64_(d, da, db, scale_d);
}
// Orders this thread's generic-proxy writes of shared memory (st.shared, cp.async) before later reads by
// the async proxy (wgmma's operand fetches); a barrier then publishes them to the warpgroups.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// The f32 box of a 3D tensor map at (c0, c1, c2) += the box at src in shared memory (laid out as a load of
// the box would land it), element by element and atomically, as a bulk async-group operation: bulk_commit closes
// the thread's group, bulk_wait_read<N> returns once all but its N newest groups have read their source.
__device__ __forceinline__ void tma_reduce_add_3d(const CUtensorMap* map, uint32_t src, int c0, int c1, int c2) {
  asm volatile("cp.reduce.async.bulk.tensor.3d.global.shared::cta.add.tile.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(src), "r"(c0), "r"(c1), "r"(c2)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
#endif

// The online softmax of one NK-key tile starting at k0 on this thread's S registers (wgmma's accumulator
// layout: register 4c + i = row g + 8 [i >= 2], key k0 + 8c + 2 t4 + (i & 1)); scores masked where the
// tile crosses the diagonal (its last key past q0, the warpgroup's first row) or the sequence end: m
// (the log2 domain: raw max x scale_log2, exact as the scale is positive) and l updated, sc turned into
// the unnormalised probabilities 2^(s scale_log2 - m) (the scale folded into the one FMA before each
// exp2), corr = the factor O's rows must be rescaled by. l is the thread's partial (its quad's partials
// summed at the end).
template <int NK>
__device__ __forceinline__ void softmax_tile(float (&sc)[NK / 2], int k0, int len, int q0, const int (&row)[2], int t4,
                                             float scale_log2, float (&m)[2], float (&l)[2], float (&corr)[2]) {
  const bool masked = k0 + NK - 1 > q0 || k0 + NK > len;
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < NK / 8; c++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int key = k0 + 8 * c + 2 * t4 + e;
        if (masked && (key > row[rr] || key >= len)) sc[4 * c + 2 * rr + e] = -INFINITY;
        mx = fmaxf(mx, sc[4 * c + 2 * rr + e]);
      }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mnew = fmaxf(m[rr], mx * scale_log2);
    const float ref = mnew == -INFINITY ? 0.0f : mnew;  // fully masked row (padding): keep 0, not NaN
    corr[rr] = exp2_ftz(m[rr] - ref);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < NK / 8; c++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const float p = exp2_ftz(fmaf(sc[4 * c + 2 * rr + e], scale_log2, -ref));
        sc[4 * c + 2 * rr + e] = p;
        sum += p;
      }
    l[rr] = l[rr] * corr[rr] + sum;
    m[rr] = mnew;
  }
}

// The forward's end, per thread (both sm_90a kernels): the quad's partials of l summed, this thread's O
// values of its two rows (o: wgmma's accumulator layout, register 4n + i = row g + 8 [i >= 2], column
// 8n + 2 t4 + (i & 1)) divided by l and stored, rows past the sequence skipped, and
// lse = (m + log2 l) ln 2 (m in the log2 domain) written by the quad's first thread.
template <int D>
__device__ __forceinline__ void store_rows(const float (&o)[D / 2], const float (&m)[2], const float (&l)[2],
                                           const int (&row)[2], int t4, int len, int base, int h, int nh, int T,
                                           bf16* out, float* lse) {
  constexpr float kLn2 = 0.6931471805599453f;
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    float lsum = l[rr];
    lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
    lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
    if (row[rr] >= len) continue;
    const float inv = 1.0f / lsum;
    bf16* orow = out + size_t(base + row[rr]) * (size_t(nh) * D) + size_t(h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
      *reinterpret_cast<uint32_t*>(orow + n * 8 + 2 * t4) = pack_bf16(o[4 * n + 2 * rr] * inv, o[4 * n + 2 * rr + 1] * inv);
    if (t4 == 0) lse[size_t(h) * T + base + row[rr]] = (m[rr] + log2f(lsum)) * kLn2;
  }
}

// Host: [T, heads, D] bf16 rows as a 3D tensor map (boxes of 64 columns x 1 head x box_rows rows, 128-byte
// swizzle) for tma_load_3d; defined in attention_sm90.cu. Throws Error when the driver cannot encode it.
CUtensorMap tensor_map(const void* p, int T, int heads, int D, int box_rows);
// Host: [T, heads, D] f32 rows (the backward's dq_accum) as a 3D tensor map of boxes of 32 columns (128
// bytes) x 1 head x box_rows rows with the 128-byte swizzle (in shared memory: row r at r * 128, its 16-byte
// chunk c at chunk c ^ (r % 8)), for tma_reduce_add_3d; defined in attention_sm90.cu.
CUtensorMap tensor_map_f32(float* p, int T, int heads, int D, int box_rows);

}  // namespace sm90
}  // namespace cuda
}  // namespace l2e
