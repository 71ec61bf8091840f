// Multi-head additive attention: the property that defines it. (Gradients: with every mechanism in
// mechanism_test.cpp; numbers against PyTorch in tests/python.)
#include <gtest/gtest.h>

#include "attend/attention/mechanism.h"
#include "attend/ops/shape.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::random_var;

constexpr int B = 2, S = 7, D = 4, A = 3;

AttentionConfig multi_head(int heads) {
  AttentionConfig c;
  c.mechanism = "multi-head", c.score = ScoreKind::kAdditive, c.attention_dim = A;
  c.options["attention_heads"] = heads;
  return c;
}

Tensor& param(AttentionMechanism& m, const std::string& name) {
  for (auto& p : m.parameters())
    if (p.name == name) return p.var.value();
  throw std::invalid_argument("no parameter " + name);
}

void set_identity(Tensor& w, int64_t offset_rows, int64_t n) {  // rows [offset, offset + n) of w = I
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w.size(-1); ++j) w.data()[(offset_rows + i) * w.size(-1) + j] = i == j ? 1.0f : 0.0f;
}

// Every head is additive attention: with identity value and output projections and equal heads,
// K heads give exactly one head's (= soft additive attention's) weights and context.
TEST(MultiHead, IdentityProjectionsAndEqualHeadsAreSoftAttention) {
  Tensor mask(Shape{B, S});
  for (int s = 0; s < S; ++s) mask.data()[s] = 1.0f, mask.data()[S + s] = s < 4 ? 1.0f : 0.0f;
  Rng rng(81);
  auto soft_config = multi_head(1);
  soft_config.mechanism = "soft", soft_config.options.clear();
  auto soft = make_attention(soft_config, D, D, rng);
  auto multi = make_attention(multi_head(3), D, D, rng);
  const std::vector<float> wq = param(*soft, "Wq").to_vector(), wk = param(*soft, "Wk").to_vector(),
                           va = param(*soft, "va").to_vector();
  for (int h = 0; h < 3; ++h) {
    std::copy(wq.begin(), wq.end(), param(*multi, "heads.Wq").data() + h * D * A);
    std::copy(wk.begin(), wk.end(), param(*multi, "heads.Wk").data() + h * D * A);
    std::copy(va.begin(), va.end(), param(*multi, "heads.va").data() + h * A);
    set_identity(param(*multi, "heads.Wv"), int64_t(h) * D, D);
  }
  Tensor& wo = param(*multi, "heads.Wo");  // [3D, D]: the mean of the three (equal) contexts
  for (int64_t i = 0; i < wo.numel(); ++i) wo.data()[i] = (i / D) % D == i % D ? 1.0f / 3.0f : 0.0f;
  Var keys = random_var({B, S, D}, rng, 1, false), query = random_var({B, 1, D}, rng, 1, false);
  AttentionState s1, s2;
  const AttentionResult a = soft->step(query, soft->prepare(keys, keys, mask, Var()), s1);
  const AttentionResult b = multi->step(query, multi->prepare(keys, keys, mask, Var()), s2);
  const std::vector<float> wa = a.weights.value().to_vector(), wb = b.weights.value().to_vector();
  const std::vector<float> ca = a.context.value().to_vector(), cb = b.context.value().to_vector();
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_NEAR(wa[i], wb[i], 1e-6f) << "weight " << i;
  for (size_t i = 0; i < ca.size(); ++i) EXPECT_NEAR(ca[i], cb[i], 1e-5f) << "context " << i;
  // Different heads look at different places: the reported weights are their mean, a distribution.
  auto free = make_attention(multi_head(4), D, D, rng);
  AttentionState s3;
  const Tensor w = free->step(query, free->prepare(keys, keys, mask, Var()), s3).weights.value();
  for (int r = 0; r < B; ++r) {
    double total = 0.0;
    for (int s = 0; s < S; ++s) total += w.data()[r * S + s];
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  EXPECT_THROW(make_attention(multi_head(0), D, D, rng), std::invalid_argument);
}

}  // namespace
}  // namespace attend
