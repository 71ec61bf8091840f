#include "attend/ops/layer_norm.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/layer_norm.h"

namespace attend {

Var layer_norm(const Var& x, const Var& gamma, const Var& beta, float eps) {
  const Shape& s = x.shape();
  if (s.ndim() < 1) throw std::invalid_argument("layer_norm: x must have at least one dimension, got " + s.str());
  const int64_t C = s[-1], rows = x.value().numel() / std::max<int64_t>(C, 1);
  if (gamma.shape() != Shape{C} || beta.shape() != Shape{C})
    throw std::invalid_argument("layer_norm: gamma " + gamma.shape().str() + " and beta " + beta.shape().str() +
                                " must be [" + std::to_string(C) + "] for x " + s.str());
  if (!(eps > 0.0f)) throw std::invalid_argument("layer_norm: eps must be > 0, got " + std::to_string(eps));
  Tensor y = Tensor::empty(s);
  Tensor xhat = Tensor::empty(s);            // saved for backward: (x - mean) * rstd
  Tensor rstd = Tensor::empty(Shape{rows});  // saved for backward: 1 / sqrt(var + eps)
  kernels::layer_norm_forward(rows, C, x.value().data(), gamma.value().data(), beta.value().data(), eps, y.data(),
                              xhat.data(), rstd.data());
  return make_result(std::move(y), needs_grad({&x, &gamma, &beta}), [x, gamma, beta, xhat, rstd, rows, C](Node& out) {
    // forward: y = xhat * gamma + beta, xhat = (x - mean) * rstd (kernels/layer_norm.h has the formulas)
    kernels::layer_norm_backward(rows, C, out.grad.data(), xhat.data(), rstd.data(), gamma.value().data(),
                                 x.requires_grad() ? x.grad_ref().data() : nullptr,
                                 gamma.requires_grad() ? gamma.grad_ref().data() : nullptr,
                                 beta.requires_grad() ? beta.grad_ref().data() : nullptr);
  });
}

}  // namespace attend
