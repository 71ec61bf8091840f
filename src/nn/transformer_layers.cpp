#include "attend/nn/transformer_layers.h"

#include <cmath>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "attend/ops/dropout.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/layer_norm.h"
#include "attend/ops/matmul.h"
#include "attend/ops/relative_positions.h"
#include "attend/ops/shape.h"

namespace attend {

LayerNorm::LayerNorm(int dim) : gamma_(parameter(Shape{dim})), beta_(parameter(Shape{dim})) {
  gamma_.value().fill(1.0f);
}

Var LayerNorm::operator()(const Var& x) const { return layer_norm(x, gamma_, beta_); }

void LayerNorm::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "gamma", gamma_});
  out.push_back({prefix + "beta", beta_});
}

MultiHeadAttention::MultiHeadAttention(int dim, int heads, Rng& rng)
    : wq_(dim, dim, /*bias=*/true, rng),
      wk_(dim, dim, true, rng),
      wv_(dim, dim, true, rng),
      wo_(dim, dim, true, rng),
      dim_(dim),
      heads_(heads) {
  if (heads < 1 || dim % heads != 0)
    throw std::invalid_argument("MultiHeadAttention: model dim " + std::to_string(dim) + " is not a multiple of " +
                                std::to_string(heads) + " heads");
}

Var MultiHeadAttention::split_heads(const Var& x) const { return heads_of(x, 0); }

Var MultiHeadAttention::heads_of(const Var& joined, int part) const {
  return heads_from_columns(joined, int64_t(part) * dim_, heads_, dim_ / heads_);
}

Var MultiHeadAttention::merge_heads(const Var& x) const {
  Var t = transpose12(x);  // [B,T,H,D]
  return reshape(t, Shape{t.size(0), t.size(1), dim_});
}

namespace {
// x [B,L,C] times the parts' weights side by side, [C, n C] (a copy, small next to the product),
// plus their biases -> [B,L,n C]: one product instead of n.
Var project_joined(const Var& x, std::initializer_list<const Linear*> parts) {
  std::vector<Var> w, b;
  for (const Linear* p : parts) w.push_back(p->weight()), b.push_back(p->bias());
  return linear(x, concat(w, 1), concat(b, 0));
}
}  // namespace

Var MultiHeadAttention::attend_heads(const Var& q, const Var& k, const Var& v, const SdpaOptions& options,
                                     const Var& bias) const {
  return wo_(merge_heads(sdpa(q, k, v, options, bias)));  // [B,H,T,D] -> [B,T,C]
}

std::pair<Var, Var> MultiHeadAttention::keys_values(const Var& x_kv) const {
  if (wk_.int8()) return {split_heads(wk_(x_kv)), split_heads(wv_(x_kv))};
  const Var kv = project_joined(x_kv, {&wk_, &wv_});  // [B,S,2C]
  return {heads_of(kv, 0), heads_of(kv, 1)};
}

Var MultiHeadAttention::operator()(const Var& x_q, const Var& x_kv, const SdpaOptions& options, const Var& bias) const {
  const auto [k, v] = keys_values(x_kv);
  return attend_heads(split_heads(wq_(x_q)), k, v, options, bias);
}

Var MultiHeadAttention::self_attention(const Var& x, const SdpaOptions& options, const Var& bias) const {
  if (wq_.int8()) return (*this)(x, x, options, bias);
  const Var qkv = project_joined(x, {&wq_, &wk_, &wv_});  // [B,T,3C]
  return attend_heads(heads_of(qkv, 0), heads_of(qkv, 1), heads_of(qkv, 2), options, bias);
}

void MultiHeadAttention::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  wq_.collect(prefix + "q.", out);
  wk_.collect(prefix + "k.", out);
  wv_.collect(prefix + "v.", out);
  wo_.collect(prefix + "o.", out);
}

void MultiHeadAttention::quantize() {
  for (Linear* l : {&wq_, &wk_, &wv_, &wo_}) l->quantize();
}

void MultiHeadAttention::release_fp32() {
  for (Linear* l : {&wq_, &wk_, &wv_, &wo_}) l->release_fp32();
}

FeedForward::FeedForward(int dim, int hidden, Rng& rng) : w1_(dim, hidden, true, rng), w2_(hidden, dim, true, rng) {}

Var FeedForward::operator()(const Var& x, float p, Rng* rng) const {
  Var h = relu(w1_(x));
  if (rng && p > 0.0f) h = dropout(h, p, *rng);
  return w2_(h);
}

void FeedForward::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  w1_.collect(prefix + "w1.", out);
  w2_.collect(prefix + "w2.", out);
}

void FeedForward::quantize() { w1_.quantize(), w2_.quantize(); }

void FeedForward::release_fp32() { w1_.release_fp32(), w2_.release_fp32(); }

Tensor sinusoidal_positions(int length, int dim) {
  Tensor pe(Shape{length, dim});
  for (int t = 0; t < length; ++t)
    for (int i = 0; i < dim; i += 2) {
      const double angle = t / std::pow(10000.0, double(i) / dim);
      pe.data()[int64_t(t) * dim + i] = static_cast<float>(std::sin(angle));
      if (i + 1 < dim) pe.data()[int64_t(t) * dim + i + 1] = static_cast<float>(std::cos(angle));
    }
  return pe;
}

namespace {
// Dropout on the attention weights in training (Vaswani et al.'s attention dropout): a fresh
// seed per call, drawn from the training RNG, so a run is reproducible from its seed.
SdpaOptions attention_options(float p, Rng* rng) {
  SdpaOptions o;
  if (rng && p > 0.0f) o.dropout = p, o.seed = rng->next_u64();
  return o;
}

// The [H, 2K+1] table of a layer's relative positions (relative_positions.h), or none for K = 0;
// zeros, so that the layer starts as it would without them.
Var relative_table(int heads, int K, const char* layer) {
  if (K < 0)
    throw std::invalid_argument(std::string(layer) + ": relative positions must be >= 0, got " + std::to_string(K));
  return K > 0 ? parameter(Shape{heads, 2 * int64_t(K) + 1}) : Var();
}

// x + dropout(f), the residual connection around a sub-layer.
Var residual(const Var& x, const Var& f, float p, Rng* rng) {
  return add(x, rng && p > 0.0f ? dropout(f, p, *rng) : f);
}
}  // namespace

TransformerEncoderLayer::TransformerEncoderLayer(int dim, int heads, int ffn, LayerOptions options, Rng& rng)
    : attn_(dim, heads, rng),
      relative_bias_(relative_table(heads, options.relative_positions, "TransformerEncoderLayer")),
      ffn_(dim, ffn, rng),
      ln1_(dim),
      ln2_(dim),
      opt_(options) {}

Var TransformerEncoderLayer::operator()(const Var& x, const std::vector<int>& key_lengths, Rng* rng) const {
  SdpaOptions o = attention_options(opt_.attention_dropout, rng);
  o.key_lengths = key_lengths;
  const int S = static_cast<int>(x.size(1));
  const Var bias = relative_bias_.defined() ? relative_position_bias(relative_bias_, S, S) : Var();  // [1,H,S,S]
  if (opt_.pre_norm) {
    Var n = ln1_(x);
    Var h = residual(x, attn_.self_attention(n, o, bias), opt_.dropout, rng);
    return residual(h, ffn_(ln2_(h), opt_.activation_dropout, rng), opt_.dropout, rng);
  }
  Var h = ln1_(residual(x, attn_.self_attention(x, o, bias), opt_.dropout, rng));
  return ln2_(residual(h, ffn_(h, opt_.activation_dropout, rng), opt_.dropout, rng));
}

void TransformerEncoderLayer::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  attn_.collect(prefix + "self_attn.", out);
  if (relative_bias_.defined()) out.push_back({prefix + "self_attn.relative_bias", relative_bias_});
  ffn_.collect(prefix + "ffn.", out);
  ln1_.collect(prefix + "ln1.", out);
  ln2_.collect(prefix + "ln2.", out);
}

void TransformerEncoderLayer::quantize() { attn_.quantize(), ffn_.quantize(); }

void TransformerEncoderLayer::release_fp32() { attn_.release_fp32(), ffn_.release_fp32(); }

TransformerDecoderLayer::TransformerDecoderLayer(int dim, int heads, int ffn, LayerOptions options, Rng& rng)
    : self_attn_(dim, heads, rng),
      cross_attn_(dim, heads, rng),
      relative_bias_(relative_table(heads, options.relative_positions, "TransformerDecoderLayer")),
      ffn_(dim, ffn, rng),
      ln1_(dim),
      ln2_(dim),
      ln3_(dim),
      opt_(options) {}

Var TransformerDecoderLayer::operator()(const Var& y, const Var& memory, const std::vector<int>& source_lengths,
                                        Rng* rng) const {
  SdpaOptions self = attention_options(opt_.attention_dropout, rng);
  SdpaOptions cross = attention_options(opt_.attention_dropout, rng);
  self.causal = true;
  cross.key_lengths = source_lengths;
  const int T = static_cast<int>(y.size(1));
  const Var bias = relative_bias_.defined() ? relative_position_bias(relative_bias_, T, T) : Var();  // [1,H,T,T]
  if (opt_.pre_norm) {
    Var n = ln1_(y);
    Var h = residual(y, self_attn_.self_attention(n, self, bias), opt_.dropout, rng);
    h = residual(h, cross_attn_(ln2_(h), memory, cross), opt_.dropout, rng);
    return residual(h, ffn_(ln3_(h), opt_.activation_dropout, rng), opt_.dropout, rng);
  }
  Var h = ln1_(residual(y, self_attn_.self_attention(y, self, bias), opt_.dropout, rng));
  h = ln2_(residual(h, cross_attn_(h, memory, cross), opt_.dropout, rng));
  return ln3_(residual(h, ffn_(h, opt_.activation_dropout, rng), opt_.dropout, rng));
}

KvCache TransformerDecoderLayer::cross_keys_values(const Var& memory, const std::vector<int>& source_lengths) const {
  NoGradScope no_grad;
  const int B = static_cast<int>(memory.size(0)), S = static_cast<int>(memory.size(1));
  const int H = cross_attn_.heads(), D = static_cast<int>(memory.size(2)) / H;
  KvCache cache(B, H, S, D);
  const auto [k, v] = cross_attn_.keys_values(memory);
  cache.append(k.value(), v.value(), source_lengths);
  return cache;
}

Var TransformerDecoderLayer::step(const Var& y, KvCache& self_cache, const KvCache& cross_cache,
                                  Tensor* cross_weights) const {
  NoGradScope no_grad;
  // The same sub-layers as operator(), one position at a time: self-attention over the cached
  // positions and this one (causal by construction), cross-attention over the source.
  auto self_attn = [&](const Var& x) {
    const MultiHeadAttention& a = self_attn_;
    self_cache.append(a.split_heads(a.wk()(x)).value(), a.split_heads(a.wv()(x)).value());
    const Tensor bias = relative_bias_.defined()
                            ? relative_position_bias_last(relative_bias_.value(), self_cache.lengths(),
                                                          self_cache.capacity())
                            : Tensor();  // [B,H,1,capacity]
    return a.wo()(a.merge_heads(Var(sdpa_decode(a.split_heads(a.wq()(x)).value(), self_cache, {}, bias))));
  };
  auto cross_attn = [&](const Var& x) {
    const MultiHeadAttention& a = cross_attn_;
    const Tensor q = a.split_heads(a.wq()(x)).value();  // [B,H,1,D]
    Tensor lse;
    const Tensor out = sdpa_decode(q, cross_cache, {}, {}, &lse);
    if (cross_weights) {
      SdpaOptions o;
      o.key_lengths = cross_cache.lengths();
      *cross_weights = sdpa_weights(q, cross_cache.keys(), lse, o, Tensor(), 0, a.heads(), 0, 1);
    }
    return a.wo()(a.merge_heads(Var(out)));
  };
  if (opt_.pre_norm) {
    Var h = add(y, self_attn(ln1_(y)));
    h = add(h, cross_attn(ln2_(h)));
    return add(h, ffn_(ln3_(h), 0.0f, nullptr));
  }
  Var h = ln1_(add(y, self_attn(y)));
  h = ln2_(add(h, cross_attn(h)));
  return ln3_(add(h, ffn_(h, 0.0f, nullptr)));
}

void TransformerDecoderLayer::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  self_attn_.collect(prefix + "self_attn.", out);
  if (relative_bias_.defined()) out.push_back({prefix + "self_attn.relative_bias", relative_bias_});
  cross_attn_.collect(prefix + "cross_attn.", out);
  ffn_.collect(prefix + "ffn.", out);
  ln1_.collect(prefix + "ln1.", out);
  ln2_.collect(prefix + "ln2.", out);
  ln3_.collect(prefix + "ln3.", out);
}

void TransformerDecoderLayer::quantize() { self_attn_.quantize(), cross_attn_.quantize(), ffn_.quantize(); }

void TransformerDecoderLayer::release_fp32() {
  self_attn_.release_fp32(), cross_attn_.release_fp32(), ffn_.release_fp32();
}

}  // namespace attend
