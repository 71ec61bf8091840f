// mocha: monotonic chunkwise attention (Chiu & Raffel 2018). A monotonic head (Raffel et al.
// 2017: stop at j with probability p_j = sigmoid(e_j + r), e the score, r a learned offset) picks
// an endpoint t_i; soft attention over the chunk of w positions ending there gives the context,
// with chunk energies u from a second score of its own parameters.
//   training, the expected alignment: alpha_i = the monotonic head's expected alignment, and
//     beta_i,j = sum_{k=j}^{j+w-1} alpha_i,k exp(u_i,j) / sum_{l=k-w+1}^{k} exp(u_i,l)
//     (every endpoint k spreads its probability over its chunk by the chunk's softmax)
//   decoding: the hard pointer t_i (the first j >= t_{i-1} with p_j >= 1/2) and the softmax of u
//     over [t_i - w + 1, t_i]; once the pointer runs off the source, no attention (zero context).
// Linear in S per step when decoding; the expected form costs one [S, S*w] selection product.
#include <algorithm>
#include <cmath>

#include "attend/attention/registry.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"

namespace attend {
namespace {

enum Slot { kAlpha };            // training: the monotonic head's expected alignment alpha_{i-1} [B,S]
enum IntSlot { kPointer };       // decoding: each row's endpoint t_{i-1}
enum MemorySlot { kChunkKeys };  // the chunk score's prepared keys [B,S,X]

// G [S, S*w]: column k*w + i picks position k - w + 1 + i (the i-th of the chunk ending at k).
Tensor chunk_selection(int64_t S, int w) {
  Tensor g(Shape{S, S * w});
  for (int64_t k = 0; k < S; ++k)
    for (int i = 0; i < w; ++i)
      if (const int64_t l = k - w + 1 + i; l >= 0) g.data()[l * S * w + k * w + i] = 1.0f;
  return g;
}

class Mocha final : public AttentionMechanism {
 public:
  Mocha(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        chunk_(c.score, query_dim, key_dim, c.attention_dim, rng),
        w_(c.int_option("chunk")),
        r_(parameter(Shape{1})) {
    r_.value().data()[0] = -1.0f;  // as Raffel et al.: start with p < 1/2, moving on
  }

  AttentionMemory prepare(const Var& keys, const Var& values, const Tensor& mask, const Var& summary) const override {
    AttentionMemory m = AttentionMechanism::prepare(keys, values, mask, summary);
    m.rows.resize(1);
    m.rows[kChunkKeys] = chunk_.prepare(keys, values, mask).keys;
    return m;
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Var e = reshape(scorer_.scores(query, m.scorer), Shape{B, S});
    Var p = monotonic_stop_probabilities(e, r_, m.scorer.mask, st);  // [B,S]
    const SoftAttention::Memory chunk_memory{m.rows.at(kChunkKeys), m.scorer.values, m.scorer.mask};
    Var u = reshape(chunk_.scores(query, chunk_memory), Shape{B, S});  // chunk energies
    ++st.step;
    if (st.inference) return hard_step(p, u, m, st);
    Var alpha = monotonic_expected_alignment(p, st.row(kAlpha));  // [B,S]
    st.row(kAlpha) = alpha;
    Var w = reshape(expected_chunks(alpha, u, m.scorer.mask), Shape{B, 1, S});
    return {bmm(w, m.scorer.values), w};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    chunk_.collect(prefix + "chunk.", out);
    out.push_back({prefix + "mocha.r", r_});
  }

 private:
  // beta [B,S] from alpha [B,S] and the chunk energies u [B,S]: each endpoint k's chunk softmax
  // (over its unmasked positions), weighted by alpha_k and summed back onto positions.
  Var expected_chunks(const Var& alpha, const Var& u, const Tensor& mask) const {
    const int64_t B = alpha.size(0), S = alpha.size(1);
    const Var g(chunk_selection(S, w_));                   // [S, S*w]
    Var chunks = reshape(matmul(u, g), Shape{B * S, w_});  // u of chunk k, [B*S, w]
    Tensor valid(Shape{B * S, w_});                        // positions that exist
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < S; ++k)
        for (int i = 0; i < w_; ++i)
          if (const int64_t l = k - w_ + 1 + i; l >= 0 && mask.data()[b * S + l] != 0.0f)
            valid.data()[(b * S + k) * w_ + i] = 1.0f;
    Var spread = mul(softmax(chunks, valid), reshape(alpha, Shape{B * S, 1}));  // alpha_k x chunk k's weights
    return matmul(reshape(spread, Shape{B, S * w_}), g, /*trans_a=*/false, /*trans_b=*/true);  // [B,S]
  }

  AttentionResult hard_step(const Var& p, const Var& u, const AttentionMemory& m, AttentionState& st) const {
    const int64_t B = p.size(0), S = p.size(1);
    const std::vector<int> end = advance_monotonic_pointers(p.value(), m.lengths, st.ints(kPointer));
    Tensor w(Shape{B, 1, S});
    for (int64_t b = 0; b < B; ++b) {
      const int j = end[b];
      if (j < 0) continue;  // past the end: no attention
      const int lo = std::max(0, j - w_ + 1);
      const float* ub = u.value().data() + b * S;
      const float top = *std::max_element(ub + lo, ub + j + 1);
      float total = 0.0f;
      for (int s = lo; s <= j; ++s) total += w.data()[b * S + s] = std::exp(ub[s] - top);
      for (int s = lo; s <= j; ++s) w.data()[b * S + s] /= total;
    }
    Var wv(w);
    return {bmm(wv, m.scorer.values), wv};
  }

  SoftAttention chunk_;  // the chunk energies' score
  int w_;                // chunk width
  Var r_;                // the monotonic head's energy offset r
};

}  // namespace

void register_mechanism_mocha(MechanismRegistry& r) {
  r.add(
      {.rank = 10,
       .name = "mocha",
       .summary = "a monotonic head picks an endpoint, soft attention over the chunk of w positions ending there",
       .paper = "Chiu & Raffel 2018 (monotonic chunkwise attention)",
       .options = {{.key = "chunk",
                    .type = MechanismOption::Type::kInt,
                    .default_value = 4,
                    .min = 1,
                    .max = 1024,
                    .help = "w, the width of the chunk that ends at the chosen position"}},
       .arrays = {{"r", "mocha.r", "[1]", {""}},
                  {"cW", "chunk.W", "[Dq, Dk] (general score)", {"", ""}},
                  {"cWq", "chunk.Wq", "[Dq, A] (additive score)", {"", "attention_dim"}},
                  {"cWk", "chunk.Wk", "[Dk, A]", {"", "attention_dim"}},
                  {"cva", "chunk.va", "[A]", {"attention_dim"}}},
       .make = [](const AttentionConfig& c, int q, int k, Rng& rng) { return std::make_shared<Mocha>(c, q, k, rng); }});
}

}  // namespace attend
