// A fresh directory for a test's files: TMPDIR/attend_PREFIX_NAME_PID, emptied if it exists.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace attend::testing {

inline std::string fresh_temp_dir(const std::string& prefix, const std::string& name) {
  const std::filesystem::path d =
      std::filesystem::temp_directory_path() / ("attend_" + prefix + "_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

}  // namespace attend::testing
