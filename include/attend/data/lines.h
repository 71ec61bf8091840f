// attend data: plain text read line by line: a file of translations to score, or one side of a
// Moses-style parallel corpus (line i of the source file is translated by line i of the target
// file, the convention of every MT toolkit).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "attend/data/tsv.h"

namespace attend {

struct LinesOptions {
  size_t max_line_bytes = 1 << 16;  // a longer line is an error (a wrong file, most likely)
};

// The lines of `path` without their '\n' (or "\r\n"); a UTF-8 byte-order mark is dropped and a
// last line without '\n' counts. Errors (std::runtime_error) name the file and line: invalid
// UTF-8, an over-long line; reading errors name the file.
std::vector<std::string> read_lines(const std::string& path, const LinesOptions& options = {});
// The same for text already in memory; `origin` names it in errors.
std::vector<std::string> parse_lines(const std::string& text, const std::string& origin,
                                     const LinesOptions& options = {});

// Pairs line i of `source_path` with line i of `target_path`. Errors name the files: different
// line counts (with both counts), an empty or blank side (with its file and line), no pairs.
std::vector<Example> read_parallel(const std::string& source_path, const std::string& target_path,
                                   const LinesOptions& options = {});

}  // namespace attend
