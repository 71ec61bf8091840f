// Forward attention's per-step alignment update (Zhang et al. 2018), fused (one op,
// ops/attention_scores.h forward_alignment) against the composed ops it replaced (shift,
// mix, multiply, renormalise: ~8 autograd nodes), forward + backward through a tape, with and
// without the transition agent, single-threaded, side by side in one run.
// Usage: mechanism_step_bench [seconds per case]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/reduce.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"
#include "attend/random.h"

namespace {

using namespace attend;

Var composed(const Var& prev, const Var& y, const Var& u) {
  const int64_t B = prev.size(0), S = prev.size(1);
  Var shifted = concat({Var(Tensor(Shape{B, 1})), slice(prev, 1, 0, S - 1)}, 1);
  Var mix = u.defined() ? add(sub(prev, mul(u, prev)), mul(u, shifted)) : add(prev, shifted);
  return renormalize(mul(mix, y));
}

template <class F>
double us_per_step(F f, double seconds) {
  using Clock = std::chrono::steady_clock;
  int64_t n = 0;
  const auto t0 = Clock::now();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    for (int i = 0; i < 100; ++i) f();
    n += 100;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return elapsed / n * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 0.5;
  Rng rng(1);
  std::printf("%4s %4s %6s | %12s %12s %7s\n", "B", "S", "agent", "composed us", "fused us", "ratio");
  for (int B : {1, 8, 64})
    for (int S : {10, 30, 100})
      for (bool agent : {false, true}) {
        Tensor p(Shape{B, S}), yv(Shape{B, S}), probe(Shape{B, S});
        for (int64_t i = 0; i < p.numel(); ++i) {
          p.data()[i] = rng.uniform() + 0.01f;
          yv.data()[i] = rng.uniform() + 0.01f;
          probe.data()[i] = rng.normal();
        }
        Var prev(p, true), y(yv, true);
        Var u = agent ? Var(Tensor::full(Shape{B, 1}, 0.3f), true) : Var();
        auto run = [&](bool fused) {
          return [&, fused] {
            Tape tape;
            {
              TapeScope scope(tape);
              Var a = fused ? forward_alignment(prev, y, u) : composed(prev, y, u);
              Var l = sum(mul(a, Var(probe)));
              tape.backward(l);
            }
          };
        };
        const double c = us_per_step(run(false), seconds), f = us_per_step(run(true), seconds);
        std::printf("%4d %4d %6s | %12.2f %12.2f %6.1fx\n", B, S, agent ? "yes" : "no", c, f, c / f);
      }
  return 0;
}
