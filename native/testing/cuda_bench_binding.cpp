// cudaBenchAttention({lens, nh, nkv, hd, reps, backward, kernel?, variant?}) -> {seconds, flops, tflops}
// kernel: the attention kernel ($L2E_CUDA_ATTENTION or auto when absent; 'sm90', 'sm90wg2', 'sm90pp', 'sm80', 'simple': see cuda/kernels.h).
// variant: a tile variant of the sm80 kernels or of the two-warpgroup sm_90a forward (a name of
// cudaAttentionVariants(), without its "fwd:" / "bwd:" / "wg2:"); absent: the default shapes.
// cudaAttentionVariants() -> string[]: "fwd:<name>", "bwd:<name>", then "wg2:<name>", each one's default
// first.
// Times the CUDA backend's attention forward (or forward + backward) on random bf16 inputs of a packed
// batch, on the device only (no host copies inside the timed loop): the median of `reps` runs, each
// ended by a stream synchronisation. flops counts the causal half: 4·S²·hd·nh/2 per sequence for the
// forward, 3.5× that for forward + backward (the convention of shared/bench/reference_stack.py).
// CUDA builds only (bench/gpu-bench.mjs). Also cudaPoolMallocs(): the pools' cudaMalloc calls so far,
// cudaPoolPeakReserved(reset?): the most bytes the pools have held in segments at once (reset: the
// peak starts again from the bytes held now; the value before is returned), and cudaPoolPeakLive(reset?)
// the same for the bytes in blocks handed out (torch.cuda.max_memory_allocated's measure).
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "addon/registry.h"
#include "core/backend.h"
#include "core/op_flops.h"

namespace l2e {
namespace {

// The inputs' values: one fixed sequence in [-1, 1), the same for q, k, v and dout and for every call,
// drawn once at the largest size asked for so far (a sweep makes some fifty calls of up to 67M values
// each; drawing them per call cost device-loan time).
const float* bench_values(size_t n) {
  static std::vector<float> h;
  if (h.size() < n) {
    h.clear();
    h.reserve(n);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      h.push_back(float(int64_t(s >> 40) - (1 << 23)) / float(1 << 23));
    }
  }
  return h.data();
}

Napi::Value CudaBenchAttention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Array lens_js = o.Get("lens").As<Napi::Array>();
  const int nh = o.Get("nh").As<Napi::Number>().Int32Value(), nkv = o.Get("nkv").As<Napi::Number>().Int32Value();
  const int hd = o.Get("hd").As<Napi::Number>().Int32Value(), reps = o.Get("reps").As<Napi::Number>().Int32Value();
  const bool backward = o.Get("backward").ToBoolean().Value();
  try {
    const Napi::Value kv = o.Get("kernel"), vv = o.Get("variant");
    std::unique_ptr<Backend> be = make_cuda_backend(kv.IsString() ? kv.As<Napi::String>().Utf8Value() : std::string(),
                                                    vv.IsString() ? vv.As<Napi::String>().Utf8Value() : std::string());
    std::vector<int32_t> cu(1, 0), pos;
    for (uint32_t i = 0; i < lens_js.Length(); i++) {
      const int L = lens_js.Get(i).As<Napi::Number>().Int32Value();
      cu.push_back(cu.back() + L);
      for (int p = 0; p < L; p++) pos.push_back(p);
    }
    const int B = int(cu.size()) - 1, T = cu.back();
    Batch bt;
    bt.B = B;
    bt.T = T;
    bt.cu_seqlens = be->alloc(cu.size(), DType::I32);
    bt.positions = be->alloc(pos.size(), DType::I32);
    be->upload(bt.cu_seqlens, cu.data(), cu.size(), DType::I32);
    const std::vector<int32_t> tiles = attention_schedule(bt, cu.data(), B);
    bt.tiles = be->alloc(std::max<size_t>(1, tiles.size()), DType::I32);
    if (!tiles.empty()) be->upload(bt.tiles, tiles.data(), tiles.size(), DType::I32);
    be->upload(bt.positions, pos.data(), pos.size(), DType::I32);
    auto rnd = [&](size_t n) {
      Buf b = be->alloc(n, DType::BF16);
      be->upload(b, bench_values(n), n, DType::F32);
      return b;
    };
    const size_t qn = size_t(T) * nh * hd, kn = size_t(T) * nkv * hd;
    Buf q = rnd(qn), k = rnd(kn), v = rnd(kn), dout = rnd(qn);
    Buf out = be->alloc(qn, DType::BF16), lse = be->alloc(size_t(nh) * T, DType::F32);
    Buf dq = be->alloc(qn, DType::BF16), dk = be->alloc(kn, DType::BF16), dv = be->alloc(kn, DType::BF16);
    // FlashAttention's causal convention (core/op_flops.h), as the reference stack counts
    const double flops = op_flops::attention(q, k, v, bt, nh, nkv, hd, out, lse) +
                         (backward ? op_flops::attention_backward(q, k, v, out, lse, dout, bt, nh, nkv, hd, dq, dk, dv) : 0.0);
    auto run = [&] {
      be->attention(q, k, v, bt, nh, nkv, hd, out, lse);
      if (backward) be->attention_backward(q, k, v, out, lse, dout, bt, nh, nkv, hd, dq, dk, dv);
    };
    for (int w = 0; w < 3; w++) run();
    be->synchronize();
    std::vector<double> times;
    for (int r = 0; r < std::max(1, reps); r++) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      be->synchronize();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    for (Buf* b : {&q, &k, &v, &dout, &out, &lse, &dq, &dk, &dv, &bt.cu_seqlens, &bt.positions, &bt.tiles}) be->free(*b);
    const double t = times[times.size() / 2];
    Napi::Object res = Napi::Object::New(env);
    res.Set("seconds", t);
    res.Set("flops", flops);
    res.Set("tflops", flops / t / 1e12);
    return res;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// cudaPoolMallocs() -> cudaMalloc calls made so far by the CUDA backends' pools (0 without CUDA)
Napi::Value CudaPoolMallocs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(cuda_pool_malloc_count()));
}

// cudaPoolPeakReserved(reset?: boolean) -> bytes (0 without CUDA)
Napi::Value CudaPoolPeakReserved(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(cuda_pool_peak_reserved(info.Length() > 0 && info[0].ToBoolean().Value())));
}

// cudaPoolPeakLive(reset?: boolean) -> bytes (0 without CUDA)
Napi::Value CudaPoolPeakLive(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(cuda_pool_peak_live(info.Length() > 0 && info[0].ToBoolean().Value())));
}

// cudaAttentionVariants() -> string[] (see the header)
Napi::Value CudaAttentionVariants(const Napi::CallbackInfo& info) {
  const std::vector<std::string> names = cuda_attention_variants();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); i++) out.Set(uint32_t(i), names[i]);
  return out;
}

void register_cuda_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaBenchAttention", Napi::Function::New(env, CudaBenchAttention, "cudaBenchAttention"));
  exports.Set("cudaPoolMallocs", Napi::Function::New(env, CudaPoolMallocs, "cudaPoolMallocs"));
  exports.Set("cudaPoolPeakReserved", Napi::Function::New(env, CudaPoolPeakReserved, "cudaPoolPeakReserved"));
  exports.Set("cudaPoolPeakLive", Napi::Function::New(env, CudaPoolPeakLive, "cudaPoolPeakLive"));
  exports.Set("cudaAttentionVariants", Napi::Function::New(env, CudaAttentionVariants, "cudaAttentionVariants"));
}

}  // namespace

L2E_REGISTER(cuda_bench, register_cuda_bench);

}  // namespace l2e
