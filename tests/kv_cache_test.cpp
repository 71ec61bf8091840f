// The KV cache and the one-query decode kernel: the same result as full attention over what
// the cache holds, step by step the same as causal attention over the whole sequence.
#include <gtest/gtest.h>

#include <cmath>

#include "../src/kernels/parallel.h"
#include "attend/ops/kv_cache.h"
#include "attend/ops/shape.h"
#include "gradcheck.h"

namespace attend {
namespace {

Tensor random_tensor(const Shape& s, Rng& rng) { return testing::random_var(s, rng, 1.0f, false).value(); }

double max_diff(const Tensor& a, const Tensor& b) {
  double worst = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::fabs(double(a.data()[i]) - b.data()[i]));
  return worst;
}

TEST(KvCache, DecodeEqualsFullAttentionOverTheCacheWithEveryOption) {
  Rng rng(4);
  const int B = 3, H = 8, Hkv = 2, D = 64, cap = 3000;
  KvCache cache(B, Hkv, cap, D);
  // Different lengths through partial appends: 2500, 1 and 1700 positions.
  cache.append(random_tensor({B, Hkv, 1700, D}, rng), random_tensor({B, Hkv, 1700, D}, rng), {1700, 1, 1700});
  cache.append(random_tensor({B, Hkv, 800, D}, rng), random_tensor({B, Hkv, 800, D}, rng), {800, 0, 0});
  ASSERT_EQ(cache.lengths(), (std::vector<int>{2500, 1, 1700}));
  const Tensor q = random_tensor({B, H, 1, D}, rng);
  for (int variant = 0; variant < 6; ++variant) {
    SdpaOptions o;
    if (variant == 1) o.window_left = 300;
    if (variant == 2) o.softcap = 3.0f, o.scale = 0.2f;
    if (variant == 3) o.alibi_slopes = {0.5f, 0.25f, 0.1f, 0.05f, 0.02f, 0.01f, 0.005f, 0.001f};
    Tensor bias;  // a score per slot: per sequence and head, then one row for all
    if (variant == 4) bias = random_tensor({B, H, 1, cap}, rng);
    if (variant == 5) bias = random_tensor({1, 1, 1, cap}, rng), o.window_left = 300;
    SdpaOptions full = o;
    full.key_lengths = cache.lengths(), full.causal = true, full.bottom_right = true, full.path = SdpaPath::kReference;
    const SdpaResult expect = sdpa_forward(q, cache.keys(), cache.values(), full, bias);
    for (int threads : {1, 2}) {
      kernels::set_num_threads(threads);
      Tensor lse;
      const Tensor got = sdpa_decode(q, cache, o, bias, &lse);
      EXPECT_LE(max_diff(got, expect.out), 2e-5) << "variant " << variant << ", " << threads << " threads";
      EXPECT_LE(max_diff(lse, expect.lse), 2e-5) << "variant " << variant;
    }
    kernels::set_num_threads(1);
  }
  EXPECT_THROW(sdpa_decode(q, cache, {}, random_tensor({B, H, 2, cap}, rng)), std::invalid_argument);
  EXPECT_THROW(sdpa_decode(q, cache, {}, random_tensor({B, H, 1, cap - 1}, rng)), std::invalid_argument);
}

TEST(KvCache, StepByStepDecodingEqualsCausalAttentionOverTheSequence) {
  Rng rng(6);
  const int B = 2, H = 4, Hkv = 4, T = 40, D = 32;
  const Tensor q = random_tensor({B, H, T, D}, rng), k = random_tensor({B, Hkv, T, D}, rng),
               v = random_tensor({B, Hkv, T, D}, rng);
  SdpaOptions o;
  o.causal = true;
  const SdpaResult full = sdpa_forward(q, k, v, o);
  KvCache cache(B, Hkv, T, D);
  for (int t = 0; t < T; ++t) {
    cache.append(slice(Var(k), 2, t, 1).value(), slice(Var(v), 2, t, 1).value());
    const Tensor step = sdpa_decode(slice(Var(q), 2, t, 1).value(), cache);
    const Tensor expect = slice(Var(full.out), 2, t, 1).value();
    ASSERT_LE(max_diff(step, expect), 1e-5) << "step " << t;
  }
}

TEST(KvCache, ReorderFollowsBeamsAndCapacityIsAClearError) {
  Rng rng(9);
  KvCache cache(3, 1, 4, 2);
  cache.append(Tensor::from({3, 1, 2, 2}, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}),
               Tensor::from({3, 1, 2, 2}, std::vector<float>(12, 5.0f)), {2, 1, 0});
  cache.reorder({1, 1, 0});
  EXPECT_EQ(cache.lengths(), (std::vector<int>{1, 1, 2}));
  EXPECT_EQ(cache.keys().data()[0], 1.0f);
  EXPECT_EQ(cache.keys().data()[2 * 4 * 2], 0.0f);
  try {
    cache.append(random_tensor({3, 1, 3, 2}, rng), random_tensor({3, 1, 3, 2}, rng));
    ADD_FAILURE() << "appended past the capacity";
  } catch (const std::length_error& e) {
    EXPECT_NE(std::string(e.what()).find("sequence 2 would hold 5 positions, capacity is 4"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(cache.reorder({0, 3, 1}), std::invalid_argument);
  EXPECT_THROW(cache.reorder({}), std::invalid_argument);
  cache.reorder({2});  // dropping finished sequences: a smaller batch
  EXPECT_EQ(cache.batch(), 1);
  EXPECT_EQ(cache.lengths(), (std::vector<int>{2}));
  EXPECT_EQ(cache.keys().data()[0], 0.0f);
  EXPECT_EQ(cache.keys().data()[2], 0.0f);
  EXPECT_EQ(cache.values().data()[0], 5.0f);
  EXPECT_THROW(cache.append(random_tensor({3, 2, 1, 2}, rng), random_tensor({3, 2, 1, 2}, rng)), std::invalid_argument);
}

// Dropping finished sequences compacts the cache in place; beams copy into new storage. Either
// way, what the kept sequences attend to afterwards equals a cache that only ever held them.
TEST(KvCache, DroppingAndReorderingEqualACacheBuiltFromTheKeptSequences) {
  Rng rng(4);
  const int B = 5, H = 2, cap = 8, D = 4;
  std::vector<Tensor> ks, vs;
  for (int t = 0; t < 3; ++t) {
    ks.push_back(random_tensor({B, H, 1, D}, rng));
    vs.push_back(random_tensor({B, H, 1, D}, rng));
  }
  for (const std::vector<int>& from : {std::vector<int>{1, 3, 4}, std::vector<int>{4, 0, 0, 2}}) {
    KvCache full(B, H, cap, D), kept(static_cast<int>(from.size()), H, cap, D);
    for (int t = 0; t < 3; ++t) {
      full.append(ks[t], vs[t], {1, 1, t < 2 ? 1 : 0, 1, 1});  // sequence 2 stops early
      kept.append(gather_rows(ks[t], from), gather_rows(vs[t], from), [&] {
        std::vector<int> c;
        for (int f : from) c.push_back(f == 2 && t == 2 ? 0 : 1);
        return c;
      }());
    }
    full.reorder(from);
    ASSERT_EQ(full.lengths(), kept.lengths());
    const Tensor k = random_tensor({static_cast<int64_t>(from.size()), H, 1, D}, rng);
    full.append(k, k);
    kept.append(k, k);
    const Tensor q = random_tensor({static_cast<int64_t>(from.size()), H, 1, D}, rng);
    EXPECT_EQ(max_diff(sdpa_decode(q, full), sdpa_decode(q, kept)), 0.0);
  }
}

}  // namespace
}  // namespace attend
