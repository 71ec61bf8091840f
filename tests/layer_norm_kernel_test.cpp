// The vectorised layer norm kernels (src/kernels/layer_norm.h) against their double-precision
// reference, over widths that exercise the lanes, the blocks and the tails, with rows far from
// zero (mean 1000) where a one-pass float variance would cancel.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attend/random.h"
#include "kernels/layer_norm.h"

namespace attend::kernels {
namespace {

struct Case {
  std::vector<float> x, gamma, beta, dy;
};

Case random_case(int64_t rows, int64_t C, float offset, uint64_t seed) {
  Rng rng(seed);
  Case k;
  for (int64_t i = 0; i < rows * C; ++i) k.x.push_back(offset + 3.0f * rng.normal());
  for (int64_t i = 0; i < rows * C; ++i) k.dy.push_back(rng.normal());
  for (int64_t c = 0; c < C; ++c) k.gamma.push_back(1.0f + 0.5f * rng.normal());
  for (int64_t c = 0; c < C; ++c) k.beta.push_back(rng.normal());
  return k;
}

// max |a - b| / (1 + |b|), and where.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const char* what, int64_t C) {
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - b[i]) / (1.0 + std::fabs(double(b[i])));
    if (!(e <= worst)) worst = e, at = i;
  }
  EXPECT_LE(worst, tol) << what << " C=" << C << ": worst relative error at " << at << " (" << a[at] << " vs " << b[at]
                        << ")";
}

TEST(LayerNormKernel, FastEqualsTheDoubleReference) {
  for (int64_t C : {1, 7, 16, 33, 255, 256, 257, 1024, 4097}) {
    for (float offset : {0.0f, 1000.0f}) {
      const int64_t rows = 5;
      const Case k = random_case(rows, C, offset, uint64_t(C) * 7 + 1);
      std::vector<float> y(rows * C), h(rows * C), rs(rows), y0(rows * C), h0(rows * C), rs0(rows);
      layer_norm_forward(rows, C, k.x.data(), k.gamma.data(), k.beta.data(), 1e-5f, y.data(), h.data(), rs.data());
      layer_norm_forward_reference(rows, C, k.x.data(), k.gamma.data(), k.beta.data(), 1e-5f, y0.data(), h0.data(),
                                   rs0.data());
      // Far from zero the input itself carries float rounding of 1000 * 6e-8 = 6e-5 per value, 3e-5 relative to sd 3.
      const double tol = offset == 0.0f ? 2e-6 : 5e-5;
      expect_close(y, y0, tol, "y", C);
      expect_close(h, h0, tol, "xhat", C);
      expect_close(rs, rs0, tol, "rstd", C);
      std::vector<float> dx(rows * C, 0.5f), dg(C, 0.25f), db(C, -1.0f), dx0 = dx, dg0 = dg, db0 = db;
      layer_norm_backward(rows, C, k.dy.data(), h0.data(), rs0.data(), k.gamma.data(), dx.data(), dg.data(), db.data());
      layer_norm_backward_reference(rows, C, k.dy.data(), h0.data(), rs0.data(), k.gamma.data(), dx0.data(), dg0.data(),
                                    db0.data());
      expect_close(dx, dx0, 2e-5, "dx", C);
      expect_close(dg, dg0, 1e-6, "dgamma", C);
      expect_close(db, db0, 1e-6, "dbeta", C);
    }
  }
}

TEST(LayerNormKernel, BackwardWithoutSomeGradientsSkipsThem) {
  const Case k = random_case(3, 40, 0.0f, 5);
  std::vector<float> y(120), h(120), rs(3), dx(120, 0.0f), dx0(120, 0.0f), dg(40, 0.0f);
  layer_norm_forward(3, 40, k.x.data(), k.gamma.data(), k.beta.data(), 1e-5f, y.data(), h.data(), rs.data());
  layer_norm_backward(3, 40, k.dy.data(), h.data(), rs.data(), k.gamma.data(), dx.data(), nullptr, nullptr);
  layer_norm_backward_reference(3, 40, k.dy.data(), h.data(), rs.data(), k.gamma.data(), dx0.data(), nullptr, nullptr);
  expect_close(dx, dx0, 2e-5, "dx", 40);
  layer_norm_backward(3, 40, k.dy.data(), h.data(), rs.data(), k.gamma.data(), nullptr, dg.data(), nullptr);
  EXPECT_NE(dg[0], 0.0f);
}

TEST(LayerNormKernel, ANonFiniteValuePoisonsItsRowOnly) {
  Case k = random_case(2, 300, 0.0f, 9);
  k.x[299] = NAN;  // row 0
  std::vector<float> y(600), h(600), rs(2);
  layer_norm_forward(2, 300, k.x.data(), k.gamma.data(), k.beta.data(), 1e-5f, y.data(), h.data(), rs.data());
  for (int c = 0; c < 300; ++c) EXPECT_TRUE(std::isnan(y[c])) << c;
  for (int c = 300; c < 600; ++c) EXPECT_TRUE(std::isfinite(y[c])) << c;
  k.x[299] = INFINITY;
  layer_norm_forward(2, 300, k.x.data(), k.gamma.data(), k.beta.data(), 1e-5f, y.data(), h.data(), rs.data());
  EXPECT_FALSE(std::isfinite(y[0]));
}

}  // namespace
}  // namespace attend::kernels
