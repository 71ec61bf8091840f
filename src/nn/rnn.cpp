#include "attend/nn/rnn.h"

#include <stdexcept>

#include "attend/nn/init.h"
#include "attend/ops/matmul.h"
#include "attend/ops/rnn_cells.h"
#include "attend/ops/shape.h"

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

Var RnnCell::project_input(const Var& x) const { return linear(x, w_ih_, b_ih_); }

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
    if (len < 1 || len > S) throw std::invalid_argument("Rnn::forward: length " + std::to_string(len) + " outside [1, " + std::to_string(S) + "]");
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

void Rnn::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  fwd_.collect(prefix + "fwd.", out);
  if (bidirectional_) bwd_.collect(prefix + "bwd.", out);
}

}  // namespace attend
