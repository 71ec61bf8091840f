// The fused decoding step of the RNN encoder-decoder (fused_soft_decoder.h).
#include "models/fused_soft_decoder.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "attend/ops/shape.h"
#include "kernels/attention_scores.h"
#include "kernels/blas.h"
#include "kernels/rnn_gates.h"
#include "kernels/softmax.h"
#include "kernels/vec_math.h"
#include "models/decoding_rows.h"

namespace attend {

namespace {

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
    check_tokens(prev);
    input_gates(prev);
    // The step's weights (2.1 MB for the default model) barely exceed a 2 MB L2, so every other
    // step takes the products in reverse order: the weights used last come first and are still
    // in cache.
    const bool reverse = (t_++ & 1) != 0;
    advance_cell(reverse);
    Tensor weights = attention_weights(reverse);
    return {output_logits(weights), std::move(weights)};
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
  void check_tokens(const std::vector<int>& prev) const {
    if (static_cast<int>(prev.size()) != N_)
      throw std::invalid_argument("decoder step: " + std::to_string(prev.size()) + " tokens for " + std::to_string(N_) +
                                  " rows");
    for (int y : prev)
      if (y < 0 || y >= w_.V)
        throw std::invalid_argument("decoder step: token " + std::to_string(y) + " outside the vocabulary of " +
                                    std::to_string(w_.V));
  }

  // gi = emb(y_{t-1}) W_ih[:E] + b_ih: a row of the per-vocabulary table when the encoding has
  // one (frozen model, or more tokens to decode than vocabulary entries), else the product.
  void input_gates(const std::vector<int>& prev) {
    const int N = N_, GH = G_ * w_.H;
    float* gi = gi_.data();
    if (enc_.target_gates.defined()) {
      enc_.target_gates.rows(prev, gi);
    } else {
      const int E = w_.E;
      for (int n = 0; n < N; ++n) std::copy_n(w_.emb + int64_t(prev[n]) * E, E, emb_rows_.data() + int64_t(n) * E);
      product(int8(&FusedInt8::w_emb), N, GH, E, emb_rows_.data(), w_.w_emb, w_.b_ih, gi);
    }
  }

  // s_t from s_{t-1}, gi and the input feed h̃_{t-1}.
  void advance_cell(bool reverse) {
    const int N = N_, H = w_.H, GH = G_ * H;
    float *gi = gi_.data(), *gh = gh_.data();
    for (int i = 0; i < 2; ++i) {
      if ((i == 0) != reverse) {  // gh = s_{t-1} W_hh + b_hh
        product(int8(&FusedInt8::w_hh), N, GH, H, h_.data(), w_.w_hh, w_.b_hh, gh);
      } else if (w_.input_feeding && t_ > 1) {  // gi += h̃_{t-1} W_ih[E:] (h̃_0 = 0: nothing to add)
        add_feed_gates(gi);
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
  }

  // a_t = softmax(score(s_t, k_s)) over the unmasked positions, [N,1,S]; the keys as prepared
  // for the score: k_s W_k (additive), W k_s (general), k_s (dot, scaled dot). Also starts the
  // attentional layer: pre = s_t W_c[M:].
  Tensor attention_weights(bool reverse) {
    const int N = N_, S = S_, H = w_.H, A = w_.A;
    const float* keys = enc_.memory.scorer.keys.value().data();
    const bool additive = w_.score == ScoreKind::kAdditive;
    for (int i = 0; i < 2; ++i) {
      if ((i == 0) != reverse)
        product(int8(&FusedInt8::w_cs), N, H, H, h_.data(), w_.w_cs, nullptr, pre_.data());
      else if (additive)
        product(int8(&FusedInt8::w_q), N, A, H, h_.data(), w_.w_q, nullptr, q_.data());
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
    return weights;
  }

  // h̃_t = tanh(a_t (h W_c[:M]) + s_t W_c[M:] + b_c), kept as the next input feed; the logits
  // h̃_t W_out + b_out, [N,V].
  Tensor output_logits(const Tensor& weights) {
    const int N = N_, S = S_, H = w_.H;
    const float* P = enc_.memory_combined.value().data();  // [N,S,H]
    for (int n = 0; n < N; ++n) {
      float* row = pre_.data() + int64_t(n) * H;
      for (int s = 0; s < S; ++s) {
        const float a = weights.data()[int64_t(n) * S + s];
        const float* p = P + (int64_t(n) * S + s) * H;
        for (int k = 0; k < H; ++k) row[k] += a * p[k];
      }
      if (w_.b_c)
        for (int k = 0; k < H; ++k) row[k] += w_.b_c[k];
    }
    kernels::vtanh(pre_.data(), feed_.data(), int64_t(N) * H);
    Tensor logits = Tensor::empty(Shape{N, w_.V});
    product(int8(&FusedInt8::w_out), N, w_.V, H, feed_.data(), w_.w_out, w_.b_out, logits.data());
    return logits;
  }

  // The int8 weight `member` of a quantized model, or null (fp32).
  const Int8Weight* int8(std::shared_ptr<const Int8Weight> FusedInt8::*member) const {
    return w_.int8 ? (w_.int8->*member).get() : nullptr;
  }

  // y[N, Out] = x[N, In] w + bias: in int8 when q is given, else fp32.
  static void product(const Int8Weight* q, int N, int Out, int In, const float* x, const float* w, const float* bias,
                      float* y) {
    if (q)
      q->apply(x, N, bias, y);
    else
      kernels::affine(N, Out, In, x, w, bias, y);
  }

  // gi += h̃_{t-1} W_ih[E:] (fp32: one product accumulating in place; int8: a product, then a sum).
  void add_feed_gates(float* gi) {
    const int N = N_, H = w_.H, GH = G_ * H;
    const Int8Weight* q = int8(&FusedInt8::w_feed);
    if (!q) return kernels::gemm(false, false, N, GH, H, 1.0f, feed_.data(), H, w_.w_feed, GH, 1.0f, gi, GH);
    q->apply(feed_.data(), N, nullptr, feed_gates_.data());
    for (int64_t i = 0; i < int64_t(N) * GH; ++i) gi[i] += feed_gates_.data()[i];
  }

  void allocate_rows() {  // the per-step buffers of N_ rows
    const int H = w_.H, GH = G_ * H;
    gi_ = Tensor::empty(Shape{N_, GH}), gh_ = Tensor::empty(Shape{N_, GH}), emb_rows_ = Tensor::empty(Shape{N_, w_.E});
    if (w_.int8 && w_.int8->w_feed) feed_gates_ = Tensor::empty(Shape{N_, GH});
    h_next_ = Tensor::empty(Shape{N_, H}), c_next_ = Tensor::empty(Shape{N_, H});
    q_ = Tensor::empty(Shape{N_, w_.A}), scores_ = Tensor::empty(Shape{N_, S_}), pre_ = Tensor::empty(Shape{N_, H});
  }

  FusedWeights w_;
  Seq2Seq::Encoded enc_;
  int N_, S_, G_;
  int64_t t_ = 0;                                          // steps taken
  Tensor h_, c_, feed_;                                    // s_{t-1}, LSTM cell, h̃_{t-1}: [N,H]
  Tensor gi_, gh_, emb_rows_, h_next_, c_next_, scratch_;  // per-step buffers
  Tensor feed_gates_;                                      // int8 with input feeding: h̃_{t-1} W_ih[E:]
  Tensor q_, scores_, pre_;
};

}  // namespace

std::unique_ptr<StepDecoder> fused_soft_decoder(const FusedWeights& w, const Seq2Seq::Encoded& enc,
                                                const Seq2Seq::DecoderState& state) {
  return std::make_unique<FusedSoftDecoder>(w, enc, state);
}

}  // namespace attend
