// local-m (Luong et al. 2015, sec. 3.2): p_t = t, attend only within [p_t - D, p_t + D]
// (clipped to the sentence). With a rate r, p_t = r t: sources longer or shorter than their
// outputs (r = source / output length, which `attend train --position-rate auto` measures).
#include <algorithm>
#include <sstream>

#include "attend/attention/registry.h"

namespace attend {
namespace {

class LocalM final : public AttentionMechanism {
 public:
  LocalM(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        window_(c.int_option("window")),
        rate_(static_cast<float>(c.option("position_rate"))) {
    if (!(rate_ > 0.0f))
      throw std::invalid_argument("local-m: position_rate must be > 0, got " + std::to_string(rate_) +
                                  " (auto is resolved from the training data by attend train)");
  }
  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0);
    std::vector<float> centre(B);
    for (int64_t b = 0; b < B; ++b)
      centre[b] = std::min(rate_ * static_cast<float>(st.step), static_cast<float>(std::max(0, m.lengths[b] - 1)));
    ++st.step;
    AttentionResult a =
        scorer_.weigh(scorer_.scores(query, m.scorer), m.scorer, window_mask(m.scorer.mask, centre, window_));
    a.trace = Tensor(Shape{B, 1});
    std::copy(centre.begin(), centre.end(), a.trace.data());
    return a;
  }

 private:
  int window_;
  float rate_;
};

// "auto": the output's last token (</s>, step T) should look at the source's last position
// (S - 1), on average over the training data.
std::string fit_rate(AttentionConfig& c, const std::vector<std::pair<int, int>>& lengths) {
  if (c.option("position_rate") != 0.0) return "";
  double positions = 0.0, steps = 0.0;
  for (const auto& [src, tgt] : lengths) positions += double(src) - 1.0, steps += double(tgt);
  const float rate = static_cast<float>(std::clamp(positions / std::max(steps, 1.0), 0.01, 1000.0));
  c.options["position_rate"] = rate;
  std::ostringstream m;
  m << "local-m: position rate " << rate << " from the training data (p_t = rate * t)";
  return m.str();
}

}  // namespace

void register_mechanism_local_m(MechanismRegistry& r) {
  using T = MechanismOption::Type;
  r.add(
      {.rank = 3,
       .name = "local-m",
       .summary = "a window of +-D positions around p_t = rate * t",
       .paper = "Luong et al. 2015, sec. 3.2 (monotonic alignment)",
       .options = {window_option(),
                   {.key = "position_rate",
                    .type = T::kFloat,
                    .default_value = 1,
                    .min = 0,
                    .max = 1000,
                    .help = "p_t = rate * t (1 = Luong et al.; auto = source / output length of the training data)",
                    .min_exclusive = true,
                    .named_values = {{"auto", 0.0}}}},
       .trace = {"window centre p_t"},
       .make = [](const AttentionConfig& c, int q, int k, Rng& rng) { return std::make_shared<LocalM>(c, q, k, rng); },
       .fit_to_data = fit_rate});
}

}  // namespace attend
