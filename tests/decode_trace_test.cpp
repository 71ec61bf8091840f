// What decoding records beside the weights (Hypothesis::trace): local-p's predicted centre and
// local-m's window centre, one value per output step, reordered with the weights by beam search
// (each row's weights lie in the window around its own centre), and nothing for the others.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "attend/data/batch.h"
#include "attend/decode/search.h"
#include "attend/models/seq2seq.h"
#include "attend/random.h"

namespace attend {
namespace {

std::unique_ptr<Seq2Seq> model_with(const std::string& mechanism, int window) {
  Seq2SeqConfig c;
  c.embedding = 6, c.hidden = 8, c.encoder_hidden = 5, c.attention.attention_dim = 4, c.dropout = 0.0f;
  c.src_vocab = 8, c.tgt_vocab = 9;
  c.attention.mechanism = mechanism;
  if (window >= 0) c.attention.options["window"] = window;
  Rng rng(11);
  auto model = std::make_unique<Seq2Seq>(c, rng);
  for (auto& p : model->parameters())  // every weight matters (biases start at zero)
    for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = 2.0f * rng.uniform() - 1.0f;
  return model;
}

// Every weight of row t lies within the window around the row's own centre.
void expect_weights_in_their_windows(const Hypothesis& h, int n, int D, const std::string& where) {
  ASSERT_EQ(h.trace.size(), h.attention.size()) << where;
  for (size_t t = 0; t < h.trace.size(); ++t) {
    ASSERT_EQ(h.trace[t].size(), 1u) << where;
    const float c = h.trace[t][0];
    EXPECT_GE(c, 0.0f) << where;
    EXPECT_LE(c, float(n - 1)) << where;
    for (int s = 0; s < n; ++s) {
      if (h.attention[t][s] > 0.0f) {
        EXPECT_TRUE(s >= std::floor(c) - D && s <= std::ceil(c) + D)
            << where << ": step " << t << " attends to " << s << " outside the window around " << c;
      }
    }
  }
}

TEST(DecodeTrace, LocalPRecordsItsCentreWithEveryRowGreedyAndBeam) {
  const auto model = model_with("local-p", 1);
  EXPECT_EQ(model->trace_names(), std::vector<std::string>{"predicted centre p_t"});
  const std::vector<EncodedExample> ex = {{{4, 5, 6, 7, 4, 5, 6}, {}}, {{6, 4, 5, 7}, {}}};
  const Batch batch = make_batch(ex, {0, 1});
  size_t rows = 0;
  for (int beam : {1, 4}) {
    DecodeOptions o;
    o.beam = beam, o.max_length = 9;
    const auto hyps = decode(*model, batch, o);
    for (int b = 0; b < 2; ++b) {
      expect_weights_in_their_windows(hyps[b], static_cast<int>(ex[b].src.size()), 1,
                                      "beam " + std::to_string(beam) + " source " + std::to_string(b));
      rows += hyps[b].trace.size();
    }
  }
  EXPECT_GT(rows, 8u);  // the checks above saw real rows
}

TEST(DecodeTrace, LocalMRecordsRateTimesStep) {
  const auto model = model_with("local-m", 2);
  const std::vector<EncodedExample> ex = {{{4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7}, {}}};
  DecodeOptions o;
  o.max_length = 6;
  const Hypothesis h = decode(*model, make_batch(ex, {0}), o)[0];
  ASSERT_FALSE(h.trace.empty());
  for (size_t t = 0; t < h.trace.size(); ++t) EXPECT_EQ(h.trace[t][0], float(t)) << t;  // rate 1
  expect_weights_in_their_windows(h, 12, 2, "local-m");
}

TEST(DecodeTrace, MechanismsWithoutOneRecordNothing) {
  for (const char* mechanism : {"soft", "monotonic", "coverage"}) {
    const auto model = model_with(mechanism, -1);
    EXPECT_TRUE(model->trace_names().empty()) << mechanism;
    for (int beam : {1, 3}) {
      DecodeOptions o;
      o.beam = beam, o.max_length = 5;
      const Hypothesis h = decode(*model, make_batch({{{4, 5, 6}, {}}}, {0}), o)[0];
      EXPECT_TRUE(h.trace.empty()) << mechanism << " beam " << beam;
      EXPECT_FALSE(h.attention.empty()) << mechanism;
    }
  }
}

}  // namespace
}  // namespace attend
