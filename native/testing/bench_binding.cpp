// Hooks for the microbenchmark runner (bench/run.mjs):
//   benchOps() -> string[]                              the kernels benchOp can time
//   benchOp(name, dims, {samples, warmup, minSampleSeconds}) -> Promise<{perCall: Float64Array, inner}>
//       allocates random inputs of the given shape once, then times the fp32 CPU kernel natively:
//       `warmup` untimed calls, then `samples` samples of `inner` back-to-back calls each (inner is
//       chosen so one sample lasts >= minSampleSeconds); perCall[s] = sample seconds / inner.
//       dims: numbers T, H, K, N, V, heads, nh, nkv, hd, n, P, B, G, bits as the op needs, and
//       lens: number[] (sequence lengths of a packed batch) for the var-len ops. Names: <op>_fwd and
//       <op>_bwd for an op of core/ops.def and its <op>_backward, else the op's own name.
//   setOpTiming(on) / opTimings() -> [{op, calls, seconds, flops}] / resetOpTimings()
//       the CPU backend's per-op timer (cpu/op_timing.h); it applies to models created after
//       setOpTiming(true).
#include <napi.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "testing/gradcheck_ops.h"  // Rng, VarLen
#include "addon/registry.h"
#include "cpu/kernels.h"
#include "core/backend.h"
#include "core/lowp.h"
#include "cpu/op_timing.h"

namespace {

using l2e::gradcheck::Rng;
using l2e::gradcheck::VarLen;
namespace cpu = l2e::cpu;

using Fv = std::vector<float>;

struct Dims {
  std::map<std::string, int> n;
  std::vector<int> lens;
  int get(const std::string& op, const char* key) const {
    auto it = n.find(key);
    if (it == n.end() || it->second <= 0)
      throw l2e::Error("benchOp " + op + ": dims." + key + " must be a positive integer");
    return it->second;
  }
  VarLen batch(const std::string& op) const {
    if (lens.empty()) throw l2e::Error("benchOp " + op + ": dims.lens (sequence lengths) is required");
    return VarLen(lens);
  }
};

Fv rand_vec(Rng& r, size_t n, float scale = 1.0f, float offset = 0.0f) {
  Fv v(n);
  for (auto& x : v) x = offset + scale * float(r.uniform());
  return v;
}

// One timed kernel with its inputs: setup allocates and fills them, run calls the kernel once.
struct Bench {
  std::vector<Fv> f;  // float buffers the kernel reads and writes
  std::vector<std::vector<int32_t>> i;
  std::function<void()> run;
};

// Builds the benchmark of op `name` at `d` (inputs drawn from a fixed seed).
std::unique_ptr<Bench> make_bench(const std::string& name, const Dims& d) {
  auto b = std::make_unique<Bench>();
  Rng r{1234};
  auto& f = b->f;
  auto& iv = b->i;
  f.reserve(16);
  iv.reserve(4);
  auto F = [&](size_t n, float scale = 1.0f, float offset = 0.0f) -> float* {
    f.push_back(rand_vec(r, n, scale, offset));
    return f.back().data();
  };
  auto Ids = [&](size_t n, int hi) -> int32_t* {
    iv.emplace_back(n);
    for (auto& x : iv.back()) x = r.randint(0, hi - 1);
    return iv.back().data();
  };
  auto Ints = [&](const std::vector<int32_t>& src) -> int32_t* {
    iv.push_back(src);
    return iv.back().data();
  };

  if (name == "embedding_fwd" || name == "embedding_bwd") {
    const int T = d.get(name, "T"), H = d.get(name, "H"), V = d.get(name, "V");
    int32_t* ids = Ids(size_t(T), V);
    float* table = F(size_t(V) * H);
    float* out = F(size_t(T) * H);
    if (name == "embedding_fwd") b->run = [=] { cpu::embedding_fwd(ids, T, table, H, out); };
    else b->run = [=] { cpu::embedding_bwd(ids, T, out, H, table); };  // dtable += scatter(dout)
  } else if (name == "rmsnorm_fwd" || name == "rmsnorm_bwd") {
    const int T = d.get(name, "T"), H = d.get(name, "H");
    float *x = F(size_t(T) * H), *w = F(size_t(H), 0.5f, 1.0f), *y = F(size_t(T) * H), *rstd = F(size_t(T));
    cpu::rmsnorm_fwd(x, w, T, H, 1e-5f, y, rstd);
    if (name == "rmsnorm_fwd") b->run = [=] { cpu::rmsnorm_fwd(x, w, T, H, 1e-5f, y, rstd); };
    else {
      float *dy = F(size_t(T) * H), *dx = F(size_t(T) * H), *dw = F(size_t(H));
      b->run = [=] { cpu::rmsnorm_bwd(x, w, rstd, dy, T, H, dx, dw, false, true); };
    }
  } else if (name == "linear_fwd" || name == "linear_bwd") {
    const int T = d.get(name, "T"), K = d.get(name, "K"), N = d.get(name, "N");
    float *x = F(size_t(T) * K), *W = F(size_t(N) * K, 1.0f / std::sqrt(float(K))), *bias = F(size_t(N));
    float* y = F(size_t(T) * N);
    if (name == "linear_fwd") b->run = [=] { cpu::linear_fwd(x, W, bias, T, K, N, y); };
    else {
      float *dx = F(size_t(T) * K), *dW = F(size_t(N) * K), *db = F(size_t(N));
      b->run = [=] { cpu::linear_bwd(x, W, y, T, K, N, dx, dW, db, false, true); };  // y plays dy
    }
  } else if (name == "rope_fwd" || name == "rope_bwd") {
    const int T = d.get(name, "T"), heads = d.get(name, "heads"), hd = d.get(name, "hd");
    std::vector<int32_t> pos(static_cast<size_t>(T));
    if (!d.lens.empty()) {
      const VarLen v = d.batch(name);
      if (v.T != T) throw l2e::Error("benchOp " + name + ": sum(lens) must equal T");
      pos = v.pos;
    } else {
      for (int t = 0; t < T; t++) pos[size_t(t)] = t;
    }
    int32_t* p = Ints(pos);
    float* x = F(size_t(T) * heads * hd);
    const float sign = name == "rope_fwd" ? 1.0f : -1.0f;  // backward = inverse rotation
    b->run = [=] { cpu::rope_fwd(x, p, T, heads, hd, 10000.0f, sign); };
  } else if (name == "attention_fwd" || name == "attention_bwd") {
    const VarLen v = d.batch(name);
    const int nh = d.get(name, "nh"), nkv = d.get(name, "nkv"), hd = d.get(name, "hd");
    if (nh % nkv) throw l2e::Error("benchOp " + name + ": nh must be a multiple of nkv");
    const int T = v.T, B = v.B;
    int32_t* cu = Ints(v.cu);
    float *q = F(size_t(T) * nh * hd), *k = F(size_t(T) * nkv * hd), *vv = F(size_t(T) * nkv * hd);
    float *out = F(size_t(T) * nh * hd), *lse = F(size_t(nh) * T);
    cpu::attention_fwd(q, k, vv, cu, B, nh, nkv, hd, out, lse);
    if (name == "attention_fwd") b->run = [=] { cpu::attention_fwd(q, k, vv, cu, B, nh, nkv, hd, out, lse); };
    else {
      float *dout = F(size_t(T) * nh * hd), *dq = F(size_t(T) * nh * hd);
      float *dk = F(size_t(T) * nkv * hd), *dv = F(size_t(T) * nkv * hd);
      b->run = [=] { cpu::attention_bwd(q, k, vv, out, lse, dout, cu, B, nh, nkv, hd, dq, dk, dv); };
    }
  } else if (name == "swiglu_fwd" || name == "swiglu_bwd") {
    const int64_t n = d.get(name, "n");
    float *gate = F(size_t(n), 4.0f), *up = F(size_t(n)), *out = F(size_t(n));
    if (name == "swiglu_fwd") b->run = [=] { cpu::swiglu_fwd(gate, up, n, out); };
    else {
      float *dg = F(size_t(n)), *du = F(size_t(n));
      b->run = [=] { cpu::swiglu_bwd(gate, up, out, n, dg, du); };  // out plays dout
    }
  } else if (name == "pool_fwd" || name == "pool_bwd") {
    const VarLen v = d.batch(name);
    const int P = d.get(name, "P"), T = v.T, B = v.B;
    int32_t* cu = Ints(v.cu);
    float *x = F(size_t(T) * P), *out = F(size_t(B) * P);
    if (name == "pool_fwd") b->run = [=] { cpu::pool_fwd(x, cu, B, P, 0, out); };
    else b->run = [=] { cpu::pool_bwd(out, cu, B, P, 0, x); };
  } else if (name == "l2norm_fwd" || name == "l2norm_bwd") {
    const int B = d.get(name, "B"), P = d.get(name, "P");
    float *x = F(size_t(B) * P), *y = F(size_t(B) * P), *norm = F(size_t(B));
    cpu::l2norm_fwd(x, B, P, true, y, norm);
    if (name == "l2norm_fwd") b->run = [=] { cpu::l2norm_fwd(x, B, P, true, y, norm); };
    else {
      float *dy = F(size_t(B) * P), *dx = F(size_t(B) * P);
      b->run = [=] { cpu::l2norm_bwd(y, norm, dy, B, P, true, dx); };
    }
  } else if (name == "infonce") {
    const int B = d.get(name, "B"), G = d.get(name, "G"), P = d.get(name, "P");
    const float s = 1.0f / std::sqrt(float(P));  // rows of norm ~0.6: logits q.p / 0.02 stay moderate
    float *q = F(size_t(B) * P, s), *p = F(size_t(B) * G * P, s);
    float *scores = F(size_t(B) * B * G), *dq = F(size_t(B) * P), *dp = F(size_t(B) * G * P);
    b->run = [=] { cpu::infonce(q, p, B, G, P, 0.02f, true, scores, dq, dp); };
  } else if (name == "adamw") {
    const int64_t n = d.get(name, "n");
    float *w = F(size_t(n)), *g = F(size_t(n), 1e-3f), *m = F(size_t(n), 0.0f), *v = F(size_t(n), 0.0f);
    auto step = std::make_shared<int>(0);
    b->run = [=] { cpu::adamw(w, g, m, v, n, 2e-5f, 0.9f, 0.999f, 1e-8f, 0.0f, ++*step); };
  } else if (name == "add_inplace" || name == "sumsq" || name == "scale") {
    // loops of the CPU backend itself (no cpu/kernels.h function): timed through a CPU backend over
    // these host buffers
    const int64_t n = d.get(name, "n");
    l2e::Buf x{F(size_t(n)), size_t(n), l2e::DType::F32}, y{F(size_t(n)), size_t(n), l2e::DType::F32};
    std::shared_ptr<l2e::Backend> be = l2e::make_cpu_backend();
    if (name == "add_inplace") b->run = [=]() mutable { be->add_inplace(x, y, size_t(n)); };
    else if (name == "sumsq") b->run = [=] { be->sumsq(x, size_t(n)); };
    else b->run = [=]() mutable { be->scale(x, size_t(n), 0.999f); };
  } else if (name == "linear_lowp" || name == "embedding_lowp") {
    // reduced-precision inference (core/lowp.h), through a CPU backend; dims.bits = 16 (bf16) or 8 (int8)
    const int bits = d.get(name, "bits");
    if (bits != 16 && bits != 8) throw l2e::Error("benchOp " + name + ": dims.bits must be 16 (bf16) or 8 (int8)");
    const l2e::Precision p = bits == 16 ? l2e::Precision::BF16 : l2e::Precision::Int8;
    const int T = d.get(name, "T");
    const bool gemm = name == "linear_lowp";
    const int N = gemm ? d.get(name, "N") : d.get(name, "V"), K = gemm ? d.get(name, "K") : d.get(name, "H");
    auto W = std::make_shared<l2e::LowpMatrix>();
    const float wscale = 1.0f / std::sqrt(float(K));
    l2e::lowp_pack(*W, p, gemm ? l2e::LowpMatrix::Layout::Gemm : l2e::LowpMatrix::Layout::Rows, N, K,
                   [&](int64_t, float* out) {
                     for (int64_t k = 0; k < K; k++) out[k] = wscale * float(r.uniform());
                   });
    std::shared_ptr<l2e::Backend> be = l2e::make_cpu_backend();
    l2e::Buf y{F(size_t(T) * (gemm ? N : K)), size_t(T) * size_t(gemm ? N : K), l2e::DType::F32};
    if (gemm) {
      l2e::Buf x{F(size_t(T) * K), size_t(T) * K, l2e::DType::F32}, bias{F(size_t(N)), size_t(N), l2e::DType::F32};
      b->run = [=]() mutable { be->linear_lowp(x, *W, &bias, T, y); };
    } else {
      l2e::Buf ids{Ids(size_t(T), N), size_t(T), l2e::DType::I32};
      b->run = [=]() mutable { be->embedding_lowp(ids, T, *W, y); };
    }
  } else {
    throw l2e::Error("benchOp: unknown op '" + name + "'");
  }
  return b;
}

const std::vector<std::string> kOps = {
    "embedding_fwd", "embedding_bwd", "rmsnorm_fwd", "rmsnorm_bwd", "linear_fwd", "linear_bwd",
    "rope_fwd",      "rope_bwd",      "attention_fwd", "attention_bwd", "swiglu_fwd", "swiglu_bwd",
    "pool_fwd",      "pool_bwd",      "l2norm_fwd",  "l2norm_bwd",  "infonce",    "adamw",
    "add_inplace",   "sumsq",         "scale",         "linear_lowp",   "embedding_lowp"};

class BenchWorker final : public Napi::AsyncWorker {
 public:
  BenchWorker(Napi::Env env, std::string name, Dims dims, int samples, int warmup, double min_sample)
      : Napi::AsyncWorker(env), name_(std::move(name)), dims_(std::move(dims)), samples_(samples), warmup_(warmup),
        min_sample_(min_sample), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      using clock = std::chrono::steady_clock;
      auto b = make_bench(name_, dims_);
      const auto t0 = clock::now();
      b->run();  // first call: page faults, thread pool start, packing buffers
      double once = std::chrono::duration<double>(clock::now() - t0).count();
      for (int w = 1; w < warmup_; w++) {
        const auto t1 = clock::now();
        b->run();
        once = std::min(once, std::chrono::duration<double>(clock::now() - t1).count());
      }
      inner_ = std::max(1, int(std::ceil(min_sample_ / std::max(once, 1e-9))));
      for (int s = 0; s < samples_; s++) {
        const auto t1 = clock::now();
        for (int k = 0; k < inner_; k++) b->run();
        per_call_.push_back(std::chrono::duration<double>(clock::now() - t1).count() / inner_);
      }
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Float64Array a = Napi::Float64Array::New(env, per_call_.size());
    for (size_t s = 0; s < per_call_.size(); s++) a[s] = per_call_[s];
    o.Set("perCall", a);
    o.Set("inner", inner_);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::string name_;
  Dims dims_;
  int samples_, warmup_;
  double min_sample_;
  int inner_ = 1;
  std::vector<double> per_call_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value BenchOps(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), kOps.size());
  for (size_t i = 0; i < kOps.size(); i++) a.Set(uint32_t(i), kOps[i]);
  return a;
}

Napi::Value BenchOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject())
    throw Napi::TypeError::New(env, "benchOp(name, dims, {samples, warmup, minSampleSeconds})");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Dims dims;
  Napi::Object d = info[1].As<Napi::Object>();
  Napi::Array keys = d.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    const std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value v = d.Get(key);
    if (key == "lens") {
      if (!v.IsArray()) throw Napi::TypeError::New(env, "benchOp: dims.lens must be an array of lengths");
      Napi::Array la = v.As<Napi::Array>();
      for (uint32_t j = 0; j < la.Length(); j++) {
        Napi::Value L = la.Get(j);
        if (!L.IsNumber() || L.As<Napi::Number>().Int32Value() < 1)
          throw Napi::TypeError::New(env, "benchOp: dims.lens must hold positive integers");
        dims.lens.push_back(L.As<Napi::Number>().Int32Value());
      }
    } else if (v.IsNumber()) {
      const double x = v.As<Napi::Number>().DoubleValue();
      if (!(x >= 0 && x < 2147483648.0)) throw Napi::RangeError::New(env, "benchOp: dims." + key + " out of range");
      dims.n[key] = int(x);
    }
  }
  int samples = 5, warmup = 2;
  double min_sample = 0.02;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    if (o.Get("samples").IsNumber()) samples = std::max(1, o.Get("samples").As<Napi::Number>().Int32Value());
    if (o.Get("warmup").IsNumber()) warmup = std::max(1, o.Get("warmup").As<Napi::Number>().Int32Value());
    if (o.Get("minSampleSeconds").IsNumber()) min_sample = o.Get("minSampleSeconds").As<Napi::Number>().DoubleValue();
  }
  auto* w = new BenchWorker(env, name, std::move(dims), samples, warmup, min_sample);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value SetOpTiming(const Napi::CallbackInfo& info) {
  l2e::set_op_timing(info.Length() > 0 && info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value OpTimings(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto t = l2e::op_timings();
  Napi::Array a = Napi::Array::New(env, t.size());
  for (size_t i = 0; i < t.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("op", t[i].op);
    o.Set("calls", double(t[i].calls));
    o.Set("seconds", t[i].seconds);
    o.Set("flops", t[i].flops);
    a.Set(uint32_t(i), o);
  }
  return a;
}

Napi::Value ResetOpTimings(const Napi::CallbackInfo& info) {
  l2e::reset_op_timings();
  return info.Env().Undefined();
}

void RegisterBench(Napi::Env env, Napi::Object exports) {
  exports.Set("benchOps", Napi::Function::New(env, BenchOps, "benchOps"));
  exports.Set("benchOp", Napi::Function::New(env, BenchOp, "benchOp"));
  exports.Set("setOpTiming", Napi::Function::New(env, SetOpTiming, "setOpTiming"));
  exports.Set("opTimings", Napi::Function::New(env, OpTimings, "opTimings"));
  exports.Set("resetOpTimings", Napi::Function::New(env, ResetOpTimings, "resetOpTimings"));
}

}  // namespace

L2E_REGISTER(bench, RegisterBench);
