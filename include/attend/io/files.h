// attend io: bounded, checked reads; crash-safe writes; an exclusive lock on a directory.
//
// Every error is a std::runtime_error that names the path and the operating system's reason
// ("permission denied", "is a directory", "is a FIFO", "input/output error", ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace attend {

inline constexpr uint64_t kMaxReadBytes = 1ull << 30;  // read_file's default bound (1 GiB)

// The whole of a regular file (symlinks followed). Anything else (directory, FIFO, device,
// socket) or a file larger than `max_bytes` is refused before a byte is read.
std::string read_file(const std::string& path, uint64_t max_bytes = kMaxReadBytes);

// All of standard input (a pipe, a file, a terminal) up to `max_bytes`; more is an error.
std::string read_stdin(uint64_t max_bytes = kMaxReadBytes);

// A regular file mapped read-only: the pages come from the page cache, so a large model costs
// no copy of its bytes. Same checks as read_file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

// Writes "<path>.tmp.<pid>", fsyncs it, renames it over `path` and fsyncs the directory:
// readers see the old file or the new one, never a torn one, and a failed write leaves the old
// file intact. Short writes and errors at flush and close are errors.
void write_file_atomic(const std::string& path, std::string_view bytes);
void make_directories(const std::string& path);

// The file-system steps the writers above take, each announced here first (the names are for
// error messages): rename, fsync, unlink and so on. Tests set ATTEND_FAULT_KILL_AT=N to be
// killed (SIGKILL) just before the N-th step, or ATTEND_FAULT_FAIL_AT=N to make it fail with
// EIO; ATTEND_FAULT_COUNT=FILE appends each step's name to FILE.
void file_step(const char* what, const std::string& path);
// The same for tests in one process: steps are counted from here; 0 = never.
void set_file_faults(long kill_at, long fail_at);
// Internal helpers shared by the io files (they call file_step themselves).
void fsync_directory(const std::string& dir);
void rename_file(const std::string& from, const std::string& to);
void remove_file(const std::string& path);  // a missing file is fine
[[noreturn]] void throw_errno(const std::string& path, const std::string& what, int err);

// An exclusive lock on DIR/.lock (flock), held until destruction. A second holder fails at once
// naming the directory and the PID that holds it. The directory is created if missing; one that
// cannot be written fails here, before any work.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& dir, const std::string& purpose = "attend train");
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Removes what a killed writer left in `dir`: "*.tmp.<pid>" files. Only for a lock holder.
void remove_stale_temporaries(const std::string& dir);

}  // namespace attend
