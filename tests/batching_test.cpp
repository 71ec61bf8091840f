// Token batching and gradient accumulation: every example once per epoch, no batch over its
// budget, and K accumulated batches giving the gradient of one batch of all their tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "attend/autograd/variable.h"
#include "attend/data/batch.h"
#include "attend/models/seq2seq.h"
#include "attend/ops/elementwise.h"
#include "attend/random.h"

namespace attend {
namespace {

std::vector<EncodedExample> examples(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<EncodedExample> ex(n);
  for (auto& e : ex) {
    for (int k = 1 + int(rng.below(12)); k > 0; --k) e.src.push_back(4 + int(rng.below(4)));
    for (int k = 1 + int(rng.below(20)); k > 0; --k) e.tgt.push_back(4 + int(rng.below(3)));
  }
  return ex;
}

TEST(TokenBatches, EveryExampleOnceAndNoBatchOverItsBudget) {
  const std::vector<EncodedExample> ex = examples(500, 1);
  for (int64_t budget : {21, 64, 300, 5000}) {
    Rng rng(3);
    const auto batches = make_token_batches(ex, budget, &rng);
    std::multiset<int> seen;
    for (const auto& b : batches) {
      ASSERT_FALSE(b.empty());
      int64_t longest = 0;
      for (int i : b) longest = std::max<int64_t>(longest, int64_t(ex[i].tgt.size()) + 1), seen.insert(i);
      EXPECT_LE(longest * int64_t(b.size()), budget) << "budget " << budget;
      EXPECT_EQ(make_batch(ex, b).T * int64_t(b.size()), longest * int64_t(b.size()));
    }
    ASSERT_EQ(seen.size(), ex.size());
    for (int i = 0; i < int(ex.size()); ++i) ASSERT_EQ(seen.count(i), 1u) << "example " << i;
    Rng again(3);
    EXPECT_EQ(make_token_batches(ex, budget, &again), batches) << "the same seed, the same batches";
  }
  EXPECT_THROW(make_token_batches(ex, 20, nullptr), std::invalid_argument) << "a 21-token example in a 20 budget";
  EXPECT_THROW(make_token_batches(ex, 0, nullptr), std::invalid_argument);
}

// Gradients of every parameter after `run`.
template <class F>
std::vector<std::vector<float>> gradients(Seq2Seq& model, F run) {
  for (auto& p : model.parameters())
    if (p.var.grad().defined()) p.var.grad_ref().fill(0.0f);
  run();
  std::vector<std::vector<float>> g;
  for (const auto& p : model.parameters()) {
    const Tensor& t = p.var.grad();
    g.emplace_back(t.defined() ? std::vector<float>(t.data(), t.data() + t.numel()) : std::vector<float>());
  }
  return g;
}

TEST(Accumulation, TwoWeightedBatchesGiveTheGradientOfTheirUnion) {
  Seq2SeqConfig c;
  c.embedding = 6, c.hidden = 8, c.encoder_hidden = 5, c.attention.attention_dim = 4, c.dropout = 0.0f;
  c.src_vocab = 8, c.tgt_vocab = 7;
  Rng rng(5);
  Seq2Seq model(c, rng);
  const std::vector<EncodedExample> ex = examples(10, 2);
  const Batch a = make_batch(ex, {0, 1, 2}), b = make_batch(ex, {3, 4, 5, 6, 7, 8, 9});
  const Batch all = make_batch(ex, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  const float total = float(a.target_tokens() + b.target_tokens());
  const auto want = gradients(model, [&] {
    Tape tape;
    TapeScope scope(tape);
    Var loss = model.loss(all, 0.1f, nullptr);
    tape.backward(loss);
  });
  const auto got = gradients(model, [&] {
    for (const Batch* part : {&a, &b}) {
      Tape tape;
      TapeScope scope(tape);
      Var loss = scale(model.loss(*part, 0.1f, nullptr), float(part->target_tokens()) / total);
      tape.backward(loss);
    }
  });
  ASSERT_EQ(got.size(), want.size());
  for (size_t p = 0; p < got.size(); ++p)
    for (size_t i = 0; i < got[p].size(); ++i)
      ASSERT_NEAR(got[p][i], want[p][i], 2e-5f * (1.0f + std::fabs(want[p][i])))
          << "parameter " << p << " [" << i << "]";
}

}  // namespace
}  // namespace attend
