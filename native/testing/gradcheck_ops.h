// The ops that gradcheck_binding.cpp checks, one small struct each: random inputs drawn from a seed,
// and forward / backward written once as templates so the same case runs in double (against finite
// differences) and in float (against the double run). Each case is the scalar objective
// L = sum(R * forward(inputs)) with a random R; backward(inputs, R) must return dL/d(each input).
//
// Buffers that a backward kernel must overwrite are pre-filled with NaN (a kernel that reads them
// would leak NaN into the gradients); buffers that it must accumulate into start at `base` and
// have it subtracted afterwards. `aux` collects self-consistency errors (accumulate vs overwrite
// variants, optional outputs left out) that finite differences cannot see.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cpu/kernels.h"

namespace l2e {
namespace gradcheck {

template <class S>
using Vec = std::vector<S>;
template <class S>
using Tensors = std::vector<Vec<S>>;

// splitmix64: reproducible across platforms, unlike std:: distributions.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (2.0 / 9007199254740992.0) - 1.0; }  // [-1, 1)
  int randint(int lo, int hi) { return lo + int(next() % uint64_t(hi - lo + 1)); }       // [lo, hi]
  Vec<double> vec(size_t n, double scale = 1.0, double offset = 0.0) {
    Vec<double> v(n);
    for (auto& x : v) x = offset + scale * uniform();
    return v;
  }
};

template <class S>
Vec<S> cast(const Vec<double>& v) {
  return Vec<S>(v.begin(), v.end());
}
template <class S>
Vec<S> nans(size_t n) {
  return Vec<S>(n, std::numeric_limits<S>::quiet_NaN());
}
// Start value of accumulated gradients: 0.5 in double (checks that kernels add, not overwrite);
// 0 in float so the float-vs-double comparison is not blurred by the subtraction.
template <class S>
S accum_base() {
  return sizeof(S) == sizeof(double) ? S(0.5) : S(0);
}
template <class S>
void unbase(Vec<S>& v) {
  for (auto& x : v) x -= accum_base<S>();
}
template <class S>
double max_abs_diff(const Vec<S>& a, const Vec<S>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= m)) m = d;  // NaN propagates
  }
  return m;
}

// A packed var-len batch: sequences of the given lengths, positions restarting at 0.
struct VarLen {
  int B = 0, T = 0;
  std::vector<int32_t> cu, pos;
  explicit VarLen(const std::vector<int>& lens) {
    B = int(lens.size());
    cu.push_back(0);
    for (int L : lens) {
      for (int i = 0; i < L; i++) pos.push_back(i);
      cu.push_back(cu.back() + L);
    }
    T = cu.back();
  }
};
inline std::vector<int> random_lengths(Rng& r, int n, int lo, int hi) {
  std::vector<int> lens(static_cast<size_t>(n));
  for (auto& L : lens) L = r.randint(lo, hi);
  return lens;
}

struct EmbeddingCase {
  static constexpr int V = 5, H = 6;  // few rows: ids repeat, so rows gather several tokens
  VarLen b;
  std::vector<int32_t> ids;
  std::vector<std::string> names{"table"};
  Tensors<double> init;
  explicit EmbeddingCase(Rng& r) : b(random_lengths(r, 3, 1, 7)) {
    for (int t = 0; t < b.T; t++) ids.push_back(r.randint(0, V - 1));
    init = {r.vec(static_cast<size_t>(V) * H)};
  }
  template <class S>
  Vec<S> forward(const Tensors<S>& in) const {
    Vec<S> out(static_cast<size_t>(b.T) * H);
    cpu::embedding_fwd(ids.data(), b.T, in[0].data(), H, out.data());
    return out;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>&, const Vec<S>& R, double&) const {
    Vec<S> dtable(static_cast<size_t>(V) * H, accum_base<S>());
    cpu::embedding_bwd(ids.data(), b.T, R.data(), H, dtable.data());
    unbase(dtable);
    return {dtable};
  }
};

struct RmsnormCase {
  static constexpr int H = 8;
  static constexpr float eps = 1e-5f;
  int T;
  std::vector<std::string> names{"x", "w"};
  Tensors<double> init;
  explicit RmsnormCase(Rng& r) : T(r.randint(3, 9)) { init = {r.vec(static_cast<size_t>(T) * H), r.vec(H, 0.5, 1.0)}; }
  template <class S>
  Vec<S> forward(const Tensors<S>& in, Vec<S>* rstd_out = nullptr) const {
    Vec<S> y(static_cast<size_t>(T) * H), rstd(static_cast<size_t>(T));
    cpu::rmsnorm_fwd(in[0].data(), in[1].data(), T, H, eps, y.data(), rstd.data());
    if (rstd_out) *rstd_out = rstd;
    return y;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>& in, const Vec<S>& R, double& aux) const {
    Vec<S> rstd;
    forward(in, &rstd);
    Vec<S> dx = nans<S>(in[0].size()), dw(H, accum_base<S>());
    cpu::rmsnorm_bwd(in[0].data(), in[1].data(), rstd.data(), R.data(), T, H, dx.data(), dw.data(), false, true);
    unbase(dw);
    // accumulate_dx must add onto what dx holds; a written dw never reads what it held (NaN)
    Vec<S> dx_acc(dx.size(), S(0.25)), dw2(H, S(0)), dw3 = nans<S>(H);
    cpu::rmsnorm_bwd(in[0].data(), in[1].data(), rstd.data(), R.data(), T, H, dx_acc.data(), dw2.data(), true, true);
    for (auto& v : dx_acc) v -= S(0.25);
    Vec<S> dx3 = nans<S>(dx.size());
    cpu::rmsnorm_bwd(in[0].data(), in[1].data(), rstd.data(), R.data(), T, H, dx3.data(), dw3.data(), false, false);
    aux = std::max({aux, max_abs_diff(dx_acc, dx), max_abs_diff(dw2, dw), max_abs_diff(dw3, dw)});
    return {dx, dw};
  }
};

struct LinearCase {
  int T, K, N;
  std::vector<std::string> names{"x", "W", "bias"};
  Tensors<double> init;
  LinearCase(Rng& r, int T_, int K_, int N_) : T(T_), K(K_), N(N_) {
    init = {r.vec(static_cast<size_t>(T) * K), r.vec(static_cast<size_t>(N) * K, 1.0 / std::sqrt(double(K))), r.vec(static_cast<size_t>(N))};
  }
  template <class S>
  Vec<S> forward(const Tensors<S>& in) const {
    Vec<S> y(static_cast<size_t>(T) * N);
    cpu::linear_fwd(in[0].data(), in[1].data(), in[2].data(), T, K, N, y.data());
    return y;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>& in, const Vec<S>& R, double& aux) const {
    Vec<S> dx = nans<S>(in[0].size()), dW(in[1].size(), accum_base<S>()), db(in[2].size(), accum_base<S>());
    cpu::linear_bwd(in[0].data(), in[1].data(), R.data(), T, K, N, dx.data(), dW.data(), db.data(), false, true);
    unbase(dW);
    unbase(db);
    // accumulate_dx adds; dx and dbias may be left out without changing dW
    Vec<S> dx_acc(dx.size(), S(0.25)), dW2(dW.size(), S(0));
    cpu::linear_bwd(in[0].data(), in[1].data(), R.data(), T, K, N, dx_acc.data(), dW2.data(), (S*)nullptr, true, true);
    for (auto& v : dx_acc) v -= S(0.25);
    Vec<S> dW3(dW.size(), S(0));
    cpu::linear_bwd(in[0].data(), in[1].data(), R.data(), T, K, N, (S*)nullptr, dW3.data(), (S*)nullptr, false, true);
    // written (not accumulated) dW and dbias never read what they held (NaN)
    Vec<S> dW4 = nans<S>(dW.size()), db4 = nans<S>(db.size());
    cpu::linear_bwd(in[0].data(), in[1].data(), R.data(), T, K, N, (S*)nullptr, dW4.data(), db4.data(), false, false);
    aux = std::max({aux, max_abs_diff(dx_acc, dx), max_abs_diff(dW2, dW), max_abs_diff(dW3, dW), max_abs_diff(dW4, dW),
                    max_abs_diff(db4, db)});
    return {dx, dW, db};
  }
};

// Rotary embedding is a rotation per position, so its backward is the inverse rotation (sign -1).
struct RopeCase {
  static constexpr int heads = 3, hd = 8;
  static constexpr float theta = 10000.0f;
  int T;
  std::vector<int32_t> pos;
  std::vector<std::string> names{"x"};
  Tensors<double> init;
  explicit RopeCase(Rng& r) : T(r.randint(3, 9)) {
    for (int t = 0; t < T; t++) pos.push_back(r.randint(0, 4095));  // large angles too
    init = {r.vec(static_cast<size_t>(T) * heads * hd)};
  }
  template <class S>
  Vec<S> forward(const Tensors<S>& in) const {
    Vec<S> y = in[0];
    cpu::rope_fwd(y.data(), pos.data(), T, heads, hd, theta, 1.0f);
    return y;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>&, const Vec<S>& R, double&) const {
    Vec<S> dx = R;
    cpu::rope_fwd(dx.data(), pos.data(), T, heads, hd, theta, -1.0f);
    return {dx};
  }
};

struct AttentionCase {
  int nh, nkv, hd;
  VarLen b;
  std::vector<std::string> names{"q", "k", "v"};
  Tensors<double> init;
  AttentionCase(Rng& r, std::vector<int> lens, int nh_, int nkv_, int hd_)
      : nh(nh_), nkv(nkv_), hd(hd_), b(lens) {
    init = {r.vec(static_cast<size_t>(b.T) * nh * hd), r.vec(static_cast<size_t>(b.T) * nkv * hd), r.vec(static_cast<size_t>(b.T) * nkv * hd)};
  }
  template <class S>
  Vec<S> forward(const Tensors<S>& in, Vec<S>* lse_out = nullptr) const {
    Vec<S> out(static_cast<size_t>(b.T) * nh * hd), lse(static_cast<size_t>(nh) * b.T);
    cpu::attention_fwd(in[0].data(), in[1].data(), in[2].data(), b.cu.data(), b.B, nh, nkv, hd, out.data(),
                       lse.data());
    if (lse_out) *lse_out = lse;
    return out;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>& in, const Vec<S>& R, double&) const {
    Vec<S> lse;
    const Vec<S> out = forward(in, &lse);
    Vec<S> dq = nans<S>(in[0].size()), dk = nans<S>(in[1].size()), dv = nans<S>(in[2].size());
    cpu::attention_bwd(in[0].data(), in[1].data(), in[2].data(), out.data(), lse.data(), R.data(), b.cu.data(),
                       b.B, nh, nkv, hd, dq.data(), dk.data(), dv.data());
    return {dq, dk, dv};
  }
};

struct SwigluCase {
  static constexpr int n = 40;
  std::vector<std::string> names{"gate", "up"};
  Tensors<double> init;
  explicit SwigluCase(Rng& r) { init = {r.vec(n, 4.0), r.vec(n)}; }
  template <class S>
  Vec<S> forward(const Tensors<S>& in) const {
    Vec<S> out(n);
    cpu::swiglu_fwd(in[0].data(), in[1].data(), n, out.data());
    return out;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>& in, const Vec<S>& R, double&) const {
    Vec<S> dg = nans<S>(n), du = nans<S>(n);
    cpu::swiglu_bwd(in[0].data(), in[1].data(), R.data(), n, dg.data(), du.data());
    return {dg, du};
  }
};

struct PoolCase {
  static constexpr int P = 5;
  int mode;  // 0 mean, 1 cls
  VarLen b;
  std::vector<std::string> names{"x"};
  Tensors<double> init;
  PoolCase(Rng& r, int mode_) : mode(mode_), b(random_lengths(r, 3, 1, 7)) { init = {r.vec(static_cast<size_t>(b.T) * P)}; }
  template <class S>
  Vec<S> forward(const Tensors<S>& in) const {
    Vec<S> out(static_cast<size_t>(b.B) * P);
    cpu::pool_fwd(in[0].data(), b.cu.data(), b.B, P, mode, out.data());
    return out;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>&, const Vec<S>& R, double&) const {
    Vec<S> dx = nans<S>(static_cast<size_t>(b.T) * P);
    cpu::pool_bwd(R.data(), b.cu.data(), b.B, P, mode, dx.data());
    return {dx};
  }
};

struct L2normCase {
  static constexpr int B = 4, P = 6;
  bool normalize;
  std::vector<std::string> names{"x"};
  Tensors<double> init;
  L2normCase(Rng& r, bool normalize_) : normalize(normalize_) { init = {r.vec(static_cast<size_t>(B) * P)}; }
  template <class S>
  Vec<S> forward(const Tensors<S>& in, Vec<S>* norm_out = nullptr) const {
    Vec<S> y(static_cast<size_t>(B) * P), norm(B);
    cpu::l2norm_fwd(in[0].data(), B, P, normalize, y.data(), norm.data());
    if (norm_out) *norm_out = norm;
    return y;
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>& in, const Vec<S>& R, double&) const {
    Vec<S> norm;
    const Vec<S> y = forward(in, &norm);
    Vec<S> dx = nans<S>(static_cast<size_t>(B) * P);
    cpu::l2norm_bwd(y.data(), norm.data(), R.data(), B, P, normalize, dx.data());
    return {dx};
  }
};

// The loss is already a scalar: forward returns [loss], and R[0] scales its gradients.
struct InfonceCase {
  static constexpr int B = 3, G = 3, P = 6;
  static constexpr double tau = 0.05;
  bool in_batch;
  std::vector<std::string> names{"q", "p"};
  Tensors<double> init;
  InfonceCase(Rng& r, bool in_batch_) : in_batch(in_batch_) {
    // |q.p| stays ~0.1, so the logits q.p/tau are O(1) and the softmax is not saturated
    init = {r.vec(static_cast<size_t>(B) * P, 0.3), r.vec(static_cast<size_t>(B) * G * P, 0.3)};
  }
  template <class S>
  Vec<S> forward(const Tensors<S>& in) const {
    Vec<S> scores(static_cast<size_t>(B) * B * G), dq(in[0].size()), dp(in[1].size());
    const S loss = cpu::infonce(in[0].data(), in[1].data(), B, G, P, S(tau), in_batch, scores.data(), dq.data(),
                                dp.data());
    return {loss};
  }
  template <class S>
  Tensors<S> backward(const Tensors<S>& in, const Vec<S>& R, double&) const {
    Vec<S> scores(static_cast<size_t>(B) * B * G), dq = nans<S>(in[0].size()), dp = nans<S>(in[1].size());
    cpu::infonce(in[0].data(), in[1].data(), B, G, P, S(tau), in_batch, scores.data(), dq.data(), dp.data());
    for (auto& x : dq) x *= R[0];
    for (auto& x : dp) x *= R[0];
    return {dq, dp};
  }
};

}  // namespace gradcheck
}  // namespace l2e
