// attend cli: `attend score`: BLEU and chrF of a file of translations against a file of
// references, as sacrebleu prints them, without a model.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace attend::cli {

struct ScoreArgs {
  std::string ref, hyp;
  bool json = false;
};

CLI::App* add_score_command(CLI::App& app, ScoreArgs& args);
int run_score(const ScoreArgs& args);

// The lines sacrebleu prints for BLEU and chrF, with their signatures (text), or one JSON object.
std::string format_translation_scores(const std::vector<std::string>& hypotheses,
                                      const std::vector<std::string>& references, bool json);

}  // namespace attend::cli
