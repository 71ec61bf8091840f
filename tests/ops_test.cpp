// Finite-difference gradient tests and value tests for every differentiable op.
#include <gtest/gtest.h>

#include <limits>

#include <cmath>

#include "attend/ops/attention_scores.h"
#include "attend/ops/dropout.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/embedding.h"
#include "attend/ops/layer_norm.h"
#include "attend/ops/loss.h"
#include "attend/ops/matmul.h"
#include "attend/ops/reduce.h"
#include "attend/ops/relative_positions.h"
#include "attend/ops/rnn_cells.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::gradcheck;
using testing::random_var;

TEST(Tensor, ShapeErrorsNameTheShapes) {
  Tensor t(Shape{2, 3});
  try {
    t.view(Shape{4, 2});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Shape({1, 2, 3, 4, 5}), std::invalid_argument);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
}

TEST(Tensor, NarrowAndViewShareStorage) {
  Tensor t = Tensor::from(Shape{3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor row = t.narrow(1, 1);
  EXPECT_EQ(row.shape(), Shape({1, 2}));
  row.data()[0] = 30;
  EXPECT_EQ(t.data()[2], 30);
  EXPECT_EQ(t.view(Shape{6}).data()[5], 6);
  EXPECT_THROW(t.narrow(2, 2), std::invalid_argument);
}

TEST(Ops, MatmulMatchesHandComputed) {
  Var a(Tensor::from(Shape{2, 3}, {1, 2, 3, 4, 5, 6}));
  Var b(Tensor::from(Shape{3, 2}, {7, 8, 9, 10, 11, 12}));
  Var c = matmul(a, b);
  EXPECT_EQ(c.value().to_vector(), (std::vector<float>{58, 64, 139, 154}));
  Var ct = matmul(b, a, /*trans_a=*/true, /*trans_b=*/true);  // (a b)^T
  EXPECT_EQ(ct.value().to_vector(), (std::vector<float>{58, 139, 64, 154}));
  EXPECT_THROW(matmul(a, a), std::invalid_argument);
}

TEST(OpsGrad, Matmul) {
  Rng rng(1);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Var a = random_var(ta ? Shape{4, 3} : Shape{3, 4}, rng);
      Var b = random_var(tb ? Shape{5, 4} : Shape{4, 5}, rng);
      gradcheck([=](const std::vector<Var>& x) { return matmul(x[0], x[1], ta, tb); }, {a, b});
    }
}

TEST(OpsGrad, Bmm) {
  Rng rng(2);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Var a = random_var(ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, rng);
      Var b = random_var(tb ? Shape{2, 5, 4} : Shape{2, 4, 5}, rng);
      gradcheck([=](const std::vector<Var>& x) { return bmm(x[0], x[1], ta, tb); }, {a, b});
    }
}

TEST(OpsGrad, Linear) {
  Rng rng(3);
  gradcheck([](const std::vector<Var>& x) { return linear(x[0], x[1], x[2]); },
            {random_var({2, 3, 4}, rng), random_var({4, 5}, rng), random_var({5}, rng)});
  gradcheck([](const std::vector<Var>& x) { return linear(x[0], x[1], Var()); },
            {random_var({3, 4}, rng), random_var({4, 2}, rng)});
}

TEST(OpsGrad, BroadcastArithmetic) {
  Rng rng(4);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {2, 1, 4}}, {{3, 1}, {1, 5}}, {{2, 2, 3, 2}, {2, 1, 1}}};
  for (const auto& [sa, sb] : shapes) {
    gradcheck([](const std::vector<Var>& x) { return add(x[0], x[1]); }, {random_var(sa, rng), random_var(sb, rng)});
    gradcheck([](const std::vector<Var>& x) { return sub(x[0], x[1]); }, {random_var(sa, rng), random_var(sb, rng)});
    gradcheck([](const std::vector<Var>& x) { return mul(x[0], x[1]); }, {random_var(sa, rng), random_var(sb, rng)});
  }
  EXPECT_THROW(add(random_var({2, 3}, rng), random_var({4}, rng)), std::invalid_argument);
}

TEST(OpsGrad, Minimum) {
  Rng rng(15);
  gradcheck([](const std::vector<Var>& x) { return minimum(x[0], x[1]); },
            {random_var({3, 5}, rng), random_var({3, 5}, rng)});
  gradcheck([](const std::vector<Var>& x) { return minimum(x[0], x[1]); },
            {random_var({2, 3, 4}, rng), random_var({4}, rng)});
  EXPECT_EQ(minimum(Var(Tensor::from(Shape{2}, {1, 5})), Var(Tensor::from(Shape{2}, {3, 2}))).value().to_vector(),
            (std::vector<float>{1, 2}));
}

TEST(OpsGrad, Unary) {
  Rng rng(5);
  gradcheck([](const std::vector<Var>& x) { return tanh(x[0]); }, {random_var({3, 4}, rng)});
  gradcheck([](const std::vector<Var>& x) { return sigmoid(x[0]); }, {random_var({3, 4}, rng)});
  gradcheck([](const std::vector<Var>& x) { return exp(x[0]); }, {random_var({3, 4}, rng, 0.5f)});
  gradcheck([](const std::vector<Var>& x) { return scale(x[0], -1.5f); }, {random_var({3, 4}, rng)});
  // relu and log away from their kinks / poles.
  Tensor t(Shape{12});
  for (int i = 0; i < 12; ++i) t.data()[i] = (i % 2 ? 1.0f : -1.0f) * (0.2f + 0.1f * i);
  gradcheck([](const std::vector<Var>& x) { return relu(x[0]); }, {Var(t.clone(), true)});
  for (int i = 0; i < 12; ++i) t.data()[i] = 0.5f + 0.2f * i;
  gradcheck([](const std::vector<Var>& x) { return log(x[0]); }, {Var(t, true)});
}

TEST(Ops, SoftmaxMaskedRowsAndFullyMasked) {
  Var x(Tensor::from(Shape{2, 3}, {1, 2, 3, 4, 5, 6}));
  Tensor mask = Tensor::from(Shape{2, 3}, {1, 1, 0, 0, 0, 0});
  Var y = softmax(x, mask);
  const auto v = y.value().to_vector();
  EXPECT_NEAR(v[0] + v[1], 1.0f, 1e-6f);
  EXPECT_EQ(v[2], 0.0f);
  EXPECT_NEAR(v[1] / v[0], std::exp(1.0f), 1e-4f);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(v[i], 0.0f) << "fully masked row must be zeros, not NaN";
  Var ly = log_softmax(x, mask);
  EXPECT_NEAR(std::exp(ly.value().data()[0]), v[0], 1e-6f);
  EXPECT_EQ(ly.value().data()[2], -INFINITY);
  EXPECT_THROW(softmax(x, Tensor(Shape{2, 4})), std::invalid_argument);
}

TEST(OpsGrad, SoftmaxAndLogSoftmaxWithMasks) {
  Rng rng(6);
  Tensor mask = Tensor::from(Shape{2, 5}, {1, 1, 1, 0, 0, 1, 0, 1, 1, 1});
  gradcheck([](const std::vector<Var>& x) { return softmax(x[0]); }, {random_var({3, 5}, rng)});
  gradcheck([&](const std::vector<Var>& x) { return softmax(x[0], mask); }, {random_var({2, 3, 5}, rng)});
  gradcheck([](const std::vector<Var>& x) { return log_softmax(x[0]); }, {random_var({3, 5}, rng)});
  // Masked log-softmax outputs are -inf; exp() maps them back to finite values for the probe.
  gradcheck([&](const std::vector<Var>& x) { return exp(log_softmax(x[0], mask)); }, {random_var({2, 5}, rng)});
}

TEST(Ops, SparsemaxAndEntmaxValues) {
  // sparsemax([1, 0.5, -1]): tau = 0.25 -> [0.75, 0.25, 0]; a large gap gives a one-hot.
  Var x(Tensor::from(Shape{2, 3}, {1.0f, 0.5f, -1.0f, 5.0f, 0.0f, 0.0f}));
  EXPECT_EQ(sparsemax(x).value().to_vector(), (std::vector<float>{0.75f, 0.25f, 0.0f, 1.0f, 0.0f, 0.0f}));
  // entmax15 of equal values is uniform; of [2, 0] (z = [1, 0]): tau solves (1-tau)^2 + (-tau)^2 = 1 -> tau = 0, p =
  // [1, 0].
  Var e(Tensor::from(Shape{2, 2}, {0.3f, 0.3f, 2.0f, 0.0f}));
  const auto p = entmax15(e).value().to_vector();
  EXPECT_NEAR(p[0], 0.5f, 1e-6f);
  EXPECT_NEAR(p[1], 0.5f, 1e-6f);
  EXPECT_NEAR(p[2], 1.0f, 1e-6f);
  EXPECT_NEAR(p[3], 0.0f, 1e-6f);
  // Rows sum to one over unmasked positions; masked and fully masked rows are zeros.
  Rng rng(13);
  Var r = random_var({3, 7}, rng, 2.0f, false);
  Tensor mask = Tensor::from(Shape{3, 7}, {1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1});
  for (Var y : {sparsemax(r, mask), entmax15(r, mask)}) {
    const auto v = y.value().to_vector();
    double row0 = 0, row2 = 0;
    for (int s = 0; s < 7; ++s) row0 += v[s], row2 += v[14 + s];
    EXPECT_NEAR(row0, 1.0, 1e-5);
    EXPECT_NEAR(row2, 1.0, 1e-5);
    EXPECT_EQ(v[4], 0.0f);
    for (int s = 7; s < 14; ++s) EXPECT_EQ(v[s], 0.0f);
  }
  EXPECT_THROW(parse_normalizer("softermax"), std::invalid_argument);
}

TEST(OpsGrad, SparsemaxAndEntmax) {
  Rng rng(14);
  Tensor mask = Tensor::from(Shape{2, 6}, {1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1});
  // Values spread so that no input sits on a support boundary within eps.
  for (int trial = 0; trial < 3; ++trial) {
    gradcheck([&](const std::vector<Var>& x) { return sparsemax(x[0], mask); }, {random_var({2, 6}, rng, 1.5f)},
              {.eps = 1e-3f});
    gradcheck([&](const std::vector<Var>& x) { return entmax15(x[0], mask); }, {random_var({2, 2, 6}, rng, 1.5f)},
              {.eps = 1e-3f});
  }
}

TEST(OpsGrad, Renormalize) {
  Rng rng(18);
  Tensor x(Shape{3, 5});
  for (int i = 0; i < 15; ++i) x.data()[i] = 0.1f + rng.uniform();
  gradcheck([](const std::vector<Var>& v) { return renormalize(v[0]); }, {Var(x, true)});
  Var z(Tensor::from(Shape{2, 2}, {1, 3, 0, 0}));
  EXPECT_EQ(renormalize(z).value().to_vector(), (std::vector<float>{0.25f, 0.75f, 0.0f, 0.0f}));
}

// bias[0,h,t,s] = table[h, clamp(s - t, -K, K) + K]: every distance beyond K shares the last
// column; the gradient sums over the cells that read a column.
TEST(OpsGrad, RelativePositionBias) {
  Rng rng(19);
  const Var table = random_var({2, 5}, rng);  // K = 2
  const Tensor y = relative_position_bias(table, 3, 6).value();
  ASSERT_EQ(y.shape(), (Shape{1, 2, 3, 6}));
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < 3; ++t)
      for (int s = 0; s < 6; ++s) {
        const int distance = std::min(std::max(s - t, -2), 2);
        ASSERT_EQ(y.data()[(h * 3 + t) * 6 + s], table.value().data()[h * 5 + distance + 2]) << h << t << s;
      }
  gradcheck([](const std::vector<Var>& x) { return relative_position_bias(x[0], 4, 3); }, {table});
  gradcheck([](const std::vector<Var>& x) { return relative_position_bias(x[0], 1, 1); }, {random_var({3, 1}, rng)});
  EXPECT_THROW(relative_position_bias(random_var({2, 4}, rng), 3, 3), std::invalid_argument);  // even width
  EXPECT_THROW(relative_position_bias(random_var({2, 3}, rng), -1, 3), std::invalid_argument);
  EXPECT_THROW(relative_position_bias(random_var({2, 3}, rng), 3, 1 << 20), std::invalid_argument);
}

// Decoding's bias is the last row of the full square one, per sequence length, over all slots.
TEST(Ops, RelativePositionBiasOfTheNewestQueryIsTheLastRow) {
  Rng rng(23);
  const Var table = random_var({3, 5}, rng);  // K = 2
  const std::vector<int> lengths = {1, 4, 6};
  const int capacity = 6;
  const Tensor last = relative_position_bias_last(table.value(), lengths, capacity);
  ASSERT_EQ(last.shape(), (Shape{3, 3, 1, capacity}));
  for (int b = 0; b < 3; ++b) {
    const int L = lengths[b];
    const Tensor full = relative_position_bias(table, L, capacity).value();  // [1,H,L,capacity]
    for (int h = 0; h < 3; ++h)
      for (int s = 0; s < capacity; ++s)
        ASSERT_EQ(last.data()[(b * 3 + h) * capacity + s], full.data()[(h * L + L - 1) * capacity + s]) << b << h << s;
  }
  for (int bad : {0, capacity + 1})
    EXPECT_THROW(relative_position_bias_last(table.value(), {2, bad}, capacity), std::invalid_argument) << bad;
  EXPECT_THROW(relative_position_bias_last(random_var({2, 4}, rng).value(), {1}, 2), std::invalid_argument);
}

TEST(OpsGrad, EmbeddingConcatSliceStackSelect) {
  Rng rng(7);
  gradcheck([](const std::vector<Var>& x) { return embedding(x[0], {2, 0, 2, 1}); }, {random_var({3, 4}, rng)});
  EXPECT_THROW(embedding(random_var({3, 4}, rng), {3}), std::invalid_argument);
  for (int dim : {0, 1, 2})
    gradcheck(
        [dim](const std::vector<Var>& x) {
          return concat({x[0], x[1]}, dim);
        },
        {random_var({2, 3, 4}, rng), random_var({2, 3, 4}, rng)});
  gradcheck(
      [](const std::vector<Var>& x) {
        return concat({x[0], x[1]}, -1);
      },
      {random_var({2, 3}, rng), random_var({2, 5}, rng)});
  gradcheck([](const std::vector<Var>& x) { return slice(x[0], 1, 1, 2); }, {random_var({2, 4, 3}, rng)});
  for (int dim : {0, 1, 2})
    gradcheck(
        [dim](const std::vector<Var>& x) {
          return stack({x[0], x[1], x[0]}, dim);
        },
        {random_var({2, 3}, rng), random_var({2, 3}, rng)});
  gradcheck([](const std::vector<Var>& x) { return select(x[0], 1); }, {random_var({3, 2, 2}, rng)});
  gradcheck([](const std::vector<Var>& x) { return reshape(x[0], Shape{3, 4}); }, {random_var({2, 6}, rng)});
  gradcheck([](const std::vector<Var>& x) { return narrow(x[0], 1, 2); }, {random_var({4, 3}, rng)});
  gradcheck([](const std::vector<Var>& x) { return transpose01(x[0]); }, {random_var({3, 2, 4}, rng)});
  gradcheck([](const std::vector<Var>& x) { return transpose01(x[0]); }, {random_var({3, 5}, rng)});
  // Views used twice accumulate into the same input gradient.
  gradcheck([](const std::vector<Var>& x) { return mul(narrow(x[0], 0, 2), narrow(x[0], 1, 2)); },
            {random_var({3, 2}, rng)});
}

TEST(OpsGrad, PositionConvolution) {
  Rng rng(16);
  gradcheck([](const std::vector<Var>& x) { return position_conv(x[0], x[1]); },
            {random_var({2, 6}, rng), random_var({3, 5}, rng)});
  // One filter [0, 1, 0] copies, [1, 0, 0] shifts right by one (zero padding at the start).
  Var a(Tensor::from(Shape{1, 3}, {1, 2, 3}));
  EXPECT_EQ(position_conv(a, Var(Tensor::from(Shape{1, 3}, {0, 1, 0}))).value().to_vector(),
            (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(position_conv(a, Var(Tensor::from(Shape{1, 3}, {1, 0, 0}))).value().to_vector(),
            (std::vector<float>{0, 1, 2}));
  EXPECT_THROW(position_conv(a, Var(Tensor(Shape{1, 2}))), std::invalid_argument);
}

TEST(OpsGrad, MonotonicAlignment) {
  Rng rng(17);
  Tensor pv(Shape{2, 6}), av(Shape{2, 6});
  for (int i = 0; i < 12; ++i) pv.data()[i] = 0.1f + 0.8f * rng.uniform(), av.data()[i] = rng.uniform() / 6;
  gradcheck([](const std::vector<Var>& x) { return monotonic_alignment(x[0], x[1]); }, {Var(pv, true), Var(av, true)});
  // From a one-hot at 0, alpha_j = p_j prod_{k<j} (1 - p_k): the probability of stopping first at j.
  Var p(Tensor::from(Shape{1, 3}, {0.5f, 0.5f, 1.0f}));
  Var start(Tensor::from(Shape{1, 3}, {1, 0, 0}));
  const auto a = monotonic_alignment(p, start).value().to_vector();
  EXPECT_FLOAT_EQ(a[0], 0.5f);
  EXPECT_FLOAT_EQ(a[1], 0.25f);
  EXPECT_FLOAT_EQ(a[2], 0.25f);
  // Mass never moves backwards: from a one-hot at 1, position 0 gets nothing.
  Var at1(Tensor::from(Shape{1, 3}, {0, 1, 0}));
  EXPECT_EQ(monotonic_alignment(p, at1).value().data()[0], 0.0f);
}

TEST(OpsGrad, SumMean) {
  Rng rng(8);
  gradcheck([](const std::vector<Var>& x) { return sum(x[0]); }, {random_var({3, 4}, rng)});
  gradcheck([](const std::vector<Var>& x) { return mean(x[0]); }, {random_var({2, 3, 2}, rng)});
  EXPECT_NEAR(mean(Var(Tensor::from(Shape{4}, {1, 2, 3, 6}))).value().item(), 3.0f, 1e-6f);
}

TEST(OpsGrad, DropoutUsesItsMaskInBackward) {
  Rng rng(9);
  Var x = random_var({4, 6}, rng);
  gradcheck(
      [](const std::vector<Var>& in) {
        Rng r(77);  // the same mask at every evaluation
        return dropout(in[0], 0.4f, r);
      },
      {x});
  Rng r(5);
  Var big(Tensor::full(Shape{10000}, 1.0f));
  Var y = dropout(big, 0.3f, r);
  int zeros = 0;
  for (float v : y.value().to_vector()) {
    if (v == 0.0f)
      ++zeros;
    else
      EXPECT_NEAR(v, 1.0f / 0.7f, 1e-6f);
  }
  EXPECT_NEAR(zeros / 10000.0, 0.3, 0.02);
  // Each draw decides two elements: both halves must be fair and independent, odd sizes too.
  Var odd(Tensor::full(Shape{20001}, 1.0f));
  const std::vector<float> z = dropout(odd, 0.5f, r).value().to_vector();
  int dropped[2] = {0, 0}, both = 0;
  for (size_t i = 0; i + 1 < z.size(); i += 2) {
    dropped[0] += z[i] == 0.0f, dropped[1] += z[i + 1] == 0.0f;
    both += z[i] == 0.0f && z[i + 1] == 0.0f;
  }
  EXPECT_NEAR(dropped[0] / 10000.0, 0.5, 0.02);
  EXPECT_NEAR(dropped[1] / 10000.0, 0.5, 0.02);
  EXPECT_NEAR(both / 10000.0, 0.25, 0.02);
  EXPECT_TRUE(z.back() == 0.0f || z.back() == 2.0f);
  EXPECT_THROW(dropout(big, 1.0f, r), std::invalid_argument);
}

TEST(OpsGrad, CrossEntropyWithPaddingAndLabelSmoothing) {
  Rng rng(10);
  const std::vector<int> targets = {1, 0, 3, 2, 0};  // 0 = padding
  for (float eps : {0.0f, 0.1f})
    gradcheck(
        [&](const std::vector<Var>& x) {
          return cross_entropy(x[0], targets, {.ignore_index = 0, .label_smoothing = eps});
        },
        {random_var({5, 4}, rng)});
  // Value: uniform logits give log(V) whatever the smoothing.
  Var flat(Tensor(Shape{2, 4}));
  EXPECT_NEAR(cross_entropy(flat, {1, 2}, {.ignore_index = 0, .label_smoothing = 0.2f}).value().item(), std::log(4.0f),
              1e-5f);
  EXPECT_THROW(cross_entropy(flat, {1, 7}), std::invalid_argument);
}

// Distillation's soft targets: finite differences with a teacher's share of 0.5, 0.3 beside
// label smoothing, and 1; a teacher that is the one-hot reference at weight 1 gives the plain
// loss; mis-shaped targets and weights outside [0, 1] are refused.
TEST(OpsGrad, CrossEntropyWithSoftTargets) {
  Rng rng(12);
  const std::vector<int> targets = {1, 0, 3, 2, 0};  // 0 = padding
  Tensor soft(Shape{5, 4});
  for (int n = 0; n < 5; ++n) {
    float sum = 0.0f;
    for (int v = 0; v < 4; ++v) sum += soft.data()[n * 4 + v] = 0.1f + rng.uniform();
    for (int v = 0; v < 4; ++v) soft.data()[n * 4 + v] /= sum;
  }
  for (auto [eps, w] : {std::pair{0.0f, 0.5f}, {0.1f, 0.3f}, {0.0f, 1.0f}})
    gradcheck(
        [&](const std::vector<Var>& x) {
          return cross_entropy(x[0], targets,
                               {.ignore_index = 0, .label_smoothing = eps, .soft_targets = &soft, .soft_weight = w});
        },
        {random_var({5, 4}, rng)});
  Tensor one_hot(Shape{5, 4});
  for (int n = 0; n < 5; ++n) one_hot.data()[n * 4 + targets[n]] = 1.0f;
  const Var x = random_var({5, 4}, rng);
  EXPECT_NEAR(cross_entropy(x, targets, {.soft_targets = &one_hot, .soft_weight = 1.0f}).value().item(),
              cross_entropy(x, targets).value().item(), 1e-6f);
  EXPECT_NEAR(cross_entropy(x, targets, {.soft_targets = &one_hot, .soft_weight = 0.4f}).value().item(),
              cross_entropy(x, targets).value().item(), 1e-6f);
  // The value, against the definition in double: mean over the 3 counted rows of -sum_v q_v log p_v.
  double want = 0.0;
  for (int n = 0; n < 5; ++n) {
    if (targets[n] == 0) continue;
    double m = -1e300, z = 0.0;
    for (int v = 0; v < 4; ++v) m = std::max(m, double(x.value().data()[n * 4 + v]));
    for (int v = 0; v < 4; ++v) z += std::exp(double(x.value().data()[n * 4 + v]) - m);
    for (int v = 0; v < 4; ++v) {
      const double q = 0.5 * (0.9 * (v == targets[n]) + 0.1 / 4) + 0.5 * soft.data()[n * 4 + v];
      want -= q * (double(x.value().data()[n * 4 + v]) - m - std::log(z)) / 3.0;
    }
  }
  EXPECT_NEAR(
      cross_entropy(x, targets, {.label_smoothing = 0.1f, .soft_targets = &soft, .soft_weight = 0.5f}).value().item(),
      want, 1e-5);
  const Tensor wrong(Shape{4, 4});
  EXPECT_THROW(cross_entropy(x, targets, {.soft_targets = &wrong, .soft_weight = 0.5f}), std::invalid_argument);
  EXPECT_THROW(cross_entropy(x, targets, {.soft_targets = &soft, .soft_weight = 1.5f}), std::invalid_argument);
}

// The composed ops forward_alignment replaces (the reference it is tested against).
Var forward_alignment_composed(const Var& prev, const Var& y, const Var& u) {
  const int64_t B = prev.size(0), S = prev.size(1);
  Var shifted = concat({Var(Tensor(Shape{B, 1})), slice(prev, 1, 0, S - 1)}, 1);
  Var mix = u.defined() ? add(sub(prev, mul(u, prev)), mul(u, shifted)) : add(prev, shifted);
  return renormalize(mul(mix, y));
}

TEST(OpsGrad, ForwardAlignmentFusedEqualsComposed) {
  Rng rng(15);
  const int B = 3, S = 7;
  auto positive = [&](const Shape& s) {
    Var v = random_var(s, rng);
    for (int64_t i = 0; i < v.value().numel(); ++i) v.value().data()[i] = std::fabs(v.value().data()[i]) + 0.05f;
    return v;
  };
  for (bool agent : {false, true}) {
    SCOPED_TRACE(agent ? "with the transition agent" : "plain");
    Var prev = positive({B, S}), y = positive({B, S});
    Var u = agent ? Var(Tensor::from({B, 1}, {0.2f, 0.5f, 0.9f}), true) : Var();
    gradcheck([&](const std::vector<Var>& x) { return forward_alignment(x[0], x[1], agent ? x[2] : Var()); },
              agent ? std::vector<Var>{prev, y, u} : std::vector<Var>{prev, y}, {.eps = 1e-3f});
    // Values and gradients equal the composed version's.
    Tensor probe = random_var({B, S}, rng, 1, false).value();
    std::vector<std::vector<float>> grads[2];
    Tensor values[2];
    for (int fused = 0; fused < 2; ++fused) {
      Var p2(prev.value().clone(), true), y2(y.value().clone(), true);
      Var u2 = agent ? Var(u.value().clone(), true) : Var();
      Tape tape;
      {
        TapeScope scope(tape);
        Var a = fused ? forward_alignment(p2, y2, u2) : forward_alignment_composed(p2, y2, u2);
        values[fused] = a.value();
        Var l = sum(mul(a, Var(probe)));
        tape.backward(l);
      }
      grads[fused] = {p2.grad().to_vector(), y2.grad().to_vector()};
      if (agent) grads[fused].push_back(u2.grad().to_vector());
    }
    for (int64_t i = 0; i < values[0].numel(); ++i) EXPECT_NEAR(values[1].data()[i], values[0].data()[i], 1e-6);
    for (size_t g = 0; g < grads[0].size(); ++g)
      for (size_t i = 0; i < grads[0][g].size(); ++i)
        EXPECT_NEAR(grads[1][g][i], grads[0][g][i], 1e-5) << g << " " << i;
  }
  // Mass moves forward by at most one position: from a one-hot at n, only n and n + 1 get weight.
  Tensor onehot(Shape{1, S});
  onehot.data()[3] = 1.0f;
  Var a = forward_alignment(Var(onehot), positive({1, S}));
  for (int n = 0; n < S; ++n) EXPECT_EQ(a.value().data()[n] > 0.0f, n == 3 || n == 4) << n;
}

// The log-domain recursion: finite differences (with -inf entries where a row cannot go), the
// probability form's values and gradients through exp/log, and bounded gradients where the
// probability form's sum vanishes.
TEST(OpsGrad, ForwardAlignmentLogDomain) {
  Rng rng(16);
  const int B = 3, S = 6;
  const float inf = std::numeric_limits<float>::infinity();
  for (bool agent : {false, true}) {
    SCOPED_TRACE(agent ? "with the transition agent" : "plain");
    Var lp = random_var({B, S}, rng), ly = random_var({B, S}, rng);
    lp.value().data()[S - 1] = -inf, lp.value().data()[S - 2] = -inf;  // row 0 has not got that far
    ly.value().data()[2 * S] = -inf;                                   // row 2: a masked position
    Var u = agent ? Var(Tensor::from({B, 1}, {0.2f, 0.5f, 0.9f}), true) : Var();
    // (through exp: a loss over -inf entries would be NaN)
    gradcheck([&](const std::vector<Var>& x) { return exp(forward_alignment_log(x[0], x[1], agent ? x[2] : Var())); },
              agent ? std::vector<Var>{lp, ly, u} : std::vector<Var>{lp, ly}, {.eps = 1e-3f});
    // exp of it equals the probability form on exp(lp), exp(ly); so do the gradients (chained).
    Tensor probe = random_var({B, S}, rng, 1, false).value();
    std::vector<float> grads[2];
    Tensor values[2];
    for (int log_form = 0; log_form < 2; ++log_form) {
      Var p2(lp.value().clone(), true), y2(ly.value().clone(), true);
      Var u2 = agent ? Var(u.value().clone(), true) : Var();
      Tape tape;
      {
        TapeScope scope(tape);
        Var a = log_form ? exp(forward_alignment_log(p2, y2, u2)) : forward_alignment(exp(p2), exp(y2), u2);
        values[log_form] = a.value();
        Var l = sum(mul(a, Var(probe)));
        tape.backward(l);
      }
      grads[log_form] = y2.grad().to_vector();
    }
    for (int64_t i = 0; i < values[0].numel(); ++i) EXPECT_NEAR(values[1].data()[i], values[0].data()[i], 1e-6);
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_NEAR(grads[1][i], grads[0][i], 1e-5) << i;
  }
  // Where the alignment sits at position 0 but y puts e^-120 there and the rest further on: the
  // probability form's gradient overflows; the log form's stays within |dL/dlog alpha|.
  Tensor start = Tensor::full(Shape{1, S}, -inf);
  start.data()[0] = 0.0f;
  Tensor logits = Tensor::full(Shape{1, S}, 0.0f);
  logits.data()[0] = -120.0f, logits.data()[1] = -110.0f;
  Var lp(start, true), ly(logits, true);
  Tape tape;
  {
    TapeScope scope(tape);
    Var la = forward_alignment_log(lp, ly);
    EXPECT_NEAR(std::exp(la.value().data()[1]), 1.0f, 1e-4);  // e^-110 beats e^-120: it moves on
    Var l = sum(la);
    tape.backward(l);
  }
  for (float g : ly.grad().to_vector()) EXPECT_TRUE(std::isfinite(g) && std::fabs(g) <= float(S));
  for (float g : lp.grad().to_vector()) EXPECT_TRUE(std::isfinite(g) && std::fabs(g) <= float(S));
}

TEST(OpsGrad, LayerNormOverTheLastDimension) {
  Rng rng(13);
  gradcheck([](const std::vector<Var>& x) { return layer_norm(x[0], x[1], x[2]); },
            {random_var({2, 3, 6}, rng), random_var({6}, rng), random_var({6}, rng)});
  // Each row has mean beta and standard deviation |gamma| (up to eps).
  Var x = random_var({4, 8}, rng, 3.0f, false);
  Var y = layer_norm(x, Var(Tensor::full(Shape{8}, 2.0f)), Var(Tensor::full(Shape{8}, 0.5f)));
  for (int r = 0; r < 4; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < 8; ++c) m += y.value().data()[r * 8 + c] / 8.0;
    for (int c = 0; c < 8; ++c) v += std::pow(y.value().data()[r * 8 + c] - m, 2) / 8.0;
    EXPECT_NEAR(m, 0.5, 1e-5);
    EXPECT_NEAR(std::sqrt(v), 2.0, 1e-3);
  }
  EXPECT_THROW(layer_norm(x, Var(Tensor(Shape{7})), Var(Tensor(Shape{8}))), std::invalid_argument);
}

TEST(OpsGrad, Transpose12SplitsAndMergesHeads) {
  Rng rng(14);
  gradcheck([](const std::vector<Var>& x) { return transpose12(x[0]); }, {random_var({2, 3, 4, 5}, rng)});
  Var x = random_var({2, 3, 4, 5}, rng, 1.0f, false);
  Var y = transpose12(x);
  ASSERT_EQ(y.shape(), (Shape{2, 4, 3, 5}));
  EXPECT_EQ(y.value().data()[((1 * 4 + 2) * 3 + 1) * 5 + 3], x.value().data()[((1 * 3 + 1) * 4 + 2) * 5 + 3]);
  EXPECT_EQ(transpose12(y).value().to_vector(), x.value().to_vector());
}

TEST(OpsGrad, HeadsFromColumnsPicksABlockOfHeads) {
  Rng rng(15);
  gradcheck([](const std::vector<Var>& x) { return heads_from_columns(x[0], 4, 2, 3); }, {random_var({2, 3, 12}, rng)});
  Var x = random_var({2, 3, 12}, rng, 1.0f, false);
  Var y = heads_from_columns(x, 4, 2, 3);  // columns 4..9 as 2 heads of 3
  ASSERT_EQ(y.shape(), (Shape{2, 2, 3, 3}));
  EXPECT_EQ(y.value().data()[((1 * 2 + 1) * 3 + 2) * 3 + 1], x.value().data()[(1 * 3 + 2) * 12 + 4 + 1 * 3 + 1]);
  // From column 0 of [B,T,H*D]: the usual split of heads.
  Var z = random_var({2, 3, 6}, rng, 1.0f, false);
  EXPECT_EQ(heads_from_columns(z, 0, 2, 3).value().to_vector(),
            transpose12(reshape(z, Shape{2, 3, 2, 3})).value().to_vector());
  EXPECT_THROW(heads_from_columns(x, 7, 2, 3), std::invalid_argument);   // past the last column
  EXPECT_THROW(heads_from_columns(x, -1, 2, 3), std::invalid_argument);  // before the first
  EXPECT_THROW(heads_from_columns(z, 0, 0, 3), std::invalid_argument);
}

TEST(OpsGrad, GruCellWithPaddedRows) {
  Rng rng(11);
  const int B = 3, H = 4;
  Tensor valid = Tensor::from(Shape{B}, {1, 0, 1});
  gradcheck([&](const std::vector<Var>& x) { return gru_cell(x[0], x[1], x[2], x[3], valid); },
            {random_var({B, 3 * H}, rng), random_var({B, H}, rng), random_var({H, 3 * H}, rng, 0.5f),
             random_var({3 * H}, rng)});
  // A padded row keeps its state exactly.
  Var h = random_var({B, H}, rng, 1.0f, false);
  Var out = gru_cell(random_var({B, 3 * H}, rng), h, random_var({H, 3 * H}, rng), random_var({3 * H}, rng), valid);
  for (int k = 0; k < H; ++k) EXPECT_EQ(out.value().data()[H + k], h.value().data()[H + k]);
}

TEST(OpsGrad, LstmCellWithPaddedRows) {
  Rng rng(12);
  const int B = 3, H = 4;
  Tensor valid = Tensor::from(Shape{B}, {1, 1, 0});
  gradcheck([&](const std::vector<Var>& x) { return lstm_cell(x[0], x[1], x[2], x[3], x[4], valid); },
            {random_var({B, 4 * H}, rng), random_var({B, H}, rng), random_var({B, H}, rng),
             random_var({H, 4 * H}, rng, 0.5f), random_var({4 * H}, rng)});
}

TEST(Autograd, GradientsAccumulateAndDeepGraphsWork) {
  Var x(Tensor::from(Shape{1}, {0.5f}), true);
  Tape tape;
  {
    TapeScope scope(tape);
    Var y = x;
    for (int i = 0; i < 200000; ++i) y = add(y, scale(x, 1e-5f));  // 400k nodes, no recursion
    Var l = sum(y);
    tape.backward(l);
  }
  EXPECT_NEAR(x.grad().data()[0], 1.0f + 200000 * 1e-5f, 1e-2f);
  tape.clear();
  {
    TapeScope scope(tape);
    Var l = sum(scale(x, 2.0f));
    tape.backward(l);
  }
  EXPECT_NEAR(x.grad().data()[0], 3.0f + 2.0f, 1e-2f) << "gradients must accumulate across backward calls";
}

// Backward releases each node as soon as it has run (its closure, with the activations it saved,
// and its gradient), so memory falls during the walk; leaves keep their gradients.
TEST(Autograd, BackwardReleasesWhatEachNodeKeptOnceItRan) {
  Var x(Tensor::from(Shape{2}, {0.5f, -1.0f}), true);
  Tape tape;
  TapeScope scope(tape);
  auto saved = std::make_shared<int>(0);  // stands for an activation a backward function keeps
  std::weak_ptr<int> watch = saved;
  Var y = make_result(x.value().clone(), /*record=*/true, [x, saved](Node& out) {
    for (int i = 0; i < 2; ++i) x.grad_ref().data()[i] += 3.0f * out.grad.data()[i];
  });
  saved.reset();
  Var l = sum(tanh(y));
  EXPECT_FALSE(watch.expired()) << "the tape holds the closure until backward";
  tape.backward(l);
  EXPECT_TRUE(watch.expired()) << "the closure must be released once it has run";
  EXPECT_FALSE(y.grad().defined()) << "an intermediate gradient is released once consumed";
  for (int i = 0; i < 2; ++i)
    EXPECT_NEAR(x.grad().data()[i], 3.0f * (1.0f - std::pow(std::tanh(x.value().data()[i]), 2.0f)), 1e-6f);
}

TEST(Autograd, NothingRecordedWithoutTape) {
  Var x(Tensor::from(Shape{1}, {0.5f}), true);
  Var y = tanh(x);
  EXPECT_FALSE(y.requires_grad());
}

}  // namespace
}  // namespace attend
