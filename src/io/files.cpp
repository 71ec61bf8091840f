#include "attend/io/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace attend {

void throw_errno(const std::string& path, const std::string& what, int err) {
  throw std::runtime_error(path + ": " + what + " (" + std::strerror(err) + ")");
}

namespace {

// ---- fault injection --------------------------------------------------------------------

struct FaultPlan {
  long kill_at = 0, fail_at = 0;
  std::string count_file;
  long steps = 0;
  std::mutex mu;
  FaultPlan() {
    if (const char* k = std::getenv("ATTEND_FAULT_KILL_AT")) kill_at = std::atol(k);
    if (const char* f = std::getenv("ATTEND_FAULT_FAIL_AT")) fail_at = std::atol(f);
    if (const char* c = std::getenv("ATTEND_FAULT_COUNT")) count_file = c;
  }
};

FaultPlan& fault_plan() {
  static FaultPlan plan;
  return plan;
}

// ---- reading ----------------------------------------------------------------------------

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "is a directory, not a file";
  if (S_ISFIFO(m)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISCHR(m)) return "is a character device, not a regular file";
  if (S_ISBLK(m)) return "is a block device, not a regular file";
  if (S_ISSOCK(m)) return "is a socket, not a regular file";
  return nullptr;
}

// Opens `path` for reading and checks that it is a regular file of at most `max_bytes`.
int open_regular(const std::string& path, uint64_t max_bytes, uint64_t* size) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_errno(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_errno(path, "cannot stat", err);
  }
  if (const char* kind = file_kind(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(path + ": " + kind);
  }
  *size = static_cast<uint64_t>(st.st_size);
  if (*size > max_bytes) {
    ::close(fd);
    throw std::runtime_error(path + ": " + std::to_string(*size) + " bytes is more than the limit of " +
                             std::to_string(max_bytes) + " for this kind of file");
  }
  return fd;
}

}  // namespace

void file_step(const char* what, const std::string& path) {
  FaultPlan& p = fault_plan();
  if (!p.kill_at && !p.fail_at && p.count_file.empty()) return;
  std::lock_guard<std::mutex> lock(p.mu);
  const long n = ++p.steps;
  if (!p.count_file.empty()) {
    if (FILE* f = std::fopen(p.count_file.c_str(), "a")) {
      std::fprintf(f, "%ld %s %s\n", n, what, path.c_str());
      std::fclose(f);
    }
  }
  if (n == p.kill_at) ::raise(SIGKILL);
  if (n == p.fail_at) throw_errno(path, std::string(what) + " failed (injected fault)", EIO);
}

void set_file_faults(long kill_at, long fail_at) {
  FaultPlan& p = fault_plan();
  std::lock_guard<std::mutex> lock(p.mu);
  p.kill_at = kill_at, p.fail_at = fail_at, p.steps = 0;
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  uint64_t size = 0;
  const int fd = open_regular(path, max_bytes, &size);
  std::string out;
  try {
    out.resize(size);
  } catch (const std::bad_alloc&) {
    ::close(fd);
    throw std::runtime_error(path + ": not enough memory to read its " + std::to_string(size) + " bytes");
  }
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw_errno(path, "read failed", err);
    }
    if (n == 0) {
      ::close(fd);
      throw std::runtime_error(path + ": the file shrank while it was read (" + std::to_string(done) + " of " +
                               std::to_string(size) + " bytes)");
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

std::string read_stdin(uint64_t max_bytes) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("standard input", "read failed", errno);
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > max_bytes)
      throw std::runtime_error("standard input: more than " + std::to_string(max_bytes) + " bytes");
    out.append(buf, static_cast<size_t>(n));
  }
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  uint64_t size = 0;
  const int fd = open_regular(path, UINT64_MAX, &size);
  size_ = static_cast<size_t>(size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw_errno(path, "cannot map " + std::to_string(size) + " bytes", err);
    }
    data_ = static_cast<const char*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

void fsync_directory(const std::string& dir) {
  file_step("fsync", dir);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno(dir, "cannot open the directory to sync it", errno);
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw_errno(dir, "fsync of the directory failed", err);  // EINVAL: not supported
}

void rename_file(const std::string& from, const std::string& to) {
  file_step("rename", to);
  if (::rename(from.c_str(), to.c_str()) != 0) throw_errno(to, "rename from " + from + " failed", errno);
}

void remove_file(const std::string& path) {
  file_step("unlink", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno(path, "cannot remove", errno);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  file_step("create", tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno(path, "cannot write", errno);
  auto fail = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw_errno(path, what, err);
  };
  try {
    file_step("write", tmp);
  } catch (const std::runtime_error&) {
    fail("write failed (injected fault)", EIO);
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write failed", errno);
    done += static_cast<size_t>(n);
  }
  try {
    file_step("fsync", tmp);
  } catch (const std::runtime_error&) {
    fail("flush failed (injected fault)", EIO);
  }
  if (::fsync(fd) != 0) fail("flush failed", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_errno(path, "close failed", err);
  }
  try {
    rename_file(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  fsync_directory(dir.empty() ? "." : dir);
}

void make_directories(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return;
  file_step("mkdir", path);
  std::filesystem::create_directories(path, ec);
  if (ec) throw std::runtime_error(path + ": cannot create directory (" + ec.message() + ")");
}

DirectoryLock::DirectoryLock(const std::string& dir, const std::string& purpose) {
  make_directories(dir);
  const std::string path = dir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw_errno(dir, "cannot write in this directory", errno);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {0};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw_errno(path, "cannot lock", err);
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw std::runtime_error(dir + ": in use by another " + purpose + (holder.empty() ? "" : " (PID " + holder + ")") +
                             "; two runs into one directory would mix their files. Wait for it to end, stop it, or "
                             "choose another directory");
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw_errno(path, "cannot write", err);
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock; the file stays (removing it would race)
}

void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 >= name.size()) continue;
    if (name.find_first_not_of("0123456789", at + 5) != std::string::npos) continue;
    remove_file(entry.path().string());
  }
}

}  // namespace attend
