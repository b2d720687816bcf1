// sgemm, BLIS style: op(B) is packed into [kc x nc] panels of NR-wide column slivers, op(A) into
// [mc x kc] blocks of MR-tall row slivers (packing absorbs the transposes and zero-pads the edges),
// and a register-blocked micro-kernel (gemm_avx512/avx2/scalar.cpp) sweeps each block. Loops:
//   jc (nc cols of C) -> pc (kc of K; B panel stays in L3) -> ic (mc rows; A block stays in L2)
//   -> jr (NR cols; B sliver stays in L1/L2) -> ir (MR rows) -> micro-kernel.
// Threads (gemm_threaded): C is cut into row bands (and column bands when M is small), a few per
// thread, that the threads take from a shared counter, so a core that is busy elsewhere simply
// takes fewer bands. Packed op(B) is shared: whichever thread first needs a group of slivers packs
// it, the others wait for it (rarely: each thread starts at a different group), so nothing is
// packed twice and there is no barrier.
// Pre-packed weights (sgemm_packed_weights, inference): op(B) = W^T is already in slivers, so only
// op(A) is packed, once per row band and k block; the bands sweep all of N (row bands of at most
// mc rows, the columns cut too when M is small).
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "cpu/gemm_kernels.h"
#include "cpu/isa.h"
#include "cpu/parallel.h"

namespace l2e {
namespace gemm {
namespace {

// The micro-kernel of each instruction-set level (cpu/isa.h).
const KernelInfo& kernel_for(cpu::Isa isa) {
  switch (isa) {
    case cpu::Isa::avx512: return avx512_kernel();
    case cpu::Isa::avx2: return avx2_kernel();
    case cpu::Isa::scalar: break;
  }
  return scalar_kernel();
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
  if (!b.trans) {  // row k of op(B) is contiguous in j
    // A few rows at a time across all slivers, so that B is read along its rows (streaming, which
    // the hardware prefetcher follows) rather than down one sliver's column of far-apart rows.
    constexpr int64_t kRows = 16;
    const PackCopy copy = ker.pack_copy ? ker.pack_copy : pack_copy_portable;
    for (int64_t k0 = 0; k0 < kc; k0 += kRows) {
      const int64_t ks = std::min(kRows, kc - k0);
      float* d = dst + k0 * NR;
      for (int64_t j0 = 0; j0 < n; j0 += NR, d += NR * kc)
        copy(b.p + k0 * b.ld + j0, b.ld, int(std::min<int64_t>(NR, n - j0)), ks, NR, d);
    }
    return;
  }
  for (int64_t j0 = 0; j0 < n; j0 += NR, dst += NR * kc)  // column j of op(B) is contiguous in k
    (ker.pack_transpose ? ker.pack_transpose : pack_transpose_portable)(
        b.p + j0 * b.ld, b.ld, int(std::min<int64_t>(NR, n - j0)), kc, NR, dst);
}

View sub(const View& v, int64_t r0, int64_t c0) {
  const int64_t off = v.trans ? c0 * v.ld + r0 : r0 * v.ld + c0;
  return {v.p + off, v.ld, v.trans};
}

// Equal k blocks (K = 768 with kc 512 runs as 2 x 384, not 512 + 256), rounded up to 16 floats.
int64_t balanced_kc(const KernelInfo& ker, int64_t K) {
  const int64_t k_blocks = (K + ker.kc - 1) / ker.kc;
  return std::min(K, ((K + k_blocks - 1) / k_blocks + 15) / 16 * 16);
}

// Single-threaded: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, with K > 0.
void gemm_block(const KernelInfo& ker, const View& a, const View& b, int64_t M, int64_t N,
                int64_t K, float alpha, float beta, float* C, int64_t ldc) {
  const int MR = ker.mr, NR = ker.nr;
  const int64_t kc_max = balanced_kc(ker, K);
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

// A shared packed op(B) above this many floats (16 MB) is split into column blocks.
constexpr int64_t kSharedPanelFloats = int64_t(4) << 20;
// Slivers packed together (one claim): op(B) is then read along 8 * NR contiguous floats per row.
constexpr int64_t kGroupSlivers = 8;
// Bands per thread: enough for a busy core to hand work to an idle one, few enough that op(A)
// blocks stay large.
constexpr int64_t kBandsPerThread = 3;

thread_local PackBuffer t_shared_b;

// Threaded: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, with K > 0, on `threads` workers.
void gemm_threaded(const KernelInfo& ker, const View& a, const View& b, int64_t M, int64_t N,
                   int64_t K, float alpha, float beta, float* C, int64_t ldc, int threads) {
  const int MR = ker.mr, NR = ker.nr;
  const int64_t kc_max = balanced_kc(ker, K);
  const int64_t k_blocks = (K + kc_max - 1) / kc_max;
  // Row bands of whole MR tiles, at most mc rows (an op(A) block per band and k block), a multiple
  // of the thread count, with the tiles spread evenly (no small last band to leave a core idle).
  const int64_t want = kBandsPerThread * threads;
  const int64_t row_tiles = (M + MR - 1) / MR;
  const int64_t max_band_tiles = std::max<int64_t>(1, ker.mc / MR);
  int64_t bands = std::max(want, (row_tiles + max_band_tiles - 1) / max_band_tiles);
  bands = std::min(row_tiles, (bands + threads - 1) / threads * threads);
  const int64_t band_rows = (row_tiles + bands - 1) / bands * MR;  // the tallest band
  // Column block: all of K by nc columns of op(B), packed once and shared.
  const int64_t group_cols = kGroupSlivers * NR;
  const int64_t nc_cap = std::max(group_cols, kSharedPanelFloats / K / group_cols * group_cols);
  const int64_t nc_max = std::min(nc_cap, (N + NR - 1) / NR * NR);
  float* panel = t_shared_b.reserve(size_t(K * nc_max));
  const int64_t max_groups = (nc_max / NR + kGroupSlivers - 1) / kGroupSlivers;
  // Per (k block, sliver group): 0 not packed, 1 being packed, 2 ready.
  std::unique_ptr<std::atomic<int>[]> state(new std::atomic<int>[size_t(k_blocks * max_groups)]);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));

  for (int64_t jc = 0; jc < N; jc += nc_max) {
    const int64_t nc = std::min(nc_max, N - jc);
    const int64_t slivers = (nc + NR - 1) / NR, groups = (slivers + kGroupSlivers - 1) / kGroupSlivers;
    // Few bands (small M): cut the columns too, at the price of packing each op(A) band again.
    const int64_t col_bands = bands >= want ? 1 : std::min(slivers, (want + bands - 1) / bands);
    const int64_t tasks = bands * col_bands;
    for (int64_t i = 0; i < k_blocks * groups; i++) state[size_t(i)].store(0, std::memory_order_relaxed);
    std::atomic<int64_t> next{0};

    // op(B) rows [pc, pc + kc) of sliver group g, packed by whoever gets there first.
    auto ensure_group = [&](int64_t p, int64_t g, int64_t pc, int64_t kc, float* block) {
      std::atomic<int>& st = state[size_t(p * groups + g)];
      if (st.load(std::memory_order_acquire) == 2) return;
      int expected = 0;
      if (st.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        const int64_t j0 = g * group_cols;
        pack_b(ker, sub(b, pc, jc + j0), kc, std::min(group_cols, nc - j0), block + j0 * kc);
        st.store(2, std::memory_order_release);
        return;
      }
      while (st.load(std::memory_order_acquire) != 2) std::this_thread::yield();
    };

    auto worker = [&](int t) {
      float* pa = t_pack_a.reserve(size_t(band_rows * kc_max));
      for (int64_t task; (task = next.fetch_add(1)) < tasks;) {
        const int64_t rb = task / col_bands, cb = task % col_bands;
        const int64_t m0 = row_tiles * rb / bands * MR, m1 = std::min(M, row_tiles * (rb + 1) / bands * MR);
        const int64_t s0 = slivers * cb / col_bands, s1 = slivers * (cb + 1) / col_bands;
        const int64_t start = (s1 - s0) * t / threads;  // threads begin on different groups
        for (int64_t p = 0; p < k_blocks; p++) {
          const int64_t pc = p * kc_max, kc = std::min(kc_max, K - pc);
          float* block = panel + pc * nc_max;  // k block p: slivers of [kc][NR], nc_max / NR of them
          pack_a(ker, sub(a, m0, pc), m1 - m0, kc, pa);
          for (int64_t q = 0; q < s1 - s0; q++) {
            const int64_t s = s0 + (start + q) % (s1 - s0);
            ensure_group(p, s / kGroupSlivers, pc, kc, block);
            const int nr = int(std::min<int64_t>(NR, nc - s * NR));
            for (int64_t ir = 0; ir < m1 - m0; ir += MR) {
              const int mr = int(std::min<int64_t>(MR, m1 - m0 - ir));
              ker.micro(kc, pa + ir * kc, block + s * NR * kc, C + (m0 + ir) * ldc + jc + s * NR, ldc,
                        mr, nr, alpha, p == 0 ? beta : 1.0f);
            }
          }
        }
      }
    };

    // An exception must not escape a pool thread (that would terminate the process): keep it
    // and rethrow it here. Only reserve() throws, before a worker claims any group.
    parallel_for(threads, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; t++) {
        try {
          worker(int(t));
        } catch (...) {
          errors[size_t(t)] = std::current_exception();
        }
      }
    });
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
  }
}

// Pre-packed weights (gemm.h): sliver s of the kernel (columns [s NR, s NR + NR) of op(B) = W^T,
// k rows [pc, pc + kc)) as a [kc][NR] block. Read in place when the kernel's NR is the packed
// width, the sliver lies in the packed blocks and the weights are 64-byte aligned (the model's are);
// otherwise copied into buf (zero padded).
const float* packed_sliver(const KernelInfo& ker, const float* Wp, int64_t N, int64_t K, int64_t s, int64_t pc,
                           int64_t kc, float* buf) {
  const int NR = ker.nr;
  const int64_t c0 = s * NR, packed_cols = N / kPackedRows * kPackedRows;
  if (c0 + NR <= packed_cols) {  // NR divides kPackedRows (checked in sgemm_packed_weights)
    const float* src = Wp + (c0 / kPackedRows) * kPackedRows * K + pc * kPackedRows + c0 % kPackedRows;
    if (NR == kPackedRows && reinterpret_cast<uintptr_t>(src) % 64 == 0) return src;  // the kernel's aligned loads
    (ker.pack_copy ? ker.pack_copy : pack_copy_portable)(src, kPackedRows, NR, kc, NR, buf);
    return buf;
  }
  // the row-major tail block: rows c0.. of W, contiguous in k
  (ker.pack_transpose ? ker.pack_transpose : pack_transpose_portable)(Wp + c0 * K + pc, K, int(std::min<int64_t>(NR, N - c0)),
                                                                      kc, NR, buf);
  return buf;
}

thread_local PackBuffer t_pack_tail;

// C[M,N] = op(A) Wp^T + beta C with pre-packed weights, on `threads` workers. Tasks are row bands
// (at most mc rows: op(A) is packed once per band and k block, and stays in L2 while every sliver
// of the weights streams past it) times column blocks, enough tasks for every thread: each band
// reads all of Wp from memory, so rows are never cut into more bands than mc asks for (at M = 20,
// two bands of 14 and 6 rows read the weights twice).
// One band of at most kStreamTiles tiles (a query, a short text): op(A) is packed over all of K at
// once and each sliver is swept whole, k blocks in order, so a task's slivers are one contiguous
// run of Wp that the kernel's stream variant prefetches into L2 (gemm_kernels.h).
constexpr int64_t kStreamTiles = 3;

void gemm_prepacked(const KernelInfo& ker, const View& a, const float* Wp, int64_t M, int64_t N, int64_t K,
                    float beta, float* C, int64_t ldc, int threads) {
  const int MR = ker.mr, NR = ker.nr;
  const int64_t kc_max = balanced_kc(ker, K);
  const int64_t row_tiles = (M + MR - 1) / MR;
  const int64_t band_tiles = std::max<int64_t>(1, ker.mc / MR);
  const int64_t bands = (row_tiles + band_tiles - 1) / band_tiles;
  const int64_t band_rows = (row_tiles + bands - 1) / bands * MR;
  const bool streaming = bands == 1 && row_tiles <= kStreamTiles;
  const MicroKernel micro = streaming && ker.micro_stream ? ker.micro_stream : ker.micro;
  const int64_t slivers = (N + NR - 1) / NR;
  const int64_t want = threads > 1 ? kBandsPerThread * threads : 1;
  const int64_t col_blocks = bands >= want ? 1 : std::min(slivers, (want + bands - 1) / bands);
  const int64_t tasks = bands * col_blocks;
  std::atomic<int64_t> next{0};
  auto worker = [&]() {
    float* pa = t_pack_a.reserve(size_t(band_rows * (streaming ? K : kc_max)));
    float* tail = t_pack_tail.reserve(size_t(NR * kc_max));
    for (int64_t task; (task = next.fetch_add(1)) < tasks;) {
      const int64_t rb = task / col_blocks, cb = task % col_blocks;
      const int64_t m0 = row_tiles * rb / bands * MR, m1 = std::min(M, row_tiles * (rb + 1) / bands * MR);
      const int64_t s0 = slivers * cb / col_blocks, s1 = slivers * (cb + 1) / col_blocks;
      const int64_t rows = (m1 - m0 + MR - 1) / MR * MR;  // packed rows of the band
      // the k block at pc of sliver s over the band's tiles (op(A) of that block at pa_pc)
      auto sweep = [&](int64_t s, int64_t pc, int64_t kc, const float* pa_pc) {
        const float* b = packed_sliver(ker, Wp, N, K, s, pc, kc, tail);
        const int nr = int(std::min<int64_t>(NR, N - s * NR));
        for (int64_t ir = 0; ir < m1 - m0; ir += MR) {
          const int mr = int(std::min<int64_t>(MR, m1 - m0 - ir));
          micro(kc, pa_pc + ir * kc, b, C + (m0 + ir) * ldc + s * NR, ldc, mr, nr, 1.0f, pc == 0 ? beta : 1.0f);
        }
      };
      if (streaming) {
        for (int64_t pc = 0; pc < K; pc += kc_max) pack_a(ker, sub(a, m0, pc), m1 - m0, std::min(kc_max, K - pc), pa + pc * rows);
        for (int64_t s = s0; s < s1; s++)
          for (int64_t pc = 0; pc < K; pc += kc_max) sweep(s, pc, std::min(kc_max, K - pc), pa + pc * rows);
        continue;
      }
      for (int64_t pc = 0; pc < K; pc += kc_max) {
        const int64_t kc = std::min(kc_max, K - pc);
        pack_a(ker, sub(a, m0, pc), m1 - m0, kc, pa);
        for (int64_t s = s0; s < s1; s++) sweep(s, pc, kc, pa);
      }
    }
  };
  if (threads <= 1) return worker();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
  parallel_for(threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; t++) {
      try {
        worker();
      } catch (...) {  // only reserve() throws, before a worker claims a task
        errors[size_t(t)] = std::current_exception();
      }
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Block s of W (kPackedRows x K, contiguous) between row-major and k-major, through scratch that
// is allocated first: when that fails (the only error), W is left as it was.
void transpose_blocks(float* W, int64_t N, int64_t K, bool pack) {
  const int64_t blocks = N / kPackedRows, R = kPackedRows;
  std::vector<std::vector<float>> scratch(size_t(std::min<int64_t>(num_threads(), std::max<int64_t>(1, blocks))));
  for (auto& v : scratch) v.resize(size_t(R * K));
  parallel_for(blocks, [&](int64_t b0, int64_t b1, int part) {
    std::vector<float>& tmp = scratch[size_t(part)];
    for (int64_t s = b0; s < b1; s++) {
      float* blk = W + s * R * K;
      std::memcpy(tmp.data(), blk, sizeof(float) * size_t(R * K));
      if (pack)
        for (int64_t r = 0; r < R; r++)
          for (int64_t k = 0; k < K; k++) blk[k * R + r] = tmp[size_t(r * K + k)];
      else
        for (int64_t r = 0; r < R; r++)
          for (int64_t k = 0; k < K; k++) blk[r * K + k] = tmp[size_t(k * R + r)];
    }
  });
}

}  // namespace

const KernelInfo& active_kernel() {
  const KernelInfo* k = g_kernel.load(std::memory_order_acquire);
  if (!k) {
    k = &kernel_for(cpu::active_isa());
    g_kernel.store(k, std::memory_order_release);
  }
  return *k;
}

void set_kernel(const char* name) {
  const std::string n = name ? name : "";
  for (cpu::Isa isa : {cpu::Isa::scalar, cpu::Isa::avx2, cpu::Isa::avx512}) {
    if (n != cpu::isa_name(isa)) continue;
    if (!cpu::isa_allows(isa))
      throw Error("sgemm: the '" + n + "' kernel is not available (instruction set in use: " +
                  cpu::isa_name(cpu::active_isa()) + ")");
    g_kernel.store(&kernel_for(isa), std::memory_order_release);
    return;
  }
  throw Error("sgemm: unknown kernel '" + n + "' (expected avx512, avx2 or scalar)");
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
  gemm::gemm_threaded(ker, a, b, M, N, K, alpha, beta, C, ldc, threads);
}

void pack_weights_inplace(float* W, int64_t N, int64_t K) { gemm::transpose_blocks(W, N, K, true); }
void unpack_weights_inplace(float* W, int64_t N, int64_t K) { gemm::transpose_blocks(W, N, K, false); }

void sgemm_packed_weights(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Wp,
                          float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    gemm::scale_c(M, N, beta, C, ldc);
    return;
  }
  const gemm::KernelInfo& ker = gemm::active_kernel();
  if (kPackedRows % ker.nr != 0)
    throw Error("sgemm: the " + std::string(ker.name) + " kernel's width does not divide the packed weights' 32 rows");
  const double flops = 2.0 * double(M) * double(N) * double(K);
  gemm::gemm_prepacked(ker, gemm::View{A, lda, false}, Wp, M, N, K, beta, C, ldc, flops < 2e6 ? 1 : num_threads());
}

const char* gemm_kernel_name() { return gemm::active_kernel().name; }

}  // namespace l2e
