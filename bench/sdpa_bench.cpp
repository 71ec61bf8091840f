// One scaled-dot-product attention measurement, for bench/sdpa.py: attend's fused kernel or its
// reference path, forward or forward+backward, on random [B, H, T, D] inputs (S = T). Validates
// the fused path against the reference on a slice first, then reports the median of repeats as
// JSON: seconds, GFLOP/s (forward 4·B·H·T·S·D, forward+backward 3.5x, causal half) and peak
// memory beyond the inputs and outputs.
//
// Usage: sdpa_bench B H T D causal(0|1) fwd|fwdbwd fused|reference repeats
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "attend/ops/sdpa.h"
#include "attend/random.h"

namespace {

double rss_mib(const char* field) {  // VmRSS or VmHWM from /proc/self/status
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::atof(line.c_str() + std::string(field).size() + 1) / 1024.0;
  return 0.0;
}

attend::Tensor random(const attend::Shape& s, attend::Rng& rng) {
  attend::Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.normal();
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: sdpa_bench B H T D causal fwd|fwdbwd fused|reference repeats\n");
    return 2;
  }
  const int B = std::atoi(argv[1]), H = std::atoi(argv[2]), T = std::atoi(argv[3]), D = std::atoi(argv[4]);
  const bool causal = std::atoi(argv[5]) != 0, backward = std::string(argv[6]) == "fwdbwd";
  const bool reference = std::string(argv[7]) == "reference";
  const int repeats = std::atoi(argv[8]);
  attend::Rng rng(1);
  const double base = rss_mib("VmRSS:");
  const attend::Tensor q = random({B, H, T, D}, rng), k = random({B, H, T, D}, rng), v = random({B, H, T, D}, rng),
                       dout = random({B, H, T, D}, rng);
  attend::SdpaOptions o;
  o.causal = causal;
  o.path = reference ? attend::SdpaPath::kReference : attend::SdpaPath::kFused;
  // Inputs and outputs: q, k, v, dout, out, lse (+ dq, dk, dv).
  const double io = (4.0 + 1.0 + (backward ? 3.0 : 0.0)) * q.numel() * 4 / 1048576.0 + B * H * T * 4 / 1048576.0;

  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {  // the first run warms up
    const auto t0 = std::chrono::steady_clock::now();
    attend::SdpaResult f = attend::sdpa_forward(q, k, v, o);
    if (backward) attend::SdpaGrads g = attend::sdpa_backward(q, k, v, f, dout, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) times.push_back(s);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  double flops = 4.0 * B * H * double(T) * T * D * (backward ? 3.5 : 1.0) * (causal ? 0.5 : 1.0);
  const double extra = rss_mib("VmHWM:") - base - io;
  std::printf("{\"seconds\": %.6f, \"gflops\": %.2f, \"extra_mib\": %.1f, \"io_mib\": %.1f}\n", median,
              flops / median / 1e9, extra, io);
  return 0;
}
