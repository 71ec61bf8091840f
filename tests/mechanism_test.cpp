// Attention mechanisms: gradients through every one, and the property that defines each.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "attend/attention/mechanism.h"
#include "attend/attention/registry.h"
#include <map>
#include "attend/ops/reduce.h"
#include "attend/ops/elementwise.h"
#include "attend/io/safetensors.h"
#include "attend/ops/shape.h"
#include "gradcheck.h"

namespace attend {
namespace {

// A mechanism's config; the window only for the mechanisms that have one.
AttentionConfig cfg(const std::string& kind, ScoreKind score, Normalizer n, int attention_dim, int window) {
  AttentionConfig c;
  c.mechanism = kind, c.score = score, c.normalizer = n, c.attention_dim = attention_dim;
  if (find_mechanism(kind).option("window")) c.options["window"] = window;
  return c;
}

using testing::gradcheck;
using testing::random_var;

constexpr int B = 2, S = 9, D = 4;  // query/key size D

Tensor mask_with_lengths() {
  Tensor m(Shape{B, S});
  for (int s = 0; s < S; ++s) m.data()[s] = 1.0f;      // length 9
  for (int s = 0; s < 6; ++s) m.data()[S + s] = 1.0f;  // length 6
  return m;
}

// Runs `steps` decoder steps with the given queries [steps,B,D]; every step's result.
std::vector<AttentionResult> run_steps(const AttentionMechanism& mech, const AttentionMemory& mem, const Var& queries,
                                       int steps) {
  AttentionState st;
  std::vector<AttentionResult> out;
  for (int t = 0; t < steps; ++t) out.push_back(mech.step(reshape(select(queries, t), Shape{B, 1, D}), mem, st));
  return out;
}

// The result of step `at` of `steps`.
AttentionResult run(const AttentionMechanism& mech, const AttentionMemory& mem, const Var& queries, int steps, int at) {
  return run_steps(mech, mem, queries, steps)[at];
}

std::vector<Var> params(const Module& m, std::vector<Var> extra) {
  for (const auto& p : m.parameters()) extra.push_back(p.var);
  return extra;
}

TEST(Mechanisms, GradientsThroughEveryMechanismAndScore) {
  const Tensor mask = mask_with_lengths();
  for (const MechanismInfo& info : mechanisms())  // every registered one but hard (it samples; its own test)
    for (ScoreKind score : {ScoreKind::kDot, ScoreKind::kAdditive}) {
      const std::string kind = info.name;
      if (kind == "hard" || (info.additive_only && score != ScoreKind::kAdditive)) continue;
      SCOPED_TRACE(kind + " / " + to_string(score));
      Rng rng(51);
      auto mech = make_attention(cfg(kind, score, Normalizer::kSoftmax, 5, /*window=*/2), D, D, rng);
      Var keys = random_var({B, S, D}, rng), queries = random_var({3, B, D}, rng);
      Var summary = random_var({B, D}, rng, 1.0f, /*requires_grad=*/kind == "static");  // only static reads it
      gradcheck(
          [&](const std::vector<Var>& x) {
            AttentionMemory mem = mech->prepare(x[0], x[0], mask, x[2]);
            AttentionResult r = run(*mech, mem, x[1], 3, 2);
            return concat({reshape(r.context, Shape{B, D}), reshape(r.weights, Shape{B, S})}, 1);
          },
          params(*mech, {keys, queries, summary}), {.eps = 1e-3f});
    }
}

TEST(Mechanisms, LocalWindowsPutNoWeightOutside) {
  const Tensor mask = mask_with_lengths();
  for (const std::string kind : {"local-m", "local-p"}) {
    Rng rng(52);
    const int W = 1;
    auto mech = make_attention(cfg(kind, ScoreKind::kDot, Normalizer::kSoftmax, 5, W), D, D, rng);
    Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({7, B, D}, rng, 1, false);
    const std::vector<AttentionResult> results = run_steps(*mech, mech->prepare(keys, keys, mask, Var()), queries, 7);
    for (int t = 0; t < 7; ++t) {
      const AttentionResult& r = results[t];
      for (int b = 0; b < B; ++b) {
        const float* w = r.weights.value().data() + b * S;
        int first = S, last = -1;
        for (int s = 0; s < S; ++s)
          if (w[s] > 0.0f) first = std::min(first, s), last = std::max(last, s);
        ASSERT_LE(last - first, 2 * W + 1)
            << kind << " step " << t << " row " << b << ": weight spans " << first << ".." << last;
        if (kind == "local-m") {
          const int centre = std::min(t, (b == 0 ? 9 : 6) - 1);
          EXPECT_GE(first, centre - W);
          EXPECT_LE(last, centre + W);
        }
        for (int s = (b == 0 ? 9 : 6); s < S; ++s) EXPECT_EQ(w[s], 0.0f) << "padding gets weight";
      }
    }
  }
}

// local-m with a position rate r: the window follows p_t = r t (clipped to the sentence).
TEST(Mechanisms, LocalMWindowFollowsThePositionRate) {
  const Tensor mask = mask_with_lengths();
  Rng rng(57);
  const int W = 1;
  AttentionConfig c = cfg("local-m", ScoreKind::kDot, Normalizer::kSoftmax, 5, W);
  c.options["position_rate"] = 1.5f;
  auto mech = make_attention(c, D, D, rng);
  Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({7, B, D}, rng, 1, false);
  const std::vector<AttentionResult> results = run_steps(*mech, mech->prepare(keys, keys, mask, Var()), queries, 7);
  for (int t = 0; t < 7; ++t) {
    const AttentionResult& r = results[t];
    for (int b = 0; b < B; ++b) {
      const float centre = std::min(1.5f * t, float((b == 0 ? 9 : 6) - 1));
      for (int s = 0; s < S; ++s) {
        const bool inside = s >= std::floor(centre) - W && s <= std::ceil(centre) + W && s < (b == 0 ? 9 : 6);
        if (!inside) {
          EXPECT_EQ(r.weights.value().data()[b * S + s], 0.0f) << "step " << t << " row " << b << " position " << s;
        }
      }
    }
  }
  c.options["position_rate"] = 0.0f;  // "auto", not yet measured: a model cannot be built with it
  EXPECT_THROW(make_attention(c, D, D, rng), std::invalid_argument);
  c.options["position_rate"] = -1.0f;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

// local-p's --sigma: the weights are the window's soft weights times exp(-(s - p_t)^2 / (2 sigma^2)),
// so two sigmas give weight ratios exp((s - p)^2 (1/(2 s1^2) - 1/(2 s2^2))) at every position.
TEST(Mechanisms, LocalPSigmaSetsTheGaussian) {
  const Tensor mask = mask_with_lengths();
  Var keys, queries;
  std::vector<std::vector<float>> w;
  for (float sigma : {0.0f, 3.0f}) {
    Rng rng(58);
    AttentionConfig c = cfg("local-p", ScoreKind::kDot, Normalizer::kSoftmax, 5, 4);
    c.options["sigma"] = sigma;
    auto mech = make_attention(c, D, D, rng);
    if (!keys.defined()) keys = random_var({B, S, D}, rng, 1, false), queries = random_var({1, B, D}, rng, 1, false);
    AttentionMemory mem = mech->prepare(keys, keys, mask, Var());
    w.push_back(run(*mech, mem, queries, 1, 0).weights.value().to_vector());
    if (sigma > 0.0f) {
      gradcheck(
          [&](const std::vector<Var>& x) {
            AttentionMemory m2 = mech->prepare(x[0], x[0], mask, Var());
            return reshape(run(*mech, m2, x[1], 1, 0).weights, Shape{B, S});
          },
          params(*mech, {random_var({B, S, D}, rng), random_var({1, B, D}, rng)}), {.eps = 1e-3f});
    }
  }
  // Same seed, same predicted centre: the log-ratio of the two is quadratic in s - p, with
  // curvature 1/(2 * 2^2) - 1/(2 * 3^2) (default sigma = D/2 = 2).
  const float k = 1.0f / 8.0f - 1.0f / 18.0f;
  int compared = 0;
  for (int b = 0; b < B; ++b) {
    std::vector<int> inside;
    for (int s = 0; s < S; ++s)
      if (w[0][b * S + s] > 0.0f) inside.push_back(s);
    ASSERT_GE(inside.size(), 3u);
    // log(w1/w0) = k (s - p)^2 + c: its second difference over s is 2k.
    for (size_t i = 0; i + 2 < inside.size(); ++i) {
      auto lr = [&](int s) { return std::log(w[1][b * S + s] / w[0][b * S + s]); };
      if (inside[i + 2] - inside[i] != 2) continue;
      EXPECT_NEAR(lr(inside[i + 2]) - 2 * lr(inside[i + 1]) + lr(inside[i]), 2 * k, 1e-3) << "row " << b;
      ++compared;
    }
  }
  EXPECT_GT(compared, 0);
  AttentionConfig bad = cfg("local-p", ScoreKind::kDot, Normalizer::kSoftmax, 5, 4);
  bad.options["sigma"] = -1.0f;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

TEST(Mechanisms, StaticWeightsAreTheSameAtEveryStep) {
  Rng rng(53);
  auto mech = make_attention(cfg("static", ScoreKind::kGeneral, Normalizer::kSoftmax, 5, 2), D, D, rng);
  Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({4, B, D}, rng, 1, false);
  AttentionMemory mem = mech->prepare(keys, keys, mask_with_lengths(), random_var({B, D}, rng, 1, false));
  const std::vector<float> first = run(*mech, mem, queries, 1, 0).weights.value().to_vector();
  for (int at = 1; at < 4; ++at) EXPECT_EQ(run(*mech, mem, queries, 4, at).weights.value().to_vector(), first);
}

TEST(Mechanisms, CoverageSumsPastWeightsAndItsLossIsDifferentiable) {
  const Tensor mask = mask_with_lengths();
  Rng rng(54);
  AttentionConfig c = cfg("coverage", ScoreKind::kAdditive, Normalizer::kSoftmax, 5, 2);
  c.options["coverage_loss"] = 1.0f;
  auto mech = make_attention(c, D, D, rng);
  Var keys = random_var({B, S, D}, rng), queries = random_var({4, B, D}, rng);
  {
    NoGradScope no_grad;
    AttentionMemory mem = mech->prepare(keys, keys, mask, Var());
    AttentionState st;
    std::vector<float> total(B * S, 0.0f);
    double penalty = 0.0;
    for (int t = 0; t < 4; ++t) {
      const std::vector<float> before = total;
      AttentionResult r = mech->step(reshape(select(queries, t), Shape{B, 1, D}), mem, st);
      for (int i = 0; i < B * S; ++i) {
        if (t > 0) penalty += std::min(r.weights.value().data()[i], before[i]);
        total[i] += r.weights.value().data()[i];
      }
      for (int i = 0; i < B * S; ++i)
        EXPECT_NEAR(st.row(0).value() /* coverage: c_t, its slot 0 */.data()[i], total[i], 1e-6f);
    }
    EXPECT_NEAR(st.sum(0) /* coverage: the loss */.value().item(), penalty, 1e-5);
  }
  gradcheck(
      [&](const std::vector<Var>& x) {
        AttentionMemory mem = mech->prepare(x[0], x[0], mask, Var());
        AttentionState st;
        for (int t = 0; t < 3; ++t) mech->step(reshape(select(x[1], t), Shape{B, 1, D}), mem, st);
        return reshape(st.sum(0) /* coverage: the loss */, Shape{1});
      },
      params(*mech, {keys, queries}), {.eps = 1e-3f});
}

TEST(Mechanisms, LocationStartsAsSoftAndThenSeesThePreviousAlignment) {
  const Tensor mask = mask_with_lengths();
  Rng rng(55), rng2(55);
  auto location = make_attention(cfg("location", ScoreKind::kAdditive, Normalizer::kSoftmax, 5, 2), D, D, rng);
  auto soft = make_attention(cfg("soft", ScoreKind::kAdditive, Normalizer::kSoftmax, 5, 2), D, D, rng2);
  Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({2, B, D}, rng, 1, false);
  AttentionMemory ml = location->prepare(keys, keys, mask, Var()), ms = soft->prepare(keys, keys, mask, Var());
  AttentionState sl, ss;
  // The same scorer weights (same seed, scorer built first): identical at t = 0, different after.
  auto l0 = location->step(reshape(select(queries, 0), Shape{B, 1, D}), ml, sl).weights.value().to_vector();
  auto s0 = soft->step(reshape(select(queries, 0), Shape{B, 1, D}), ms, ss).weights.value().to_vector();
  EXPECT_EQ(l0, s0);
  auto l1 = location->step(reshape(select(queries, 1), Shape{B, 1, D}), ml, sl).weights.value().to_vector();
  auto s1 = soft->step(reshape(select(queries, 1), Shape{B, 1, D}), ms, ss).weights.value().to_vector();
  EXPECT_NE(l1, s1);
  EXPECT_THROW(make_attention(cfg("location", ScoreKind::kDot, Normalizer::kSoftmax, 5, 2), D, D, rng),
               std::invalid_argument);
}

TEST(Mechanisms, MonotonicNeverMovesBackwardsAtInference) {
  const Tensor mask = mask_with_lengths();
  for (ScoreKind score : {ScoreKind::kDot, ScoreKind::kAdditive}) {
    Rng rng(56);
    auto mech = make_attention(cfg("monotonic", score, Normalizer::kSoftmax, 5, 2), D, D, rng);
    for (auto& p : mech->parameters())
      if (p.name == "monotonic.r") p.var.value().data()[0] = 1.0f;  // stop often enough to see the pointer move
    Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({12, B, D}, rng, 2, false);
    AttentionMemory mem = mech->prepare(keys, keys, mask, Var());
    AttentionState st;
    st.inference = true;
    std::vector<int> last(B, -1);
    int attended = 0;
    for (int t = 0; t < 12; ++t) {
      AttentionResult r = mech->step(reshape(select(queries, t), Shape{B, 1, D}), mem, st);
      for (int b = 0; b < B; ++b) {
        const float* w = r.weights.value().data() + b * S;
        int at = -1, ones = 0;
        for (int s = 0; s < S; ++s) {
          if (w[s] == 1.0f)
            at = s, ++ones;
          else
            EXPECT_EQ(w[s], 0.0f) << "hard weights are one-hot or zero";
        }
        EXPECT_LE(ones, 1);
        if (at >= 0) {
          EXPECT_GE(at, last[b]) << "step " << t << " row " << b << " moved backwards";
          EXPECT_LT(at, b == 0 ? 9 : 6) << "attended padding";
          last[b] = at, ++attended;
        }
      }
    }
    EXPECT_GT(attended, 0);
  }
}

TEST(Mechanisms, ForwardMassMovesAtMostOnePositionPerStep) {
  const Tensor mask = mask_with_lengths();
  for (const std::string kind : {"forward", "forward-ta"}) {
    Rng rng(57);
    auto mech = make_attention(cfg(kind, ScoreKind::kAdditive, Normalizer::kSoftmax, 5, 2), D, D, rng);
    Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({6, B, D}, rng, 1, false);
    AttentionMemory mem = mech->prepare(keys, keys, mask, Var());
    AttentionState st;
    for (int t = 0; t < 6; ++t) {
      AttentionResult r = mech->step(reshape(select(queries, t), Shape{B, 1, D}), mem, st);
      for (int b = 0; b < B; ++b) {
        const float* w = r.weights.value().data() + b * S;
        double total = 0;
        for (int s = 0; s < S; ++s) {
          total += w[s];
          if (s > t + 1) {  // starts at 0 before step 0; one position per step
            EXPECT_EQ(w[s], 0.0f) << kind << ": step " << t << " reached position " << s;
          }
        }
        EXPECT_NEAR(total, 1.0, 1e-5);
      }
    }
  }
}

TEST(Mechanisms, LocalPGaussianPeaksAtThePredictedPosition) {
  Var p(Tensor::from(Shape{1, 1, 1}, {3.0f}));
  const auto g = gaussian_around(p, 7, 1.0f).value().to_vector();
  EXPECT_FLOAT_EQ(g[3], 1.0f);
  EXPECT_NEAR(g[4], std::exp(-0.5f), 1e-6f);
  EXPECT_NEAR(g[1], std::exp(-2.0f), 1e-6f);
  EXPECT_THROW(find_mechanism("hard-local"), std::invalid_argument);
  EXPECT_THROW((cfg("local-p", ScoreKind::kDot, Normalizer::kSoftmax, 5, 0).validate()), std::invalid_argument);
}

// hard (Xu et al. 2015): one-hot weights at inference, on the argmax of the soft distribution.
TEST(Mechanisms, HardIsOneHotOnTheSoftArgmaxAtInference) {
  const Tensor mask = mask_with_lengths();
  Rng rng(61);
  AttentionConfig c = cfg("hard", ScoreKind::kAdditive, Normalizer::kSoftmax, 5, 2);
  auto hard = make_attention(c, D, D, rng);
  Rng rng2(61);
  auto soft = make_attention(cfg("soft", ScoreKind::kAdditive, Normalizer::kSoftmax, 5, 2), D, D, rng2);
  Var keys = random_var({B, S, D}, rng, 1, false), queries = random_var({5, B, D}, rng, 1, false);
  AttentionMemory mh = hard->prepare(keys, keys, mask, Var()), ms = soft->prepare(keys, keys, mask, Var());
  AttentionState sh, ss;
  sh.inference = true;
  for (int t = 0; t < 5; ++t) {
    const Var q = reshape(select(queries, t), Shape{B, 1, D});
    AttentionResult h = hard->step(q, mh, sh), a = soft->step(q, ms, ss);
    for (int b = 0; b < B; ++b) {
      const float* w = h.weights.value().data() + b * S;
      const float* p = a.weights.value().data() + b * S;
      const int argmax = static_cast<int>(std::max_element(p, p + S) - p);
      for (int s = 0; s < S; ++s) ASSERT_EQ(w[s], s == argmax ? 1.0f : 0.0f) << "step " << t << " row " << b;
      for (int d = 0; d < D; ++d)  // the context is that position's value
        EXPECT_FLOAT_EQ(h.context.value().data()[b * D + d], keys.value().data()[(b * S + argmax) * D + d]);
    }
  }
}

// REINFORCE: samples follow the soft distribution (padding never drawn), the sampled rows'
// log a(s~) and the entropy are differentiable (finite differences, samples held fixed), and
// hard_mix = 1 is exactly soft attention.
TEST(Mechanisms, HardReinforceSamplesFromTheSoftDistributionWithGradients) {
  const Tensor mask = mask_with_lengths();
  Rng rng(62);
  AttentionConfig c = cfg("hard", ScoreKind::kGeneral, Normalizer::kSoftmax, 5, 2);
  c.options["hard_mix"] = 0.0f;
  auto hard = make_attention(c, D, D, rng);
  Var keys = random_var({B, S, D}, rng, 0.5f, false), query = random_var({B, 1, D}, rng, 0.5f, false);
  AttentionMemory mem = hard->prepare(keys, keys, mask, Var());
  AttentionState probe;
  probe.inference = true;
  std::vector<double> counts(B * S, 0.0);
  Rng sampler(7);
  const int N = 20000;
  Tensor soft;
  for (int i = 0; i < N; ++i) {
    AttentionState st;
    st.sampler = &sampler;
    AttentionResult r = hard->step(query, mem, st);
    for (int64_t j = 0; j < B * S; ++j) counts[j] += r.weights.value().data()[j];
    if (i == 0) {
      ASSERT_TRUE(st.sum(0) /* hard: sum log a(s~) */.defined() && st.sum(1) /* hard: entropy */.defined());
    }
  }
  {
    auto soft_mech = make_attention(cfg("soft", ScoreKind::kGeneral, Normalizer::kSoftmax, 5, 2), D, D, rng);
    assign_parameters(
        soft_mech->parameters(),
        [&] {
          std::map<std::string, Tensor> m;
          for (const auto& p : hard->parameters())
            if (p.var.requires_grad()) m.emplace(p.name, p.var.value());  // not REINFORCE's baseline (a buffer)
          return m;
        }(),
        "test");
    AttentionState st;
    soft = soft_mech->step(query, soft_mech->prepare(keys, keys, mask, Var()), st).weights.value();
  }
  for (int64_t j = 0; j < B * S; ++j) EXPECT_NEAR(counts[j] / N, soft.data()[j], 0.015) << "position " << j;
  for (int s = 6; s < S; ++s) EXPECT_EQ(counts[S + s], 0.0) << "padding drawn";

  // d/dtheta of sum log a(s~) + H(a), with the same samples in every evaluation.
  gradcheck(
      [&](const std::vector<Var>& x) {
        Rng fixed(99);
        AttentionState st;
        st.sampler = &fixed;
        AttentionMemory m = hard->prepare(keys, keys, mask, Var());
        hard->step(x[0], m, st);
        return concat({st.sum(0) /* hard: sum log a(s~) */, reshape(st.sum(1) /* hard: entropy */, Shape{1})}, 0);
      },
      params(*hard, {random_var({B, 1, D}, rng, 0.5f)}), {.eps = 1e-3f});

  // hard_mix = 1: every sentence takes the expectation, i.e. soft attention, with its gradients.
  c.options["hard_mix"] = 1.0f;
  Rng rng3(63);
  auto mixed = make_attention(c, D, D, rng3);
  gradcheck(
      [&](const std::vector<Var>& x) {
        Rng fixed(5);
        AttentionState st;
        st.sampler = &fixed;
        AttentionResult r = mixed->step(x[0], mixed->prepare(x[1], x[1], mask, Var()), st);
        return concat({reshape(r.context, Shape{B, D}), reshape(r.weights, Shape{B, S})}, 1);
      },
      params(*mixed, {random_var({B, 1, D}, rng, 0.5f), random_var({B, S, D}, rng, 0.5f)}), {.eps = 1e-3f});
}

// Gumbel straight-through: the forward weights are one-hot, the gradient is the relaxed softmax's.
TEST(Mechanisms, HardGumbelIsOneHotForwardWithTheRelaxedGradient) {
  const Tensor mask = mask_with_lengths();
  Rng rng(64);
  AttentionConfig c = cfg("hard", ScoreKind::kDot, Normalizer::kSoftmax, 5, 2);
  c.options["hard_estimator"] = 1;  // gumbel
  c.options["gumbel_temperature"] = 0.7f;
  auto hard = make_attention(c, D, D, rng);
  Var keys = random_var({B, S, D}, rng, 1, false);
  Var query = random_var({B, 1, D}, rng);
  AttentionMemory mem = hard->prepare(keys, keys, mask, Var());
  Rng sampler(3);
  AttentionState st;
  st.sampler = &sampler;
  Tape tape;
  AttentionResult r;
  {
    TapeScope scope(tape);
    r = hard->step(query, mem, st);
    int ones = 0;
    for (int64_t j = 0; j < B * S; ++j) {
      const float w = r.weights.value().data()[j];
      ASSERT_TRUE(w == 0.0f || w == 1.0f) << w;
      ones += w == 1.0f;
    }
    EXPECT_EQ(ones, B);
    Var total = sum(mul(r.context, Var(Tensor::full(Shape{B, 1, D}, 1.0f))));
    tape.backward(total);
  }
  ASSERT_TRUE(query.grad().defined());
  double norm = 0.0;
  for (int64_t i = 0; i < query.grad().numel(); ++i) norm += std::fabs(query.grad().data()[i]);
  EXPECT_GT(norm, 0.0) << "no gradient reached the query through the straight-through estimator";
}

}  // namespace
}  // namespace attend
