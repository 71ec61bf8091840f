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
#include "attend/nn/transformer_layers.h"

namespace attend {

struct TransformerConfig {
  int dim = 256;            // C
  int heads = 4;            // H (C divisible by H)
  int ffn = 1024;           // feed-forward width
  int encoder_layers = 3, decoder_layers = 3;
  bool pre_norm = true;     // false: post-LN, as in the paper
  bool tie_embeddings = false;  // output projection = target embedding table (Press & Wolf 2017)
  float dropout = 0.1f;
  int max_length = 512;     // longest sequence the positions cover
  int src_vocab = 0, tgt_vocab = 0;
  void validate() const;    // throws std::invalid_argument naming the field and value
};
void to_json(nlohmann::json& j, const TransformerConfig& c);
void from_json(const nlohmann::json& j, TransformerConfig& c);

class Transformer : public Module {
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
  Var logits(const Batch& batch, Rng* dropout_rng) const;
  // Mean cross-entropy over the target tokens.
  Var loss(const Batch& batch, float label_smoothing, Rng* dropout_rng) const;

  // Greedy decoding, B sources -> token ids per row (without </s>). With use_cache = false every
  // step reruns the decoder over the whole prefix (the reference the cache is tested against).
  struct Decoded {
    std::vector<std::vector<int>> tokens;
    std::vector<std::vector<std::vector<float>>> step_logits;  // [B][steps][V]
    // With the cache: the cross-attention weights of every step, [layers, B, H, S] each.
    std::vector<Tensor> cross_attention;
  };
  Decoded greedy(const Batch& batch, int max_length, bool use_cache = true) const;
  // Beam search over the KV caches (reordered as beams are chosen): per source the finished
  // hypothesis with the best log p / length^length_penalty (length with </s>), and its score.
  struct Beamed {
    std::vector<std::vector<int>> tokens;
    std::vector<double> scores;
  };
  Beamed beam_search(const Batch& batch, int beam, float length_penalty, int max_length) const;

  const TransformerConfig& config() const { return config_; }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;

 private:
  Var embed(const Embedding& table, const std::vector<int>& ids_bm, int B, int L, int offset, Rng* rng) const;
  Var output(const Var& h) const;  // [N,C] -> [N,V]

  TransformerConfig config_;
  Embedding src_emb_, tgt_emb_;
  std::vector<TransformerEncoderLayer> encoder_;
  std::vector<TransformerDecoderLayer> decoder_;
  LayerNorm enc_norm_, dec_norm_;  // pre-LN: after the last layer
  Linear output_;                  // unless tied
  Tensor positions_;               // [max_length, C]
};

}  // namespace attend
