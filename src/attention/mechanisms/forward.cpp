// forward (Zhang et al. 2018, eqs. 7-10): with y_t the soft weights of step t,
//   alpha^_t(n) = (alpha_{t-1}(n) + alpha_{t-1}(n-1)) y_t(n),  alpha_t = alpha^_t / sum alpha^_t,
// starting from all mass on position 0, so the alignment moves forward by at most one position
// per step. forward-ta (eqs. 11-13) weighs staying and moving with the transition agent's
// u_{t-1} = sigmoid(w_u [c_{t-1}; s_{t-1}] + b_u):
//   alpha^_t(n) = ((1 - u_{t-1}) alpha_{t-1}(n) + u_{t-1} alpha_{t-1}(n-1)) y_t(n)
// (u_0 = 0.5). Used the same way in training and decoding.
#include <limits>

#include "attend/attention/registry.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"

namespace attend {
namespace {

enum Slot {
  kPrevious,      // alpha_{t-1} [B,S]
  kLogAlignment,  // log alpha_{t-1} [B,S], what the recursion runs on with softmax
  kTransition,    // forward-ta: u_{t-1} [B,1], the transition agent's probability of moving
};

class Forward final : public AttentionMechanism {
 public:
  Forward(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng), agent_(c.canonical_mechanism() == "forward-ta") {
    if (agent_) ta_ = Linear(key_dim + query_dim, 1, /*bias=*/true, rng);
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    // Zhang et al. 2018: alpha_t(n) ∝ ((1 - u) alpha_{t-1}(n) + u alpha_{t-1}(n-1)) y_t(n), fused
    // (u = 1/2 without the transition agent: the plain rule (alpha(n) + alpha(n-1)) y(n)).
    Var u;
    if (agent_) u = st.row(kTransition).defined() ? st.row(kTransition) : Var(Tensor::full(Shape{B, 1}, 0.5f));
    Var alpha;
    if (config_.normalizer == Normalizer::kSoftmax) {
      // In the log domain (y_t = softmax of the scores): bounded gradients where the product
      // of probabilities vanishes, as when the output outruns the alignment.
      Var log_y = log_softmax(reshape(scorer_.scores(query, m.scorer), Shape{B, S}), m.scorer.mask);
      Var log_prev = st.row(kLogAlignment);
      if (!log_prev.defined()) {
        Tensor start = Tensor::full(Shape{B, S}, -std::numeric_limits<float>::infinity());
        for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 0.0f;
        log_prev = Var(start);
      }
      st.row(kLogAlignment) = forward_alignment_log(log_prev, log_y, u);
      alpha = exp(st.row(kLogAlignment));
    } else {  // sparsemax, entmax: exact zeros, so the probability form
      Var y = reshape(scorer_(query, m.scorer).weights, Shape{B, S});  // y_t
      Var prev = st.row(kPrevious);
      if (!prev.defined()) {
        Tensor start(Shape{B, S});
        for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 1.0f;
        prev = Var(start);
      }
      alpha = forward_alignment(prev, y, u);
    }
    Var w = reshape(alpha, Shape{B, 1, S});
    Var context = bmm(w, m.scorer.values);  // [B,1,Dv]
    if (agent_) {
      if (context.size(2) + query.size(2) != ta_.weight().size(0)) {
        throw std::invalid_argument("forward-ta: the transition agent reads [context; query] of " +
                                    std::to_string(ta_.weight().size(0)) + " values (values as wide as keys), got " +
                                    std::to_string(context.size(2) + query.size(2)));
      }
      Var in = concat({reshape(context, Shape{B, context.size(2)}), reshape(query, Shape{B, query.size(2)})}, 1);
      st.row(kTransition) = sigmoid(ta_(in));  // u_t, used at the next step
    }
    st.row(kPrevious) = alpha;
    ++st.step;
    return {context, w};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    if (agent_) ta_.collect(prefix + "transition.", out);
  }

 private:
  bool agent_;
  Linear ta_;  // the transition agent: [c; s] -> 1
};

std::shared_ptr<AttentionMechanism> make_forward(const AttentionConfig& c, int q, int k, Rng& rng) {
  return std::make_shared<Forward>(c, q, k, rng);
}

}  // namespace

void register_mechanism_forward(MechanismRegistry& r) {
  r.add({.rank = 8,
         .name = "forward",
         .summary = "the alignment moves forward by at most one position per step",
         .paper = "Zhang et al. 2018, eqs. 7-10 (forward attention)",
         .make = make_forward});
  r.add({.rank = 9,
         .name = "forward-ta",
         .summary = "forward attention with a transition agent that learns when to move",
         .paper = "Zhang et al. 2018, eqs. 11-13",
         .arrays = {{"Wu", "transition.weight", "[Dk + Dq]", {""}}, {"bu", "transition.bias", "[1]", {""}}},
         .make = make_forward});
}

}  // namespace attend
