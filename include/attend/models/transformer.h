// attend models: the Transformer encoder-decoder (Vaswani et al. 2017), on attend's fused
// multi-head attention.
//
// Shapes: B batch, S source length, T target length, C model dim, V vocabulary. Token ids come
// in the time-major batches of data/batch.h; inside, activations are batch-major [B, *, C].
// Embeddings are scaled by sqrt(C) and summed with sinusoidal positions; pre-LN layers end with
// a final LayerNorm on each stack. Decoding runs position by position with a KV cache per
// decoder layer (self-attention) and the source's projected keys and values (cross-attention).
#pragma once

#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attend/data/batch.h"
#include "attend/models/model.h"
#include "attend/nn/transformer_layers.h"

namespace attend {

// The defaults are a small model for small tasks on a CPU (dates); the G2P recipe of the CLI
// uses dim 256, ffn 1024 and 3 layers each side.
struct TransformerConfig {
  int dim = 128;  // C
  int heads = 4;  // H (C divisible by H)
  int ffn = 512;  // feed-forward width
  int encoder_layers = 2, decoder_layers = 2;
  bool pre_norm = true;         // false: post-LN, as in the paper
  bool tie_embeddings = false;  // output projection = target embedding table (Press & Wolf 2017)
  // The encoder reads the target embedding table too: one matrix for source, target and output
  // (fairseq's --share-all-embeddings; needs one vocabulary for both sides and tie_embeddings).
  bool share_all_embeddings = false;
  float dropout = 0.1f;             // embeddings and each sub-layer's output
  float attention_dropout = 0.1f;   // the attention weights (fairseq --attention-dropout)
  float activation_dropout = 0.1f;  // the feed-forward hidden layer (fairseq --activation-dropout)
  // > 0: the encoder's self-attention learns a bias per head for each query-key distance,
  // clipped to ±relative_positions (relative_positions.h), on top of the sinusoids
  int relative_positions = 0;
  int decoder_relative_positions = 0;  // the same for the decoder's (causal) self-attention
  int max_length = 512;                // longest sequence the positions cover
  int src_vocab = 0, tgt_vocab = 0;
  void validate() const;  // throws std::invalid_argument naming the field and value
};
void to_json(nlohmann::json& j, const TransformerConfig& c);
void from_json(const nlohmann::json& j, TransformerConfig& c);

class Transformer : public Model {
 public:
  Transformer(const TransformerConfig& config, Rng& rng);

  struct Encoded {
    Var memory;                // [B,S,C]
    std::vector<int> lengths;  // [B]
    int B = 0, S = 0;
  };
  // src time-major [S*B] with lengths -> the encoder's output.
  Encoded encode(const std::vector<int>& src, const std::vector<int>& lengths, int S, Rng* dropout_rng) const;
  // Teacher-forced logits [T*B, V], time-major like batch.tgt_out (dropout on with an Rng).
  Var logits(const Batch& batch, Rng* dropout_rng) const override;
  // Mean cross-entropy over the target tokens.
  using Model::loss;
  Var loss(const Batch& batch, const CrossEntropyOptions& targets, Rng* dropout_rng) const override;
  // Decoding position by position over a KV cache per decoder layer (self-attention, reordered
  // as beams are chosen) and the source's projected keys and values (cross-attention). A step's
  // weights are every layer's and head's cross-attention, [N, layers*heads, S], map l*H + h.
  std::unique_ptr<StepDecoder> decoder(const Batch& batch, int rows_per_source,
                                       const DecodeOptions& options) const override;
  std::vector<AttentionMap> attention_maps() const override;  // layer 1 head 1, layer 1 head 2, ...
  int max_source_length() const override { return config_.max_length; }
  Architecture architecture() const override { return Architecture::kTransformer; }
  nlohmann::json config_json() const override;

  const TransformerConfig& config() const { return config_; }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override;  // every layer's products, the embedding tables and the output layer
  void release_fp32() override;

 private:
  friend class TransformerStepDecoder;  // transformer.cpp
  Var embed(const Embedding& table, const std::vector<int>& ids_bm, int B, int L, int offset, Rng* rng) const;
  Var output(const Var& h) const;  // [N,C] -> [N,V]

  TransformerConfig config_;
  Embedding src_emb_, tgt_emb_;
  std::vector<TransformerEncoderLayer> encoder_;
  std::vector<TransformerDecoderLayer> decoder_cell_;
  LayerNorm enc_norm_, dec_norm_;  // pre-LN: after the last layer
  Linear output_;                  // unless tied
  Tensor positions_;               // [max_length, C]
};

}  // namespace attend
