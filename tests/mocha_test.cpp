// MoChA (Chiu & Raffel 2018): the properties that define it. (Its gradients are checked with every
// mechanism's in mechanism_test.cpp, its numbers against PyTorch in tests/python.)
#include <gtest/gtest.h>

#include "attend/attention/mechanism.h"
#include "attend/ops/shape.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::random_var;

constexpr int B = 2, S = 11, D = 4, W = 3;

AttentionConfig mocha(ScoreKind score) {
  AttentionConfig c;
  c.mechanism = "mocha", c.score = score, c.attention_dim = 5, c.options["chunk"] = W;
  return c;
}

Tensor lengths_11_and_7() {
  Tensor m(Shape{B, S});
  for (int s = 0; s < S; ++s) m.data()[s] = 1.0f, m.data()[S + s] = s < 7 ? 1.0f : 0.0f;
  return m;
}

void set_offset(AttentionMechanism& m, float r) {
  for (auto& p : m.parameters())
    if (p.name == "mocha.r") p.var.value().data()[0] = r;
}

// Decoding: the weights are a distribution over the W positions that end at the endpoint (or zero
// once the endpoint has run off the source), and the endpoint never moves backwards.
TEST(Mocha, DecodingAttendsOnlyWithinTheChunkAndNeverMovesBack) {
  const Tensor mask = lengths_11_and_7();
  for (ScoreKind score : {ScoreKind::kDot, ScoreKind::kAdditive}) {
    Rng rng(71);
    auto mech = make_attention(mocha(score), D, D, rng);
    set_offset(*mech, 0.5f);  // stop often enough to see the endpoint move
    Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({14, B, D}, rng, 2, false);
    AttentionMemory mem = mech->prepare(keys, keys, mask, Var());
    AttentionState st;
    st.inference = true;
    std::vector<int> last(B, -1);
    int moved = 0;
    for (int t = 0; t < 14; ++t) {
      AttentionResult r = mech->step(reshape(select(queries, t), Shape{B, 1, D}), mem, st);
      for (int b = 0; b < B; ++b) {
        const float* w = r.weights.value().data() + b * S;
        int end = -1;
        double total = 0.0;
        for (int s = 0; s < S; ++s)
          if (w[s] > 0.0f) end = s, total += w[s];
        if (end < 0) continue;  // ran off the end: no attention
        EXPECT_NEAR(total, 1.0, 1e-5) << "step " << t << " row " << b;
        for (int s = 0; s < S; ++s) {
          if (s < end - W + 1 || s > end) {
            EXPECT_EQ(w[s], 0.0f) << "outside the chunk ending at " << end;
          }
        }
        EXPECT_LT(end, b == 0 ? 11 : 7) << "attended padding";
        EXPECT_GE(end, last[b]) << "step " << t << " row " << b << " moved backwards";
        moved += end > last[b] && last[b] >= 0;
        last[b] = end;
      }
    }
    EXPECT_GT(moved, 0) << "the endpoint never moved: the test saw nothing";
  }
}

// Training: beta puts no weight on padding and at most the monotonic head's total on positions;
// with chunk width 1 it is the monotonic head's expected alignment itself.
TEST(Mocha, ExpectedWeightsAndWidthOneIsMonotonic) {
  const Tensor mask = lengths_11_and_7();
  Rng rng(72);
  AttentionConfig one = mocha(ScoreKind::kDot);
  one.options["chunk"] = 1;
  auto m1 = make_attention(one, D, D, rng);
  AttentionConfig mono;
  mono.mechanism = "monotonic", mono.score = ScoreKind::kDot;
  Rng rng2(72);
  auto m2 = make_attention(mono, D, D, rng2);
  set_offset(*m1, -1.0f);
  Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({5, B, D}, rng, 1, false);
  AttentionMemory a = m1->prepare(keys, keys, mask, Var()), b = m2->prepare(keys, keys, mask, Var());
  AttentionState sa, sb;
  for (int t = 0; t < 5; ++t) {
    const Var q = reshape(select(queries, t), Shape{B, 1, D});
    const Tensor wa = m1->step(q, a, sa).weights.value(), wb = m2->step(q, b, sb).weights.value();
    for (int i = 0; i < B * S; ++i) EXPECT_NEAR(wa.data()[i], wb.data()[i], 1e-6f) << "step " << t << " at " << i;
  }
  auto mw = make_attention(mocha(ScoreKind::kAdditive), D, D, rng);
  AttentionMemory m = mw->prepare(keys, keys, mask, Var());
  AttentionState st;
  for (int t = 0; t < 5; ++t) {
    const Tensor w = mw->step(reshape(select(queries, t), Shape{B, 1, D}), m, st).weights.value();
    for (int b = 0; b < B; ++b) {
      double total = 0.0;
      for (int s = 0; s < S; ++s) {
        EXPECT_GE(w.data()[b * S + s], 0.0f);
        if (mask.data()[b * S + s] == 0.0f) {
          EXPECT_EQ(w.data()[b * S + s], 0.0f) << "padding";
        }
        total += w.data()[b * S + s];
      }
      EXPECT_LE(total, 1.0 + 1e-5);
    }
  }
}

}  // namespace
}  // namespace attend
