// attend cli: `attend average`: the mean of the weights of several checkpoints of one run.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace attend::cli {

struct AverageArgs {
  std::string out;
  std::vector<std::string> models;
  bool overwrite = false;
};

CLI::App* add_average_command(CLI::App& app, AverageArgs& args);
int run_average(const AverageArgs& args);

}  // namespace attend::cli
