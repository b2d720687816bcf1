// The Llama2 embedding model, written once over the op table (core/backend.h):
//   tokens -> embed -> [RMSNorm -> attention (rotary, causal, GQA) -> +residual ->
//   RMSNorm -> SwiGLU MLP -> +residual] x L -> RMSNorm -> dense (+bias) -> pool -> L2 norm
// Parameters live in ONE buffer (and gradients / optimizer moments in buffers of the same layout),
// each tensor at a fixed offset, in the canonical order of param_layout().
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace l2e {

struct ModelConfig {
  int vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int dense = 0;  // width of dense_layer (the embedding size P)
  float rms_eps = 1e-5f, rope_theta = 10000.0f;
  Pooling pooling = Pooling::Mean;
  bool normalized = true;
  void validate() const;  // throws Error naming the field
};

struct ParamInfo {
  std::string name;          // HF name without the "model." prefix, e.g. "layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;
  size_t offset = 0;         // element offset inside the parameter buffer
  size_t numel = 0;
};

std::vector<ParamInfo> param_layout(const ModelConfig& c);

// Offsets of one layer's tensors inside the parameter buffer.
struct LayerParams {
  size_t in_norm, q, k, v, o, post_norm, gate, up, down;
};

// Activations of one forward pass. With keep = true every layer's buffers are kept for backward;
// otherwise one layer's set is reused by all layers (encode).
struct LayerActs {
  Buf x_in;    // [T,H] residual stream entering the layer
  Buf rstd1;   // [T]
  Buf h1;      // [T,H] input_layernorm(x_in)
  Buf q;       // [T,nh*hd] after rotary
  Buf k, v;    // [T,nkv*hd] (k after rotary)
  Buf attn;    // [T,nh*hd] attention output (before o_proj)
  Buf lse;     // [nh,T] F32
  Buf x_mid;   // [T,H] x_in + o_proj(attn)
  Buf rstd2;   // [T]
  Buf h2;      // [T,H] post_attention_layernorm(x_mid)
  Buf gate, up, act;  // [T,I]; act = silu(gate) * up
};

struct Activations {
  int T = 0, B = 0;
  bool keep = false;
  std::vector<LayerActs> layers;
  Buf x_last;  // [T,H] residual stream after the last layer
  Buf rstd_f;  // [T]
  Buf hidden;  // [T,H] final norm output (the HF last_hidden_state)
  Buf proj;    // [T,P] dense_layer(hidden)
  Buf pooled;  // [B,P] F32
  Buf norm;    // [B] F32
  Buf emb;     // [B,P] F32 L2-normalised embeddings
};

class Model {
 public:
  Model(const ModelConfig& cfg, std::unique_ptr<Backend> backend);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() { return *be_; }
  const std::vector<ParamInfo>& params() const { return layout_; }
  const ParamInfo& param(const std::string& name) const;
  Buf& param_buffer() { return params_; }
  size_t num_params() const { return params_.numel; }

  // Host F32 (or BF16/F16 bits) data into the named tensor. With an F32 master attached (training
  // on a backend whose parameters are BF16), the master is written and the parameter becomes its
  // rounding, and get_param reads the master: every write and read of a weight goes through here.
  void set_param(const std::string& name, const void* host, size_t numel, DType host_dtype);
  void get_param(const std::string& name, float* host);
  // TrainState attaches its master (same layout as the parameters) and detaches it (nullptr).
  void attach_master(Buf* master) { master_ = master; }
  // Where a parameter's exact F32 values can be read again (byte offset in an F32 file), when the
  // parameters themselves hold their BF16 rounding: a master created later starts from those values.
  // load_tensor records it; any other write of the parameter forgets it.
  struct F32Source {
    std::string path;
    uint64_t offset = 0;
  };
  void remember_f32_source(const std::string& name, const F32Source& src) { f32_sources_[name] = src; }
  const std::map<std::string, F32Source>& f32_sources() const { return f32_sources_; }

  // Uploads ids / cu_seqlens into a device batch (positions derived: restart at 0 per sequence).
  // Validates ids < vocab and cu_seqlens monotone; throws Error naming the problem.
  Batch make_batch(const int32_t* ids, int T, const int32_t* cu_seqlens, int B);
  void free_batch(Batch& b);

  // Full forward pass into acts (allocated / resized here).
  void forward(const Batch& batch, Activations& acts, bool keep);
  void free_activations(Activations& acts);

  // Backward from d loss / d emb [B,P] into grads (same layout as params; accumulated).
  // Implemented in core/model_backward.cpp.
  void backward(const Batch& batch, Activations& acts, const Buf& d_emb, Buf& grads);


  // A view of the parameter buffer at an element offset (no ownership).
  Buf view(const Buf& base, size_t offset, size_t numel) const;

 private:
  void alloc_acts(Activations& a, int T, int B, bool keep);

  ModelConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::vector<ParamInfo> layout_;
  std::vector<LayerParams> layer_offsets_;
  size_t off_embed_ = 0, off_norm_ = 0, off_dense_w_ = 0, off_dense_b_ = 0;
  Buf params_;
  Buf* master_ = nullptr;  // owned by the TrainState, when one exists and keeps one
  std::map<std::string, F32Source> f32_sources_;
};

}  // namespace l2e
