// Backward pass of the Llama2 embedding model over the op table, from d loss / d emb [B,P] back to
// every parameter, into `grads` (laid out like the parameter buffer). `accumulate`: every gradient is
// added to what grads holds (GradCache chunks and gradient accumulation call this repeatedly);
// otherwise the first pass of a step writes them (a GEMM with beta 0 reads nothing, so the gradients
// need no zeroing pass and their old values are never read), all but the embedding table's, whose
// rows a scatter adds into: grad_zero_ranges() must hold zeros then (or which a training step on the
// device holds apart, TableTarget: it keeps only the rows a batch names). Needs the activations of
// a forward(keep = true) of the same batch.
//
// Per layer, with x_mid = x_in + o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = norm1(x_in),
//                     x_out = x_mid + down(silu(gate(h2)) * up(h2)),   h2 = norm2(x_mid):
//   d x_mid = d x_out + norm2ᵀ(gateᵀ d gate + upᵀ d up)        (residual + MLP branch)
//   d x_in  = d x_mid + norm1ᵀ(qᵀ rope⁻¹(dq) + kᵀ rope⁻¹(dk) + vᵀ dv)
// and the embedding table d E[r] = Σ_{t: id_t = r} d x_in[t], but for r = pad_token_id (transformers'
// nn.Embedding padding_idx), whose row gets nothing: the pad tokens' rows of d x_in are zeroed first.
#include <deque>

#include "core/model.h"

namespace l2e {

namespace {
// Scratch buffers of one backward call, freed on every exit path.
struct Scratch {
  Backend& be;
  std::deque<Buf> bufs;  // a deque: references to earlier buffers stay valid
  explicit Scratch(Backend& b) : be(b) {}
  Buf& get(size_t n, DType dt) {
    bufs.push_back(be.alloc(n, dt));
    return bufs.back();
  }
  ~Scratch() {
    for (auto& b : bufs) be.free(b);
  }
};
}  // namespace

void Model::backward(const Batch& batch, Activations& a, const Buf& d_emb, Buf& grads, bool accumulate,
                     const TableTarget* table) {
  if (!a.keep || a.T != batch.T || a.B != batch.B || int(a.layers.size()) != cfg_.layers)
    throw Error("backward needs the kept activations of a forward pass over the same batch");
  const size_t base = table ? grad_scatter_table().span : 0;  // grads' element i is the layout's base + i
  if (grads.numel + base != params_.numel) throw Error("gradient buffer does not match the parameters");
  pack_weights(false);  // the weights in nn.Linear's layout (an encode may have packed them)
  Backend& be = *be_;
  const int T = batch.T, B = batch.B, H = cfg_.hidden, I = cfg_.intermediate, nh = cfg_.heads, nkv = cfg_.kv_heads,
            hd = cfg_.head_dim, P = cfg_.dense;
  const int qd = nh * hd, kvd = nkv * hd;
  const DType ad = be.act_dtype();
  auto W = [&](size_t off, size_t n) { return view(params_, off, n); };
  auto G = [&](size_t off, size_t n) { return view(grads, off - base, n); };  // off >= base: after the table

  Scratch s(be);
  Buf& d_pooled = s.get(size_t(B) * P, DType::F32);  // [B,P] (pooled is F32 on every backend)
  Buf& d_proj = s.get(size_t(T) * P, ad);    // [T,P]
  Buf& dx = s.get(size_t(T) * H, ad);        // [T,H] gradient of the residual stream
  Buf& d_mid = s.get(size_t(T) * H, ad);     // [T,H]
  Buf& d_h = s.get(size_t(T) * H, ad);       // [T,H] gradient of a norm's output
  Buf& d_act = s.get(size_t(T) * I, ad);     // [T,I]
  Buf& d_gate = s.get(size_t(T) * I, ad);    // [T,I]
  Buf& d_up = s.get(size_t(T) * I, ad);      // [T,I]
  Buf& d_attn = s.get(size_t(T) * qd, ad);   // [T,nh*hd]
  Buf& dq = s.get(size_t(T) * qd, ad);       // [T,nh*hd]
  Buf& dk = s.get(size_t(T) * kvd, ad);      // [T,nkv*hd]
  Buf& dv = s.get(size_t(T) * kvd, ad);      // [T,nkv*hd]

  // --- head: L2 norm, pooling, dense, final norm ---
  be.l2norm_backward(a.emb, a.norm, d_emb, B, P, cfg_.normalized, d_pooled);  // d_pooled [B,P]
  be.pool_backward(d_pooled, batch, P, cfg_.pooling, d_proj);                  // d_proj [T,P]
  Buf gdb = G(off_dense_b_, P);
  Buf gdw = G(off_dense_w_, size_t(P) * H);
  const bool acc = accumulate;  // the weight gradients' flag; dx flags below are the residual stream's
  be.linear_backward(a.hidden, W(off_dense_w_, size_t(P) * H), d_proj, T, H, P, &d_h, gdw, &gdb, false, acc);
  Buf gnorm = G(off_norm_, H);
  be.rmsnorm_backward(a.x_last, W(off_norm_, H), a.rstd_f, d_h, T, H, dx, gnorm, false, acc);  // dx [T,H]

  // --- layers, last to first ---
  for (int l = cfg_.layers - 1; l >= 0; l--) {
    LayerActs& L = a.layers[l];
    const LayerParams& lp = layer_offsets_[l];
    // MLP branch: x_out = x_mid + down(act)
    Buf gdown = G(lp.down, size_t(H) * I);
    be.linear_backward(L.act, W(lp.down, size_t(H) * I), dx, T, I, H, &d_act, gdown, nullptr, false, acc);  // d_act [T,I]
    be.swiglu_backward(L.gate, L.up, d_act, size_t(T) * I, d_gate, d_up);
    Buf ggate = G(lp.gate, size_t(I) * H), gup = G(lp.up, size_t(I) * H);
    be.linear_backward(L.h2, W(lp.gate, size_t(I) * H), d_gate, T, H, I, &d_h, ggate, nullptr, false, acc);
    be.linear_backward(L.h2, W(lp.up, size_t(I) * H), d_up, T, H, I, &d_h, gup, nullptr, true, acc);  // d_h2 [T,H]
    be.copy(d_mid, dx);                                                                             // residual
    Buf gpost = G(lp.post_norm, H);
    be.rmsnorm_backward(L.x_mid, W(lp.post_norm, H), L.rstd2, d_h, T, H, d_mid, gpost, true, acc);  // d_mid [T,H]

    // attention branch: x_mid = x_in + o(attn)
    Buf go = G(lp.o, size_t(H) * qd);
    be.linear_backward(L.attn, W(lp.o, size_t(H) * qd), d_mid, T, qd, H, &d_attn, go, nullptr, false, acc);
    be.attention_backward(L.q, L.k, L.v, L.attn, L.lse, d_attn, batch, nh, nkv, hd, dq, dk, dv);
    be.rope(dq, batch.positions, T, nh, hd, cfg_.rope_theta, -1.0f);  // rotation is orthogonal: R⁻¹ = Rᵀ
    be.rope(dk, batch.positions, T, nkv, hd, cfg_.rope_theta, -1.0f);
    Buf gq = G(lp.q, size_t(qd) * H), gk = G(lp.k, size_t(kvd) * H), gv = G(lp.v, size_t(kvd) * H);
    be.linear_backward(L.h1, W(lp.q, size_t(qd) * H), dq, T, H, qd, &d_h, gq, nullptr, false, acc);
    be.linear_backward(L.h1, W(lp.k, size_t(kvd) * H), dk, T, H, kvd, &d_h, gk, nullptr, true, acc);
    be.linear_backward(L.h1, W(lp.v, size_t(kvd) * H), dv, T, H, kvd, &d_h, gv, nullptr, true, acc);  // d_h1 [T,H]
    be.copy(dx, d_mid);                                                                             // residual
    Buf gin = G(lp.in_norm, H);
    be.rmsnorm_backward(L.x_in, W(lp.in_norm, H), L.rstd1, d_h, T, H, dx, gin, true, acc);         // d x_in
  }
  // nn.Embedding(padding_idx = pad_token_id): the pad id's row gets no gradient, as in transformers
  for (const auto& [t, n] : batch.pad_runs) {
    Buf pad = view(dx, size_t(t) * H, size_t(n) * H);
    be.zero(pad);
  }
  if (table) {
    Buf rows = table->rows;
    be.embedding_backward(table->ids, T, dx, H, rows);  // into the rows the ids were mapped to
  } else {
    Buf gemb = G(off_embed_, size_t(cfg_.vocab) * H);
    be.embedding_backward(batch.ids, T, dx, H, gemb);  // always added: grad_zero_ranges()
  }
}

ScatterTable Model::grad_scatter_table() const {
  const size_t end = layout_.size() > 1 ? layout_[1].offset : total_params_;
  return ScatterTable{off_embed_, size_t(cfg_.vocab), size_t(cfg_.hidden), end - off_embed_};
}

std::vector<std::pair<size_t, size_t>> Model::grad_zero_ranges() const {
  // everything backward(accumulate = false) does not write: the embedding table and the padding
  // after each tensor, as [begin, end) element ranges, adjacent ones merged
  std::vector<std::pair<size_t, size_t>> out;
  auto add = [&](size_t b, size_t e) {
    if (b >= e) return;
    if (!out.empty() && out.back().second == b) out.back().second = e;
    else out.emplace_back(b, e);
  };
  for (size_t i = 0; i < layout_.size(); i++) {
    const ParamInfo& p = layout_[i];
    const size_t end = i + 1 < layout_.size() ? layout_[i + 1].offset : total_params_;
    add(p.offset == off_embed_ ? p.offset : p.offset + p.numel, end);
  }
  return out;
}

}  // namespace l2e
