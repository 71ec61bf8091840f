#include "attend/data/lines.h"

#include <stdexcept>

#include "attend/data/utf8.h"
#include "attend/io/files.h"

namespace attend {

std::vector<std::string> read_lines(const std::string& path, const LinesOptions& options) {
  return parse_lines(read_file(path), path, options);
}

std::vector<std::string> parse_lines(const std::string& text, const std::string& origin, const LinesOptions& options) {
  std::vector<std::string> lines = split_lines(text);
  for (size_t n = 0; n < lines.size(); ++n)
    check_text_line(lines[n], origin + ":" + std::to_string(n + 1) + ": ", options.max_line_bytes);
  return lines;
}

std::vector<Example> read_parallel(const std::string& source_path, const std::string& target_path,
                                   const LinesOptions& options) {
  std::vector<std::string> src = read_lines(source_path, options), tgt = read_lines(target_path, options);
  if (src.size() != tgt.size())
    throw std::runtime_error(source_path + " has " + std::to_string(src.size()) + " lines but " + target_path +
                             " has " + std::to_string(tgt.size()) +
                             ": line i of one must translate line i of the other");
  auto blank = [](const std::string& x) { return x.find_first_not_of(" \t\r\f\v") == std::string::npos; };
  std::vector<Example> out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    for (const auto* side : {&src, &tgt})
      if (blank((*side)[i]))
        throw std::runtime_error((side == &src ? source_path : target_path) + ":" + std::to_string(i + 1) +
                                 ": empty line (its pair on the other side is '" +
                                 (side == &src ? tgt : src)[i].substr(0, 60) + "')");
    out.push_back({std::move(src[i]), std::move(tgt[i]), i + 1});
  }
  if (out.empty()) throw std::runtime_error(source_path + ": no examples (the files are empty)");
  return out;
}

}  // namespace attend
