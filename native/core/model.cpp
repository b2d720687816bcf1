// Parameter layout, batches and the forward pass of the Llama2 embedding model (see model.h).
#include "core/model.h"

#include <algorithm>
#include <cstring>

#include "core/host_memory.h"

namespace l2e {

void ModelConfig::validate() const {
  auto pos = [](int v, const char* f) {
    if (v <= 0) throw Error(std::string("model config: ") + f + " must be a positive integer, got " + std::to_string(v));
  };
  pos(vocab, "vocab_size");
  pos(hidden, "hidden_size");
  pos(intermediate, "intermediate_size");
  pos(layers, "num_hidden_layers");
  pos(heads, "num_attention_heads");
  pos(kv_heads, "num_key_value_heads");
  pos(head_dim, "head_dim");
  pos(dense, "dense size");
  if (heads % kv_heads != 0)
    throw Error("model config: num_attention_heads (" + std::to_string(heads) + ") is not divisible by num_key_value_heads (" +
                std::to_string(kv_heads) + ")");
  if (head_dim % 2 != 0) throw Error("model config: head_dim must be even for rotary embeddings");
  if (!(rms_eps > 0)) throw Error("model config: rms_norm_eps must be positive");
  if (!(rope_theta > 0)) throw Error("model config: rope_theta must be positive");
}

std::vector<ParamInfo> param_layout(const ModelConfig& c) {
  std::vector<ParamInfo> out;
  size_t off = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    size_t n = 1;
    for (auto d : shape) n *= size_t(d);
    out.push_back({std::move(name), std::move(shape), off, n});
    off += (n + 15) / 16 * 16;  // keep every tensor 64-byte aligned (fp32)
  };
  const int64_t H = c.hidden, I = c.intermediate, qd = int64_t(c.heads) * c.head_dim,
                kvd = int64_t(c.kv_heads) * c.head_dim;
  add("embed_tokens.weight", {c.vocab, H});
  for (int l = 0; l < c.layers; l++) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H});
    add(p + "self_attn.q_proj.weight", {qd, H});
    add(p + "self_attn.k_proj.weight", {kvd, H});
    add(p + "self_attn.v_proj.weight", {kvd, H});
    add(p + "self_attn.o_proj.weight", {H, qd});
    add(p + "post_attention_layernorm.weight", {H});
    add(p + "mlp.gate_proj.weight", {I, H});
    add(p + "mlp.up_proj.weight", {I, H});
    add(p + "mlp.down_proj.weight", {H, I});
  }
  add("norm.weight", {H});
  add("dense_layer.weight", {c.dense, H});
  add("dense_layer.bias", {c.dense});
  return out;
}

Model::Model(const ModelConfig& cfg, std::unique_ptr<Backend> backend) : cfg_(cfg), be_(std::move(backend)) {
  cfg_.validate();
  layout_ = param_layout(cfg_);
  size_t total = layout_.back().offset + layout_.back().numel;
  auto off = [&](const std::string& n) { return param(n).offset; };
  off_embed_ = off("embed_tokens.weight");
  off_norm_ = off("norm.weight");
  off_dense_w_ = off("dense_layer.weight");
  off_dense_b_ = off("dense_layer.bias");
  for (int l = 0; l < cfg_.layers; l++) {
    const std::string p = "layers." + std::to_string(l) + ".";
    layer_offsets_.push_back({off(p + "input_layernorm.weight"), off(p + "self_attn.q_proj.weight"),
                              off(p + "self_attn.k_proj.weight"), off(p + "self_attn.v_proj.weight"),
                              off(p + "self_attn.o_proj.weight"), off(p + "post_attention_layernorm.weight"),
                              off(p + "mlp.gate_proj.weight"), off(p + "mlp.up_proj.weight"),
                              off(p + "mlp.down_proj.weight")});
  }
  // sizes in 64-bit before any allocation: a config far larger than RAM is refused here, by name
  if (be_->name() == "cpu") {
    check_host_memory(uint64_t(total) * dtype_size(be_->param_dtype()),
                      "the model's " + std::to_string(total) + " parameters");
  }
  params_ = be_->alloc(total, be_->param_dtype());
  be_->zero(params_);
}

Model::~Model() {
  if (!params_.empty()) be_->free(params_);
}

const ParamInfo& Model::param(const std::string& name) const {
  for (const auto& p : layout_)
    if (p.name == name) return p;
  throw Error("model has no parameter named \"" + name + "\"");
}

Buf Model::view(const Buf& base, size_t offset, size_t numel) const {
  Buf b;
  b.ptr = static_cast<char*>(base.ptr) + offset * dtype_size(base.dtype);
  b.numel = numel;
  b.dtype = base.dtype;
  return b;
}

void Model::set_param(const std::string& name, const void* host, size_t numel, DType host_dtype) {
  const ParamInfo& p = param(name);
  if (numel != p.numel)
    throw Error("parameter " + name + " has " + std::to_string(p.numel) + " values, got " + std::to_string(numel));
  f32_sources_.erase(name);
  Buf dst = view(params_, p.offset, p.numel);
  if (master_) {
    Buf m = view(*master_, p.offset, p.numel);
    be_->upload(m, host, numel, host_dtype);  // F32 source values kept exactly
    be_->copy(dst, m);                        // the forward's copy: rounded to nearest even
    return;
  }
  be_->upload(dst, host, numel, host_dtype);
}

void Model::get_param(const std::string& name, float* host) {
  const ParamInfo& p = param(name);
  be_->download(view(master_ ? *master_ : params_, p.offset, p.numel), host);
}

Batch Model::make_batch(const int32_t* ids, int T, const int32_t* cu, int B) {
  if (B <= 0) throw Error("batch has no sequences");
  if (cu[0] != 0 || cu[B] != T) throw Error("cu_seqlens must start at 0 and end at the token count");
  std::vector<int32_t> pos(T);
  for (int b = 0; b < B; b++) {
    // Compared, not subtracted (cu[b+1] - cu[b] can overflow), and bounded by T before pos[] is
    // written: cu = [0, 100, 5] with T = 5 would otherwise overrun it before the last entry is seen.
    if (cu[b + 1] <= cu[b]) throw Error("sequence " + std::to_string(b) + " of the batch is empty (every text has at least BOS)");
    if (cu[b + 1] > T) throw Error("cu_seqlens[" + std::to_string(b + 1) + "] = " + std::to_string(cu[b + 1]) +
                                   " is past the token count " + std::to_string(T));
    const int len = cu[b + 1] - cu[b];
    for (int i = 0; i < len; i++) pos[cu[b] + i] = i;
  }
  for (int t = 0; t < T; t++)
    if (ids[t] < 0 || ids[t] >= cfg_.vocab)
      throw Error("token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
                  " is outside the vocabulary (vocab_size " + std::to_string(cfg_.vocab) + ")");
  Batch bt;
  bt.B = B;
  bt.T = T;
  try {  // an allocation or upload that fails must not leak the buffers allocated before it
    bt.ids = be_->alloc(T, DType::I32);
    bt.positions = be_->alloc(T, DType::I32);
    bt.cu_seqlens = be_->alloc(B + 1, DType::I32);
    be_->upload(bt.ids, ids, T, DType::I32);
    be_->upload(bt.positions, pos.data(), T, DType::I32);
    be_->upload(bt.cu_seqlens, cu, B + 1, DType::I32);
    const std::vector<int32_t> tiles = attention_tiles(cu, B);
    bt.num_tiles = int(tiles.size() / 2);
    bt.tiles = be_->alloc(tiles.size(), DType::I32);
    be_->upload(bt.tiles, tiles.data(), tiles.size(), DType::I32);
  } catch (...) {
    free_batch(bt);
    throw;
  }
  return bt;
}

void Model::free_batch(Batch& b) {
  for (Buf* buf : {&b.ids, &b.positions, &b.cu_seqlens, &b.tiles})
    if (!buf->empty()) be_->free(*buf);
}

std::vector<int32_t> attention_tiles(const int32_t* cu, int B) {
  std::vector<int32_t> t;
  for (int b = 0; b < B; b++) {
    const int len = cu[b + 1] - cu[b];
    for (int start = (len - 1) / kAttentionTileRows * kAttentionTileRows; len > 0 && start >= 0;
         start -= kAttentionTileRows) {
      t.push_back(b);
      t.push_back(start);
    }
  }
  return t;
}

void Model::alloc_acts(Activations& a, int T, int B, bool keep) {
  free_activations(a);
  const DType ad = be_->act_dtype();
  const size_t H = cfg_.hidden, I = cfg_.intermediate, qd = size_t(cfg_.heads) * cfg_.head_dim,
               kvd = size_t(cfg_.kv_heads) * cfg_.head_dim, P = cfg_.dense;
  if (be_->name() == "cpu") {
    // every buffer below, added up first: one batch too large must not be allocated half-way
    const uint64_t t = uint64_t(T), per_layer = t * (4 * H + 2 * qd + 2 * kvd + 3 * I) * dtype_size(ad) + t * (2 + cfg_.heads) * 4;
    const uint64_t rest = t * (2 * H + P) * dtype_size(ad) + t * 4 + uint64_t(B) * (2 * P + 1) * 4;
    check_host_memory(per_layer * (keep ? uint64_t(cfg_.layers) : 1) + rest,
                      "a batch of " + std::to_string(T) + " tokens (" + std::to_string(B) + " texts)",
                      ": use smaller batches (--max-batch-tokens, --batch-size)");
  }
  a.layers.resize(keep ? cfg_.layers : 1);
  for (auto& L : a.layers) {
    L.x_in = be_->alloc(T * H, ad);
    L.rstd1 = be_->alloc(T, DType::F32);
    L.h1 = be_->alloc(T * H, ad);
    L.q = be_->alloc(T * qd, ad);
    L.k = be_->alloc(T * kvd, ad);
    L.v = be_->alloc(T * kvd, ad);
    L.attn = be_->alloc(T * qd, ad);
    L.lse = be_->alloc(size_t(cfg_.heads) * T, DType::F32);
    L.x_mid = be_->alloc(T * H, ad);
    L.rstd2 = be_->alloc(T, DType::F32);
    L.h2 = be_->alloc(T * H, ad);
    L.gate = be_->alloc(T * I, ad);
    L.up = be_->alloc(T * I, ad);
    L.act = be_->alloc(T * I, ad);
  }
  a.x_last = be_->alloc(T * H, ad);
  a.rstd_f = be_->alloc(T, DType::F32);
  a.hidden = be_->alloc(T * H, ad);
  a.proj = be_->alloc(T * P, ad);
  a.pooled = be_->alloc(B * P, DType::F32);  // pooling sums in fp32 (as the original's float mask did)
  a.norm = be_->alloc(B, DType::F32);
  a.emb = be_->alloc(B * P, DType::F32);
  // The shape is recorded only once every buffer exists: if an allocation above throws, a.T stays 0
  // and the next forward reallocates instead of reusing a half-built set (null buffers).
  a.T = T;
  a.B = B;
  a.keep = keep;
}

void Model::free_activations(Activations& a) {
  auto f = [&](Buf& b) {
    if (!b.empty()) be_->free(b);
  };
  for (auto& L : a.layers) {
    for (Buf* b : {&L.x_in, &L.rstd1, &L.h1, &L.q, &L.k, &L.v, &L.attn, &L.lse, &L.x_mid, &L.rstd2, &L.h2, &L.gate,
                   &L.up, &L.act})
      f(*b);
  }
  a.layers.clear();
  for (Buf* b : {&a.x_last, &a.rstd_f, &a.hidden, &a.proj, &a.pooled, &a.norm, &a.emb}) f(*b);
  a.T = a.B = 0;
}

void Model::forward(const Batch& batch, Activations& a, bool keep) {
  if (a.T != batch.T || a.B != batch.B || a.keep != keep || a.layers.empty()) alloc_acts(a, batch.T, batch.B, keep);
  Backend& be = *be_;
  const int T = batch.T, H = cfg_.hidden, I = cfg_.intermediate, nh = cfg_.heads, nkv = cfg_.kv_heads,
            hd = cfg_.head_dim, P = cfg_.dense;
  const int qd = nh * hd, kvd = nkv * hd;
  auto W = [&](size_t off, size_t n) { return view(params_, off, n); };

  be.embedding(batch.ids, T, W(off_embed_, size_t(cfg_.vocab) * H), H, a.layers[0].x_in);  // [T,H]
  for (int l = 0; l < cfg_.layers; l++) {
    LayerActs& L = a.layers[keep ? l : 0];
    // The layer's output: the next layer's x_in (kept), x_last after the last layer, or x_in in place.
    Buf& x_out = (l + 1 == cfg_.layers) ? a.x_last : (keep ? a.layers[l + 1].x_in : L.x_in);
    const LayerParams& lp = layer_offsets_[l];
    // --- attention block ---
    be.rmsnorm(L.x_in, W(lp.in_norm, H), T, H, cfg_.rms_eps, L.h1, L.rstd1);  // h1 [T,H]
    be.linear(L.h1, W(lp.q, size_t(qd) * H), nullptr, T, H, qd, L.q);           // q [T,nh*hd]
    be.linear(L.h1, W(lp.k, size_t(kvd) * H), nullptr, T, H, kvd, L.k);         // k [T,nkv*hd]
    be.linear(L.h1, W(lp.v, size_t(kvd) * H), nullptr, T, H, kvd, L.v);         // v [T,nkv*hd]
    be.rope(L.q, batch.positions, T, nh, hd, cfg_.rope_theta, 1.0f);
    be.rope(L.k, batch.positions, T, nkv, hd, cfg_.rope_theta, 1.0f);
    be.attention(L.q, L.k, L.v, batch, nh, nkv, hd, L.attn, L.lse);             // attn [T,nh*hd]
    be.linear(L.attn, W(lp.o, size_t(H) * qd), nullptr, T, qd, H, L.x_mid);      // x_mid [T,H]
    be.add_inplace(L.x_mid, L.x_in, size_t(T) * H);                               // + residual
    // --- MLP block ---
    be.rmsnorm(L.x_mid, W(lp.post_norm, H), T, H, cfg_.rms_eps, L.h2, L.rstd2); // h2 [T,H]
    be.linear(L.h2, W(lp.gate, size_t(I) * H), nullptr, T, H, I, L.gate);        // gate [T,I]
    be.linear(L.h2, W(lp.up, size_t(I) * H), nullptr, T, H, I, L.up);            // up [T,I]
    be.swiglu(L.gate, L.up, size_t(T) * I, L.act);                                // act [T,I]
    be.linear(L.act, W(lp.down, size_t(H) * I), nullptr, T, I, H, x_out);         // x_out [T,H]
    be.add_inplace(x_out, L.x_mid, size_t(T) * H);                                // + residual
  }
  be.rmsnorm(a.x_last, W(off_norm_, H), T, H, cfg_.rms_eps, a.hidden, a.rstd_f);  // hidden [T,H]
  Buf bias = W(off_dense_b_, P);
  be.linear(a.hidden, W(off_dense_w_, size_t(P) * H), &bias, T, H, P, a.proj);    // proj [T,P]
  be.pool(a.proj, batch, P, cfg_.pooling, a.pooled);                              // pooled [B,P]
  be.l2norm(a.pooled, batch.B, P, cfg_.normalized, a.emb, a.norm);                // emb [B,P]
}

}  // namespace l2e
