#include "average.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "attend/io/checkpoint.h"
#include "attend/io/files.h"
#include "attend/models/average.h"

namespace attend::cli {

CLI::App* add_average_command(CLI::App& app, AverageArgs& a) {
  auto* cmd = app.add_subcommand(
      "average", "Average the weights of checkpoints of one run (e.g. the last N kept by train --keep-checkpoints)");
  cmd->add_option("--out", a.out, "Model directory to write")->required();
  cmd->add_option("models", a.models, "Model directories (checkpoints of one model)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--overwrite", a.overwrite, "Replace the model already in --out");
  return cmd;
}

namespace {
void average_into(const AverageArgs& a) {
  const DirectoryLock lock(a.out, "attend average");
  recover_checkpoint(a.out);
  std::error_code ec;
  if (!a.overwrite && std::filesystem::exists(a.out + "/config.json", ec))
    throw std::runtime_error(a.out + ": already holds a model; give --overwrite to replace it");
  for (const std::string& m : a.models)
    if (std::filesystem::equivalent(m, a.out, ec))
      throw std::invalid_argument("average: --out " + a.out + " is also one of the inputs");
  average_checkpoints(a.models, a.out);
}
}  // namespace

int run_average(const AverageArgs& a) {
  std::error_code ec;
  const bool fresh = !std::filesystem::exists(a.out, ec);
  make_directories(a.out);
  try {
    average_into(a);
  } catch (...) {
    if (fresh) std::filesystem::remove_all(a.out, ec);  // a failed average leaves no directory behind
    throw;
  }
  std::printf("averaged %zu checkpoints into %s\n", a.models.size(), a.out.c_str());
  return 0;
}

}  // namespace attend::cli
