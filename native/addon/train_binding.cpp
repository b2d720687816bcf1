// Training calls on a NativeModel (see core/train_state.h): free functions taking the model first.
//   trainInit(model)                                        allocate gradients and AdamW moments
//   trainForward(model, chunk, ids, cu, keep, download = true) -> Promise<Float32Array [B*P] | undefined>
//                                               (the embeddings also stay on the backend for trainLossChunks)
//   trainLoss(model, q, p, B, G, temperature, inBatch) -> {loss, dq, dp, scores}   (host vectors)
//   trainLossChunks(model, chunks, B, G, temperature, inBatch, gradScale)  loss over the kept embeddings
//                                               of chunks (rows end to end: B queries, B*G passages),
//                                               added to the pending loss; gradients stay
//   trainTakeLoss(model)                        -> number: the pending loss, read back and cleared
//   trainBackward(model, chunk, ids, cu, dEmb?) -> Promise<void>   (no dEmb: the trainLossChunks slice)
//   trainStep(model, hyper)                     -> Promise<{gradNorm, skipped, loss}> (loss: the pending loss)
//   trainGetBuffer(model, 'grads'|'m'|'v'|'master'|'params') -> Float32Array (TrainState::get_buffer);
//   trainSetBuffer(model, which, data)
//   trainRelease(model)                                      drop kept chunk activations
#include <napi.h>

#include <cstring>

#include "addon/model_handle.h"
#include "addon/registry.h"

namespace l2e {
namespace {

TrainState& train_of(Napi::Env env, ModelState& st) {
  if (!st.train) throw Error("training state not initialised (call trainInit first)");
  (void)env;
  return *st.train;
}

std::vector<int32_t> i32_vec(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<float> f32_vec(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Float32Array to_f32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}

template <typename Fn>
auto guarded(Napi::Env env, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value TrainInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  std::lock_guard<std::mutex> lk(st->mu);
  guarded(env, [&] {
    if (!st->train) st->train = std::make_unique<TrainState>(*st->model);
    return 0;
  });
  return env.Undefined();
}

Napi::Value TrainForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  const int chunk = info[1].As<Napi::Number>().Int32Value();
  auto ids = std::make_shared<std::vector<int32_t>>(i32_vec(info[2], "ids"));
  auto cu = std::make_shared<std::vector<int32_t>>(i32_vec(info[3], "cuSeqlens"));
  const bool keep = info[4].ToBoolean().Value();
  const bool download = info.Length() < 6 || info[5].IsUndefined() || info[5].ToBoolean().Value();
  auto out = std::make_shared<std::vector<float>>();
  return run_async(
      env, st, [=](ModelState& s) { *out = train_of(env, s).forward_chunk(chunk, *ids, *cu, keep, download); },
      [=](Napi::Env e) -> Napi::Value { return download ? Napi::Value(to_f32(e, *out)) : e.Undefined(); });
}

Napi::Value TrainBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  const int chunk = info[1].As<Napi::Number>().Int32Value();
  auto ids = std::make_shared<std::vector<int32_t>>(i32_vec(info[2], "ids"));
  auto cu = std::make_shared<std::vector<int32_t>>(i32_vec(info[3], "cuSeqlens"));
  const bool from_loss = info.Length() < 5 || info[4].IsUndefined();
  auto demb = std::make_shared<std::vector<float>>(from_loss ? std::vector<float>() : f32_vec(info[4], "dEmb"));
  return run_async(
      env, st, [=](ModelState& s) { train_of(env, s).backward_chunk(chunk, *ids, *cu, from_loss ? nullptr : demb.get()); },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
}

Napi::Value TrainLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  std::vector<float> q = f32_vec(info[1], "q"), p = f32_vec(info[2], "p");
  const int B = info[3].As<Napi::Number>().Int32Value(), G = info[4].As<Napi::Number>().Int32Value();
  const float temperature = info[5].As<Napi::Number>().FloatValue();
  const bool in_batch = info[6].ToBoolean().Value();
  std::lock_guard<std::mutex> lk(st->mu);
  return guarded(env, [&]() -> Napi::Value {
    if (B <= 0 || G <= 0) throw Error("infonce: B and G must be positive");
    if (!(temperature > 0)) throw Error("infonce: temperature must be positive");
    std::vector<float> dq, dp, scores;
    const float loss = train_of(env, *st).infonce(q, p, B, G, temperature, in_batch, dq, dp, scores);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", double(loss));
    o.Set("dq", to_f32(env, dq));
    o.Set("dp", to_f32(env, dp));
    o.Set("scores", to_f32(env, scores));
    return o;
  });
}

std::vector<int> chunk_ids(const Napi::Value& v, const char* what) {
  const std::vector<int32_t> a = i32_vec(v, what);
  return std::vector<int>(a.begin(), a.end());
}

Napi::Value TrainLossChunks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  const std::vector<int> chunks = chunk_ids(info[1], "chunks");
  const int B = info[2].As<Napi::Number>().Int32Value(), G = info[3].As<Napi::Number>().Int32Value();
  const float temperature = info[4].As<Napi::Number>().FloatValue();
  const bool in_batch = info[5].ToBoolean().Value();
  const float grad_scale = info[6].IsNumber() ? info[6].As<Napi::Number>().FloatValue() : 1.0f;
  std::lock_guard<std::mutex> lk(st->mu);
  guarded(env, [&] {
    if (B <= 0 || G <= 0) throw Error("infonce: B and G must be positive");
    if (!(temperature > 0)) throw Error("infonce: temperature must be positive");
    train_of(env, *st).loss_chunks(chunks, B, G, temperature, in_batch, grad_scale);
    return 0;
  });
  return env.Undefined();
}

Napi::Value TrainTakeLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  std::lock_guard<std::mutex> lk(st->mu);
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, train_of(env, *st).take_loss()); });
}

Napi::Value TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  Napi::Object h = info[1].As<Napi::Object>();
  OptimizerHyper hp;
  auto num = [&](const char* k, float dflt) {
    Napi::Value v = h.Get(k);
    return v.IsNumber() ? v.As<Napi::Number>().FloatValue() : dflt;
  };
  hp.lr = num("lr", hp.lr);
  hp.beta1 = num("beta1", hp.beta1);
  hp.beta2 = num("beta2", hp.beta2);
  hp.eps = num("eps", hp.eps);
  hp.weight_decay = num("weightDecay", hp.weight_decay);
  hp.max_grad_norm = num("maxGradNorm", hp.max_grad_norm);
  hp.step = int(num("step", 1));
  auto res = std::make_shared<StepResult>();
  return run_async(
      env, st, [=](ModelState& s) { *res = train_of(env, s).step(hp); },
      [=](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("gradNorm", res->grad_norm);
        o.Set("skipped", res->skipped);
        o.Set("loss", res->loss);
        return o;
      });
}

Napi::Value TrainGetBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  const std::string which = info[1].As<Napi::String>().Utf8Value();
  std::lock_guard<std::mutex> lk(st->mu);
  return guarded(env, [&]() -> Napi::Value {
    TrainState& t = train_of(env, *st);
    Napi::Float32Array a = Napi::Float32Array::New(env, t.size());
    t.get_buffer(which.c_str(), a.Data());
    return a;
  });
}

Napi::Value TrainSetBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto st = model_state(info[0]);
  const std::string which = info[1].As<Napi::String>().Utf8Value();
  std::vector<float> data = f32_vec(info[2], "data");
  std::lock_guard<std::mutex> lk(st->mu);
  guarded(env, [&] {
    train_of(env, *st).set_buffer(which.c_str(), data.data(), data.size());
    return 0;
  });
  return env.Undefined();
}

Napi::Value TrainRelease(const Napi::CallbackInfo& info) {
  auto st = model_state(info[0]);
  std::lock_guard<std::mutex> lk(st->mu);
  if (st->train) st->train->release_chunks();
  return info.Env().Undefined();
}

void register_train(Napi::Env env, Napi::Object exports) {
  exports.Set("trainInit", Napi::Function::New(env, TrainInit));
  exports.Set("trainForward", Napi::Function::New(env, TrainForward));
  exports.Set("trainBackward", Napi::Function::New(env, TrainBackward));
  exports.Set("trainLoss", Napi::Function::New(env, TrainLoss));
  exports.Set("trainLossChunks", Napi::Function::New(env, TrainLossChunks));
  exports.Set("trainTakeLoss", Napi::Function::New(env, TrainTakeLoss));
  exports.Set("trainStep", Napi::Function::New(env, TrainStep));
  exports.Set("trainGetBuffer", Napi::Function::New(env, TrainGetBuffer));
  exports.Set("trainSetBuffer", Napi::Function::New(env, TrainSetBuffer));
  exports.Set("trainRelease", Napi::Function::New(env, TrainRelease));
}

}  // namespace

L2E_REGISTER(train, register_train);

}  // namespace l2e
