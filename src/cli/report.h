// attend cli: `attend report`: one self-contained HTML page about one or more trained models:
// their training curves (metrics.jsonl), their settings, and their attention on sample inputs
// (the page itself: include/attend/viz/report.h).
//
// What cannot be read (a model directory without metrics.jsonl or training state, a data line
// that is not source<TAB>reference, an input the model cannot translate, fewer inputs than
// --samples) is a warning on stderr and at the top of the page; the page shows the rest.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace attend::cli {

struct ReportArgs {
  std::vector<std::string> models;  // model directories, in the order shown
  std::string data;                 // sample inputs: source<TAB>reference, or a source alone, per line
  std::string test;                 // optional: a test file whose metrics go on the model cards
  std::string out = "report.html";
  std::string title;
  int samples = 30;
  int beam = 1;
  int threads = 1;
};

CLI::App* add_report_command(CLI::App& app, ReportArgs& args);
int run_report(const ReportArgs& args);
// The page's JSON document (viz/report.h) and the warnings gathered while making it.
nlohmann::json report_data(const ReportArgs& args);

}  // namespace attend::cli
