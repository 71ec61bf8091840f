// attend ops: int8 weights for inference (attend translate --precision int8).
//
// A weight matrix quantized per output, symmetric, int8 with fp32 scales (Wu et al. 2016, as
// CTranslate2 does); inputs are quantized per row as they arrive, products sum in int32 and are
// scaled back to fp32 (kernels/int8_gemm.h has the arithmetic and its error). Attention
// scores, softmax, LayerNorm and the gates' nonlinearities stay in fp32: only the affine
// products (recurrent ones included) use it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attend/tensor.h"

namespace attend {

namespace kernels {
class Int8Gemm;
}

enum class Precision { kFp32, kInt8 };
Precision parse_precision(const std::string& name);  // "fp32" | "int8"; throws naming the choices
std::string to_string(Precision p);

class Int8Weight {
 public:
  // w [In, Out] as Linear keeps it (rows first..first+In of a taller matrix: pass the pointer).
  static std::shared_ptr<const Int8Weight> from_in_out(const float* w, int in, int out);
  static std::shared_ptr<const Int8Weight> from_in_out(const Tensor& w);  // w [In, Out], whole
  // w [Out, In]: an embedding table [V, E] used as the output layer (tied embeddings).
  static std::shared_ptr<const Int8Weight> from_out_in(const float* w, int out, int in);

  // y [M, Out] = x [M, In] W + bias [Out] (bias may be null), for raw buffers.
  void apply(const float* x, int64_t M, const float* bias, float* y) const;
  // x [..., In] -> [..., Out]; bias [Out] or undefined. Throws std::invalid_argument on shapes.
  Tensor apply(const Tensor& x, const Tensor& bias) const;

  // The weights back in fp32, as the products see them: [In, Out] (Linear's layout).
  Tensor dequantize_in_out() const;
  // Rows of the [Out, In] matrix in fp32 (lookups in an int8 embedding table): N ids, each in
  // [0, Out) (std::invalid_argument naming the id otherwise) -> [N, In].
  Tensor rows(const std::vector<int>& ids) const;
  // The same into out [n, In], for ids the caller has checked.
  void rows(const int* ids, int64_t n, float* out) const;

  int in() const { return in_; }
  int out() const { return out_; }
  int64_t bytes() const { return int64_t(q_.size()) + int64_t(scale_.size()) * 4; }

 private:
  Int8Weight(int in, int out);
  int in_ = 0, out_ = 0;
  std::vector<int8_t> q_;     // [Out, In]
  std::vector<float> scale_;  // [Out]
  std::shared_ptr<const kernels::Int8Gemm> gemm_;
};

// A weight [In, Out] quantized in blocks of its input rows, each block an Int8Weight with scales
// of its own, for layers whose input is a concatenation that is also multiplied in parts: the
// RNN decoder's [emb(y); h̃] and Luong's attentional layer's [c; s]. One block is the plain case.
class Int8Blocks {
 public:
  Int8Blocks() = default;
  // w [In, Out]; bounds 0 = b_0 < b_1 < ... < b_k = In, block i being rows [b_i, b_i+1).
  Int8Blocks(const Tensor& w, const std::vector<int>& bounds);
  bool empty() const { return blocks_.empty(); }
  int in() const { return bounds_.empty() ? 0 : bounds_.back(); }
  int out() const { return blocks_.empty() ? 0 : blocks_[0]->out(); }
  // The block of rows [first, first + rows), or null when no block is exactly that.
  std::shared_ptr<const Int8Weight> block(int first, int rows) const;
  // x [..., rows] times the block of rows [first, first + rows), + bias [Out] (or undefined);
  // std::invalid_argument when no block is that.
  Tensor apply_rows(const Tensor& x, int first, int rows, const Tensor& bias) const;
  // x [..., In] times the whole weight: the blocks' products of x's column blocks, summed.
  Tensor apply(const Tensor& x, const Tensor& bias) const;
  Tensor dequantize_in_out() const;  // [In, Out]

 private:
  std::vector<int> bounds_;
  std::vector<std::shared_ptr<const Int8Weight>> blocks_;
};

}  // namespace attend
