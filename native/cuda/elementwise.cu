// Elementwise kernels: dtype conversion, residual add, scaling, bias broadcast, SwiGLU and its
// backward. bf16 in and out, fp32 arithmetic.
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

template <typename D, typename S>
__global__ void convert_kernel(D* dst, const S* src, size_t n) {
  L2E_GRID_STRIDE(i, n) dst[i] = from_f<D>(to_f(src[i]));
}

template <typename T>
__global__ void add_kernel(T* x, const T* y, size_t n) {
  L2E_GRID_STRIDE(i, n) x[i] = from_f<T>(to_f(x[i]) + to_f(y[i]));
}

__global__ void scale_kernel(float* x, size_t n, float a) {
  L2E_GRID_STRIDE(i, n) x[i] = x[i] * a;
}

__global__ void fill_rows_kernel(bf16* y, const bf16* row, size_t n, int N) {
  L2E_GRID_STRIDE(i, n) y[i] = row[i % size_t(N)];
}

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + __expf(-g)); }

// out = silu(gate) * up, rounded like the bf16 model: silu's result is a bf16 tensor first.
__global__ void swiglu_kernel(const bf16* gate, const bf16* up, size_t n, bf16* out) {
  L2E_GRID_STRIDE(i, n) {
    const float g = to_f(gate[i]);
    const float act = to_f(from_f<bf16>(g * sigmoid(g)));
    out[i] = from_f<bf16>(act * to_f(up[i]));
  }
}

// silu(g) = g s, s = sigmoid(g), silu'(g) = s (1 + g (1 - s)):
//   dgate = dout u s (1 + g (1 - s)),   dup = dout g s
// Inputs are read before the outputs are written, so dgate / dup may alias gate / up.
__global__ void swiglu_bwd_kernel(const bf16* gate, const bf16* up, const bf16* dout, size_t n, bf16* dgate,
                                  bf16* dup) {
  L2E_GRID_STRIDE(i, n) {
    const float g = to_f(gate[i]), u = to_f(up[i]), d = to_f(dout[i]);
    const float s = sigmoid(g);
    const float dg = d * u * s * (1.0f + g * (1.0f - s));
    const float du = d * g * s;
    dgate[i] = from_f<bf16>(dg);
    dup[i] = from_f<bf16>(du);
  }
}

constexpr int kThreads = 256;

}  // namespace

void convert(void* dst, DType dst_t, const void* src, DType src_t, size_t n, cudaStream_t s) {
  if (n == 0) return;
  const unsigned g = grid_for(n, kThreads);
  if (dst_t == DType::BF16 && src_t == DType::F32)
    L2E_LAUNCH(convert_kernel, g, kThreads, 0, s)(static_cast<bf16*>(dst), static_cast<const float*>(src), n);
  else if (dst_t == DType::F32 && src_t == DType::BF16)
    L2E_LAUNCH(convert_kernel, g, kThreads, 0, s)(static_cast<float*>(dst), static_cast<const bf16*>(src), n);
  else
    throw Error(std::string("cuda convert: unsupported ") + dtype_name(src_t) + " -> " + dtype_name(dst_t));
  check_launch("convert");
}

void add_inplace(void* x, const void* y, DType t, size_t n, cudaStream_t s) {
  if (n == 0) return;
  const unsigned g = grid_for(n, kThreads);
  if (t == DType::BF16)
    L2E_LAUNCH(add_kernel, g, kThreads, 0, s)(static_cast<bf16*>(x), static_cast<const bf16*>(y), n);
  else if (t == DType::F32)
    L2E_LAUNCH(add_kernel, g, kThreads, 0, s)(static_cast<float*>(x), static_cast<const float*>(y), n);
  else
    throw Error(std::string("cuda add_inplace: unsupported dtype ") + dtype_name(t));
  check_launch("add_inplace");
}

void scale_f32(float* x, size_t n, float a, cudaStream_t s) {
  if (n == 0) return;
  L2E_LAUNCH(scale_kernel, grid_for(n, kThreads), kThreads, 0, s)(x, n, a);
  check_launch("scale");
}

void fill_rows_bf16(void* y, const void* row, int T, int N, cudaStream_t s) {
  const size_t n = size_t(T) * size_t(N);
  if (n == 0) return;
  L2E_LAUNCH(fill_rows_kernel, grid_for(n, kThreads), kThreads, 0, s)(static_cast<bf16*>(y), static_cast<const bf16*>(row),
                                                               n, N);
  check_launch("fill_rows");
}

void swiglu_fwd(const void* gate, const void* up, size_t n, void* out, cudaStream_t s) {
  if (n == 0) return;
  L2E_LAUNCH(swiglu_kernel, grid_for(n, kThreads), kThreads, 0, s)(static_cast<const bf16*>(gate),
                                                            static_cast<const bf16*>(up), n, static_cast<bf16*>(out));
  check_launch("swiglu");
}

void swiglu_bwd(const void* gate, const void* up, const void* dout, size_t n, void* dgate, void* dup,
                cudaStream_t s) {
  if (n == 0) return;
  L2E_LAUNCH(swiglu_bwd_kernel, grid_for(n, kThreads), kThreads, 0, s)(
      static_cast<const bf16*>(gate), static_cast<const bf16*>(up), static_cast<const bf16*>(dout), n,
      static_cast<bf16*>(dgate), static_cast<bf16*>(dup));
  check_launch("swiglu_backward");
}

}  // namespace cuda
}  // namespace l2e
