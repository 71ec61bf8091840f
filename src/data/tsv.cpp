#include "attend/data/tsv.h"

#include <stdexcept>

#include "attend/data/utf8.h"
#include "attend/io/files.h"

namespace attend {

std::vector<Example> read_tsv(const std::string& path, const TsvOptions& opt) {
  return parse_tsv(read_file(path), path, opt);  // errors say why (missing, a directory, permission ...)
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  const size_t bom = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a UTF-8 byte-order mark is not data
  for (size_t begin = bom; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

void check_text_line(const std::string& line, const std::string& where, size_t max_line_bytes) {
  if (line.size() > max_line_bytes) {
    throw std::runtime_error(where + "line of " + std::to_string(line.size()) + " bytes is longer than the limit of " +
                             std::to_string(max_line_bytes));
  }
  if (const std::string bad = describe_utf8_error(line); !bad.empty())
    throw std::runtime_error(where + bad + " of the line");
}

Example parse_tsv_line(const std::string& line, const std::string& where) {
  const size_t tab = line.find('\t');
  if (tab == std::string::npos)
    throw std::runtime_error(where + "no tab in '" + line.substr(0, 60) + "' (expected source<TAB>target)");
  if (line.find('\t', tab + 1) != std::string::npos)
    throw std::runtime_error(where + "more than one tab in '" + line.substr(0, 60) + "'");
  Example e{line.substr(0, tab), line.substr(tab + 1), 0};
  if (e.source.empty() || e.target.empty())
    throw std::runtime_error(where + "empty " + std::string(e.source.empty() ? "source" : "target"));
  auto blank = [](const std::string& x) { return x.find_first_not_of(" \t\r\f\v") == std::string::npos; };
  if (blank(e.source) || blank(e.target))
    throw std::runtime_error(where + "the " + std::string(blank(e.source) ? "source" : "target") +
                             " is only white space");
  return e;
}

std::vector<Example> parse_tsv(const std::string& text, const std::string& path, const TsvOptions& opt) {
  std::vector<Example> out;
  size_t lineno = 0;
  for (const std::string& line : split_lines(text)) {
    ++lineno;
    check_text_line(line, path + ":" + std::to_string(lineno) + ": ", opt.max_line_bytes);
    if (line.empty()) continue;
    Example e = parse_tsv_line(line, path + ":" + std::to_string(lineno) + ": ");
    e.line = lineno;
    out.push_back(std::move(e));
  }
  if (out.empty() && !opt.allow_empty) throw std::runtime_error(path + ": no examples (the file is empty)");
  return out;
}

std::string tsv_text(const std::vector<Example>& examples) {
  std::string text;
  for (const auto& e : examples) text.append(e.source).append("\t").append(e.target).append("\n");
  return text;
}

void write_tsv(const std::string& path, const std::vector<Example>& examples) {
  write_file_atomic(path, tsv_text(examples));
}

}  // namespace attend
