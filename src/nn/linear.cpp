#include "attend/nn/linear.h"

#include <cmath>

#include "attend/nn/init.h"
#include "attend/ops/embedding.h"
#include "attend/ops/matmul.h"

namespace attend {

Linear::Linear(int in, int out, bool bias, Rng& rng) : w_(parameter(Shape{in, out})) {
  init::glorot_uniform(w_.value(), rng);
  if (bias) b_ = parameter(Shape{out});
}

Var Linear::operator()(const Var& x) const {
  if (int8_ && !Tape::current()) return Var(int8_->apply(x.value(), b_.defined() ? b_.value() : Tensor()));
  return linear(x, w_, b_);
}

void Linear::quantize() { int8_ = Int8Weight::from_in_out(w_.value()); }

void Linear::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "weight", w_});
  if (b_.defined()) out.push_back({prefix + "bias", b_});
}

Embedding::Embedding(int vocab, int dim, Rng& rng) : table_(parameter(Shape{vocab, dim})) {
  init::normal(table_.value(), 1.0f / std::sqrt(static_cast<float>(dim)), rng);
}

Var Embedding::operator()(const std::vector<int>& ids) const { return embedding(table_, ids); }

void Embedding::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "weight", table_});
}

}  // namespace attend
