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
  Tensor out = Tensor::empty(Shape{static_cast<int64_t>(ids.size()), in_});
  for (size_t n = 0; n < ids.size(); ++n) {
    const int id = ids[n];
    if (id < 0 || id >= out_)
      throw std::invalid_argument("int8 table: id " + std::to_string(id) + " at position " + std::to_string(n) +
                                  " is outside [0, " + std::to_string(out_) + ")");
    const int8_t* q = q_.data() + size_t(id) * in_;
    float* y = out.data() + int64_t(n) * in_;
    for (int i = 0; i < in_; ++i) y[i] = q[i] * scale_[id];
  }
  return out;
}

}  // namespace attend
