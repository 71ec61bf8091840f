// One-query decode step over a KV cache (B = 1, H = Hkv = 8, D = 64, 8192 cached keys): how fast
// it reads K and V, against the memory read bandwidth measured here in the same run. "cold"
// cycles through caches totalling 1 GiB, more than the last-level cache, as a long decode
// does; "hot" repeats one cache (32 MiB, which the L3 may hold).
// Usage: sdpa_decode_bench [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../src/kernels/parallel.h"
#include "attend/ops/kv_cache.h"
#include "attend/random.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Single-pass read bandwidth over a 1 GiB array (sum with 8 independent accumulators).
double read_bandwidth_gbs() {
  const size_t n = size_t(1) << 28;
  std::vector<float> a(n, 1.0f);
  double best = 0.0;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = Clock::now();
    float acc[8] = {};
    for (size_t i = 0; i < n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += a[i + j];
    const double s = seconds(t0);
    volatile float sink = acc[0] + acc[7];
    (void)sink;
    best = std::max(best, n * 4.0 / s / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  attend::kernels::set_num_threads(threads);
  const int B = 1, H = 8, D = 64, L = 8192;
  attend::Rng rng(1);
  auto random = [&](const attend::Shape& s) {
    attend::Tensor t(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.normal();
    return t;
  };
  const double bytes = 2.0 * B * H * L * D * 4;  // K and V
  const int n_caches = static_cast<int>((1ull << 30) / bytes);
  std::vector<attend::KvCache> caches;
  for (int c = 0; c < n_caches; ++c) {
    caches.emplace_back(B, H, L, D);
    caches.back().append(random({B, H, L, D}), random({B, H, L, D}));
  }
  const attend::Tensor q = random({B, H, 1, D});
  const double bw = read_bandwidth_gbs();
  auto measure = [&](bool cold) {
    std::vector<double> t;
    for (int r = 0; r < 3 * n_caches; ++r) {
      const attend::KvCache& c = caches[cold ? r % n_caches : 0];
      const auto t0 = Clock::now();
      attend::Tensor out = attend::sdpa_decode(q, c);
      t.push_back(seconds(t0));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  for (bool cold : {true, false}) {
    const double s = measure(cold);
    std::printf(
        "%s, %d thread(s): %.3f ms per step, K+V %.1f MiB read at %.1f GB/s = %.0f%% of the %.1f GB/s read bandwidth\n",
        cold ? "cold" : "hot ", threads, s * 1e3, bytes / 1048576.0, bytes / s / 1e9, 100.0 * bytes / s / 1e9 / bw, bw);
  }
  return 0;
}
