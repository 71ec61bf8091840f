// attend: the command-line tool. Library errors arrive as exceptions; only this file turns them
// into messages and exit codes (0 success, 1 failure, 2 bad usage).
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "app.h"

int main(int argc, char** argv) {
  try {
    return attend::cli::run(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "attend: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attend: error: %s\n", e.what());
    return 1;
  }
}
