// attend cli: validators for numbers from the command line, with messages that name the flag,
// the range and the value ("--threads: must be a whole number in [1, 8], got '0'").
#pragma once

#include <climits>
#include <cstdint>

#include <CLI/CLI.hpp>

namespace attend::cli {

// Every integer from the command line is bounded here, before any arithmetic is done with it.
CLI::Validator whole(long min, long max = INT32_MAX);
CLI::Validator at_least(long min);
// Floats: "--lr: must be a number > 0, got '-1'".
CLI::Validator number(double min, bool inclusive, double max = 1e300);

}  // namespace attend::cli
