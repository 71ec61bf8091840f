// static attention: one distribution per sequence, computed from the encoder summary when the
// source is read and used unchanged at every output step (the decoder state plays no part).
#include "attend/attention/registry.h"
#include "attend/ops/shape.h"

namespace attend {
namespace {

class Static final : public AttentionMechanism {
 public:
  Static(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng) {}
  AttentionMemory prepare(const Var& keys, const Var& values, const Tensor& mask, const Var& summary) const override {
    AttentionMemory m = AttentionMechanism::prepare(keys, values, mask, summary);
    AttentionResult r = scorer_(reshape(summary, Shape{summary.size(0), 1, summary.size(1)}), m.scorer);
    m.static_weights = r.weights;
    m.static_context = r.context;
    return m;
  }
  AttentionResult step(const Var&, const AttentionMemory& m, AttentionState& st) const override {
    ++st.step;
    return {m.static_context, m.static_weights};
  }
};

}  // namespace

void register_mechanism_static(MechanismRegistry& r) {
  r.add({.rank = 1,
         .name = "static",
         .summary = "one distribution per sentence, from the encoder summary, reused at every step",
         .paper = "the 'static attention' baseline of attention surveys",
         .needs_summary = true,
         .make = [](const AttentionConfig& c, int q, int k, Rng& rng) {
           return std::make_shared<Static>(c, q, k, rng);
         }});
}

}  // namespace attend
