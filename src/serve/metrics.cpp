#include "serve/metrics.h"

#include <algorithm>
#include <cstdio>

namespace attend::serve {
namespace {

std::string number(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void Histogram::observe(double x) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), x) - bounds_.begin();
  ++counts_[i];
  sum_ += x;
  ++count_;
}

std::string Histogram::render(const std::string& name) const {
  std::string out;
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum " + number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
  return out;
}

Metrics::Metrics()
    : latency_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      batch_sentences_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}),
      batch_requests_({1, 2, 4, 8, 16, 32, 64, 128, 256}) {}

void Metrics::response(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++responses_[{route, status}];
  latency_.observe(seconds);
}

void Metrics::batch(size_t requests, size_t sentences, int64_t source_tokens, int64_t output_tokens, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++batches_;
  sentences_ += sentences;
  source_tokens_ += source_tokens;
  output_tokens_ += output_tokens;
  decode_seconds_ += seconds;
  batch_sentences_.observe(static_cast<double>(sentences));
  batch_requests_.observe(static_cast<double>(requests));
}

void Metrics::connection_refused() {
  std::lock_guard<std::mutex> lock(mu_);
  ++refused_;
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  header(out, "attend_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, n] : responses_)
    out += "attend_http_requests_total{route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  header(out, "attend_http_request_duration_seconds", "histogram", "Time from a request's arrival to its answer.");
  out += latency_.render("attend_http_request_duration_seconds");
  header(out, "attend_queue_length", "gauge", "Requests waiting to be decoded.");
  out += "attend_queue_length " + std::to_string(g.queued) + "\n";
  header(out, "attend_requests_in_flight", "gauge", "Requests read and not yet answered.");
  out += "attend_requests_in_flight " + std::to_string(g.in_flight) + "\n";
  header(out, "attend_connections", "gauge", "Open client connections.");
  out += "attend_connections " + std::to_string(g.connections) + "\n";
  header(out, "attend_connections_refused_total", "counter", "Connections closed at once: --max-connections reached.");
  out += "attend_connections_refused_total " + std::to_string(refused_) + "\n";
  header(out, "attend_batches_total", "counter", "Decoding batches run.");
  out += "attend_batches_total " + std::to_string(batches_) + "\n";
  header(out, "attend_batch_sentences", "histogram", "Sentences per decoding batch.");
  out += batch_sentences_.render("attend_batch_sentences");
  header(out, "attend_batch_requests", "histogram", "Requests merged into one decoding batch.");
  out += batch_requests_.render("attend_batch_requests");
  header(out, "attend_sentences_total", "counter", "Sentences decoded.");
  out += "attend_sentences_total " + std::to_string(sentences_) + "\n";
  header(out, "attend_source_tokens_total", "counter", "Source tokens decoded.");
  out += "attend_source_tokens_total " + std::to_string(source_tokens_) + "\n";
  header(out, "attend_output_tokens_total", "counter", "Output tokens produced.");
  out += "attend_output_tokens_total " + std::to_string(output_tokens_) + "\n";
  header(out, "attend_decode_seconds_total", "counter", "Worker time spent decoding.");
  out += "attend_decode_seconds_total " + number(decode_seconds_) + "\n";
  header(out, "attend_output_tokens_per_second", "gauge", "Output tokens per second of decoding, since start.");
  out += "attend_output_tokens_per_second " +
         number(decode_seconds_ > 0 ? static_cast<double>(output_tokens_) / decode_seconds_ : 0.0) + "\n";
  return out;
}

}  // namespace attend::serve
