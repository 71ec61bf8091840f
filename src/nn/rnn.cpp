#include "attend/nn/rnn.h"

#include <algorithm>
#include <stdexcept>

#include "attend/nn/init.h"
#include "attend/ops/matmul.h"
#include "attend/ops/rnn_cells.h"
#include "attend/ops/shape.h"
#include "kernels/blas.h"
#include "kernels/rnn_gates.h"

namespace attend {

CellKind parse_cell(const std::string& name) {
  if (name == "gru") return CellKind::kGru;
  if (name == "lstm") return CellKind::kLstm;
  throw std::invalid_argument("unknown RNN cell '" + name + "' (expected gru or lstm)");
}

std::string to_string(CellKind kind) { return kind == CellKind::kGru ? "gru" : "lstm"; }

namespace {
// One step of the gate kernels for rows [0, B): h_next (and c_next) from the input gates gi and
// the recurrent ones gh (both [B, G*H]; the LSTM's kernel overwrites gh) and the state h (c);
// rows for which live(b) is false keep their state.
template <class Live>
void advance_rows(bool lstm, int64_t B, int64_t H, const float* gi, float* gh, const float* h, const float* c,
                  Live live, float* scratch, float* h_next, float* c_next) {
  const int64_t GH = (lstm ? 4 : 3) * H;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r = b * H;
    if (!live(b)) {
      std::copy_n(h + r, H, h_next + r);
      if (lstm) std::copy_n(c + r, H, c_next + r);
    } else if (lstm) {
      kernels::lstm_gates(gi + b * GH, gh + b * GH, c + r, static_cast<int>(H), c_next + r, scratch, h_next + r);
    } else {
      kernels::gru_gates(gi + b * GH, gh + b * GH, h + r, static_cast<int>(H), scratch, h_next + r);
    }
  }
}
}  // namespace

RnnCell::RnnCell(CellKind kind, int input, int hidden, Rng& rng) : kind_(kind), hidden_(hidden) {
  const int G = gates();
  w_ih_ = parameter(Shape{input, G * hidden});
  b_ih_ = parameter(Shape{G * hidden});
  w_hh_ = parameter(Shape{hidden, G * hidden});
  b_hh_ = parameter(Shape{G * hidden});
  init::glorot_uniform(w_ih_.value(), rng);
  init::orthogonal_blocks(w_hh_.value(), rng);
  if (kind == CellKind::kLstm) {
    float* b = b_ih_.value().data();
    for (int k = hidden; k < 2 * hidden; ++k) b[k] = 1.0f;
  }
}

Var RnnCell::project_input(const Var& x) const {
  if (!ih_int8_.empty() && !Tape::current()) return Var(ih_int8_.apply(x.value(), b_ih_.value()));
  if (!w_ih_.defined()) throw_released();
  return linear(x, w_ih_, b_ih_);
}

Var RnnCell::project_input_rows(const Var& x, int64_t first, int64_t rows, bool with_bias) const {
  const Var b = with_bias ? b_ih_ : Var();
  if (!ih_int8_.empty() && !Tape::current())
    return Var(ih_int8_.apply_rows(x.value(), static_cast<int>(first), static_cast<int>(rows),
                                   b.defined() ? b.value() : Tensor()));
  if (!w_ih_.defined()) throw_released();
  return linear(x, narrow(w_ih_, first, rows), b);
}

void RnnCell::quantize_in_blocks(std::vector<int> bounds) {
  if (!w_ih_.defined()) return;  // released (int8 already), or a bidirectional layer's unused backward cell
  if (bounds.empty()) bounds = {0, static_cast<int>(w_ih_.size(0))};
  ih_int8_ = Int8Blocks(w_ih_.value(), bounds), hh_int8_ = Int8Weight::from_in_out(w_hh_.value());
}

void RnnCell::release_fp32() {
  if (hh_int8_) w_ih_ = Var(), w_hh_ = Var();
}

void RnnCell::throw_released() const {
  attend::throw_released(std::string(kind_ == CellKind::kGru ? "GRU" : "LSTM") + " cell [" +
                         std::to_string(ih_int8_.in()) + " -> " + std::to_string(hidden_) + "]");
}

RnnState RnnCell::step(const Var& gi, const RnnState& state, const Tensor& valid) const {
  if (hh_int8_ && !Tape::current()) return step_int8(gi.value(), state, valid);
  if (!w_hh_.defined()) throw_released();
  if (kind_ == CellKind::kGru) return {gru_cell(gi, state.h, w_hh_, b_hh_, valid), Var()};
  Var hc = lstm_cell(gi, state.h, state.c, w_hh_, b_hh_, valid);
  return {select(hc, 0), select(hc, 1)};
}

RnnState RnnCell::step_int8(const Tensor& gi, const RnnState& state, const Tensor& valid) const {
  const int64_t B = state.h.size(0), H = hidden_;
  const bool lstm = kind_ == CellKind::kLstm;
  if (gi.ndim() != 2 || gi.size(0) != B || gi.size(1) != gates() * H || state.h.size(1) != H ||
      (valid.defined() && valid.numel() != B))
    throw std::invalid_argument("RnnCell::step: gates " + gi.shape().str() + ", state " + state.h.shape().str() +
                                " and valid " + valid.shape().str() + " do not fit a cell of " + std::to_string(H));
  Tensor gh = hh_int8_->apply(state.h.value(), b_hh_.value());  // [B, G*H]
  RnnState next{Var(Tensor::empty(Shape{B, H})), lstm ? Var(Tensor::empty(Shape{B, H})) : Var()};
  std::vector<float> scratch(size_t(4) * H);
  advance_rows(
      lstm, B, H, gi.data(), gh.data(), state.h.value().data(), lstm ? state.c.value().data() : nullptr,
      [&](int64_t b) { return !valid.defined() || valid.data()[b] != 0.0f; }, scratch.data(), next.h.value().data(),
      lstm ? next.c.value().data() : nullptr);
  return next;
}

RnnState RnnCell::zero_state(int batch) const {
  RnnState s{Var(Tensor(Shape{batch, hidden_})), Var()};
  if (kind_ == CellKind::kLstm) s.c = Var(Tensor(Shape{batch, hidden_}));
  return s;
}

void RnnCell::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "w_ih", w_ih_.defined() ? w_ih_ : Var(ih_int8_.dequantize_in_out())});
  out.push_back({prefix + "b_ih", b_ih_});
  out.push_back({prefix + "w_hh", w_hh_.defined() ? w_hh_ : Var(hh_int8_->dequantize_in_out())});
  out.push_back({prefix + "b_hh", b_hh_});
}

Rnn::Rnn(CellKind kind, int input, int hidden, bool bidirectional, Rng& rng)
    : fwd_(kind, input, hidden, rng), bidirectional_(bidirectional) {
  if (bidirectional) bwd_ = RnnCell(kind, input, hidden, rng);
}

Rnn::Output Rnn::forward(const Var& x_tm, const std::vector<int>& lengths, int S) const {
  std::vector<Var> gi = {fwd_.project_input(x_tm)};  // one GEMM for all steps
  if (bidirectional_) gi.push_back(bwd_.project_input(x_tm));
  return forward_projected(gi, lengths, S);
}

Rnn::Output Rnn::forward_projected(const std::vector<Var>& gi_tm, const std::vector<int>& lengths, int S) const {
  const int B = static_cast<int>(lengths.size());
  if (static_cast<int>(gi_tm.size()) != directions()) {
    throw std::invalid_argument("Rnn::forward: " + std::to_string(gi_tm.size()) + " projected inputs for " +
                                std::to_string(directions()) + " directions");
  }
  for (int d = 0; d < directions(); ++d) {
    const int GH = cell(d).gates() * cell(d).hidden();
    if (gi_tm[d].ndim() != 2 || gi_tm[d].size(0) != int64_t(S) * B || gi_tm[d].size(1) != GH) {
      throw std::invalid_argument("Rnn::forward: projected input " + gi_tm[d].shape().str() + " is not [S*B, " +
                                  std::to_string(GH) + "] for S=" + std::to_string(S) + ", B=" + std::to_string(B));
    }
  }
  for (int len : lengths)
    if (len < 1 || len > S)
      throw std::invalid_argument("Rnn::forward: length " + std::to_string(len) + " outside [1, " + std::to_string(S) +
                                  "]");
  bool recording = false;
  for (int d = 0; d < directions(); ++d)
    recording = recording || needs_grad({&gi_tm[d], &cell(d).w_hh(), &cell(d).b_hh()});
  if (!recording) return forward_inference(gi_tm, lengths, S);
  // valid[t][b] = 1 while sequence b still has a token at step t.
  std::vector<Tensor> valid(S);
  for (int t = 0; t < S; ++t) {
    valid[t] = Tensor(Shape{B});
    for (int b = 0; b < B; ++b) valid[t].data()[b] = t < lengths[b] ? 1.0f : 0.0f;
  }
  auto run = [&](int d, RnnState& last) {
    const RnnCell& c = cell(d);
    const bool reverse = d == 1;
    Var gi_all = reshape(gi_tm[d], Shape{S, B, c.gates() * c.hidden()});
    std::vector<Var> outs(S);
    RnnState state = c.zero_state(B);
    for (int i = 0; i < S; ++i) {
      const int t = reverse ? S - 1 - i : i;
      state = c.step(select(gi_all, t), state, valid[t]);
      outs[t] = state.h;
    }
    last = state;
    return stack(outs, 0);  // [S, B, H]
  };
  Output out;
  out.last.resize(directions());
  Var f = run(0, out.last[0]);
  out.outputs = bidirectional_ ? concat({f, run(1, out.last[1])}, 2) : f;
  return out;
}

// The cell ops' arithmetic (the same products with the same shapes, the same gate kernels), on
// buffers allocated once and written straight into the outputs: with nothing to record, the
// per-step ops' allocations, views and final stack/concat copies are pure overhead.
Rnn::Output Rnn::forward_inference(const std::vector<Var>& gi_tm, const std::vector<int>& lengths, int S) const {
  const int B = static_cast<int>(lengths.size()), D = directions(), H = fwd_.hidden(), GH = fwd_.gates() * H;
  const bool lstm = fwd_.kind() == CellKind::kLstm;
  Tensor outputs = Tensor::empty(Shape{S, B, D * H});
  Output out;
  for (int d = 0; d < D; ++d) {
    const RnnCell& c = cell(d);
    const float* gi = gi_tm[d].value().data();  // [S*B, G*H]
    const float* b_hh = c.b_hh().value().data();
    Tensor h(Shape{B, H}), h_next = Tensor::empty(Shape{B, H}), gh = Tensor::empty(Shape{B, GH});
    Tensor cs = lstm ? Tensor(Shape{B, H}) : Tensor(), c_next = lstm ? Tensor::empty(Shape{B, H}) : Tensor();
    std::vector<float> scratch(size_t(4) * H);
    for (int i = 0; i < S; ++i) {
      const int t = d == 1 ? S - 1 - i : i;
      // gh = h W_hh + b_hh; the state starts at zero, so the first step's is b_hh alone
      if (i == 0)
        kernels::affine(B, GH, H, nullptr, nullptr, b_hh, gh.data());
      else if (c.w_hh_int8())
        c.w_hh_int8()->apply(h.data(), B, b_hh, gh.data());
      else
        kernels::affine(B, GH, H, h.data(), c.w_hh().value().data(), b_hh, gh.data());
      advance_rows(
          lstm, B, H, gi + int64_t(t) * B * GH, gh.data(), h.data(), lstm ? cs.data() : nullptr,
          [&](int64_t b) { return t < lengths[b]; }, scratch.data(), h_next.data(), lstm ? c_next.data() : nullptr);
      std::swap(h, h_next);
      if (lstm) std::swap(cs, c_next);
      for (int b = 0; b < B; ++b)
        std::copy_n(h.data() + int64_t(b) * H, H, outputs.data() + (int64_t(t) * B + b) * D * H + int64_t(d) * H);
    }
    out.last.push_back({Var(h), lstm ? Var(cs) : Var()});
  }
  out.outputs = Var(outputs);
  return out;
}

void Rnn::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  fwd_.collect(prefix + "fwd.", out);
  if (bidirectional_) bwd_.collect(prefix + "bwd.", out);
}

}  // namespace attend
