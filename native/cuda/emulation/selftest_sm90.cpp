// Self-checks of the emulated sm_90a instructions (ptx_sm90.cpp), run by cudaEmulationSelfTest
// (selftest_binding.cpp; test/gpu/emulation.test.ts). The expected layouts are written here from the
// PTX ISA's tables independently of the emulator's address functions (chunk-index arithmetic instead of
// address-bit XOR), with small exact values so results must match exactly:
//   mbarrier           phases, parity, pending count, tx-count (expect_tx / complete_tx), a wait across warps
//   mbarrier_deadlock  every thread waits on a phase nothing completes (must fail, not hang)
//   mbarrier_overrun   an arrive-on in phase 1 before any wait saw phase 0 complete (must fail)
//   tma                2D and 3D boxes with the 128-byte swizzle, partly out of bounds (zero fill), not
//                      visible before the mbarrier wait (the destination holds NaN, not the last tile)
//   tma_init_unfenced  the same with no fence.mbarrier_init after mbarrier.init (must fail)
//   tma_write_in_flight  the destination written between the copy's issue and its wait (must fail)
//   tensor_map_errors  cuTensorMapEncodeTiled rejects what its contract forbids
//   bulk_reduce        cp.reduce.async.bulk.tensor .add .f32: a 2D box reaching past the tensor's ends (those
//                      elements skipped) added twice in two bulk groups, each visible only after its wait;
//                      a 128-byte-swizzled box; its source stored with no fence.proxy.async, or written
//                      before the wait (must fail)
//   wgmma              m64n64k16 from shared memory (K-major, 128B swizzle, 4 k-steps by start address),
//                      m64n128k16 with A from registers and B N-major (128B swizzle, LBO across atoms),
//                      B K-major without swizzle, two products reading the same A registers;
//                      NaN before wgmma.wait_group, wait_group(1) keeps the
//                      newest group pending; operands stored by st.shared, published by each writer's
//                      fence.proxy.async and a barrier (the async proxy's reads)
//   wgmma_nofence      wgmma.mma_async without wgmma.fence (must fail)
//   wgmma_proxy_early  operands stored after the writer's fence.proxy.async, not before it (must fail)
//   wgmma_smem_in_flight  an operand in shared memory written between wgmma.mma_async and its wait (must fail)
//   wgmma_write_in_flight  an accumulator written between wgmma.mma_async and its wait (must fail)
//   wgmma_a_in_flight  a register A operand written between wgmma.mma_async and its wait (must fail);
//                      (wgmma) read between them it holds NaNs, and after the wait its values again
//   wgmma_a_rewritten  the same, then a second product issued on those registers (must fail)
//   wgmma_a_shared     every lane's A the same array: no false alarm, values back after the wait
//   wgmma_warps_operands, _wait, _skip, _early: a warp of the warpgroup names another B, waits with
//                      another count, skips the product, or returns before its wait (.aligned: must fail)
//   wgmma_wait_many    wgmma.wait_group N with N >= 8 (the ISA bounds N by nothing): ten groups pending,
//                      wait_group 12 and 10 complete none of them, 8 the two oldest, 2^20 none, 0 the rest
//   wgmma_lanes_wait   one lane of a warp waits with another N (.sync: must fail)
//   setmaxnreg         a producer warpgroup gives registers back, a consumer warpgroup takes them;
//                      a count outside [24, 256] or not a multiple of 8, and a warp whose warpgroup is
//                      incomplete (must fail)
#include <cmath>
#include <cstring>
#include <string>

#include "cuda.h"
#include "cuda_bf16.h"
#include "cuda_runtime.h"
#include "ptx_sm90.h"

namespace l2e {
namespace emu {

namespace {

using namespace ptx;

uint16_t bits(float x) { return __float2bfloat16_rn(x).__x; }
unsigned off(const void* p) { return unsigned(shared_offset(p)); }

// ---- mbarrier ----
void mbarrier_kernel(int* bad) {
  uint64_t* bars = static_cast<uint64_t*>(dynamic_shared());
  const unsigned b0 = off(&bars[0]), b1 = off(&bars[1]);
  const int tid = int(threadIdx.x);
  if (tid == 0) {
    mbarrier_init(b0, 2);
    mbarrier_init(b1, 32);
  }
  __syncthreads();
  if (tid == 0) {
    auto expect = [&](bool got, bool want) {
      if (got != want) bad[0] = 1;
    };
    expect(mbarrier_test_wait_parity(b0, 0), false);  // phase 0 runs
    expect(mbarrier_test_wait_parity(b0, 1), true);   // "the phase before" counts as completed
    mbarrier_arrive(b0);
    expect(mbarrier_test_wait_parity(b0, 0), false);  // 1 of 2 arrivals
    mbarrier_arrive_expect_tx(b0, 64);
    expect(mbarrier_test_wait_parity(b0, 0), false);  // arrivals done, 64 bytes outstanding
    mbarrier_complete_tx(b0, 48);
    expect(mbarrier_test_wait_parity(b0, 0), false);
    mbarrier_complete_tx(b0, 16);
    expect(mbarrier_test_wait_parity(b0, 0), true);  // phase 0 completed
    expect(mbarrier_test_wait_parity(b0, 1), false);  // phase 1 runs, expecting 2 arrivals again
    mbarrier_expect_tx(b0, 8);
    mbarrier_arrive(b0);
    mbarrier_arrive(b0);
    expect(mbarrier_test_wait_parity(b0, 1), false);
    mbarrier_complete_tx(b0, 8);
    expect(mbarrier_test_wait_parity(b0, 1), true);
    while (!mbarrier_try_wait_parity(b1, 0)) {  // warp 1 arrives after this thread first polls
    }
    if (bad[1] != 32) bad[0] = 1;  // every arrival happened before the phase completed
  } else if (tid >= 32) {
    __atomic_fetch_add(&bad[1], 1, __ATOMIC_RELAXED);
    mbarrier_arrive(b1);
  }
}

void mbarrier_deadlock_kernel(int*) {
  uint64_t* bar = static_cast<uint64_t*>(dynamic_shared());
  if (threadIdx.x == 0) mbarrier_init(off(bar), 1);
  __syncthreads();
  while (!mbarrier_try_wait_parity(off(bar), 0)) {
  }
}

// init(1): the first arrival completes phase 0; a second arrival, with no wait between, is an arrive-on
// in phase 1 before any wait saw phase 0 complete
void mbarrier_overrun_kernel(int*) {
  uint64_t* bar = static_cast<uint64_t*>(dynamic_shared());
  if (threadIdx.x != 0) return;
  mbarrier_init(off(bar), 1);
  mbarrier_arrive(off(bar));
  mbarrier_arrive(off(bar));
}

// The "warps" schedule may hand the SM to another warp at an mbarrier arrival (runtime.cpp): thread 0
// arrives, then writes a flag; warp 1 waits for the phase and reads the flag. bad[1] = 1: warp 1 ran
// between the arrival and the write (never under "rounds", where thread 0 runs on to its next meeting point).
void arrival_switch_kernel(int* bad) {
  char* smem = static_cast<char*>(dynamic_shared());
  const unsigned bar = off(smem);
  volatile float* flag = reinterpret_cast<float*>(smem + 8);  // NaN: fresh shared memory
  if (threadIdx.x == 0) mbarrier_init(bar, 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    mbarrier_arrive(bar);
    *flag = 1.0f;
  } else if (threadIdx.x >= 32) {
    while (!mbarrier_try_wait_parity(bar, 0)) {
    }
    if (std::isnan(*flag)) bad[1] = 1;
    else if (*flag != 1.0f) bad[0] = 1;
  }
}

// ---- TMA ----
// global element (row, col) of the 2D tensor: raw bits row * 100 + col + 1 (never 0, the fill value)
constexpr int kRows2 = 100, kCols2 = 72;
uint16_t g2(int r, int c) { return uint16_t(r * 100 + c + 1); }
// 3D tensor [T][H][D]: raw bits 1 + t * 1000 + h * 100 + d ... kept below 2^16
constexpr int kT3 = 40, kH3 = 3, kD3 = 64;
uint16_t g3(int t, int h, int d) { return uint16_t(1 + t * 1200 + h * 100 + d); }

// 128-byte swizzle of a box whose rows are 128 bytes: the 16-byte chunk c of row r sits at chunk c ^ (r % 8)
size_t sw128(int r, int col) { return size_t(r) * 64 + size_t(((col / 8) ^ (r % 8)) * 8 + col % 8); }

// mode 0: as described; 1: no fence.mbarrier_init; 2: a store into the 2D box while its copy is in flight
void tma_kernel(const CUtensorMap* m2, const CUtensorMap* m3, int mode, int* bad) {
  char* smem = static_cast<char*>(dynamic_shared());
  uint64_t* bar = reinterpret_cast<uint64_t*>(smem);
  uint16_t* box = reinterpret_cast<uint16_t*>(smem + 1024);  // 64 x 32 elements at most
  const unsigned b = off(bar);
  if (threadIdx.x == 0) {
    mbarrier_init(b, 1);
    if (mode != 1) fence_mbarrier_init();  // the initialisation, to the async proxy
  }
  __syncthreads();
  // 2D: box 64 columns x 16 rows at (col 16, row 90): columns >= 72 and rows >= 100 lie outside
  if (threadIdx.x == 0) {
    const int32_t c[2] = {16, 90};
    mbarrier_arrive_expect_tx(b, 64 * 16 * 2);
    cp_async_bulk_tensor_g2s(off(box), m2, b, c);
    for (int e = 0; e < 64 * 16; e++)  // it lands at a wait on the mbarrier, or at once under "warps"
      if ((box[e] != 0xffff) != runs_ahead()) bad[0] = 2;  // no element of the box is 0xffff
    if (mode == 2) box[7] = 1;
  }
  while (!mbarrier_try_wait_parity(b, 0)) {
  }
  for (int e = int(threadIdx.x); e < 64 * 16; e += 32) {
    const int r = e / 64, col = e % 64, gr = 90 + r, gc = 16 + col;
    const uint16_t want = (gr < kRows2 && gc < kCols2) ? g2(gr, gc) : 0;
    if (box[sw128(r, col)] != want) bad[0] = 3;
  }
  __syncthreads();
  // 3D: box {64, 1, 32} at (d 0, head 2, t 20): t >= 40 lies outside
  if (threadIdx.x == 0) {
    const int32_t c[3] = {0, 2, 20};
    mbarrier_arrive_expect_tx(b, 64 * 32 * 2);
    cp_async_bulk_tensor_g2s(off(box), m3, b, c);
    for (int e = 0; e < 64 * 32; e++)  // poison until the wait, not the 2D box landed there before
      if ((box[e] != 0xffff) != runs_ahead()) bad[0] = 5;
  }
  while (!mbarrier_try_wait_parity(b, 1)) {
  }
  for (int e = int(threadIdx.x); e < 64 * 32; e += 32) {
    const int r = e / 64, d = e % 64, t = 20 + r;
    const uint16_t want = t < kT3 ? g3(t, 2, d) : 0;
    if (box[sw128(r, d)] != want) bad[0] = 4;
  }
}

std::string tma(int* bad, int mode) {
  uint16_t h2[kRows2 * kCols2], h3[kT3 * kH3 * kD3];
  for (int r = 0; r < kRows2; r++)
    for (int c = 0; c < kCols2; c++) h2[r * kCols2 + c] = g2(r, c);
  for (int t = 0; t < kT3; t++)
    for (int h = 0; h < kH3; h++)
      for (int d = 0; d < kD3; d++) h3[(t * kH3 + h) * kD3 + d] = g3(t, h, d);
  void *d2 = nullptr, *d3 = nullptr;
  cudaMalloc(&d2, sizeof(h2));
  cudaMalloc(&d3, sizeof(h3));
  cudaMemcpyAsync(d2, h2, sizeof(h2), cudaMemcpyHostToDevice, nullptr);
  cudaMemcpyAsync(d3, h3, sizeof(h3), cudaMemcpyHostToDevice, nullptr);
  CUtensorMap m2, m3;
  const cuuint64_t dim2[2] = {kCols2, kRows2}, stride2[1] = {kCols2 * 2};
  const cuuint32_t box2[2] = {64, 16}, es[3] = {1, 1, 1};
  const cuuint64_t dim3[3] = {kD3, kH3, kT3}, stride3[2] = {kD3 * 2, kH3 * kD3 * 2};
  const cuuint32_t box3[3] = {64, 1, 32};
  std::string r;
  if (cuTensorMapEncodeTiled(&m2, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, d2, dim2, stride2, box2, es,
                             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS ||
      cuTensorMapEncodeTiled(&m3, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, d3, dim3, stride3, box3, es,
                             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    r = "cuTensorMapEncodeTiled refused a valid map";
  } else {
    L2E_EMU_LAUNCH(tma_kernel, 1, 32, 1024 + 64 * 32 * 2, nullptr)(&m2, &m3, mode, bad);
  }
  cudaFree(d2);
  cudaFree(d3);
  return r;
}

std::string tensor_map_errors() {
  alignas(16) static uint16_t data[64 * 64];
  CUtensorMap m;
  const cuuint32_t es[2] = {1, 1};
  auto enc = [&](void* p, cuuint64_t cols, cuuint64_t stride, cuuint32_t bx, cuuint32_t by, CUtensorMapSwizzle sw) {
    const cuuint64_t dim[2] = {cols, 64}, st[1] = {stride};
    const cuuint32_t box[2] = {bx, by};
    return cuTensorMapEncodeTiled(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, p, dim, st, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                  sw, CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  };
  if (enc(data, 64, 128, 64, 8, CU_TENSOR_MAP_SWIZZLE_128B) != CUDA_SUCCESS) return "a valid map was refused";
  if (enc(data, 64, 136, 64, 8, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_ERROR_INVALID_VALUE) return "stride 136 accepted";
  if (enc(data + 1, 64, 128, 64, 8, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_ERROR_INVALID_VALUE) return "unaligned address accepted";
  if (enc(data, 64, 128, 4, 8, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_ERROR_INVALID_VALUE) return "8-byte box row accepted";
  if (enc(data, 64, 256, 128, 8, CU_TENSOR_MAP_SWIZZLE_128B) != CUDA_ERROR_INVALID_VALUE) return "256-byte box row with a 128B swizzle accepted";
  if (enc(data, 64, 128, 64, 257, CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_ERROR_INVALID_VALUE) return "box of 257 accepted";
  return "ok";
}

// ---- TMA reduction ----
// a [5][40] f32 tensor of ones; the box {16 columns, 8 rows} at (column 32, row 0) reaches past both ends
constexpr int kRedRows = 5, kRedCols = 40;
float red_v(int r, int c) { return float(r * 100 + c); }

// mode 0: the box added twice, in two groups, visible one wait at a time; 1: stored with no
// fence.proxy.async (must fail); 2: the source written before the wait (must fail); 3: as 0 with the box
// {32 columns, 8 rows} at column 8 under the 128-byte swizzle (16-byte chunk k of row r at chunk k ^ r)
constexpr int kRedCol0[2] = {32, 8}, kRedWidth[2] = {16, 32};
void bulk_reduce_kernel(const CUtensorMap* m, float* g, int mode, int* bad) {
  float* box = static_cast<float*>(dynamic_shared());  // 8 rows at offset 0
  const int sw = mode == 3, col0 = kRedCol0[sw], w = kRedWidth[sw];
  for (int e = int(threadIdx.x); e < 8 * w; e += int(blockDim.x)) {
    const int r = e / w, cc = e % w;
    box[sw ? r * 32 + (((cc / 4) ^ r) * 4) + cc % 4 : e] = red_v(r, col0 + cc);
  }
  if (mode != 1) fence_proxy_async();
  __syncthreads();
  if (threadIdx.x != 0) return;
  const int32_t c[2] = {col0, 0};
  const float one = 1.0f + red_v(0, col0);
  cp_reduce_async_bulk_tensor_add_s2g(m, c, 0);
  cp_async_bulk_commit_group();
  cp_reduce_async_bulk_tensor_add_s2g(m, c, 0);
  cp_async_bulk_commit_group();
  if (mode == 2) box[0] = 0.0f;
  if (g[col0] != 1.0f) bad[0] = 1;  // nothing before a wait
  cp_async_bulk_wait_group(1, true);
  if (g[col0] != one) bad[0] = 2;  // the first group only
  cp_async_bulk_wait_group(0, true);
}

std::string bulk_reduce(int mode, int* bad) {
  float h[kRedRows * kRedCols];
  for (float& x : h) x = 1.0f;
  void* d = nullptr;
  cudaMalloc(&d, sizeof(h));
  cudaMemcpyAsync(d, h, sizeof(h), cudaMemcpyHostToDevice, nullptr);
  CUtensorMap m;
  const int sw = mode == 3, col0 = kRedCol0[sw];
  const cuuint64_t dim[2] = {kRedCols, kRedRows}, stride[1] = {kRedCols * 4};
  const cuuint32_t box[2] = {cuuint32_t(kRedWidth[sw]), 8}, es[2] = {1, 1};
  std::string r;
  if (cuTensorMapEncodeTiled(&m, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, d, dim, stride, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                             sw ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    r = "cuTensorMapEncodeTiled refused a valid map";
  } else {
    L2E_EMU_LAUNCH(bulk_reduce_kernel, 1, 32, 8 * 32 * 4, nullptr)(&m, static_cast<float*>(d), mode, bad);
    cudaError_t e = cudaDeviceSynchronize();
    (void)cudaGetLastError();
    if (e != cudaSuccess) r = cudaGetErrorString(e);
    cudaMemcpyAsync(h, d, sizeof(h), cudaMemcpyDeviceToHost, nullptr);
    cudaStreamSynchronize(nullptr);
    for (int row = 0; row < kRedRows && r.empty(); row++)
      for (int col = 0; col < kRedCols; col++) {
        // rows 5..7 (and in mode 0 columns 40..47) lie outside: skipped
        const float want = col >= col0 && col < col0 + kRedWidth[sw] ? 1.0f + 2.0f * red_v(row, col) : 1.0f;
        if (h[row * kRedCols + col] != want) bad[0] = 3;
      }
  }
  cudaFree(d);
  return r;
}

// ---- wgmma ----
float Av(int m, int k) { return float((m * 3 + k) % 7 - 3) / 4.0f; }
float Bv(int k, int n) { return float((k * 5 + n) % 9 - 4) / 8.0f; }
uint64_t desc(unsigned start, unsigned lbo, unsigned sbo, unsigned mode) {
  return uint64_t(start >> 4) | (uint64_t(lbo >> 4) << 16) | (uint64_t(sbo >> 4) << 32) | (uint64_t(mode) << 62);
}
uint32_t pack(float lo, float hi) { return uint32_t(bits(lo)) | (uint32_t(bits(hi)) << 16); }
// both bf16 halves NaN: exponent all ones, mantissa not zero
bool is_nan_pair(uint32_t r) {
  const auto nan = [](uint32_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; };
  return nan(r & 0xffffu) && nan(r >> 16);
}

// this thread's accumulator register 4j + i: row 16 warp + g + 8 [i >= 2], column 8 j + 2 t + (i & 1)
template <typename F>
void check_d(const float* d, int n, F want, int* bad) {
  const int lane = int(threadIdx.x) & 31, w = int(threadIdx.x) >> 5, g = lane >> 2, t = lane & 3;
  for (int j = 0; j < n / 8; j++)
    for (int i = 0; i < 4; i++)
      if (d[4 * j + i] != want(16 * w + g + (i >= 2 ? 8 : 0), 8 * j + 2 * t + (i & 1))) bad[0] = 1;
}

void wgmma_kernel(int* bad) {
  uint16_t* s = static_cast<uint16_t*>(dynamic_shared());
  uint16_t* sA = s;               // 64 x 64, K-major, 128B swizzle: 8 KiB
  uint16_t* sB = s + 4096;        // 64 (n) x 64 (k), K-major, 128B swizzle: 8 KiB
  uint16_t* sV = s + 8192;        // 64 (k) x 128 (n), N-major, 128B swizzle: two 8 KiB atoms columns
  uint16_t* sI = s + 16384;       // 16 (n) x 16 (k), K-major, no swizzle: core matrices 8 x 8
  const int tid = int(threadIdx.x);
  for (int e = tid; e < 64 * 64; e += 128) {
    const int r = e / 64, c = e % 64;
    sA[sw128(r, c)] = bits(Av(r, c));
    sB[sw128(r, c)] = bits(Bv(c, r));  // B(k = c, n = r)
  }
  for (int e = tid; e < 64 * 128; e += 128) {  // V(k, n): atom n / 64, row k, 16-byte chunk swizzled by k % 8
    const int k = e / 128, n = e % 128;
    sV[(n / 64) * 4096 + sw128(k, n % 64)] = bits(Bv(k, n));
  }
  for (int e = tid; e < 16 * 16; e += 128) {  // core matrix (n / 8, k / 8) at n/8 * 256 B (SBO) + k/8 * 128 B (LBO)
    const int n = e / 16, k = e % 16;
    sI[(n / 8) * 128 + (k / 8) * 64 + (n % 8) * 8 + k % 8] = bits(Bv(k, n));
  }
  fence_proxy_async();  // this thread's stores, before the async proxy's reads
  __syncthreads();
  const unsigned a0 = off(sA), b0 = off(sB), v0 = off(sV), i0 = off(sI);
  float d1[32], d2[64], d3[8];
  // 1) D1 = A B over k = 64: four k-steps, the start address advancing 32 bytes inside the swizzle atom
  wgmma_fence();
  for (int kk = 0; kk < 4; kk++)
    wgmma_m64k16_bf16_ss(d1, 64, desc(a0 + 32 * kk, 16, 1024, 1), desc(b0 + 32 * kk, 16, 1024, 1), kk > 0, 0, 0);
  wgmma_commit_group();
  if (!std::isnan(d1[0])) bad[0] = 1;  // not visible before the wait
  // 2) D2 = A V (A from registers, k = 64 in 4 steps of 16 rows of V = 2048 bytes), N-major V, n = 128
  const int lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
  uint32_t a[4][4], want[4][4];  // the A registers of each k-step (a GPU's: not to be touched in flight)
  for (int kk = 0; kk < 4; kk++) {
    const int r = 16 * w + g, k = 16 * kk + 2 * t;
    const uint32_t v[4] = {pack(Av(r, k), Av(r, k + 1)), pack(Av(r + 8, k), Av(r + 8, k + 1)),
                           pack(Av(r, k + 8), Av(r, k + 9)), pack(Av(r + 8, k + 8), Av(r + 8, k + 9))};
    std::memcpy(a[kk], v, sizeof(v));
    std::memcpy(want[kk], v, sizeof(v));
    wgmma_m64k16_bf16_rs(d2, 128, a[kk], desc(v0 + 2048 * kk, 8192, 1024, 1), kk > 0, 1);
  }
  // the first k-step's A again, as a second product in flight reading the same registers
  float d4[64];
  wgmma_m64k16_bf16_rs(d4, 128, a[0], desc(v0, 8192, 1024, 1), 0, 1);
  wgmma_commit_group();
  if (!is_nan_pair(a[1][2])) bad[0] = 1;  // A registers in flight read as NaNs
  wgmma_wait_group(1);  // group 0 (D1) completes, group 1 (D2) may still run
  check_d(d1, 64, [](int m, int n) { float acc = 0; for (int k = 0; k < 64; k++) acc += Av(m, k) * Bv(k, n); return acc; }, bad);
  if (!std::isnan(d2[0])) bad[0] = 1;
  wgmma_wait_group(0);
  if (std::memcmp(a, want, sizeof(a)) != 0) bad[0] = 1;  // the A registers back after the wait
  check_d(d4, 128, [](int m, int n) { float acc = 0; for (int k = 0; k < 16; k++) acc += Av(m, k) * Bv(k, n); return acc; }, bad);
  check_d(d2, 128, [](int m, int n) { float acc = 0; for (int k = 0; k < 64; k++) acc += Av(m, k) * Bv(k, n); return acc; }, bad);
  // 3) D3 = A B with B K-major, no swizzle (LBO = 128 bytes between k halves, SBO = 256 between n halves),
  //    A the first 16 columns of sA; accumulating onto D3 = 1
  for (int r = 0; r < 8; r++) d3[r] = 1.0f;
  wgmma_fence();
  wgmma_m64k16_bf16_ss(d3, 16, desc(a0, 16, 1024, 1), desc(i0, 128, 256, 0), 1, 0, 0);
  wgmma_commit_group();
  wgmma_wait_group(0);
  check_d(d3, 16, [](int m, int n) { float acc = 1; for (int k = 0; k < 16; k++) acc += Av(m, k) * Bv(k, n); return acc; }, bad);
}

// zeros in the first 2 KiB, the A (64 x 16) and B (16 x 16, K-major, no swizzle) operands at 0, stored by
// the block's threads, each fencing after its stores; or (fence_first) by thread 0 alone, fencing before
void zero_operands(bool fence_first) {
  uint16_t* s = static_cast<uint16_t*>(dynamic_shared());
  if (!fence_first) {
    for (int e = int(threadIdx.x); e < 64 * 16; e += 128) s[e] = 0;
    fence_proxy_async();
  } else if (threadIdx.x == 0) {
    fence_proxy_async();  // too early: orders nothing stored after it
    for (int e = 0; e < 64 * 16; e++) s[e] = 0;
  }
  __syncthreads();
}

void wgmma_write_in_flight_kernel(int*) {
  float d[8];
  zero_operands(false);
  wgmma_fence();
  wgmma_m64k16_bf16_ss(d, 16, desc(0, 128, 256, 0), desc(0, 128, 256, 0), 0, 0, 0);
  wgmma_commit_group();
  d[3] = 0.0f;  // before the wait: the asynchronous result and this write race
  wgmma_wait_group(0);
}

// an A operand register of a wgmma written before its wait (a GPU may read it any time until then);
// rewritten: the same, then a second product issued on the registers before the wait
void wgmma_a_in_flight(bool reissue) {
  float d[8], d2[8];
  uint32_t a[4] = {0, 0, 0, 0};
  zero_operands(false);
  wgmma_fence();
  wgmma_m64k16_bf16_rs(d, 16, a, desc(0, 128, 256, 0), 0, 0);
  a[1] = 0;  // before the wait
  if (reissue) wgmma_m64k16_bf16_rs(d2, 16, a, desc(0, 128, 256, 0), 0, 0);
  wgmma_commit_group();
  wgmma_wait_group(0);
}
void wgmma_a_in_flight_kernel(int*) { wgmma_a_in_flight(false); }
void wgmma_a_rewritten_kernel(int*) { wgmma_a_in_flight(true); }

// every lane passes one array as its A (a GPU's threads would each load registers of their own): no
// false alarm, the registers back after the wait, D = A B with A all ones and B the zero operands + 1
uint32_t g_shared_a[4];
void wgmma_a_shared_kernel(int* bad) {
  float d[8];
  zero_operands(false);
  if (threadIdx.x == 0)
    for (uint32_t& r : g_shared_a) r = pack(1.0f, 1.0f);
  __syncthreads();
  wgmma_fence();
  wgmma_m64k16_bf16_rs(d, 16, g_shared_a, desc(0, 128, 256, 0), 0, 0);
  wgmma_commit_group();
  wgmma_wait_group(0);
  for (float v : d)
    if (v != 0.0f) bad[0] = 1;  // B is zero
  __syncthreads();  // every warp's product complete: the last wait restored the array
  for (uint32_t r : g_shared_a)
    if (r != pack(1.0f, 1.0f)) bad[0] = 2;
}

void wgmma_nofence_kernel(int*) {
  float d[8];
  zero_operands(false);
  wgmma_m64k16_bf16_ss(d, 16, desc(0, 128, 256, 0), desc(0, 128, 256, 0), 0, 0, 0);
}

void wgmma_proxy_early_kernel(int*) {
  float d[8];
  zero_operands(true);
  wgmma_fence();
  wgmma_m64k16_bf16_ss(d, 16, desc(0, 128, 256, 0), desc(0, 128, 256, 0), 0, 0, 0);
  wgmma_commit_group();
  wgmma_wait_group(0);
}

void wgmma_smem_in_flight_kernel(int*) {
  float d[8];
  zero_operands(false);
  wgmma_fence();
  wgmma_m64k16_bf16_ss(d, 16, desc(0, 128, 256, 0), desc(0, 128, 256, 0), 0, 0, 0);
  wgmma_commit_group();
  if (threadIdx.x == 0) {  // A(0, 0) and B(0, 0) = 1, fenced, yet before the product is known complete
    static_cast<uint16_t*>(dynamic_shared())[0] = bits(1.0f);
    fence_proxy_async();
  }
  wgmma_wait_group(0);
}

// the warps of one warpgroup not executing the same instructions (.aligned): warp 1 names another B
// (operands), warp 3 waits with another count (wait), warp 2 skips the product (skip), or warp 3
// returns before its wait (early: seen when the block ends). Must fail.
void wgmma_warps_differ(int how) {
  float d[8];
  const unsigned warp = threadIdx.x / 32;
  zero_operands(false);
  wgmma_fence();
  if (!(how == 2 && warp == 2))
    wgmma_m64k16_bf16_ss(d, 16, desc(0, 128, 256, 0), desc(how == 0 && warp == 1 ? 64 : 0, 128, 256, 0), 0, 0, 0);
  wgmma_commit_group();
  if (how == 3 && warp == 3) return;  // leaves before its wait
  wgmma_wait_group(how == 1 && warp == 3 ? 1 : 0);
}
void wgmma_warps_operands_kernel(int*) { wgmma_warps_differ(0); }
void wgmma_warps_wait_kernel(int*) { wgmma_warps_differ(1); }
void wgmma_warps_skip_kernel(int*) { wgmma_warps_differ(2); }
void wgmma_warps_early_kernel(int*) { wgmma_warps_differ(3); }

// "wgmma.wait_group": "wait until only N or fewer of the most recent wgmma-groups are pending and all
// the prior wgmma-groups committed by the executing threads are complete ... Operand N is an integer
// constant" (no upper bound). Ten groups of one product each, D = A B + D with A = B = 0 and D preset
// to 100 g + r in group g: a completed group's D holds its preset values again, a pending one NaN.
// bad[0]: 1 a wait with N >= the pending count completed a group, 2 wait_group 8 did not complete
// exactly the two oldest, 3 wait_group 2^20 changed anything, 4 wait_group 0 left a group incomplete.
constexpr int kWaitGroups = 10;
void wgmma_wait_many_kernel(int* bad) {
  float d[kWaitGroups][8];
  zero_operands(false);
  for (int g = 0; g < kWaitGroups; g++)
    for (int r = 0; r < 8; r++) d[g][r] = float(100 * g + r);
  wgmma_fence();
  for (int g = 0; g < kWaitGroups; g++) {
    wgmma_m64k16_bf16_ss(d[g], 16, desc(0, 128, 256, 0), desc(0, 128, 256, 0), 1, 0, 0);
    wgmma_commit_group();
  }
  // the groups [0, oldest) complete, the others still pending
  auto completed_before = [&](int oldest) {
    for (int g = 0; g < kWaitGroups; g++)
      for (int r = 0; r < 8; r++)
        if (g < oldest ? d[g][r] != float(100 * g + r) : !std::isnan(d[g][r])) return false;
    return true;
  };
  wgmma_wait_group(12);  // 10 pending, fewer than N: nothing to wait for
  wgmma_wait_group(10);  // exactly N pending: likewise
  if (!completed_before(0)) bad[0] = 1;
  wgmma_wait_group(8);  // at most the 8 most recent may stay pending: groups 0 and 1 complete
  if (!completed_before(2) && !bad[0]) bad[0] = 2;
  wgmma_wait_group(1 << 20);
  if (!completed_before(2) && !bad[0]) bad[0] = 3;
  wgmma_wait_group(0);
  if (!completed_before(kWaitGroups) && !bad[0]) bad[0] = 4;
}

// lane 5 of warp 0 waits with N = 1, every other thread with 0 (.sync: the same instruction in the warp)
void wgmma_lanes_wait_kernel(int*) {
  float d[8];
  zero_operands(false);
  wgmma_fence();
  wgmma_m64k16_bf16_ss(d, 16, desc(0, 128, 256, 0), desc(0, 128, 256, 0), 0, 0, 0);
  wgmma_commit_group();
  wgmma_wait_group(threadIdx.x == 5 ? 1 : 0);
}

// warpgroup 0 (the producer of a warp-specialised kernel) releases registers, warpgroup 1 takes them
void setmaxnreg_kernel(int* bad) {
  if (threadIdx.x < 128) setmaxnreg(24, false);
  else setmaxnreg(240, true);
  __syncthreads();
  (void)bad;
}
void setmaxnreg_count_kernel(int*) { setmaxnreg(236, true); }
// 160 threads: warp 4's warpgroup has one warp
void setmaxnreg_incomplete_kernel(int*) {
  if (threadIdx.x >= 128) setmaxnreg(24, false);
}

}  // namespace

// "" when `name` is none of these self-checks; else "ok" or what failed.
std::string sm90_selftest(const std::string& name, int* bad) {
  std::string r;
  if (name == "mbarrier") L2E_EMU_LAUNCH(mbarrier_kernel, 1, 64, 64, nullptr)(bad);
  else if (name == "mbarrier_deadlock") L2E_EMU_LAUNCH(mbarrier_deadlock_kernel, 1, 32, 64, nullptr)(bad);
  else if (name == "arrival_switch") L2E_EMU_LAUNCH(arrival_switch_kernel, 1, 64, 64, nullptr)(bad);
  else if (name == "mbarrier_overrun") L2E_EMU_LAUNCH(mbarrier_overrun_kernel, 1, 32, 64, nullptr)(bad);
  else if (name == "tma") r = tma(bad, 0);
  else if (name == "tma_init_unfenced") r = tma(bad, 1);
  else if (name == "tma_write_in_flight") r = tma(bad, 2);
  else if (name == "tensor_map_errors") return tensor_map_errors();
  else if (name == "bulk_reduce") r = bulk_reduce(0, bad);
  else if (name == "bulk_reduce_unfenced") r = bulk_reduce(1, bad);
  else if (name == "bulk_reduce_write_in_flight") r = bulk_reduce(2, bad);
  else if (name == "bulk_reduce_swizzled") r = bulk_reduce(3, bad);
  else if (name == "wgmma") L2E_EMU_LAUNCH(wgmma_kernel, 1, 128, 2 * (16384 + 256), nullptr)(bad);
  else if (name == "wgmma_write_in_flight") L2E_EMU_LAUNCH(wgmma_write_in_flight_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_a_in_flight") L2E_EMU_LAUNCH(wgmma_a_in_flight_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_a_rewritten") L2E_EMU_LAUNCH(wgmma_a_rewritten_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_a_shared") L2E_EMU_LAUNCH(wgmma_a_shared_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_nofence") L2E_EMU_LAUNCH(wgmma_nofence_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_proxy_early") L2E_EMU_LAUNCH(wgmma_proxy_early_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_smem_in_flight") L2E_EMU_LAUNCH(wgmma_smem_in_flight_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_warps_operands") L2E_EMU_LAUNCH(wgmma_warps_operands_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_warps_wait") L2E_EMU_LAUNCH(wgmma_warps_wait_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_warps_skip") L2E_EMU_LAUNCH(wgmma_warps_skip_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_warps_early") L2E_EMU_LAUNCH(wgmma_warps_early_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_wait_many") L2E_EMU_LAUNCH(wgmma_wait_many_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "wgmma_lanes_wait") L2E_EMU_LAUNCH(wgmma_lanes_wait_kernel, 1, 128, 4096, nullptr)(bad);
  else if (name == "setmaxnreg") L2E_EMU_LAUNCH(setmaxnreg_kernel, 1, 256, 64, nullptr)(bad);
  else if (name == "setmaxnreg_count") L2E_EMU_LAUNCH(setmaxnreg_count_kernel, 1, 128, 64, nullptr)(bad);
  else if (name == "setmaxnreg_incomplete") L2E_EMU_LAUNCH(setmaxnreg_incomplete_kernel, 1, 160, 64, nullptr)(bad);
  else return "";
  if (!r.empty()) return r;
  // a kernel's failure is reported at the next synchronisation, as on a GPU
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  (void)cudaGetLastError();
  if (e != cudaSuccess) return cudaGetErrorString(e);
  if (name == "arrival_switch" && !bad[0])
    return bad[1] ? "warp 1 ran between the arrival and the write" : "thread 0 wrote before warp 1 ran";
  return bad[0] ? "wrong values (" + std::to_string(bad[0]) + ")" : "ok";
}

}  // namespace emu
}  // namespace l2e
