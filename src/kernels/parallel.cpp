#include "parallel.h"

#include "attend/threads.h"
#include "blas.h"

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "blas.h"

namespace attend::kernels {

namespace {

thread_local bool t_inside = false;
thread_local int t_index = 0;  // 0 = the caller, 1.. = workers

class Pool {
 public:
  ~Pool() { resize(1); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      quit_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    quit_ = false;
    const uint64_t now = generation_;  // a worker that starts late must still see the next job
    for (int i = 1; i < n; ++i)
      workers_.emplace_back([this, now, i] {
        t_index = i;
        work(now);
      });
  }

  void run(int64_t n, const std::function<void(int64_t, int)>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      busy_ = static_cast<int>(workers_.size());
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    take_items();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return busy_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void take_items() {
    t_inside = true;
    try {
      for (int64_t i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) (*fn_)(i, t_index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_);  // the others stop taking items
    }
    t_inside = false;
  }

  void work(uint64_t seen) {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (quit_) return;
      }
      take_items();
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool quit_ = false;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0;
  std::atomic<int64_t> next_{0};
  int busy_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

std::mutex g_run_mu;  // one parallel_for at a time from the outside

}  // namespace

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(g_run_mu);
  if (pool().size() != n) pool().resize(n);
}

int num_threads() { return pool().size(); }

namespace {
// Every item on the calling thread, which counts as inside a parallel_for meanwhile.
void run_on_caller(int64_t n, const std::function<void(int64_t, int)>& fn) {
  struct Inside {
    Inside() { t_inside = true; }
    ~Inside() { t_inside = false; }
  } inside;
  for (int64_t i = 0; i < n; ++i) fn(i, 0);
}
}  // namespace

void parallel_for(int64_t n, const std::function<void(int64_t, int)>& fn, double work) {
  if (n <= 0) return;
  if (t_inside) {  // nested: this thread's share of the outer loop
    for (int64_t i = 0; i < n; ++i) fn(i, t_index);
    return;
  }
  if (work < kMinParallelWork) return run_on_caller(n, fn);  // (OpenBLAS left as it is)
  std::lock_guard<std::mutex> lock(g_run_mu);
  // Items call gemm on small tiles: OpenBLAS's own threads would only add wake-up latency.
  const int blas = blas_threads();
  if (blas != 1) set_blas_threads(1);
  try {
    if (n == 1 || pool().size() == 1)
      run_on_caller(n, fn);
    else
      pool().run(n, fn);
  } catch (...) {
    if (blas != 1) set_blas_threads(blas);
    throw;
  }
  if (blas != 1) set_blas_threads(blas);
}

void parallel_ranges(int64_t n, double work, const std::function<void(int64_t, int64_t)>& fn, int64_t align) {
  if (n <= 0) return;
  if (work < kMinParallelWork || pool().size() == 1 || t_inside) return fn(0, n);
  const int64_t pieces = 4 * int64_t(pool().size());  // a few per thread, so that they balance
  int64_t size = (n + pieces - 1) / pieces;
  size = (size + align - 1) / align * align;
  parallel_for((n + size - 1) / size, [&](int64_t i, int) { fn(i * size, std::min(n, (i + 1) * size)); }, work);
}

}  // namespace attend::kernels

namespace attend {

int max_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::min<unsigned>(1024, 4 * std::max(1u, hw)));
}

void set_threads(int n) {
  if (n < 1 || n > max_threads())
    throw std::invalid_argument("threads must be between 1 and " + std::to_string(max_threads()) + " (4 x the " +
                                std::to_string(std::thread::hardware_concurrency()) + " hardware threads), got " +
                                std::to_string(n));
  kernels::set_num_threads(n);
  kernels::set_blas_threads(n);
}

}  // namespace attend
