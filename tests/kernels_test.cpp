// Vectorised math kernels against libm, for every instruction set this CPU has.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/blas.h"
#include "kernels/softmax.h"
#include "kernels/vec_math.h"
#include "attend/cpu.h"
#include "attend/random.h"

namespace attend::kernels {
namespace {

// The functions under test: the dispatched ones with an instruction set pinned, or the reference.
struct VecMathFns {
  void (*exp)(const float*, float*, int64_t);
  void (*tanh)(const float*, float*, int64_t);
  void (*sigmoid)(const float*, float*, int64_t);
  void (*log)(const float*, float*, int64_t);
  void (*logaddexp)(const float*, const float*, float*, int64_t);
  float (*exp_shifted_sum)(const float*, float, float*, int64_t);
  float (*max)(const float*, int64_t);
};
constexpr VecMathFns kDispatched{vexp, vtanh, vsigmoid, vlog, vlogaddexp, vexp_shifted_sum, vmax};
constexpr VecMathFns kReference{reference::vexp, reference::vtanh,      reference::vsigmoid,
                                reference::vlog, reference::vlogaddexp, reference::vexp_shifted_sum,
                                reference::vmax};

// Parameter: "reference" or one of cpu_isas() (every instruction set this CPU runs).
class VecMath : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    previous_ = cpu_isa();
    if (GetParam() != "reference") set_cpu_isa(GetParam());
  }
  void TearDown() override { set_cpu_isa(previous_); }
  const VecMathFns& f = GetParam() == "reference" ? kReference : kDispatched;
  std::string previous_;
};

std::vector<std::string> vec_math_params() {
  std::vector<std::string> p = cpu_isas();
  p.push_back("reference");
  return p;
}

std::vector<float> grid(float lo, float hi, int n) {
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = lo + (hi - lo) * i / (n - 1);
  return x;
}

TEST_P(VecMath, ExpWithinTwoUlp) {
  std::vector<float> x = grid(-87.0f, 88.0f, 100003), y(x.size());  // odd length: exercises the scalar tail
  f.exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(double(x[i]));
    ASSERT_LE(std::fabs(y[i] - want), 2.5 * want * 1.19e-7) << "exp(" << x[i] << ") = " << y[i] << ", want " << want;
  }
}

TEST_P(VecMath, TanhAndSigmoidAccurate) {
  std::vector<float> x = grid(-20.0f, 20.0f, 200001), y(x.size()), z(x.size());
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-7f, 0.1249f, 0.125f, 0.1251f}) x.push_back(v);
  y.resize(x.size()), z.resize(x.size());
  f.tanh(x.data(), y.data(), static_cast<int64_t>(x.size()));
  f.sigmoid(x.data(), z.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double t = std::tanh(double(x[i])), s = 1.0 / (1.0 + std::exp(-double(x[i])));
    ASSERT_LE(std::fabs(y[i] - t), 3e-7 + 1e-6 * std::fabs(t)) << "tanh(" << x[i] << ") = " << y[i] << ", want " << t;
    ASSERT_LE(std::fabs(z[i] - s), 3e-7) << "sigmoid(" << x[i] << ") = " << z[i] << ", want " << s;
  }
  EXPECT_TRUE(std::signbit(y[y.size() - 6])) << "tanh(-0) keeps its sign";
}

TEST_P(VecMath, SpecialValues) {
  const float inf = INFINITY;
  std::vector<float> x = {inf, -inf, NAN, 200.0f, -200.0f, 0.0f, 1.0f, 2.0f, 3.0f}, y(x.size());
  f.exp(x.data(), y.data(), 9);
  EXPECT_GT(y[0], 1e38f);
  EXPECT_EQ(y[1], 0.0f);  // exp(-inf) is exactly 0 (log-domain code relies on it)
  EXPECT_TRUE(std::isnan(y[2]));
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[5], 1.0f);
  f.tanh(x.data(), y.data(), 9);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_TRUE(std::isnan(y[2]));
  f.sigmoid(x.data(), y.data(), 9);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_LT(y[1], 1e-30f);
  EXPECT_TRUE(std::isnan(y[2]));
}

TEST_P(VecMath, LogWithinTwoUlp) {
  std::vector<float> x;
  for (uint32_t bits = 1; bits < 0x7f800000u; bits += 4099) {  // every binade, denormals to FLT_MAX
    float v;
    std::memcpy(&v, &bits, sizeof v);
    x.push_back(v);
  }
  for (float v : grid(0.5f, 2.0f, 40001)) x.push_back(v);  // around 1, where log is small
  std::vector<float> y(x.size());
  f.log(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::log(double(x[i]));
    const double ulp = std::max(std::fabs(want), 1e-30) * 1.19e-7;
    ASSERT_LE(std::fabs(y[i] - want), 2.0 * ulp + 1e-45) << "log(" << x[i] << ") = " << y[i] << ", want " << want;
  }
  const float inf = INFINITY;
  std::vector<float> sx = {0.0f, -0.0f, -1.0f, inf, NAN, 1.0f, 2.0f, 0.5f, -inf}, sy(sx.size());
  f.log(sx.data(), sy.data(), static_cast<int64_t>(sx.size()));
  EXPECT_EQ(sy[0], -inf);
  EXPECT_EQ(sy[1], -inf);
  EXPECT_TRUE(std::isnan(sy[2]));
  EXPECT_EQ(sy[3], inf);
  EXPECT_TRUE(std::isnan(sy[4]));
  EXPECT_EQ(sy[5], 0.0f);
  EXPECT_TRUE(std::isnan(sy[8]));
}

TEST_P(VecMath, LogAddExp) {
  Rng rng(3);
  const float inf = INFINITY;
  std::vector<float> a, b;
  for (int i = 0; i < 50001; ++i)
    a.push_back(20.0f * rng.normal()), b.push_back(i % 7 == 0 ? a.back() : 20.0f * rng.normal());
  for (auto [p, q] : {std::pair{-inf, -inf}, {-inf, 3.0f}, {-2.0f, -inf}, {-100.0f, 0.0f}, {0.0f, 0.0f}})
    a.push_back(p), b.push_back(q);
  std::vector<float> y(a.size());
  f.logaddexp(a.data(), b.data(), y.data(), static_cast<int64_t>(a.size()));
  for (size_t i = 0; i + 5 < a.size(); ++i) {
    const double hi = std::max(a[i], b[i]),
                 want = hi + std::log(std::exp(double(a[i]) - hi) + std::exp(double(b[i]) - hi));
    ASSERT_LE(std::fabs(y[i] - want), 3e-7 + 2.4e-7 * std::fabs(want))
        << "logaddexp(" << a[i] << ", " << b[i] << ") = " << y[i];
  }
  const size_t k = a.size() - 5;
  EXPECT_EQ(y[k], -inf);
  EXPECT_FLOAT_EQ(y[k + 1], 3.0f);
  EXPECT_FLOAT_EQ(y[k + 2], -2.0f);
  EXPECT_FLOAT_EQ(y[k + 3], 0.0f);
  EXPECT_NEAR(y[k + 4], std::log(2.0f), 1e-7);
}

// Every length from 0 to past three AVX-512 vectors: the vector body and the scalar tail meet
// at every offset. Against the reference: the same values up to FMA rounding.
TEST_P(VecMath, ShiftedSumAndMaxAtEveryLength) {
  Rng rng(7);
  for (int64_t n = 0; n <= 50; ++n) {
    std::vector<float> x(n), y(n), want(n);
    for (int64_t i = 0; i < n; ++i) x[i] = i % 5 == 3 ? -INFINITY : 4.0f * rng.normal();
    const float shift = n > 0 ? reference::vmax(x.data(), n) : 0.0f;
    const float sum = f.exp_shifted_sum(x.data(), shift, y.data(), n);
    const float want_sum = reference::vexp_shifted_sum(x.data(), shift, want.data(), n);
    EXPECT_NEAR(sum, want_sum, 1e-6f * (1.0f + want_sum)) << "n = " << n;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(y[i], want[i], 2.4e-7f * want[i]) << "n = " << n << ", i = " << i;
      if (x[i] == -INFINITY) {
        ASSERT_EQ(y[i], 0.0f) << "exp(-inf - shift) is exactly 0";
      }
    }
    EXPECT_EQ(f.max(x.data(), n), n > 0 ? shift : -INFINITY) << "n = " << n;
    for (int64_t i = 0; i < n; ++i) {  // a NaN anywhere, body or tail, is the max
      std::vector<float> z = x;
      z[i] = NAN;
      ASSERT_TRUE(std::isnan(f.max(z.data(), n))) << "NaN at " << i << " of " << n << " vanished";
    }
  }
}

TEST(CpuIsa, TheBestIsChosenAndAnUnknownNameIsRefusedNamingTheChoices) {
  const std::vector<std::string> isas = cpu_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(cpu_isa(), isas.front());
  EXPECT_TRUE(isas.back() == "scalar" || isas.back() == "emu128") << "the portable build is always there";
  set_cpu_isa(isas.back());
  EXPECT_EQ(cpu_isa(), isas.back());
  set_cpu_isa(isas.front());
  try {
    set_cpu_isa("avx1024");
    FAIL() << "an unknown instruction set was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'avx1024'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(isas.front()), std::string::npos) << e.what();
  }
  EXPECT_EQ(cpu_isa(), isas.front());
}

// Every gemm path (column blocks, matrix-vector, oneDNN, plain, and the automatic choice among
// them) against a double-precision loop.
TEST(Gemm, EveryPathMatchesAReferenceProduct) {
  Rng rng(5);
  for (GemmPath path : {GemmPath::kAuto, GemmPath::kPlain, GemmPath::kSmallKernels, GemmPath::kOneDnn})
    for (int M : {1, 3, 8, 40, 130})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          const int N = 700, K = 300;
          std::vector<float> a(M * K), b(K * N), c(M * N);
          for (auto& v : a) v = rng.normal();
          for (auto& v : b) v = rng.normal();
          for (auto& v : c) v = rng.normal();
          std::vector<float> want = c;
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
              double acc = 0.0;
              for (int k = 0; k < K; ++k)
                acc += double(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
              want[i * N + j] = static_cast<float>(0.5 * acc + 2.0 * c[i * N + j]);
            }
          set_gemm_path(path);
          gemm(ta, tb, M, N, K, 0.5f, a.data(), ta ? M : K, b.data(), tb ? K : N, 2.0f, c.data(), N);
          set_gemm_path(GemmPath::kAuto);
          double worst = 0.0;
          for (int i = 0; i < M * N; ++i) worst = std::max(worst, std::fabs(double(c[i]) - want[i]));
          EXPECT_LT(worst, 1e-3) << "path " << int(path) << " M=" << M << " ta=" << ta << " tb=" << tb;
        }
}

// What every path promises beyond the arithmetic: with beta 0, C is written without being read
// (NaN there is not kept); a NaN or an infinity in A reaches its own row of C and no other; K = 0
// gives beta C. oneDNN is tested here against OpenBLAS's answers, the reference.
TEST(Gemm, EveryPathIgnoresCAtBetaZeroAndKeepsNonFiniteInputsInTheirRows) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (GemmPath path : {GemmPath::kAuto, GemmPath::kPlain, GemmPath::kSmallKernels, GemmPath::kOneDnn})
    for (int M : {1, 2, 64}) {
      const int N = 48, K = 32;
      std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N, nan);
      a[0] = M > 1 ? nan : 1.0f;
      if (M > 1) a[K + 3] = inf;
      set_gemm_path(path);
      gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
      std::vector<float> d(M * N, 3.0f);
      gemm(false, false, M, N, 0, 1.0f, a.data(), K, b.data(), N, 0.5f, d.data(), N);
      set_gemm_path(GemmPath::kAuto);
      const std::string where = "path " + std::to_string(int(path)) + " M=" + std::to_string(M);
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          const float v = c[i * N + j];
          if (M > 1 && i == 0) {
            EXPECT_TRUE(std::isnan(v)) << where << " row 0 holds a NaN, got " << v;
          } else if (M > 1 && i == 1) {
            EXPECT_EQ(v, inf) << where << " row 1 holds +inf";
          } else {
            EXPECT_FLOAT_EQ(v, M == 1 ? 0.125f * (K + 1) : 0.125f * K) << where << " row " << i;
          }
          EXPECT_FLOAT_EQ(d[i * N + j], 1.5f) << where << ": K = 0 gives beta C";
        }
    }
}

// softmax_rows' unmasked rows run in vectors (vmax, vexp_shifted_sum, a float sum); a mask of
// ones takes the plain loops (double sum), the reference. Both outputs, at lengths around the
// vector widths and an 8,000-word output, with -inf entries, and the rows the vector path
// leaves to the plain loops (NaN, +inf, all -inf) exactly as those give them.
TEST(Softmax, VectorRowsMatchThePlainLoops) {
  Rng rng(11);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t S : {1, 3, 15, 16, 17, 33, 100, 8000})
    for (bool log_output : {false, true}) {
      const int rows = 5;
      std::vector<float> x(rows * S), ones(S, 1.0f), fast(rows * S), plain(rows * S);
      for (auto& v : x) v = 5.0f * rng.normal();
      if (S > 2) x[1] = -inf;                   // row 0: one impossible position
      x[S] = nan;                               // row 1: NaN
      x[2 * S] = inf;                           // row 2: +inf
      std::fill_n(x.begin() + 3 * S, S, -inf);  // row 3: nothing possible
      softmax_rows(x.data(), nullptr, rows, 1, S, fast.data(), log_output);
      softmax_rows(x.data(), ones.data(), rows, rows, S, plain.data(), log_output);
      for (int64_t i = 0; i < rows * S; ++i) {
        const std::string where = "S=" + std::to_string(S) + (log_output ? " log" : "") + " row " +
                                  std::to_string(i / S) + " position " + std::to_string(i % S);
        if (std::isnan(plain[i]) || std::isinf(plain[i])) {
          EXPECT_TRUE(std::isnan(plain[i]) ? std::isnan(fast[i]) : fast[i] == plain[i]) << where << ": " << fast[i];
        } else {
          EXPECT_NEAR(fast[i], plain[i], log_output ? 2e-5 + 1e-6 * std::fabs(plain[i]) : 1e-6 + 1e-5 * plain[i])
              << where;
        }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Isas, VecMath, ::testing::ValuesIn(vec_math_params()),
                         [](const auto& info) { return info.param; });

TEST(Gemm, AffineAddsTheBiasToEveryRowAndHandlesMissingParts) {
  const int M = 3, N = 5, K = 4;
  std::vector<float> x(M * K), w(K * N), b(N), y(M * N);
  for (int i = 0; i < M * K; ++i) x[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
  for (int i = 0; i < K * N; ++i) w[i] = 0.125f * static_cast<float>(i % 5) - 0.25f;
  for (int j = 0; j < N; ++j) b[j] = static_cast<float>(j) - 2.0f;
  auto expect = [&](bool with_x, bool with_b) {
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double want = with_b ? b[n] : 0.0;
        for (int k = 0; with_x && k < K; ++k) want += double(x[m * K + k]) * w[k * N + n];
        EXPECT_NEAR(y[m * N + n], want, 1e-5)
            << "row " << m << " column " << n << (with_x ? "" : ", no x") << (with_b ? "" : ", no bias");
      }
  };
  affine(M, N, K, x.data(), w.data(), b.data(), y.data());
  expect(true, true);
  std::fill(y.begin(), y.end(), 9.0f);  // without a bias nothing of y's old values remains
  affine(M, N, K, x.data(), w.data(), nullptr, y.data());
  expect(true, false);
  affine(M, N, K, nullptr, w.data(), b.data(), y.data());  // a zero input: the bias alone
  expect(false, true);
  std::fill(y.begin(), y.end(), 9.0f);
  affine(M, N, K, nullptr, w.data(), nullptr, y.data());
  expect(false, false);
}

}  // namespace
}  // namespace attend::kernels
