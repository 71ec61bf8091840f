#include "average.h"

#include <cstdio>

#include "attend/models/average.h"
#include "model_dir.h"

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

int run_average(const AverageArgs& a) {
  write_model_directory(a.out, a.overwrite, a.models, "average", [&] { average_checkpoints(a.models, a.out); });
  std::printf("averaged %zu checkpoints into %s\n", a.models.size(), a.out.c_str());
  return 0;
}

}  // namespace attend::cli
