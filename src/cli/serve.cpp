#include "serve.h"

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <optional>

#include "attend/threads.h"
#include "validators.h"

namespace attend::cli {

CLI::App* add_serve_command(CLI::App& app, ServeArgs& a) {
  auto* cmd = app.add_subcommand("serve", "Serve models over HTTP with JSON, batching concurrent requests together");
  serve::ServerOptions& s = a.server;
  cmd->add_option("--model", a.models, "NAME=DIR: a model directory, served under NAME (repeat for several)")
      ->required();
  cmd->add_option("--precision", a.precision,
                  "fp32, or int8: every model decodes with int8 products. Default: each as it was saved (int8 "
                  "after attend quantize, else fp32)")
      ->check(CLI::IsMember({"fp32", "int8"}));
  cmd->add_option("--host", s.host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port", s.port, "Port to listen on (0: any free port, printed at start)")
      ->check(whole(0, 65535))
      ->capture_default_str();
  cmd->add_option("--threads", s.batcher.workers, "Decoding workers: batches decoded at once, one core each")
      ->check(whole(1, 256))
      ->capture_default_str();
  cmd->add_option("--max-batch-tokens", s.batcher.max_batch_cost,
                  "Source tokens per decoding batch (requests are merged up to it)")
      ->check(whole(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--max-wait-ms", a.max_wait_ms,
                  "How long a free worker waits for more requests to batch with (0: batches form from what queued "
                  "while the workers were busy)")
      ->check(whole(0, 10000))
      ->capture_default_str();
  cmd->add_flag("--no-batching", a.no_batching, "Decode every request on its own (for comparison)");
  cmd->add_option("--max-queue", s.batcher.max_queue, "Requests waiting to be decoded; more get 503")
      ->check(whole(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--max-connections", s.max_connections, "Open connections; more are closed at once")
      ->check(whole(1, 100000))
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "Largest request body; larger get 413")
      ->check(whole(64, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--max-inputs", s.limits.max_inputs, "Inputs per request")
      ->check(whole(1, 100000))
      ->capture_default_str();
  cmd->add_option("--max-input-bytes", s.limits.max_input_bytes, "Bytes per input")
      ->check(whole(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--max-beam", s.limits.max_beam, "Largest beam a request may ask for")
      ->check(whole(1, 64))
      ->capture_default_str();
  cmd->add_option("--read-timeout-ms", a.read_timeout_ms, "A request must arrive whole within this")
      ->check(whole(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--write-timeout-ms", a.write_timeout_ms, "An answer must be taken within this")
      ->check(whole(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--drain-timeout-ms", a.drain_timeout_ms, "On SIGTERM, how long to finish requests in flight")
      ->check(whole(1, 3600000))
      ->capture_default_str();
  cmd->add_flag("--quiet", a.quiet, "No log line per request");
  return cmd;
}

namespace {

// A socket per connection, plus the model files and the listener: the soft limit (often 1,024)
// is raised towards what --max-connections needs, within the hard limit.
void raise_file_limit(size_t wanted) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= wanted) return;
  const rlim_t before = r.rlim_cur;
  r.rlim_cur = std::min<rlim_t>(wanted, r.rlim_max);
  const rlim_t now = setrlimit(RLIMIT_NOFILE, &r) == 0 ? r.rlim_cur : before;
  if (now < wanted)
    std::fprintf(stderr, "attend serve: warning: open files limited to %llu (--max-connections wants %zu)\n",
                 static_cast<unsigned long long>(now), wanted);
}

}  // namespace

int run_serve(const ServeArgs& a) {
  serve::ServerOptions o = a.server;
  o.batcher.max_wait = std::chrono::milliseconds(a.max_wait_ms);
  o.batcher.batching = !a.no_batching;
  o.read_timeout = std::chrono::milliseconds(a.read_timeout_ms);
  o.write_timeout = std::chrono::milliseconds(a.write_timeout_ms);
  o.drain_timeout = std::chrono::milliseconds(a.drain_timeout_ms);
  o.log_requests = !a.quiet;
  o.validate();
  std::vector<std::pair<std::string, std::string>> specs;
  for (const std::string& m : a.models) specs.push_back(serve::parse_model_spec(m));
  set_threads(1);  // each worker decodes on one core; --threads is the number of workers
  raise_file_limit(o.max_connections + 64);
  std::signal(SIGPIPE, SIG_IGN);
  serve::ModelSet models(specs, a.precision.empty() ? std::nullopt : std::optional(parse_precision(a.precision)));
  serve::Server server(models, o);
  const int code = server.run([&](int port) {
    std::fprintf(stderr, "attend serve: %zu model%s, %d worker%s, listening on http://%s:%d\n", specs.size(),
                 specs.size() == 1 ? "" : "s", o.batcher.workers, o.batcher.workers == 1 ? "" : "s", o.host.c_str(),
                 port);
  });
  std::fprintf(stderr, "attend serve: stopped\n");
  return code;
}

}  // namespace attend::cli
