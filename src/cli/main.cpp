// attend: the command-line tool. Library errors arrive as exceptions; only this file turns them
// into messages and exit codes (0 success, 1 failure, 2 bad usage).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

#include "app.h"
#include "attend/train/communicator.h"

namespace {

int run_command(int argc, char** argv) {
  try {
    return attend::cli::run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "attend: error: out of memory\n");
    return 1;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "attend: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attend: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace

// Success is reported only when everything written to stdout reached it, through the final close
// (a full disk, /dev/full or a closed pipe is an error, exit 1).
int main(int argc, char** argv) {
  int code = run_command(argc, argv);
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0 && !std::ferror(stdout);
  const int flush_err = errno;
  errno = 0;
  const bool closed = std::fclose(stdout) == 0;
  const int close_err = errno;
  if (!flushed || !closed) {
    const int err = !flushed ? flush_err : close_err;
    std::fprintf(stderr, "attend: error: standard output: write failed (%s)\n",
                 err ? std::strerror(err) : "an earlier write failed");
    if (code == 0) code = 1;
  }
  attend::Communicator::finish(code);  // under mpirun: a failed rank stops the others
  return code;
}
