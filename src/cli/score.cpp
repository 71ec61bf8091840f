#include "score.h"

#include <cstdio>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "attend/data/lines.h"
#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"
#include "attend/io/files.h"

namespace attend::cli {

CLI::App* add_score_command(CLI::App& app, ScoreArgs& a) {
  auto* cmd = app.add_subcommand(
      "score", "BLEU and chrF of translations against references (one sentence per line), as sacrebleu computes them");
  const CLI::Validator file_or_stdin = CLI::ExistingFile | CLI::IsMember({"-"});
  cmd->add_option("--ref", a.ref, "References, one per line (- for standard input)")->required()->check(file_or_stdin);
  cmd->add_option("--hyp", a.hyp,
                  "Translations, one per line, line i translating the source of reference i (- for standard input)")
      ->required()
      ->check(file_or_stdin);
  cmd->add_flag("--json", a.json, "Print one JSON object");
  return cmd;
}

std::string format_translation_scores(const std::vector<std::string>& hypotheses,
                                      const std::vector<std::string>& references, bool json) {
  const BleuScore bleu = corpus_bleu(hypotheses, references);
  const ChrfScore chrf = corpus_chrf(hypotheses, references);
  if (!json) return bleu.str() + "\n" + chrf.str() + "\n";
  const nlohmann::json j = {
      {"sentences", hypotheses.size()},          {"bleu", bleu.score},      {"bleu_precisions", bleu.precisions},
      {"brevity_penalty", bleu.brevity_penalty}, {"hyp_len", bleu.hyp_len}, {"ref_len", bleu.ref_len},
      {"bleu_signature", kBleuSignature},        {"chrf", chrf.score},      {"chrf_signature", kChrfSignature}};
  return j.dump() + "\n";
}

namespace {
std::vector<std::string> lines_of(const std::string& path) {
  return path == "-" ? parse_lines(read_stdin(), "standard input") : read_lines(path);
}
}  // namespace

int run_score(const ScoreArgs& a) {
  if (a.ref == "-" && a.hyp == "-") throw std::invalid_argument("score: --ref and --hyp cannot both be standard input");
  const std::vector<std::string> refs = lines_of(a.ref), hyps = lines_of(a.hyp);
  auto name = [](const std::string& path) { return path == "-" ? std::string("standard input") : path; };
  if (refs.size() != hyps.size())
    throw std::runtime_error(name(a.hyp) + " has " + std::to_string(hyps.size()) + " lines but " + name(a.ref) +
                             " has " + std::to_string(refs.size()) + ": line i of one must translate the source of " +
                             "line i of the other");
  std::fputs(format_translation_scores(hyps, refs, a.json).c_str(), stdout);
  return 0;
}

}  // namespace attend::cli
