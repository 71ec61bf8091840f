#include "attend/io/checkpoint.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

namespace attend {

namespace {

constexpr const char* kCommitDir = ".commit";
constexpr const char* kStagingPrefix = ".staging.";
constexpr uint64_t kMaxManifestBytes = 1 << 20;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Step 3: moves every file of DIR/.commit into DIR, then removes DIR/.commit.
void roll_forward(const std::string& dir) {
  const std::string commit = dir + "/" + kCommitDir;
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(commit, ec)) names.push_back(e.path().filename().string());
  if (ec) throw std::runtime_error(commit + ": cannot list (" + ec.message() + ")");
  // The manifest last: while .commit holds it, readers take it (and the files it names) from there.
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return (a == kManifestFile) < (b == kManifestFile) || ((a == kManifestFile) == (b == kManifestFile) && a < b);
  });
  for (const std::string& n : names) rename_file(commit + "/" + n, dir + "/" + n);
  fsync_directory(dir);
  file_step("rmdir", commit);
  if (::rmdir(commit.c_str()) != 0) throw_errno(commit, "cannot remove", errno);
  fsync_directory(dir);
}

void remove_tree(const std::string& path) {
  file_step("remove", path);
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot remove (" + ec.message() + ")");
}

// The manifest of a set of files: {"format", "version", "files": {name: {bytes, sha256}}}.
std::string manifest_text(const std::vector<CheckpointFile>& files) {
  nlohmann::ordered_json m = {{"format", "attend-checkpoint"}, {"version", 1}};
  m["files"] = nlohmann::ordered_json::object();
  for (const auto& f : files) m["files"][f.name] = {{"bytes", f.bytes.size()}, {"sha256", sha256_hex(f.bytes)}};
  return m.dump(2) + "\n";
}

// DIR/.commit/NAME while a save is being finished, DIR/NAME otherwise; null when neither is.
std::unique_ptr<MappedFile> open_current(const std::string& dir, const std::string& name) {
  for (const std::string& p : {dir + "/" + kCommitDir + "/" + name, dir + "/" + name}) {
    try {
      return std::make_unique<MappedFile>(p);
    } catch (const std::runtime_error&) {
      if (exists(p)) throw;  // there but unreadable: say why
    }
  }
  return nullptr;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: OpenSSL's digest failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) out += hex[md[i] >> 4], out += hex[md[i] & 15];
  return out;
}

void recover_checkpoint(const std::string& dir) {
  if (exists(dir + "/" + kCommitDir)) roll_forward(dir);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(kStagingPrefix, 0) == 0) remove_tree(e.path().string());
}

void save_checkpoint(const std::string& dir, const std::vector<CheckpointFile>& files) {
  for (const auto& f : files)
    if (f.name.empty() || f.name.find('/') != std::string::npos || f.name[0] == '.' || f.name == kManifestFile)
      throw std::invalid_argument("save_checkpoint: bad file name '" + f.name + "'");
  make_directories(dir);
  recover_checkpoint(dir);
  const std::string staging = dir + "/" + kStagingPrefix + std::to_string(::getpid());
  make_directories(staging);
  for (const auto& f : files) write_file_atomic(staging + "/" + f.name, f.bytes);
  write_file_atomic(staging + "/" + kManifestFile, manifest_text(files));
  rename_file(staging, dir + "/" + kCommitDir);  // the commit point
  fsync_directory(dir);
  roll_forward(dir);
}

CheckpointReader::CheckpointReader(const std::string& dir, const std::vector<std::string>& names,
                                   const std::vector<std::string>& optional)
    : dir_(dir) {
  std::string problem;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (try_read(names, optional, &problem)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20 << attempt));  // a writer may be mid-save
  }
  throw std::runtime_error(problem);
}

bool CheckpointReader::try_read(const std::vector<std::string>& required, const std::vector<std::string>& optional,
                                std::string* problem) {
  files_.clear();
  std::unique_ptr<MappedFile> manifest = open_current(dir_, kManifestFile);
  nlohmann::json m;
  if (manifest) {
    if (manifest->bytes().size() > kMaxManifestBytes)
      throw std::runtime_error(path(kManifestFile) + ": " + std::to_string(manifest->bytes().size()) +
                               " bytes is more than a manifest can be");
    try {
      m = nlohmann::json::parse(manifest->bytes());
      if (m.at("format") != "attend-checkpoint") throw std::runtime_error("format is not 'attend-checkpoint'");
      if (m.at("version") != 1)
        throw std::runtime_error("version " + m.at("version").dump() + " (this attend reads 1)");
      if (!m.at("files").is_object()) throw std::runtime_error("'files' is not an object");
    } catch (const std::exception& e) {
      *problem = path(kManifestFile) + ": not a valid checkpoint manifest: " + e.what();
      return false;
    }
  }
  verified_ = manifest != nullptr;
  std::vector<std::string> names = required;
  for (const std::string& name : optional) {
    std::error_code ec;
    if (verified_ ? m["files"].contains(name) : std::filesystem::exists(path(name), ec)) names.push_back(name);
  }
  for (const std::string& name : names) {
    std::unique_ptr<MappedFile> f = open_current(dir_, name);
    if (!f) {
      *problem = path(name) + ": missing (" +
                 (verified_ ? "the checkpoint is incomplete" : "does the directory hold a model?") + ")";
      return false;
    }
    if (verified_) {
      const auto it = m["files"].find(name);
      if (it == m["files"].end()) {
        *problem = path(kManifestFile) + ": does not list " + name;
        return false;
      }
      const std::string want_hash = it->value("sha256", ""), got_hash = sha256_hex(f->bytes());
      const uint64_t want_size = it->value("bytes", uint64_t{0});
      if (want_size != f->bytes().size() || want_hash != got_hash) {
        *problem = path(name) + ": does not match " + kManifestFile + " (" + std::to_string(f->bytes().size()) +
                   " bytes, sha256 " + got_hash.substr(0, 16) + "...; the manifest says " + std::to_string(want_size) +
                   " bytes, " + want_hash.substr(0, 16) + "...): it was " +
                   (f->bytes().size() < want_size ? "truncated" : "changed or damaged") +
                   " after it was saved (to use a deliberately edited file, delete " + kManifestFile + ")";
        return false;
      }
    }
    files_[name] = std::move(f);
  }
  return true;
}

std::string_view CheckpointReader::bytes(const std::string& name) const {
  const auto it = files_.find(name);
  if (it == files_.end()) throw std::invalid_argument("CheckpointReader: " + name + " was not read");
  return it->second->bytes();
}

}  // namespace attend
