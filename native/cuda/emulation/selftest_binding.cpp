// cudaEmulationSelfTest(name) -> string: small kernels that check the emulator itself (emulation
// build only; test/gpu/emulation.test.ts). "ok" or the launch's error message:
//   mma       one mma.sync m16n8k16 with distinct A, B, C values against D = A B + C computed here
//             from the matrices (each lane's fragments placed by the PTX ISA tables, ptx.cpp);
//   ldmatrix  ldmatrix .x4 and .x4.trans of four 8x8 matrices in shared memory, every register checked;
//   divergent_barrier  __syncthreads reached by half of the block (must fail, not hang);
//   partial_mask       a shuffle with a mask of 16 lanes (must fail);
//   out_of_warp        half a warp at a shuffle, the other half exited (must fail);
//   any_sync  __any_sync with no lane, one lane (each in turn) and every lane voting true;
//   ex2       ex2.approx.ftz.f32 on exact powers of two, subnormal inputs and results, and the
//             special values the PTX ISA lists;
//   float_as_uint      __float_as_uint's bits of signed zeros, one, the largest finite, infinity and a
//                      NaN with a payload (IEEE 754 binary32 encodings);
//   static_shared      three blocks, twice: each reads its static shared array before writing it (must
//                      be NaN, not an earlier block's values), then a neighbour's entry (must be shared);
//   oob_global_after, oob_global_before, oob_shared_before: one read just past the end of a device
//                      allocation (the guard page: must abort naming the kernel), just before its
//                      start, or just before a static shared array (caught under AddressSanitizer only).
//   smem_default, smem_raised, smem_short: a launch with 64 KiB of dynamic shared memory and no
//                      cudaFuncSetAttribute (must fail: the 48 KiB default), after raising the kernel's
//                      limit to 64 KiB (runs), and to 56 KiB (must fail);
//   approx_math  ex2.approx, __expf and rsqrtf against their documented error bounds: how many results
//                are exact, within the bound, at it and over it (L2E_CUDA_EMULATE_MATH, approx_math.h);
//   smem_sum_over, smem_sum_fits: 16 KiB of static shared memory with all but 8 KiB of the device's
//                      limit as dynamic (must fail: the two share the limit), or with 64 KiB (runs);
//   atomics  atomicAdd and atomicCAS on int from 4 blocks of 64 threads: every old value a ticket
//            handed out once, one winner of a CAS from -1, and a CAS whose compare fails stores nothing;
//   atomics_float  atomicAdd on float: subnormal inputs and results flushed to signed zero in global
//            memory, kept in shared memory (PTX ISA, "atom": the .add.f32 of each);
//   and the sm_90a instructions' checks (selftest_sm90.cpp) and the emulated cuBLAS's (selftest_cublas.cpp).
// Each runs one launch and synchronises, so that the launch's asynchronous error is the result.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>

#include "addon/registry.h"
#include "cuda_bf16.h"
#include "cuda_runtime.h"
#include "cuda/device_utils.cuh"
#include "ptx.h"

namespace l2e {
namespace emu {
std::string sm90_selftest(const std::string& name, int* bad);  // selftest_sm90.cpp: "" for other names
std::string cublas_selftest(const std::string& name);          // selftest_cublas.cpp: likewise
namespace {

// A(r, k) = (r - 2k) / 8, B(k, n) = (k + 3n) / 16, C(r, n) = r n / 4: small integers over powers of
// two, exact in bf16 and in fp32 sums, so D must match exactly.
float Aval(int r, int k) { return float(r - 2 * k) / 8.0f; }
float Bval(int k, int n) { return float(k + 3 * n) / 16.0f; }
float Cval(int r, int n) { return float(r * n) / 4.0f; }
uint32_t pack(float lo, float hi) {
  return uint32_t(__float2bfloat16_rn(lo).__x) | (uint32_t(__float2bfloat16_rn(hi).__x) << 16);
}

void mma_kernel(int* bad) {
  const int lane = int(threadIdx.x), g = lane >> 2, t = lane & 3;
  uint32_t a[4], b[2];
  // PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point type" (see ptx.cpp)
  a[0] = pack(Aval(g, 2 * t), Aval(g, 2 * t + 1));
  a[1] = pack(Aval(g + 8, 2 * t), Aval(g + 8, 2 * t + 1));
  a[2] = pack(Aval(g, 2 * t + 8), Aval(g, 2 * t + 9));
  a[3] = pack(Aval(g + 8, 2 * t + 8), Aval(g + 8, 2 * t + 9));
  b[0] = pack(Bval(2 * t, g), Bval(2 * t + 1, g));
  b[1] = pack(Bval(2 * t + 8, g), Bval(2 * t + 9, g));
  float c[4] = {Cval(g, 2 * t), Cval(g, 2 * t + 1), Cval(g + 8, 2 * t), Cval(g + 8, 2 * t + 1)}, d[4];
  ptx::mma_m16n8k16_bf16_f32(d, a, b, c);
  for (int i = 0; i < 4; i++) {
    const int r = g + (i >= 2 ? 8 : 0), n = 2 * t + (i & 1);
    float want = Cval(r, n);
    for (int k = 0; k < 16; k++) want += Aval(r, k) * Bval(k, n);
    if (d[i] != want) bad[1] = 1;
  }
}

// Matrix m, element (row, col) = 1000 m + 10 row + col (as a 16-bit integer pattern).
void ldmatrix_kernel(int* bad) {
  uint16_t* s = static_cast<uint16_t*>(dynamic_shared());  // 4 matrices, rows of 8, row stride 16
  const int lane = int(threadIdx.x), g = lane >> 2, t = lane & 3;
  for (int e = lane; e < 4 * 8 * 16; e += 32) {
    const int m = e / 128, row = (e / 16) % 8, col = e % 16;
    s[e] = uint16_t(col < 8 ? 1000 * m + 10 * row + col : 0xdead);
  }
  __syncthreads();
  const unsigned addr = unsigned(shared_offset(s + (lane / 8) * 128 + (lane % 8) * 16));
  uint32_t d[4], dt[4];
  ptx::ldmatrix_m8n8_b16(d, 4, false, addr);
  ptx::ldmatrix_m8n8_b16(dt, 4, true, addr);
  for (int m = 0; m < 4; m++) {
    auto v = [&](int row, int col) { return uint32_t(1000 * m + 10 * row + col); };
    if (d[m] != (v(g, 2 * t) | (v(g, 2 * t + 1) << 16))) bad[0] = 1;
    if (dt[m] != (v(2 * t, g) | (v(2 * t + 1, g) << 16))) bad[0] = 1;
  }
}

// bad[0]: a vote with no lane true was non-zero, bad[1]: one with one or every lane true was zero
void any_sync_kernel(int* bad) {
  const int lane = int(threadIdx.x) & 31;
  if (__any_sync(0xffffffffu, 0)) bad[0] = 1;
  for (int one = 0; one < 32; one++)
    if (!__any_sync(0xffffffffu, lane == one ? 7 : 0)) bad[1] = 1;
  if (!__any_sync(0xffffffffu, 1)) bad[1] = 1;
}

// bad[0]: a value off its PTX ISA result (exact here: powers of two and the listed special values)
void ex2_kernel(int* bad) {
  const float sub = std::ldexp(1.0f, -140);  // a subnormal
  struct Case {
    float a, want;
  };
  const Case cases[] = {
      {0.0f, 1.0f},  {-0.0f, 1.0f}, {3.0f, 8.0f},   {-1.0f, 0.5f},  {-126.0f, std::ldexp(1.0f, -126)},
      {-126.5f, 0.0f},  // the result 2^-126.5 is subnormal: flushed
      {-149.0f, 0.0f},  {sub, 1.0f},  {-sub, 1.0f},  // subnormal inputs are zeros
      {-INFINITY, 0.0f}, {INFINITY, INFINITY},
  };
  for (const Case& c : cases) {
    const float r = ptx::ex2_approx_ftz_f32(c.a);
    if (r != c.want || std::signbit(r)) bad[0] = 1;
  }
  if (!std::isnan(ptx::ex2_approx_ftz_f32(NAN))) bad[0] = 1;
}

// approx_math: ex2.approx, __expf and rsqrtf on kApproxArgs arguments each (64 spread over a range, then
// edge cases: the special values, integers, results next to a power of two), their results' distance from
// the correctly rounded value (from double precision) in ulps of that value, against the bound their
// documentation gives (approx_math.h). Per function f, out[5f..5f+4]: results exact, within the bound, at
// it, over it; and results above the correctly rounded value.
constexpr int kSpread = 64, kEdges = 6, kApproxArgs = kSpread + kEdges, kApproxCounts = 5;
void approx_math_kernel(int* out) {
  auto ulps_off = [](float got, double exact) {  // signed, in ulps of the correctly rounded value
    const float want = float(exact);
    int e;
    std::frexp(want, &e);  // want in [2^(e-1), 2^e): its ulp is 2^(e-24)
    return (double(got) - double(want)) / std::ldexp(1.0, e - 24);
  };
  const float ex2_edges[kEdges] = {0.0f, -0.0f, 1.0f, -3.0f, std::nextafter(1.0f, 0.0f), std::nextafter(5.0f, 0.0f)};
  const float exp_edges[kEdges] = {0.0f, -0.0f, 1.0f, -1.0f, std::nextafter(0.6931472f, 0.0f), 10.0f};
  const float rsqrt_edges[kEdges] = {4.0f, 0.25f, 1.0f, std::nextafter(4.0f, 0.0f), std::nextafter(1.0f, 2.0f), 2.0f};
  for (int i = 0; i < kApproxArgs; i++) {
    const float u = float(i) / float(kSpread - 1);  // 0 .. 1 over the spread ones
    const bool edge = i >= kSpread;
    const float a = edge ? ex2_edges[i - kSpread] : -20.0f + 40.0f * u + 0.013f;    // ex2: 2^-20 .. 2^20
    const float x = edge ? exp_edges[i - kSpread] : -80.0f + 160.0f * u + 0.017f;   // __expf: e^-80 .. e^80
    const float y = edge ? rsqrt_edges[i - kSpread] : std::ldexp(1.0f + 0.37f * u, -12 + 24 * i / kSpread);  // rsqrtf
    const struct {
      double off, bound;
    } r[3] = {
        {ulps_off(ptx::ex2_approx_ftz_f32(a), std::exp2(double(a))), 2},
        {ulps_off(__expf(x), std::exp(double(x))), 2 + std::floor(std::fabs(1.173 * double(x)))},
        {ulps_off(rsqrtf(y), 1.0 / std::sqrt(double(y))), 2},
    };
    for (int f = 0; f < 3; f++) {
      const double m = std::fabs(r[f].off), b = r[f].bound;
      out[kApproxCounts * f + (m == 0 ? 0 : m < b ? 1 : m == b ? 2 : 3)]++;
      if (r[f].off > 0) out[kApproxCounts * f + 4]++;
    }
  }
}

// bad[0]: a float's bits off its binary32 encoding
void float_as_uint_kernel(int* bad) {
  struct Case {
    float a;
    unsigned int want;
  };
  const Case cases[] = {{0.0f, 0x00000000u}, {-0.0f, 0x80000000u}, {1.0f, 0x3f800000u}, {-2.5f, 0xc0200000u},
                        {3.4028235e38f, 0x7f7fffffu}, {INFINITY, 0x7f800000u}, {std::ldexp(1.0f, -149), 0x00000001u}};
  for (const Case& c : cases)
    if (__float_as_uint(c.a) != c.want) bad[0] = 1;
  const unsigned int nan_bits = 0x7fc01234u;  // a quiet NaN with a payload: the bits pass through
  float nan;
  std::memcpy(&nan, &nan_bits, sizeof nan);
  if (__float_as_uint(nan) != nan_bits) bad[0] = 1;
}

// mem[0]: a counter, mem[1]: a CAS target (starts -1), mem[2]: CAS winners, mem[3 + k]: ticket k's takers.
// bad[0]: a ticket taken twice or never, a count off; bad[1]: a CAS stored or returned wrongly.
constexpr int kAtomicThreads = 4 * 64;
void atomics_kernel(int* bad, int* mem) {
  const int t = int(blockIdx.x * blockDim.x + threadIdx.x);
  const int ticket = atomicAdd(mem, 1);
  if (ticket < 0 || ticket >= kAtomicThreads) bad[0] = 1;
  else atomicAdd(mem + 3 + ticket, 1);
  const int old = atomicCAS(mem + 1, -1, t);
  if (old == -1) atomicAdd(mem + 2, 1);
  else if (old < 0 || old >= kAtomicThreads) bad[1] = 1;  // the winner's t, never anything else
}
void atomics_check_kernel(int* bad, int* mem) {
  if (mem[0] != kAtomicThreads || mem[2] != 1) bad[0] = 1;
  for (int k = 0; k < kAtomicThreads; k++)
    if (mem[3 + k] != 1) bad[0] = 1;
  const int held = mem[1];
  if (atomicCAS(mem + 1, held + 1, 12345) != held || mem[1] != held) bad[1] = 1;  // compare fails: no store
  if (atomicCAS(mem + 1, held, -7) != held || mem[1] != -7) bad[1] = 1;
  if (atomicAdd(mem + 1, -3) != -7 || mem[1] != -10) bad[1] = 1;
}

// g: 4 floats of global memory, zero. The smallest normal float is 2^-126; 2^-130 is subnormal.
void atomics_float_kernel(int* bad, float* g) {
  const float sub = std::ldexp(1.0f, -130), normal = std::ldexp(1.0f, -126);
  float* s = static_cast<float*>(dynamic_shared());
  s[0] = 0.0f;
  atomicAdd(&s[0], sub);  // shared: kept
  if (s[0] != sub) bad[0] = 1;
  atomicAdd(&g[0], sub);  // global: a subnormal input counts as zero
  if (g[0] != 0.0f) bad[0] = 2;
  g[1] = 1.5f * normal;
  atomicAdd(&g[1], -normal);  // normal inputs, a subnormal result (2^-127): zero
  if (g[1] != 0.0f || std::signbit(g[1])) bad[0] = 3;
  g[2] = -1.5f * normal;
  atomicAdd(&g[2], normal);  // the sign kept: -0
  if (g[2] != 0.0f || !std::signbit(g[2])) bad[0] = 4;
  atomicAdd(&g[3], 3.0f * normal);  // normal values add as they are
  atomicAdd(&g[3], -normal);
  if (g[3] != 2.0f * normal) bad[0] = 5;
}

void divergent_barrier_kernel(int*) {
  if (threadIdx.x < 32) __syncthreads();
}

void partial_mask_kernel(int*) {
  if (threadIdx.x < 16) (void)__shfl_xor_sync(0xffffu, 1.0f, 1);
}

void out_of_warp_kernel(int*) {
  if (threadIdx.x < 16) (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// bad[0]: a read before the block's first write was not NaN; bad[1]: a thread did not see another's write.
void static_shared_kernel(int* bad) {
  L2E_SHARED(float, s, [64]);
  const int t = int(threadIdx.x);
  if (!std::isnan(s[t])) bad[0] = 1;
  __syncthreads();
  s[t] = float(blockIdx.x * 64 + t);
  __syncthreads();
  const int u = (t + 1) % 64;
  if (s[u] != float(blockIdx.x * 64 + u)) bad[1] = 1;
}

// The schedule between meeting points (L2E_CUDA_EMULATE_SCHEDULE, runtime.cpp): warp 1 writes, warp 0
// reads after a shuffle with no block barrier between. bad[0]: warp 0 saw the write (every thread reached
// the shuffle before any passed it: "rounds"); bad[1]: it read the block's first NaN (warp 0 ran ahead).
void schedule_kernel(int* bad) {
  L2E_SHARED(float, s, [1]);
  if (threadIdx.x == 32) s[0] = 1.0f;
  const float x = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  if (threadIdx.x == 0) {
    const float seen = static_cast<volatile float*>(s)[0];
    if (seen == x) bad[0] = 1;
    if (std::isnan(seen)) bad[1] = 1;
  }
}

// `bad` holds 2 ints; volatile keeps the planted reads
void oob_global_after_kernel(int* bad) {
  if (threadIdx.x == 0) bad[0] = static_cast<volatile int*>(bad)[4];  // 16 bytes: the guard page
}
void oob_global_before_kernel(int* bad) {
  if (threadIdx.x == 0) bad[0] = static_cast<volatile int*>(bad)[-1];
}
void oob_shared_before_kernel(int* bad) {
  L2E_SHARED(float, s, [32]);
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) bad[0] = int(static_cast<volatile float*>(s)[-1]);
}

// 64 KiB of dynamic shared memory, its last byte written and read back; three kernels (distinct values, so
// distinct functions) for the three limits of the smem_* cases.
void smem_last_byte(int* bad, char v) {
  volatile char* s = static_cast<char*>(dynamic_shared());
  if (threadIdx.x != 0) return;
  s[64 * 1024 - 1] = v;
  if (s[64 * 1024 - 1] != v) bad[0] = 1;
}
void smem_default_kernel(int* bad) { smem_last_byte(bad, 1); }
// 16 KiB of static shared memory besides the dynamic: with all but 8 KiB of the device's limit dynamic,
// the sum is over it (must fail); with 64 KiB dynamic it runs
void smem_sum_kernel(int* bad) {
  L2E_SHARED(float, s, [4096]);
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  if (s[0] != 1.0f) bad[0] = 1;
}
void smem_raised_kernel(int* bad) { smem_last_byte(bad, 2); }
void smem_short_kernel(int* bad) { smem_last_byte(bad, 3); }

std::string run(const std::string& name) {
  int* bad = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&bad), 2 * sizeof(int)) != cudaSuccess) return std::string("cudaMalloc failed: ") + cudaGetErrorString(cudaGetLastError());
  cudaMemsetAsync(bad, 0, 2 * sizeof(int), nullptr);
  if (name == "mma") L2E_EMU_LAUNCH(mma_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "ldmatrix") L2E_EMU_LAUNCH(ldmatrix_kernel, 1, 32, 4 * 8 * 16 * 2, nullptr)(bad);
  else if (name == "ex2") L2E_EMU_LAUNCH(ex2_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "float_as_uint") L2E_EMU_LAUNCH(float_as_uint_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "any_sync") L2E_EMU_LAUNCH(any_sync_kernel, 2, 64, 0, nullptr)(bad);
  else if (name == "approx_math") {  // its own result: the counts, "ex2 64: 0 exact, 0 within, 64 at the bound (30 up), 0 over; ..."
    int* out = nullptr;
    constexpr int n = 3 * kApproxCounts;
    if (cudaMalloc(reinterpret_cast<void**>(&out), n * sizeof(int)) != cudaSuccess) return std::string("cudaMalloc failed: ") + cudaGetErrorString(cudaGetLastError());
    cudaMemsetAsync(out, 0, n * sizeof(int), nullptr);
    L2E_EMU_LAUNCH(approx_math_kernel, 1, 1, 0, nullptr)(out);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    std::string r = e == cudaSuccess ? "" : cudaGetErrorString(e);
    const char* names[3] = {"ex2", "__expf", "rsqrtf"};
    for (int f = 0; f < 3 && e == cudaSuccess; f++) {
      const int* c = out + kApproxCounts * f;
      r += std::string(f ? "; " : "") + names[f] + " " + std::to_string(kApproxArgs) + ": " + std::to_string(c[0]) + " exact, " +
           std::to_string(c[1]) + " within, " + std::to_string(c[2]) + " at the bound (" + std::to_string(c[4]) + " up), " +
           std::to_string(c[3]) + " over";
    }
    cudaFree(out);
    cudaFree(bad);
    return r;
  }
  else if (name == "atomics") {
    int* mem = nullptr;
    if (cudaMalloc(reinterpret_cast<void**>(&mem), (3 + kAtomicThreads) * sizeof(int)) != cudaSuccess) return std::string("cudaMalloc failed: ") + cudaGetErrorString(cudaGetLastError());
    cudaMemsetAsync(mem, 0, (3 + kAtomicThreads) * sizeof(int), nullptr);
    cudaMemsetAsync(mem + 1, 0xff, sizeof(int), nullptr);  // -1
    L2E_EMU_LAUNCH(atomics_kernel, 4, 64, 0, nullptr)(bad, mem);
    L2E_EMU_LAUNCH(atomics_check_kernel, 1, 1, 0, nullptr)(bad, mem);
    cudaDeviceSynchronize();
    cudaFree(mem);
  }
  else if (name == "atomics_float") {
    float* g = nullptr;
    if (cudaMalloc(reinterpret_cast<void**>(&g), 4 * sizeof(float)) != cudaSuccess) return std::string("cudaMalloc failed: ") + cudaGetErrorString(cudaGetLastError());
    cudaMemsetAsync(g, 0, 4 * sizeof(float), nullptr);
    L2E_EMU_LAUNCH(atomics_float_kernel, 1, 1, 16, nullptr)(bad, g);
    cudaDeviceSynchronize();
    cudaFree(g);
  }
  else if (name == "divergent_barrier") L2E_EMU_LAUNCH(divergent_barrier_kernel, 1, 64, 0, nullptr)(bad);
  else if (name == "partial_mask") L2E_EMU_LAUNCH(partial_mask_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "out_of_warp") L2E_EMU_LAUNCH(out_of_warp_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "static_shared") {
    L2E_EMU_LAUNCH(static_shared_kernel, 3, 64, 0, nullptr)(bad);
    L2E_EMU_LAUNCH(static_shared_kernel, 3, 64, 0, nullptr)(bad);
  } else if (name == "schedule") L2E_EMU_LAUNCH(schedule_kernel, 1, 64, 0, nullptr)(bad);
  else if (name == "oob_global_after") L2E_EMU_LAUNCH(oob_global_after_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "oob_global_before") L2E_EMU_LAUNCH(oob_global_before_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "oob_shared_before") L2E_EMU_LAUNCH(oob_shared_before_kernel, 1, 32, 0, nullptr)(bad);
  else if (name == "smem_sum_over" || name == "smem_sum_fits") {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "cudaGetDeviceProperties failed";
    const size_t dynamic = name == "smem_sum_over" ? prop.sharedMemPerBlockOptin - 8 * 1024 : 64 * 1024;
    if (cudaFuncSetAttribute(smem_sum_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(dynamic)) != cudaSuccess)
      return "cudaFuncSetAttribute failed";
    L2E_EMU_LAUNCH(smem_sum_kernel, 1, 32, dynamic, nullptr)(bad);
  } else if (name == "smem_default" || name == "smem_raised" || name == "smem_short") {
    // one kernel per case: a limit set by one case must not carry over to the next
    constexpr size_t k64 = 64 * 1024;
    if (name == "smem_default") L2E_EMU_LAUNCH(smem_default_kernel, 1, 32, k64, nullptr)(bad);
    if (name == "smem_raised") {
      if (cudaFuncSetAttribute(smem_raised_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(k64)) != cudaSuccess)
        return "cudaFuncSetAttribute failed";
      L2E_EMU_LAUNCH(smem_raised_kernel, 1, 32, k64, nullptr)(bad);
    }
    if (name == "smem_short") {
      if (cudaFuncSetAttribute(smem_short_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 56 * 1024) != cudaSuccess)
        return "cudaFuncSetAttribute failed";
      L2E_EMU_LAUNCH(smem_short_kernel, 1, 32, k64, nullptr)(bad);
    }
  }
  else {
    std::string r = sm90_selftest(name, bad);
    if (r.empty()) r = cublas_selftest(name);
    cudaFree(bad);
    return r.empty() ? "unknown self-test '" + name + "'" : r;
  }
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  (void)cudaGetLastError();
  std::string r = e == cudaSuccess ? "ok" : cudaGetErrorString(e);
  if (e == cudaSuccess && name == "static_shared" && bad[0]) r = "a block read static shared memory it had not written and found no NaN";
  else if (e == cudaSuccess && name == "static_shared" && bad[1]) r = "a thread did not see another thread's static shared write";
  else if (e == cudaSuccess && name == "schedule")
    r = bad[0] && !bad[1] ? "warp 0 saw warp 1's write" : bad[1] && !bad[0] ? "warp 0 ran ahead of warp 1" : "wrong values";
  else if (e == cudaSuccess && name == "atomics_float" && bad[0]) r = "wrong values (" + std::to_string(bad[0]) + ")";
  else if (e == cudaSuccess && (bad[0] || bad[1])) r = "wrong values";
  cudaFree(bad);
  return r;
}

Napi::Value SelfTest(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), run(info[0].As<Napi::String>().Utf8Value()));
}

void register_selftest(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaEmulationSelfTest", Napi::Function::New(env, SelfTest, "cudaEmulationSelfTest"));
}

}  // namespace

L2E_REGISTER(cuda_emulation_selftest, register_selftest);

}  // namespace emu
}  // namespace l2e
