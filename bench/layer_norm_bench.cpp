// Layer normalisation forward + backward (src/kernels/layer_norm.h): the vectorised kernel
// against its double-precision reference, side by side in one run, for the Transformer's
// training shapes (B x T rows of C values: word-level batch 64 x 23, character-level 64 x 10).
// Usage: layer_norm_bench [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "attend/random.h"
#include "kernels/layer_norm.h"
#include "side_by_side.h"

namespace {

using namespace attend::kernels;

void forward_backward(benchmark::State& state, bool fast, int64_t rows, int64_t C) {
  attend::Rng rng(1);
  std::vector<float> x(rows * C), dy(rows * C), g(C, 1.0f), b(C, 0.0f);
  for (float& v : x) v = rng.normal();
  for (float& v : dy) v = rng.normal();
  std::vector<float> y(rows * C), h(rows * C), rs(rows), dx(rows * C), dg(C), db(C);
  for (auto _ : state) {
    if (fast) {
      layer_norm_forward(rows, C, x.data(), g.data(), b.data(), 1e-5f, y.data(), h.data(), rs.data());
      layer_norm_backward(rows, C, dy.data(), h.data(), rs.data(), g.data(), dx.data(), dg.data(), db.data());
    } else {
      layer_norm_forward_reference(rows, C, x.data(), g.data(), b.data(), 1e-5f, y.data(), h.data(), rs.data());
      layer_norm_backward_reference(rows, C, dy.data(), h.data(), rs.data(), g.data(), dx.data(), dg.data(), db.data());
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * rows * C);
}

}  // namespace

int main(int argc, char** argv) {
  for (auto [rows, C] : {std::pair<int64_t, int64_t>{64 * 23, 256}, {64 * 10, 256}, {64 * 23, 512}, {16 * 23, 1024}})
    for (bool fast : {false, true}) {
      const std::string name =
          "rows:" + std::to_string(rows) + "/C:" + std::to_string(C) + (fast ? "/fast" : "/reference");
      benchmark::RegisterBenchmark(name.c_str(), forward_backward, fast, rows, C);
    }
  return attend::bench::run_side_by_side(argc, argv, "reference", {"fast"});
}
