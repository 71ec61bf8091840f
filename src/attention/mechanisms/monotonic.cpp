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
    Var e = add(reshape(scorer_.scores(query, m.scorer), Shape{B, S}), r_);
    if (!st.inference && st.sampler) {
      // Raffel et al. 2017, sec. 2.3: Gaussian noise N(0, 1) before the sigmoid in training
      // pushes the stop probabilities towards 0 or 1, so the expected alignment of training
      // matches the hard pointer (threshold 0.5) used at inference.
      Tensor noise(Shape{B, S});
      for (int64_t i = 0; i < noise.numel(); ++i) noise.data()[i] = st.sampler->normal();
      e = add(e, Var(noise));
    }
    Var p = mul(sigmoid(e), Var(m.scorer.mask));  // padding: never stop there
    ++st.step;
    if (st.inference) return hard_step(p, m, st);
    Var prev = st.row(kPrevious);
    if (!prev.defined()) {  // before the first step all mass is at position 0
      Tensor start(Shape{B, S});
      for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 1.0f;
      prev = Var(start);
    }
    Var alpha = monotonic_alignment(p, prev);  // [B,S]
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
    std::vector<int>& pointer = st.ints(kPointer);
    if (pointer.empty()) pointer.assign(B, 0);
    Tensor w(Shape{B, 1, S});
    for (int64_t b = 0; b < B; ++b) {
      int& at = pointer[b];
      int j = at;
      while (j < m.lengths[b] && p.value().data()[b * S + j] < 0.5f) ++j;
      if (j < m.lengths[b]) {
        w.data()[b * S + j] = 1.0f;
        at = j;
      } else {
        at = m.lengths[b];  // ran off the end: no attention from here on
      }
    }
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
