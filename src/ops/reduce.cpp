#include "attend/ops/reduce.h"

#include <stdexcept>

namespace attend {

namespace {
Var sum_scaled(const Var& x, float factor) {
  double acc = 0.0;
  const float* px = x.value().data();
  const int64_t n = x.value().numel();
  for (int64_t i = 0; i < n; ++i) acc += px[i];
  return make_result(Tensor::scalar(static_cast<float>(acc) * factor), needs_grad({&x}), [x, factor, n](Node& out) {
    // forward: y = factor * sum(x)  =>  dx = factor * dy
    const float g = out.grad.data()[0] * factor;
    float* dx = x.grad_ref().data();
    for (int64_t i = 0; i < n; ++i) dx[i] += g;
  });
}
}  // namespace

Var sum(const Var& x) { return sum_scaled(x, 1.0f); }

Var mean(const Var& x) {
  if (x.value().numel() == 0) throw std::invalid_argument("mean: empty tensor " + x.shape().str());
  return sum_scaled(x, 1.0f / static_cast<float>(x.value().numel()));
}

}  // namespace attend
