// attend cli: `attend serve`: trained models behind an HTTP/JSON API with dynamic batching
// (src/serve/server.h; docs/serving.md).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "serve/server.h"

namespace attend::cli {

struct ServeArgs {
  std::vector<std::string> models;  // NAME=DIR
  serve::ServerOptions server;
  int max_wait_ms = 0, read_timeout_ms = 10000, write_timeout_ms = 10000, drain_timeout_ms = 30000;
  bool no_batching = false, quiet = false;
  std::string precision;  // empty: each model as it was saved
};

CLI::App* add_serve_command(CLI::App& app, ServeArgs& args);
int run_serve(const ServeArgs& args);

}  // namespace attend::cli
