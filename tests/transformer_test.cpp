// The Transformer's layers: finite differences through every parameter (pre-LN and post-LN),
// causality of the decoder's self-attention, and padding that changes nothing it should not.
#include <gtest/gtest.h>

#include "attend/nn/transformer_layers.h"
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

}  // namespace
}  // namespace attend
