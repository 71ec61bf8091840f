// attend serve: dynamic batching. Requests wait in one bounded queue; a worker takes the oldest
// request and, waiting at most max_wait for more, every queued request of the same group (same
// model and options that must be shared by a batch) until the batch's cost budget is full, then
// runs the batch while the next worker gathers the next one. Generic in what a request is, so
// that the scheduling is tested without a model (tests/serve_batcher_test.cpp).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace attend::serve {

struct BatcherOptions {
  int workers = 1;                        // batches run at once (each on its own thread)
  size_t max_queue = 256;                 // requests waiting; submit() refuses more
  int64_t max_batch_cost = 4096;          // a batch's budget (source tokens); a costlier request goes alone
  std::chrono::microseconds max_wait{0};  // how long the oldest request waits for company
  bool batching = true;                   // false: every request is a batch of its own

  void validate() const {
    if (workers < 1 || workers > 256)
      throw std::invalid_argument("batcher: workers must be 1..256, got " + std::to_string(workers));
    if (max_queue < 1 || max_queue > 1000000)
      throw std::invalid_argument("batcher: max queue must be 1..1000000, got " + std::to_string(max_queue));
    if (max_batch_cost < 1)
      throw std::invalid_argument("batcher: max batch cost must be >= 1, got " + std::to_string(max_batch_cost));
    if (max_wait.count() < 0 || max_wait > std::chrono::seconds(10))
      throw std::invalid_argument("batcher: max wait must be 0..10 s, got " + std::to_string(max_wait.count()) + " us");
  }
};

template <typename T>
class Batcher {
 public:
  using Clock = std::chrono::steady_clock;
  // Runs one batch (all of one group, oldest first) on a worker thread; must not throw.
  using Run = std::function<void(std::vector<T>& batch)>;

  Batcher(BatcherOptions options, Run run) : options_(std::move(options)), run_(std::move(run)) {
    options_.validate();
    for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { work(); });
  }
  ~Batcher() { stop(); }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues a request; false when the queue is full or the batcher is stopping (the caller
  // answers 503). cost >= 1.
  bool submit(std::string group, int64_t cost, T value) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.size() >= options_.max_queue) return false;
      queue_.push_back({std::move(group), std::max<int64_t>(cost, 1), Clock::now(), std::move(value)});
    }
    cv_.notify_all();
    return true;
  }

  // Runs what is queued without waiting for company (or, with discard, drops it), then joins
  // the workers. Idempotent.
  void stop(bool discard = false) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      if (discard) queue_.clear();
    }
    cv_.notify_all();
    for (std::thread& t : workers_)
      if (t.joinable()) t.join();
  }

  size_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  struct Item {
    std::string group;
    int64_t cost;
    Clock::time_point arrived;
    T value;
  };

  // The cost of the queued requests of `group`, up to the budget.
  int64_t group_cost(const std::string& group) const {
    int64_t sum = 0;
    for (const Item& it : queue_)
      if (it.group == group && (sum += it.cost) >= options_.max_batch_cost) break;
    return sum;
  }

  // Takes the oldest request and those of its group that fit the budget after it (in order).
  std::vector<T> take_batch() {
    std::vector<T> batch;
    const std::string group = queue_.front().group;
    int64_t cost = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
      const bool first = batch.empty();
      if (it->group != group || (!first && cost + it->cost > options_.max_batch_cost)) {
        ++it;
        continue;
      }
      cost += it->cost;
      batch.push_back(std::move(it->value));
      it = queue_.erase(it);
      if (!options_.batching || cost >= options_.max_batch_cost) break;
    }
    return batch;
  }

  // One worker at a time gathers (the leader); the others run their batches meanwhile.
  void work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && !gathering_); });
      if (queue_.empty()) return;  // stopping, nothing left
      gathering_ = true;
      if (options_.batching) {
        const Clock::time_point deadline = queue_.front().arrived + options_.max_wait;
        cv_.wait_until(lock, deadline,
                       [&] { return stopping_ || group_cost(queue_.front().group) >= options_.max_batch_cost; });
      }
      std::vector<T> batch = take_batch();
      gathering_ = false;
      lock.unlock();
      cv_.notify_all();
      run_(batch);
      lock.lock();
    }
  }

  BatcherOptions options_;
  Run run_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false, gathering_ = false;
  std::vector<std::thread> workers_;  // last: started once everything above exists
};

}  // namespace attend::serve
