#include "attend/ops/dropout.h"

#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

namespace attend {

// Inverted dropout: y = x * m / (1 - p), m ~ Bernoulli(1 - p). Each 64-bit draw of the Rng
// decides two elements (its 32-bit halves against p * 2^32), and the mask is kept as bytes.
Var dropout(const Var& x, float p, Rng& rng) {
  if (!(p >= 0.0f && p < 1.0f)) throw std::invalid_argument("dropout: p must be in [0, 1), got " + std::to_string(p));
  if (p == 0.0f) return x;
  const int64_t n = x.value().numel();
  const float keep = 1.0f / (1.0f - p);
  const uint64_t threshold = static_cast<uint64_t>(std::ldexp(static_cast<double>(p), 32));  // drop if below
  auto mask = std::make_shared<std::vector<uint8_t>>(n);
  uint8_t* m = mask->data();
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t r = rng.next_u64();
    m[i] = (r & 0xffffffffu) >= threshold;
    if (i + 1 < n) m[i + 1] = (r >> 32) >= threshold;
  }
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.value().data();
  for (int64_t i = 0; i < n; ++i) y.data()[i] = m[i] ? px[i] * keep : 0.0f;
  return make_result(std::move(y), needs_grad({&x}), [x, mask, keep, n](Node& out) {
    // forward: y = x * m * keep  =>  dx = dy * m * keep
    float* dx = x.grad_ref().data();
    const uint8_t* m = mask->data();
    for (int64_t i = 0; i < n; ++i)
      if (m[i]) dx[i] += out.grad.data()[i] * keep;
  });
}

}  // namespace attend
