// soft (= global = dynamic) attention: every source position, recomputed at every step.
// Bahdanau et al. 2015 (additive score); Luong et al. 2015, sec. 3.1 (global attention).
#include "attend/attention/registry.h"

namespace attend {
namespace {

class Soft final : public AttentionMechanism {
 public:
  Soft(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng) {}
  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    ++st.step;
    return scorer_(query, m.scorer);
  }
  bool is_plain_soft() const override { return config_.normalizer == Normalizer::kSoftmax; }
};

}  // namespace

void register_mechanism_soft(MechanismRegistry& r) {
  r.add(
      {.rank = 0,
       .name = "soft",
       .aliases = {"global", "dynamic"},
       .summary = "every source position, at every step",
       .paper = "Bahdanau et al. 2015; Luong et al. 2015, sec. 3.1",
       .make = [](const AttentionConfig& c, int q, int k, Rng& rng) { return std::make_shared<Soft>(c, q, k, rng); }});
}

}  // namespace attend
