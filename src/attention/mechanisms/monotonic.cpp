// monotonic (Raffel et al. 2017): at each output step the decoder scans the source from where it
// last attended and stops at position j with probability p_j = sigmoid(e_j + r), e the score and r
// a learned offset (initialised to -1). Training uses the expected alignment (eq. 9, see
// monotonic_alignment) and its context sum_j alpha_j h_j; inference moves a hard pointer: the
// first j at or after the previous position with p_j >= 0.5, or no attention (zero context)
// when there is none (sec. 2.2), in linear time overall.
#include "attend/attention/registry.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"

namespace attend {
namespace {

enum Slot { kPrevious };    // training: the expected alignment alpha_{t-1} [B,S]
enum IntSlot { kPointer };  // inference: each row's attended position (-1 before the first)

class Monotonic final : public AttentionMechanism {
 public:
  Monotonic(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng), r_(parameter(Shape{1})) {
    r_.value().data()[0] = -1.0f;
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Var e = reshape(scorer_.scores(query, m.scorer), Shape{B, S});
    Var p = monotonic_stop_probabilities(e, r_, m.scorer.mask, st);  // [B,S]
    ++st.step;
    if (st.inference) return hard_step(p, m, st);
    Var alpha = monotonic_expected_alignment(p, st.row(kPrevious));  // [B,S]
    st.row(kPrevious) = alpha;
    Var w = reshape(alpha, Shape{B, 1, S});
    return {bmm(w, m.scorer.values), w};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    out.push_back({prefix + "monotonic.r", r_});
  }

 private:
  AttentionResult hard_step(const Var& p, const AttentionMemory& m, AttentionState& st) const {
    const int64_t B = p.size(0), S = p.size(1);
    const std::vector<int> end = advance_monotonic_pointers(p.value(), m.lengths, st.ints(kPointer));
    Tensor w(Shape{B, 1, S});
    for (int64_t b = 0; b < B; ++b)
      if (end[b] >= 0) w.data()[b * S + end[b]] = 1.0f;  // one-hot, or no attention once past the end
    Var wv(w);
    return {bmm(wv, m.scorer.values), wv};
  }

  Var r_;  // the energy offset r
};

}  // namespace

void register_mechanism_monotonic(MechanismRegistry& r) {
  r.add({.rank = 7,
         .name = "monotonic",
         .summary = "left to right, stopping at each position with probability sigmoid(score + r)",
         .paper = "Raffel et al. 2017 (expected alignment in training, a hard pointer in decoding)",
         .arrays = {{"r", "monotonic.r", "[1]", {""}}},
         .make = [](const AttentionConfig& c, int q, int k, Rng& rng) {
           return std::make_shared<Monotonic>(c, q, k, rng);
         }});
}

}  // namespace attend
