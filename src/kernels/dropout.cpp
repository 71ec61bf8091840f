#include "dropout.h"

#include <cmath>

namespace attend::kernels {

uint64_t dropout_threshold(float p) { return static_cast<uint64_t>(std::ldexp(static_cast<double>(p), 32)); }

// Two elements per draw: the pair (2j, 2j + 1) from counter_draw(seed, j).
void dropout_forward(const float* x, int64_t n, uint64_t seed, uint64_t threshold, float scale, float* y) {
  int64_t i = 0;
  for (; i + 1 < n; i += 2) {
    const uint64_t r = counter_draw(seed, static_cast<uint64_t>(i) >> 1);
    y[i] = (r & 0xffffffffu) >= threshold ? x[i] * scale : 0.0f;
    y[i + 1] = (r >> 32) >= threshold ? x[i + 1] * scale : 0.0f;
  }
  if (i < n) y[i] = dropout_keeps(seed, threshold, i) ? x[i] * scale : 0.0f;
}

void dropout_backward(const float* dy, int64_t n, uint64_t seed, uint64_t threshold, float scale, float* dx) {
  int64_t i = 0;
  for (; i + 1 < n; i += 2) {
    const uint64_t r = counter_draw(seed, static_cast<uint64_t>(i) >> 1);
    if ((r & 0xffffffffu) >= threshold) dx[i] += dy[i] * scale;
    if ((r >> 32) >= threshold) dx[i + 1] += dy[i + 1] * scale;
  }
  if (i < n && dropout_keeps(seed, threshold, i)) dx[i] += dy[i] * scale;
}

}  // namespace attend::kernels
