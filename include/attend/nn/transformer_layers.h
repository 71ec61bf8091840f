// attend nn: the Transformer's layers (Vaswani et al. 2017, sec. 3).
//
// Shapes: B batch, T target length, S source length, C model dim, H heads, D = C / H, F the
// feed-forward width. Layers take and return [B, T, C]. Encoder and decoder layers are pre-LN by
// default (LayerNorm before each sub-layer, Xiong et al. 2020: trains without warm-up tricks)
// or post-LN as in the paper (LayerNorm after each residual sum).
#pragma once

#include <utility>
#include <vector>

#include "attend/nn/linear.h"
#include "attend/ops/kv_cache.h"
#include "attend/ops/sdpa.h"

namespace attend {

// y = (x - mean) / sqrt(var + eps) * gamma + beta over C; gamma = 1, beta = 0 at the start.
class LayerNorm : public Module {
 public:
  LayerNorm() = default;
  explicit LayerNorm(int dim);
  Var operator()(const Var& x) const;  // [..., C] -> [..., C]
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;

 private:
  Var gamma_, beta_;
};

// Multi-head attention: heads of D = C / H dims over projected queries, keys and values, joined
// and projected back: W_o concat_h sdpa(x_q W_q^h, x_kv W_k^h, x_kv W_v^h).
// In fp32, the projections of one input are one product with the weights side by side
// (x [W_q | W_k | W_v] for self-attention, x_kv [W_k | W_v] for cross-attention); the weights
// stay separate parameters (checkpoint names q., k., v.). Quantized, a product per weight.
class MultiHeadAttention : public Module {
 public:
  MultiHeadAttention() = default;
  MultiHeadAttention(int dim, int heads, Rng& rng);
  // x_q [B,T,C], x_kv [B,S,C] -> [B,T,C]; options carry the masks (key lengths, causal), bias
  // (optional, [B or 1, H or 1, T, S]) is added to the scaled scores.
  Var operator()(const Var& x_q, const Var& x_kv, const SdpaOptions& options, const Var& bias = Var()) const;
  // x [B,T,C] attending to itself: operator()(x, x, options, bias) with Q, K and V from one product.
  Var self_attention(const Var& x, const SdpaOptions& options, const Var& bias = Var()) const;
  // x_kv [B,S,C] -> its keys and values, [B,H,S,D] each.
  std::pair<Var, Var> keys_values(const Var& x_kv) const;
  Var split_heads(const Var& x) const;  // [B,T,C] -> [B,H,T,D]
  Var merge_heads(const Var& x) const;  // [B,H,T,D] -> [B,T,C]
  const Linear& wq() const { return wq_; }
  const Linear& wk() const { return wk_; }
  const Linear& wv() const { return wv_; }
  const Linear& wo() const { return wo_; }
  int heads() const { return heads_; }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override;
  void release_fp32() override;

 private:
  Var heads_of(const Var& joined, int part) const;  // [B,T,n C] -> part's [B,H,T,D]
  Var attend_heads(const Var& q, const Var& k, const Var& v, const SdpaOptions& options, const Var& bias) const;

  Linear wq_, wk_, wv_, wo_;
  int dim_ = 0, heads_ = 0;
};

// Position-wise feed-forward: relu(x W_1 + b_1) W_2 + b_2, [..., C] -> [..., C].
class FeedForward : public Module {
 public:
  FeedForward() = default;
  FeedForward(int dim, int hidden, Rng& rng);
  Var operator()(const Var& x, float dropout, Rng* rng) const;
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override;
  void release_fp32() override;

 private:
  Linear w1_, w2_;
};

// Sinusoidal positions (sec. 3.5): pe[t, 2i] = sin(t / 10000^(2i/C)), pe[t, 2i+1] = cos(...).
Tensor sinusoidal_positions(int length, int dim);  // [length, C]

struct LayerOptions {
  bool pre_norm = true;
  float dropout = 0.1f;             // on each sub-layer's output before the residual sum
  float attention_dropout = 0.1f;   // on the attention weights
  float activation_dropout = 0.1f;  // on the feed-forward hidden layer, after the ReLU
  int relative_positions = 0;       // K > 0: self-attention learns a score bias per head and distance to ±K
};

class TransformerEncoderLayer : public Module {
 public:
  TransformerEncoderLayer() = default;
  TransformerEncoderLayer(int dim, int heads, int ffn, LayerOptions options, Rng& rng);
  // x [B,S,C]; key_lengths [B] mask the padding -> [B,S,C].
  Var operator()(const Var& x, const std::vector<int>& key_lengths, Rng* dropout_rng) const;
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override;
  void release_fp32() override;

 private:
  MultiHeadAttention attn_;
  Var relative_bias_;  // [H, 2K+1] with relative positions (relative_positions.h), zero at the start
  FeedForward ffn_;
  LayerNorm ln1_, ln2_;
  LayerOptions opt_;
};

class TransformerDecoderLayer : public Module {
 public:
  TransformerDecoderLayer() = default;
  TransformerDecoderLayer(int dim, int heads, int ffn, LayerOptions options, Rng& rng);
  // y [B,T,C] (causal self-attention), memory [B,S,C] with source lengths -> [B,T,C].
  Var operator()(const Var& y, const Var& memory, const std::vector<int>& source_lengths, Rng* dropout_rng) const;
  // Incremental decoding (no gradient): y_t [B,1,C], the newest position -> [B,1,C]. Appends
  // this position's keys and values to `self_cache`; `cross_cache` holds the projected source
  // keys and values (from cross_keys_values) with the source lengths.
  // With cross_weights, also returns the cross-attention weights of this position, [B,H,1,S]
  // (exact, from the decode kernel's log-sum-exp: sdpa_weights).
  Var step(const Var& y_t, KvCache& self_cache, const KvCache& cross_cache, Tensor* cross_weights = nullptr) const;
  // The cross-attention cache for a memory [B,S,C]: heads' keys and values, lengths = sources.
  KvCache cross_keys_values(const Var& memory, const std::vector<int>& source_lengths) const;
  int heads() const { return self_attn_.heads(); }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override;
  void release_fp32() override;

 private:
  MultiHeadAttention self_attn_, cross_attn_;
  Var relative_bias_;  // [H, 2K+1] with relative positions in the self-attention, zero at the start
  FeedForward ffn_;
  LayerNorm ln1_, ln2_, ln3_;
  LayerOptions opt_;
};

}  // namespace attend
