// multi-head: multi-head additive attention for RNN decoders (as ESPnet's AttMultiHeadAdd). K
// heads, each with its own additive score over its own projection of the keys and its own
// projection of the values; the heads' contexts are concatenated and projected back:
//   e_h,s = va_h . tanh(q Wq_h + k_s Wk_h),  a_h = normalise(e_h),  c_h = sum_s a_h,s (v_s Wv_h)
//   context = [c_1; ...; c_K] Wo
// The weights it reports (for pictures and alignments) are the mean of the heads'. Parameters are
// stacked per head: Wq [K, Dq, A], Wk [K, Dk, A], va [K, A], Wv [K, Dv, Dv], Wo [K * Dv, Dv].
#include <cmath>

#include "attend/attention/registry.h"
#include "attend/nn/init.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"

namespace attend {
namespace {

// Memory slots: head h's projected keys [B,S,A] at 2h, its projected values [B,S,Dv] at 2h + 1.
constexpr size_t keys_slot(int h) { return 2 * size_t(h); }
constexpr size_t values_slot(int h) { return 2 * size_t(h) + 1; }

Var stacked(const Shape& shape, float bound, Rng& rng) {
  Var p(Tensor(shape), /*requires_grad=*/true);
  init::uniform(p.value(), bound, rng);
  return p;
}

// x [B, N, D] times w [D, E] -> [B, N, E].
Var project(const Var& x, const Var& w) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  return reshape(matmul(reshape(x, Shape{B * N, D}), w), Shape{B, N, w.size(1)});
}

class MultiHead final : public AttentionMechanism {
 public:
  MultiHead(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng), heads_(c.int_option("attention_heads")) {
    const int A = c.attention_dim, K = heads_, Dv = key_dim;  // the decoder's values are its keys
    wq_ = stacked(Shape{K, query_dim, A}, std::sqrt(6.0f / float(query_dim + A)), rng);
    wk_ = stacked(Shape{K, key_dim, A}, std::sqrt(6.0f / float(key_dim + A)), rng);
    va_ = stacked(Shape{K, A}, 1.0f / std::sqrt(float(A)), rng);
    wv_ = stacked(Shape{K, Dv, Dv}, std::sqrt(3.0f / float(Dv)), rng);
    wo_ = stacked(Shape{K * Dv, Dv}, std::sqrt(6.0f / float(K * Dv + Dv)), rng);
  }

  AttentionMemory prepare(const Var& keys, const Var& values, const Tensor& mask, const Var& summary) const override {
    if (values.size(2) != wv_.size(1))
      throw std::invalid_argument("multi-head: the values must be as wide as the keys (" + std::to_string(wv_.size(1)) +
                                  "), got " + values.shape().str());
    AttentionMemory m = AttentionMechanism::prepare(keys, values, mask, summary);
    m.rows.resize(2 * size_t(heads_));
    for (int h = 0; h < heads_; ++h) {
      m.rows[keys_slot(h)] = project(keys, select(wk_, h));      // [B,S,A]
      m.rows[values_slot(h)] = project(values, select(wv_, h));  // [B,S,Dv]
    }
    return m;
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0);
    std::vector<Var> contexts;
    Var weights;
    for (int h = 0; h < heads_; ++h) {
      Var e = additive_scores(project(query, select(wq_, h)), m.rows.at(keys_slot(h)), select(va_, h));  // [B,1,S]
      Var a = normalize(e, m.scorer.mask, config_.normalizer);                                           // [B,1,S]
      contexts.push_back(bmm(a, m.rows.at(values_slot(h))));                                             // [B,1,Dv]
      weights = weights.defined() ? add(weights, a) : a;
    }
    ++st.step;
    Var joined = reshape(concat(contexts, 2), Shape{B, heads_ * wv_.size(1)});  // [B, K*Dv]
    Var context = reshape(matmul(joined, wo_), Shape{B, 1, wo_.size(1)});       // [B,1,Dv]
    return {context, scale(weights, 1.0f / float(heads_))};
  }

  bool context_is_weighted_values() const override { return false; }  // a projection of the heads' contexts

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    // Not the base class's single score: the heads have their own.
    out.push_back({prefix + "heads.Wq", wq_});
    out.push_back({prefix + "heads.Wk", wk_});
    out.push_back({prefix + "heads.va", va_});
    out.push_back({prefix + "heads.Wv", wv_});
    out.push_back({prefix + "heads.Wo", wo_});
  }

 private:
  int heads_;
  Var wq_, wk_, va_, wv_, wo_;
};

}  // namespace

void register_mechanism_multi_head(MechanismRegistry& r) {
  r.add({.rank = 11,
         .name = "multi-head",
         .summary = "K additive heads, each with its own projections; their contexts concatenated and projected",
         .paper = "multi-head additive attention for RNN decoders (ESPnet's AttMultiHeadAdd; Chiu et al. 2018)",
         .options = {{.key = "attention_heads",
                      .type = MechanismOption::Type::kInt,
                      .default_value = 4,
                      .min = 1,
                      .max = 64,
                      .help = "K, the number of heads"}},
         .arrays = {{"hWq", "heads.Wq", "[K, Dq, A]", {"attention_heads", "", "attention_dim"}},
                    {"hWk", "heads.Wk", "[K, Dk, A]", {"attention_heads", "", "attention_dim"}},
                    {"hva", "heads.va", "[K, A]", {"attention_heads", "attention_dim"}},
                    {"hWv", "heads.Wv", "[K, Dv, Dv]", {"attention_heads", "", ""}},
                    {"hWo", "heads.Wo", "[K * Dv, Dv]", {"", ""}}},
         .additive_only = true,
         .make = [](const AttentionConfig& c, int q, int k, Rng& rng) {
           return std::make_shared<MultiHead>(c, q, k, rng);
         }});
}

}  // namespace attend
