#include "attend/ops/dropout.h"

#include <cmath>
#include <stdexcept>

#include "kernels/dropout.h"

namespace attend {

// Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p), the mask drawn from one seed of
// the Rng by a counter-based hash (kernels/dropout.h): backward draws it again instead of
// keeping it, so dropout stores nothing but the seed.
Var dropout(const Var& x, float p, Rng& rng) {
  if (!(p >= 0.0f && p < 1.0f)) throw std::invalid_argument("dropout: p must be in [0, 1), got " + std::to_string(p));
  if (p == 0.0f) return x;
  const int64_t n = x.value().numel();
  const float scale = 1.0f / (1.0f - p);
  const uint64_t seed = rng.next_u64(), threshold = kernels::dropout_threshold(p);
  Tensor y = Tensor::empty(x.shape());
  kernels::dropout_forward(x.value().data(), n, seed, threshold, scale, y.data());
  return make_result(std::move(y), needs_grad({&x}), [x, seed, threshold, scale, n](Node& out) {
    // forward: y = x * m * scale  =>  dx = dy * m * scale
    kernels::dropout_backward(out.grad.data(), n, seed, threshold, scale, x.grad_ref().data());
  });
}

}  // namespace attend
