// The Llama2 embedding model, written once over the op table (core/backend.h):
//   tokens -> embed -> [RMSNorm -> attention (rotary, causal, GQA) -> +residual ->
//   RMSNorm -> SwiGLU MLP -> +residual] x L -> RMSNorm -> dense (+bias) -> pool -> L2 norm
// Parameters live in ONE buffer (and gradients / optimizer moments in buffers of the same layout),
// each tensor at a fixed offset, in the canonical order of param_layout(). A model built with a
// bf16 / int8 precision (inference only, CPU) holds its weight matrices converted (core/lowp.h)
// and only the vectors (norms, dense bias) in that buffer, packed without the matrices' room.
// An fp32 model on the CPU that encodes holds its matrices (not the embedding table) rearranged in
// place for the GEMM (cpu/gemm.h pack_weights_inplace) until something reads them as nn.Linear's.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/lowp.h"

namespace l2e {

struct ModelConfig {
  int vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int dense = 0;  // width of dense_layer (the embedding size P)
  float rms_eps = 1e-5f, rope_theta = 10000.0f;
  Pooling pooling = Pooling::Mean;
  bool normalized = true;
  // config.json's pad_token_id, transformers' nn.Embedding padding_idx: that row of the embedding table
  // gets no gradient (tokens with the id add nothing to it); -1: none (pad_token_id null or absent)
  int pad_id = -1;
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
  Buf gate, up, act;  // [T,I]; act = silu(gate) * up (kept only for backward: encode writes it over gate)
  // Encode only (keep = false), where x_mid is x_in itself, updated in place: o_proj's output (in the
  // dead q) and the MLP's (in the dead h2), each then added to the residual stream.
  Buf o_out, mlp_out;  // [T,H]
};

struct Activations {
  int T = 0, B = 0;        // the batch of the last forward
  int capT = 0, capB = 0;  // the batch the buffers were allocated for (encode reuses them for smaller ones)
  bool keep = false;
  std::vector<Buf> owned;  // every allocation; the fields below are views into these (encode aliases some)
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
  Model(const ModelConfig& cfg, std::unique_ptr<Backend> backend, Precision precision = Precision::F32);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() { return *be_; }
  const std::vector<ParamInfo>& params() const { return layout_; }
  const ParamInfo& param(const std::string& name) const;
  // Training only: an fp32 model's parameter buffer (full layout), or Error for bf16 / int8 models.
  Buf& param_buffer();
  size_t num_params() const { return total_params_; }
  Precision precision() const { return prec_; }
  // Bytes the weights occupy as held (fp32 buffer + converted matrices).
  size_t weight_bytes() const;

  // Host F32 (or BF16/F16 bits) data into the named tensor. With an F32 master attached (training
  // on a backend whose parameters are BF16), the master is written (as halves: the parameter, its
  // rounding, and the low halves) and get_param reads it: every write and read of a weight goes through here.
  void set_param(const std::string& name, const void* host, size_t numel, DType host_dtype);
  // The same, pulling the data in pieces: read(first, count, dst) writes elements [first, first +
  // count) of the tensor (host_dtype) to dst, for count <= chunk. Whole rows of a matrix at a time,
  // so loading never holds more than one chunk of any tensor besides the model's own copy.
  using ChunkReader = std::function<void(size_t first, size_t count, void* dst)>;
  void set_param_chunked(const std::string& name, DType host_dtype, size_t chunk, const ChunkReader& read);
  void get_param(const std::string& name, float* host);
  // TrainState attaches its master's low halves (same layout as the parameters, core/master_halves.h)
  // and detaches them (nullptr).
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
  // Inference: the embeddings [B,P] of a packed batch (ids [T], cu_seqlens [B+1]) into emb, and the
  // final hidden states [T,H] into hidden unless it is null. The batch runs in groups of whole
  // sequences of at most encode_group_tokens() tokens (a longer sequence alone), reusing acts, so
  // the memory besides the weights stays bounded whatever the batch size. On a backend that can,
  // fp32 weights are first pre-packed for its GEMM, in place (undone by whatever reads them in
  // nn.Linear's layout: training, get_param, set_param).
  void encode(const int32_t* ids, int T, const int32_t* cu_seqlens, int B, Activations& acts, float* emb,
              float* hidden);
  // Tokens per encode group on the CPU: activations of at most 1/kEncodeActShare of the weights'
  // bytes as held, and at least kEncodeMinTokens tokens (other backends: the whole batch). Sizing it
  // against the fp32 bytes instead (as many tokens per group at bf16/int8 as at fp32) measured no
  // faster at the 600M shape on a loaded 2-core machine (bf16 +5%, int8 -2%, same run) for peak RSS
  // 1.17x / 1.37x of the weights instead of 1.12x / 1.21x.
  static constexpr int kEncodeActShare = 32, kEncodeMinTokens = 64;
  int encode_group_tokens() const;
  // Bytes of activations per token of a forward pass (keep: every layer's, for backward), and per sequence.
  size_t activation_bytes_per_token(bool keep) const;
  size_t activation_bytes_per_sequence() const;
  void free_activations(Activations& acts);

  // Backward from d loss / d emb [B,P] into grads (same layout as params): added to them
  // (accumulate), or written, but for grad_zero_ranges(), which must then hold zeros. With `table`
  // (a DeviceStep holding the table's gradient apart, core/device_step.h), grads holds the
  // parameters after grad_scatter_table()'s span, and the table's gradient is added into
  // table->rows at table->ids instead. Implemented in core/model_backward.cpp.
  void backward(const Batch& batch, Activations& acts, const Buf& d_emb, Buf& grads, bool accumulate,
                const TableTarget* table = nullptr);
  // The [begin, end) element ranges of the gradient buffer that backward(accumulate = false) adds to
  // rather than writes (the embedding table) or leaves alone (the padding between tensors).
  std::vector<std::pair<size_t, size_t>> grad_zero_ranges() const;
  // The one tensor backward adds into by rows (the embedding table, a row per token id, the layout's
  // first tensor).
  ScatterTable grad_scatter_table() const;


  // A view of the parameter buffer at an element offset (no ownership).
  Buf view(const Buf& base, size_t offset, size_t numel) const;

 private:
  void alloc_acts(Activations& a, int T, int B, bool keep);
  // Throws Error naming the first bad token id or cu_seqlens entry of a batch.
  void check_batch(const int32_t* ids, int T, const int32_t* cu, int B) const;
  // fp32 weight matrices into (true) or out of (false) the backend's pre-packed layout.
  void pack_weights(bool pack);
  bool weights_packed_ = false;
  // The fp32 tensor at layout offset off (where params_ holds it), or its converted matrix.
  Buf weight(size_t off, size_t numel) const;
  const LowpMatrix* lowp_at(size_t off) const;
  void linear(const Buf& x, size_t w_off, const Buf* bias, int T, int K, int N, Buf& y);

  ModelConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::vector<ParamInfo> layout_;
  std::vector<LayerParams> layer_offsets_;
  size_t off_embed_ = 0, off_norm_ = 0, off_dense_w_ = 0, off_dense_b_ = 0;
  Buf params_;
  Buf* master_ = nullptr;  // owned by the TrainState, when one exists and keeps one
  std::map<std::string, F32Source> f32_sources_;
  size_t total_params_ = 0;
  Precision prec_ = Precision::F32;
  // bf16 / int8 models: per parameter (layout order), its offset in params_ (vectors) or its
  // converted matrix; params_ then holds the vectors only.
  std::vector<size_t> storage_;
  std::vector<std::unique_ptr<LowpMatrix>> lowp_;
  size_t index_of(size_t layout_offset) const;
};

}  // namespace l2e
