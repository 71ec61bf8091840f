#include "attend/models/seq2seq.h"

#include <nlohmann/json.hpp>
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <stdexcept>

#include "attend/attention/registry.h"
#include "attend/ops/dropout.h"
#include "attend/ops/embedding.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/loss.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"
#include "attend/ops/matmul.h"
#include "attend/ops/reduce.h"
#include "attend/models/model_config.h"
#include "../io/json_field.h"

namespace attend {

void Seq2SeqConfig::validate() const {
  auto positive = [](const char* name, int v) {
    if (v < 1)
      throw std::invalid_argument(std::string("model config: ") + name + " must be >= 1, got " + std::to_string(v));
  };
  positive("embedding", embedding);
  positive("hidden", hidden);
  positive("encoder_layers", encoder_layers);
  if (encoder_hidden < 0)
    throw std::invalid_argument("model config: encoder_hidden must be >= 0, got " + std::to_string(encoder_hidden));
  if (encoder_hidden == 0 && bidirectional && hidden % 2 != 0)
    throw std::invalid_argument("model config: hidden must be even with a bidirectional encoder, got " +
                                std::to_string(hidden));
  attention.validate();
  const ScoreKind score = attention.score;
  if ((score == ScoreKind::kDot || score == ScoreKind::kScaledDot) && memory_size() != hidden)
    throw std::invalid_argument("model config: the " + to_string(score) + " score needs encoder outputs (" +
                                std::to_string(memory_size()) + ") as wide as the decoder (" + std::to_string(hidden) +
                                ")");
  if (!(dropout >= 0.0f && dropout < 1.0f))
    throw std::invalid_argument("model config: dropout must be in [0, 1), got " + std::to_string(dropout));
  if (src_vocab < 5 || tgt_vocab < 5)
    throw std::invalid_argument("model config: vocabularies need at least one real token, got " +
                                std::to_string(src_vocab) + " and " + std::to_string(tgt_vocab));
  // Sane bounds, so a hostile or mistyped config.json is an error rather than a 100 GB allocation.
  auto at_most = [](const char* name, int64_t v, int64_t limit) {
    if (v > limit)
      throw std::invalid_argument(std::string("model config: ") + name + " is " + std::to_string(v) +
                                  ", more than the limit of " + std::to_string(limit));
  };
  constexpr int64_t kMaxWidth = 1 << 14, kMaxVocab = 1 << 22, kMaxLayers = 32, kMaxElements = int64_t(1) << 31;
  at_most("embedding", embedding, kMaxWidth);
  at_most("hidden", hidden, kMaxWidth);
  at_most("encoder_hidden", encoder_hidden, kMaxWidth);
  at_most("attention_dim", attention.attention_dim, kMaxWidth);
  at_most("encoder_layers", encoder_layers, kMaxLayers);
  at_most("src_vocab", src_vocab, kMaxVocab);
  at_most("tgt_vocab", tgt_vocab, kMaxVocab);
  at_most("src_vocab x embedding", int64_t(src_vocab) * embedding, kMaxElements);
  at_most("tgt_vocab x hidden", int64_t(tgt_vocab) * std::max(hidden, embedding), kMaxElements);
}

void to_json(nlohmann::json& j, const Seq2SeqConfig& c) {
  j = {{"cell", to_string(c.cell)},
       {"embedding", c.embedding},
       {"hidden", c.hidden},
       {"encoder_hidden", c.encoder_size()},
       {"bidirectional", c.bidirectional},
       {"encoder_layers", c.encoder_layers},
       {"input_feeding", c.input_feeding},
       {"dropout", json_float(c.dropout)},
       {"src_vocab", c.src_vocab},
       {"tgt_vocab", c.tgt_vocab}};
  j.update(nlohmann::json(c.attention));  // the attention's fields, at the same level (as files always had them)
}

namespace {
template <class T>
T field(const nlohmann::json& j, const char* name, std::optional<T> fallback = std::nullopt) {
  return json_field<T>(j, name, "model config", fallback);
}
}  // namespace

void from_json(const nlohmann::json& j, Seq2SeqConfig& c) {
  if (!j.is_object())
    throw std::invalid_argument("model config: expected a JSON object, got " + j.dump().substr(0, 60));
  std::vector<std::string> known = {"architecture",   "cell",           "embedding",     "hidden",
                                    "encoder_hidden", "encoder_layers", "bidirectional", "input_feeding",
                                    "dropout",        "src_vocab",      "tgt_vocab"};
  const std::string mechanism =
      j.contains("attention") && j["attention"].is_string() ? j["attention"].get<std::string>() : default_mechanism();
  for (const std::string& k : attention_json_keys(mechanism)) known.push_back(k);
  reject_unknown_fields(j, known, "model config");
  c.cell = parse_cell(field<std::string>(j, "cell"));
  c.embedding = field<int>(j, "embedding");
  c.hidden = field<int>(j, "hidden");
  c.encoder_hidden = field<int>(j, "encoder_hidden", 0);
  c.encoder_layers = field<int>(j, "encoder_layers", 1);
  c.bidirectional = field<bool>(j, "bidirectional");
  c.input_feeding = field<bool>(j, "input_feeding");
  c.dropout = field<float>(j, "dropout");
  c.src_vocab = field<int>(j, "src_vocab");
  c.tgt_vocab = field<int>(j, "tgt_vocab");
  c.attention = j.get<AttentionConfig>();
  c.validate();
}

nlohmann::json Seq2Seq::config_json() const {
  ModelConfig c;
  c.architecture = Architecture::kRnn, c.rnn = config_;
  return c;
}

Seq2Seq::Seq2Seq(const Seq2SeqConfig& config, Rng& rng) : config_(config) {
  config.validate();
  const int H = config.hidden, E = config.embedding;
  const int He = config.encoder_size(), M = config.memory_size();  // per direction; encoder output size
  src_emb_ = Embedding(config.src_vocab, E, rng);
  tgt_emb_ = Embedding(config.tgt_vocab, E, rng);
  for (int l = 0; l < config.encoder_layers; ++l)
    encoder_.emplace_back(config.cell, l == 0 ? E : M, He, config.bidirectional, rng);
  bridge_h_ = Linear(M, H, /*bias=*/true, rng);
  if (config.cell == CellKind::kLstm) bridge_c_ = Linear(M, H, /*bias=*/true, rng);
  decoder_cell_ = RnnCell(config.cell, E + (config.input_feeding ? H : 0), H, rng);
  attention_ = make_attention(config.attention, /*query_dim=*/H, /*key_dim=*/M, rng);
  attentional_layer_ = Linear(M + H, H, /*bias=*/false, rng);
  output_ = Linear(H, config.tgt_vocab, /*bias=*/true, rng);
}

// Input projections of embedded tokens can be computed per vocabulary entry instead of per
// token: emb(v) W + b for all V entries, then a row lookup. Exact (the same products), and
// cheaper whenever V is smaller than the number of tokens; only without dropout on embeddings.
namespace {
bool use_table(int vocab, int64_t tokens, Rng* dropout_rng) { return dropout_rng == nullptr && vocab < tokens; }
}  // namespace

Seq2Seq::Encoded Seq2Seq::encode(const std::vector<int>& src, const std::vector<int>& lengths, int S,
                                 Rng* dropout_rng) const {
  const int B = static_cast<int>(lengths.size());
  const Rnn& first = encoder_[0];
  std::vector<Var> gi;  // per direction, [S*B, G*He]
  const bool frozen = use_frozen(dropout_rng);
  if (frozen || use_table(config_.src_vocab, int64_t(S) * B, dropout_rng)) {  // a row per vocabulary entry, looked up
    for (int d = 0; d < first.directions(); ++d)
      gi.push_back(frozen ? frozen_->source_gates[d].rows(src)
                          : embedding(first.cell(d).project_input(src_emb_.table()), src));
  } else {
    Var x = src_emb_(src);  // [S*B, E]
    if (dropout_rng) x = dropout(x, config_.dropout, *dropout_rng);
    for (int d = 0; d < first.directions(); ++d) gi.push_back(first.cell(d).project_input(x));
  }
  Rnn::Output enc = first.forward_projected(gi, lengths, S);  // outputs [S,B,M]
  for (size_t l = 1; l < encoder_.size(); ++l) {
    Var x = reshape(enc.outputs, Shape{int64_t(S) * B, config_.memory_size()});
    if (dropout_rng) x = dropout(x, config_.dropout, *dropout_rng);
    enc = encoder_[l].forward(x, lengths, S);
  }
  Var memory = transpose01(enc.outputs);  // [B,S,M]
  Tensor mask(Shape{B, S});
  for (int b = 0; b < B; ++b)
    for (int s = 0; s < lengths[b]; ++s) mask.data()[int64_t(b) * S + s] = 1.0f;
  // The encoder's last state: forward after the last token, backward after the first.
  auto last = [&](auto member) {
    return enc.last.size() == 2 ? concat({enc.last[0].*member, enc.last[1].*member}, 1) : enc.last[0].*member;
  };
  Encoded out;
  out.B = B, out.S = S;
  out.bridge.h = tanh(bridge_h_(last(&RnnState::h)));  // [B,H]
  if (config_.cell == CellKind::kLstm) out.bridge.c = bridge_c_(last(&RnnState::c));
  out.memory = attention_->prepare(memory, memory, mask, out.bridge.h);
  out.target_gates = target_gates_for(int64_t(B) * (2 * S + 10), dropout_rng);  // decoding: at most 2S+10 steps
  return out;
}

Var Seq2Seq::GateTable::rows(const std::vector<int>& ids) const {
  return int8 ? Var(int8->rows(ids)) : embedding(fp32, ids);
}

void Seq2Seq::GateTable::rows(const std::vector<int>& ids, float* out) const {
  if (int8) return int8->rows(ids.data(), static_cast<int64_t>(ids.size()), out);
  const int64_t GH = fp32.size(1);
  for (size_t n = 0; n < ids.size(); ++n) std::copy_n(fp32.value().data() + ids[n] * GH, GH, out + n * GH);
}

Var Seq2Seq::target_gate_table() const {
  return decoder_cell_.project_input_rows(tgt_emb_.table(), 0, config_.embedding, /*with_bias=*/true);
}

Seq2Seq::GateTable Seq2Seq::target_gates_for(int64_t tokens, Rng* dropout_rng) const {
  if (use_frozen(dropout_rng)) return frozen_->target_gates;
  return {use_table(config_.tgt_vocab, tokens, dropout_rng) ? target_gate_table() : Var(), nullptr};
}

void Seq2Seq::freeze() {
  if (frozen_ && !src_emb_.table().defined()) return;  // released: the weights cannot have changed
  NoGradScope no_grad;
  Frozen f;  // (products in the model's precision)
  const Rnn& first = encoder_[0];
  for (int d = 0; d < first.directions(); ++d)
    f.source_gates.push_back({first.cell(d).project_input(src_emb_.table())});
  f.target_gates = {target_gate_table()};
  frozen_ = std::make_shared<const Frozen>(int8_ ? f.in_int8() : f);
}

Seq2Seq::GateTable Seq2Seq::GateTable::in_int8() const {
  if (int8) return *this;
  const Tensor& t = fp32.value();  // [V, G*H]: a row per entry, quantized as an embedding table's
  return {Var(), Int8Weight::from_out_in(t.data(), static_cast<int>(t.size(0)), static_cast<int>(t.size(1)))};
}

Seq2Seq::Frozen Seq2Seq::Frozen::in_int8() const {
  Frozen q{{}, target_gates.in_int8()};
  for (const GateTable& t : source_gates) q.source_gates.push_back(t.in_int8());
  return q;
}

bool Seq2Seq::use_frozen(Rng* dropout_rng) const {
  return frozen_ && dropout_rng == nullptr && !needs_grad({&src_emb_.table(), &tgt_emb_.table()});
}

void Seq2Seq::precompute_memory_combined(Encoded& enc) const {
  if (!attention_->context_is_weighted_values()) return;  // then a_t (h W_c[:M]) is not c_t W_c[:M]
  const int M = config_.memory_size();
  const Var& values = enc.memory.scorer.values;  // [B,S,M]
  enc.memory_combined = reshape(attentional_layer_.apply_rows(reshape(values, Shape{int64_t(enc.B) * enc.S, M}), 0, M,
                                                              /*with_bias=*/false),
                                Shape{enc.B, enc.S, config_.hidden});
}

Seq2Seq::DecoderState Seq2Seq::initial_state(const Encoded& enc) const {
  DecoderState s{enc.bridge, Var(), AttentionState{}, {}};
  if (config_.input_feeding) s.feed = Var(Tensor(Shape{enc.B, config_.hidden}));
  return s;
}

Var Seq2Seq::embedding_gates(const std::vector<int>& ids, const Encoded& enc, Rng* dropout_rng) const {
  if (enc.target_gates.defined()) return enc.target_gates.rows(ids);  // [N, G*H]
  Var y = tgt_emb_(ids);                                              // [N, E]
  if (dropout_rng) y = dropout(y, config_.dropout, *dropout_rng);
  return decoder_cell_.project_input_rows(y, 0, config_.embedding, /*with_bias=*/true);
}

RnnState Seq2Seq::advance_decoder_cell(const Var& gates_emb, const DecoderState& state) const {
  // Input feeding: the input is [emb(y_{t-1}); h̃_{t-1}], so its gates are the embedding part
  // plus h̃_{t-1} times the remaining rows of W_ih.
  Var gi = config_.input_feeding
               ? add(gates_emb, decoder_cell_.project_input_rows(state.feed, config_.embedding, config_.hidden, false))
               : gates_emb;
  return decoder_cell_.step(gi, state.rnn);  // s_t
}

std::vector<std::string> Seq2Seq::trace_names() const { return find_mechanism(config_.attention.mechanism).trace; }

Seq2Seq::StepOutput Seq2Seq::step(const std::vector<int>& prev, const DecoderState& state, const Encoded& enc,
                                  Rng* dropout_rng, const WindowConstraint* window) const {
  const int B = enc.B, H = config_.hidden;
  StepOutput out;
  out.state.rnn = advance_decoder_cell(embedding_gates(prev, enc, dropout_rng), state);
  out.state.attn = state.attn;
  const bool constrained = window && !state.last_attended.empty();
  AttentionResult a = attention_->step(reshape(out.state.rnn.h, Shape{B, 1, H}),
                                       constrained ? window_memory(enc, state.last_attended, *window) : enc.memory,
                                       out.state.attn);  // c_t, a_t
  if (window) {  // remember where each row attended most (staying put when nothing was allowed)
    const Tensor& w = a.weights.value();
    out.state.last_attended.assign(B, 0);
    for (int b = 0; b < B; ++b) {
      const float* row = w.data() + int64_t(b) * enc.S;
      int best = constrained ? state.last_attended[b] : 0;
      for (int s = 0; s < enc.S; ++s)
        if (row[s] > row[best]) best = s;
      out.state.last_attended[b] = best;
    }
  }
  out.weights = reshape(a.weights, Shape{B, enc.S});
  out.trace = a.trace;
  out.attentional = attentional(a, out.state.rnn.h, enc);
  if (config_.input_feeding) out.state.feed = out.attentional;
  Var h = dropout_rng ? dropout(out.attentional, config_.dropout, *dropout_rng) : out.attentional;
  out.logits = output_(h);
  return out;
}

// Luong et al. 2015, eq. 5: h̃_t = tanh(W_c [c_t; s_t]) [B,H]. With the memory's part precomputed
// (decoding, precompute_memory_combined): a_t (h W_c[:M]) + s_t W_c[M:], the same up to rounding.
// The fused decoding step (seq2seq_decoder.cpp) computes this on raw buffers; it is tested
// against this one.
Var Seq2Seq::attentional(const AttentionResult& a, const Var& s, const Encoded& enc) const {
  const int64_t B = s.size(0), H = config_.hidden, M = config_.memory_size();
  if (enc.memory_combined.defined()) {
    Var from_memory = reshape(bmm(reshape(a.weights, Shape{B, 1, enc.S}), enc.memory_combined), Shape{B, H});
    return tanh(add(from_memory, attentional_layer_.apply_rows(s, M, H, /*with_bias=*/true)));
  }
  return tanh(attentional_layer_(concat({reshape(a.context, Shape{B, M}), s}, 1)));
}

// Window constraint at inference: only positions within [last - back, last + forward] of each
// row's previous argmax may be attended (no constraint before the first step). The mask goes
// into the mechanism, which normalises over what is left (for softmax: the softmax over the
// window) and keeps its state consistent with the weights it returned.
AttentionMemory Seq2Seq::window_memory(const Encoded& enc, const std::vector<int>& last,
                                       const WindowConstraint& w) const {
  AttentionMemory m = enc.memory;
  const int64_t B = enc.B, S = enc.S;
  m.scorer.mask = enc.memory.scorer.mask.clone();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      if (s < last[b] - w.back || s > last[b] + w.forward) m.scorer.mask.data()[b * S + s] = 0.0f;
  return m;
}

Var Seq2Seq::loss(const Batch& batch, const CrossEntropyOptions& targets, Rng* dropout_rng) const {
  AttentionState last;
  Var logit = logits(batch, dropout_rng, &last);  // [T*B, V]
  CrossEntropyOptions ce = targets;
  ce.ignore_index = Vocab::kPad;
  Var l = cross_entropy(logit, batch.tgt_out, ce);
  const float per_token = 1.0f / std::max(1, batch.target_tokens());
  // The mechanism's own terms (coverage's loss, hard attention's REINFORCE), which may need each
  // sentence's log-likelihood: the sum of its tokens' log-probabilities.
  std::vector<double> log_likelihood;
  if (attention_->needs_log_likelihood()) {
    const int B = batch.B, V = config_.tgt_vocab;
    log_likelihood.assign(B, 0.0);
    const float* z = logit.value().data();
    for (int t = 0; t < batch.T; ++t)
      for (int b = 0; b < B; ++b) {
        const int y = batch.tgt_out[size_t(t) * B + b];
        if (y == Vocab::kPad) continue;
        const float* row = z + (int64_t(t) * B + b) * V;
        const float mx = *std::max_element(row, row + V);
        double se = 0.0;
        for (int v = 0; v < V; ++v) se += std::exp(double(row[v]) - mx);
        log_likelihood[b] += row[y] - mx - std::log(se);
      }
  }
  const Var extra = attention_->extra_loss(last, log_likelihood, per_token);
  if (extra.defined()) l = add(l, extra);
  return l;
}

Var Seq2Seq::logits(const Batch& batch, Rng* dropout_rng, AttentionState* final_state) const {
  if (batch.T == 0) throw std::invalid_argument("Seq2Seq::logits: the batch has no targets");
  const int B = batch.B, H = config_.hidden;
  Encoded enc = encode(batch.src, batch.src_lengths, batch.S, dropout_rng);
  // Teacher forcing: every step's input token is known, so the embedding part of the decoder's
  // input gates is one product for all steps, [T, B, G*H].
  enc.target_gates = target_gates_for(int64_t(batch.T) * B, dropout_rng);
  Var gates_all =
      reshape(embedding_gates(batch.tgt_in, enc, dropout_rng), Shape{batch.T, B, decoder_cell_.gates() * H});
  DecoderState state = initial_state(enc);
  state.attn.sampler = dropout_rng;  // hard attention samples in training, takes the argmax otherwise
  std::vector<Var> outs;
  outs.reserve(batch.T);
  for (int t = 0; t < batch.T; ++t) {
    state.rnn = advance_decoder_cell(select(gates_all, t), state);
    AttentionResult a = attention_->step(reshape(state.rnn.h, Shape{B, 1, H}), enc.memory, state.attn);
    Var att = attentional(a, state.rnn.h, enc);
    if (config_.input_feeding) state.feed = att;
    outs.push_back(att);
  }
  if (final_state) *final_state = state.attn;
  // All steps' output layer at once: [T*B, H] x [H, V].
  Var h = reshape(stack(outs, 0), Shape{int64_t(batch.T) * B, H});
  if (dropout_rng) h = dropout(h, config_.dropout, *dropout_rng);
  return output_(h);
}

void Seq2Seq::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  src_emb_.collect(prefix + "src_embedding.", out);
  tgt_emb_.collect(prefix + "tgt_embedding.", out);
  for (size_t l = 0; l < encoder_.size(); ++l)
    encoder_[l].collect(prefix + (l == 0 ? std::string("encoder.") : "encoder" + std::to_string(l) + "."), out);
  bridge_h_.collect(prefix + "bridge_h.", out);
  if (config_.cell == CellKind::kLstm) bridge_c_.collect(prefix + "bridge_c.", out);
  decoder_cell_.collect(prefix + "decoder.", out);
  attention_->collect(prefix + "attention.", out);
  attentional_layer_.collect(prefix + "combine.", out);  // (the name model files have always had)
  output_.collect(prefix + "output.", out);
}

}  // namespace attend
