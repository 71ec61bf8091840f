#include "attend/ops/dropout.h"

#include <stdexcept>

namespace attend {

Var dropout(const Var& x, float p, Rng& rng) {
  if (!(p >= 0.0f && p < 1.0f)) throw std::invalid_argument("dropout: p must be in [0, 1), got " + std::to_string(p));
  if (p == 0.0f) return x;
  const int64_t n = x.value().numel();
  const float keep = 1.0f / (1.0f - p);
  Tensor m = Tensor::empty(x.shape());  // the scaled mask: 0 or 1/(1-p)
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.value().data();
  for (int64_t i = 0; i < n; ++i) {
    m.data()[i] = rng.uniform() < p ? 0.0f : keep;
    y.data()[i] = px[i] * m.data()[i];
  }
  return make_result(std::move(y), needs_grad({&x}), [x, m, n](Node& out) {
    // forward: y = x * m  =>  dx = dy * m
    float* dx = x.grad_ref().data();
    for (int64_t i = 0; i < n; ++i) dx[i] += out.grad.data()[i] * m.data()[i];
  });
}

}  // namespace attend
