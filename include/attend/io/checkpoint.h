// attend io: a set of files in a directory replaced as one unit (a model checkpoint).
//
// save_checkpoint(dir, files) never leaves a mix of two checkpoints, whatever fails or is killed
// and when:
//   1. every file, and last a manifest `checkpoint.json` (each file's size and SHA-256), is
//      written and fsynced into the staging directory DIR/.staging.<pid>;
//   2. the staging directory is renamed to DIR/.commit: the commit point, one rename;
//   3. each file is moved from DIR/.commit into DIR, then DIR/.commit is removed.
// A reader takes each file from DIR/.commit when it is there and from DIR otherwise, so before
// step 2 it sees the old checkpoint whole, and from step 2 on the new one whole. The next writer
// finishes an interrupted step 3 and discards a staging directory (recover_checkpoint).
// Reading verifies every file against the manifest; a directory without one (written before
// manifests existed) is read as it is.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "attend/io/files.h"

namespace attend {

inline constexpr const char* kManifestFile = "checkpoint.json";

struct CheckpointFile {
  std::string name;  // a plain file name inside the directory
  std::string bytes;
};

// Writes `files` (and the manifest) into `dir` as one unit; the caller holds the directory lock.
void save_checkpoint(const std::string& dir, const std::vector<CheckpointFile>& files);

// Finishes a committed but unfinished save and removes staging directories left by a kill.
// Only for the holder of the directory lock.
void recover_checkpoint(const std::string& dir);

// The files of one checkpoint, mapped and verified against its manifest. When a writer replaces
// the checkpoint while it is being read, the read is retried; a file that disagrees with the
// manifest every time is an error naming it, its size and hash, and what the manifest expects.
class CheckpointReader {
 public:
  // `names` must all be there; `optional` are read when the checkpoint has them (its manifest
  // lists them, or, without a manifest, the file exists).
  CheckpointReader(const std::string& dir, const std::vector<std::string>& names,
                   const std::vector<std::string>& optional = {});
  std::string_view bytes(const std::string& name) const;
  bool has(const std::string& name) const { return files_.count(name) != 0; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  bool verified() const { return verified_; }  // false for a directory without a manifest

 private:
  bool try_read(const std::vector<std::string>& names, const std::vector<std::string>& optional, std::string* problem);
  std::string dir_;
  std::map<std::string, std::unique_ptr<MappedFile>> files_;
  bool verified_ = false;
};

std::string sha256_hex(std::string_view bytes);

}  // namespace attend
