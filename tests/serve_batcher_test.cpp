// attend serve's dynamic batcher (src/serve/batcher.h) and request parsing (src/serve/api.h),
// without a network: which requests share a batch, the budget, the wait, the queue bound, stop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/api.h"
#include "serve/batcher.h"

namespace attend::serve {
namespace {

using namespace std::chrono_literals;

// Records every batch it is given; a run may be held until release() to fill the queue.
struct Recorder {
  std::mutex mu;
  std::vector<std::vector<int>> batches;
  std::atomic<bool> hold{false};
  void run(std::vector<int>& batch) {
    while (hold) std::this_thread::sleep_for(1ms);
    std::lock_guard<std::mutex> lock(mu);
    batches.push_back(batch);
  }
  size_t ran() {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (const auto& b : batches) n += b.size();
    return n;
  }
};

BatcherOptions options(int64_t budget, std::chrono::milliseconds wait, size_t queue = 100) {
  BatcherOptions o;
  o.max_batch_cost = budget;
  o.max_wait = wait;
  o.max_queue = queue;
  return o;
}

void wait_for(Recorder& r, size_t n) {
  for (int i = 0; i < 5000 && r.ran() < n; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(r.ran(), n);
}

TEST(ServeBatcher, RequestsArrivingTogetherShareABatch) {
  Recorder r;
  Batcher<int> b(options(1000, 200ms), [&](std::vector<int>& x) { r.run(x); });
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.submit("g", 10, i));
  wait_for(r, 5);
  ASSERT_EQ(r.batches.size(), 1u);
  EXPECT_EQ(r.batches[0], (std::vector<int>{0, 1, 2, 3, 4}));  // oldest first
}

TEST(ServeBatcher, AFullBudgetGoesAtOnceAndTheRestWaits) {
  Recorder r;
  const auto t0 = std::chrono::steady_clock::now();
  Batcher<int> b(options(30, 10s), [&](std::vector<int>& x) { r.run(x); });
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(b.submit("g", 10, i));
  wait_for(r, 3);  // 3 x 10 fills the budget: no waiting for the 10 s
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(r.batches[0], (std::vector<int>{0, 1, 2}));
  b.stop();  // the fourth runs without waiting for company
  wait_for(r, 4);
  EXPECT_EQ(r.batches[1], (std::vector<int>{3}));
}

TEST(ServeBatcher, GroupsNeverMixAndKeepTheirOrder) {
  Recorder r;
  Batcher<int> b(options(1000, 100ms), [&](std::vector<int>& x) { r.run(x); });
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(b.submit(i % 2 ? "beam5" : "greedy", 1, i));
  wait_for(r, 6);
  ASSERT_EQ(r.batches.size(), 2u);
  EXPECT_EQ(r.batches[0], (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(r.batches[1], (std::vector<int>{1, 3, 5}));
}

TEST(ServeBatcher, ACostlyRequestGoesAlone) {
  Recorder r;
  Batcher<int> b(options(10, 50ms), [&](std::vector<int>& x) { r.run(x); });
  ASSERT_TRUE(b.submit("g", 500, 0));
  ASSERT_TRUE(b.submit("g", 5, 1));
  wait_for(r, 2);
  EXPECT_EQ(r.batches[0], (std::vector<int>{0}));
  EXPECT_EQ(r.batches[1], (std::vector<int>{1}));
}

TEST(ServeBatcher, WithoutBatchingEveryRequestIsAlone) {
  Recorder r;
  BatcherOptions o = options(1000, 100ms);
  o.batching = false;
  Batcher<int> b(o, [&](std::vector<int>& x) { r.run(x); });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.submit("g", 1, i));
  wait_for(r, 3);
  EXPECT_EQ(r.batches.size(), 3u);
}

TEST(ServeBatcher, AFullQueueRefusesAndStopRefusesEverything) {
  Recorder r;
  r.hold = true;
  Batcher<int> b(options(1, 0ms, 2), [&](std::vector<int>& x) { r.run(x); });
  ASSERT_TRUE(b.submit("g", 1, 0));
  for (int i = 0; i < 1000 && b.queued() > 0; ++i) std::this_thread::sleep_for(1ms);  // taken, held
  EXPECT_TRUE(b.submit("g", 1, 1));
  EXPECT_TRUE(b.submit("g", 1, 2));
  EXPECT_FALSE(b.submit("g", 1, 3));  // two waiting: full
  EXPECT_EQ(b.queued(), 2u);
  r.hold = false;
  b.stop();
  EXPECT_EQ(r.ran(), 3u);  // stop runs what was queued
  EXPECT_FALSE(b.submit("g", 1, 4));
}

TEST(ServeBatcher, StopWithDiscardDropsTheQueue) {
  Recorder r;
  r.hold = true;
  Batcher<int> b(options(1, 0ms), [&](std::vector<int>& x) { r.run(x); });
  ASSERT_TRUE(b.submit("g", 1, 0));
  for (int i = 0; i < 1000 && b.queued() > 0; ++i) std::this_thread::sleep_for(1ms);
  for (int i = 1; i < 5; ++i) ASSERT_TRUE(b.submit("g", 1, i));
  std::thread release([&] {
    std::this_thread::sleep_for(20ms);
    r.hold = false;
  });
  b.stop(/*discard=*/true);
  release.join();
  EXPECT_EQ(r.ran(), 1u);  // only the batch already running
}

TEST(ServeBatcher, SeveralWorkersRunEveryRequestOnce) {
  Recorder r;
  BatcherOptions o = options(4, 1ms, 10000);
  o.workers = 3;
  Batcher<int> b(o, [&](std::vector<int>& x) { r.run(x); });
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; i < 250; ++i) ASSERT_TRUE(b.submit(std::to_string(i % 3), 1, c * 1000 + i));
    });
  for (auto& t : clients) t.join();
  b.stop();
  std::vector<int> seen;
  for (const auto& batch : r.batches) {
    EXPECT_LE(batch.size(), 4u);
    seen.insert(seen.end(), batch.begin(), batch.end());
  }
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), 1000u);
  EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
}

TEST(ServeBatcher, OptionsOutOfRangeAreRefused) {
  BatcherOptions o;
  o.workers = 0;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = BatcherOptions{};
  o.max_wait = std::chrono::seconds(11);
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

int status_of(const std::string& body, const std::string& needle) {
  try {
    parse_translate_request(body, false, RequestLimits{});
  } catch (const ApiError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    return e.status;
  }
  return 200;
}

TEST(ServeApi, RequestsAreParsedStrictly) {
  const TranslateRequest r =
      parse_translate_request(R"({"model":"g2p","text":["a","b"],"beam":4,"n_best":2})", false, RequestLimits{});
  EXPECT_EQ(r.model, "g2p");
  EXPECT_EQ(r.texts, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.beam, 4);
  EXPECT_EQ(r.n_best, 2);
  EXPECT_FALSE(r.alignment);
  EXPECT_EQ(parse_translate_request(R"({"model":"m","text":"one"})", true, RequestLimits{}).texts.size(), 1u);
  EXPECT_TRUE(parse_translate_request(R"({"model":"m","text":"one"})", true, RequestLimits{}).alignment);
  EXPECT_EQ(status_of("", "empty"), 400);
  EXPECT_EQ(status_of("{\"model\":", "malformed JSON"), 400);
  EXPECT_EQ(status_of("[1]", "must be a JSON object"), 400);
  EXPECT_EQ(status_of(R"({"text":["a"]})", "'model' is missing"), 400);
  EXPECT_EQ(status_of(R"({"model":3,"text":["a"]})", "'model' must be a string"), 400);
  EXPECT_EQ(status_of(R"({"model":"m"})", "'text' is missing"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":[]})", "empty list"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a",7]})", "'text'[1] must be a string"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a"],"beam":0})", "'beam' must be 1..16, got 0"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a"],"beam":1e99})", "'beam' must be an integer"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a"],"beam":2,"n_best":3})", "'n_best' must be 1..2"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a"],"alignment":"yes"})", "'alignment' must be true or false"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a"],"precision":"fp16"})", "'precision' must be \"fp32\" or \"int8\""),
            400);
  EXPECT_EQ(status_of(R"({"model":"m","text":["a"],"beem":2})", "unknown field 'beem'"), 400);
  EXPECT_EQ(status_of(R"({"model":"m","text":[[[[["a"]]]]]})", "nested deeper than 4"), 400);
  EXPECT_EQ(status_of("{\"model\":\"m\",\"text\":[\"\xff\"]}", "malformed JSON"), 400);  // invalid UTF-8
  EXPECT_EQ(status_of(R"({"model":"m","text":[")" + std::string(3000, 'a') + "\"]}", "3000 bytes; at most 2048"), 400);
}

TEST(ServeApi, DeepNestingIsRefusedWithoutRecursion) {
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_EQ(status_of(deep, "nested deeper"), 400);
}

TEST(ServeApi, ManyInputsAreBounded) {
  std::string body = R"({"model":"m","text":[)";
  for (int i = 0; i < 65; ++i) body += std::string(i ? "," : "") + "\"a\"";
  EXPECT_EQ(status_of(body + "]}", "65 inputs; at most 64"), 400);
}

}  // namespace
}  // namespace attend::serve
