// Forward attention's per-step alignment update (Zhang et al. 2018), fused (one op,
// ops/attention_scores.h: forward_alignment, and forward_alignment_log, the form the mechanism
// runs with a softmax) against the composed ops they replaced (shift, mix, multiply,
// renormalise: ~8 autograd nodes), forward + backward through a tape, with and without the
// transition agent, single-threaded, side by side in one run.
// Usage: mechanism_step_bench [Google Benchmark flags, e.g. --benchmark_min_time=0.5]
#include <cmath>
#include <string>
#include <utility>

#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/reduce.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"
#include "attend/random.h"
#include "side_by_side.h"

namespace {

using namespace attend;

Var composed(const Var& prev, const Var& y, const Var& u) {
  const int64_t B = prev.size(0), S = prev.size(1);
  Var shifted = concat({Var(Tensor(Shape{B, 1})), slice(prev, 1, 0, S - 1)}, 1);
  Var mix = u.defined() ? add(sub(prev, mul(u, prev)), mul(u, shifted)) : add(prev, shifted);
  return renormalize(mul(mix, y));
}

// One case: B rows, S source positions, with or without the transition agent u; forward +
// backward through a tape, the fused op or the composed ops.
enum class Form { kComposed, kFused, kFusedLog };

void step(benchmark::State& state, int B, int S, bool agent, Form form) {
  Rng rng(1);
  Tensor p(Shape{B, S}), yv(Shape{B, S}), probe(Shape{B, S});
  for (int64_t i = 0; i < p.numel(); ++i) {
    p.data()[i] = rng.uniform() + 0.01f;
    yv.data()[i] = rng.uniform() + 0.01f;
    probe.data()[i] = rng.normal();
  }
  Tensor lp = Tensor::empty(p.shape()), ly = Tensor::empty(p.shape());
  for (int64_t i = 0; i < p.numel(); ++i) lp.data()[i] = std::log(p.data()[i]), ly.data()[i] = std::log(yv.data()[i]);
  Var prev(p, true), y(yv, true), log_prev(lp, true), log_y(ly, true);
  Var u = agent ? Var(Tensor::full(Shape{B, 1}, 0.3f), true) : Var();
  for (auto _ : state) {
    Tape tape;
    TapeScope scope(tape);
    Var a = form == Form::kFusedLog ? forward_alignment_log(log_prev, log_y, u)
            : form == Form::kFused  ? forward_alignment(prev, y, u)
                                    : composed(prev, y, u);
    Var l = sum(mul(a, Var(probe)));
    tape.backward(l);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int B : {1, 8, 64})
    for (int S : {10, 30, 100})
      for (bool agent : {false, true})
        for (auto [form, label] : {std::pair{Form::kComposed, "composed"}, std::pair{Form::kFused, "fused"},
                                   std::pair{Form::kFusedLog, "fused-log"}}) {
          const std::string name = "B:" + std::to_string(B) + "/S:" + std::to_string(S) + "/agent:" +
                                   (agent ? "yes/" : "no/") + label;
          benchmark::RegisterBenchmark(name.c_str(), step, B, S, agent, form)->Unit(benchmark::kMicrosecond);
        }
  return attend::bench::run_side_by_side(argc, argv, "composed", {"fused", "fused-log"});
}
