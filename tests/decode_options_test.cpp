// The search's options for translation: n-best lists (ordered, each with the log-probability
// teacher forcing gives its tokens), GNMT length normalisation and coverage penalty against
// hand-computed values, and output lengths bounded per source by --max-length-ratio.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "attend/autograd/variable.h"
#include "attend/data/batch.h"
#include "attend/data/vocab.h"
#include "attend/decode/search.h"
#include "attend/models/seq2seq.h"
#include "attend/random.h"

namespace attend {
namespace {

// eos_bias: added to </s>'s output bias (> 0: outputs end early; very negative: never).
std::unique_ptr<Seq2Seq> random_model(int tgt_vocab, float eos_bias = 1.0f) {
  Seq2SeqConfig c;
  c.embedding = 6, c.hidden = 8, c.encoder_hidden = 5, c.attention.attention_dim = 4, c.dropout = 0.0f;
  c.src_vocab = 8, c.tgt_vocab = tgt_vocab;
  Rng rng(7);
  auto model = std::make_unique<Seq2Seq>(c, rng);
  for (auto& p : model->parameters()) {  // biases start at zero: make every weight matter
    for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = 1.4f * rng.uniform() - 0.7f;
    if (p.name == "output.bias") p.var.value().data()[Vocab::kEos] += eos_bias;
  }
  return model;
}

// log p(tokens, </s> | source) by teacher forcing.
double teacher_forced_log_prob(const Model& model, const std::vector<int>& src, const std::vector<int>& tokens) {
  NoGradScope no_grad;
  const Batch batch = make_batch({{src, tokens}}, {0});
  const Tensor logits = model.logits(batch, nullptr).value();  // [T, V]
  const int64_t V = logits.size(1);
  double total = 0.0;
  for (int t = 0; t < batch.T; ++t) {
    const float* row = logits.data() + t * V;
    double m = row[0], z = 0.0;
    for (int64_t v = 0; v < V; ++v) m = std::max<double>(m, row[v]);
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - m);
    total += row[batch.tgt_out[t]] - m - std::log(z);
  }
  return total;
}

TEST(NBest, OrderedDistinctAndScoredByTeacherForcing) {
  const auto model = random_model(9);
  const std::vector<EncodedExample> ex = {{{4, 5, 6, 7}, {}}, {{6, 4}, {}}};
  const Batch batch = make_batch(ex, {0, 1});
  int checked = 0;
  for (float alpha : {0.0f, 1.0f}) {
    DecodeOptions o;
    o.beam = 6, o.nbest = 4, o.length_penalty = alpha, o.max_length = 7;
    const auto lists = decode_nbest(*model, batch, o);
    const auto best = decode(*model, batch, o);
    ASSERT_EQ(lists.size(), 2u);
    for (size_t b = 0; b < 2; ++b) {
      ASSERT_EQ(lists[b].size(), 4u);
      EXPECT_EQ(lists[b][0].tokens, best[b].tokens) << "the first of the n-best is the 1-best";
      for (size_t i = 0; i < lists[b].size(); ++i) {
        const Hypothesis& h = lists[b][i];
        if (i > 0) {
          EXPECT_GE(lists[b][i - 1].score, h.score) << "row " << b << " rank " << i;
          EXPECT_NE(lists[b][i - 1].tokens, h.tokens);
        }
        // Cut at the limit: no </s> to count; empty: no target for teacher forcing.
        if (static_cast<int>(h.tokens.size()) >= o.max_length || h.tokens.empty()) continue;
        EXPECT_NEAR(h.log_prob, teacher_forced_log_prob(*model, ex[b].src, h.tokens), 1e-4)
            << "row " << b << " rank " << i;
        const float want = alpha == 0.0f ? h.log_prob : h.log_prob / float(h.tokens.size() + 1);
        EXPECT_NEAR(h.score, want, 1e-5);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 6) << "too few hypotheses ended with </s> to check";
  DecodeOptions too_many;
  too_many.beam = 2, too_many.nbest = 3;
  EXPECT_THROW(decode_nbest(*model, batch, too_many), std::invalid_argument);
}

TEST(Penalties, GnmtLengthNormAndCoverageMatchHandValues) {
  const auto model = random_model(9);
  const std::vector<EncodedExample> ex = {{{4, 5, 6}, {}}};
  const Batch batch = make_batch(ex, {0});
  DecodeOptions o;
  o.beam = 4, o.nbest = 4, o.max_length = 6, o.length_penalty = 0.6f;
  o.length_norm = DecodeOptions::LengthNorm::kGnmt, o.coverage_penalty = 0.3f;
  const auto lists = decode_nbest(*model, batch, o);
  ASSERT_EQ(lists[0].size(), 4u);
  int checked = 0;
  for (const Hypothesis& h : lists[0]) {
    if (static_cast<int>(h.tokens.size()) >= o.max_length) continue;  // cut: normalised by its length alone
    ++checked;
    const double len = h.tokens.size() + 1.0, lp = std::pow((5.0 + len) / 6.0, 0.6);
    double cp = 0.0;
    for (size_t s = 0; s < 3; ++s) {
      double received = 0.0;
      for (const auto& row : h.attention) received += row[s];
      cp += std::log(std::min(std::max(received, 1e-6), 1.0));
    }
    EXPECT_NEAR(h.score, h.log_prob / lp + 0.3 * cp, 1e-4);
  }
  EXPECT_GE(checked, 2);
  o.coverage_penalty = -1.0f;
  EXPECT_THROW(decode(*model, batch, o), std::invalid_argument);
  o.coverage_penalty = NAN;
  EXPECT_THROW(decode(*model, batch, o), std::invalid_argument);
}

TEST(MaxLengthRatio, BoundsEachSourceByItsOwnLength) {
  const auto model = random_model(6, -50.0f);  // outputs never end: they run to their limits
  std::vector<EncodedExample> ex = {{{4}, {}}, {{4, 5, 6, 7, 4, 5, 6, 7}, {}}};
  const Batch batch = make_batch(ex, {0, 1});
  for (int beam : {1, 3}) {
    DecodeOptions o;
    o.beam = beam, o.max_length_ratio = 1.5f;
    const auto hyps = decode(*model, batch, o);
    EXPECT_EQ(hyps[0].tokens.size(), 2u) << "ceil(1.5 x 1) tokens, beam " << beam;
    EXPECT_EQ(hyps[1].tokens.size(), 12u) << "ceil(1.5 x 8) tokens, beam " << beam;
    o.max_length = 3;  // both: the smaller
    EXPECT_EQ(decode(*model, batch, o)[1].tokens.size(), 3u);
    EXPECT_EQ(decode(*model, batch, o)[0].tokens.size(), 2u);
  }
  EXPECT_EQ(step_limit(8, {.max_length_ratio = 1.5f}), 12);
  EXPECT_EQ(step_limit(1, {.max_length_ratio = 0.1f}), 1);
  EXPECT_EQ(step_limit(8, {}), 26);
}

}  // namespace
}  // namespace attend
