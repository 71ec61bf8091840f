// The vector math (src/kernels/vec_math.h) on every instruction set this CPU runs, against the
// scalar reference, side by side in one run: exp, tanh, sigmoid, log, and the online softmax's
// max + exp-and-sum, over a decoder state's worth of values (256) and a long row (4,096).
// Usage: vec_math_bench [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "attend/cpu.h"
#include "kernels/vec_math.h"
#include "side_by_side.h"

namespace {

using namespace attend::kernels;
using Unary = void (*)(const float*, float*, int64_t);

struct Fn {
  std::string name;
  Unary dispatched, reference;
};

// `isa`: "reference" or one of attend::cpu_isas().
void unary(benchmark::State& state, Fn fn, std::string isa, int64_t n) {
  if (isa != "reference") attend::set_cpu_isa(isa);
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = -8.0f + 16.0f * static_cast<float>(i) / static_cast<float>(n);
  if (fn.name == "log")
    for (float& v : x) v = v + 8.5f;
  const Unary f = isa == "reference" ? fn.reference : fn.dispatched;
  for (auto _ : state) {
    f(x.data(), y.data(), n);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * n);
}

// max, then exp(x - max) and its sum: one softmax row.
void softmax_row(benchmark::State& state, std::string isa, int64_t n) {
  if (isa != "reference") attend::set_cpu_isa(isa);
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 37) * 0.25f;
  const bool ref = isa == "reference";
  for (auto _ : state) {
    const float m = ref ? reference::vmax(x.data(), n) : vmax(x.data(), n);
    benchmark::DoNotOptimize(ref ? reference::vexp_shifted_sum(x.data(), m, y.data(), n)
                                 : vexp_shifted_sum(x.data(), m, y.data(), n));
  }
  state.SetItemsProcessed(state.iterations() * n);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<Fn> fns = {{"exp", vexp, reference::vexp},
                               {"tanh", vtanh, reference::vtanh},
                               {"sigmoid", vsigmoid, reference::vsigmoid},
                               {"log", vlog, reference::vlog}};
  std::vector<std::string> variants = {"reference"};
  for (const std::string& isa : attend::cpu_isas()) variants.push_back(isa);
  for (int64_t n : {256, 4096}) {
    const std::string size = "/n:" + std::to_string(n) + "/";
    for (const Fn& fn : fns)
      for (const std::string& v : variants) benchmark::RegisterBenchmark((fn.name + size + v).c_str(), unary, fn, v, n);
    for (const std::string& v : variants)
      benchmark::RegisterBenchmark(("softmax_row" + size + v).c_str(), softmax_row, v, n);
  }
  return attend::bench::run_side_by_side(argc, argv, "reference", {variants.begin() + 1, variants.end()});
}
