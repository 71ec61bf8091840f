// Thin products (few rows, a wide weight), as one RNN step computes them: attend's gemm with
// column blocking (kSmallKernels) beside the plain OpenBLAS call, in one run, one thread.
#include <chrono>
#include <cstdio>
#include <vector>

#include "../src/kernels/blas.h"

using namespace attend::kernels;

namespace {
double gflops(GemmPath path, bool trans_b, int M, int N, int K) {
  std::vector<float> a(size_t(M) * K, 0.5f), b(size_t(K) * N, 0.01f), c(size_t(M) * N);
  set_gemm_path(path);
  auto run = [&] { gemm(false, trans_b, M, N, K, 1.0f, a.data(), K, b.data(), trans_b ? K : N, 0.0f, c.data(), N); };
  for (int i = 0; i < 20; ++i) run();
  int n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double s = 0;
  while ((s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) < 0.3) run(), ++n;
  set_gemm_path(GemmPath::kAuto);
  return 2.0 * M * N * K * n / s / 1e9;
}
}  // namespace

int main() {
  set_blas_threads(1);
  std::printf("| product | M | K | N | plain GFLOP/s | blocked GFLOP/s | ratio |\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (bool tb : {false, true})
    for (int M : {1, 8, 16, 64})
      for (int K : {256, 768}) {
        const double p = gflops(GemmPath::kPlain, tb, M, 768, K), q = gflops(GemmPath::kSmallKernels, tb, M, 768, K);
        std::printf("| %s | %d | %d | 768 | %.1f | %.1f | %.2fx |\n", tb ? "x W^T" : "x W", M, K, p, q, q / p);
      }
  return 0;
}
