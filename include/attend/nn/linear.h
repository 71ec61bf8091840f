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
  // x [..., rows] times W's rows [first, first + rows), + b when with_bias: a part of a
  // concatenated input. Summing the parts' results gives operator().
  Var apply_rows(const Var& x, int first, int rows, bool with_bias) const;
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  void quantize() override { quantize_in_blocks({}); }
  // int8 in blocks of W's rows (Int8Blocks), each read by apply_rows; {} is one block.
  void quantize_in_blocks(std::vector<int> bounds);
  void release_fp32() override;             // the weight, once quantized
  const Var& weight() const { return w_; }  // undefined after release_fp32()
  const Var& bias() const { return b_; }
  // After quantize(): the weight's block of rows [first, first + rows) (null when it is not one).
  std::shared_ptr<const Int8Weight> int8(int first, int rows) const { return int8_.block(first, rows); }
  std::shared_ptr<const Int8Weight> int8() const { return int8_.block(0, int8_.in()); }  // the whole, one block

 private:
  Var w_, b_;
  Int8Blocks int8_;  // after quantize()
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
