// attend cli: `attend quantize`: a model directory with its weights stored in int8.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace attend::cli {

struct QuantizeArgs {
  std::string model, out;
  bool overwrite = false;
};

CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& args);
int run_quantize(const QuantizeArgs& args);

}  // namespace attend::cli
