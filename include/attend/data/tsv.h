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
// The lines of `text`, unchecked: without their '\n' (or "\r\n"); a UTF-8 byte-order mark is
// dropped and a last line without '\n' counts.
std::vector<std::string> split_lines(const std::string& text);
// The checks parse_tsv makes of each line, for readers that go on past a bad one; errors
// (std::runtime_error) begin with `where` ("FILE:LINE: "). check_text_line: length and UTF-8;
// parse_tsv_line: one tab, two sides that are not blank (a checked, non-empty line).
void check_text_line(const std::string& line, const std::string& where, size_t max_line_bytes);
Example parse_tsv_line(const std::string& line, const std::string& where);
void write_tsv(const std::string& path, const std::vector<Example>& examples);
std::string tsv_text(const std::vector<Example>& examples);  // what write_tsv writes

}  // namespace attend
