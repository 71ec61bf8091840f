// What bounds decoding at batch 1: a matrix-vector product streams its weight, and whether the
// weights a step uses fit in this core's L2 (2 MB here) decides the bandwidth. Each case cycles
// one-row products y = x W through weights of a given total size, as a decoding step does, one
// thread, and reports GB/s of weights read. The last two cases are the default model's decoder
// step (W_ih's input-feeding rows, W_hh, W_q, W_c's state rows, the output layer: 2.14 MB) in
// one fixed order and in the fused step's alternating order (models/seq2seq_decoder.cpp).
// Usage: gemv_cache [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "../src/kernels/blas.h"

using namespace attend::kernels;

namespace {

constexpr int K = 256;  // the decoder's state size: every product is [1,256] x [256,N]

void products(benchmark::State& state, std::vector<int> widths, bool alternate) {
  std::vector<std::vector<float>> w;
  double bytes = 0;
  for (int n : widths) {
    w.emplace_back(size_t(K) * n, 0.01f);
    bytes += 4.0 * K * n;
  }
  std::vector<float> x(K, 0.5f), y(4096);
  int64_t step = 0;
  for (auto _ : state) {
    const bool reverse = alternate && (step++ & 1);
    for (size_t i = 0; i < w.size(); ++i) {
      const size_t j = reverse ? w.size() - 1 - i : i;
      gemm(false, false, 1, widths[j], K, 1.0f, x.data(), K, w[j].data(), widths[j], 0.0f, y.data(), widths[j]);
    }
    benchmark::ClobberMemory();
  }
  state.counters["MB"] = bytes / 1e6;
  state.counters["GB/s"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

}  // namespace

int main(int argc, char** argv) {
  set_blas_threads(1);
  for (int count : {1, 2, 3, 4, 8}) {  // [256, 768] weights: 0.79 MB each
    const std::string name = "weights:" + std::to_string(count) + "x[256,768]";
    benchmark::RegisterBenchmark(name.c_str(), products, std::vector<int>(count, 768), false)
        ->Unit(benchmark::kMicrosecond);
  }
  const std::vector<int> step = {768, 768, 256, 256, 42};
  benchmark::RegisterBenchmark("decoder-step/fixed-order", products, step, false)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("decoder-step/alternating", products, step, true)->Unit(benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
