// The op table: every backend (cpu/, cuda/) implements these, and the Llama model (core/model*.cpp)
// is written once over them. Shapes are row-major; T = tokens of a packed batch (sequences
// concatenated, no padding), B = sequences, cu_seqlens[B+1] their cumulative offsets, H = hidden,
// nh / nkv = query / key-value heads, hd = head dim, I = MLP width, P = embedding width.
//
// Activation buffers use the backend's activation dtype (F32 on the CPU, BF16 on CUDA); norms'
// reciprocal std, softmax log-sum-exp, pooled and normalised embeddings (and their gradients),
// losses, weight gradients and optimizer state are always F32.
// "accumulate" arguments add into the output instead of overwriting it (gradients of shared inputs).
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"

namespace l2e {

// A packed batch as the ops see it (all buffers on the backend's device).
struct Batch {
  int B = 0;          // sequences
  int T = 0;          // total tokens
  int max_len = 0;    // longest sequence
  Buf ids;            // I32 [T]
  Buf positions;      // I32 [T], restart at 0 per sequence
  Buf cu_seqlens;     // I32 [B+1]
};

enum class Pooling : int { Mean = 0, Cls = 1 };

struct LowpMatrix;  // a weight matrix held in bf16 / int8 for inference (core/lowp.h)

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType act_dtype() const = 0;
  // dtype of the model's parameter buffer (CPU: F32; CUDA: BF16, trained through F32 master weights
  // that TrainState keeps and AdamW's `shadow` argument copies back).
  virtual DType param_dtype() const { return DType::F32; }

  // ---- memory ----
  virtual Buf alloc(size_t numel, DType dtype) = 0;  // contents undefined
  virtual void free(Buf& b) = 0;                     // sets b.ptr = nullptr
  virtual void zero(Buf& b) = 0;
  // Host <-> backend copies; host data is always F32 / I32 and converted to b.dtype.
  virtual void upload(Buf& dst, const void* host, size_t numel, DType host_dtype) = 0;
  virtual void download(const Buf& src, float* host) = 0;  // src F32/BF16/F16 -> float
  virtual void download_i32(const Buf& src, int32_t* host) = 0;
  virtual void copy(Buf& dst, const Buf& src) = 0;         // same numel, converts dtype
  virtual void synchronize() {}

  // ---- forward ----
  // out[t,:] = table[ids[t],:]
  virtual void embedding(const Buf& ids, int T, const Buf& table, int H, Buf& out) = 0;
  // y = x / sqrt(mean(x^2) + eps) * w; rstd[t] = 1/sqrt(mean(x_t^2)+eps) saved for backward.
  virtual void rmsnorm(const Buf& x, const Buf& w, int T, int H, float eps, Buf& y, Buf& rstd) = 0;
  // y[T,N] = x[T,K] W[N,K]^T (+ bias[N]) (+ y if accumulate): nn.Linear.
  virtual void linear(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y,
                      bool accumulate = false) = 0;
  // In-place rotary embedding (HF rotate-half): for each head, pair (i, i+hd/2) with angle
  // pos * inv_freq[i], inv_freq[i] = 1 / theta^(2i/hd). sign = -1 applies the inverse rotation
  // (the backward pass: R(θ)^T = R(-θ)).
  virtual void rope(Buf& x, const Buf& positions, int T, int heads, int hd, float theta,
                    float sign = 1.0f) = 0;
  // Causal var-len attention with GQA (query head h reads kv head h / (nh/nkv)), scale 1/sqrt(hd),
  // online softmax (no T x T matrix). q [T, nh*hd], k,v [T, nkv*hd], out [T, nh*hd],
  // lse [nh, T] F32 = log sum_j exp(s_ij) of each query row (saved for backward).
  virtual void attention(const Buf& q, const Buf& k, const Buf& v, const Batch& batch, int nh,
                         int nkv, int hd, Buf& out, Buf& lse) = 0;
  // out = silu(gate) * up, elementwise over n.
  virtual void swiglu(const Buf& gate, const Buf& up, size_t n, Buf& out) = 0;
  // x += y, elementwise over n.
  virtual void add_inplace(Buf& x, const Buf& y, size_t n) = 0;
  // out[b,:] = mean over the tokens of sequence b of x (Mean) or its first token (Cls). x [T,P].
  virtual void pool(const Buf& x, const Batch& batch, int P, Pooling mode, Buf& out) = 0;
  // y[b,:] = x[b,:] / max(||x[b,:]||, 1e-12); norm[b] saved (F32). If !normalize, y = x, norm = 1.
  virtual void l2norm(const Buf& x, int B, int P, bool normalize, Buf& y, Buf& norm) = 0;

  // ---- reduced-precision inference (core/lowp.h; the CPU backend only) ----
  // y[T,N] = x[T,K] W^T (+ bias[N]) with W (Gemm layout) in bf16 / int8.
  virtual void linear_lowp(const Buf& x, const LowpMatrix& W, const Buf* bias, int T, Buf& y) {
    (void)x, (void)W, (void)bias, (void)T, (void)y;
    throw Error(name() + " backend: bf16 / int8 weights are CPU-only (load with precision 'fp32')");
  }
  // out[t,:] = table[ids[t],:] from a Rows-layout table.
  virtual void embedding_lowp(const Buf& ids, int T, const LowpMatrix& table, Buf& out) {
    (void)ids, (void)T, (void)table, (void)out;
    throw Error(name() + " backend: bf16 / int8 weights are CPU-only (load with precision 'fp32')");
  }

  // ---- backward (filled in by the training work; see core/model_backward.cpp) ----
  virtual void embedding_backward(const Buf& ids, int T, const Buf& dout, int H, Buf& dtable) = 0;
  virtual void rmsnorm_backward(const Buf& x, const Buf& w, const Buf& rstd, const Buf& dy, int T,
                                int H, Buf& dx, Buf& dw, bool accumulate_dx) = 0;
  // dx (+)= dy W ; dW += dy^T x ; dbias += sum_t dy (when dbias != nullptr).
  virtual void linear_backward(const Buf& x, const Buf& W, const Buf& dy, int T, int K, int N,
                               Buf* dx, Buf& dW, Buf* dbias, bool accumulate_dx) = 0;
  virtual void attention_backward(const Buf& q, const Buf& k, const Buf& v, const Buf& out,
                                  const Buf& lse, const Buf& dout, const Batch& batch, int nh,
                                  int nkv, int hd, Buf& dq, Buf& dk, Buf& dv) = 0;
  virtual void swiglu_backward(const Buf& gate, const Buf& up, const Buf& dout, size_t n,
                               Buf& dgate, Buf& dup) = 0;
  virtual void pool_backward(const Buf& dout, const Batch& batch, int P, Pooling mode,
                             Buf& dx) = 0;
  virtual void l2norm_backward(const Buf& y, const Buf& norm, const Buf& dy, int B, int P,
                               bool normalize, Buf& dx) = 0;

  // ---- loss and optimizer ----
  // InfoNCE: scores[i,j] = q_i . p_j / temperature over j in all B*G passages (in_batch) or only
  // query i's own group; target of query i = i*G; loss = mean_i CE. Writes dq [B,P], dp [B*G,P]
  // (d loss / d embeddings) and scores [B, B*G] (F32, -inf outside the scored set). Returns loss.
  virtual float infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature,
                        bool in_batch, Buf& scores, Buf& dq, Buf& dp) = 0;
  // sum of squares of an F32 buffer, in double.
  virtual double sumsq(const Buf& x, size_t n) = 0;
  virtual void scale(Buf& x, size_t n, float s) = 0;
  // PyTorch AdamW on F32 master weights w with grads g and moments m, v; step is 1-based.
  // If shadow is non-null (CUDA: the bf16 copy used by the forward), it is written in the same pass.
  virtual void adamw(Buf& w, const Buf& g, Buf& m, Buf& v, size_t n, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int step, Buf* shadow) = 0;
};

struct CudaStatus {
  bool compiled = false;  // this binary has the CUDA backend
  bool usable = false;    // a GPU, its driver and cuBLAS were found
  std::string reason;     // why not usable (empty when usable)
};
// Probes the CUDA backend without creating one (cheap; used to choose the CUDA prebuilt at load time).
CudaStatus cuda_status();

std::unique_ptr<Backend> make_cpu_backend();
// Throws Error with a clear message when the CUDA backend is not compiled in or no GPU is usable.
std::unique_ptr<Backend> make_cuda_backend();

}  // namespace l2e
