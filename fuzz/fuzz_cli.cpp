// libFuzzer target: the command line's argument parsing. The input is split at NUL bytes into
// arguments; parsing (and checking the settings a run would use) must succeed, report a usage
// error, or throw std::invalid_argument / std::runtime_error — never crash. Nothing is run.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../src/cli/app.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"attend"};
  std::string cur;
  for (size_t i = 0; i < size && args.size() < 64; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    const int code = attend::cli::run(static_cast<int>(argv.size()), argv.data(), attend::cli::Mode::kParseOnly);
    if (code != 0 && code != 2) __builtin_trap();
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {}
  return 0;
}
