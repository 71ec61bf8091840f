// The counter-based dropout kernels against their reference (dropout_keeps): forward and backward
// draw the same mask, element by element, for even and odd sizes and in place; the op keeps
// nothing but a seed, so the same seed gives the same mask.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "attend/cpu.h"
#include "attend/ops/dropout.h"
#include "kernels/dropout.h"

namespace attend::kernels {
namespace {

TEST(DropoutKernel, ForwardAndBackwardFollowTheReferenceMask) {
  for (int64_t n : {1, 2, 7, 64, 1001, 100003}) {
    for (float p : {0.1f, 0.5f, 0.9f}) {
      const uint64_t seed = 12345 + n, threshold = dropout_threshold(p);
      const float scale = 1.0f / (1.0f - p);
      std::vector<float> x(n), y(n), dy(n), dx(n, 0.5f);
      for (int64_t i = 0; i < n; ++i) x[i] = 1.0f + i, dy[i] = 2.0f - i;
      dropout_forward(x.data(), n, seed, threshold, scale, y.data());
      dropout_backward(dy.data(), n, seed, threshold, scale, dx.data());
      for (int64_t i = 0; i < n; ++i) {
        const bool keep = dropout_keeps(seed, threshold, i);
        EXPECT_EQ(y[i], keep ? x[i] * scale : 0.0f) << n << " " << p << " " << i;
        EXPECT_FLOAT_EQ(dx[i], keep ? 0.5f + dy[i] * scale : 0.5f) << n << " " << p << " " << i;  // accumulates
      }
      std::vector<float> in_place = x;
      dropout_forward(in_place.data(), n, seed, threshold, scale, in_place.data());
      EXPECT_EQ(in_place, y);
    }
  }
}

// The vector loops (dropout_vec.cpp) on every instruction set this CPU runs, against the scalar
// reference, bit for bit: sizes around the vector widths, ranges starting at any even element,
// p from 0 to near 1, gradients accumulating onto -0, NaN and values.
TEST(DropoutKernel, VectorRangesAreTheReferenceOnEveryInstructionSet) {
  const std::string previous = cpu_isa();
  for (const std::string& isa : cpu_isas()) {
    set_cpu_isa(isa);
    for (int64_t begin : {0, 2, 6, 30}) {
      for (int64_t n : {1, 15, 16, 17, 31, 33, 257}) {
        for (float p : {0.0f, 0.1f, 0.5f, 0.999f}) {
          const uint64_t seed = 99 + n, threshold = dropout_threshold(p);
          const float scale = 1.0f / (1.0f - p);
          std::vector<float> x(begin + n), y(begin + n, 7.0f), ry = y, dx(begin + n), rdx;
          for (size_t i = 0; i < x.size(); ++i)
            x[i] = 0.25f * float(i) - 3.0f, dx[i] = i % 3 == 0 ? -0.0f : i % 3 == 1 ? NAN : 1.5f;
          rdx = dx;
          dropout_forward_range(x.data(), begin, begin + n, seed, threshold, scale, y.data());
          reference::dropout_forward_range(x.data(), begin, begin + n, seed, threshold, scale, ry.data());
          dropout_backward_range(x.data(), begin, begin + n, seed, threshold, scale, dx.data());
          reference::dropout_backward_range(x.data(), begin, begin + n, seed, threshold, scale, rdx.data());
          for (size_t i = 0; i < x.size(); ++i) {
            ASSERT_EQ(std::memcmp(&y[i], &ry[i], 4), 0)
                << isa << " begin " << begin << " n " << n << " p " << p << " " << i;
            ASSERT_EQ(std::memcmp(&dx[i], &rdx[i], 4), 0)
                << isa << " begin " << begin << " n " << n << " p " << p << " " << i;
          }
        }
      }
    }
  }
  set_cpu_isa(previous);
}

TEST(DropoutKernel, ThresholdsAreExactAtTheEnds) {
  EXPECT_EQ(dropout_threshold(0.0f), 0u);
  EXPECT_EQ(dropout_threshold(0.5f), uint64_t(1) << 31);
  for (int64_t i = 0; i < 100; ++i) EXPECT_TRUE(dropout_keeps(7, 0, i));  // p = 0 keeps everything
}

TEST(DropoutKernel, TheOpIsItsSeed) {
  Var x(Tensor::full(Shape{257}, 1.0f));
  Rng a(3), b(3);
  EXPECT_EQ(dropout(x, 0.3f, a).value().to_vector(), dropout(x, 0.3f, b).value().to_vector());
  EXPECT_NE(dropout(x, 0.3f, a).value().to_vector(), dropout(x, 0.3f, a).value().to_vector());
}

}  // namespace
}  // namespace attend::kernels
