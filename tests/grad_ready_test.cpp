// Tape::on_grad_ready, which lets data-parallel training start a parameter's exchange while
// backward goes on: every parameter a pass used is reported exactly once, and when it is, its
// gradient is already final (equal to what it is after the whole walk), for a Transformer and
// for an RNN whose thin products defer their weight gradients to the end of the walk.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "attend/data/batch.h"
#include "attend/models/seq2seq.h"
#include "attend/models/transformer.h"
#include "attend/random.h"

namespace attend {
namespace {

std::vector<EncodedExample> examples(int n, Rng& rng) {
  std::vector<EncodedExample> ex(n);
  for (auto& e : ex) {
    const int len = 3 + static_cast<int>(rng.below(4));
    for (int i = 0; i < len; ++i) e.src.push_back(4 + static_cast<int>(rng.below(5)));
    e.tgt.assign(e.src.rbegin(), e.src.rend());
  }
  return ex;
}

// Runs one backward with reports and checks them; returns the parameters in report order.
std::vector<std::string> expect_reports_final(const Model& model, const Batch& batch) {
  const std::vector<NamedParameter> params = model.parameters();
  std::map<const Node*, std::string> names;
  for (const auto& p : params) names[p.var.node()] = p.name;
  std::map<std::string, std::vector<float>> at_report;
  std::vector<std::string> order;
  Tape tape;
  tape.on_grad_ready([&](Node* leaf) {
    ASSERT_TRUE(names.count(leaf)) << "a reported leaf that is no parameter";
    const std::string& name = names[leaf];
    EXPECT_FALSE(at_report.count(name)) << name << " reported twice";
    at_report[name] = leaf->grad_ref().to_vector();
    order.push_back(name);
  });
  {
    TapeScope scope(tape);
    Var loss = model.loss(batch, 0.1f, nullptr);
    tape.backward(loss);
  }
  int reported = 0;
  for (const auto& p : params) {
    if (!at_report.count(p.name)) continue;  // not used by this pass
    ++reported;
    EXPECT_EQ(at_report[p.name], p.var.grad().to_vector()) << p.name << " changed after it was reported";
  }
  EXPECT_GE(reported, static_cast<int>(params.size()) - 2) << "nearly every parameter takes part";
  return order;
}

size_t position(const std::vector<std::string>& order, const std::string& prefix, bool last) {
  size_t at = last ? 0 : order.size();
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i].rfind(prefix, 0) == 0) at = last ? i : std::min(at, i);
  return at;
}

TEST(GradReady, TransformerParametersAreFinalWhenReported) {
  Rng rng(3);
  TransformerConfig c;
  c.dim = 16, c.heads = 2, c.ffn = 32, c.encoder_layers = 2, c.decoder_layers = 2, c.dropout = 0.0f;
  c.max_length = 16, c.src_vocab = c.tgt_vocab = 9;
  Transformer model(c, rng);
  const std::vector<EncodedExample> ex = examples(40, rng);
  std::vector<int> all(ex.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  const std::vector<std::string> order = expect_reports_final(model, make_batch(ex, all));
  // Backward finishes the last layers first: they are reported while the first still run.
  EXPECT_LT(position(order, "decoder.1.", true), position(order, "encoder.0.", false));
}

TEST(GradReady, RnnWithDeferredWeightGradientsIsFinalWhenReported) {
  Rng rng(4);
  Seq2SeqConfig c;
  c.embedding = 8, c.hidden = 12, c.attention.attention_dim = 8, c.dropout = 0.0f, c.src_vocab = c.tgt_vocab = 9;
  Seq2Seq model(c, rng);
  const std::vector<EncodedExample> ex = examples(5, rng);  // 5 rows: thin products, deferred
  expect_reports_final(model, make_batch(ex, {0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace attend
