// Pooling over each sequence and L2 normalisation (the model's head), with their backward passes.
//   mean:  out_b = (1/len_b) sum_{t in b} x_t            dx_t = dout_b / len_b
//   cls:   out_b = x_{first(b)}                           dx_first = dout_b, other rows 0
//   (an empty sequence pools to zeros and has no rows to take a gradient)
//   l2:    y = x / n, n = max(||x||, 1e-12)               dx = (dy - y (y . dy)) / n
//          (Jacobian of x/||x|| is (I - y y^T)/n; under the clamp n is constant and dx = dy / n)
// Inputs and outputs may be F32 or BF16 (the model pools bf16 tokens into fp32 embeddings).
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

// One thread per (sequence, column); sums in fp32.
template <typename X, typename O>
__global__ void pool_kernel(const X* x, const int32_t* cu, int B, int P, int mode, O* out) {
  const size_t n = size_t(B) * P;
  L2E_GRID_STRIDE(i, n) {
    const int b = int(i / size_t(P)), p = int(i % size_t(P));
    const int s = cu[b], e = cu[b + 1];
    float v;
    if (e <= s) {  // an empty sequence: nothing to pool, zeros (as the CPU op) rather than a read past it
      v = 0.0f;
    } else if (mode == 1 || e - s == 1) {
      v = to_f(x[size_t(s) * P + p]);
    } else {
      float acc = 0.0f;
      for (int t = s; t < e; t++) acc += to_f(x[size_t(t) * P + p]);
      v = acc / float(e - s);
    }
    out[i] = from_f<O>(v);
  }
}

// One thread per (token, column); the token's sequence by binary search over cu_seqlens.
template <typename D, typename X>
__global__ void pool_bwd_kernel(const D* dout, const int32_t* cu, int B, int T, int P, int mode, X* dx) {
  const size_t n = size_t(T) * P;
  L2E_GRID_STRIDE(i, n) {
    const int t = int(i / size_t(P)), p = int(i % size_t(P));
    int lo = 0, hi = B;  // find b with cu[b] <= t < cu[b+1]
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (cu[mid] <= t) lo = mid;
      else hi = mid;
    }
    const int s = cu[lo], e = cu[lo + 1];
    const float g = to_f(dout[size_t(lo) * P + p]);
    float v;
    if (mode == 1) v = t == s ? g : 0.0f;
    else v = g / float(e - s);
    dx[i] = from_f<X>(v);
  }
}

template <typename X, typename Y>
__global__ void l2norm_kernel(const X* x, int P, bool normalize, Y* y, float* norm) {
  const size_t b = blockIdx.x;
  const X* xr = x + b * P;
  Y* yr = y + b * P;
  if (!normalize) {
    for (int p = threadIdx.x; p < P; p += blockDim.x) yr[p] = from_f<Y>(to_f(xr[p]));
    if (threadIdx.x == 0) norm[b] = 1.0f;
    return;
  }
  double ss = 0.0;
  for (int p = threadIdx.x; p < P; p += blockDim.x) {
    const double v = to_f(xr[p]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const double n = fmax(sqrt(ss), 1e-12);
  if (threadIdx.x == 0) norm[b] = float(n);
  for (int p = threadIdx.x; p < P; p += blockDim.x) yr[p] = from_f<Y>(float(double(to_f(xr[p])) / n));
}

template <typename Y, typename G, typename D>
__global__ void l2norm_bwd_kernel(const Y* y, const float* norm, const G* dy, int P, bool normalize, D* dx) {
  const size_t b = blockIdx.x;
  const Y* yr = y + b * P;
  const G* gr = dy + b * P;
  D* dr = dx + b * P;
  if (!normalize) {
    for (int p = threadIdx.x; p < P; p += blockDim.x) dr[p] = from_f<D>(to_f(gr[p]));
    return;
  }
  const float n = norm[b];
  double acc = 0.0;
  if (n > 1e-12f)
    for (int p = threadIdx.x; p < P; p += blockDim.x) acc += double(to_f(yr[p])) * double(to_f(gr[p]));
  const float dot = float(block_sum(acc));
  const float inv = 1.0f / n;
  for (int p = threadIdx.x; p < P; p += blockDim.x) dr[p] = from_f<D>((to_f(gr[p]) - to_f(yr[p]) * dot) * inv);
}

bool supported(DType t) { return t == DType::F32 || t == DType::BF16; }
void need(DType t, const char* op) {
  if (!supported(t)) throw Error(std::string("cuda ") + op + ": unsupported dtype " + dtype_name(t));
}

// Calls f(X*, Y*) with the pointers cast to the dtypes' element types.
template <typename F>
void dispatch2(DType a, const void* pa, DType b, void* pb, F f) {
  if (a == DType::F32 && b == DType::F32) f(static_cast<const float*>(pa), static_cast<float*>(pb));
  else if (a == DType::F32) f(static_cast<const float*>(pa), static_cast<bf16*>(pb));
  else if (b == DType::F32) f(static_cast<const bf16*>(pa), static_cast<float*>(pb));
  else f(static_cast<const bf16*>(pa), static_cast<bf16*>(pb));
}

}  // namespace

void pool_fwd(const void* x, DType xt, const int32_t* cu, int B, int P, int mode, void* out, DType ot,
              cudaStream_t s) {
  need(xt, "pool");
  need(ot, "pool");
  const size_t n = size_t(B) * P;
  if (n == 0) return;
  dispatch2(xt, x, ot, out, [&](auto* xp, auto* op) {
    L2E_LAUNCH(pool_kernel, grid_for(n, 256), 256, 0, s)(xp, cu, B, P, mode, op);
  });
  check_launch("pool");
}

void pool_bwd(const void* dout, DType dt, const int32_t* cu, int B, int T, int P, int mode, void* dx, DType xt,
              cudaStream_t s) {
  need(dt, "pool_backward");
  need(xt, "pool_backward");
  const size_t n = size_t(T) * P;
  if (n == 0) return;
  dispatch2(dt, dout, xt, dx, [&](auto* dp, auto* xp) {
    L2E_LAUNCH(pool_bwd_kernel, grid_for(n, 256), 256, 0, s)(dp, cu, B, T, P, mode, xp);
  });
  check_launch("pool_backward");
}

void l2norm_fwd(const void* x, DType xt, int B, int P, bool normalize, void* y, DType yt, float* norm,
                cudaStream_t s) {
  need(xt, "l2norm");
  need(yt, "l2norm");
  if (B == 0) return;
  dispatch2(xt, x, yt, y, [&](auto* xp, auto* yp) { L2E_LAUNCH(l2norm_kernel, B, 256, 0, s)(xp, P, normalize, yp, norm); });
  check_launch("l2norm");
}

void l2norm_bwd(const void* y, DType yt, const float* norm, const void* dy, DType dyt, int B, int P,
                bool normalize, void* dx, DType dxt, cudaStream_t s) {
  need(yt, "l2norm_backward");
  need(dyt, "l2norm_backward");
  need(dxt, "l2norm_backward");
  if (B == 0) return;
  if (yt != dyt) throw Error("cuda l2norm_backward: y and dy must have the same dtype");
  dispatch2(yt, y, dxt, dx, [&](auto* yp, auto* dp) {
    using G = std::remove_const_t<std::remove_pointer_t<decltype(yp)>>;
    L2E_LAUNCH(l2norm_bwd_kernel, B, 256, 0, s)(yp, norm, static_cast<const G*>(dy), P, normalize, dp);
  });
  check_launch("l2norm_backward");
}

}  // namespace cuda
}  // namespace l2e
