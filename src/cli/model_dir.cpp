#include "model_dir.h"

#include <filesystem>
#include <stdexcept>

#include "attend/io/checkpoint.h"
#include "attend/io/files.h"

namespace attend::cli {

namespace {
void write_locked(const std::string& out, bool overwrite, const std::vector<std::string>& inputs,
                  const std::string& who, const std::function<void()>& write) {
  const DirectoryLock lock(out, "attend " + who);
  recover_checkpoint(out);
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(out + "/config.json", ec))
    throw std::runtime_error(out + ": already holds a model; give --overwrite to replace it");
  for (const std::string& m : inputs)
    if (std::filesystem::equivalent(m, out, ec))
      throw std::invalid_argument(who + ": --out " + out + " is also one of the inputs");
  write();
}
}  // namespace

void write_model_directory(const std::string& out, bool overwrite, const std::vector<std::string>& inputs,
                           const std::string& who, const std::function<void()>& write) {
  std::error_code ec;
  const bool fresh = !std::filesystem::exists(out, ec);
  make_directories(out);
  try {
    write_locked(out, overwrite, inputs, who, write);
  } catch (...) {
    if (fresh) std::filesystem::remove_all(out, ec);  // a failed write leaves no directory behind
    throw;
  }
}

}  // namespace attend::cli
