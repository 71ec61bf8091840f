// local-p (Luong et al. 2015, eqs. 9-10): p_t = (S_b - 1) sigmoid(v_p^T tanh(W_p h_t)) predicted
// from the decoder state (0-based positions of a source of length S_b), the weights of the window
// [p_t - D, p_t + D] multiplied by exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D/2 (or --sigma).
// Gradients reach W_p and v_p through the Gaussian; the window's edges are not differentiable.
#include "attend/attention/registry.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"

namespace attend {
namespace {

class LocalP final : public AttentionMechanism {
 public:
  LocalP(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        window_(c.int_option("window")),
        sigma_(c.option("sigma") > 0.0 ? static_cast<float>(c.option("sigma")) : window_ / 2.0f),
        wp_(query_dim, c.attention_dim, /*bias=*/false, rng),
        vp_(c.attention_dim, 1, /*bias=*/false, rng) {}

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Tensor span(Shape{B, 1, 1});
    for (int64_t b = 0; b < B; ++b) span.data()[b] = static_cast<float>(std::max(0, m.lengths[b] - 1));
    Var p = mul(Var(span), sigmoid(vp_(tanh(wp_(query)))));  // [B,1,1]
    std::vector<float> centre(p.value().data(), p.value().data() + B);
    ++st.step;
    AttentionResult a =
        scorer_.weigh(scorer_.scores(query, m.scorer), m.scorer, window_mask(m.scorer.mask, centre, window_));
    Var w = mul(a.weights, gaussian_around(p, static_cast<int>(S), sigma_));  // [B,1,S]
    Tensor trace(Shape{B, 1});
    std::copy(centre.begin(), centre.end(), trace.data());
    return {bmm(w, m.scorer.values), w, trace};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    wp_.collect(prefix + "position.W.", out);
    vp_.collect(prefix + "position.v.", out);
  }

 private:
  int window_;
  float sigma_;
  Linear wp_, vp_;
};

}  // namespace

void register_mechanism_local_p(MechanismRegistry& r) {
  using T = MechanismOption::Type;
  r.add(
      {.rank = 4,
       .name = "local-p",
       .summary = "a window of +-D around a predicted position, times a Gaussian",
       .paper = "Luong et al. 2015, eqs. 9-10 (predictive alignment)",
       .options = {window_option(),
                   {.key = "sigma",
                    .type = T::kFloat,
                    .default_value = 0,
                    .min = 0,
                    .max = 1e6,
                    .help = "width of the Gaussian around p_t (0 = D/2, Luong et al.)"}},
       .arrays = {{"Wp", "position.W.weight", "[Dq, A]", {"", "attention_dim"}},
                  {"vp", "position.v.weight", "[A]", {"attention_dim"}}},
       .trace = {"predicted centre p_t"},
       .make = [](const AttentionConfig& c, int q, int k, Rng& rng) { return std::make_shared<LocalP>(c, q, k, rng); },
       .validate =
           [](const AttentionConfig& c) {
             if (c.int_option("window") < 1 && c.option("sigma") == 0.0)
               throw std::invalid_argument("attention: local-p needs --window >= 1 (sigma = window / 2), got " +
                                           std::to_string(c.int_option("window")));
           }});
}

}  // namespace attend
