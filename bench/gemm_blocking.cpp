// Thin products (few rows, a wide weight), as one decoder step computes them: attend's gemm with
// column blocking (kSmallKernels) and through oneDNN's sgemm (kOneDnn) beside the plain OpenBLAS
// call, one thread, side by side in one run. Usage: gemm_blocking [Google Benchmark flags]
#include <string>
#include <vector>

#include "../src/kernels/blas.h"
#include "side_by_side.h"

using namespace attend::kernels;

namespace {

// x [M,K] times W [K,N] (or W^T [N,K] with trans_b) by one path.
void product(benchmark::State& state, GemmPath path, bool trans_b, int M, int N, int K) {
  std::vector<float> a(size_t(M) * K, 0.5f), b(size_t(K) * N, 0.01f), c(size_t(M) * N);
  set_gemm_path(path);
  for (auto _ : state) {
    gemm(false, trans_b, M, N, K, 1.0f, a.data(), K, b.data(), trans_b ? K : N, 0.0f, c.data(), N);
    benchmark::ClobberMemory();
  }
  set_gemm_path(GemmPath::kAuto);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

}  // namespace

int main(int argc, char** argv) {
  set_blas_threads(1);
  for (bool tb : {false, true})
    for (int M : {1, 8, 16, 32, 64, 128, 256})
      for (int K : {256, 768})
        for (GemmPath path : {GemmPath::kPlain, GemmPath::kSmallKernels, GemmPath::kOneDnn}) {
          const char* variant = path == GemmPath::kPlain    ? "/plain"
                                : path == GemmPath::kOneDnn ? "/onednn"
                                                            : "/blocked";
          const std::string name = std::string(tb ? "x*W^T" : "x*W") + "/M:" + std::to_string(M) +
                                   "/K:" + std::to_string(K) + "/N:768" + variant;
          benchmark::RegisterBenchmark(name.c_str(), product, path, tb, M, 768, K)->Unit(benchmark::kMicrosecond);
        }
  return attend::bench::run_side_by_side(argc, argv, "plain", {"blocked", "onednn"});
}
