#include "attend/nn/linear.h"

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "attend/nn/init.h"
#include "attend/ops/embedding.h"
#include "attend/ops/matmul.h"

namespace attend {

Linear::Linear(int in, int out, bool bias, Rng& rng) : w_(parameter(Shape{in, out})) {
  init::glorot_uniform(w_.value(), rng);
  if (bias) b_ = parameter(Shape{out});
}

namespace {
void require_fp32(const Var& w, const char* what, const Int8Weight& q) {
  if (!w.defined())
    throw std::runtime_error(std::string(what) + " [" + std::to_string(q.in()) + " x " + std::to_string(q.out()) +
                             "]: its fp32 weights were released after int8 quantization (a model loaded for "
                             "int8 inference); load it in fp32 to record a tape through it");
}
}  // namespace

Var Linear::operator()(const Var& x) const {
  if (int8_ && !Tape::current()) return Var(int8_->apply(x.value(), b_.defined() ? b_.value() : Tensor()));
  if (int8_) require_fp32(w_, "Linear", *int8_);
  return linear(x, w_, b_);
}

void Linear::quantize() {
  if (w_.defined()) int8_ = Int8Weight::from_in_out(w_.value());  // (else released: int8 already)
}

void Linear::release_fp32() {
  if (int8_) w_ = Var();
}

void Linear::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  out.push_back({prefix + "weight", w_.defined() ? w_ : Var(int8_->dequantize_in_out())});
  if (b_.defined()) out.push_back({prefix + "bias", b_});
}

Embedding::Embedding(int vocab, int dim, Rng& rng) : table_(parameter(Shape{vocab, dim})), dim_(dim) {
  init::normal(table_.value(), 1.0f / std::sqrt(static_cast<float>(dim)), rng);
}

Var Embedding::operator()(const std::vector<int>& ids) const {
  if (int8_ && !Tape::current()) return Var(int8_->rows(ids));
  if (int8_) require_fp32(table_, "Embedding", *int8_);
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
