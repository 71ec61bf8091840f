// attend cli: the command line, apart from main() so that the fuzzer can drive its parser.
#pragma once

namespace attend::cli {

enum class Mode {
  kRun,        // parse, then run the subcommand
  kParseOnly,  // parse and check the settings a run would use; touch no file
};

// Returns the exit code: 0 success, 2 bad usage (reported on stderr). Library errors propagate
// as exceptions: std::invalid_argument for bad settings, std::runtime_error for failures.
int run(int argc, const char* const* argv, Mode mode = Mode::kRun);

}  // namespace attend::cli
