// Initialisation and the optimizer.
#include <gtest/gtest.h>

#include <cmath>

#include "attend/nn/init.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/reduce.h"
#include "attend/train/optimizer.h"

namespace attend {
namespace {

TEST(Init, OrthogonalBlocksAreOrthonormal) {
  Rng rng(3);
  Tensor w(Shape{16, 48});
  init::orthogonal_blocks(w, rng);
  for (int g = 0; g < 3; ++g)
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        double d = 0.0;
        for (int k = 0; k < 16; ++k) d += double(w.data()[i * 48 + g * 16 + k]) * w.data()[j * 48 + g * 16 + k];
        EXPECT_NEAR(d, i == j ? 1.0 : 0.0, 1e-5) << "block " << g << " rows " << i << ", " << j;
      }
  EXPECT_THROW(init::orthogonal_blocks(w = Tensor(Shape{16, 40}), rng), std::invalid_argument);
}

TEST(Init, SkipScopeLeavesWeightsAndTheGeneratorAlone) {
  Rng rng(7), untouched(7);
  Tensor a = Tensor::full(Shape{4, 12}, 0.25f), b = Tensor::full(Shape{4, 4}, 0.25f);
  {
    init::SkipScope skip;
    init::orthogonal_blocks(a, rng);
    init::glorot_uniform(b, rng);
    init::uniform(b, 1.0f, rng);
    init::normal(b, 1.0f, rng);
    EXPECT_THROW(init::orthogonal_blocks(a = Tensor(Shape{4, 10}), rng), std::invalid_argument);  // still checked
  }
  for (float v : b.to_vector()) EXPECT_EQ(v, 0.25f);
  EXPECT_EQ(rng.uniform(), untouched.uniform()) << "the scope drew random numbers";
  init::glorot_uniform(b, rng);  // after the scope: initialised again
  EXPECT_NE(b.to_vector()[0], 0.25f);
}

TEST(Init, GlorotBound) {
  Rng rng(4);
  Tensor w(Shape{30, 70});
  init::glorot_uniform(w, rng);
  const float a = std::sqrt(6.0f / 100.0f);
  float lo = 1, hi = -1;
  for (float v : w.to_vector()) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -a);
  EXPECT_LE(hi, a);
  EXPECT_LT(lo, -0.9f * a);
  EXPECT_GT(hi, 0.9f * a);
}

TEST(Adam, MinimisesAQuadraticAndClipsTheNorm) {
  Var w(Tensor::from(Shape{3}, {5.0f, -3.0f, 1.0f}), true);
  Var target(Tensor::from(Shape{3}, {1.0f, 2.0f, -1.0f}));
  Adam adam({{"w", w}}, {.lr = 0.1f, .clip_norm = 1.0f});
  float first_norm = 0.0f;
  for (int i = 0; i < 500; ++i) {
    Tape tape;
    TapeScope scope(tape);
    Var d = sub(w, target);
    Var loss = sum(mul(d, d));
    tape.backward(loss);
    const float norm = adam.step(0.1f);
    if (i == 0) first_norm = norm;
    adam.zero_grad();
  }
  EXPECT_NEAR(first_norm, 2.0f * std::sqrt(16.0f + 25.0f + 4.0f), 1e-4f);  // reported before clipping
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(w.value().data()[k], target.value().data()[k], 1e-2f);
}

TEST(Adam, NonFiniteGradientsUpdateNothing) {
  Var w(Tensor::from(Shape{2}, {1.0f, 2.0f}), true);
  Adam adam({{"w", w}}, {});
  w.grad_ref().data()[0] = NAN;
  EXPECT_TRUE(std::isnan(adam.step(0.1f)));
  EXPECT_EQ(w.value().data()[0], 1.0f);
  EXPECT_EQ(w.value().data()[1], 2.0f);
}

TEST(LrSchedule, WarmupThenConstantOrInverseSqrt) {
  LrSchedule c{LrSchedule::Kind::kConstant, 1.0f, 10};
  EXPECT_FLOAT_EQ(c.at(5), 0.5f);
  EXPECT_FLOAT_EQ(c.at(100), 1.0f);
  LrSchedule r{LrSchedule::Kind::kInverseSqrt, 1.0f, 100};
  EXPECT_FLOAT_EQ(r.at(50), 0.5f);
  EXPECT_FLOAT_EQ(r.at(100), 1.0f);
  EXPECT_FLOAT_EQ(r.at(400), 0.5f);
  EXPECT_THROW(parse_schedule("cosine"), std::invalid_argument);
}

TEST(LrSchedule, CooldownEndsTheBudgetLinearly) {
  // 100 updates, the last 10 of them a cooldown: the schedule's own rate until update 90, then
  // 10/10, 9/10 ... 1/10 of it.
  LrSchedule c{LrSchedule::Kind::kConstant, 1.0f, 10, 100, 10};
  EXPECT_FLOAT_EQ(c.at(5), 0.5f);  // warm-up unchanged
  EXPECT_FLOAT_EQ(c.at(90), 1.0f);
  EXPECT_FLOAT_EQ(c.at(91), 1.0f);
  EXPECT_FLOAT_EQ(c.at(92), 0.9f);
  EXPECT_FLOAT_EQ(c.at(100), 0.1f);
  EXPECT_FLOAT_EQ(c.at(101), 0.0f);  // past the budget (a resumed run with a larger one resets it)
  LrSchedule r{LrSchedule::Kind::kInverseSqrt, 1.0f, 100, 400, 200};
  EXPECT_FLOAT_EQ(r.at(100), 1.0f);
  EXPECT_FLOAT_EQ(r.at(200), std::sqrt(0.5f));
  EXPECT_FLOAT_EQ(r.at(201), std::sqrt(100.0f / 201.0f));  // the first of the cooldown, at full rate
  EXPECT_FLOAT_EQ(r.at(400), 0.5f / 200);
  LrSchedule none{LrSchedule::Kind::kInverseSqrt, 1.0f, 100, 400, 0};
  EXPECT_FLOAT_EQ(none.at(400), 0.5f);
}

}  // namespace
}  // namespace attend
