// attend serve: the counters behind GET /metrics, in Prometheus' text format (version 0.0.4).
// Thread-safe: the I/O thread records responses, the workers record batches.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace attend::serve {

// A cumulative histogram with fixed upper bounds (and +Inf).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double x);
  // name_bucket{le="..."} lines, name_sum and name_count.
  std::string render(const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// What the metrics page shows beside the counters, read when it is rendered.
struct Gauges {
  size_t queued = 0, in_flight = 0, connections = 0;
};

class Metrics {
 public:
  Metrics();
  // One answered request: its route ("/v1/translate", ..., or "other") and status.
  void response(const std::string& route, int status, double seconds);
  // One decoded batch: requests, sentences, source and output tokens, time.
  void batch(size_t requests, size_t sentences, int64_t source_tokens, int64_t output_tokens, double seconds);
  void connection_refused();
  std::string render(const Gauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;
  Histogram latency_, batch_sentences_, batch_requests_;
  uint64_t batches_ = 0, sentences_ = 0, refused_ = 0;
  int64_t source_tokens_ = 0, output_tokens_ = 0;
  double decode_seconds_ = 0.0;
};

}  // namespace attend::serve
