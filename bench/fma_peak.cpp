// The machine's measured fp32 peak on one thread: independent fused multiply-adds in the widest
// vectors this CPU runs (AVX-512, else AVX2 + FMA, chosen at run time), and OpenBLAS's sgemm on
// 1024 x 1024 matrices. bench/sdpa.py prints attention's GFLOP/s as fractions of both.
// Usage: fma_peak   -> {"isa": ..., "fma_gflops": ..., "sgemm_gflops": ...}
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "kernels/blas.h"

namespace {

constexpr int kChains = 12;  // enough independent FMAs to cover the latency on every core we run on
constexpr long kIterations = 20'000'000;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

__attribute__((target("avx512f"))) double fma_avx512() {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_set1_ps(0.0f);
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < kIterations; ++i)
    for (auto& a : acc) a = _mm512_fmadd_ps(a, x, y);
  const double s = seconds_since(t0);
  float lanes[16], sink = 0.0f;  // (not _mm512_reduce_add_ps: GCC 12 warns inside it)
  for (auto& a : acc) {
    _mm512_storeu_ps(lanes, a);
    for (float v : lanes) sink += v;
  }
  std::fprintf(stderr, "(%g)\n", sink);
  return 2.0 * 16 * kChains * kIterations / s / 1e9;
}

__attribute__((target("avx2,fma"))) double fma_avx2() {
  __m256 acc[kChains];
  for (auto& a : acc) a = _mm256_set1_ps(0.0f);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < kIterations; ++i)
    for (auto& a : acc) a = _mm256_fmadd_ps(a, x, y);
  const double s = seconds_since(t0);
  float lanes[8], sink = 0.0f;
  for (auto& a : acc) {
    _mm256_storeu_ps(lanes, a);
    for (float v : lanes) sink += v;
  }
  std::fprintf(stderr, "(%g)\n", sink);
  return 2.0 * 8 * kChains * kIterations / s / 1e9;
}

double sgemm_rate(int n) {
  std::vector<float> a(size_t(n) * n, 1.0f), b(size_t(n) * n, 0.5f), c(size_t(n) * n);
  attend::kernels::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
  const int reps = 10;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    attend::kernels::gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
  return 2.0 * n * n * double(n) * reps / seconds_since(t0) / 1e9;
}

}  // namespace

int main() {
  attend::kernels::set_blas_threads(1);
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const double fma = avx512 ? fma_avx512() : fma_avx2();
  std::printf("{\"isa\": \"%s\", \"fma_gflops\": %.1f, \"sgemm_gflops\": %.1f}\n", avx512 ? "avx512" : "avx2", fma,
              sgemm_rate(1024));
  return 0;
}
