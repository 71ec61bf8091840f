#include "sparse_normalizers.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace attend::kernels {

namespace {
// Copies the unmasked values of row r into scratch (scaled), sorted in decreasing order; returns how many.
int64_t sorted_unmasked(const float* xr, const float* mr, int64_t S, float scale, float* scratch) {
  int64_t n = 0;
  for (int64_t s = 0; s < S; ++s)
    if (!mr || mr[s] != 0.0f) scratch[n++] = xr[s] * scale;
  std::sort(scratch, scratch + n, std::greater<float>());
  return n;
}

// The row loop both normalisers share: each row's unmasked values, scaled and sorted in
// decreasing order into scratch, go to threshold(xr, mr, n), which returns the row's tau; a row
// with nothing unmasked is all zeros. output(x_s, tau) gives an unmasked position's weight.
template <class Threshold, class Output>
void sparse_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                 float* scratch, float scale, Threshold threshold, Output output) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * S;
    const float* mr = mask ? mask + (r / rows_per_mask) * S : nullptr;
    float* yr = y + r * S;
    bool nan = false;  // a NaN score makes the row NaN (sorting and max() would hide it)
    for (int64_t s = 0; s < S; ++s) nan |= (!mr || mr[s] != 0.0f) && std::isnan(xr[s]);
    if (nan) {
      std::fill(yr, yr + S, NAN);
      continue;
    }
    const int64_t n = sorted_unmasked(xr, mr, S, scale, scratch);
    if (n == 0) {
      std::fill(yr, yr + S, 0.0f);
      continue;
    }
    const double tau = threshold(n);
    for (int64_t s = 0; s < S; ++s) yr[s] = (!mr || mr[s] != 0.0f) ? output(xr[s], tau) : 0.0f;
  }
}
}  // namespace

void sparsemax_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                    float* scratch) {
  sparse_rows(
      x, mask, rows, rows_per_mask, S, y, scratch, 1.0f,
      [scratch](int64_t n) {
        // k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)};  tau = (sum_{j<=k} z_(j) - 1) / k
        double cumsum = 0.0, tau = 0.0;
        for (int64_t k = 1; k <= n; ++k) {
          cumsum += scratch[k - 1];
          if (1.0 + k * double(scratch[k - 1]) > cumsum) tau = (cumsum - 1.0) / k;
        }
        return tau;
      },
      [](float xs, double tau) { return std::max(0.0f, static_cast<float>(xs - tau)); });
}

void entmax15_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                   float* scratch) {
  sparse_rows(
      x, mask, rows, rows_per_mask, S, y, scratch, /*scale: z = x (alpha - 1) = x / 2*/ 0.5f,
      [scratch](int64_t n) {
        // Support = the top k values; on it sum (z - tau)^2 = 1, so tau_k = mean_k - sqrt((1 - ss_k) / k)
        // with ss_k the sum of squared deviations from mean_k. The support is the largest k with
        // tau_k <= z_(k). Values are shifted by the maximum first, for accuracy.
        const double top = scratch[0];
        double sum = 0.0, sum_sq = 0.0, tau = top - 1.0;  // k = 1: tau = z_(1) - 1
        for (int64_t k = 1; k <= n; ++k) {
          const double z = scratch[k - 1] - top;
          sum += z;
          sum_sq += z * z;
          const double mean = sum / k, ss = sum_sq - k * mean * mean;
          const double delta = (1.0 - ss) / k;
          if (delta < 0.0) break;
          const double t = mean - std::sqrt(delta);
          if (t > z) break;
          tau = t + top;
        }
        return tau;
      },
      [](float xs, double tau) {
        const double d = std::max(0.0, 0.5 * xs - tau);
        return static_cast<float>(d * d);
      });
}

}  // namespace attend::kernels
