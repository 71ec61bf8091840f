#include "quantize.h"

#include <filesystem>

#include "attend/models/translator.h"
#include "model_dir.h"

namespace attend::cli {

CLI::App* add_quantize_command(CLI::App& app, QuantizeArgs& a) {
  auto* cmd = app.add_subcommand("quantize",
                                 "Write a copy of a model with int8 weights (a quarter of the size; it decodes with "
                                 "--precision int8 unless told fp32)");
  cmd->add_option("--model", a.model, "Model directory to quantize")->required();
  cmd->add_option("--out", a.out, "Model directory to write")->required();
  cmd->add_flag("--overwrite", a.overwrite, "Replace the model already in --out");
  return cmd;
}

int run_quantize(const QuantizeArgs& a) {
  const Translator model = Translator::load(a.model, Precision::kFp32);
  write_model_directory(a.out, a.overwrite, {a.model}, "quantize", [&] { model.save(a.out, Precision::kInt8); });
  std::error_code ec;
  const auto before = std::filesystem::file_size(a.model + "/model.safetensors", ec);
  const auto after = std::filesystem::file_size(a.out + "/model.safetensors", ec);
  std::printf("quantized %s into %s: weights %.1f MB -> %.1f MB\n", a.model.c_str(), a.out.c_str(), before / 1e6,
              after / 1e6);
  return 0;
}

}  // namespace attend::cli
