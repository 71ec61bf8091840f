#include "validators.h"

#include <string>

namespace attend::cli {

// "--threads: must be a whole number in [1, 8], got '0'" rather than CLI11's range message. Every
// integer from the command line is bounded here, before any arithmetic is done with it.
CLI::Validator whole(long min, long max) {
  return CLI::Validator(
      [min, max](std::string& v) -> std::string {
        try {
          size_t used = 0;
          const long x = std::stol(v, &used);
          if (used == v.size() && x >= min && x <= max) return "";
        } catch (const std::exception&) {}
        if (max == INT32_MAX) return "must be a whole number >= " + std::to_string(min) + ", got '" + v + "'";
        return "must be a whole number in [" + std::to_string(min) + ", " + std::to_string(max) + "], got '" + v + "'";
      },
      max == INT32_MAX ? ">=" + std::to_string(min) : "[" + std::to_string(min) + ", " + std::to_string(max) + "]");
}
CLI::Validator at_least(long min) { return whole(min); }

// Floats: "--lr: must be a number > 0, got '-1'".
CLI::Validator number(double min, bool inclusive, double max) {
  return CLI::Validator(
      [=](std::string& v) -> std::string {
        try {
          size_t used = 0;
          const double x = std::stod(v, &used);
          if (used == v.size() && (inclusive ? x >= min : x > min) && x <= max) return "";
        } catch (const std::exception&) {}
        std::string range = std::string(inclusive ? ">= " : "> ") + CLI::detail::to_string(min);
        if (max < 1e300) range += " and <= " + CLI::detail::to_string(max);
        return "must be a number " + range + ", got '" + v + "'";
      },
      "NUMBER");
}

}  // namespace attend::cli
