// Test hook: run ONE op of the op table (core/ops.def) on a chosen backend with host data, so that every CUDA op can
// be checked against the CPU op on the same inputs (test/gpu/ops.test.ts), the way ggml's
// test-backend-ops checks its backends.
//   backendOp(device: 'cpu' | 'cuda', op: string, args: {[name]: number | boolean | Float32Array |
//             Int32Array}) -> {[output]: Float32Array, value?: number}
// Float inputs are uploaded in the dtype the op expects on that backend (activations: act_dtype;
// weights: param_dtype; statistics, gradients of weights, optimizer state: F32). Outputs are
// allocated and poisoned with NaN before the call, so an element the op forgets to write stays NaN.
// Synchronous and meant for small shapes. One backend per device is created on first use and kept.
// args.attentionKernel ('auto' | 'simple' | 'sm80' | 'sm90' | 'sm90wg2' | 'sm90pp', device 'cuda'): the attention kernels of
// that backend (one backend per choice), so that the suites cross-check every kernel against the CPU;
// args.attentionVariant (a name of cudaAttentionVariants()) likewise for the kernels' tile variants (sm80, and
// the two-warpgroup sm_90a forward).
#include <napi.h>

#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "core/backend.h"
#include "core/lowp.h"

namespace l2e {
namespace {

Backend& backend_for(const std::string& device, const std::string& attention_kernel,
                     const std::string& attention_variant) {
  // leaked on purpose: destroying a CUDA backend during process exit races the runtime's teardown
  static auto* cache = new std::map<std::string, Backend*>();
  const std::string key = device + "/" + attention_kernel + "/" + attention_variant;
  auto it = cache->find(key);
  if (it != cache->end()) return *it->second;
  std::unique_ptr<Backend> be;
  if (device == "cpu") be = make_cpu_backend();
  else if (device == "cuda") be = make_cuda_backend(attention_kernel, attention_variant);
  else throw Error("unknown device '" + device + "'");
  Backend* raw = be.release();
  (*cache)[key] = raw;
  return *raw;
}

struct Ctx {
  Napi::Env env;
  Backend& be;
  Napi::Object args;
  Napi::Object out;
  std::deque<Buf> bufs;  // a deque: references to earlier buffers stay valid
  std::vector<Batch> batches;

  ~Ctx() {
    for (auto& b : bufs) be.free(b);
  }
  Napi::Value arg(const char* k) const {
    Napi::Value v = args.Get(k);
    if (v.IsUndefined()) throw Error(std::string("backendOp: missing argument '") + k + "'");
    return v;
  }
  int num(const char* k) const { return arg(k).As<Napi::Number>().Int32Value(); }
  float real(const char* k) const { return arg(k).As<Napi::Number>().FloatValue(); }
  bool flag(const char* k, bool dflt = false) const {
    Napi::Value v = args.Get(k);
    return v.IsUndefined() ? dflt : v.ToBoolean().Value();
  }
  bool has(const char* k) const { return !args.Get(k).IsUndefined(); }

  Buf& keep(Buf b) {
    bufs.push_back(b);
    return bufs.back();
  }
  // A float input uploaded as dtype dt (converted), or an Int32Array as I32.
  Buf& in(const char* k, DType dt) {
    Napi::Value v = arg(k);
    if (!v.IsTypedArray()) throw Error(std::string("backendOp: '") + k + "' must be a typed array");
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_int32_array) {
      Napi::Int32Array a = ta.As<Napi::Int32Array>();
      Buf& b = keep(be.alloc(a.ElementLength(), DType::I32));
      be.upload(b, a.Data(), a.ElementLength(), DType::I32);
      return b;
    }
    if (ta.TypedArrayType() != napi_float32_array) throw Error(std::string("backendOp: '") + k + "' must be float32");
    Napi::Float32Array a = ta.As<Napi::Float32Array>();
    Buf& b = keep(be.alloc(a.ElementLength(), dt));
    be.upload(b, a.Data(), a.ElementLength(), DType::F32);
    return b;
  }
  Buf& act(const char* k) { return in(k, be.act_dtype()); }
  Buf& param(const char* k) { return in(k, be.param_dtype()); }
  Buf& f32(const char* k) { return in(k, DType::F32); }
  // An output poisoned with NaN, or initialised from args[init] when given (accumulating ops).
  Buf& output(size_t n, DType dt, const char* init = nullptr) {
    if (init && has(init)) return in(init, dt);
    Buf& b = keep(be.alloc(n, dt));
    std::vector<float> nan(n, std::numeric_limits<float>::quiet_NaN());
    be.upload(b, nan.data(), n, DType::F32);
    return b;
  }
  Buf& out_act(size_t n, const char* init = nullptr) { return output(n, be.act_dtype(), init); }
  Buf& out_f32(size_t n, const char* init = nullptr) { return output(n, DType::F32, init); }
  // args[k] (a Float32Array [N*K] on the host) converted to args.precision ('bf16' | 'int8') as a
  // model's load would, in the given layout. The matrix stays on the host (the CPU backend's only).
  LowpMatrix& lowp(const char* k, LowpMatrix::Layout layout, int N, int K) {
    Napi::Value v = arg(k);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Error(std::string("backendOp: '") + k + "' must be a Float32Array");
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    if (a.ElementLength() != size_t(N) * size_t(K))
      throw Error(std::string("backendOp: '") + k + "' must have N*K elements");
    const float* w = a.Data();
    lowps.emplace_back();
    lowp_pack(lowps.back(), parse_precision(arg("precision").As<Napi::String>().Utf8Value()), layout, N, K,
              [&](int64_t n, float* out) { std::copy(w + n * K, w + (n + 1) * K, out); });
    return lowps.back();
  }
  std::deque<LowpMatrix> lowps;
  // Batch from args.cu (Int32Array of cumulative lengths); positions restart per sequence.
  Batch batch() {
    Napi::Value cv = arg("cu");
    if (!cv.IsTypedArray() || cv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Error("backendOp: 'cu' must be an Int32Array");
    Napi::Int32Array cu = cv.As<Napi::Int32Array>();
    const int B = int(cu.ElementLength()) - 1;
    // cu indexes pos[] below: it must hold at least [0] and never decrease
    if (B < 0 || cu[0] != 0) throw Error("backendOp: 'cu' must start with 0");
    for (int b = 0; b < B; b++)
      if (cu[b + 1] < cu[b]) throw Error("backendOp: 'cu' must be non-decreasing");
    Batch bt;
    bt.B = B;
    bt.T = cu[B];
    std::vector<int32_t> pos(size_t(bt.T));
    for (int b = 0; b < B; b++) {
      for (int i = cu[b]; i < cu[b + 1]; i++) pos[size_t(i)] = i - cu[b];
    }
    bt.cu_seqlens = keep(be.alloc(size_t(B) + 1, DType::I32));
    be.upload(bt.cu_seqlens, cu.Data(), size_t(B) + 1, DType::I32);
    bt.positions = keep(be.alloc(std::max<size_t>(1, pos.size()), DType::I32));
    if (!pos.empty()) be.upload(bt.positions, pos.data(), pos.size(), DType::I32);
    const std::vector<int32_t> tiles = attention_schedule(bt, cu.Data(), B);
    bt.tiles = keep(be.alloc(std::max<size_t>(1, tiles.size()), DType::I32));
    if (!tiles.empty()) be.upload(bt.tiles, tiles.data(), tiles.size(), DType::I32);
    return bt;
  }
  void result(const char* k, const Buf& b) {
    be.synchronize();
    Napi::Float32Array a = Napi::Float32Array::New(env, b.numel);
    be.download(b, a.Data());
    out.Set(k, a);
  }
};

// One runner per op of core/ops.def, named run_<op>: the table below is generated from that list, so
// an op without a runner does not compile.
void run_embedding(Ctx& c) {
  const int T = c.num("T"), H = c.num("H");
  Buf& ids = c.in("ids", DType::I32);
  Buf& table = c.param("table");
  Buf& out = c.out_act(size_t(T) * H);
  c.be.embedding(ids, T, table, H, out);
  c.result("out", out);
}

void run_rmsnorm(Ctx& c) {
  const int T = c.num("T"), H = c.num("H");
  Buf &x = c.act("x"), &w = c.param("w");
  Buf* residual = c.has("residual") ? &c.act("residual") : nullptr;
  Buf &y = c.out_act(size_t(T) * H), &rstd = c.out_f32(size_t(T));
  c.be.rmsnorm(x, residual, w, T, H, c.real("eps"), y, rstd);
  c.result("y", y);
  c.result("rstd", rstd);
  if (residual) c.result("x", x);  // the sum
}

void run_linear(Ctx& c) {
  const int T = c.num("T"), K = c.num("K"), N = c.num("N");
  Buf &x = c.act("x"), &W = c.param("W");
  Buf* bias = c.has("bias") ? &c.param("bias") : nullptr;
  Buf& y = c.out_act(size_t(T) * N);
  c.be.linear(x, W, bias, T, K, N, y);
  c.result("y", y);
}

void run_rope(Ctx& c) {
  const int T = c.num("T");
  Buf &x = c.act("x"), &pos = c.in("positions", DType::I32);
  c.be.rope(x, pos, T, c.num("heads"), c.num("hd"), c.real("theta"), c.real("sign"));
  c.result("x", x);
}

void run_attention(Ctx& c) {
  Batch bt = c.batch();
  const int nh = c.num("nh"), nkv = c.num("nkv"), hd = c.num("hd");
  Buf &q = c.act("q"), &k = c.act("k"), &v = c.act("v");
  Buf &out = c.out_act(size_t(bt.T) * nh * hd), &lse = c.out_f32(size_t(nh) * bt.T);
  c.be.attention(q, k, v, bt, nh, nkv, hd, out, lse);
  c.result("out", out);
  c.result("lse", lse);
}

void run_swiglu(Ctx& c) {
  const size_t n = size_t(c.num("n"));
  Buf &g = c.act("gate"), &u = c.act("up"), &out = c.out_act(n);
  c.be.swiglu(g, u, n, out);
  c.result("out", out);
}

void run_add_inplace(Ctx& c) {
  Buf &x = c.act("x"), &y = c.act("y");
  c.be.add_inplace(x, y, x.numel);
  c.result("x", x);
}

void run_pool(Ctx& c) {
  Batch bt = c.batch();
  const int P = c.num("P");
  Buf& x = c.act("x");
  Buf& out = c.out_f32(size_t(bt.B) * P);
  c.be.pool(x, bt, P, Pooling(c.num("mode")), out);
  c.result("out", out);
}

void run_l2norm(Ctx& c) {
  const int B = c.num("B"), P = c.num("P");
  Buf& x = c.f32("x");
  Buf &y = c.out_f32(size_t(B) * P), &norm = c.out_f32(size_t(B));
  c.be.l2norm(x, B, P, c.flag("normalize", true), y, norm);
  c.result("y", y);
  c.result("norm", norm);
}

// args.precision: 'bf16' | 'int8'; W / table are fp32 on the host, converted as at load.
void run_linear_lowp(Ctx& c) {
  const int T = c.num("T"), K = c.num("K"), N = c.num("N");
  Buf& x = c.f32("x");
  const LowpMatrix& W = c.lowp("W", LowpMatrix::Layout::Gemm, N, K);
  Buf* bias = c.has("bias") ? &c.f32("bias") : nullptr;
  Buf& y = c.out_f32(size_t(T) * N);
  c.be.linear_lowp(x, W, bias, T, y);
  c.result("y", y);
}

void run_embedding_lowp(Ctx& c) {
  const int T = c.num("T"), H = c.num("H"), V = c.num("V");
  Buf& ids = c.in("ids", DType::I32);
  const LowpMatrix& table = c.lowp("table", LowpMatrix::Layout::Rows, V, H);
  Buf& out = c.out_f32(size_t(T) * H);
  c.be.embedding_lowp(ids, T, table, out);
  c.result("out", out);
}

void run_embedding_backward(Ctx& c) {
  const int T = c.num("T"), H = c.num("H");
  Buf &ids = c.in("ids", DType::I32), &dout = c.act("dout"), &dtable = c.f32("dtable");
  c.be.embedding_backward(ids, T, dout, H, dtable);
  c.result("dtable", dtable);
}

void run_rmsnorm_backward(Ctx& c) {
  const int T = c.num("T"), H = c.num("H");
  const bool acc = c.flag("accumulate"), acc_dw = c.flag("accumulateDw", true);
  Buf &x = c.act("x"), &w = c.param("w"), &rstd = c.f32("rstd"), &dy = c.act("dy");
  Buf& dx = c.out_act(size_t(T) * H, acc ? "dx" : nullptr);
  Buf& dw = c.f32("dw");
  c.be.rmsnorm_backward(x, w, rstd, dy, T, H, dx, dw, acc, acc_dw);
  c.result("dx", dx);
  c.result("dw", dw);
}

void run_linear_backward(Ctx& c) {
  const int T = c.num("T"), K = c.num("K"), N = c.num("N");
  const bool acc = c.flag("accumulate"), want_dx = c.flag("withDx", true), acc_dw = c.flag("accumulateDw", true);
  Buf &x = c.act("x"), &W = c.param("W"), &dy = c.act("dy");
  Buf* dx = want_dx ? &c.out_act(size_t(T) * K, acc ? "dx" : nullptr) : nullptr;
  Buf& dW = c.f32("dW");
  Buf* db = c.has("dbias") ? &c.f32("dbias") : nullptr;
  c.be.linear_backward(x, W, dy, T, K, N, dx, dW, db, acc, acc_dw);
  if (dx) c.result("dx", *dx);
  c.result("dW", dW);
  if (db) c.result("dbias", *db);
}

void run_attention_backward(Ctx& c) {
  Batch bt = c.batch();
  const int nh = c.num("nh"), nkv = c.num("nkv"), hd = c.num("hd");
  Buf &q = c.act("q"), &k = c.act("k"), &v = c.act("v"), &o = c.act("out"), &dout = c.act("dout");
  Buf& lse = c.f32("lse");
  Buf& dq = c.out_act(size_t(bt.T) * nh * hd);
  Buf &dk = c.out_act(size_t(bt.T) * nkv * hd), &dv = c.out_act(size_t(bt.T) * nkv * hd);
  c.be.attention_backward(q, k, v, o, lse, dout, bt, nh, nkv, hd, dq, dk, dv);
  c.result("dq", dq);
  c.result("dk", dk);
  c.result("dv", dv);
}

void run_swiglu_backward(Ctx& c) {
  const size_t n = size_t(c.num("n"));
  Buf &g = c.act("gate"), &u = c.act("up"), &d = c.act("dout");
  Buf &dg = c.out_act(n), &du = c.out_act(n);
  c.be.swiglu_backward(g, u, d, n, dg, du);
  c.result("dgate", dg);
  c.result("dup", du);
}

void run_pool_backward(Ctx& c) {
  Batch bt = c.batch();
  const int P = c.num("P");
  Buf& dout = c.f32("dout");
  Buf& dx = c.out_act(size_t(bt.T) * P);
  c.be.pool_backward(dout, bt, P, Pooling(c.num("mode")), dx);
  c.result("dx", dx);
}

void run_l2norm_backward(Ctx& c) {
  const int B = c.num("B"), P = c.num("P");
  Buf &y = c.f32("y"), &norm = c.f32("norm"), &dy = c.f32("dy");
  Buf& dx = c.out_f32(size_t(B) * P);
  c.be.l2norm_backward(y, norm, dy, B, P, c.flag("normalize", true), dx);
  c.result("dx", dx);
}

void run_infonce(Ctx& c) {
  const int B = c.num("B"), G = c.num("G"), P = c.num("P");
  Buf &q = c.f32("q"), &p = c.f32("p");
  Buf &scores = c.out_f32(size_t(B) * B * G), &dq = c.out_f32(size_t(B) * P), &dp = c.out_f32(size_t(B) * G * P);
  const float loss = c.be.infonce(q, p, B, G, P, c.real("temperature"), c.flag("inBatch", true), scores, dq, dp);
  c.out.Set("value", double(loss));
  c.result("scores", scores);
  c.result("dq", dq);
  c.result("dp", dp);
}

void run_sumsq(Ctx& c) {
  Buf& x = c.f32("x");
  c.out.Set("value", c.be.sumsq(x, x.numel));
}

void run_scale(Ctx& c) {
  Buf& x = c.f32("x");
  c.be.scale(x, x.numel, c.real("s"));
  c.result("x", x);
}

// withShadow (a backend whose parameters are not F32): the master w as TrainState holds it there,
// halves (core/master_halves.h): `shadow` the parameters, w the low halves; "w" comes back joined.
void run_adamw(Ctx& c) {
  Buf &g = c.f32("g"), &m = c.f32("m"), &v = c.f32("v");
  const bool halves = c.flag("withShadow") && c.be.param_dtype() != DType::F32;
  Buf* shadow = nullptr;
  Buf* w = nullptr;
  if (halves) {
    Napi::Float32Array host = c.arg("w").As<Napi::Float32Array>();
    shadow = &c.keep(c.be.alloc(host.ElementLength(), c.be.param_dtype()));
    w = &c.keep(c.be.alloc(host.ElementLength(), DType::U16));
    c.be.upload_master(*shadow, *w, host.Data(), host.ElementLength(), DType::F32);
  } else {
    w = &c.f32("w");
  }
  const size_t n = w->numel;
  c.be.adamw(*w, g, m, v, n, c.real("lr"), c.real("beta1"), c.real("beta2"), c.real("eps"),
             c.real("weightDecay"), c.num("step"), shadow);
  if (halves) {
    c.be.synchronize();
    Napi::Float32Array joined = Napi::Float32Array::New(c.env, n);
    c.be.download_master(*shadow, *w, joined.Data());
    c.out.Set("w", joined);
    c.result("shadow", *shadow);
  } else {
    c.result("w", *w);
  }
  c.result("m", m);
  c.result("v", v);
}

using OpFn = void (*)(Ctx&);

const std::map<std::string, OpFn>& ops() {
  static const std::map<std::string, OpFn> table = {
#define L2E_OP(name, ret, params, args) {#name, run_##name},
#include "core/ops.def"
  };
  return table;
}

Napi::Value BackendOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject())
    throw Napi::TypeError::New(env, "backendOp(device, op, args)");
  const std::string device = info[0].As<Napi::String>().Utf8Value(), op = info[1].As<Napi::String>().Utf8Value();
  try {
    auto it = ops().find(op);
    if (it == ops().end()) throw Error("backendOp: unknown op '" + op + "'");
    const Napi::Object args = info[2].As<Napi::Object>();
    auto str = [&](const char* name) {
      const Napi::Value v = args.Get(name);
      if (!v.IsUndefined() && !v.IsString()) throw Error(std::string("backendOp: '") + name + "' must be a string");
      return v.IsUndefined() ? std::string() : v.As<Napi::String>().Utf8Value();
    };
    Backend& be = backend_for(device, str("attentionKernel"), str("attentionVariant"));
    Ctx c{env, be, info[2].As<Napi::Object>(), Napi::Object::New(env), {}, {}, {}};
    it->second(c);
    be.synchronize();
    return c.out;
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// backendOps() -> the op names of core/ops.def (those backendOp accepts), in table order.
Napi::Value BackendOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
#define L2E_OP(name, ret, params, args) a.Set(i++, #name);
#include "core/ops.def"
  return a;
}

void register_backend_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("backendOp", Napi::Function::New(env, BackendOp, "backendOp"));
  exports.Set("backendOps", Napi::Function::New(env, BackendOps, "backendOps"));
}

}  // namespace

L2E_REGISTER(backend_ops, register_backend_ops);

}  // namespace l2e
