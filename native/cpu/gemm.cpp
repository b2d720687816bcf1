// sgemm, BLIS style: op(B) is packed into [kc x nc] panels of NR-wide column slivers, op(A) into
// [mc x kc] blocks of MR-tall row slivers (packing absorbs the transposes and zero-pads the edges),
// and a register-blocked micro-kernel (gemm_avx512/avx2/scalar.cpp) sweeps each block. Loops:
//   jc (nc cols of C) -> pc (kc of K; B panel stays in L3) -> ic (mc rows; A block stays in L2)
//   -> jr (NR cols; B sliver stays in L1) -> ir (MR rows) -> micro-kernel.
// Threads: C is cut into one rectangle per worker, each running the loops above on its own packing
// buffers, so there is a single fork/join per call and no barrier inside.
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/tensor.h"
#include "cpu/gemm_kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace gemm {
namespace {

bool cpu_supports(const std::string& name) {
  __builtin_cpu_init();
  if (name == "avx512") return __builtin_cpu_supports("avx512f");
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return name == "scalar";
}

const KernelInfo* kernel_by_name(const std::string& name) {
  if (name == "avx512") return &avx512_kernel();
  if (name == "avx2") return &avx2_kernel();
  if (name == "scalar") return &scalar_kernel();
  return nullptr;
}

// Best kernel this CPU runs, unless L2E_GEMM_KERNEL names a supported one.
const KernelInfo* default_kernel() {
  const char* forced = std::getenv("L2E_GEMM_KERNEL");
  if (forced && *forced && kernel_by_name(forced) && cpu_supports(forced)) return kernel_by_name(forced);
  for (const char* name : {"avx512", "avx2"})
    if (cpu_supports(name)) return kernel_by_name(name);
  return &scalar_kernel();
}

std::atomic<const KernelInfo*> g_kernel{nullptr};

// 64-byte aligned scratch that grows on demand; one per thread (pool threads are persistent).
struct PackBuffer {
  float* data = nullptr;
  size_t capacity = 0;
  float* reserve(size_t n) {
    if (n > capacity) {
      std::free(data);
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data) throw Error("sgemm: out of memory for packing buffers");
      capacity = n;
    }
    return data;
  }
  ~PackBuffer() { std::free(data); }
};
thread_local PackBuffer t_pack_a, t_pack_b;

// A strided matrix view of op(X): element (r, c) is X[r*ld + c], or X[c*ld + r] when transposed.
struct View {
  const float* p;
  int64_t ld;
  bool trans;
};

// Portable sliver packing (see PackTranspose / PackCopy in gemm_kernels.h).
void pack_transpose_portable(const float* src, int64_t ld, int n, int64_t kc, int W, float* dst) {
  for (int i = 0; i < n; i++)
    for (int64_t k = 0; k < kc; k++) dst[k * W + i] = src[i * ld + k];
  for (int64_t k = 0; k < kc; k++)
    for (int i = n; i < W; i++) dst[k * W + i] = 0.0f;
}
void pack_copy_portable(const float* src, int64_t ld, int n, int64_t kc, int W, float* dst) {
  for (int64_t k = 0; k < kc; k++) {
    std::memcpy(dst + k * W, src + k * ld, sizeof(float) * n);
    for (int j = n; j < W; j++) dst[k * W + j] = 0.0f;
  }
}

// dst <- rows [0, m) x k [0, kc) of op(A) as MR-tall slivers, each [kc][MR] with zero-padded rows.
void pack_a(const KernelInfo& ker, const View& a, int64_t m, int64_t kc, float* dst) {
  const int MR = ker.mr;
  for (int64_t i0 = 0; i0 < m; i0 += MR, dst += MR * kc) {
    const int mr = int(std::min<int64_t>(MR, m - i0));
    if (!a.trans)  // row i of op(A) is contiguous in k
      (ker.pack_transpose ? ker.pack_transpose : pack_transpose_portable)(a.p + i0 * a.ld, a.ld, mr, kc, MR, dst);
    else  // column k of op(A) is contiguous in i
      (ker.pack_copy ? ker.pack_copy : pack_copy_portable)(a.p + i0, a.ld, mr, kc, MR, dst);
  }
}

// dst <- k [0, kc) x cols [0, n) of op(B) as NR-wide slivers, each [kc][NR] with zero-padded cols.
void pack_b(const KernelInfo& ker, const View& b, int64_t kc, int64_t n, float* dst) {
  const int NR = ker.nr;
  for (int64_t j0 = 0; j0 < n; j0 += NR, dst += NR * kc) {
    const int nr = int(std::min<int64_t>(NR, n - j0));
    if (!b.trans)  // row k of op(B) is contiguous in j
      (ker.pack_copy ? ker.pack_copy : pack_copy_portable)(b.p + j0, b.ld, nr, kc, NR, dst);
    else  // column j of op(B) is contiguous in k
      (ker.pack_transpose ? ker.pack_transpose : pack_transpose_portable)(b.p + j0 * b.ld, b.ld, nr, kc, NR, dst);
  }
}

View sub(const View& v, int64_t r0, int64_t c0) {
  const int64_t off = v.trans ? c0 * v.ld + r0 : r0 * v.ld + c0;
  return {v.p + off, v.ld, v.trans};
}

// One thread's share: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, with K > 0.
void gemm_block(const KernelInfo& ker, const View& a, const View& b, int64_t M, int64_t N,
                int64_t K, float alpha, float beta, float* C, int64_t ldc) {
  const int MR = ker.mr, NR = ker.nr;
  const int64_t kc_max = std::min(ker.kc, K);
  const int64_t mc_max = std::min(ker.mc, (M + MR - 1) / MR * MR);
  const int64_t nc_max = std::min(ker.nc, (N + NR - 1) / NR * NR);
  float* pa = t_pack_a.reserve(size_t(mc_max * kc_max));
  float* pb = t_pack_b.reserve(size_t(nc_max * kc_max));
  for (int64_t jc = 0; jc < N; jc += nc_max) {
    const int64_t nc = std::min(nc_max, N - jc);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;  // later k blocks accumulate onto the first
      pack_b(ker, sub(b, pc, jc), kc, nc, pb);
      for (int64_t ic = 0; ic < M; ic += mc_max) {
        const int64_t mc = std::min(mc_max, M - ic);
        pack_a(ker, sub(a, ic, pc), mc, kc, pa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = int(std::min<int64_t>(NR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = int(std::min<int64_t>(MR, mc - ir));
            ker.micro(kc, pa + ir * kc, pb + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, mr, nr,
                      alpha, beta_k);
          }
        }
      }
    }
  }
}

// C <- beta C (K == 0 or alpha == 0); beta == 0 writes zeros without reading C.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    float* row = C + i * ldc;
    if (beta == 0.0f)
      std::fill(row, row + N, 0.0f);
    else if (beta != 1.0f)
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
  }
}

// Cuts M x N into tm x tn rectangles (tm * tn = threads) that are as square as possible in tiles.
void split_grid(int threads, int64_t M, int64_t N, int MR, int NR, int& tm, int& tn) {
  double best = 1e300;
  tm = threads, tn = 1;
  for (int d = 1; d <= threads; d++) {
    if (threads % d) continue;
    const int64_t rows = (M + d - 1) / d, cols = (N + threads / d - 1) / (threads / d);
    if (d > 1 && (M + MR - 1) / MR < d) continue;                   // fewer row tiles than parts
    if (threads / d > 1 && (N + NR - 1) / NR < threads / d) continue;  // fewer col tiles than parts
    const double skew = std::fabs(std::log(double(std::max<int64_t>(rows, 1)) / double(std::max<int64_t>(cols, 1))));
    if (skew < best) best = skew, tm = d, tn = threads / d;
  }
}

// [begin, end) of part p of n items cut into `parts` runs aligned to `unit`.
void part_range(int64_t n, int parts, int p, int unit, int64_t& begin, int64_t& end) {
  const int64_t units = (n + unit - 1) / unit;
  begin = std::min(n, units * p / parts * unit);
  end = std::min(n, units * (p + 1) / parts * unit);
}

}  // namespace

const KernelInfo& active_kernel() {
  const KernelInfo* k = g_kernel.load(std::memory_order_acquire);
  if (!k) {
    k = default_kernel();
    g_kernel.store(k, std::memory_order_release);
  }
  return *k;
}

void set_kernel(const char* name) {
  const std::string n = name ? name : "";
  const KernelInfo* k = kernel_by_name(n);
  if (!k) throw Error("sgemm: unknown kernel '" + n + "' (expected avx512, avx2 or scalar)");
  if (!cpu_supports(n)) throw Error("sgemm: this CPU does not support the '" + n + "' kernel");
  g_kernel.store(k, std::memory_order_release);
}

}  // namespace gemm

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    gemm::scale_c(M, N, beta, C, ldc);
    return;
  }
  const gemm::KernelInfo& ker = gemm::active_kernel();
  const gemm::View a{A, lda, transA}, b{B, ldb, transB};
  // Below ~2 MFLOP the fork/join costs more than the second core gives back.
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int threads = flops < 2e6 ? 1 : num_threads();
  if (threads <= 1) {
    gemm::gemm_block(ker, a, b, M, N, K, alpha, beta, C, ldc);
    return;
  }
  int tm, tn;
  gemm::split_grid(threads, M, N, ker.mr, ker.nr, tm, tn);
  parallel_for(int64_t(tm) * tn, [&](int64_t begin, int64_t end, int) {
    for (int64_t p = begin; p < end; p++) {
      int64_t m0, m1, n0, n1;
      gemm::part_range(M, tm, int(p / tn), ker.mr, m0, m1);
      gemm::part_range(N, tn, int(p % tn), ker.nr, n0, n1);
      if (m0 >= m1 || n0 >= n1) continue;
      gemm::gemm_block(ker, gemm::sub(a, m0, 0), gemm::sub(b, 0, n0), m1 - m0, n1 - n0, K, alpha,
                       beta, C + m0 * ldc + n0, ldc);
    }
  });
}

const char* gemm_kernel_name() { return gemm::active_kernel().name; }

}  // namespace l2e
