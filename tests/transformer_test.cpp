// The Transformer's layers: finite differences through every parameter (pre-LN and post-LN),
// causality of the decoder's self-attention, and padding that changes nothing it should not.
#include <gtest/gtest.h>

#include "attend/models/transformer.h"
#include "attend/nn/transformer_layers.h"
#include "attend/train/optimizer.h"
#include "attend/ops/shape.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::gradcheck;
using testing::random_var;

std::vector<Var> with_params(const Module& m, std::vector<Var> inputs) {
  for (const auto& p : m.parameters()) inputs.push_back(p.var);
  return inputs;
}

TEST(TransformerLayers, MultiHeadAttentionGradients) {
  Rng rng(1);
  MultiHeadAttention mha(8, 2, rng);
  SdpaOptions o;
  o.key_lengths = {4, 2};
  gradcheck([&](const std::vector<Var>& x) { return mha(x[0], x[1], o); },
            with_params(mha, {random_var({2, 3, 8}, rng), random_var({2, 4, 8}, rng)}), {.eps = 1e-2f});
  EXPECT_THROW(MultiHeadAttention(10, 4, rng), std::invalid_argument);
}

// eps 1e-3: a step of 1e-2 crosses kinks of the feed-forward ReLU and the difference quotient
// is then no derivative at all.
TEST(TransformerLayers, EncoderAndDecoderLayerGradientsPreAndPostNorm) {
  for (bool pre : {true, false}) {
    SCOPED_TRACE(pre ? "pre-LN" : "post-LN");
    Rng rng(2);
    TransformerEncoderLayer enc(8, 2, 12, {.pre_norm = pre, .dropout = 0.0f}, rng);
    gradcheck([&](const std::vector<Var>& x) { return enc(x[0], {3, 2}, nullptr); },
              with_params(enc, {random_var({2, 3, 8}, rng)}), {.eps = 1e-3f, .atol = 3e-3f, .rtol = 3e-2f});
    TransformerDecoderLayer dec(8, 2, 12, {.pre_norm = pre, .dropout = 0.0f}, rng);
    gradcheck([&](const std::vector<Var>& x) { return dec(x[0], x[1], {4, 1}, nullptr); },
              with_params(dec, {random_var({2, 3, 8}, rng), random_var({2, 4, 8}, rng)}),
              {.eps = 1e-3f, .atol = 3e-3f, .rtol = 3e-2f});
  }
}

TEST(TransformerLayers, DecoderIsCausalAndPaddingIsIgnored) {
  Rng rng(3);
  TransformerDecoderLayer dec(16, 4, 32, {}, rng);
  TransformerEncoderLayer enc(16, 4, 32, {}, rng);
  Var y = random_var({1, 6, 16}, rng, 1, false), mem = random_var({1, 5, 16}, rng, 1, false);
  const Tensor out = dec(y, mem, {5}, nullptr).value();
  // Changing target positions 4 and 5 leaves outputs 0..3 as they were.
  Tensor y2 = y.value().clone();
  for (int i = 4 * 16; i < 6 * 16; ++i) y2.data()[i] += 3.0f;
  const Tensor out2 = dec(Var(y2), mem, {5}, nullptr).value();
  for (int i = 0; i < 4 * 16; ++i) ASSERT_EQ(out.data()[i], out2.data()[i]) << i;
  EXPECT_NE(out.data()[5 * 16], out2.data()[5 * 16]);
  // Source positions beyond the length do not matter, to the encoder or the decoder.
  Tensor m2 = mem.value().clone();
  for (int i = 3 * 16; i < 5 * 16; ++i) m2.data()[i] = 100.0f;
  const Tensor a = dec(y, mem, {3}, nullptr).value(), b = dec(y, Var(m2), {3}, nullptr).value();
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data()[i], b.data()[i]);
  const Tensor e1 = enc(mem, {3}, nullptr).value(), e2 = enc(Var(m2), {3}, nullptr).value();
  for (int i = 0; i < 3 * 16; ++i) ASSERT_EQ(e1.data()[i], e2.data()[i]);
}

TEST(TransformerLayers, SinusoidalPositions) {
  const Tensor pe = sinusoidal_positions(50, 8);
  EXPECT_FLOAT_EQ(pe.data()[0], 0.0f);                        // sin(0)
  EXPECT_FLOAT_EQ(pe.data()[1], 1.0f);                        // cos(0)
  EXPECT_NEAR(pe.data()[7 * 8 + 2], std::sin(7 / 10.0), 1e-6);  // i = 2: 10000^(2/8) = 10
  EXPECT_NEAR(pe.data()[7 * 8 + 3], std::cos(7 / 10.0), 1e-6);
}

// Reversal of random strings over tokens 4..4+K-1: a task that needs attention.
std::vector<EncodedExample> reversal(int n, int K, Rng& rng) {
  std::vector<EncodedExample> ex(n);
  for (auto& e : ex) {
    const int len = 3 + static_cast<int>(rng.below(4));
    for (int i = 0; i < len; ++i) e.src.push_back(4 + static_cast<int>(rng.below(K)));
    e.tgt.assign(e.src.rbegin(), e.src.rend());
  }
  return ex;
}

TransformerConfig tiny(bool pre_norm, bool tie) {
  TransformerConfig c;
  c.dim = 8, c.heads = 2, c.ffn = 12, c.encoder_layers = 1, c.decoder_layers = 1, c.dropout = 0.0f;
  c.pre_norm = pre_norm, c.tie_embeddings = tie, c.max_length = 16, c.src_vocab = c.tgt_vocab = 9;
  return c;
}

// Fixed data (lengths 3, 4, 5): with random tokens some ReLU input of the feed-forward layers
// can sit within the finite-difference step of its kink, and the difference quotient is then
// no derivative (seen with post-LN: 0.016 against 0.021 at eps 1e-3 and 3e-3, gone at 3e-4).
TEST(TransformerModel, LossGradientsThroughEveryParameter) {
  std::vector<EncodedExample> ex(3);
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 3 + i; ++k) ex[i].src.push_back(4 + (i + k) % 5);
    ex[i].tgt.assign(ex[i].src.rbegin(), ex[i].src.rend());
  }
  const Batch batch = make_batch(ex, {0, 1, 2});
  for (int variant = 0; variant < 4; ++variant) {
    const bool pre = variant % 2 == 0, tie = variant >= 2;
    SCOPED_TRACE(std::string(pre ? "pre-LN" : "post-LN") + (tie ? ", tied embeddings" : ""));
    Rng rng(11);
    Transformer model(tiny(pre, tie), rng);
    std::vector<Var> params;
    for (const auto& p : model.parameters()) params.push_back(p.var);
    gradcheck([&](const std::vector<Var>&) { return model.loss(batch, 0.1f, nullptr); }, params,
              {.eps = 1e-3f, .atol = 3e-3f, .rtol = 3e-2f});
  }
}

// Acceptance of the Transformer issue: decoding with the KV cache gives the same outputs as
// rerunning the decoder over the whole prefix.
TEST(TransformerModel, KvCacheDecodingEqualsDecodingWithoutIt) {
  for (bool pre : {true, false}) {
    SCOPED_TRACE(pre ? "pre-LN" : "post-LN");
    Rng rng(12);
    TransformerConfig c = tiny(pre, false);
    c.dim = 16, c.heads = 4, c.encoder_layers = 2, c.decoder_layers = 2, c.max_length = 32;
    Transformer model(c, rng);
    std::vector<EncodedExample> ex = reversal(4, 5, rng);
    const Batch batch = make_batch(ex, {0, 1, 2, 3});
    const auto cached = model.greedy(batch, 12, true), plain = model.greedy(batch, 12, false);
    // Cross-attention weights of every step, layer and head: a distribution over the source.
    ASSERT_EQ(cached.cross_attention.size(), cached.step_logits[0].size());
    for (const Tensor& w : cached.cross_attention) {
      ASSERT_EQ(w.shape(), (Shape{2, batch.B, 4, batch.S}));
      for (int l = 0; l < 2; ++l)
        for (int b = 0; b < batch.B; ++b)
          for (int h = 0; h < 4; ++h) {
            const float* row = w.data() + ((int64_t(l) * batch.B + b) * 4 + h) * batch.S;
            double total = 0;
            for (int s = 0; s < batch.S; ++s) {
              total += row[s];
              if (s >= batch.src_lengths[b]) {
                EXPECT_EQ(row[s], 0.0f);
              }
            }
            EXPECT_NEAR(total, 1.0, 1e-5);
          }
    }
    for (int b = 0; b < batch.B; ++b) {
      EXPECT_EQ(cached.tokens[b], plain.tokens[b]) << "row " << b;
      ASSERT_EQ(cached.step_logits[b].size(), plain.step_logits[b].size());
      for (size_t t = 0; t < cached.step_logits[b].size(); ++t)
        for (size_t v = 0; v < cached.step_logits[b][t].size(); ++v)
          ASSERT_NEAR(cached.step_logits[b][t][v], plain.step_logits[b][t][v], 2e-5) << "row " << b << " step " << t;
    }
  }
}

TEST(TransformerModel, LearnsToReverseStrings) {
  Rng rng(13);
  TransformerConfig c = tiny(true, true);
  c.dim = 32, c.heads = 4, c.ffn = 64, c.encoder_layers = 2, c.decoder_layers = 2, c.max_length = 16;
  Transformer model(c, rng);
  const std::vector<EncodedExample> train = reversal(2000, 5, rng), test = reversal(100, 5, rng);
  Adam adam(model.parameters(), {.lr = 3e-3f});
  for (int epoch = 0; epoch < 12; ++epoch)
    for (const auto& idx : make_batches(train, 32, &rng)) {
      const Batch batch = make_batch(train, idx);
      Tape tape;
      {
        TapeScope scope(tape);
        Var l = model.loss(batch, 0.0f, &rng);
        tape.backward(l);
      }
      adam.step(3e-3f);
      adam.zero_grad();
    }
  std::vector<int> all(test.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  const auto out = model.greedy(make_batch(test, all), 10);
  int right = 0;
  for (size_t i = 0; i < test.size(); ++i) right += out.tokens[i] == test[i].tgt;
  EXPECT_GE(right, 90) << "exact match on 100 held-out reversals";
  // Beam search over the caches: beam 1 is greedy, and a wider beam is as accurate here.
  const auto b1 = model.beam_search(make_batch(test, all), 1, 1.0f, 10);
  const auto b4 = model.beam_search(make_batch(test, all), 4, 1.0f, 10);
  int right4 = 0;
  for (size_t i = 0; i < test.size(); ++i) {
    EXPECT_EQ(b1.tokens[i], out.tokens[i]) << i;
    right4 += b4.tokens[i] == test[i].tgt;
  }
  EXPECT_GE(right4, right - 2);
}

// A wider beam never finds a worse (length-normalised) score than greedy on the same model.
TEST(TransformerModel, BeamSearchNeverScoresBelowGreedy) {
  Rng rng(14);
  TransformerConfig c = tiny(true, false);
  c.dim = 16, c.heads = 2, c.max_length = 16;
  Transformer model(c, rng);
  std::vector<EncodedExample> ex = reversal(5, 5, rng);
  const Batch batch = make_batch(ex, {0, 1, 2, 3, 4});
  const auto g = model.greedy(batch, 8);
  const auto b1 = model.beam_search(batch, 1, 1.0f, 8), b5 = model.beam_search(batch, 5, 1.0f, 8);
  for (int b = 0; b < batch.B; ++b) {
    EXPECT_EQ(b1.tokens[b], g.tokens[b]) << b;
    EXPECT_GE(b5.scores[b], b1.scores[b] - 1e-6) << b;
    // The reported score is the model's own: log p of the tokens and </s> under teacher forcing,
    // over the length. (A beam whose cache belongs to another beam's history fails here.)
    const int V = c.tgt_vocab;
    auto log_softmax_at = [&](const float* row, int y) {
      double se = 0.0;
      const float mx = *std::max_element(row, row + V);
      for (int v = 0; v < V; ++v) se += std::exp(double(row[v]) - mx);
      return row[y] - mx - std::log(se);
    };
    double logp = 0.0;
    int length = 1;
    if (b5.tokens[b].empty()) {  // just </s>: the first step's distribution
      logp = log_softmax_at(g.step_logits[b][0].data(), Vocab::kEos);
    } else {
      EncodedExample e{ex[batch.index[b]].src, b5.tokens[b]};
      const Batch one = make_batch({e}, {0});
      const Tensor z = model.logits(one, nullptr).value();  // [T, V]
      // A hypothesis cut at the length limit (8) has no </s> to score.
      length = static_cast<int>(b5.tokens[b].size()) == 8 ? one.T - 1 : one.T;
      for (int t = 0; t < length; ++t) logp += log_softmax_at(z.data() + int64_t(t) * V, one.tgt_out[t]);
    }
    EXPECT_NEAR(b5.scores[b], logp / length, 1e-4) << "row " << b;
  }
}

}  // namespace
}  // namespace attend
