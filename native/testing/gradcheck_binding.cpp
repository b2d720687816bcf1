// Test hooks for the CPU backward kernels, the loss and the optimizer (all synchronous, small):
//   gradcheckOps() -> string[] (every op runs in gradcheckFloat; "attention_tiles" is too large for
//       finite differences and is meant for gradcheckFloat only)
//   gradcheck(op, seed) -> {maxRelError, maxAbsError, auxError, hasNaN, inputs: [{name, relError, ...}]}
//       double-precision analytic gradients vs float64 central differences (h = 1e-6) of
//       L = sum(R * forward(inputs)) for every input of the op (gradcheck_ops.h).
//   gradcheckFloat(op, seed) -> {maxRelError, hasNaN, outputs: [{name, relError}]}
//       the float kernels (sgemm included) vs the double kernels on the same inputs.
//   gradcheckInfonce(q, p, B, G, P, temperature, inBatch) -> {loss, scores, dq, dp}
//       the raw loss kernel: Float64Array inputs run the double kernel, Float32Array the float one.
//   gradcheckAdamw(w, g, m, v, lr, beta1, beta2, eps, weightDecay, step)
//       one in-place AdamW step on Float32Arrays.
//
// Errors are normwise per tensor: max|analytic - numeric| / max|numeric|, which stays meaningful
// when single elements of a gradient are close to zero.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>

#include "testing/gradcheck_ops.h"
#include "addon/registry.h"

namespace {

using namespace l2e::gradcheck;

constexpr double kStep = 1e-6;  // central-difference step: truncation ~h^2, round-off ~1e-16 |L| / h

struct TensorError {
  std::string name;
  double abs_err = 0, scale = 0;
  size_t numel = 0;
  bool nan = false;
  double rel() const { return abs_err / std::max(scale, 1e-12); }
};

void compare(const std::string& name, const Vec<double>& got, const Vec<double>& want, TensorError& e) {
  e.name = name;
  e.numel = want.size();
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i])) e.nan = true;
    e.abs_err = std::max(e.abs_err, std::fabs(got[i] - want[i]));
    e.scale = std::max(e.scale, std::fabs(want[i]));
  }
  if (got.size() != want.size()) e.nan = true;
}

double objective(const Vec<double>& y, const Vec<double>& R) {
  double L = 0;
  for (size_t i = 0; i < y.size(); i++) L += R[i] * y[i];
  return L;
}

Napi::Object report(Napi::Env env, const std::vector<TensorError>& errs, double aux) {
  Napi::Object res = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env, errs.size());
  double max_rel = 0, max_abs = 0;
  bool nan = !std::isfinite(aux);
  for (size_t i = 0; i < errs.size(); i++) {
    const TensorError& e = errs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", e.name);
    o.Set("relError", e.rel());
    o.Set("absError", e.abs_err);
    o.Set("maxAbs", e.scale);
    o.Set("numel", double(e.numel));
    o.Set("hasNaN", e.nan);
    arr.Set(uint32_t(i), o);
    max_rel = std::max(max_rel, e.rel());
    max_abs = std::max(max_abs, e.abs_err);
    nan = nan || e.nan || std::isnan(e.rel());
  }
  res.Set("maxRelError", nan ? std::nan("") : max_rel);
  res.Set("maxAbsError", nan ? std::nan("") : max_abs);
  res.Set("auxError", aux);
  res.Set("hasNaN", nan);
  res.Set("inputs", arr);
  return res;
}

template <class Case>
Napi::Object run_gradcheck(Napi::Env env, const Case& c, Rng& rng) {
  Tensors<double> x = c.init;
  const Vec<double> y = c.forward(x);
  const Vec<double> R = rng.vec(y.size());
  double aux = 0;
  const Tensors<double> analytic = c.backward(x, R, aux);
  std::vector<TensorError> errs(x.size());
  for (size_t a = 0; a < x.size(); a++) {
    Vec<double> numeric(x[a].size());
    for (size_t i = 0; i < x[a].size(); i++) {
      const double x0 = x[a][i];
      x[a][i] = x0 + kStep;
      const double Lp = objective(c.forward(x), R);
      x[a][i] = x0 - kStep;
      const double Lm = objective(c.forward(x), R);
      x[a][i] = x0;
      numeric[i] = (Lp - Lm) / (2 * kStep);
    }
    compare(c.names[a], analytic[a], numeric, errs[a]);
  }
  return report(env, errs, aux);
}

template <class Case>
Napi::Object run_floatcheck(Napi::Env env, const Case& c, Rng& rng) {
  const Tensors<double>& xd = c.init;
  Tensors<float> xf;
  for (const auto& t : xd) xf.push_back(cast<float>(t));
  const Vec<double> yd = c.forward(xd);
  const Vec<double> R = rng.vec(yd.size());
  double aux_d = 0, aux_f = 0;
  const Tensors<double> gd = c.backward(xd, R, aux_d);
  const Vec<float> yf = c.forward(xf);
  const Tensors<float> gf = c.backward(xf, cast<float>(R), aux_f);
  std::vector<TensorError> errs(1 + gd.size());
  compare("output", Vec<double>(yf.begin(), yf.end()), yd, errs[0]);
  for (size_t a = 0; a < gd.size(); a++)
    compare("d" + c.names[a], Vec<double>(gf[a].begin(), gf[a].end()), gd[a], errs[a + 1]);
  return report(env, errs, aux_f);
}

// Builds the named case from the seed and hands it to fn (a generic lambda).
template <class Fn>
Napi::Object with_case(Napi::Env env, const std::string& op, uint32_t seed, Fn&& fn) {
  Rng r{0x5eed0000ull + seed};
  if (op == "embedding") return fn(EmbeddingCase(r), r);
  if (op == "rmsnorm") return fn(RmsnormCase(r), r);
  if (op == "linear") return fn(LinearCase(r, r.randint(2, 9), 5, 4), r);
  if (op == "linear_large") return fn(LinearCase(r, 23, 37, 19), r);  // crosses sgemm's register tiles
  if (op == "rope") return fn(RopeCase(r), r);
  if (op == "attention") return fn(AttentionCase(r, random_lengths(r, 3, 1, 7), 4, 2, 8), r);  // GQA
  if (op == "attention_mha") return fn(AttentionCase(r, random_lengths(r, 3, 1, 7), 2, 2, 4), r);
  if (op == "attention_long") return fn(AttentionCase(r, {67, 3}, 2, 1, 4), r);  // > one 64-row tile
  // several tiles, a sequence of exactly one tile, GQA group 4 (too big for finite differences:
  // gradcheckFloat only)
  if (op == "attention_tiles") return fn(AttentionCase(r, {150, 64, 1}, 4, 1, 8), r);
  if (op == "swiglu") return fn(SwigluCase(r), r);
  if (op == "pool_mean") return fn(PoolCase(r, 0), r);
  if (op == "pool_cls") return fn(PoolCase(r, 1), r);
  if (op == "l2norm") return fn(L2normCase(r, true), r);
  if (op == "l2norm_off") return fn(L2normCase(r, false), r);
  if (op == "infonce") return fn(InfonceCase(r, true), r);
  if (op == "infonce_group") return fn(InfonceCase(r, false), r);
  throw Napi::Error::New(env, "gradcheck: unknown op '" + op + "'");
}

const char* const kOps[] = {"embedding",      "rmsnorm",         "linear",        "linear_large",
                            "rope",           "attention",       "attention_mha", "attention_long",
                            "attention_tiles", "swiglu",         "pool_mean",     "pool_cls",
                            "l2norm",         "l2norm_off",      "infonce",       "infonce_group"};

std::string op_arg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": expected (op: string, seed: number)");
  return info[0].As<Napi::String>().Utf8Value();
}

Napi::Value GradcheckOps(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
  uint32_t i = 0;
  for (const char* op : kOps) a.Set(i++, op);
  return a;
}

Napi::Value Gradcheck(const Napi::CallbackInfo& info) {
  const std::string op = op_arg(info, "gradcheck");
  const uint32_t seed = info[1].As<Napi::Number>().Uint32Value();
  return with_case(info.Env(), op, seed, [&](const auto& c, Rng& r) { return run_gradcheck(info.Env(), c, r); });
}

Napi::Value GradcheckFloat(const Napi::CallbackInfo& info) {
  const std::string op = op_arg(info, "gradcheckFloat");
  const uint32_t seed = info[1].As<Napi::Number>().Uint32Value();
  return with_case(info.Env(), op, seed, [&](const auto& c, Rng& r) { return run_floatcheck(info.Env(), c, r); });
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v != std::floor(v) || v > 1e9)
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": " + name + " must be a non-negative integer");
  return int(v);
}

template <class S, class TA>
Napi::Object infonce_typed(const Napi::CallbackInfo& info, int B, int G, int P, double tau, bool in_batch) {
  Napi::Env env = info.Env();
  TA q = info[0].As<TA>(), p = info[1].As<TA>();
  if (q.ElementLength() != size_t(B) * P || p.ElementLength() != size_t(B) * G * P)
    throw Napi::RangeError::New(env, "gradcheckInfonce: q must hold B*P values and p B*G*P values");
  TA scores = TA::New(env, size_t(B) * B * G), dq = TA::New(env, size_t(B) * P), dp = TA::New(env, size_t(B) * G * P);
  S loss;
  try {  // its scratch allocation may throw std::bad_alloc, which must reach JS as an Error
    loss = l2e::cpu::infonce<S>(q.Data(), p.Data(), B, G, P, S(tau), in_batch, scores.Data(), dq.Data(), dp.Data());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  Napi::Object res = Napi::Object::New(env);
  res.Set("loss", double(loss));
  res.Set("scores", scores);
  res.Set("dq", dq);
  res.Set("dp", dp);
  return res;
}

Napi::Value GradcheckInfonce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "gradcheckInfonce";
  if (info.Length() != 7 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[5].IsNumber() ||
      !info[6].IsBoolean())
    throw Napi::TypeError::New(env, "gradcheckInfonce: expected (q, p, B, G, P, temperature, inBatch)");
  const int B = int_arg(info, 2, fn, "B"), G = int_arg(info, 3, fn, "G"), P = int_arg(info, 4, fn, "P");
  const double tau = info[5].As<Napi::Number>().DoubleValue();
  const bool in_batch = info[6].As<Napi::Boolean>().Value();
  const napi_typedarray_type tq = info[0].As<Napi::TypedArray>().TypedArrayType();
  if (tq != info[1].As<Napi::TypedArray>().TypedArrayType())
    throw Napi::TypeError::New(env, "gradcheckInfonce: q and p must have the same type");
  if (tq == napi_float64_array) return infonce_typed<double, Napi::Float64Array>(info, B, G, P, tau, in_batch);
  if (tq == napi_float32_array) return infonce_typed<float, Napi::Float32Array>(info, B, G, P, tau, in_batch);
  throw Napi::TypeError::New(env, "gradcheckInfonce: q and p must be Float32Array or Float64Array");
}

Napi::Value GradcheckAdamw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 10) throw Napi::TypeError::New(env, "gradcheckAdamw: expected 10 arguments");
  Napi::Float32Array arr[4];
  for (size_t i = 0; i < 4; i++) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, "gradcheckAdamw: w, g, m, v must be Float32Arrays");
    arr[i] = info[i].As<Napi::Float32Array>();
    if (arr[i].ElementLength() != arr[0].ElementLength())
      throw Napi::RangeError::New(env, "gradcheckAdamw: w, g, m, v must have the same length");
  }
  float h[5];
  for (size_t i = 0; i < 5; i++) {
    if (!info[4 + i].IsNumber()) throw Napi::TypeError::New(env, "gradcheckAdamw: hyper-parameters must be numbers");
    h[i] = info[4 + i].As<Napi::Number>().FloatValue();
  }
  const int step = int_arg(info, 9, "gradcheckAdamw", "step");
  if (step < 1) throw Napi::RangeError::New(env, "gradcheckAdamw: step is 1-based");
  l2e::cpu::adamw(arr[0].Data(), arr[1].Data(), arr[2].Data(), arr[3].Data(), int64_t(arr[0].ElementLength()), h[0],
                  h[1], h[2], h[3], h[4], step);
  return env.Undefined();
}

void RegisterGradcheck(Napi::Env env, Napi::Object exports) {
  exports.Set("gradcheckOps", Napi::Function::New(env, GradcheckOps, "gradcheckOps"));
  exports.Set("gradcheck", Napi::Function::New(env, Gradcheck, "gradcheck"));
  exports.Set("gradcheckFloat", Napi::Function::New(env, GradcheckFloat, "gradcheckFloat"));
  exports.Set("gradcheckInfonce", Napi::Function::New(env, GradcheckInfonce, "gradcheckInfonce"));
  exports.Set("gradcheckAdamw", Napi::Function::New(env, GradcheckAdamw, "gradcheckAdamw"));
}

}  // namespace

L2E_REGISTER(gradcheck, RegisterGradcheck);
