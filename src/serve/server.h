// attend serve: the HTTP/1.1 server (Boost.Beast over Asio). One I/O thread reads and writes
// every connection asynchronously, so a slow or idle client costs a socket, not a thread; each
// request must arrive whole within the read timeout and its answer leave within the write
// timeout. Translation requests go through the dynamic batcher (batcher.h) to the decoding
// workers; answers are posted back to the I/O thread.
//
//   GET  /health             200 {"status": "ok"}; 503 while draining
//   GET  /v1/models          the models, their architectures and sizes
//   GET  /metrics            Prometheus text
//   POST /v1/translate       api.h
//   POST /v1/align           api.h, with the alignment
//   POST /v1/models/reload   {"model": NAME} or {} for all; SIGHUP reloads all
// SIGTERM or SIGINT: stop accepting, finish what was read (up to drain_timeout), exit; a second
// signal exits at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "serve/api.h"
#include "serve/batcher.h"
#include "serve/models.h"

namespace attend::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (reported to on_listening)
  BatcherOptions batcher;
  RequestLimits limits;
  size_t max_body_bytes = 1 << 20;                // larger bodies: 413
  size_t max_header_bytes = 8192;                 // larger headers: 431
  size_t max_connections = 1024;                  // more are closed at once
  std::chrono::milliseconds read_timeout{10000};  // a whole request, from its first byte (or idle wait)
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds drain_timeout{30000};
  bool log_requests = true;  // one line per request on stderr
  void validate() const;     // std::invalid_argument naming the option and its range
};

class Server {
 public:
  Server(ModelSet& models, ServerOptions options);
  ~Server();
  // Listens (std::runtime_error naming the address when it cannot), calls on_listening with the
  // port, serves until SIGTERM/SIGINT and drains. Returns 0 after a complete drain, 1 when the
  // drain timed out or a second signal cut it short.
  int run(const std::function<void(int port)>& on_listening);

  struct Impl;  // in server.cpp, with the connections it serves

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace attend::serve
