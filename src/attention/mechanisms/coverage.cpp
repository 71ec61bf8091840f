// coverage (Tu et al. 2016; in the form of See et al. 2017, eq. 11): c_t = sum_{tau<t} a_tau and
// e_t,s = va^T tanh(W s_t + V h_s + w_c c_t,s). With coverage_loss > 0 the state accumulates
// See et al.'s eq. 12, sum_s min(a_t,s, c_t,s), which extra_loss adds to the training loss
// (eq. 13: weighted, per target token like the cross-entropy).
#include <cmath>

#include "attend/attention/registry.h"
#include "attend/nn/init.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/reduce.h"
#include "attend/ops/shape.h"

namespace attend {
namespace {

enum Slot { kCoverage };  // c_t [B,S]
enum Sum { kPenalty };    // sum over steps of sum_s min(a_t, c_t), []

class Coverage final : public AttentionMechanism {
 public:
  Coverage(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        weight_(static_cast<float>(c.option("coverage_loss"))),
        wc_(parameter(Shape{c.attention_dim})) {
    init::uniform(wc_.value(), 1.0f / std::sqrt(static_cast<float>(c.attention_dim)), rng);
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Var& coverage = st.row(kCoverage);
    Var sc = coverage.defined()
                 ? scorer_.additive_scores_with(query, m.scorer, mul(reshape(coverage, Shape{B, S, 1}), wc_))
                 : scorer_.scores(query, m.scorer);
    AttentionResult a = scorer_.weigh(sc, m.scorer, m.scorer.mask);
    Var w = reshape(a.weights, Shape{B, S});
    if (coverage.defined() && weight_ > 0.0f) {
      Var step_loss = sum(minimum(w, coverage));
      Var& penalty = st.sum(kPenalty);
      penalty = penalty.defined() ? add(penalty, step_loss) : step_loss;
    }
    coverage = coverage.defined() ? add(coverage, w) : w;
    ++st.step;
    return a;
  }

  Var extra_loss(const AttentionState& st, const std::vector<double>&, float per_token) const override {
    const Var& penalty = st.sum(kPenalty);
    return penalty.defined() ? scale(penalty, weight_ * per_token) : Var();
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    out.push_back({prefix + "coverage.w", wc_});
  }

 private:
  float weight_;  // lambda, the coverage loss's weight
  Var wc_;        // w_c [A]
};

}  // namespace

void register_mechanism_coverage(MechanismRegistry& r) {
  r.add({.rank = 6,
         .name = "coverage",
         .summary = "the additive score also sees the weights summed over the previous steps",
         .paper = "Tu et al. 2016; See et al. 2017, eqs. 11-13",
         .options = {{.key = "coverage_loss",
                      .type = MechanismOption::Type::kFloat,
                      .default_value = 0,
                      .min = 0,
                      .max = 1e6,
                      .help = "weight of See et al.'s coverage loss (0 = off)"}},
         .arrays = {{"wc", "coverage.w", "[A]", {"attention_dim"}}},
         .additive_only = true,
         .make = [](const AttentionConfig& c, int q, int k, Rng& rng) {
           return std::make_shared<Coverage>(c, q, k, rng);
         }});
}

}  // namespace attend
