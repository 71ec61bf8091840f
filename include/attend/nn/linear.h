// attend nn: affine layer and embedding table.
#pragma once

#include <memory>

#include "attend/nn/module.h"
#include "attend/ops/int8.h"
#include "attend/random.h"

namespace attend {

// y = x W + b; W [In, Out] (Glorot-initialised), b [Out] (zeros).
class Linear : public Module {
 public:
  Linear() = default;
  Linear(int in, int out, bool bias, Rng& rng);
  Var operator()(const Var& x) const;  // x [..., In] -> [..., Out]
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override;
  void release_fp32() override;             // the weight, once quantized
  const Var& weight() const { return w_; }  // undefined after release_fp32()
  const Var& bias() const { return b_; }
  const std::shared_ptr<const Int8Weight>& int8() const { return int8_; }  // after quantize(), else null

 private:
  Var w_, b_;
  std::shared_ptr<const Int8Weight> int8_;  // after quantize()
};

// table [V, E], N(0, 1/E) initialised.
class Embedding : public Module {
 public:
  Embedding() = default;
  Embedding(int vocab, int dim, Rng& rng);
  Var operator()(const std::vector<int>& ids) const;  // N ids -> [N, E]
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  // Lookups from an int8 table (a scale per token, as the tied output layer's) without a tape.
  void quantize() override;
  void release_fp32() override;  // the table, once quantized
  int dim() const { return dim_; }
  const Var& table() const { return table_; }                              // undefined after release_fp32()
  const std::shared_ptr<const Int8Weight>& int8() const { return int8_; }  // [V, E] as outputs x inputs

 private:
  Var table_;
  int dim_ = 0;
  std::shared_ptr<const Int8Weight> int8_;  // after quantize()
};

}  // namespace attend
