// Parameter layout, batches and the forward pass of the Llama2 embedding model (see model.h).
#include "core/model.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

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
  if (pad_id < -1 || pad_id >= vocab)
    throw Error("model config: pad_token_id " + std::to_string(pad_id) + " is outside the vocabulary (vocab_size " +
                std::to_string(vocab) + ")");
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

Model::Model(const ModelConfig& cfg, std::unique_ptr<Backend> backend, Precision precision)
    : cfg_(cfg), be_(std::move(backend)), prec_(precision) {
  cfg_.validate();
  layout_ = param_layout(cfg_);
  size_t total = layout_.back().offset + layout_.back().numel;
  total_params_ = total;
  if (prec_ != Precision::F32) {
    if (be_->name() != "cpu")
      throw Error(std::string("precision '") + precision_name(prec_) + "' is for the CPU device; the " + be_->name() +
                  " backend runs its own precision (load with precision 'fp32')");
    // Matrices are converted as they are set; params_ keeps the vectors, packed.
    size_t off = 0;
    for (const auto& p : layout_) {
      const bool matrix = p.shape.size() == 2;
      storage_.push_back(matrix ? size_t(-1) : off);
      lowp_.push_back(matrix ? std::make_unique<LowpMatrix>() : nullptr);
      if (!matrix) off += (p.numel + 15) / 16 * 16;
    }
    total = off;
  }
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
                      "holding the model's " + std::to_string(total) + " parameters");
  }
  params_ = be_->alloc(total, be_->param_dtype());
  be_->zero(params_);
}

Model::~Model() {
  if (!params_.empty()) be_->free(params_);
}

Buf& Model::param_buffer() {
  if (prec_ != Precision::F32)
    throw Error(std::string("this model was loaded in ") + precision_name(prec_) +
                " for inference; training needs fp32 weights (load it with precision 'fp32')");
  pack_weights(false);
  return params_;
}

void Model::pack_weights(bool pack) {
  if (weights_packed_ == pack) return;
  const int H = cfg_.hidden, I = cfg_.intermediate, qd = cfg_.heads * cfg_.head_dim, kvd = cfg_.kv_heads * cfg_.head_dim;
  struct Matrix {
    size_t off;
    int N, K;
  };
  std::vector<Matrix> all;
  for (const LayerParams& lp : layer_offsets_)
    for (const Matrix& m : {Matrix{lp.q, qd, H}, Matrix{lp.k, kvd, H}, Matrix{lp.v, kvd, H}, Matrix{lp.o, H, qd},
                            Matrix{lp.gate, I, H}, Matrix{lp.up, I, H}, Matrix{lp.down, H, I}})
      all.push_back(m);
  all.push_back({off_dense_w_, cfg_.dense, H});
  size_t done = 0;
  try {
    for (; done < all.size(); done++) {
      Buf w = view(params_, all[done].off, size_t(all[done].N) * size_t(all[done].K));
      be_->pack_weights(w, all[done].N, all[done].K, pack);
    }
  } catch (...) {  // out of memory for the scratch: put back the ones already done, all or nothing
    while (done-- > 0) {
      Buf w = view(params_, all[done].off, size_t(all[done].N) * size_t(all[done].K));
      be_->pack_weights(w, all[done].N, all[done].K, !pack);
    }
    throw;
  }
  weights_packed_ = pack;
}

size_t Model::weight_bytes() const {
  size_t n = params_.bytes();
  for (const auto& m : lowp_)
    if (m) n += m->bytes();
  return n;
}

size_t Model::index_of(size_t layout_offset) const {
  for (size_t i = 0; i < layout_.size(); i++)
    if (layout_[i].offset == layout_offset && layout_[i].numel > 0) return i;
  throw Error("model: no parameter at offset " + std::to_string(layout_offset));
}

const LowpMatrix* Model::lowp_at(size_t off) const {
  if (prec_ == Precision::F32) return nullptr;
  return lowp_[index_of(off)].get();
}

Buf Model::weight(size_t off, size_t numel) const {
  if (prec_ == Precision::F32) return view(params_, off, numel);
  const size_t i = index_of(off);
  if (lowp_[i]) throw Error("model: " + layout_[i].name + " is held in " + precision_name(prec_));
  return view(params_, storage_[i], numel);
}

void Model::linear(const Buf& x, size_t w_off, const Buf* bias, int T, int K, int N, Buf& y) {
  if (const LowpMatrix* m = lowp_at(w_off)) {
    if (!m->data) throw Error("model: " + layout_[index_of(w_off)].name + " was never set");
    be_->linear_lowp(x, *m, bias, T, y);
  } else if (weights_packed_) {
    be_->linear_packed(x, weight(w_off, size_t(N) * K), bias, T, K, N, y);
  } else {
    be_->linear(x, weight(w_off, size_t(N) * K), bias, T, K, N, y);
  }
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
  const size_t esize = dtype_size(host_dtype);
  set_param_chunked(name, host_dtype, (size_t(16) << 20) / esize, [&](size_t first, size_t count, void* dst) {
    std::memcpy(dst, static_cast<const char*>(host) + first * esize, count * esize);
  });
}

void Model::set_param_chunked(const std::string& name, DType host_dtype, size_t chunk, const ChunkReader& read) {
  const ParamInfo& p = param(name);
  if (host_dtype != DType::F32 && host_dtype != DType::BF16 && host_dtype != DType::F16)
    throw Error(std::string("parameter ") + name + ": cannot convert " + dtype_name(host_dtype));
  pack_weights(false);
  const size_t esize = dtype_size(host_dtype);
  const size_t row = p.shape.size() == 2 ? size_t(p.shape[1]) : p.numel;
  const size_t rows_per_chunk = std::max<size_t>(1, std::min(p.numel, chunk) / row);
  const HostBuffer staging_buf(std::min(p.numel, rows_per_chunk * row) * esize, "loading weights");
  char* const staging = staging_buf.as<char>();
  f32_sources_.erase(name);
  const size_t i = prec_ == Precision::F32 ? 0 : index_of(p.offset);
  if (prec_ != Precision::F32 && lowp_[i]) {
    // Converted row by row as the chunks arrive: no fp32 copy of the matrix is ever made.
    const int64_t N = p.shape[0], K = p.shape[1];
    int64_t first_row = 0, loaded = 0;  // rows [first_row, first_row + loaded) are in staging
    auto row_of = [&](int64_t n, float* out) {
      if (n >= first_row + loaded) {
        first_row = n;
        loaded = std::min<int64_t>(int64_t(rows_per_chunk), N - n);
        read(size_t(n) * size_t(K), size_t(loaded) * size_t(K), staging);
      }
      const char* src = staging + size_t(n - first_row) * size_t(K) * esize;
      if (host_dtype == DType::F32) {
        std::memcpy(out, src, size_t(K) * 4);
        return;
      }
      const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
      if (host_dtype == DType::BF16)
        for (int64_t k = 0; k < K; k++) out[k] = bf16_to_f32(h[k]);
      else
        for (int64_t k = 0; k < K; k++) out[k] = f16_to_f32(h[k]);
    };
    auto m = std::make_unique<LowpMatrix>();
    const bool table = name == "embed_tokens.weight";
    try {
      lowp_pack(*m, prec_, table ? LowpMatrix::Layout::Rows : LowpMatrix::Layout::Gemm, N, K, row_of);
    } catch (const Error& e) {
      throw Error("parameter " + name + " (" + precision_name(prec_) + "): " + e.what());
    }
    lowp_[i] = std::move(m);
    return;
  }
  const size_t base = prec_ == Precision::F32 ? p.offset : storage_[i];
  // With an F32 master attached (training; fp32 models only), the master is written, keeping F32
  // source values exactly: its halves, the parameter (its rounding) and the low halves.
  for (size_t first = 0; first < p.numel; first += rows_per_chunk * row) {
    const size_t count = std::min(rows_per_chunk * row, p.numel - first);
    read(first, count, staging);
    Buf dst = view(params_, base + first, count);
    if (master_) {
      Buf lo = view(*master_, base + first, count);
      be_->upload_master(dst, lo, staging, count, host_dtype);
    } else {
      be_->upload(dst, staging, count, host_dtype);
    }
  }
}

void Model::get_param(const std::string& name, float* host) {
  const ParamInfo& p = param(name);
  pack_weights(false);
  if (prec_ == Precision::F32) {
    if (master_) be_->download_master(view(params_, p.offset, p.numel), view(*master_, p.offset, p.numel), host);
    else be_->download(view(params_, p.offset, p.numel), host);
    return;
  }
  const size_t i = index_of(p.offset);
  if (const LowpMatrix* m = lowp_[i].get()) {
    if (!m->data) throw Error("model: " + name + " was never set");
    for (int64_t n = 0; n < m->N; n++) lowp_unpack_row(*m, n, host + n * m->K);
    return;
  }
  be_->download(view(params_, storage_[i], p.numel), host);
}

void Model::check_batch(const int32_t* ids, int T, const int32_t* cu, int B) const {
  if (B <= 0) throw Error("batch has no sequences");
  if (cu[0] != 0 || cu[B] != T) throw Error("cu_seqlens must start at 0 and end at the token count");
  for (int b = 0; b < B; b++) {
    // Compared, not subtracted (cu[b+1] - cu[b] can overflow), and bounded by T before anything is
    // indexed by it: cu = [0, 100, 5] with T = 5 is refused at its second entry.
    if (cu[b + 1] <= cu[b]) throw Error("sequence " + std::to_string(b) + " of the batch is empty (every text has at least BOS)");
    if (cu[b + 1] > T) throw Error("cu_seqlens[" + std::to_string(b + 1) + "] = " + std::to_string(cu[b + 1]) +
                                   " is past the token count " + std::to_string(T));
  }
  for (int t = 0; t < T; t++)
    if (ids[t] < 0 || ids[t] >= cfg_.vocab)
      throw Error("token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
                  " is outside the vocabulary (vocab_size " + std::to_string(cfg_.vocab) + ")");
}

Batch Model::make_batch(const int32_t* ids, int T, const int32_t* cu, int B) {
  check_batch(ids, T, cu, B);
  std::vector<int32_t> pos(T);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < cu[b + 1] - cu[b]; i++) pos[cu[b] + i] = i;
  Batch bt;
  bt.B = B;
  bt.T = T;
  for (int t = 0; cfg_.pad_id >= 0 && t < T; t++) {
    if (ids[t] != cfg_.pad_id) continue;
    if (!bt.pad_runs.empty() && bt.pad_runs.back().first + bt.pad_runs.back().second == t) bt.pad_runs.back().second++;
    else bt.pad_runs.emplace_back(t, 1);
  }
  try {  // an allocation or upload that fails must not leak the buffers allocated before it
    bt.ids = be_->alloc(T, DType::I32);
    bt.positions = be_->alloc(T, DType::I32);
    bt.cu_seqlens = be_->alloc(B + 1, DType::I32);
    be_->upload(bt.ids, ids, T, DType::I32);
    be_->upload(bt.positions, pos.data(), T, DType::I32);
    be_->upload(bt.cu_seqlens, cu, B + 1, DType::I32);
    const std::vector<int32_t> tiles = attention_schedule(bt, cu, B);
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

std::vector<int32_t> attention_schedule(Batch& bt, const int32_t* cu, int B) {
  std::vector<int32_t> tiles = attention_tiles(cu, B);
  bt.num_tiles = int(tiles.size() / 2);
  bt.causal_pairs = 0;
  for (int b = 0; b < B; b++) bt.causal_pairs += 0.5 * double(cu[b + 1] - cu[b]) * double(cu[b + 1] - cu[b]);
  return tiles;
}

size_t Model::activation_bytes_per_token(bool keep) const {
  const size_t ad = dtype_size(be_->act_dtype()), H = cfg_.hidden, I = cfg_.intermediate,
               qd = size_t(cfg_.heads) * cfg_.head_dim, kvd = size_t(cfg_.kv_heads) * cfg_.head_dim, P = cfg_.dense;
  const size_t f32 = (2 + size_t(cfg_.heads)) * 4;  // rstd1, rstd2, lse
  if (keep) return cfg_.layers * ((4 * H + 2 * qd + 2 * kvd + 3 * I) * ad + f32) + (2 * H + P) * ad + 4;
  // encode (see alloc_acts): x_in (also x_mid), h1 (also attn, h2, mlp_out, hidden), one buffer for
  // q, k, v (then o_out, then gate, then proj), up
  return (H + std::max(H, qd) + std::max({qd + 2 * kvd, I, H, P}) + I) * ad + f32 + 4;
}

size_t Model::activation_bytes_per_sequence() const { return (2 * size_t(cfg_.dense) + 1) * 4; }

void Model::alloc_acts(Activations& a, int T, int B, bool keep) {
  free_activations(a);
  const DType ad = be_->act_dtype();
  const size_t H = cfg_.hidden, I = cfg_.intermediate, qd = size_t(cfg_.heads) * cfg_.head_dim,
               kvd = size_t(cfg_.kv_heads) * cfg_.head_dim, P = cfg_.dense;
  if (be_->name() == "cpu") {
    // every buffer below, added up first: one batch too large must not be allocated half-way
    check_host_memory(uint64_t(T) * activation_bytes_per_token(keep) + uint64_t(B) * activation_bytes_per_sequence(),
                      "a batch of " + std::to_string(T) + " tokens (" + std::to_string(B) + (B == 1 ? " text)" : " texts)"),
                      // one text cannot be split into smaller batches: only a shorter cut helps
                      B == 1 ? ": cut the text shorter (maxLength, --max-length)"
                             : ": use smaller batches (maxBatchTokens / batchSize, --max-batch-tokens / --batch-size)",
                      be_->held_free_bytes());
  }
  auto own = [&](size_t n, DType d) {
    a.owned.push_back(be_->alloc(n, d));
    return a.owned.back();
  };
  a.layers.resize(keep ? cfg_.layers : 1);
  a.owned.reserve(a.layers.size() * 14 + 8);  // at most 14 per layer and 8 more: own() never reallocates
  for (auto& L : a.layers) {
    L.x_in = own(T * H, ad);
    L.rstd1 = own(T, DType::F32);
    L.lse = own(size_t(cfg_.heads) * T, DType::F32);
    L.rstd2 = own(T, DType::F32);
    L.up = own(T * I, ad);
    if (keep) {
      L.q = own(T * qd, ad);
      L.k = own(T * kvd, ad);
      L.v = own(T * kvd, ad);
      L.x_mid = own(T * H, ad);
      L.gate = own(T * I, ad);
      L.h1 = own(T * H, ad);
      L.attn = own(T * qd, ad);
      L.h2 = own(T * H, ad);
      L.act = own(T * I, ad);
    } else {
      // Encode keeps nothing for backward. h1 is dead once v is computed, attn once o_proj has read
      // it, h2 once gate and up are computed: one buffer holds h1, attn, h2, then the MLP's output.
      // q, k and v are dead after attention: one buffer holds them, then o_proj's output, then gate
      // (act is computed in place of gate). x_mid is x_in, the residual stream updated in place.
      L.h1 = own(T * std::max(H, qd), ad);
      L.attn = view(L.h1, 0, T * qd);
      L.h2 = view(L.h1, 0, T * H);
      L.mlp_out = view(L.h1, 0, T * H);
      const Buf qkv = own(T * std::max({qd + 2 * kvd, I, H, P}), ad);
      L.q = view(qkv, 0, T * qd);
      L.k = view(qkv, T * qd, T * kvd);
      L.v = view(qkv, T * (qd + kvd), T * kvd);
      L.o_out = view(qkv, 0, T * H);
      L.gate = view(qkv, 0, T * I);
      L.x_mid = L.x_in;
    }
  }
  if (keep) {
    a.x_last = own(T * H, ad);
    a.hidden = own(T * H, ad);
    a.proj = own(T * P, ad);
  } else {
    // the last layer's output is its x_in; the final norm into h1; the dense layer into q's buffer
    a.x_last = a.layers[0].x_in;
    a.hidden = view(a.layers[0].h1, 0, T * H);
    a.proj = view(a.layers[0].q, 0, T * P);
  }
  a.rstd_f = own(T, DType::F32);
  a.pooled = own(B * P, DType::F32);  // pooling sums in fp32 (as the original's float mask did)
  a.norm = own(B, DType::F32);
  a.emb = own(B * P, DType::F32);
  // The shape is recorded only once every buffer exists: if an allocation above throws, a.capT stays 0
  // and the next forward reallocates instead of reusing a half-built set (null buffers).
  a.T = a.capT = T;
  a.B = a.capB = B;
  a.keep = keep;
}

void Model::free_activations(Activations& a) {
  for (Buf& b : a.owned)
    if (!b.empty()) be_->free(b);
  a.owned.clear();
  a.layers.clear();
  for (Buf* b : {&a.x_last, &a.rstd_f, &a.hidden, &a.proj, &a.pooled, &a.norm, &a.emb}) *b = Buf{};
  a.T = a.B = a.capT = a.capB = 0;
}

int Model::encode_group_tokens() const {
  // Host memory only: a GPU's own memory is not the process's RSS, and its GEMMs want the whole batch.
  if (be_->name() != "cpu") return std::numeric_limits<int>::max();
  const size_t budget = weight_bytes() / kEncodeActShare;
  return int(std::max<size_t>(kEncodeMinTokens, std::min<size_t>(budget / activation_bytes_per_token(false), 1 << 30)));
}

void Model::encode(const int32_t* ids, int T, const int32_t* cu, int B, Activations& a, float* emb, float* hidden) {
  check_batch(ids, T, cu, B);  // here, so errors name positions in the whole batch, not in a group
  if (prec_ == Precision::F32 && !master_ && be_->packs_weights()) pack_weights(true);
  const int G = encode_group_tokens(), H = cfg_.hidden, P = cfg_.dense;
  std::vector<std::pair<int, int>> groups;  // sequences [first, last)
  int max_T = 0, max_B = 0;
  for (int b0 = 0; b0 < B;) {
    int b1 = b0 + 1;
    while (b1 < B && cu[b1 + 1] - cu[b0] <= G) b1++;
    groups.emplace_back(b0, b1);
    max_T = std::max(max_T, cu[b1] - cu[b0]);
    max_B = std::max(max_B, b1 - b0);
    b0 = b1;
  }
  if (a.layers.empty() || a.keep || a.capT < max_T || a.capB < max_B) alloc_acts(a, max_T, max_B, false);
  std::vector<int32_t> group_cu;
  for (const auto& [b0, b1] : groups) {
    const int t0 = cu[b0], gT = cu[b1] - t0, gB = b1 - b0;
    group_cu.resize(size_t(gB) + 1);
    for (int b = 0; b <= gB; b++) group_cu[size_t(b)] = cu[b0 + b] - t0;
    Batch batch = make_batch(ids + t0, gT, group_cu.data(), gB);
    try {
      forward(batch, a, false);
      be_->download(view(a.emb, 0, size_t(gB) * P), emb + size_t(b0) * P);
      if (hidden) be_->download(view(a.hidden, 0, size_t(gT) * H), hidden + size_t(t0) * H);
    } catch (...) {
      free_batch(batch);
      throw;
    }
    free_batch(batch);
  }
}

void Model::forward(const Batch& batch, Activations& a, bool keep) {
  if (keep) pack_weights(false);  // training reads the weights in nn.Linear's layout
  const bool fits = !a.layers.empty() && a.keep == keep &&
                    (keep ? a.capT == batch.T && a.capB == batch.B : a.capT >= batch.T && a.capB >= batch.B);
  if (!fits) alloc_acts(a, batch.T, batch.B, keep);
  a.T = batch.T;
  a.B = batch.B;
  Backend& be = *be_;
  const int T = batch.T, H = cfg_.hidden, I = cfg_.intermediate, nh = cfg_.heads, nkv = cfg_.kv_heads,
            hd = cfg_.head_dim, P = cfg_.dense;
  const int qd = nh * hd, kvd = nkv * hd;
  auto W = [&](size_t off, size_t n) { return weight(off, n); };

  if (const LowpMatrix* table = lowp_at(off_embed_))
    be.embedding_lowp(batch.ids, T, *table, a.layers[0].x_in);                    // [T,H]
  else
    be.embedding(batch.ids, T, W(off_embed_, size_t(cfg_.vocab) * H), H, a.layers[0].x_in);  // [T,H]
  // Each residual add is fused into the norm that reads its sum (the rmsnorm op's residual): the
  // MLP block's into the next layer's input norm (or the final norm), `pending` until then.
  const Buf* pending = nullptr;
  for (int l = 0; l < cfg_.layers; l++) {
    LayerActs& L = a.layers[keep ? l : 0];
    // The layer's output: the next layer's x_in (kept), x_last after the last layer, or x_in in place.
    Buf& x_out = (l + 1 == cfg_.layers) ? a.x_last : (keep ? a.layers[l + 1].x_in : L.x_in);
    const LayerParams& lp = layer_offsets_[l];
    // --- attention block ---
    be.rmsnorm(L.x_in, pending, W(lp.in_norm, H), T, H, cfg_.rms_eps, L.h1, L.rstd1);  // x_in (+= pending), h1 [T,H]
    linear(L.h1, lp.q, nullptr, T, H, qd, L.q);                                   // q [T,nh*hd]
    linear(L.h1, lp.k, nullptr, T, H, kvd, L.k);                                  // k [T,nkv*hd]
    linear(L.h1, lp.v, nullptr, T, H, kvd, L.v);                                  // v [T,nkv*hd]
    be.rope(L.q, batch.positions, T, nh, hd, cfg_.rope_theta, 1.0f);
    be.rope(L.k, batch.positions, T, nkv, hd, cfg_.rope_theta, 1.0f);
    be.attention(L.q, L.k, L.v, batch, nh, nkv, hd, L.attn, L.lse);             // attn [T,nh*hd]
    // x_mid = x_in + o_proj(attn) [T,H]: a buffer of its own (kept), or x_in += o_out (encode)
    linear(L.attn, lp.o, nullptr, T, qd, H, keep ? L.x_mid : L.o_out);
    // --- MLP block ---
    be.rmsnorm(L.x_mid, keep ? &L.x_in : &L.o_out, W(lp.post_norm, H), T, H, cfg_.rms_eps, L.h2, L.rstd2);  // h2 [T,H]
    linear(L.h2, lp.gate, nullptr, T, H, I, L.gate);                              // gate [T,I]
    linear(L.h2, lp.up, nullptr, T, H, I, L.up);                                  // up [T,I]
    Buf& act = keep ? L.act : L.gate;  // encode: act overwrites gate (elementwise, in place)
    be.swiglu(L.gate, L.up, size_t(T) * I, act);                                  // act [T,I]
    // x_out = x_mid + down(act) [T,H]: the next layer's x_in (kept), or x_in += mlp_out (encode)
    linear(act, lp.down, nullptr, T, I, H, keep ? x_out : L.mlp_out);
    pending = keep ? &L.x_mid : &L.mlp_out;
  }
  be.rmsnorm(a.x_last, pending, W(off_norm_, H), T, H, cfg_.rms_eps, a.hidden, a.rstd_f);  // hidden [T,H]
  Buf bias = W(off_dense_b_, P);
  linear(a.hidden, off_dense_w_, &bias, T, H, P, a.proj);                         // proj [T,P]
  be.pool(a.proj, batch, P, cfg_.pooling, a.pooled);                              // pooled [B,P]
  be.l2norm(a.pooled, batch.B, P, cfg_.normalized, a.emb, a.norm);                // emb [B,P]
}

}  // namespace l2e
