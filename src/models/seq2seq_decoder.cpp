// Incremental decoding of the RNN encoder-decoder (seq2seq.h) for the searches of search.h.
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "attend/models/seq2seq.h"
#include "attend/ops/shape.h"
#include "models/decoding_rows.h"
#include "models/fused_soft_decoder.h"

namespace attend {

Seq2Seq::DecoderState gather_state(const Seq2Seq::DecoderState& s, const std::vector<int>& rows) {
  Seq2Seq::DecoderState g;
  g.attn = s.attn.gather(rows);  // every slot of whatever the mechanism keeps
  for (int r : rows)
    if (!s.last_attended.empty()) g.last_attended.push_back(s.last_attended[r]);
  g.rnn.h = Var(gather_rows(s.rnn.h.value(), rows));
  if (s.rnn.c.defined()) g.rnn.c = Var(gather_rows(s.rnn.c.value(), rows));
  if (s.feed.defined()) g.feed = Var(gather_rows(s.feed.value(), rows));
  return g;
}

Seq2Seq::Encoded repeat_rows(const Seq2Seq::Encoded& enc, const std::vector<int>& rows) {
  Seq2Seq::Encoded big = enc;
  big.B = static_cast<int>(rows.size());
  big.memory = enc.memory.gather(rows);  // all the mechanism prepared
  if (enc.memory_combined.defined()) big.memory_combined = Var(gather_rows(enc.memory_combined.value(), rows));
  return big;
}

namespace {

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
    p.state = gather_state(p.state, rows);
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
    return {s.logits.value(), w.view(Shape{w.size(0), 1, w.size(1)}), s.trace};
  }

  void reorder(const std::vector<int>& parents) override { state_ = gather_state(state_, parents); }

  bool keep(const std::vector<int>& rows) override {
    enc_ = repeat_rows(enc_, rows);
    state_ = gather_state(state_, rows);
    return true;
  }

 private:
  const Seq2Seq& model_;
  Seq2Seq::Encoded enc_;
  Seq2Seq::DecoderState state_;
  Seq2Seq::WindowConstraint window_;
  bool use_window_ = false;
};

}  // namespace

void Seq2Seq::quantize() {
  const int E = config_.embedding, H = config_.hidden, M = config_.memory_size();
  src_emb_.quantize(), tgt_emb_.quantize();  // (decoding reads them only through the frozen tables)
  for (Rnn& layer : encoder_) layer.quantize();
  bridge_h_.quantize(), bridge_c_.quantize();
  // the decoder's input [emb(y); h̃] and the attentional layer's [c; s] are also multiplied in parts
  decoder_cell_.quantize_in_blocks(config_.input_feeding ? std::vector<int>{0, E, E + H} : std::vector<int>{});
  attentional_layer_.quantize_in_blocks({0, M, M + H});
  output_.quantize();
  auto q = std::make_shared<FusedInt8>();
  q->w_emb = decoder_cell_.w_ih_int8(0, E);
  if (config_.input_feeding) q->w_feed = decoder_cell_.w_ih_int8(E, H);
  q->w_hh = decoder_cell_.w_hh_int8();
  const SoftAttention& scorer = attention_->scorer();  // (the mechanism keeps its fp32 weights)
  if (scorer.score() == ScoreKind::kAdditive) q->w_q = Int8Weight::from_in_out(scorer.params().Wq.value());  // [H, A]
  q->w_cs = attentional_layer_.int8(M, H);
  q->w_out = output_.int8();
  int8_ = std::move(q);
  if (frozen_) frozen_ = std::make_shared<const Frozen>(frozen_->in_int8());  // the fp32 tables, rounded once
}

void Seq2Seq::release_fp32() {
  if (!int8_) return;
  if (!frozen_) freeze();  // decoding then reads the embeddings only through the tables
  src_emb_.release_fp32(), tgt_emb_.release_fp32();
  for (Rnn& layer : encoder_) layer.release_fp32();
  bridge_h_.release_fp32(), bridge_c_.release_fp32();
  decoder_cell_.release_fp32(), attentional_layer_.release_fp32(), output_.release_fp32();
}

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
  const int64_t GH = int64_t(decoder_cell_.gates()) * H;
  auto data = [](const Var& v, int64_t offset = 0) { return v.defined() ? v.value().data() + offset : nullptr; };
  // (the fp32 weights are null once released: the int8 ones are read instead)
  const FusedWeights w{config_.cell,
                       scorer.score(),
                       E,
                       H,
                       M,
                       additive ? static_cast<int>(p.va.size(0)) : 0,
                       config_.tgt_vocab,
                       config_.input_feeding,
                       data(tgt_emb_.table()),
                       data(decoder_cell_.w_ih()),
                       data(decoder_cell_.b_ih()),
                       data(decoder_cell_.w_ih(), E * GH),
                       data(decoder_cell_.w_hh()),
                       data(decoder_cell_.b_hh()),
                       additive ? data(p.Wq) : nullptr,
                       additive ? data(p.va) : nullptr,
                       data(attentional_layer_.weight(), int64_t(M) * H),
                       data(attentional_layer_.bias()),
                       data(output_.weight()),
                       data(output_.bias()),
                       int8_.get()};
  return fused_soft_decoder(w, ready.enc, ready.state);
}

}  // namespace attend
