#include "progress.h"

#include <cmath>
#include <cstdio>

namespace attend::cli {

std::string format_fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string format_dev_score(const EvalRecord& r) {
  if (r.metric == "bleu") return "BLEU " + format_fixed(r.dev_bleu, 2);
  if (r.metric == "chrf") return "chrF " + format_fixed(r.dev_chrf, 2);
  if (r.metric == "loss") return "loss " + format_fixed(r.dev_loss, 4);
  return "exact match " + format_fixed(100 * r.dev_exact_match, 2) + "%";
}

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

ProgressReporter::ProgressReporter(bool terminal) : terminal_(terminal) {}

void ProgressReporter::clear_line() {
  if (line_open_) {
    std::fputs("\r\x1b[2K", stderr);
    line_open_ = false;
  }
}

void ProgressReporter::step(const TrainProgress& p) {
  const double frac = p.steps_per_epoch ? double(p.step_in_epoch) / p.steps_per_epoch : 0.0;
  if (terminal_) {
    if (p.elapsed_seconds - last_draw_ < 0.1 && p.step_in_epoch != p.steps_per_epoch) return;
    last_draw_ = p.elapsed_seconds;
    const int width = 28, filled = static_cast<int>(frac * width);
    std::string bar(filled, '#');
    bar += std::string(width - filled, '.');
    std::fprintf(stderr, "\r\x1b[2Kepoch %d/%d [%s] %3.0f%%  loss %.4f  %.0f tok/s  elapsed %s  epoch ETA %s", p.epoch,
                 p.epochs, bar.c_str(), 100 * frac, p.loss, p.tokens_per_second,
                 format_duration(p.elapsed_seconds).c_str(), format_duration(p.eta_seconds).c_str());
    std::fflush(stderr);
    line_open_ = true;
  } else if (p.elapsed_seconds - last_log_ >= 15.0 || last_log_ < 0) {
    last_log_ = p.elapsed_seconds;
    std::fprintf(stderr, "epoch %d/%d step %lld (%3.0f%% of epoch) loss %.4f %.0f tok/s elapsed %s\n", p.epoch,
                 p.epochs, static_cast<long long>(p.step), 100 * frac, p.loss, p.tokens_per_second,
                 format_duration(p.elapsed_seconds).c_str());
  }
}

void ProgressReporter::eval(const EvalRecord& r) {
  clear_line();
  char extra[64] = "";
  if (r.metric == "bleu" || r.metric == "chrf")
    std::snprintf(extra, sizeof extra, "  dev BLEU %.2f  chrF %.2f", r.dev_bleu, r.dev_chrf);
  else if (r.metric == "loss")
    std::snprintf(extra, sizeof extra, "  dev loss %.4f", r.dev_loss);
  std::fprintf(stderr,
               "epoch %d step %lld: train loss %.4f  dev exact match %.2f%%  dev error rate %.2f%%%s  lr %.2g  %s%s\n",
               r.epoch, static_cast<long long>(r.step), r.train_loss, 100 * r.dev_exact_match, 100 * r.dev_error_rate,
               extra, r.lr, format_duration(r.elapsed_seconds).c_str(), r.best ? "  (best, saved)" : "");
}

void ProgressReporter::message(const std::string& m) {
  clear_line();
  std::fprintf(stderr, "%s\n", m.c_str());
}

void ProgressReporter::finish() { clear_line(); }

}  // namespace attend::cli
