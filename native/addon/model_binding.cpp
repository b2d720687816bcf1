// NativeModel: the JS face of core/model.h. Heavy calls (loading weights, encoding) run as
// AsyncWorkers and return Promises; every native error becomes a JS exception with its message.
#include <napi.h>

#include <cstring>

#include "addon/model_handle.h"
#include "addon/registry.h"
#include "core/weights_io.h"

namespace l2e {
namespace {

class Worker final : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, std::shared_ptr<ModelState> st, std::function<void(ModelState&)> fn,
         std::function<Napi::Value(Napi::Env)> make_result)
      : Napi::AsyncWorker(env), st_(std::move(st)), fn_(std::move(fn)), make_(std::move(make_result)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::lock_guard<std::mutex> lk(st_->mu);
      if (!st_->model) throw Error("the model has been disposed");
      fn_(*st_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(make_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::shared_ptr<ModelState> st_;
  std::function<void(ModelState&)> fn_;
  std::function<Napi::Value(Napi::Env)> make_;
  Napi::Promise::Deferred deferred_;
};

int get_int(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("model config: ") + key + " must be a number");
  // Int32Value() would wrap 4294967297 to 1: a size past int range is refused, not truncated
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != double(int64_t(d))) {
    throw Napi::RangeError::New(o.Env(), std::string("model config: ") + key + " must be an integer below 2^31, got " +
                                             v.ToString().Utf8Value());
  }
  return int(d);
}

// sources[i].key of loadTensors: a whole number in [0, 2^53] (Int64Value() would read NaN as 0)
uint64_t get_byte_count(const Napi::Object& o, const char* key, uint32_t i) {
  Napi::Value v = o.Get(key);
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
  if (!(d >= 0.0 && d <= 9007199254740992.0) || d != double(uint64_t(d))) {
    throw Napi::TypeError::New(o.Env(), "loadTensors: sources[" + std::to_string(i) + "]." + key +
                                            " must be a whole number of bytes, got " + v.ToString().Utf8Value());
  }
  return uint64_t(d);
}

// sources[i].key of loadTensors: a string
std::string get_string(const Napi::Object& o, const char* key, uint32_t i) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) {
    throw Napi::TypeError::New(o.Env(), "loadTensors: sources[" + std::to_string(i) + "]." + key + " must be a string");
  }
  return v.As<Napi::String>().Utf8Value();
}

float get_float(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("model config: ") + key + " must be a number");
  return v.As<Napi::Number>().FloatValue();
}

DType parse_dtype(Napi::Env env, const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  throw Napi::TypeError::New(env, "unsupported dtype " + s);
}

class NativeModel final : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("params", &NativeModel::Params),
                        InstanceMethod("loadTensors", &NativeModel::LoadTensors),
                        InstanceMethod("setTensor", &NativeModel::SetTensor),
                        InstanceMethod("getTensor", &NativeModel::GetTensor),
                        InstanceMethod("encode", &NativeModel::Encode),
                        InstanceMethod("dispose", &NativeModel::Dispose),
                        InstanceAccessor("device", &NativeModel::Device, nullptr),
                        InstanceAccessor("precision", &NativeModel::PrecisionName, nullptr),
                        InstanceAccessor("weightBytes", &NativeModel::WeightBytes, nullptr),
                        InstanceAccessor("encodeGroupTokens", &NativeModel::EncodeGroupTokens, nullptr),
                        InstanceAccessor("disposed", &NativeModel::Disposed, nullptr)});
  }

  NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "NativeModel(config, device)");
    Napi::Object c = info[0].As<Napi::Object>();
    ModelConfig cfg;
    cfg.vocab = get_int(c, "vocab");
    cfg.hidden = get_int(c, "hidden");
    cfg.intermediate = get_int(c, "intermediate");
    cfg.layers = get_int(c, "layers");
    cfg.heads = get_int(c, "heads");
    cfg.kv_heads = get_int(c, "kvHeads");
    cfg.head_dim = get_int(c, "headDim");
    cfg.dense = get_int(c, "dense");
    cfg.rms_eps = get_float(c, "rmsEps");
    cfg.rope_theta = get_float(c, "ropeTheta");
    const std::string pooling = c.Get("pooling").IsString() ? c.Get("pooling").As<Napi::String>().Utf8Value() : "mean";
    if (pooling != "mean" && pooling != "cls") throw Napi::TypeError::New(env, "pooling must be 'mean' or 'cls'");
    cfg.pooling = pooling == "cls" ? Pooling::Cls : Pooling::Mean;
    cfg.normalized = c.Get("normalized").IsBoolean() ? c.Get("normalized").As<Napi::Boolean>().Value() : true;
    // null or absent: no padding row (validate() checks the id against the vocabulary)
    const Napi::Value pad = c.Get("padTokenId");
    cfg.pad_id = pad.IsNull() || pad.IsUndefined() ? -1 : get_int(c, "padTokenId");
    if (cfg.pad_id < 0 && !(pad.IsNull() || pad.IsUndefined()))
      throw Napi::RangeError::New(env, "model config: padTokenId must be null or an id >= 0, got " + std::to_string(cfg.pad_id));
    device_ = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu";
    const std::string precision = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "fp32";
    try {
      std::unique_ptr<Backend> be;
      if (device_ == "cpu") be = make_cpu_backend();
      else if (device_ == "cuda") be = make_cuda_backend();
      else throw Error("unknown device '" + device_ + "' (expected 'cpu' or 'cuda')");
      state_ = std::make_shared<ModelState>();
      state_->model = std::make_unique<Model>(cfg, std::move(be), parse_precision(precision));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  std::shared_ptr<ModelState> state(Napi::Env env) {
    if (!state_) throw Napi::Error::New(env, "the model has been disposed");
    return state_;
  }

 private:
  Napi::Value Params(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    const auto& ps = st->model->params();
    Napi::Array out = Napi::Array::New(env, ps.size());
    for (size_t i = 0; i < ps.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", ps[i].name);
      Napi::Array shape = Napi::Array::New(env, ps[i].shape.size());
      for (size_t j = 0; j < ps[i].shape.size(); j++) shape.Set(uint32_t(j), double(ps[i].shape[j]));
      o.Set("shape", shape);
      o.Set("numel", double(ps[i].numel));
      o.Set("offset", double(ps[i].offset));
      out.Set(uint32_t(i), o);
    }
    return out;
  }

  // loadTensors([{name, path, offset, length, dtype, tensor?}], chunkBytes?) -> Promise<void>; chunkBytes
  // (tests) is the size of the pieces tensors are read in; tensor is the name in the file, for errors.
  Napi::Value LoadTensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "loadTensors(sources[])");
    Napi::Array arr = info[0].As<Napi::Array>();
    auto sources = std::make_shared<std::vector<TensorSource>>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value item = arr.Get(i);
      if (!item.IsObject()) throw Napi::TypeError::New(env, "loadTensors: sources[" + std::to_string(i) + "] must be an object");
      Napi::Object o = item.As<Napi::Object>();
      TensorSource s;
      s.name = get_string(o, "name", i);
      s.path = get_string(o, "path", i);
      s.offset = get_byte_count(o, "offset", i);
      s.length = get_byte_count(o, "length", i);
      s.dtype = parse_dtype(env, get_string(o, "dtype", i));
      if (o.Has("tensor") && o.Get("tensor").IsString()) s.file_name = o.Get("tensor").As<Napi::String>().Utf8Value();
      sources->push_back(std::move(s));
    }
    const double chunk = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 16777216.0;
    if (!(chunk >= 1)) throw Napi::RangeError::New(env, "loadTensors: chunkBytes must be at least 1");
    return run_async(
        env, st, [sources, chunk](ModelState& s) {
          for (const auto& src : *sources) load_tensor(*s.model, src, size_t(chunk));
        },
        [](Napi::Env e) { return e.Undefined(); });
  }

  // setTensor(name, Float32Array)
  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "setTensor(name, Float32Array)");
    Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, "setTensor expects a Float32Array");
    Napi::Float32Array f = ta.As<Napi::Float32Array>();
    std::lock_guard<std::mutex> lk(st->mu);
    try {
      st->model->set_param(info[0].As<Napi::String>().Utf8Value(), f.Data(), f.ElementLength(), DType::F32);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return env.Undefined();
  }

  // getTensor(name) -> Float32Array (a copy)
  Napi::Value GetTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "getTensor(name)");
    std::lock_guard<std::mutex> lk(st->mu);
    try {
      const std::string name = info[0].As<Napi::String>().Utf8Value();
      const ParamInfo& p = st->model->param(name);
      Napi::Float32Array out = Napi::Float32Array::New(env, p.numel);
      st->model->get_param(name, out.Data());
      return out;
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  // encode(ids: Int32Array, cuSeqlens: Int32Array, wantHidden?: boolean)
  //   -> Promise<{embeddings: Float32Array [B*P], hidden?: Float32Array [T*H]}>
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto st = state(env);
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "encode(ids: Int32Array, cuSeqlens: Int32Array, wantHidden?)");
    Napi::TypedArray a0 = info[0].As<Napi::TypedArray>(), a1 = info[1].As<Napi::TypedArray>();
    if (a0.TypedArrayType() != napi_int32_array || a1.TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "encode expects Int32Array ids and cuSeqlens");
    Napi::Int32Array ids = a0.As<Napi::Int32Array>(), cu = a1.As<Napi::Int32Array>();
    if (cu.ElementLength() < 2) throw Napi::Error::New(env, "encode: cuSeqlens needs at least 2 entries");
    const bool want_hidden = info.Length() > 2 && info[2].ToBoolean().Value();
    auto id_copy = std::make_shared<std::vector<int32_t>>(ids.Data(), ids.Data() + ids.ElementLength());
    auto cu_copy = std::make_shared<std::vector<int32_t>>(cu.Data(), cu.Data() + cu.ElementLength());
    const ModelConfig& cfg = st->model->config();
    const int B = int(cu_copy->size()) - 1;
    auto emb = std::make_shared<std::vector<float>>(size_t(B) * cfg.dense);
    auto hidden = std::make_shared<std::vector<float>>();
    return run_async(
        env, st,
        [=](ModelState& s) {
          Model& m = *s.model;
          const int T = int(id_copy->size());
          if (want_hidden) hidden->resize(size_t(T) * size_t(m.config().hidden));
          m.encode(id_copy->data(), T, cu_copy->data(), B, s.acts, emb->data(), want_hidden ? hidden->data() : nullptr);
        },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          Napi::Float32Array ea = Napi::Float32Array::New(e, emb->size());
          std::memcpy(ea.Data(), emb->data(), emb->size() * 4);
          o.Set("embeddings", ea);
          if (want_hidden) {
            Napi::Float32Array ha = Napi::Float32Array::New(e, hidden->size());
            std::memcpy(ha.Data(), hidden->data(), hidden->size() * 4);
            o.Set("hidden", ha);
          }
          return o;
        });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();  // in-flight workers hold their own reference
    return info.Env().Undefined();
  }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }
  Napi::Value PrecisionName(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), precision_name(state(info.Env())->model->precision()));
  }
  Napi::Value WeightBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(state(info.Env())->model->weight_bytes()));
  }
  Napi::Value EncodeGroupTokens(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(state(info.Env())->model->encode_group_tokens()));
  }

  std::shared_ptr<ModelState> state_;
  std::string device_;
};

// The NativeModel constructor of each JS environment (the main thread and every worker thread that
// loads the addon has its own): held as the environment's instance data, which Node frees with it. A
// process-wide reference was overwritten by each thread's load and then named another thread's (or a
// finished worker's) constructor: training in the main thread after a worker loaded the addon aborted.
void register_model(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeModel::Define(env);
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
  exports.Set("NativeModel", ctor);
}

}  // namespace

std::shared_ptr<ModelState> model_state(const Napi::Value& v) {
  Napi::Env env = v.Env();
  const Napi::FunctionReference* ctor = env.GetInstanceData<Napi::FunctionReference>();
  if (!v.IsObject() || !ctor || !v.As<Napi::Object>().InstanceOf(ctor->Value()))
    throw Napi::TypeError::New(env, "expected a NativeModel");
  return NativeModel::Unwrap(v.As<Napi::Object>())->state(env);
}

Napi::Promise run_async(Napi::Env env, std::shared_ptr<ModelState> st, std::function<void(ModelState&)> fn,
                        std::function<Napi::Value(Napi::Env)> make_result) {
  auto* w = new Worker(env, std::move(st), std::move(fn), std::move(make_result));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

L2E_REGISTER(model, register_model);

}  // namespace l2e
