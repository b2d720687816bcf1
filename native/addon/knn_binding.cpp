// knn(queries: Float32Array, nq, pool: Float32Array, np, dim, k, metric) -> Promise<{indices, scores}>:
// exact k-NN (cpu/knn.h) on a worker thread. The input arrays are held by references until the
// search finishes, so JS cannot collect them while native code reads them; a reference does not stop
// a transfer (postMessage) from detaching one and freeing its memory, so src/eval/knn.ts passes
// arrays nobody else holds (copies, for the public knn).
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "core/tensor.h"
#include "cpu/knn.h"

namespace {

class KnnWorker : public Napi::AsyncWorker {
 public:
  KnnWorker(Napi::Env env, Napi::Float32Array q, Napi::Float32Array p, int64_t nq, int64_t np, int64_t dim,
            int64_t k, l2e::KnnMetric metric)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        qref_(Napi::Persistent(q)),
        pref_(Napi::Persistent(p)),
        q_(q.Data()),
        p_(p.Data()),
        nq_(nq),
        np_(np),
        dim_(dim),
        k_(k),
        metric_(metric) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (nq_ > INT64_MAX / k_) throw l2e::Error("knn: nq * k is too large");
      indices_.resize(size_t(nq_ * k_));
      scores_.resize(size_t(nq_ * k_));
      l2e::knn_search(q_, nq_, p_, np_, dim_, k_, metric_, indices_.data(), scores_.data());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto idx = Napi::Int32Array::New(env, indices_.size());
    auto sc = Napi::Float32Array::New(env, scores_.size());
    std::copy(indices_.begin(), indices_.end(), idx.Data());
    std::copy(scores_.begin(), scores_.end(), sc.Data());
    Napi::Object out = Napi::Object::New(env);
    out.Set("indices", idx);
    out.Set("scores", sc);
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Float32Array> qref_, pref_;
  const float* q_;
  const float* p_;
  int64_t nq_, np_, dim_, k_;
  l2e::KnnMetric metric_;
  std::vector<int32_t> indices_;
  std::vector<float> scores_;
};

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("knn: ") + name + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v != double(int64_t(v))) throw Napi::TypeError::New(info.Env(), std::string("knn: ") + name + " must be a non-negative integer");
  return int64_t(v);
}

Napi::Value Knn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsTypedArray() || !info[2].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !info[6].IsString()) {
    throw Napi::TypeError::New(env, "knn(queries: Float32Array, nq, pool: Float32Array, np, dim, k, metric)");
  }
  auto q = info[0].As<Napi::Float32Array>();
  auto p = info[2].As<Napi::Float32Array>();
  const int64_t nq = int_arg(info, 1, "nq"), np = int_arg(info, 3, "np"), dim = int_arg(info, 4, "dim"),
                k = int_arg(info, 5, "k");
  const std::string m = info[6].As<Napi::String>().Utf8Value();
  if (m != "cosine" && m != "euclidean") throw Napi::TypeError::New(env, "knn: metric must be 'cosine' or 'euclidean'");
  if (dim == 0) throw Napi::RangeError::New(env, "knn: dim must be positive");
  if (np == 0) throw Napi::RangeError::New(env, "knn: the pool is empty");
  // Divided, not multiplied: nq * dim can overflow int64 and wrap onto the array's length.
  if (q.ElementLength() % size_t(dim) != 0 || q.ElementLength() / size_t(dim) != size_t(nq))
    throw Napi::RangeError::New(env, "knn: queries length is not nq*dim");
  if (p.ElementLength() % size_t(dim) != 0 || p.ElementLength() / size_t(dim) != size_t(np))
    throw Napi::RangeError::New(env, "knn: pool length is not np*dim");
  if (np > INT32_MAX) throw Napi::RangeError::New(env, "knn: pool larger than 2^31 rows");
  if (k < 1 || k > np) throw Napi::RangeError::New(env, "knn: k must be in [1, np]");
  auto* w = new KnnWorker(env, q, p, nq, np, dim, k, m == "cosine" ? l2e::KnnMetric::Cosine : l2e::KnnMetric::Euclidean);
  Napi::Promise promise = w->promise();
  w->Queue();
  return promise;
}

void Register(Napi::Env env, Napi::Object exports) { exports.Set("knn", Napi::Function::New(env, Knn, "knn")); }

}  // namespace

L2E_REGISTER(knn, Register);
