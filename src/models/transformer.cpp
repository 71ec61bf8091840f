#include "attend/models/transformer.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "attend/data/vocab.h"
#include "attend/ops/dropout.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/loss.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"
#include "attend/models/model_config.h"
#include "../io/json_field.h"

namespace attend {

void TransformerConfig::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument("transformer config: " + m); };
  if (dim < 1 || heads < 1 || dim % heads != 0)
    bad("dim " + std::to_string(dim) + " must be a positive multiple of heads " + std::to_string(heads));
  if (ffn < 1) bad("ffn must be >= 1, got " + std::to_string(ffn));
  if (encoder_layers < 1 || decoder_layers < 1 || encoder_layers > 64 || decoder_layers > 64)
    bad("layers must be in [1, 64], got " + std::to_string(encoder_layers) + " and " + std::to_string(decoder_layers));
  for (auto [name, p] : {std::pair{"dropout", dropout}, std::pair{"attention_dropout", attention_dropout},
                         std::pair{"activation_dropout", activation_dropout}})
    if (!(p >= 0.0f && p < 1.0f)) bad(std::string(name) + " must be in [0, 1), got " + std::to_string(p));
  if (max_length < 1 || max_length > (1 << 16))
    bad("max_length must be in [1, 65536], got " + std::to_string(max_length));
  for (auto [name, k] : {std::pair{"relative_positions", relative_positions},
                         std::pair{"decoder_relative_positions", decoder_relative_positions}})
    if (k < 0 || k > max_length)
      bad(std::string(name) + " must be in [0, max_length " + std::to_string(max_length) + "], got " +
          std::to_string(k));
  if (src_vocab < 5 || tgt_vocab < 5)
    bad("vocabularies need at least one real token, got " + std::to_string(src_vocab) + " and " +
        std::to_string(tgt_vocab));
  if (share_all_embeddings && (!tie_embeddings || src_vocab != tgt_vocab))
    bad("share_all_embeddings needs tie_embeddings and one vocabulary for both sides, got vocabularies " +
        std::to_string(src_vocab) + " and " + std::to_string(tgt_vocab));
  if (dim > (1 << 14) || ffn > (1 << 16) || src_vocab > (1 << 22) || tgt_vocab > (1 << 22))
    bad("sizes beyond the limits (dim 16384, ffn 65536, vocabularies 4M)");
}

void to_json(nlohmann::json& j, const TransformerConfig& c) {
  j = {{"dim", c.dim},
       {"heads", c.heads},
       {"ffn", c.ffn},
       {"encoder_layers", c.encoder_layers},
       {"decoder_layers", c.decoder_layers},
       {"pre_norm", c.pre_norm},
       {"tie_embeddings", c.tie_embeddings},
       {"share_all_embeddings", c.share_all_embeddings},
       {"dropout", json_float(c.dropout)},
       {"attention_dropout", json_float(c.attention_dropout)},
       {"activation_dropout", json_float(c.activation_dropout)},
       {"relative_positions", c.relative_positions},
       {"decoder_relative_positions", c.decoder_relative_positions},
       {"max_length", c.max_length},
       {"src_vocab", c.src_vocab},
       {"tgt_vocab", c.tgt_vocab}};
}

void from_json(const nlohmann::json& j, TransformerConfig& c) {
  const char* w = "transformer config";
  reject_unknown_fields(j,
                        {"architecture", "dim", "heads", "ffn", "encoder_layers", "decoder_layers", "pre_norm",
                         "tie_embeddings", "share_all_embeddings", "dropout", "attention_dropout", "activation_dropout",
                         "relative_positions", "decoder_relative_positions", "max_length", "src_vocab", "tgt_vocab"},
                        w);
  c.dim = json_field<int>(j, "dim", w), c.heads = json_field<int>(j, "heads", w), c.ffn = json_field<int>(j, "ffn", w);
  c.encoder_layers = json_field<int>(j, "encoder_layers", w),
  c.decoder_layers = json_field<int>(j, "decoder_layers", w);
  c.pre_norm = json_field<bool>(j, "pre_norm", w, true),
  c.tie_embeddings = json_field<bool>(j, "tie_embeddings", w, false);
  c.share_all_embeddings = json_field<bool>(j, "share_all_embeddings", w, false);
  c.dropout = json_field<float>(j, "dropout", w, 0.1f), c.max_length = json_field<int>(j, "max_length", w, 512);
  // Models saved before the two were separate applied --dropout to both.
  c.attention_dropout = json_field<float>(j, "attention_dropout", w, c.dropout);
  c.activation_dropout = json_field<float>(j, "activation_dropout", w, c.dropout);
  c.relative_positions = json_field<int>(j, "relative_positions", w, 0);                  // absent before 2026-12-01
  c.decoder_relative_positions = json_field<int>(j, "decoder_relative_positions", w, 0);  // before 2026-12-02
  c.src_vocab = json_field<int>(j, "src_vocab", w), c.tgt_vocab = json_field<int>(j, "tgt_vocab", w);
  c.validate();
}

nlohmann::json Transformer::config_json() const {
  ModelConfig c;
  c.architecture = Architecture::kTransformer, c.transformer = config_;
  return c;
}

Transformer::Transformer(const TransformerConfig& config, Rng& rng) : config_(config) {
  config.validate();
  const int C = config.dim;
  if (!config.share_all_embeddings) src_emb_ = Embedding(config.src_vocab, C, rng);
  tgt_emb_ = Embedding(config.tgt_vocab, C, rng);
  const LayerOptions lo{config.pre_norm, config.dropout, config.attention_dropout, config.activation_dropout};
  LayerOptions encoder_options = lo;
  encoder_options.relative_positions = config.relative_positions;
  for (int l = 0; l < config.encoder_layers; ++l)
    encoder_.emplace_back(C, config.heads, config.ffn, encoder_options, rng);
  LayerOptions decoder_options = lo;
  decoder_options.relative_positions = config.decoder_relative_positions;
  for (int l = 0; l < config.decoder_layers; ++l)
    decoder_cell_.emplace_back(C, config.heads, config.ffn, decoder_options, rng);
  if (config.pre_norm) enc_norm_ = LayerNorm(C), dec_norm_ = LayerNorm(C);
  if (!config.tie_embeddings) output_ = Linear(C, config.tgt_vocab, /*bias=*/true, rng);
  positions_ = sinusoidal_positions(config.max_length, C);
}

// ids batch-major [B*L] at positions offset.. -> sqrt(C) emb + pe, [B,L,C].
Var Transformer::embed(const Embedding& table, const std::vector<int>& ids, int B, int L, int offset, Rng* rng) const {
  const int C = config_.dim;
  if (offset + L > config_.max_length)
    throw std::invalid_argument("transformer: position " + std::to_string(offset + L - 1) + " beyond max_length " +
                                std::to_string(config_.max_length));
  Tensor pe(Shape{1, L, C});
  std::copy(positions_.data() + int64_t(offset) * C, positions_.data() + int64_t(offset + L) * C, pe.data());
  Var x = add(scale(reshape(table(ids), Shape{B, L, C}), std::sqrt(static_cast<float>(C))), Var(pe));
  return rng && config_.dropout > 0.0f ? dropout(x, config_.dropout, *rng) : x;
}

Var Transformer::output(const Var& h) const {
  if (!config_.tie_embeddings) return output_(h);
  if (tgt_emb_.int8() && !Tape::current()) return Var(tgt_emb_.int8()->apply(h.value(), Tensor()));
  if (!tgt_emb_.table().defined()) throw_released("Transformer: the tied output layer");
  return matmul(h, tgt_emb_.table(), /*trans_a=*/false, /*trans_b=*/true);
}

// Tied embeddings: the target table's int8 rows are also the output layer's (one copy).
void Transformer::quantize() {
  for (auto& layer : encoder_) layer.quantize();
  for (auto& layer : decoder_cell_) layer.quantize();
  if (!config_.share_all_embeddings) src_emb_.quantize();
  tgt_emb_.quantize();
  if (!config_.tie_embeddings) output_.quantize();
}

void Transformer::release_fp32() {
  for (auto& layer : encoder_) layer.release_fp32();
  for (auto& layer : decoder_cell_) layer.release_fp32();
  if (!config_.share_all_embeddings) src_emb_.release_fp32();
  tgt_emb_.release_fp32();
  if (!config_.tie_embeddings) output_.release_fp32();
}

namespace {
std::vector<int> batch_major(const std::vector<int>& tm, int B, int L) {  // [L*B] -> [B*L]
  std::vector<int> out(tm.size());
  for (int t = 0; t < L; ++t)
    for (int b = 0; b < B; ++b) out[size_t(b) * L + t] = tm[size_t(t) * B + b];
  return out;
}
}  // namespace

Transformer::Encoded Transformer::encode(const std::vector<int>& src, const std::vector<int>& lengths, int S,
                                         Rng* rng) const {
  Encoded e;
  e.B = static_cast<int>(lengths.size()), e.S = S, e.lengths = lengths;
  const Embedding& source_table = config_.share_all_embeddings ? tgt_emb_ : src_emb_;
  Var x = embed(source_table, batch_major(src, e.B, S), e.B, S, 0, rng);  // [B,S,C]
  for (const auto& layer : encoder_) x = layer(x, lengths, rng);
  e.memory = config_.pre_norm ? enc_norm_(x) : x;
  return e;
}

Var Transformer::logits(const Batch& batch, Rng* rng) const {
  if (batch.T == 0) throw std::invalid_argument("Transformer::logits: the batch has no targets");
  const Encoded enc = encode(batch.src, batch.src_lengths, batch.S, rng);
  Var y = embed(tgt_emb_, batch_major(batch.tgt_in, batch.B, batch.T), batch.B, batch.T, 0, rng);  // [B,T,C]
  for (const auto& layer : decoder_cell_) y = layer(y, enc.memory, enc.lengths, rng);
  if (config_.pre_norm) y = dec_norm_(y);
  // [B,T,C] -> time-major [T*B, C], as the targets are.
  Var h = reshape(transpose01(y), Shape{int64_t(batch.T) * batch.B, config_.dim});
  return output(h);
}

Var Transformer::loss(const Batch& batch, const CrossEntropyOptions& targets, Rng* rng) const {
  CrossEntropyOptions ce = targets;
  ce.ignore_index = Vocab::kPad;
  return cross_entropy(logits(batch, rng), batch.tgt_out, ce);
}

class TransformerStepDecoder final : public StepDecoder {
 public:
  TransformerStepDecoder(const Transformer& m, const Batch& batch, int K, const DecodeOptions& opt) : m_(m) {
    NoGradScope no_grad;
    const Transformer::Encoded enc = m.encode(batch.src, batch.src_lengths, batch.S, nullptr);
    N_ = enc.B * K, S_ = enc.S;
    const int C = m.config_.dim;
    // The search's step limit, within the positions the model has; the caches hold that many.
    max_steps_ = std::min(step_limit(batch.S, opt), m.config_.max_length);
    for (const auto& layer : m.decoder_cell_) {
      self_.emplace_back(N_, layer.heads(), max_steps_, C / layer.heads());
      // The source's keys and values, projected once per source, then copied for its K rows.
      cross_.push_back(layer.cross_keys_values(enc.memory, enc.lengths));
      if (K > 1) cross_.back().reorder(beam_rows(enc.B, K));
    }
  }

  NextTokenScores step(const std::vector<int>& prev) override {
    NoGradScope no_grad;
    const int L = static_cast<int>(m_.decoder_cell_.size()), H = m_.decoder_cell_[0].heads(), C = m_.config_.dim;
    Var y = m_.embed(m_.tgt_emb_, prev, N_, 1, t_, nullptr);  // [N,1,C]
    Tensor weights = Tensor::empty(Shape{N_, L * H, S_});
    for (int l = 0; l < L; ++l) {
      Tensor w;  // [N,H,1,S]
      y = m_.decoder_cell_[l].step(y, self_[l], cross_[l], &w);
      for (int n = 0; n < N_; ++n)
        std::copy(w.data() + int64_t(n) * H * S_, w.data() + int64_t(n + 1) * H * S_,
                  weights.data() + (int64_t(n) * L + l) * H * S_);
    }
    if (m_.config_.pre_norm) y = m_.dec_norm_(y);
    ++t_;
    return {m_.output(reshape(y, Shape{N_, C})).value(), weights};
  }

  void reorder(const std::vector<int>& parents) override {
    for (auto& c : self_) c.reorder(parents);  // (a source's rows share their cross-attention cache)
  }

  bool keep(const std::vector<int>& rows) override {
    for (auto& c : self_) c.reorder(rows);
    for (auto& c : cross_) c.reorder(rows);
    N_ = static_cast<int>(rows.size());
    return true;
  }
  int max_steps() const override { return max_steps_; }

 private:
  const Transformer& m_;
  int N_ = 0, S_ = 0, t_ = 0, max_steps_ = 0;
  std::vector<KvCache> self_, cross_;
};

std::unique_ptr<StepDecoder> Transformer::decoder(const Batch& batch, int rows_per_source,
                                                  const DecodeOptions& options) const {
  if (rows_per_source < 1)
    throw std::invalid_argument("Transformer::decoder: rows per source must be >= 1, got " +
                                std::to_string(rows_per_source));
  if (options.window_back >= 0 || options.window_forward >= 0)
    throw std::invalid_argument(
        "the window constraint (--window-back/--window-forward) steers an RNN model's attention; "
        "a Transformer has no single attention to constrain");
  return std::make_unique<TransformerStepDecoder>(*this, batch, rows_per_source, options);
}

std::vector<AttentionMap> Transformer::attention_maps() const {
  std::vector<AttentionMap> maps;
  for (int l = 1; l <= config_.decoder_layers; ++l)
    for (int h = 1; h <= config_.heads; ++h)
      maps.push_back({"layer " + std::to_string(l) + " head " + std::to_string(h), l, h});
  return maps;
}

void Transformer::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  if (!config_.share_all_embeddings) src_emb_.collect(prefix + "src_embedding.", out);
  tgt_emb_.collect(prefix + "tgt_embedding.", out);
  for (size_t l = 0; l < encoder_.size(); ++l) encoder_[l].collect(prefix + "encoder." + std::to_string(l) + ".", out);
  for (size_t l = 0; l < decoder_cell_.size(); ++l)
    decoder_cell_[l].collect(prefix + "decoder." + std::to_string(l) + ".", out);
  if (config_.pre_norm) {
    enc_norm_.collect(prefix + "encoder_norm.", out);
    dec_norm_.collect(prefix + "decoder_norm.", out);
  }
  if (!config_.tie_embeddings) output_.collect(prefix + "output.", out);
}

}  // namespace attend
