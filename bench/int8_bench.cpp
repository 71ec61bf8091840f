// int8 products (Int8Weight: activations quantized per row, oneDNN's s8 x s8 -> s32 matmul,
// scaled back) against the fp32 product they replace (kernels::affine: OpenBLAS sgemm) and the
// plain int32 loops the oneDNN path is tested against, side by side in one run, one thread, for
// the decoders' shapes: M rows (batch x beam) x In -> Out.
// Usage: int8_bench [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "attend/ops/int8.h"
#include "attend/random.h"
#include "kernels/blas.h"
#include "kernels/int8_gemm.h"
#include "side_by_side.h"

namespace {

void product(benchmark::State& state, const std::string& how, int M, int In, int Out) {
  attend::Rng rng(1);
  std::vector<float> x(size_t(M) * In), w(size_t(In) * Out), b(Out), y(size_t(M) * Out);
  for (float& v : x) v = rng.normal();
  for (float& v : w) v = 0.05f * rng.normal();
  for (float& v : b) v = rng.normal();
  const auto q = attend::Int8Weight::from_in_out(w.data(), In, Out);
  std::vector<int8_t> qx(x.size()), qw(w.size(), 3);
  std::vector<float> sx(M), sw(Out, 0.01f);
  for (auto _ : state) {
    if (how == "fp32") {
      attend::kernels::affine(M, Out, In, x.data(), w.data(), b.data(), y.data());
    } else if (how == "int8") {
      q->apply(x.data(), M, b.data(), y.data());
    } else {  // the reference loops, quantization included
      attend::kernels::quantize_rows(x.data(), M, In, 127, qx.data(), sx.data());
      attend::kernels::int8_gemm_reference(M, Out, In, qx.data(), sx.data(), qw.data(), sw.data(), b.data(), y.data());
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * int64_t(M) * In * Out);
}

}  // namespace

int main(int argc, char** argv) {
  attend::kernels::set_blas_threads(1);
  struct Shape {
    int M, In, Out;
  };
  for (Shape s : {Shape{1, 256, 768},
                  {1, 512, 1536},
                  {1, 256, 256},
                  {1, 512, 2048},
                  {1, 256, 8000},
                  {8, 256, 768},
                  {8, 512, 1536},
                  {64, 256, 1024},
                  {64, 512, 2048},
                  {64, 1024, 256}})
    for (const char* how : {"fp32", "int8", "int8-reference"}) {
      const std::string name =
          "M:" + std::to_string(s.M) + "/In:" + std::to_string(s.In) + "/Out:" + std::to_string(s.Out) + "/" + how;
      benchmark::RegisterBenchmark(name.c_str(), product, std::string(how), s.M, s.In, s.Out);
    }
  return attend::bench::run_side_by_side(argc, argv, "fp32", {"int8", "int8-reference"});
}
