#include "output.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace attend::cli {

namespace {
[[noreturn]] void stdout_failed(int err) {
  throw std::runtime_error(std::string("standard output: write failed (") +
                           (err ? std::strerror(err) : "an earlier write failed") + ")");
}
}  // namespace

void write_stdout(const std::string& text) {
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::ferror(stdout)) stdout_failed(errno);
}

void check_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) stdout_failed(errno);
}

bool StdinLines::fill(bool wait) {
  if (eof_) return false;
  if (!wait) {
    pollfd p{0, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return true;  // nothing now; not the end
  }
  if (pos_ > 0) buf_.erase(0, pos_), pos_ = 0;
  char chunk[1 << 16];
  ssize_t n;
  do n = ::read(0, chunk, sizeof chunk);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw std::runtime_error(std::string("standard input: read failed (") + std::strerror(errno) + ")");
  if (n == 0) {
    eof_ = true;
    return false;
  }
  buf_.append(chunk, static_cast<size_t>(n));
  return true;
}

std::optional<StdinLines::Line> StdinLines::next(bool wait) {
  for (;;) {
    const size_t nl = buf_.find('\n', pos_);
    if (skipping_) {  // drop the rest of a too-long line
      if (nl == std::string::npos) {
        skipped_ += buf_.size() - pos_, pos_ = buf_.size();
      } else {
        Line l{"", true, skipped_ + nl - pos_};
        pos_ = nl + 1, skipping_ = false, skipped_ = 0;
        return l;
      }
    } else if (nl != std::string::npos && nl - pos_ <= max_bytes_) {
      Line l{buf_.substr(pos_, nl - pos_)};
      pos_ = nl + 1;
      if (!l.text.empty() && l.text.back() == '\r') l.text.pop_back();
      l.bytes = l.text.size();
      return l;
    } else if (buf_.size() - pos_ > max_bytes_) {
      skipping_ = true, skipped_ = 0;
      continue;
    }
    const size_t before = buf_.size() - pos_;
    if (!fill(wait)) {  // the end: a last line without a newline
      if (skipping_) {
        skipping_ = false;
        return Line{"", true, skipped_};
      }
      if (pos_ >= buf_.size()) return std::nullopt;
      Line l{buf_.substr(pos_)};
      pos_ = buf_.size();
      l.bytes = l.text.size();
      return l;
    }
    if (!wait && buf_.size() - pos_ == before) return std::nullopt;  // nothing more yet
  }
}

}  // namespace attend::cli
