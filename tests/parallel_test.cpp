// The thread pool (src/kernels/parallel.h): every item runs once on any thread count, errors
// reach the caller, and small work stays on the calling thread.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

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

}  // namespace
}  // namespace attend
