// attend data: parallel text in TSV files (source<TAB>target, one pair per line).
#pragma once

#include <string>
#include <vector>

namespace attend {

struct Example {
  std::string source, target;
  size_t line = 0;  // 1-based line of its file, for errors (0: not read from a file)
};

struct TsvOptions {
  size_t max_line_bytes = 4096;  // a longer line is an error (a wrong file, most likely)
  bool allow_empty = false;      // an empty file is an error unless this is set
};

// Reads `path`. Errors (std::runtime_error) name the file and line: missing file, a line with
// no tab or more than one, an empty side, an over-long line, no examples at all.
std::vector<Example> read_tsv(const std::string& path, const TsvOptions& options = {});
// The same for text already in memory; `origin` names it in errors.
std::vector<Example> parse_tsv(const std::string& text, const std::string& origin, const TsvOptions& options = {});
void write_tsv(const std::string& path, const std::vector<Example>& examples);
std::string tsv_text(const std::vector<Example>& examples);  // what write_tsv writes

}  // namespace attend
