#include "attend/ops/int8.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/int8_gemm.h"

namespace attend {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "int8") return Precision::kInt8;
  throw std::invalid_argument("precision '" + name + "': expected fp32 or int8");
}

std::string to_string(Precision p) { return p == Precision::kInt8 ? "int8" : "fp32"; }

Int8Weight::Int8Weight(int in, int out)
    : in_(in),
      out_(out),
      q_(size_t(in) * size_t(out)),
      scale_(out),
      gemm_(std::make_shared<const kernels::Int8Gemm>(out, in)) {}

std::shared_ptr<const Int8Weight> Int8Weight::from_out_in(const float* w, int out, int in) {
  std::shared_ptr<Int8Weight> q(new Int8Weight(in, out));
  kernels::quantize_rows(w, out, in, kernels::int8_range(), q->q_.data(), q->scale_.data());
  return q;
}

std::shared_ptr<const Int8Weight> Int8Weight::from_in_out(const float* w, int in, int out) {
  std::vector<float> t(size_t(in) * size_t(out));  // W^T, [Out, In]
  for (int i = 0; i < in; ++i)
    for (int o = 0; o < out; ++o) t[size_t(o) * in + i] = w[size_t(i) * out + o];
  return from_out_in(t.data(), out, in);
}

std::shared_ptr<const Int8Weight> Int8Weight::from_in_out(const Tensor& w) {
  if (w.ndim() != 2) throw std::invalid_argument("int8 weight: shape " + w.shape().str() + " is not [In, Out]");
  return from_in_out(w.data(), static_cast<int>(w.size(0)), static_cast<int>(w.size(1)));
}

void Int8Weight::apply(const float* x, int64_t M, const float* bias, float* y) const {
  // The quantized rows of x: kept per thread and grown to the largest batch seen (M x In bytes).
  thread_local std::vector<int8_t> qx;
  thread_local std::vector<float> sx;
  qx.resize(std::max(qx.size(), size_t(M) * in_)), sx.resize(std::max(sx.size(), size_t(M)));
  kernels::quantize_rows(x, M, in_, kernels::int8_range(), qx.data(), sx.data());
  gemm_->run(M, qx.data(), sx.data(), q_.data(), scale_.data(), bias, y);
}

Tensor Int8Weight::apply(const Tensor& x, const Tensor& bias) const {
  if (x.ndim() < 1 || x.size(-1) != in_)
    throw std::invalid_argument("int8 product: input " + x.shape().str() + " does not match the weight's " +
                                std::to_string(in_) + " inputs");
  if (bias.defined() && (bias.ndim() != 1 || bias.size(0) != out_))
    throw std::invalid_argument("int8 product: bias " + bias.shape().str() + " for " + std::to_string(out_) +
                                " outputs");
  std::vector<int64_t> dims = x.shape().vec();
  dims.back() = out_;
  Tensor y = Tensor::empty(Shape(dims));
  apply(x.data(), x.numel() / in_, bias.defined() ? bias.data() : nullptr, y.data());
  return y;
}

Tensor Int8Weight::dequantize_in_out() const {
  Tensor w = Tensor::empty(Shape{in_, out_});
  for (int o = 0; o < out_; ++o)
    for (int i = 0; i < in_; ++i) w.data()[int64_t(i) * out_ + o] = q_[size_t(o) * in_ + i] * scale_[o];
  return w;
}

Tensor Int8Weight::rows(const std::vector<int>& ids) const {
  for (size_t n = 0; n < ids.size(); ++n)
    if (ids[n] < 0 || ids[n] >= out_)
      throw std::invalid_argument("int8 table: id " + std::to_string(ids[n]) + " at position " + std::to_string(n) +
                                  " is outside [0, " + std::to_string(out_) + ")");
  Tensor out = Tensor::empty(Shape{static_cast<int64_t>(ids.size()), in_});
  rows(ids.data(), static_cast<int64_t>(ids.size()), out.data());
  return out;
}

void Int8Weight::rows(const int* ids, int64_t n, float* out) const {
  for (int64_t r = 0; r < n; ++r) {
    const int8_t* q = q_.data() + size_t(ids[r]) * in_;
    const float s = scale_[ids[r]];
    float* y = out + r * in_;
    for (int i = 0; i < in_; ++i) y[i] = q[i] * s;
  }
}

Int8Blocks::Int8Blocks(const Tensor& w, const std::vector<int>& bounds) : bounds_(bounds) {
  if (w.ndim() != 2) throw std::invalid_argument("int8 blocks: weight " + w.shape().str() + " is not [In, Out]");
  const int64_t in = w.size(0), out = w.size(1);
  if (bounds.size() < 2 || bounds.front() != 0 || bounds.back() != in)
    throw std::invalid_argument("int8 blocks: bounds must run from 0 to the weight's " + std::to_string(in) + " rows");
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    if (bounds[i + 1] <= bounds[i])
      throw std::invalid_argument("int8 blocks: bound " + std::to_string(bounds[i + 1]) + " after " +
                                  std::to_string(bounds[i]) + " is not increasing");
    blocks_.push_back(
        Int8Weight::from_in_out(w.data() + int64_t(bounds[i]) * out, bounds[i + 1] - bounds[i], static_cast<int>(out)));
  }
}

std::shared_ptr<const Int8Weight> Int8Blocks::block(int first, int rows) const {
  for (size_t i = 0; i < blocks_.size(); ++i)
    if (bounds_[i] == first && bounds_[i + 1] == first + rows) return blocks_[i];
  return nullptr;
}

Tensor Int8Blocks::apply_rows(const Tensor& x, int first, int rows, const Tensor& bias) const {
  const std::shared_ptr<const Int8Weight> b = block(first, rows);
  if (!b)
    throw std::invalid_argument("int8 blocks: rows [" + std::to_string(first) + ", " + std::to_string(first + rows) +
                                ") are not one of the weight's quantized blocks");
  return b->apply(x, bias);
}

Tensor Int8Blocks::apply(const Tensor& x, const Tensor& bias) const {
  if (x.ndim() < 1 || x.size(-1) != in())
    throw std::invalid_argument("int8 product: input " + x.shape().str() + " does not match the weight's " +
                                std::to_string(in()) + " inputs");
  if (blocks_.size() == 1) return blocks_[0]->apply(x, bias);
  if (bias.defined() && (bias.ndim() != 1 || bias.size(0) != out()))
    throw std::invalid_argument("int8 product: bias " + bias.shape().str() + " for " + std::to_string(out()) +
                                " outputs");
  const int64_t N = x.numel() / in();
  std::vector<int64_t> dims = x.shape().vec();
  dims.back() = out();
  Tensor y = Tensor::empty(Shape(dims)), part_y = Tensor::empty(Shape{N, out()});
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const int first = bounds_[i], rows = bounds_[i + 1] - first;
    Tensor part = Tensor::empty(Shape{N, rows});  // x's columns [first, first + rows)
    for (int64_t n = 0; n < N; ++n) std::copy_n(x.data() + n * in() + first, rows, part.data() + n * rows);
    if (i == 0) {
      blocks_[0]->apply(part.data(), N, bias.defined() ? bias.data() : nullptr, y.data());
      continue;
    }
    blocks_[i]->apply(part.data(), N, nullptr, part_y.data());
    for (int64_t k = 0; k < y.numel(); ++k) y.data()[k] += part_y.data()[k];
  }
  return y;
}

Tensor Int8Blocks::dequantize_in_out() const {
  Tensor w = Tensor::empty(Shape{in(), out()});
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Tensor b = blocks_[i]->dequantize_in_out();
    std::copy_n(b.data(), b.numel(), w.data() + int64_t(bounds_[i]) * out());
  }
  return w;
}

}  // namespace attend
