// Incremental decoding of the RNN encoder-decoder (seq2seq.h) for the searches of search.h.
#include <memory>
#include <stdexcept>
#include <string>

#include "attend/models/seq2seq.h"
#include "attend/ops/shape.h"

namespace attend {

namespace {

// The decoder state of rows `rows` (beam search: each row continues its parent's hypothesis).
Seq2Seq::DecoderState gather(const Seq2Seq::DecoderState& s, const std::vector<int>& rows) {
  Seq2Seq::DecoderState g;
  g.attn.step = s.attn.step;  // the same step for every row
  g.attn.hard = s.attn.hard;
  for (int r : rows) {
    if (!s.attn.pointer.empty()) g.attn.pointer.push_back(s.attn.pointer[r]);
    if (!s.last_attended.empty()) g.last_attended.push_back(s.last_attended[r]);
  }
  if (s.attn.previous.defined()) g.attn.previous = Var(gather_rows(s.attn.previous.value(), rows));
  if (s.attn.log_alignment.defined()) g.attn.log_alignment = Var(gather_rows(s.attn.log_alignment.value(), rows));
  if (s.attn.coverage.defined()) g.attn.coverage = Var(gather_rows(s.attn.coverage.value(), rows));
  if (s.attn.transition.defined()) g.attn.transition = Var(gather_rows(s.attn.transition.value(), rows));
  g.rnn.h = Var(gather_rows(s.rnn.h.value(), rows));
  if (s.rnn.c.defined()) g.rnn.c = Var(gather_rows(s.rnn.c.value(), rows));
  if (s.feed.defined()) g.feed = Var(gather_rows(s.feed.value(), rows));
  return g;
}

// The encoding with every source repeated for its rows.
Seq2Seq::Encoded repeat_rows(const Seq2Seq::Encoded& enc, const std::vector<int>& rows) {
  Seq2Seq::Encoded big = enc;
  big.B = static_cast<int>(rows.size());
  AttentionMemory& m = big.memory;
  m.scorer.keys = Var(gather_rows(enc.memory.scorer.keys.value(), rows));
  m.scorer.values = Var(gather_rows(enc.memory.scorer.values.value(), rows));
  m.scorer.mask = gather_rows(enc.memory.scorer.mask, rows);
  m.lengths.clear();
  for (int r : rows) m.lengths.push_back(enc.memory.lengths[r]);
  if (enc.memory_combined.defined()) big.memory_combined = Var(gather_rows(enc.memory_combined.value(), rows));
  if (enc.memory.static_weights.defined()) {
    m.static_weights = Var(gather_rows(enc.memory.static_weights.value(), rows));
    m.static_context = Var(gather_rows(enc.memory.static_context.value(), rows));
  }
  return big;
}

class RnnStepDecoder final : public StepDecoder {
 public:
  RnnStepDecoder(const Seq2Seq& model, const Batch& batch, int K, const DecodeOptions& opt) : model_(model) {
    NoGradScope no_grad;
    Seq2Seq::Encoded enc = model.encode(batch.src, batch.src_lengths, batch.S, nullptr);
    model.precompute_memory_combined(enc);
    enc_ = enc;
    state_ = model.initial_state(enc);
    if (K > 1) {
      const std::vector<int> rows = beam_rows(enc.B, K);
      enc_ = repeat_rows(enc, rows);
      state_ = gather(state_, rows);
    }
    state_.attn.hard = true;  // inference: hard attention's argmax, monotonic attention's pointer
    if (opt.window_back >= 0 || opt.window_forward >= 0) {
      window_.back = opt.window_back < 0 ? 1 << 20 : opt.window_back;
      window_.forward = opt.window_forward < 0 ? 1 << 20 : opt.window_forward;
      use_window_ = true;
    }
  }

  DecoderStep step(const std::vector<int>& prev) override {
    NoGradScope no_grad;
    Seq2Seq::Step s = model_.step(prev, state_, enc_, nullptr, use_window_ ? &window_ : nullptr);
    state_ = std::move(s.state);
    const Tensor w = s.weights.value();  // [N,S]
    return {s.logits.value(), w.view(Shape{w.size(0), 1, w.size(1)})};
  }

  void reorder(const std::vector<int>& parents) override { state_ = gather(state_, parents); }

 private:
  const Seq2Seq& model_;
  Seq2Seq::Encoded enc_;
  Seq2Seq::DecoderState state_;
  Seq2Seq::WindowConstraint window_;
  bool use_window_ = false;
};

}  // namespace

std::unique_ptr<StepDecoder> Seq2Seq::decoder(const Batch& batch, int rows_per_source, const DecodeOptions& options) const {
  if (rows_per_source < 1)
    throw std::invalid_argument("Seq2Seq::decoder: rows per source must be >= 1, got " + std::to_string(rows_per_source));
  return std::make_unique<RnnStepDecoder>(*this, batch, rows_per_source, options);
}

}  // namespace attend
