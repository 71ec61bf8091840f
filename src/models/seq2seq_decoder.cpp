// Incremental decoding of the RNN encoder-decoder (seq2seq.h) for the searches of search.h.
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "attend/models/seq2seq.h"
#include "attend/ops/shape.h"
#include "kernels/attention_scores.h"
#include "kernels/blas.h"
#include "kernels/rnn_gates.h"
#include "kernels/softmax.h"
#include "kernels/vec_math.h"

namespace attend {

namespace {

// The decoder state of rows `rows` (beam search: each row continues its parent's hypothesis).
Seq2Seq::DecoderState gather(const Seq2Seq::DecoderState& s, const std::vector<int>& rows) {
  Seq2Seq::DecoderState g;
  g.attn = s.attn.gather(rows);  // every slot of whatever the mechanism keeps
  for (int r : rows)
    if (!s.last_attended.empty()) g.last_attended.push_back(s.last_attended[r]);
  g.rnn.h = Var(gather_rows(s.rnn.h.value(), rows));
  if (s.rnn.c.defined()) g.rnn.c = Var(gather_rows(s.rnn.c.value(), rows));
  if (s.feed.defined()) g.feed = Var(gather_rows(s.feed.value(), rows));
  return g;
}

// The encoding with every source repeated for its rows.
Seq2Seq::Encoded repeat_rows(const Seq2Seq::Encoded& enc, const std::vector<int>& rows) {
  Seq2Seq::Encoded big = enc;
  big.B = static_cast<int>(rows.size());
  big.memory = enc.memory.gather(rows);  // all the mechanism prepared
  if (enc.memory_combined.defined()) big.memory_combined = Var(gather_rows(enc.memory_combined.value(), rows));
  return big;
}

// What both step decoders start from: the batch encoded for decoding (the memory's part of the
// attentional layer precomputed) and the initial state, each source's repeated for its K rows.
struct Prepared {
  Seq2Seq::Encoded enc;
  Seq2Seq::DecoderState state;
};
Prepared prepare(const Seq2Seq& model, const Batch& batch, int K) {
  NoGradScope no_grad;
  Prepared p;
  p.enc = model.encode(batch.src, batch.src_lengths, batch.S, nullptr);
  model.precompute_memory_combined(p.enc);
  p.state = model.initial_state(p.enc);
  if (K > 1) {
    const std::vector<int> rows = beam_rows(p.enc.B, K);
    p.enc = repeat_rows(p.enc, rows);
    p.state = gather(p.state, rows);
  }
  return p;
}

class RnnStepDecoder final : public StepDecoder {
 public:
  RnnStepDecoder(const Seq2Seq& model, const Batch& batch, int K, const DecodeOptions& opt) : model_(model) {
    Prepared p = prepare(model, batch, K);
    enc_ = std::move(p.enc), state_ = std::move(p.state);
    state_.attn.inference = true;  // inference: hard attention's argmax, monotonic attention's pointer
    if (opt.window_back >= 0 || opt.window_forward >= 0) {
      // Saturated at 2^20 (longer than any source): last + forward cannot overflow.
      window_.back = opt.window_back < 0 ? 1 << 20 : std::min(opt.window_back, 1 << 20);
      window_.forward = opt.window_forward < 0 ? 1 << 20 : std::min(opt.window_forward, 1 << 20);
      use_window_ = true;
    }
  }

  NextTokenScores step(const std::vector<int>& prev) override {
    NoGradScope no_grad;
    Seq2Seq::StepOutput s = model_.step(prev, state_, enc_, nullptr, use_window_ ? &window_ : nullptr);
    state_ = std::move(s.state);
    const Tensor w = s.weights.value();  // [N,S]
    return {s.logits.value(), w.view(Shape{w.size(0), 1, w.size(1)})};
  }

  void reorder(const std::vector<int>& parents) override { state_ = gather(state_, parents); }

  bool keep(const std::vector<int>& rows) override {
    enc_ = repeat_rows(enc_, rows);
    state_ = gather(state_, rows);
    return true;
  }

 private:
  const Seq2Seq& model_;
  Seq2Seq::Encoded enc_;
  Seq2Seq::DecoderState state_;
  Seq2Seq::WindowConstraint window_;
  bool use_window_ = false;
};

// The weights the fused step reads, all [In, Out] row-major as the layers keep them.
struct FusedWeights {
  CellKind cell;
  ScoreKind score;
  int E, H, M, A, V;  // embedding, decoder state, memory, attention (additive), target vocabulary
  bool input_feeding;
  const float* emb;     // target embeddings [V, E]
  const float* w_emb;   // W_ih rows [0, E): [E, G*H]
  const float* b_ih;    // [G*H]
  const float* w_feed;  // W_ih rows [E, E+H): [H, G*H] (input feeding only)
  const float* w_hh;    // [H, G*H]
  const float* b_hh;    // [G*H]
  const float* w_q;     // additive score: [H, A] (null for the others)
  const float* v_a;     // additive score: [A]
  const float* w_cs;    // combine rows [M, M+H): [H, H]
  const float* b_c;     // [H], or null (Luong's layer has no bias)
  const float* w_out;   // [H, V]
  const float* b_out;   // [V]
};

// Seq2Seq::step for soft attention with softmax (the default mechanism; any score), GRU or
// LSTM, with or without input feeding, as products and kernels on buffers allocated once per
// batch: the same products and kernels (a few sums in another order: the logits agree within
// 1e-5), without an op's validation and allocations. At batch 1 the general step spent about a quarter of its time
// outside the matrix products; this one does not. Tests compare it with the general step.
class FusedSoftDecoder final : public StepDecoder {
 public:
  FusedSoftDecoder(const FusedWeights& w, const Seq2Seq::Encoded& enc, const Seq2Seq::DecoderState& state)
      : w_(w), enc_(enc), N_(enc.B), S_(enc.S), G_(w.cell == CellKind::kGru ? 3 : 4) {
    h_ = state.rnn.h.value().clone();
    if (w.cell == CellKind::kLstm) c_ = state.rnn.c.value().clone();
    feed_ = Tensor(Shape{N_, w.H});  // h̃_0 = 0
    scratch_ = Tensor::empty(Shape{4 * w.H});
    allocate_rows();
  }

  NextTokenScores step(const std::vector<int>& prev) override {
    const int N = N_, S = S_, H = w_.H, GH = G_ * H, A = w_.A, V = w_.V;
    if (static_cast<int>(prev.size()) != N)
      throw std::invalid_argument("decoder step: " + std::to_string(prev.size()) + " tokens for " + std::to_string(N) +
                                  " rows");
    for (int y : prev)
      if (y < 0 || y >= V)
        throw std::invalid_argument("decoder step: token " + std::to_string(y) + " outside the vocabulary of " +
                                    std::to_string(V));
    // gi = emb(y_{t-1}) W_ih[:E] + b_ih: a row of the per-vocabulary table when the encoding has
    // one (frozen model, or more tokens to decode than vocabulary entries), else the product
    float* gi = gi_.data();
    if (enc_.target_gates.defined()) {
      const float* table = enc_.target_gates.value().data();  // [V, G*H]
      for (int n = 0; n < N; ++n) std::copy_n(table + int64_t(prev[n]) * GH, GH, gi + int64_t(n) * GH);
    } else {
      const int E = w_.E;
      for (int n = 0; n < N; ++n) std::copy_n(w_.emb + int64_t(prev[n]) * E, E, emb_rows_.data() + int64_t(n) * E);
      kernels::affine(N, GH, E, emb_rows_.data(), w_.w_emb, w_.b_ih, gi);
    }
    float* gh = gh_.data();
    // The step's weights (2.1 MB for the default model) barely exceed a 2 MB L2, so every other
    // step takes the products in reverse order: the weights used last come first and are still
    // in cache.
    const bool reverse = (t_++ & 1) != 0;
    for (int i = 0; i < 2; ++i) {
      if ((i == 0) != reverse) {  // gh = s_{t-1} W_hh + b_hh
        kernels::affine(N, GH, H, h_.data(), w_.w_hh, w_.b_hh, gh);
      } else if (w_.input_feeding && t_ > 1) {  // gi += h̃_{t-1} W_ih[E:] (h̃_0 = 0: nothing to add)
        kernels::gemm(false, false, N, GH, H, 1.0f, feed_.data(), H, w_.w_feed, GH, 1.0f, gi, GH);
      }
    }
    for (int n = 0; n < N; ++n) {
      const int64_t r = int64_t(n) * H;
      if (w_.cell == CellKind::kGru) {
        kernels::gru_gates(gi + n * int64_t(GH), gh + n * int64_t(GH), h_.data() + r, H, scratch_.data(),
                           h_next_.data() + r);
      } else {
        kernels::lstm_gates(gi + n * int64_t(GH), gh + n * int64_t(GH), c_.data() + r, H, c_next_.data() + r,
                            scratch_.data(), h_next_.data() + r);
      }
    }
    std::swap(h_, h_next_);  // s_t
    if (w_.cell == CellKind::kLstm) std::swap(c_, c_next_);
    // a_t = softmax(score(s_t, k_s)) over the unmasked positions; the keys as prepared for the
    // score: k_s W_k (additive), W k_s (general), k_s (dot, scaled dot)
    const float* keys = enc_.memory.scorer.keys.value().data();
    float* pre = pre_.data();  // s_t W_c[M:], then + a_t (h W_c[:M]) + b_c below
    const bool additive = w_.score == ScoreKind::kAdditive;
    for (int i = 0; i < 2; ++i) {
      if ((i == 0) != reverse)
        kernels::affine(N, H, H, h_.data(), w_.w_cs, nullptr, pre);
      else if (additive)
        kernels::affine(N, A, H, h_.data(), w_.w_q, nullptr, q_.data());
    }
    if (additive) {  // v_a^T tanh(s_t W_q + k_s W_k)
      kernels::additive_scores_forward(q_.data(), keys, w_.v_a, N, 1, S, A, scores_.data(), nullptr);
    } else {  // s_t . k_s, scaled by 1/sqrt(H) for scaled dot
      const float scale = w_.score == ScoreKind::kScaledDot ? 1.0f / std::sqrt(static_cast<float>(H)) : 1.0f;
      for (int n = 0; n < N; ++n) {
        const float* q = h_.data() + int64_t(n) * H;
        for (int s = 0; s < S; ++s) {
          const float* k = keys + (int64_t(n) * S + s) * H;
          float dot = 0.0f;
          for (int j = 0; j < H; ++j) dot += q[j] * k[j];
          scores_.data()[int64_t(n) * S + s] = dot * scale;
        }
      }
    }
    Tensor weights = Tensor::empty(Shape{N, 1, S});
    kernels::softmax_rows(scores_.data(), enc_.memory.scorer.mask.data(), N, 1, S, weights.data(), false);
    // h̃_t = tanh(a_t (h W_c[:M]) + s_t W_c[M:] + b_c)
    const float* P = enc_.memory_combined.value().data();  // [N,S,H]
    for (int n = 0; n < N; ++n) {
      float* row = pre + int64_t(n) * H;
      for (int s = 0; s < S; ++s) {
        const float a = weights.data()[int64_t(n) * S + s];
        const float* p = P + (int64_t(n) * S + s) * H;
        for (int k = 0; k < H; ++k) row[k] += a * p[k];
      }
      if (w_.b_c)
        for (int k = 0; k < H; ++k) row[k] += w_.b_c[k];
    }
    kernels::vtanh(pre, feed_.data(), int64_t(N) * H);
    Tensor logits = Tensor::empty(Shape{N, V});
    kernels::affine(N, V, H, feed_.data(), w_.w_out, w_.b_out, logits.data());
    return {std::move(logits), std::move(weights)};
  }

  void reorder(const std::vector<int>& parents) override {
    h_ = gather_rows(h_, parents);
    if (c_.defined()) c_ = gather_rows(c_, parents);
    feed_ = gather_rows(feed_, parents);
  }

  bool keep(const std::vector<int>& rows) override {
    reorder(rows);
    enc_ = repeat_rows(enc_, rows);
    N_ = static_cast<int>(rows.size());
    allocate_rows();
    return true;
  }

 private:
  void allocate_rows() {  // the per-step buffers of N_ rows
    const int H = w_.H, GH = G_ * H;
    gi_ = Tensor::empty(Shape{N_, GH}), gh_ = Tensor::empty(Shape{N_, GH}), emb_rows_ = Tensor::empty(Shape{N_, w_.E});
    h_next_ = Tensor::empty(Shape{N_, H}), c_next_ = Tensor::empty(Shape{N_, H});
    q_ = Tensor::empty(Shape{N_, w_.A}), scores_ = Tensor::empty(Shape{N_, S_}), pre_ = Tensor::empty(Shape{N_, H});
  }

  FusedWeights w_;
  Seq2Seq::Encoded enc_;
  int N_, S_, G_;
  int64_t t_ = 0;                                          // steps taken
  Tensor h_, c_, feed_;                                    // s_{t-1}, LSTM cell, h̃_{t-1}: [N,H]
  Tensor gi_, gh_, emb_rows_, h_next_, c_next_, scratch_;  // per-step buffers
  Tensor q_, scores_, pre_;
};

}  // namespace

bool Seq2Seq::fused_step_applies(const DecodeOptions& options) const {
  const SoftAttention& scorer = attention_->scorer();
  return !options.reference_step && attention_->is_plain_soft() && scorer.normalizer() == Normalizer::kSoftmax &&
         options.window_back < 0 && options.window_forward < 0;
}

std::unique_ptr<StepDecoder> Seq2Seq::decoder(const Batch& batch, int rows_per_source,
                                              const DecodeOptions& options) const {
  if (rows_per_source < 1)
    throw std::invalid_argument("Seq2Seq::decoder: rows per source must be >= 1, got " +
                                std::to_string(rows_per_source));
  if (!fused_step_applies(options)) return std::make_unique<RnnStepDecoder>(*this, batch, rows_per_source, options);
  Prepared ready = prepare(*this, batch, rows_per_source);
  const int E = config_.embedding, H = config_.hidden, M = config_.memory_size();
  const SoftAttention& scorer = attention_->scorer();
  const bool additive = scorer.score() == ScoreKind::kAdditive;
  const ScoreParams& p = scorer.params();
  const FusedWeights w{config_.cell,
                       scorer.score(),
                       E,
                       H,
                       M,
                       additive ? static_cast<int>(p.va.size(0)) : 0,
                       config_.tgt_vocab,
                       config_.input_feeding,
                       tgt_emb_.table().value().data(),
                       decoder_cell_.w_ih().value().data(),
                       decoder_cell_.b_ih().value().data(),
                       decoder_cell_.w_ih().value().data() + int64_t(E) * decoder_cell_.gates() * H,
                       decoder_cell_.w_hh().value().data(),
                       decoder_cell_.b_hh().value().data(),
                       additive ? p.Wq.value().data() : nullptr,
                       additive ? p.va.value().data() : nullptr,
                       attentional_layer_.weight().value().data() + int64_t(M) * H,
                       attentional_layer_.bias().defined() ? attentional_layer_.bias().value().data() : nullptr,
                       output_.weight().value().data(),
                       output_.bias().value().data()};
  return std::make_unique<FusedSoftDecoder>(w, ready.enc, ready.state);
}

}  // namespace attend
