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

namespace attend {

void TransformerConfig::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument("transformer config: " + m); };
  if (dim < 1 || heads < 1 || dim % heads != 0)
    bad("dim " + std::to_string(dim) + " must be a positive multiple of heads " + std::to_string(heads));
  if (ffn < 1) bad("ffn must be >= 1, got " + std::to_string(ffn));
  if (encoder_layers < 1 || decoder_layers < 1 || encoder_layers > 64 || decoder_layers > 64)
    bad("layers must be in [1, 64], got " + std::to_string(encoder_layers) + " and " + std::to_string(decoder_layers));
  if (!(dropout >= 0.0f && dropout < 1.0f)) bad("dropout must be in [0, 1), got " + std::to_string(dropout));
  if (max_length < 1 || max_length > (1 << 16)) bad("max_length must be in [1, 65536], got " + std::to_string(max_length));
  if (src_vocab < 5 || tgt_vocab < 5)
    bad("vocabularies need at least one real token, got " + std::to_string(src_vocab) + " and " + std::to_string(tgt_vocab));
  if (dim > (1 << 14) || ffn > (1 << 16) || src_vocab > (1 << 22) || tgt_vocab > (1 << 22))
    bad("sizes beyond the limits (dim 16384, ffn 65536, vocabularies 4M)");
}

void to_json(nlohmann::json& j, const TransformerConfig& c) {
  j = {{"dim", c.dim}, {"heads", c.heads}, {"ffn", c.ffn}, {"encoder_layers", c.encoder_layers},
       {"decoder_layers", c.decoder_layers}, {"pre_norm", c.pre_norm}, {"tie_embeddings", c.tie_embeddings},
       {"dropout", c.dropout}, {"max_length", c.max_length}, {"src_vocab", c.src_vocab}, {"tgt_vocab", c.tgt_vocab}};
}

void from_json(const nlohmann::json& j, TransformerConfig& c) {
  c.dim = j.at("dim"), c.heads = j.at("heads"), c.ffn = j.at("ffn");
  c.encoder_layers = j.at("encoder_layers"), c.decoder_layers = j.at("decoder_layers");
  c.pre_norm = j.at("pre_norm"), c.tie_embeddings = j.at("tie_embeddings"), c.dropout = j.at("dropout");
  c.max_length = j.at("max_length"), c.src_vocab = j.at("src_vocab"), c.tgt_vocab = j.at("tgt_vocab");
  c.validate();
}

Transformer::Transformer(const TransformerConfig& config, Rng& rng) : config_(config) {
  config.validate();
  const int C = config.dim;
  src_emb_ = Embedding(config.src_vocab, C, rng);
  tgt_emb_ = Embedding(config.tgt_vocab, C, rng);
  const LayerOptions lo{config.pre_norm, config.dropout};
  for (int l = 0; l < config.encoder_layers; ++l) encoder_.emplace_back(C, config.heads, config.ffn, lo, rng);
  for (int l = 0; l < config.decoder_layers; ++l) decoder_.emplace_back(C, config.heads, config.ffn, lo, rng);
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
  return config_.tie_embeddings ? matmul(h, tgt_emb_.table(), /*trans_a=*/false, /*trans_b=*/true) : output_(h);
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
  Var x = embed(src_emb_, batch_major(src, e.B, S), e.B, S, 0, rng);  // [B,S,C]
  for (const auto& layer : encoder_) x = layer(x, lengths, rng);
  e.memory = config_.pre_norm ? enc_norm_(x) : x;
  return e;
}

Var Transformer::logits(const Batch& batch, Rng* rng) const {
  if (batch.T == 0) throw std::invalid_argument("Transformer::logits: the batch has no targets");
  const Encoded enc = encode(batch.src, batch.src_lengths, batch.S, rng);
  Var y = embed(tgt_emb_, batch_major(batch.tgt_in, batch.B, batch.T), batch.B, batch.T, 0, rng);  // [B,T,C]
  for (const auto& layer : decoder_) y = layer(y, enc.memory, enc.lengths, rng);
  if (config_.pre_norm) y = dec_norm_(y);
  // [B,T,C] -> time-major [T*B, C], as the targets are.
  Var h = reshape(transpose01(y), Shape{int64_t(batch.T) * batch.B, config_.dim});
  return output(h);
}

Var Transformer::loss(const Batch& batch, float label_smoothing, Rng* rng) const {
  return cross_entropy(logits(batch, rng), batch.tgt_out, {.ignore_index = Vocab::kPad, .label_smoothing = label_smoothing});
}

Transformer::Decoded Transformer::greedy(const Batch& batch, int max_length, bool use_cache) const {
  NoGradScope no_grad;
  const Encoded enc = encode(batch.src, batch.src_lengths, batch.S, nullptr);
  const int B = enc.B, C = config_.dim, V = config_.tgt_vocab;
  const int steps = std::min(max_length, config_.max_length);
  Decoded out;
  out.tokens.assign(B, {});
  out.step_logits.assign(B, {});
  std::vector<KvCache> self, cross;
  if (use_cache)
    for (const auto& layer : decoder_) {
      self.emplace_back(B, layer.heads(), steps, C / layer.heads());
      cross.push_back(layer.cross_keys_values(enc.memory, enc.lengths));
    }
  std::vector<int> prefix;  // batch-major [B * t] of the inputs so far (without cache)
  std::vector<int> prev(B, Vocab::kBos);
  std::vector<bool> done(B, false);
  for (int t = 0; t < steps; ++t) {
    Var h;  // [B,C] for position t
    if (use_cache) {
      Var y = embed(tgt_emb_, prev, B, 1, t, nullptr);  // [B,1,C]
      const int L = static_cast<int>(decoder_.size()), H = decoder_[0].heads();
      Tensor weights(Shape{L, B, H, enc.S});
      for (int l = 0; l < L; ++l) {
        Tensor w;  // [B,H,1,S]
        y = decoder_[l].step(y, self[l], cross[l], &w);
        std::copy(w.data(), w.data() + w.numel(), weights.data() + int64_t(l) * B * H * enc.S);
      }
      out.cross_attention.push_back(weights);
      if (config_.pre_norm) y = dec_norm_(y);
      h = reshape(y, Shape{B, C});
    } else {
      std::vector<int> ids(size_t(B) * (t + 1));
      for (int b = 0; b < B; ++b) {
        for (int k = 0; k < t; ++k) ids[size_t(b) * (t + 1) + k] = prefix[size_t(b) * t + k];
        ids[size_t(b) * (t + 1) + t] = prev[b];
      }
      prefix = ids;
      Var y = embed(tgt_emb_, ids, B, t + 1, 0, nullptr);
      for (const auto& layer : decoder_) y = layer(y, enc.memory, enc.lengths, nullptr);
      if (config_.pre_norm) y = dec_norm_(y);
      h = reshape(slice(y, 1, t, 1), Shape{B, C});
    }
    const Tensor z = output(h).value();  // [B,V]
    bool all_done = true;
    for (int b = 0; b < B; ++b) {
      const float* row = z.data() + int64_t(b) * V;
      out.step_logits[b].emplace_back(row, row + V);
      int best = 0;
      for (int v = 1; v < V; ++v)
        if (row[v] > row[best]) best = v;
      if (!done[b]) {
        if (best == Vocab::kEos) done[b] = true;
        else out.tokens[b].push_back(best);
      }
      prev[b] = best;
      all_done = all_done && done[b];
    }
    if (all_done) break;
  }
  return out;
}

Transformer::Beamed Transformer::beam_search(const Batch& batch, int K, float length_penalty, int max_length) const {
  if (K < 1) throw std::invalid_argument("beam_search: beam must be >= 1, got " + std::to_string(K));
  NoGradScope no_grad;
  const Encoded enc = encode(batch.src, batch.src_lengths, batch.S, nullptr);
  const int B = enc.B, C = config_.dim, V = config_.tgt_vocab, N = B * K;
  const int steps = std::min(max_length, config_.max_length);
  // Every source's memory repeated for its K beams: row b * K + k.
  std::vector<int> rows(N), lengths(N);
  for (int i = 0; i < N; ++i) rows[i] = i / K, lengths[i] = enc.lengths[i / K];
  Tensor memory = gather_rows(enc.memory.value(), rows);  // [N,S,C]
  std::vector<KvCache> self, cross;
  for (const auto& layer : decoder_) {
    self.emplace_back(N, layer.heads(), steps, C / layer.heads());
    cross.push_back(layer.cross_keys_values(Var(memory), lengths));
  }
  struct Hyp {
    std::vector<int> tokens;
    double logp = 0.0;
  };
  std::vector<Hyp> alive(N);
  std::vector<double> alive_score(N, -INFINITY);
  for (int b = 0; b < B; ++b) alive_score[b * K] = 0.0;  // one live beam per source at the start
  std::vector<std::vector<std::pair<double, Hyp>>> finished(B);
  auto normalised = [&](const Hyp& h, int length) { return h.logp / std::pow(double(length), double(length_penalty)); };
  std::vector<int> prev(N, Vocab::kBos);
  for (int t = 0; t < steps; ++t) {
    Var y = embed(tgt_emb_, prev, N, 1, t, nullptr);
    for (size_t l = 0; l < decoder_.size(); ++l) y = decoder_[l].step(y, self[l], cross[l]);
    if (config_.pre_norm) y = dec_norm_(y);
    const Tensor z = output(reshape(y, Shape{N, C})).value();  // [N,V]
    std::vector<int> from(N);
    std::vector<Hyp> next(N);
    std::vector<double> next_score(N, -INFINITY);
    bool any_alive = false;
    for (int b = 0; b < B; ++b) {
      std::vector<std::tuple<double, int, int>> cand;  // (log p, beam, token)
      for (int k = 0; k < K; ++k) {
        const int i = b * K + k;
        if (alive_score[i] == -INFINITY) continue;
        const float* row = z.data() + int64_t(i) * V;
        const float mx = *std::max_element(row, row + V);
        double se = 0.0;
        for (int v = 0; v < V; ++v) se += std::exp(double(row[v]) - mx);
        const double lse = mx + std::log(se);
        for (int v = 0; v < V; ++v)
          if (v != Vocab::kPad && v != Vocab::kBos) cand.emplace_back(alive_score[i] + row[v] - lse, k, v);
      }
      std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& c) { return std::get<0>(a) > std::get<0>(c); });
      int filled = 0;
      for (const auto& [lp, k, v] : cand) {
        if (filled == K) break;
        Hyp h = alive[b * K + k];
        h.logp = lp;
        if (v == Vocab::kEos || t + 1 == steps) {  // ended by </s>, or cut at the length limit
          if (v != Vocab::kEos) h.tokens.push_back(v);
          const int length = static_cast<int>(h.tokens.size()) + (v == Vocab::kEos ? 1 : 0);
          finished[b].emplace_back(normalised(h, length), h);
          if (static_cast<int>(finished[b].size()) >= K) break;
          continue;
        }
        h.tokens.push_back(v);
        const int i = b * K + filled;
        from[i] = b * K + k, next[i] = h, next_score[i] = lp, prev[i] = v;
        ++filled;
      }
      if (static_cast<int>(finished[b].size()) >= K) filled = 0;  // this source is done
      for (int k = filled; k < K; ++k) from[b * K + k] = b * K, next_score[b * K + k] = -INFINITY;
      any_alive = any_alive || filled > 0;
    }
    for (auto& c : self) c.reorder(from);
    alive = std::move(next);
    alive_score = std::move(next_score);
    if (!any_alive) break;
  }
  Beamed out;
  for (int b = 0; b < B; ++b) {
    auto best = std::max_element(finished[b].begin(), finished[b].end(),
                                 [](const auto& a, const auto& c) { return a.first < c.first; });
    out.tokens.push_back(best == finished[b].end() ? std::vector<int>{} : best->second.tokens);
    out.scores.push_back(best == finished[b].end() ? -INFINITY : best->first);
  }
  return out;
}

void Transformer::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  src_emb_.collect(prefix + "src_embedding.", out);
  tgt_emb_.collect(prefix + "tgt_embedding.", out);
  for (size_t l = 0; l < encoder_.size(); ++l) encoder_[l].collect(prefix + "encoder." + std::to_string(l) + ".", out);
  for (size_t l = 0; l < decoder_.size(); ++l) decoder_[l].collect(prefix + "decoder." + std::to_string(l) + ".", out);
  if (config_.pre_norm) {
    enc_norm_.collect(prefix + "encoder_norm.", out);
    dec_norm_.collect(prefix + "decoder_norm.", out);
  }
  if (!config_.tie_embeddings) output_.collect(prefix + "output.", out);
}

}  // namespace attend
