// Side-by-side ratios on top of Google Benchmark: a program registers, for every case, the
// same work done several ways, named "CASE/BASELINE" and "CASE/OTHER" (e.g. "B:8/S:30/composed"
// and "B:8/S:30/fused"); Google Benchmark times them one after the other in one run, and this
// reporter adds a Markdown table with one row per case: every time and baseline / other. The
// times are CPU time per iteration: the programs are single-threaded, and CPU time is what a
// neighbour's load on this shared machine disturbs least.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace attend::bench {

class SideBySide : public benchmark::ConsoleReporter {
 public:
  // What the variants are called in the names: the baseline, then the others.
  SideBySide(std::string baseline, std::vector<std::string> others)
      : baseline_(std::move(baseline)), others_(std::move(others)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const std::string name = r.benchmark_name();
      const size_t cut = name.rfind('/');
      if (cut == std::string::npos) continue;
      const std::string key = name.substr(0, cut), variant = name.substr(cut + 1);
      if (!times_.count(key)) order_.push_back(key);
      times_[key][variant] = r.GetAdjustedCPUTime();  // per iteration, in the run's time unit
      unit_ = benchmark::GetTimeUnitString(r.time_unit);
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::string head = "\n| case | " + baseline_ + " (" + unit_ + ")", rule = "|---|---:";
    for (const std::string& o : others_) {
      head += " | " + o + " (" + unit_ + ") | " + baseline_ + " / " + o;
      rule += "|---:|---:";
    }
    std::printf("%s |\n%s|\n", head.c_str(), rule.c_str());
    for (const std::string& key : order_) {
      const auto& t = times_[key];
      if (!t.count(baseline_)) continue;
      std::printf("| %s | %.2f", key.c_str(), t.at(baseline_));
      for (const std::string& o : others_) {
        if (t.count(o))
          std::printf(" | %.2f | %.2fx", t.at(o), t.at(baseline_) / t.at(o));
        else
          std::printf(" | | ");
      }
      std::printf(" |\n");
    }
  }

 private:
  std::string baseline_;
  std::vector<std::string> others_;
  std::string unit_ = "ns";
  std::vector<std::string> order_;
  std::map<std::string, std::map<std::string, double>> times_;
};

// The main of a side-by-side program, after its cases are registered.
inline int run_side_by_side(int argc, char** argv, const std::string& baseline,
                            const std::vector<std::string>& others) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  SideBySide reporter(baseline, others);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace attend::bench
