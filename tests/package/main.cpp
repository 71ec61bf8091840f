// Links against the installed library and runs the general attention mechanism once.
#include <attend/attention/attention.h>

#include <cmath>
#include <cstdio>

int main() {
  using namespace attend;
  Var q(Tensor::from(Shape{1, 1, 2}, {1, 1}));
  Var k(Tensor::from(Shape{1, 2, 2}, {1, 0, 1, 2}));
  Var v(Tensor::from(Shape{1, 2, 1}, {10, 20}));
  AttentionResult r = attend::attention(q, k, v, Tensor(), ScoreKind::kDot);
  const float w1 = 1.0f / (1.0f + std::exp(2.0f));
  const float want = 10 * w1 + 20 * (1 - w1);
  std::printf("context %.4f (want %.4f)\n", r.context.value().data()[0], want);
  return std::fabs(r.context.value().data()[0] - want) < 1e-4f ? 0 : 1;
}
