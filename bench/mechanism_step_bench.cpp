// The stateful mechanisms' per-step ops, fused against composed, forward + backward through a
// tape, single-threaded, side by side in one run:
// - forward attention's alignment update (Zhang et al. 2018): forward_alignment, and
//   forward_alignment_log (the form the mechanism runs with a softmax), against the composed ops
//   they replaced (shift, mix, multiply, renormalise: ~8 autograd nodes), with and without the
//   transition agent;
// - location-aware attention's features f_t = F * a_{t-1} (Chorowski et al. 2015): position_conv
//   against R shifted copies stacked and multiplied by F;
// - the additive score with an extra term, as location and coverage use it (the coverage term
//   w_c c_t,s of See et al. 2017): additive_scores against add, tanh and a product.
// Usage: mechanism_step_bench [Google Benchmark flags, e.g. --benchmark_min_time=0.5]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
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

// f[b,s,k] = sum_j F[k,j] a[b, s + j - R/2], composed: R shifted copies of a, then x F^T.
Var composed_conv(const Var& a, const Var& filters) {
  const int64_t B = a.size(0), S = a.size(1), R = filters.size(1);
  std::vector<Var> shifted;
  for (int64_t j = 0; j < R; ++j) {
    const int64_t d = j - R / 2;  // this tap reads a[s + d]
    Var col;
    if (d == 0)
      col = a;
    else if (d > 0)
      col = concat({slice(a, 1, d, S - d), Var(Tensor(Shape{B, d}))}, 1);
    else
      col = concat({Var(Tensor(Shape{B, -d})), slice(a, 1, 0, S + d)}, 1);
    shifted.push_back(reshape(col, Shape{B, S, 1}));
  }
  Var x = reshape(concat(shifted, 2), Shape{B * S, R});
  return reshape(matmul(x, filters, false, /*trans_b=*/true), Shape{B, S, filters.size(0)});
}

// score[b,s] = v . tanh(qp[b] + kp[b,s] + extra[b,s]) for one step, composed.
Var composed_additive(const Var& qp, const Var& kp, const Var& v) {
  const int64_t B = kp.size(0), S = kp.size(1), A = kp.size(2);
  Var h = tanh(add(reshape(qp, Shape{B, 1, A}), kp));  // [B,S,A]
  return reshape(matmul(reshape(h, Shape{B * S, A}), reshape(v, Shape{A, 1})), Shape{B, 1, S});
}

void location(benchmark::State& state, int B, int S, bool fused) {
  Rng rng(2);
  const int K = 8, R = 11;
  Tensor a(Shape{B, S}), f(Shape{K, R}), probe(Shape{B, S, K});
  for (Tensor* t : {&a, &f, &probe})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = rng.normal();
  Var prev(a, true), filters(f, true);
  for (auto _ : state) {
    Tape tape;
    TapeScope scope(tape);
    Var out = fused ? position_conv(prev, filters) : composed_conv(prev, filters);
    Var l = sum(mul(out, Var(probe)));
    tape.backward(l);
  }
}

void coverage(benchmark::State& state, int B, int S, bool fused) {
  Rng rng(3);
  const int A = 256;
  Tensor q(Shape{B, 1, A}), k(Shape{B, S, A}), c(Shape{B, S, 1}), w(Shape{A}), v(Shape{A}), probe(Shape{B, 1, S});
  for (Tensor* t : {&q, &k, &c, &w, &v, &probe})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = 0.3f * rng.normal();
  Var qp(q, true), kp(k, true), cov(c, true), wc(w, true), va(v, true);
  for (auto _ : state) {
    Tape tape;
    TapeScope scope(tape);
    Var keys = add(kp, mul(cov, wc));  // W_k h_s + w_c c_t,s, the same in both
    Var sc = fused ? additive_scores(qp, keys, va) : composed_additive(qp, keys, va);
    Var l = sum(mul(sc, Var(probe)));
    tape.backward(l);
  }
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

// The composed versions here are the benchmark's own: it checks once that they compute what the
// fused ops compute before timing them.
bool composed_versions_agree() {
  Rng rng(4);
  Tensor a(Shape{3, 17}), f(Shape{4, 5}), q(Shape{3, 1, 6}), k(Shape{3, 17, 6}), v(Shape{6});
  for (Tensor* t : {&a, &f, &q, &k, &v})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = rng.normal();
  auto differ = [](const Var& x, const Var& y) {
    double worst = 0.0;
    for (int64_t i = 0; i < x.value().numel(); ++i)
      worst = std::max(worst, double(std::fabs(x.value().data()[i] - y.value().data()[i])));
    return x.shape() != y.shape() || worst > 1e-5;
  };
  NoGradScope no_grad;
  if (differ(position_conv(Var(a), Var(f)), composed_conv(Var(a), Var(f)))) return false;
  return !differ(additive_scores(Var(q), Var(k), Var(v)), composed_additive(Var(q), Var(k), Var(v)));
}

int main(int argc, char** argv) {
  if (!composed_versions_agree()) {
    std::fprintf(stderr, "mechanism_step_bench: a composed version differs from its fused op\n");
    return 1;
  }
  for (int B : {1, 8, 64})
    for (int S : {10, 30, 100})
      for (bool agent : {false, true})
        for (auto [form, label] : {std::pair{Form::kComposed, "composed"}, std::pair{Form::kFused, "fused"},
                                   std::pair{Form::kFusedLog, "fused-log"}}) {
          const std::string name = "forward/B:" + std::to_string(B) + "/S:" + std::to_string(S) +
                                   "/agent:" + (agent ? "yes/" : "no/") + label;
          benchmark::RegisterBenchmark(name.c_str(), step, B, S, agent, form)->Unit(benchmark::kMicrosecond);
        }
  for (int B : {1, 8, 64})
    for (int S : {10, 30, 100})
      for (bool fused : {false, true}) {
        const std::string shape =
            "/B:" + std::to_string(B) + "/S:" + std::to_string(S) + (fused ? "/fused" : "/composed");
        benchmark::RegisterBenchmark(("location" + shape).c_str(), location, B, S, fused)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("coverage" + shape).c_str(), coverage, B, S, fused)
            ->Unit(benchmark::kMicrosecond);
      }
  return attend::bench::run_side_by_side(argc, argv, "composed", {"fused", "fused-log"});
}
