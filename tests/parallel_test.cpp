// The thread pool (src/kernels/parallel.h): every item runs once on any thread count, errors
// reach the caller, small work stays on the calling thread, and the element-wise work it splits
// (dropout, the loss, Adam) gives the same numbers on one thread and two.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "attend/ops/dropout.h"
#include "attend/ops/loss.h"
#include "attend/random.h"
#include "attend/train/optimizer.h"
#include "kernels/parallel.h"

namespace attend {
namespace {

class Parallel : public ::testing::Test {
 protected:
  void SetUp() override { before_ = kernels::num_threads(), kernels::set_num_threads(2); }
  void TearDown() override { kernels::set_num_threads(before_); }
  int before_ = 1;
};

TEST_F(Parallel, EveryItemRunsOnce) {
  for (double work : {0.0, 1e9}) {
    std::vector<std::atomic<int>> runs(1000);
    kernels::parallel_for(
        1000, [&](int64_t i, int) { ++runs[i]; }, work);
    for (size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i].load(), 1) << "item " << i << ", work " << work;
  }
}

TEST_F(Parallel, SmallWorkStaysOnTheCaller) {
  std::atomic<int> elsewhere{0};
  kernels::parallel_for(
      64, [&](int64_t, int thread) { elsewhere += thread != 0; }, kernels::kMinParallelWork / 2);
  EXPECT_EQ(elsewhere.load(), 0);
}

TEST_F(Parallel, AnErrorReachesTheCallerAndThePoolKeepsWorking) {
  for (double work : {0.0, 1e9}) {
    EXPECT_THROW(kernels::parallel_for(
                     100,
                     [](int64_t i, int) {
                       if (i == 37) throw std::runtime_error("item 37");
                     },
                     work),
                 std::runtime_error);
    std::atomic<int> ran{0};
    kernels::parallel_for(
        10, [&](int64_t, int) { ++ran; }, work);
    EXPECT_EQ(ran.load(), 10) << work;
  }
}

// Dropout forward and backward, the cross-entropy's log-softmax, loss (with soft targets) and
// gradient, and an Adam step, at sizes the pool splits, on one thread and on two: the same bits.
TEST_F(Parallel, ElementwiseWorkGivesTheSameNumbersOnEveryThreadCount) {
  auto run = [](int threads) {
    kernels::set_num_threads(threads);
    Rng data(7), drop(9);
    const int64_t N = 96, V = 4001;  // (odd sizes: ranges meet mid-pair for dropout's draws)
    Tensor x(Shape{N, V});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 3.0f * data.normal();
    std::vector<int> targets(N);
    for (int64_t n = 0; n < N; ++n) targets[n] = n % 7 == 0 ? 0 : int(data.below(V));
    Tensor soft(Shape{N, V});  // a teacher's distributions
    for (int64_t n = 0; n < N; ++n) {
      float sum = 0.0f;
      for (int64_t v = 0; v < V; ++v) sum += soft.data()[n * V + v] = data.uniform();
      for (int64_t v = 0; v < V; ++v) soft.data()[n * V + v] /= sum;
    }
    Var w(x, /*requires_grad=*/true);
    std::vector<float> out;
    {
      Tape tape;
      TapeScope scope(tape);
      Var loss =
          cross_entropy(dropout(w, 0.3f, drop), targets,
                        {.ignore_index = 0, .label_smoothing = 0.1f, .soft_targets = &soft, .soft_weight = 0.5f});
      out.push_back(loss.value().item());
      tape.backward(loss);
    }
    Adam adam({{"w", w}}, {.lr = 1e-3f});
    adam.step(1e-3f);
    const std::vector<float> grad = w.grad().to_vector(), weights = w.value().to_vector();
    out.insert(out.end(), grad.begin(), grad.end());
    out.insert(out.end(), weights.begin(), weights.end());
    return out;
  };
  const std::vector<float> one = run(1), two = run(2);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(one, two);
}

}  // namespace
}  // namespace attend
