#include "attend/data/bible.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "attend/data/lines.h"

namespace attend::bible {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The length of "C:V: " at s[at] (digits, ':', digits, ':', ' '), or 0.
size_t chapter_verse_length(std::string_view s, size_t at) {
  size_t i = at;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && is_digit(s[i]) && i - start < 4) ++i;
    return i > start;
  };
  if (!digits() || i >= s.size() || s[i] != ':') return 0;
  ++i;
  if (!digits() || i + 1 >= s.size() || s[i] != ':' || s[i + 1] != ' ') return 0;
  return i + 2 - at;
}

struct Key {
  size_t begin = std::string_view::npos, end = 0;  // the key "Book C:V" is [begin, end - 2): ": " follows
  int book = -1;
};

// The first "Book C:V: " in a line that starts at the line's start or after a space or a tag:
// what comes before it is a heading.
Key find_key(std::string_view line) {
  for (size_t p = 0; p < line.size(); ++p) {
    if (p > 0 && line[p - 1] != ' ' && line[p - 1] != '>') continue;
    for (size_t b = 0; b < books().size(); ++b) {
      const std::string& name = books()[b];
      if (line.compare(p, name.size(), name) != 0 || p + name.size() >= line.size() || line[p + name.size()] != ' ')
        continue;
      if (const size_t cv = chapter_verse_length(line, p + name.size() + 1))
        return {p, p + name.size() + 1 + cv, static_cast<int>(b)};
    }
  }
  return {};
}

// Tags that separate words (poetry lines, milestones, paragraphs): a space in the plain text.
bool separates_words(std::string_view tag) {
  size_t i = tag[1] == '/' ? 2 : 1;
  size_t j = i;
  while (j < tag.size() && std::isalpha(static_cast<unsigned char>(tag[j]))) ++j;
  const std::string_view name = tag.substr(i, j - i);
  return name == "l" || name == "lg" || name == "milestone" || name == "p" || name == "div" || name == "br" ||
         name == "lb";
}

void append_entity(std::string& out, std::string_view s, size_t& i) {
  static const std::pair<const char*, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  for (const auto& [name, c] : kEntities) {
    const std::string_view n(name);
    if (s.compare(i, n.size(), n) == 0) {
      out.push_back(c);
      i += n.size();
      return;
    }
  }
  out.push_back(s[i++]);
}

// The World English Bible's glossary follows its last verse.
constexpr std::string_view kWebGlossary = "The following words used in the World English Bible";

}  // namespace

const std::vector<std::string>& books() {
  static const std::vector<std::string> names = {"Genesis",
                                                 "Exodus",
                                                 "Leviticus",
                                                 "Numbers",
                                                 "Deuteronomy",
                                                 "Joshua",
                                                 "Judges",
                                                 "Ruth",
                                                 "I Samuel",
                                                 "II Samuel",
                                                 "I Kings",
                                                 "II Kings",
                                                 "I Chronicles",
                                                 "II Chronicles",
                                                 "Ezra",
                                                 "Nehemiah",
                                                 "Esther",
                                                 "Job",
                                                 "Psalms",
                                                 "Proverbs",
                                                 "Ecclesiastes",
                                                 "Song of Solomon",
                                                 "Isaiah",
                                                 "Jeremiah",
                                                 "Lamentations",
                                                 "Ezekiel",
                                                 "Daniel",
                                                 "Hosea",
                                                 "Joel",
                                                 "Amos",
                                                 "Obadiah",
                                                 "Jonah",
                                                 "Micah",
                                                 "Nahum",
                                                 "Habakkuk",
                                                 "Zephaniah",
                                                 "Haggai",
                                                 "Zechariah",
                                                 "Malachi",
                                                 "Matthew",
                                                 "Mark",
                                                 "Luke",
                                                 "John",
                                                 "Acts",
                                                 "Romans",
                                                 "I Corinthians",
                                                 "II Corinthians",
                                                 "Galatians",
                                                 "Ephesians",
                                                 "Philippians",
                                                 "Colossians",
                                                 "I Thessalonians",
                                                 "II Thessalonians",
                                                 "I Timothy",
                                                 "II Timothy",
                                                 "Titus",
                                                 "Philemon",
                                                 "Hebrews",
                                                 "James",
                                                 "I Peter",
                                                 "II Peter",
                                                 "I John",
                                                 "II John",
                                                 "III John",
                                                 "Jude",
                                                 "Revelation of John"};
  return names;
}

std::string plain_text(std::string_view osis) {
  if (const size_t g = osis.find(kWebGlossary); g != std::string_view::npos) osis = osis.substr(0, g);
  std::string out;
  int in_title = 0;  // headings inside a verse are not part of its text
  for (size_t i = 0; i < osis.size();) {
    if (osis[i] == '<') {
      const size_t close = osis.find('>', i);
      if (close == std::string_view::npos) break;  // a cut-off tag: nothing after it is text
      const std::string_view tag = osis.substr(i, close + 1 - i);
      if (tag.rfind("<title", 0) == 0 && tag.back() != '/' && tag[tag.size() - 2] != '/') ++in_title;
      if (tag.rfind("</title", 0) == 0 && in_title > 0) --in_title;
      // </w><w>: two tagged words with nothing between them.
      if (separates_words(tag) || (tag.rfind("</w", 0) == 0 && osis.compare(close + 1, 2, "<w") == 0))
        out.push_back(' ');
      i = close + 1;
    } else if (in_title > 0) {
      ++i;
    } else if (osis[i] == '&') {
      append_entity(out, osis, i);
    } else {
      out.push_back(osis[i++]);
    }
  }
  std::string collapsed;  // whitespace (tabs, newlines, runs) as single spaces, none at the ends
  for (char c : out) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (!space)
      collapsed.push_back(c);
    else if (!collapsed.empty() && collapsed.back() != ' ')
      collapsed.push_back(' ');
  }
  if (!collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
  return collapsed;
}

std::vector<Verse> parse_export(const std::string& text, const std::string& origin) {
  std::vector<Verse> verses;
  std::unordered_map<std::string, size_t> line_of;
  size_t lineno = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    ++lineno;
    const Key k = find_key(line);
    if (k.book < 0) continue;  // the module's name at the end, a book outside the 66
    Verse v{std::string(line.substr(k.begin, k.end - 2 - k.begin)), k.book, plain_text(line.substr(k.end))};
    const auto [it, fresh] = line_of.emplace(v.key, lineno);
    if (!fresh)
      throw std::runtime_error(origin + ": verse " + v.key + " appears twice (lines " + std::to_string(it->second) +
                               " and " + std::to_string(lineno) + ")");
    verses.push_back(std::move(v));
  }
  return verses;
}

Corpus align(const std::vector<Verse>& source, const std::vector<Verse>& target) {
  static const std::set<std::string> kTest = {"Mark", "Jonah", "James", "Esther"},
                                     kDev = {"Ruth", "Philippians", "Lamentations", "Titus"};
  std::unordered_map<std::string, const Verse*> by_key;
  for (const Verse& v : target) by_key.emplace(v.key, &v);
  Corpus c;
  size_t paired = 0;
  for (const Verse& s : source) {
    const auto it = by_key.find(s.key);
    if (it == by_key.end() || s.text.empty() || it->second->text.empty()) continue;
    const std::string& book = books()[s.book];
    Split& split = kTest.count(book) ? c.test : kDev.count(book) ? c.dev : c.train;
    split.examples.push_back({s.text, it->second->text});
    split.keys.push_back(s.key);
    ++paired;
  }
  c.dropped = source.size() + target.size() - 2 * paired;
  return c;
}

std::vector<int> read_keys(const std::string& path, size_t lines, const std::string& data_path) {
  const std::vector<std::string> keys = read_lines(path);
  if (keys.size() != lines)
    throw std::runtime_error(path + " names " + std::to_string(keys.size()) + " verses but " + data_path + " has " +
                             std::to_string(lines) + " lines: the keys are not those of this file");
  std::vector<int> book(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string line = keys[i] + ": ";
    const Key k = find_key(line);
    if (k.book < 0 || k.begin != 0 || k.end != line.size())
      throw std::runtime_error(path + ":" + std::to_string(i + 1) + ": '" + keys[i].substr(0, 80) +
                               "' is not a verse key (BOOK CHAPTER:VERSE, e.g. 'Mark 1:1')");
    book[i] = k.book;
  }
  return book;
}

Pair modules(const std::string& pair) {
  if (pair == "es-en") return {"spaRV1909eb", "engWEB2015eb"};
  if (pair == "kjv-web") return {"engKJV2006eb", "engWEB2015eb"};
  throw std::invalid_argument("bible: unknown pair '" + pair + "' (expected es-en or kjv-web)");
}

}  // namespace attend::bible
