// hard (Xu et al. 2015, sec. 4.1, "stochastic hard attention"): a_t is the soft distribution
// of the score; the context is the value at one position s~_t instead of the expectation.
//   inference (or no sampler): s~_t = argmax a_t.
//   REINFORCE: s~_t ~ Multinoulli(a_t); the state collects log a_t(s~_t) and H(a_t) so that the
//     model's loss can add -(R - b) log a_t(s~_t) - lambda_e H(a_t) (eq. 12); with probability
//     hard_mix a sentence uses the expected context a_t V instead (and is not in the sum).
//   Gumbel: y = softmax((log a_t + g) / tau), g ~ Gumbel(0, 1); the forward pass uses the one-hot
//     argmax of y, the backward pass the gradient of y (straight-through).
#include <algorithm>
#include <cmath>

#include "attend/attention/registry.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
#include "attend/ops/reduce.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"

namespace attend {
namespace {

enum Sum {
  kSampledLogProb,  // REINFORCE: sum over steps of log a_t(s~_t) for sampled rows, [B]
  kEntropy,         // REINFORCE: sum over steps and rows of H(a_t), []
};

class Hard final : public AttentionMechanism {
 public:
  Hard(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        estimator_(static_cast<HardEstimator>(c.int_option("hard_estimator"))),
        mix_(static_cast<float>(c.option("hard_mix"))),
        entropy_bonus_(static_cast<float>(c.option("entropy_bonus"))),
        temperature_(static_cast<float>(c.option("gumbel_temperature"))) {
    if (estimator_ == HardEstimator::kReinforce) baseline_ = Var(Tensor(Shape{2}), /*requires_grad=*/false);
  }
  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    ++st.step;
    AttentionResult soft = scorer_(query, m.scorer);  // a_t [B,1,S]
    const Tensor& a = soft.weights.value();
    const int64_t B = a.size(0), S = a.size(2);
    auto one_hot = [&](const std::vector<int>& at) {
      Tensor h(Shape{B, 1, S});
      for (int64_t b = 0; b < B; ++b) h.data()[b * S + at[b]] = 1.0f;
      return h;
    };
    auto argmax = [&](const Tensor& w) {
      std::vector<int> at(B, 0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 1; s < S; ++s)
          if (w.data()[b * S + s] > w.data()[b * S + at[b]]) at[b] = static_cast<int>(s);
      return at;
    };
    const Var& values = m.scorer.values;
    if (st.inference || !st.sampler) {
      Var w(one_hot(argmax(a)));
      return {bmm(w, values), w};
    }
    Rng& rng = *st.sampler;
    if (estimator_ == HardEstimator::kGumbel) {
      Tensor g(Shape{B, 1, S});
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = -std::log(-std::log(std::max(rng.uniform(), 1e-20f)));
      // log a_t is -inf at padding; softmax's mask keeps those at exactly 0.
      Var logits =
          scale(add(log(add(soft.weights, Var(Tensor::full(Shape{1, 1, 1}, 1e-20f)))), Var(g)), 1.0f / temperature_);
      Var y = softmax(reshape(logits, Shape{B, S}), m.scorer.mask);
      Tensor hard = one_hot(argmax(y.value()));
      Tensor delta = hard.clone();  // y_hard - y: the forward value becomes y_hard, the gradient stays y's
      for (int64_t i = 0; i < delta.numel(); ++i) delta.data()[i] -= y.value().data()[i];
      Var w = add(reshape(y, Shape{B, 1, S}), Var(delta));
      return {bmm(w, values), w};
    }
    // REINFORCE: per sentence, a sample (keep = 1) or the expectation (keep = 0).
    std::vector<int> at(B, 0);
    Tensor keep(Shape{B, 1, 1}), expect(Shape{B, 1, 1});
    for (int64_t b = 0; b < B; ++b) {
      const bool mix = mix_ > 0.0f && rng.uniform() < mix_;
      float u = rng.uniform(), acc = 0.0f;
      int pick = -1;
      for (int64_t s = 0; s < S; ++s) {  // inverse CDF; the last position with weight catches rounding
        const float p = a.data()[b * S + s];
        if (p <= 0.0f) continue;
        pick = static_cast<int>(s);
        acc += p;
        if (u < acc) break;
      }
      at[b] = std::max(pick, 0);
      keep.data()[b] = mix ? 0.0f : 1.0f;
      expect.data()[b] = mix ? 1.0f : 0.0f;
    }
    const Tensor h = one_hot(at);
    Var w = add(mul(soft.weights, Var(expect)), mul(Var(h), Var(keep)));  // [B,1,S]
    // log a_t(s~) of the sampled rows, [B] (0 for rows that took the expectation).
    Var picked = bmm(soft.weights, reshape(Var(h), Shape{B, S, 1}));  // a_t(s~) [B,1,1]
    Var log_p = mul(reshape(log(picked), Shape{B}), Var(keep.view(Shape{B})));
    Var& sampled = st.sum(kSampledLogProb);
    sampled = sampled.defined() ? add(sampled, log_p) : log_p;
    // H(a_t) = -sum_s a log a over every row (0 log 0 = 0: a tiny floor inside the log).
    Var ent = scale(sum(mul(soft.weights, log(add(soft.weights, Var(Tensor::full(Shape{1, 1, 1}, 1e-12f)))))), -1.0f);
    Var& entropy = st.sum(kEntropy);
    entropy = entropy.defined() ? add(entropy, ent) : ent;
    return {bmm(w, values), w};
  }

  // Xu et al. 2015, eq. 12: the reward of sentence b is R_b = log p(y_b | s~) (a constant: no
  // gradient flows through R), against a moving-average baseline b_k = 0.9 b_{k-1} + 0.1 mean R.
  // -(R - b) log a(s~) has REINFORCE's gradient; -lambda_e H(a) rewards spread attention.
  Var extra_loss(const AttentionState& st, const std::vector<double>& reward, float per_token) const override {
    const Var& sampled = st.sum(kSampledLogProb);
    if (!sampled.defined() || !baseline_.defined() || reward.empty()) return Var();
    const int B = static_cast<int>(reward.size());
    Tensor baseline = baseline_.value();  // shares the buffer's storage: {b, 1 once initialised}
    double mean = 0.0;
    for (double r : reward) mean += r / B;
    if (baseline.data()[1] == 0.0f) baseline.data()[0] = static_cast<float>(mean), baseline.data()[1] = 1.0f;
    Tensor advantage(Shape{B});
    for (int b = 0; b < B; ++b) advantage.data()[b] = static_cast<float>(reward[b] - baseline.data()[0]);
    baseline.data()[0] = 0.9f * baseline.data()[0] + 0.1f * static_cast<float>(mean);
    Var l = scale(sum(mul(sampled, Var(advantage))), -per_token);
    const Var& entropy = st.sum(kEntropy);
    if (entropy.defined() && entropy_bonus_ > 0.0f) l = add(l, scale(entropy, -entropy_bonus_ * per_token));
    return l;
  }
  bool needs_log_likelihood() const override { return baseline_.defined(); }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    if (baseline_.defined()) out.push_back({prefix + "reinforce_baseline", baseline_});  // no gradient
  }

 private:
  HardEstimator estimator_;
  float mix_, entropy_bonus_, temperature_;
  Var baseline_;  // REINFORCE: [2] = {b, 1 once initialised}
};

}  // namespace

void register_mechanism_hard(MechanismRegistry& r) {
  using T = MechanismOption::Type;
  r.add(
      {.rank = 2,
       .name = "hard",
       .summary = "one source position per step: sampled in training, the argmax in decoding",
       .paper = "Xu et al. 2015, sec. 4.1 (stochastic hard attention)",
       .options =
           {{.key = "hard_estimator",
             .type = T::kChoice,
             .default_value = 0,
             .help = "reinforce (Xu et al. 2015: REINFORCE, moving-average baseline, entropy bonus) or "
                     "gumbel (straight-through Gumbel-softmax)",
             .choices = {"reinforce", "gumbel"}},
            {.key = "hard_mix",
             .type = T::kFloat,
             .default_value = 0.5,
             .min = 0,
             .max = 1,
             .help =
                 "reinforce: share of sentences that use the expected context instead of a sample (Xu et al.: 0.5)"},
            {.key = "entropy_bonus",
             .type = T::kFloat,
             .default_value = 0.01,
             .min = 0,
             .max = 1e6,
             .help = "reinforce: weight of the attention entropy"},
            {.key = "gumbel_temperature",
             .type = T::kFloat,
             .default_value = 1,
             .min = 0,
             .max = 1e6,
             .help = "gumbel: softmax temperature tau",
             .min_exclusive = true}},
       .make = [](const AttentionConfig& c, int q, int k, Rng& rng) { return std::make_shared<Hard>(c, q, k, rng); }});
}

}  // namespace attend
