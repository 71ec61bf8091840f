#include "attend/nn/linear.h"

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "attend/nn/init.h"
#include "attend/ops/embedding.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"

namespace attend {

Linear::Linear(int in, int out, bool bias, Rng& rng) : w_(parameter(Shape{in, out})) {
  init::glorot_uniform(w_.value(), rng);
  if (bias) b_ = parameter(Shape{out});
}

namespace {
std::string describe(const char* what, int in, int out) {
  return std::string(what) + " [" + std::to_string(in) + " x " + std::to_string(out) + "]";
}
}  // namespace

Var Linear::operator()(const Var& x) const {
  if (!int8_.empty() && !Tape::current()) return Var(int8_.apply(x.value(), b_.defined() ? b_.value() : Tensor()));
  if (!w_.defined()) throw_released(describe("Linear", int8_.in(), int8_.out()));
  return linear(x, w_, b_);
}

Var Linear::apply_rows(const Var& x, int first, int rows, bool with_bias) const {
  const Var b = with_bias ? b_ : Var();
  if (!int8_.empty() && !Tape::current())
    return Var(int8_.apply_rows(x.value(), first, rows, b.defined() ? b.value() : Tensor()));
  if (!w_.defined()) throw_released(describe("Linear", int8_.in(), int8_.out()));
  return linear(x, narrow(w_, first, rows), b);
}

void Linear::quantize_in_blocks(std::vector<int> bounds) {
  if (!w_.defined()) return;  // released: int8 already
  if (bounds.empty()) bounds = {0, static_cast<int>(w_.size(0))};
  int8_ = Int8Blocks(w_.value(), bounds);
}

void Linear::release_fp32() {
  if (!int8_.empty()) w_ = Var();
}

void Linear::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "weight", w_.defined() ? w_ : Var(int8_.dequantize_in_out())});
  if (b_.defined()) out.push_back({prefix + "bias", b_});
}

Embedding::Embedding(int vocab, int dim, Rng& rng) : table_(parameter(Shape{vocab, dim})), dim_(dim) {
  init::normal(table_.value(), 1.0f / std::sqrt(static_cast<float>(dim)), rng);
}

Var Embedding::operator()(const std::vector<int>& ids) const {
  if (int8_ && !Tape::current()) return Var(int8_->rows(ids));
  if (int8_ && !table_.defined()) throw_released(describe("Embedding", int8_->out(), int8_->in()));
  return embedding(table_, ids);
}

void Embedding::quantize() {
  if (!table_.defined()) return;     // released: int8 already
  const Tensor& t = table_.value();  // [V, E]: a row per token, quantized as an output layer's rows
  int8_ = Int8Weight::from_out_in(t.data(), static_cast<int>(t.size(0)), static_cast<int>(t.size(1)));
}

void Embedding::release_fp32() {
  if (int8_) table_ = Var();
}

void Embedding::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  if (table_.defined()) return out.push_back({prefix + "weight", table_});
  std::vector<int> every(int8_->out());
  std::iota(every.begin(), every.end(), 0);
  out.push_back({prefix + "weight", Var(int8_->rows(every))});
}

}  // namespace attend
