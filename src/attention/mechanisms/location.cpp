// location (Chorowski et al. 2015, eqs. 8-9): e_t,s = va^T tanh(W s_t + V h_s + U f_t,s) with
// f_t = F * a_{t-1}, K filters of width R over source positions. At t = 0 there is no previous
// alignment and f = 0.
#include <cmath>

#include "attend/attention/registry.h"
#include "attend/nn/init.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/shape.h"

namespace attend {
namespace {

enum Slot { kPrevious };  // a_{t-1} [B,S]

class Location final : public AttentionMechanism {
 public:
  Location(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        filters_(parameter(Shape{c.int_option("location_filters"), c.int_option("location_width")})),
        u_(c.int_option("location_filters"), c.attention_dim, /*bias=*/false, rng) {
    init::uniform(filters_.value(), 1.0f / std::sqrt(static_cast<float>(c.int_option("location_width"))), rng);
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    const Var& previous = st.row(kPrevious);
    Var sc = previous.defined()
                 ? scorer_.additive_scores_with(query, m.scorer, u_(position_conv(previous, filters_)))  // [B,1,S]
                 : scorer_.scores(query, m.scorer);
    AttentionResult a = scorer_.weigh(sc, m.scorer, m.scorer.mask);
    st.row(kPrevious) = reshape(a.weights, Shape{B, S});
    ++st.step;
    return a;
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    out.push_back({prefix + "location.filters", filters_});
    u_.collect(prefix + "location.U.", out);
  }

 private:
  Var filters_;  // F [K,R]
  Linear u_;     // U [K,A]
};

}  // namespace

void register_mechanism_location(MechanismRegistry& r) {
  using T = MechanismOption::Type;
  r.add({.rank = 5,
         .name = "location",
         .summary = "the additive score also sees a convolution of the previous step's weights",
         .paper = "Chorowski et al. 2015, eqs. 8-9 (location-aware attention)",
         .options = {{.key = "location_filters",
                      .type = T::kInt,
                      .default_value = 8,
                      .min = 1,
                      .max = 1 << 14,
                      .help = "K convolution filters over the previous weights"},
                     {.key = "location_width",
                      .type = T::kInt,
                      .default_value = 11,
                      .min = 1,
                      .max = 1 << 14,
                      .help = "their width R (odd)"}},
         .arrays = {{"F", "location.filters", "[K, R]", {"location_filters", "location_width"}},
                    {"U", "location.U.weight", "[K, A]", {"location_filters", "attention_dim"}}},
         .additive_only = true,
         .make = [](const AttentionConfig& c, int q, int k,
                    Rng& rng) { return std::make_shared<Location>(c, q, k, rng); },
         .validate =
             [](const AttentionConfig& c) {
               if (c.int_option("location_width") % 2 == 0)
                 throw std::invalid_argument("attention: location needs >= 1 filters of odd width, got " +
                                             std::to_string(c.int_option("location_filters")) + " of width " +
                                             std::to_string(c.int_option("location_width")));
             }});
}

}  // namespace attend
