#include "softmax.h"

#include <algorithm>
#include <cmath>

#include "vec_math.h"

namespace attend::kernels {

void softmax_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                  bool log_output) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * S;
    const float* mr = mask ? mask + (r / rows_per_mask) * S : nullptr;
    float* yr = y + r * S;
    float m = -INFINITY;
    bool nan = false;
    for (int64_t s = 0; s < S; ++s)
      if (!mr || mr[s] != 0.0f) m = std::fmax(m, xr[s]), nan |= std::isnan(xr[s]);
    if (nan) {  // a NaN score: the row is NaN, never the zeros of a fully masked row
      std::fill(yr, yr + S, NAN);
      continue;
    }
    if (m == -INFINITY) {  // every position masked (or all -inf): defined as zero weight
      for (int64_t s = 0; s < S; ++s) yr[s] = log_output ? -INFINITY : 0.0f;
      continue;
    }
    for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] - m;
    vexp(yr, yr, S);
    double sum = 0.0;
    for (int64_t s = 0; s < S; ++s) {
      if (mr && mr[s] == 0.0f) yr[s] = 0.0f;
      sum += yr[s];
    }
    if (log_output) {
      const float lse = m + static_cast<float>(std::log(sum));
      for (int64_t s = 0; s < S; ++s) yr[s] = (!mr || mr[s] != 0.0f) ? xr[s] - lse : -INFINITY;
    } else {
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t s = 0; s < S; ++s) yr[s] *= inv;
    }
  }
}

}  // namespace attend::kernels
