// attend io: whole-file reads and crash-safe writes.
#pragma once

#include <string>

namespace attend {

// Writes to "<path>.tmp.<pid>", flushes it to disk, then renames over `path`: readers see the
// old file or the new one, never a torn one, and a failed write leaves the old file intact.
void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);  // throws std::runtime_error naming the path
void make_directories(const std::string& path);

}  // namespace attend
