// attend data: a verse-aligned parallel corpus from two Bible translations as Debian packages
// them for SWORD (`diatheke`): Reina-Valera 1909 (Spanish), the World English Bible and the King
// James Version, all public domain.
//
// Each module is exported with `diatheke -b MODULE -f OSIS -k "Genesis 1:1 - Revelation 22:21"`:
// one line per verse, "Book C:V: " and the verse in OSIS markup. The export's quirks, each handled
// here: words tagged without a space between them (`</w><w>`: a space is put back); headings and
// Psalm titles printed before the key, and repeated before every later key of the chapter (KJV:
// until Revelation); the WEB glossary appended to Revelation 22:21; Strong's-number attributes
// (`<w lemma="G5547">`); verses that one versification has and the other leaves empty (the pair is
// dropped); books outside the 66 of the Protestant canon (WEB's deuterocanon: dropped).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "attend/data/tsv.h"

namespace attend::bible {

struct Verse {
  std::string key;   // "Genesis 1:1" (diatheke's book names)
  int book = 0;      // 0-based index into books()
  std::string text;  // plain text, whitespace collapsed; empty when the module has none
};

// The 66 books in canonical order, as diatheke names them ("I Samuel", "Revelation of John").
const std::vector<std::string>& books();

// The verses of one export, in order. `origin` names the export in errors: a verse key that
// appears twice (with both line numbers).
std::vector<Verse> parse_export(const std::string& text, const std::string& origin);
// One verse's OSIS markup as plain text (tags removed, a space between tagged words, headings
// dropped, whitespace collapsed).
std::string plain_text(std::string_view osis);

struct Split {
  std::vector<Example> examples;
  std::vector<std::string> keys;  // examples[i] is verse keys[i]
};
struct Corpus {
  Split train, dev, test;
  size_t dropped = 0;  // verses of either module without a non-empty partner
};
// Pairs the verses present and non-empty in both, split by book so that no test verse has its
// neighbours in training: test = Mark, Jonah, James, Esther; dev = Ruth, Philippians,
// Lamentations, Titus; train = the other books.
Corpus align(const std::vector<Verse>& source, const std::vector<Verse>& target);

// The book (index into books()) of each line of a `.keys` file, checked against the data file it
// names the verses of: one key per line of `data_path` (`lines` of them), each "BOOK C:V".
// Errors (std::runtime_error) name the files and counts, or the file, line and key.
std::vector<int> read_keys(const std::string& path, size_t lines, const std::string& data_path);

// The SWORD modules of a language pair: "es-en" (spaRV1909eb -> engWEB2015eb) or "kjv-web"
// (engKJV2006eb -> engWEB2015eb); throws std::invalid_argument naming the pairs otherwise.
struct Pair {
  std::string source_module, target_module;
};
Pair modules(const std::string& pair);

}  // namespace attend::bible
