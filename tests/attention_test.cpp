// The general attention mechanism: every score's gradient, and its defining properties.
#include <gtest/gtest.h>

#include <cmath>

#include "attend/attention/attention.h"
#include "attend/ops/attention_scores.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::gradcheck;
using testing::random_var;

constexpr int B = 2, T = 3, S = 4, Dq = 5, Dv = 3, A = 6;

Tensor padding_mask() { return Tensor::from(Shape{B, S}, {1, 1, 1, 1, 1, 1, 0, 0}); }

TEST(AttentionGrad, AdditiveScoresKernel) {
  Rng rng(21);
  gradcheck([](const std::vector<Var>& x) { return additive_scores(x[0], x[1], x[2]); },
            {random_var({B, T, A}, rng), random_var({B, S, A}, rng), random_var({A}, rng)});
}

TEST(AttentionGrad, EveryScoreContextAndWeights) {
  Rng rng(22);
  const Tensor mask = padding_mask();
  for (ScoreKind score : {ScoreKind::kDot, ScoreKind::kScaledDot, ScoreKind::kGeneral, ScoreKind::kAdditive}) {
    SCOPED_TRACE(to_string(score));
    const int Dk = (score == ScoreKind::kDot || score == ScoreKind::kScaledDot) ? Dq : 4;
    std::vector<Var> in = {random_var({B, T, Dq}, rng), random_var({B, S, Dk}, rng), random_var({B, S, Dv}, rng)};
    if (score == ScoreKind::kGeneral) in.push_back(random_var({Dq, Dk}, rng, 0.5f));
    if (score == ScoreKind::kAdditive) {
      in.push_back(random_var({Dq, A}, rng, 0.5f));
      in.push_back(random_var({Dk, A}, rng, 0.5f));
      in.push_back(random_var({A}, rng));
    }
    auto params = [score](const std::vector<Var>& x) {
      ScoreParams p;
      if (score == ScoreKind::kGeneral) p.W = x[3];
      if (score == ScoreKind::kAdditive) p.Wq = x[3], p.Wk = x[4], p.va = x[5];
      return p;
    };
    gradcheck([&](const std::vector<Var>& x) { return attention(x[0], x[1], x[2], mask, score, params(x)).context; },
              in);
    gradcheck([&](const std::vector<Var>& x) { return attention(x[0], x[1], x[2], mask, score, params(x)).weights; },
              in);
  }
}

TEST(Attention, WeightsAreADistributionOverUnmaskedPositions) {
  Rng rng(23);
  const Tensor mask = padding_mask();
  Var q = random_var({B, T, Dq}, rng), k = random_var({B, S, Dq}, rng), v = random_var({B, S, Dv}, rng);
  AttentionResult r = attention(q, k, v, mask, ScoreKind::kScaledDot);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      double total = 0.0;
      for (int s = 0; s < S; ++s) {
        const float w = r.weights.value().data()[(b * T + t) * S + s];
        EXPECT_GE(w, 0.0f);
        if (mask.data()[b * S + s] == 0.0f) {
          EXPECT_EQ(w, 0.0f);
        }
        total += w;
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
    }
}

TEST(Attention, MatchesTheDefinitionComputedByHand) {
  // One query, two keys: dot scores 1 and 3, weights softmax([1, 3]), context = weighted values.
  Var q(Tensor::from(Shape{1, 1, 2}, {1, 1}));
  Var k(Tensor::from(Shape{1, 2, 2}, {1, 0, 1, 2}));
  Var v(Tensor::from(Shape{1, 2, 1}, {10, 20}));
  AttentionResult r = attention(q, k, v, Tensor(), ScoreKind::kDot);
  const float w1 = 1.0f / (1.0f + std::exp(2.0f)), w2 = 1.0f - w1;
  EXPECT_NEAR(r.weights.value().data()[0], w1, 1e-6f);
  EXPECT_NEAR(r.context.value().data()[0], 10 * w1 + 20 * w2, 1e-4f);
  // Scaled dot divides the scores by sqrt(Dk) = sqrt(2).
  AttentionResult rs = attention(q, k, v, Tensor(), ScoreKind::kScaledDot);
  EXPECT_NEAR(rs.weights.value().data()[0], 1.0f / (1.0f + std::exp(2.0f / std::sqrt(2.0f))), 1e-6f);
}

TEST(Attention, LayerPrepareOnceEqualsOneShotDefinition) {
  Rng rng(24);
  for (ScoreKind score : {ScoreKind::kGeneral, ScoreKind::kAdditive}) {
    SoftAttention layer(score, Dq, 4, A, rng);
    Var q = random_var({B, T, Dq}, rng), k = random_var({B, S, 4}, rng), v = random_var({B, S, Dv}, rng);
    const Tensor mask = padding_mask();
    AttentionResult step = layer(q, layer.prepare(k, v, mask));
    ScoreParams p;
    for (const auto& np : layer.parameters()) {
      if (np.name == "W") p.W = np.var;
      if (np.name == "Wq") p.Wq = np.var;
      if (np.name == "Wk") p.Wk = np.var;
      if (np.name == "va") p.va = np.var;
    }
    AttentionResult once = attention(q, k, v, mask, score, p);
    for (int64_t i = 0; i < once.context.value().numel(); ++i)
      EXPECT_NEAR(step.context.value().data()[i], once.context.value().data()[i], 1e-5f);
  }
}

TEST(Attention, BadShapesAndNamesThrowWithValues) {
  Rng rng(25);
  Var q = random_var({B, T, Dq}, rng), k = random_var({B, S, 4}, rng), v = random_var({B, S, Dv}, rng);
  try {
    attention(q, k, v, Tensor(), ScoreKind::kDot);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Dq=5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(attention(q, k, v, Tensor(Shape{B, S + 1}), ScoreKind::kGeneral), std::invalid_argument);
  EXPECT_THROW(parse_score("cosine"), std::invalid_argument);
}

}  // namespace
}  // namespace attend
