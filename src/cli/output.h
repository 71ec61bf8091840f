// attend CLI: standard input and output that lose nothing silently.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace attend::cli {

// Writes to stdout and checks it: a failed write (full disk, closed pipe, /dev/full) throws
// std::runtime_error naming standard output and the reason, so the command exits 1.
void write_stdout(const std::string& text);
// Flushes stdout and checks every write so far; call before reporting success.
void check_stdout();

// Lines of standard input as they arrive, for streaming: next(false) returns a line only when one
// is already complete in what has been read, without waiting; next(true) waits for one (nullopt
// at the end of input). A line longer than `max_bytes` is returned as `too_long` (its bytes are
// skipped to its end, so memory stays bounded on any input).
class StdinLines {
 public:
  explicit StdinLines(size_t max_bytes) : max_bytes_(max_bytes) {}
  struct Line {
    std::string text;
    bool too_long = false;
    size_t bytes = 0;  // the line's length, also when too long
  };
  std::optional<Line> next(bool wait);

 private:
  bool fill(bool wait);  // reads what is available (or waits for some); false at the end of input
  size_t max_bytes_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  bool skipping_ = false;  // inside a too-long line
  size_t skipped_ = 0;
};

}  // namespace attend::cli
