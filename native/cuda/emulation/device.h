// CUDA emulation build: the device side of CUDA C++ for kernels compiled as C++ (L2E_CUDA_EMULATION).
//
// Execution model (runtime.cpp): a launch runs its blocks one after another; a block runs each of its
// threads as a fiber (its own small stack) on one OS thread, switching only where CUDA threads must
// meet: __syncthreads and the warp-synchronous operations (shuffles, mma.sync, ldmatrix). Between
// those points a thread runs alone, which is a legal CUDA schedule (which thread runs when: runtime.cpp's
// Schedule, L2E_CUDA_EMULATE_SCHEDULE). Misuse is an error of the launch
// (cudaGetLastError names the kernel), never a hang:
//   - a __syncthreads that some threads of the block do not reach (they exited, or wait elsewhere);
//   - a warp-synchronous operation with a mask other than the full warp, or that not every lane of
//     the warp reaches, or lanes meeting at different operations;
//   - an ldmatrix address outside the block's shared memory or not 16-byte aligned;
//   - more dynamic shared memory than the kernel's limit: 48 KiB unless cudaFuncSetAttribute
//     (cudaFuncAttributeMaxDynamicSharedMemorySize) raised it, as on compute capability 8.x and 9.x.
// Out-of-bounds global or dynamic-shared accesses hit a guard page and abort with the kernel's name.
//
// Static shared arrays are declared L2E_SHARED(type, name, dims) (device_utils.cuh), not `__shared__`:
// each block gets fresh copies filled with 0xff bytes (NaN), one per declaration, shared by the
// block's threads, as it gets fresh dynamic shared memory. A plain `static` cannot do that (nothing
// tells the emulator where the arrays are: GCC drops a section attribute on the statics of function
// templates), so `__shared__` outside L2E_DYNAMIC_SHARED / L2E_SHARED is a compile error here.
#pragma once
#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <utility>

#include "approx_math.h"
#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ \
  _Pragma("GCC error \"static __shared__ arrays: declare them with L2E_SHARED(type, name, dims) (device_utils.cuh)\"")

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
// CUDA's built-in vector types carry their size as alignment (programming guide, "Built-in Vector Types")
struct alignas(8) uint2 {
  unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
struct alignas(8) float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }

namespace l2e {
namespace emu {

// The CUDA thread a fiber runs.
struct ThreadCtx {
  uint3 thread_idx, block_idx;
  dim3 block_dim, grid_dim;
};
// The running fiber's CUDA thread. Each fiber's stack lies in a kFiberSlot-aligned slot of its own
// whose first word points at its ThreadCtx (runtime.cpp): two loads from the frame address instead
// of a thread-local lookup (which under ASan goes through an interceptor, a third of the run).
constexpr uintptr_t kFiberSlot = uintptr_t(256) << 10;
inline ThreadCtx& ctx() {
  const uintptr_t frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return **reinterpret_cast<ThreadCtx* const*>(frame & ~(kFiberSlot - 1));
}

void syncthreads();
// Warp-synchronous exchange: this lane publishes `in` (bytes of payload), waits for all 32 lanes of
// its warp at the same operation `op`, and returns the 32 published payloads (slot[lane]).
struct WarpSlot {
  uint64_t v[4];
};
const WarpSlot* warp_exchange(unsigned mask, const char* op, const WarpSlot& in);
unsigned lane_id();
unsigned warp_id();               // the warp of the current thread within its block
uint64_t warp_generation();       // counts the warp's completed exchanges (changes at each one)
void* warp_scratch(size_t bytes);  // the emulator's own scratch for the current warp (0xff at first)
[[noreturn]] void fail(const char* what);  // ends the launch with this error
// Polling waits (mbarrier, ptx_sm90.cpp): spin() lets the other threads run before the caller polls
// again; note_progress() marks a change a poller may be waiting for. A round in which only pollers
// ran and nothing progressed is a deadlock: the launch fails instead of hanging.
void spin();
void note_progress();
// The "warps" schedule (runtime.cpp, L2E_CUDA_EMULATE_SCHEDULE): runs_ahead() says it is on;
// offer_switch() (after an mbarrier arrival) lets it hand the SM to another warp there.
bool runs_ahead();
void offer_switch();
uint64_t block_serial();  // changes with every block run (keys per-block emulator state)
// At a block's end (runtime.cpp): why the warps of a warpgroup did not all execute the same .aligned
// instructions (ptx_sm90.cpp), or nullptr.
const char* warpgroups_unequal();

// Dynamic (extern __shared__) memory of the running block, and shared-window offsets (cvta).
// Every block's shared memory starts filled with this byte (NaN as f32 and as bf16).
constexpr unsigned char kFreshShared = 0xff;
void* dynamic_shared();
size_t dynamic_shared_size();
size_t shared_offset(const void* p);  // fails unless p lies in the block's dynamic shared memory

// The running block's copy of the static shared array declared at `site` (one per declaration and
// template instance): allocated NaN-filled by the first thread of the block to reach the declaration,
// the same memory for the block's other threads; fails when the block's arrays exceed 48 KiB.
void* static_shared(const void* site, size_t bytes, size_t align);
template <typename A>
A& static_shared(const void* site) {
  return *static_cast<A*>(static_shared(site, sizeof(A), alignof(A)));
}

float atomic_add(float* p, float v);
int atomic_add(int* p, int v);
int atomic_cas(int* p, int compare, int v);

// ---- launches ----
class Launch {
 public:
  Launch(const char* name, dim3 grid, dim3 block, size_t smem, cudaStream_t s)
      : name_(name), grid_(grid), block_(block), smem_(smem), stream_(s) {}
  // fn(args...) runs the kernel; address(args...) is its address (kernel_address), known once the
  // arguments name the instance of a kernel template.
  template <typename Fn, typename Address>
  struct Bound {
    const Launch* l;
    Fn fn;
    Address address;
    template <typename... A>
    void operator()(A... args) const {
      auto tup = std::make_tuple(args...);
      const Fn& f = fn;
      l->run(address(args...), [&f, &tup] { std::apply(f, tup); });  // each thread gets copies of the arguments
    }
  };
  template <typename Fn, typename Address>
  Bound<Fn, Address> with(Fn fn, Address address) const {
    return Bound<Fn, Address>{this, fn, address};
  }

 private:
  struct Body {
    virtual void operator()() const = 0;
  };
  template <typename F>
  struct BodyOf final : Body {
    F f;
    explicit BodyOf(F g) : f(g) {}
    void operator()() const override { f(); }
  };
  template <typename F>
  void run(const void* fn, F f) const {
    BodyOf<F> b(f);
    execute(fn, b);
  }
  void execute(const void* fn, const Body& body) const;
  friend struct Runner;
  const char* name_;
  dim3 grid_, block_;
  size_t smem_;
  cudaStream_t stream_;
};

}  // namespace emu
}  // namespace l2e

#define threadIdx (::l2e::emu::ctx().thread_idx)
#define blockIdx (::l2e::emu::ctx().block_idx)
#define blockDim (::l2e::emu::ctx().block_dim)
#define gridDim (::l2e::emu::ctx().grid_dim)

inline void __syncthreads() { ::l2e::emu::syncthreads(); }

// __shfl_xor_sync (CUDA C++ Programming Guide, "Warp Shuffle Functions"): lane i receives var from
// lane i ^ laneMask (width 32); every lane named in mask must execute it.
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask) {
  static_assert(sizeof(T) <= sizeof(::l2e::emu::WarpSlot), "shuffle payload too large");
  ::l2e::emu::WarpSlot in{};
  __builtin_memcpy(&in, &var, sizeof(T));
  const ::l2e::emu::WarpSlot* all = ::l2e::emu::warp_exchange(mask, "__shfl_xor_sync", in);
  T out;
  __builtin_memcpy(&out, &all[(::l2e::emu::lane_id() ^ unsigned(laneMask)) & 31u], sizeof(T));
  return out;
}

// __any_sync (CUDA C++ Programming Guide, "Warp Vote Functions"): non-zero iff predicate is non-zero
// for any thread of mask; every lane named in mask must execute it.
inline int __any_sync(unsigned mask, int predicate) {
  ::l2e::emu::WarpSlot in{};
  const unsigned char p = predicate != 0;
  __builtin_memcpy(&in, &p, 1);
  const ::l2e::emu::WarpSlot* all = ::l2e::emu::warp_exchange(mask, "__any_sync", in);
  for (unsigned i = 0; i < 32; i++) {
    unsigned char q;
    __builtin_memcpy(&q, &all[i], 1);
    if (((mask >> i) & 1u) && q) return 1;
  }
  return 0;
}

inline float atomicAdd(float* p, float v) { return ::l2e::emu::atomic_add(p, v); }
// CUDA C++ Programming Guide, atomic functions: atomicAdd stores old + val, atomicCAS stores
// (old == compare ? val : old), in one atomic transaction; both return old.
inline int atomicAdd(int* p, int v) { return ::l2e::emu::atomic_add(p, v); }
inline int atomicCAS(int* p, int compare, int v) { return ::l2e::emu::atomic_cas(p, compare, v); }

inline size_t __cvta_generic_to_shared(const void* p) { return ::l2e::emu::shared_offset(p); }

// Math and round-to-nearest intrinsics (CUDA Math API). Each is one IEEE operation, as on the GPU:
// "never merged into a multiply-add". The emulated kernels are compiled with -ffp-contract=off, or
// with fast under L2E_CUDA_EMULATE_FMA, where GCC fuses across an inlined call: an empty asm on the
// product and on the sum's operands (L2E_EMU_OPAQUE) keeps them out of any fused multiply-add.
#if defined(__SSE_MATH__)  // floats in SSE registers (x86-64; not 32-bit x86's x87 default)
#define L2E_EMU_OPAQUE(x) __asm__("" : "+x"(x))
#elif defined(__aarch64__)
#define L2E_EMU_OPAQUE(x) __asm__("" : "+w"(x))
#else
#define L2E_EMU_OPAQUE(x) __asm__("" : "+m"(x))
#endif
inline float __fadd_rn(float a, float b) { L2E_EMU_OPAQUE(a); L2E_EMU_OPAQUE(b); return a + b; }
inline float __fsub_rn(float a, float b) { L2E_EMU_OPAQUE(a); L2E_EMU_OPAQUE(b); return a - b; }
inline float __fmul_rn(float a, float b) {
  float r = a * b;
  L2E_EMU_OPAQUE(r);
  return r;
}
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
// The approximate ones: within their documented error (approx_math.h, L2E_CUDA_EMULATE_MATH).
inline float __expf(float x) { return ::l2e::emu::fast_expf(x); }
// Type casting intrinsics: the float's bits as an unsigned int (CUDA Math API, __float_as_uint).
inline unsigned int __float_as_uint(float x) {
  unsigned int u;
  __builtin_memcpy(&u, &x, sizeof u);
  return u;
}
// ... and the reverse: the unsigned int's bits as a float (__uint_as_float).
inline float __uint_as_float(unsigned int u) {
  float x;
  __builtin_memcpy(&x, &u, sizeof x);
  return x;
}
inline float rsqrtf(float x) { return ::l2e::emu::approx_rsqrtf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// Static shared memory: a reference to the block's copy (L2E_SHARED in device_utils.cuh).
#define L2E_EMU_SHARED(T, name, dims)    \
  static const char name##_site_ = 0;    \
  T(&name) dims = ::l2e::emu::static_shared<T dims>(&name##_site_)

// A launched kernel's address, the key cudaFuncSetAttribute files its limits under: a function (or a
// pointer to one) as it is; a kernel template named without its arguments, the instance whose
// parameters are the argument types (as the call deduced it).
namespace l2e {
namespace emu {
template <typename... A>
struct ArgTypes {};
template <typename F, typename... A>
const void* kernel_address(F* kernel, ArgTypes<A...>) {
  return reinterpret_cast<const void*>(kernel);
}
template <typename... A>
const void* kernel_address(void (*kernel)(A...), ArgTypes<A...>) {
  return reinterpret_cast<const void*>(kernel);
}
}  // namespace emu
}  // namespace l2e

#define L2E_EMU_LAUNCH(kernel, grid, block, smem, stream)                                                 \
  ::l2e::emu::Launch(#kernel, (grid), (block), (smem), (stream))                                          \
      .with([](auto... a_) { kernel(a_...); },                                                            \
            [](auto... a_) { return ::l2e::emu::kernel_address(kernel, ::l2e::emu::ArgTypes<decltype(a_)...>{}); })
