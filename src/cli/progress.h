// attend cli: training progress on a terminal (a live bar) or in a log (plain lines).
#pragma once

#include <string>

#include "attend/train/trainer.h"

namespace attend::cli {

class ProgressReporter {
 public:
  explicit ProgressReporter(bool terminal);
  void step(const TrainProgress& p);
  void eval(const EvalRecord& r);
  void message(const std::string& m);
  void finish();

 private:
  void clear_line();
  bool terminal_;
  bool line_open_ = false;
  double last_log_ = -1.0;
  double last_draw_ = -1.0;
};

std::string format_duration(double seconds);     // "1:05:09", "4:02"
std::string format_fixed(double v, int digits);  // "%.*f"
// An evaluation's dev score by its metric: "exact match 96.50%", "BLEU 21.30", "loss 1.2345".
std::string format_dev_score(const EvalRecord& r);

}  // namespace attend::cli
