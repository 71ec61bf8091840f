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
  if (ih_int8_ && !Tape::current()) return Var(ih_int8_->apply(x.value(), b_ih_.value()));
  return linear(x, w_ih_, b_ih_);
}

void RnnCell::quantize() {
  if (!w_ih_.defined()) return;  // (a bidirectional layer's unused backward cell)
  ih_int8_ = Int8Weight::from_in_out(w_ih_.value()), hh_int8_ = Int8Weight::from_in_out(w_hh_.value());
}

Var RnnCell::project_input_rows(const Var& x, int64_t first, int64_t rows, bool with_bias) const {
  return linear(x, narrow(w_ih_, first, rows), with_bias ? b_ih_ : Var());
}

RnnState RnnCell::step(const Var& gi, const RnnState& state, const Tensor& valid) const {
  if (kind_ == CellKind::kGru) return {gru_cell(gi, state.h, w_hh_, b_hh_, valid), Var()};
  Var hc = lstm_cell(gi, state.h, state.c, w_hh_, b_hh_, valid);
  return {select(hc, 0), select(hc, 1)};
}

RnnState RnnCell::zero_state(int batch) const {
  RnnState s{Var(Tensor(Shape{batch, hidden_})), Var()};
  if (kind_ == CellKind::kLstm) s.c = Var(Tensor(Shape{batch, hidden_}));
  return s;
}

void RnnCell::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "w_ih", w_ih_});
  out.push_back({prefix + "b_ih", b_ih_});
  out.push_back({prefix + "w_hh", w_hh_});
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
    const float* w_hh = c.w_hh().value().data();
    const float* b_hh = c.b_hh().value().data();
    Tensor h(Shape{B, H}), h_next = Tensor::empty(Shape{B, H}), gh = Tensor::empty(Shape{B, GH});
    Tensor cs = lstm ? Tensor(Shape{B, H}) : Tensor(), c_next = lstm ? Tensor::empty(Shape{B, H}) : Tensor();
    std::vector<float> scratch(size_t(4) * H);
    for (int i = 0; i < S; ++i) {
      const int t = d == 1 ? S - 1 - i : i;
      // gh = h W_hh + b_hh; the state starts at zero, so the first step's is b_hh alone
      if (c.w_hh_int8() && i > 0)
        c.w_hh_int8()->apply(h.data(), B, b_hh, gh.data());
      else
        kernels::affine(B, GH, H, i > 0 ? h.data() : nullptr, w_hh, b_hh, gh.data());
      for (int b = 0; b < B; ++b) {
        const int64_t r = int64_t(b) * H;
        if (t >= lengths[b]) {  // past the end: the state stays
          std::copy_n(h.data() + r, H, h_next.data() + r);
          if (lstm) std::copy_n(cs.data() + r, H, c_next.data() + r);
          continue;
        }
        const float* x = gi + (int64_t(t) * B + b) * GH;
        if (lstm) {
          kernels::lstm_gates(x, gh.data() + int64_t(b) * GH, cs.data() + r, H, c_next.data() + r, scratch.data(),
                              h_next.data() + r);
        } else {
          kernels::gru_gates(x, gh.data() + int64_t(b) * GH, h.data() + r, H, scratch.data(), h_next.data() + r);
        }
      }
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
