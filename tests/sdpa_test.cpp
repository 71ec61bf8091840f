// Fused scaled-dot-product attention against its plain reference (the oracle), finite
// differences, and the properties users rely on: masked rows give zeros and no NaN, weights on
// request are the softmax, dropout is reproducible, results do not depend on threads.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>

#include "../src/kernels/flash_attention.h"
#include "../src/kernels/parallel.h"
#include "attend/ops/sdpa.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::gradcheck;
using testing::random_var;

Tensor random_tensor(const Shape& s, Rng& rng, float scale = 1.0f) { return random_var(s, rng, scale, false).value(); }

// max |a - b| / max(max |b|, floor): the error relative to the reference's scale. Gradients
// use floor 5e-2: where the exact gradient is 0 (a row with one allowed key), float rounding in
// dP - rowsum(dO∘O) (terms of size ~sqrt(D)) leaves up to ~2e-6 that is no error of the kernel.
double scaled_error(const Tensor& a, const Tensor& b, int64_t* where = nullptr, double floor = 1e-3) {
  double worst = 0.0, scale = floor;
  for (int64_t i = 0; i < b.numel(); ++i)
    if (std::isfinite(b.data()[i])) scale = std::max(scale, double(std::fabs(b.data()[i])));
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float x = a.data()[i], y = b.data()[i];
    double e;
    if (std::isinf(y) || std::isinf(x))
      e = x == y ? 0.0 : INFINITY;
    else
      e = std::fabs(double(x) - y);
    if (std::isnan(x) || std::isnan(y)) e = INFINITY;
    if (e > worst) {
      worst = e;
      if (where) *where = i;
    }
  }
  return worst / scale;
}

struct Case {
  int B, H, Hkv, T, S, D;
  SdpaOptions opt;
  int bias = 0;               // 0 none, 1 full [B,H,T,S], 2 broadcast [1,H,T,S], 3 broadcast [B,1,T,S] with -inf holes
  std::string name() const {  // (a stream: GCC 12 warns falsely on chains of string +)
    std::ostringstream o;
    o << "B" << B << " H" << H << "/" << Hkv << " T" << T << " S" << S << " D" << D << (opt.causal ? " causal" : "")
      << (opt.bottom_right ? " bottom-right" : "") << " window " << opt.window_left << "," << opt.window_right
      << (opt.key_lengths.empty() ? "" : " lengths") << (opt.alibi_slopes.empty() ? "" : " alibi")
      << (opt.softcap > 0 ? " softcap" : "") << (opt.dropout > 0 ? " dropout" : "") << " bias " << bias;
    return o.str();
  }
};

Tensor make_bias(const Case& c, Rng& rng) {
  if (c.bias == 0) return Tensor();
  const Shape s = c.bias == 1   ? Shape{c.B, c.H, c.T, c.S}
                  : c.bias == 2 ? Shape{1, c.H, c.T, c.S}
                                : Shape{c.B, 1, c.T, c.S};
  Tensor b = random_tensor(s, rng, 0.5f);
  if (c.bias == 3)
    for (int64_t i = 0; i < b.numel(); i += 7) b.data()[i] = -INFINITY;  // an arbitrary mask through the bias
  return b;
}

// Every option, alone and combined, at shapes that are not multiples of the tiles (64 x 256).
std::vector<Case> cases() {
  std::vector<Case> out;
  Rng rng(11);
  const int shapes[][6] = {{1, 1, 1, 1, 1, 8},     {2, 4, 4, 70, 300, 32},  {1, 4, 2, 130, 130, 64},
                           {2, 4, 1, 65, 257, 40}, {1, 2, 2, 300, 40, 128}, {1, 8, 2, 1, 600, 64},
                           {2, 2, 1, 17, 5, 16}};
  int i = 0;
  for (const auto& s : shapes) {
    for (int variant = 0; variant < 8; ++variant, ++i) {
      Case c{s[0], s[1], s[2], s[3], s[4], s[5], {}, 0};
      SdpaOptions& o = c.opt;
      switch (variant) {
        case 0:
          break;
        case 1:
          o.causal = true;
          break;
        case 2:
          o.causal = true, o.bottom_right = true;
          break;
        case 3:
          o.window_left = 9, o.window_right = 3;
          break;
        case 4:
          for (int b = 0; b < c.B; ++b)
            o.key_lengths.push_back(b == 0 ? c.S / 2 : (b == 1 ? 0 : c.S));  // 0: fully masked
          o.causal = i % 2 == 0, o.bottom_right = true;
          break;
        case 5:
          for (int h = 0; h < c.H; ++h) o.alibi_slopes.push_back(std::pow(2.0f, -(h + 1.0f)));
          o.softcap = 5.0f, o.causal = true;
          c.bias = 1;
          break;
        case 6:
          c.bias = 2 + i % 2, o.scale = 0.3f, o.window_left = 50;
          break;
        case 7:
          o.dropout = 0.25f, o.seed = 77, c.bias = 1, o.window_right = 0, o.window_left = 20;
          break;
      }
      out.push_back(c);
    }
  }
  (void)rng;
  return out;
}

TEST(Sdpa, FusedMatchesReferenceForwardBackwardOverEveryOption) {
  Rng rng(21);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name());
    const Tensor q = random_tensor({c.B, c.H, c.T, c.D}, rng), k = random_tensor({c.B, c.Hkv, c.S, c.D}, rng),
                 v = random_tensor({c.B, c.Hkv, c.S, c.D}, rng), dout = random_tensor({c.B, c.H, c.T, c.D}, rng);
    const Tensor bias = make_bias(c, rng);
    SdpaOptions fused = c.opt, ref = c.opt;
    ref.path = SdpaPath::kReference;
    const SdpaResult f = sdpa_forward(q, k, v, fused, bias), r = sdpa_forward(q, k, v, ref, bias);
    int64_t at = 0;
    EXPECT_LE(scaled_error(f.out, r.out, &at), 1e-5)
        << "out[" << at << "] " << f.out.data()[at] << " vs " << r.out.data()[at];
    EXPECT_LE(scaled_error(f.lse, r.lse, &at), 1e-5)
        << "lse[" << at << "] " << f.lse.data()[at] << " vs " << r.lse.data()[at];
    for (int64_t i = 0; i < f.out.numel(); ++i) ASSERT_TRUE(std::isfinite(f.out.data()[i])) << "out[" << i << "]";
    const SdpaGrads gf = sdpa_backward(q, k, v, f, dout, fused, bias), gr = sdpa_backward(q, k, v, r, dout, ref, bias);
    EXPECT_LE(scaled_error(gf.dq, gr.dq, &at, 5e-2), 1e-4)
        << "dq[" << at << "] " << gf.dq.data()[at] << " vs " << gr.dq.data()[at];
    EXPECT_LE(scaled_error(gf.dk, gr.dk, &at, 5e-2), 1e-4)
        << "dk[" << at << "] " << gf.dk.data()[at] << " vs " << gr.dk.data()[at];
    EXPECT_LE(scaled_error(gf.dv, gr.dv, &at, 5e-2), 1e-4)
        << "dv[" << at << "] " << gf.dv.data()[at] << " vs " << gr.dv.data()[at];
    if (bias.defined()) {
      ASSERT_EQ(gf.dbias.shape(), bias.shape());
      EXPECT_LE(scaled_error(gf.dbias, gr.dbias, &at, 5e-2), 1e-4) << "dbias[" << at << "]";
    }
    for (const Tensor* g : {&gf.dq, &gf.dk, &gf.dv})
      for (int64_t i = 0; i < g->numel(); ++i) ASSERT_TRUE(std::isfinite(g->data()[i]));
  }
}

TEST(Sdpa, FullyMaskedRowsAreZerosWithoutNaNOrGradient) {
  Rng rng(3);
  const Tensor q = random_tensor({2, 2, 5, 8}, rng), k = random_tensor({2, 2, 7, 8}, rng),
               v = random_tensor({2, 2, 7, 8}, rng);
  SdpaOptions o;
  o.key_lengths = {0, 7};                                         // sequence 0 has no keys at all
  o.window_left = 0, o.window_right = 0, o.bottom_right = false;  // sequence 1: each query sees key t only (t < 7)
  for (SdpaPath path : {SdpaPath::kFused, SdpaPath::kReference}) {
    o.path = path;
    const SdpaResult r = sdpa_forward(q, k, v, o);
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 5; ++t) {
        EXPECT_EQ(r.lse.data()[h * 5 + t], -INFINITY);
        for (int d = 0; d < 8; ++d) EXPECT_EQ(r.out.data()[(h * 5 + t) * 8 + d], 0.0f);
      }
    const SdpaGrads g = sdpa_backward(q, k, v, r, Tensor::full(q.shape(), 1.0f), o);
    for (int64_t i = 0; i < 2 * 5 * 8; ++i) EXPECT_EQ(g.dq.data()[i], 0.0f);
    // With one allowed key per row, the output is that key's value exactly.
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 5; ++t)
        for (int d = 0; d < 8; ++d)
          EXPECT_NEAR(r.out.data()[(((1 * 2 + h) * 5) + t) * 8 + d], v.data()[(((1 * 2 + h) * 7) + t) * 8 + d], 1e-6);
  }
}

TEST(Sdpa, FiniteDifferenceGradientsThroughEveryInputAndTheBias) {
  Rng rng(5);
  for (int variant = 0; variant < 4; ++variant) {
    SdpaOptions o;
    if (variant == 1) o.causal = true, o.bottom_right = true, o.key_lengths = {4, 6};
    if (variant == 2) o.softcap = 2.0f, o.alibi_slopes = {0.5f, 0.25f}, o.window_left = 2;
    if (variant == 3) o.dropout = 0.3f, o.seed = 9;
    SCOPED_TRACE("variant " + std::to_string(variant));
    Var q = random_var({2, 2, 3, 4}, rng), k = random_var({2, 1, 6, 4}, rng), v = random_var({2, 1, 6, 4}, rng);
    Var bias = random_var({1, 2, 3, 6}, rng, 0.5f);
    gradcheck([&](const std::vector<Var>& in) { return sdpa(in[0], in[1], in[2], o, in[3]); }, {q, k, v, bias},
              {.eps = 1e-2f, .atol = 2e-3f, .rtol = 2e-2f});
  }
}

TEST(Sdpa, WeightsOnRequestAreTheSoftmaxFromTheStoredLse) {
  Rng rng(8);
  const int B = 2, H = 4, Hkv = 2, T = 70, S = 90, D = 16;
  const Tensor q = random_tensor({B, H, T, D}, rng), k = random_tensor({B, Hkv, S, D}, rng),
               v = random_tensor({B, Hkv, S, D}, rng);
  SdpaOptions o;
  o.causal = true, o.bottom_right = true, o.key_lengths = {90, 80};
  const SdpaResult r = sdpa_forward(q, k, v, o);
  const Tensor w = sdpa_weights(q, k, r.lse, o, Tensor(), 1, 3, 10, 40);  // heads 1-2, rows 10-39
  ASSERT_EQ(w.shape(), (Shape{B, 2, 30, S}));
  const float scale = 1.0f / std::sqrt(float(D));
  for (int b = 0; b < B; ++b)
    for (int hh = 0; hh < 2; ++hh)
      for (int tt = 0; tt < 30; ++tt) {
        const int h = 1 + hh, t = 10 + tt, g = h / 2, L = o.key_lengths[b];
        std::vector<double> x(S, -INFINITY);
        double mx = -INFINITY;
        for (int s = 0; s <= t + L - T && s < L; ++s) {
          double dot = 0;
          for (int d = 0; d < D; ++d)
            dot += double(q.data()[((b * H + h) * T + t) * D + d]) * k.data()[((b * Hkv + g) * S + s) * D + d];
          x[s] = dot * scale;
          mx = std::max(mx, x[s]);
        }
        double sum = 0;
        for (int s = 0; s < S; ++s) sum += std::isinf(x[s]) ? 0.0 : std::exp(x[s] - mx);
        for (int s = 0; s < S; ++s) {
          const double expect = std::isinf(x[s]) ? 0.0 : std::exp(x[s] - mx) / sum;
          ASSERT_NEAR(w.data()[((b * 2 + hh) * 30 + tt) * S + s], expect, 2e-6)
              << b << " " << h << " " << t << " " << s;
        }
      }
}

TEST(Sdpa, DropoutIsReproducibleAndThreadsDoNotChangeResults) {
  Rng rng(13);
  const Tensor q = random_tensor({2, 4, 100, 32}, rng), k = random_tensor({2, 4, 300, 32}, rng),
               v = random_tensor({2, 4, 300, 32}, rng);
  SdpaOptions o;
  o.dropout = 0.4f, o.seed = 5;
  const int before = kernels::num_threads();
  kernels::set_num_threads(1);
  const SdpaResult one = sdpa_forward(q, k, v, o);
  const SdpaGrads g1 = sdpa_backward(q, k, v, one, q, o);
  kernels::set_num_threads(2);
  const SdpaResult two = sdpa_forward(q, k, v, o);
  const SdpaGrads g2 = sdpa_backward(q, k, v, two, q, o);
  kernels::set_num_threads(before);
  EXPECT_EQ(one.out.to_vector(), two.out.to_vector());
  EXPECT_EQ(g1.dk.to_vector(), g2.dk.to_vector());
  EXPECT_EQ(g1.dq.to_vector(), g2.dq.to_vector());
  o.seed = 6;
  EXPECT_NE(sdpa_forward(q, k, v, o).out.to_vector(), one.out.to_vector());
  // About 40% of the weights are dropped.
  const SdpaResult base = sdpa_forward(q, k, v, SdpaOptions{});
  (void)base;
  kernels::SdpaProblem p;
  p.B = 2, p.H = 4, p.T = 100, p.S = 300, p.dropout = 0.4f, p.seed = 5;
  int kept = 0;
  for (int t = 0; t < 100; ++t)
    for (int s = 0; s < 300; ++s) kept += kernels::sdpa_keep(p, 1, 2, t, s);
  EXPECT_NEAR(kept / 30000.0, 0.6, 0.01);
}

TEST(Sdpa, BadShapesAndOptionsNameTheValues) {
  Rng rng(1);
  const Tensor q = random_tensor({1, 3, 4, 8}, rng), k = random_tensor({1, 2, 5, 8}, rng);
  auto expect = [](auto f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect([&] { sdpa_forward(q, k, k); }, "3 query heads are not a multiple of 2");
  const Tensor k1 = random_tensor({1, 1, 5, 8}, rng);
  SdpaOptions o;
  o.key_lengths = {6};
  expect([&] { sdpa_forward(q, k1, k1, o); }, "key length 6 outside [0, 5]");
  o = {};
  o.dropout = 1.0f;
  expect([&] { sdpa_forward(q, k1, k1, o); }, "dropout must be in [0, 1), got 1");
  expect([&] { sdpa_forward(q, k1, k1, {}, random_tensor({1, 3, 4, 6}, rng)); }, "got [1, 3, 4, 6]");
  expect([&] { sdpa_forward(q, k1, random_tensor({1, 1, 5, 4}, rng)); }, "differ");
}

}  // namespace
}  // namespace attend
