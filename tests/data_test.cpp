// Data: the dates generator, TSV reading, vocabularies, tokenizers, batching, metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "attend/data/batch.h"
#include "attend/data/dates.h"
#include "attend/data/lines.h"
#include "attend/data/tsv.h"
#include "attend/eval/alignment.h"
#include "attend/eval/metrics.h"
#include "attend/io/files.h"

namespace attend {
namespace {

std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("attend_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(Dates, WeekdaysAndCalendar) {
  EXPECT_EQ(dates::weekday({2026, 11, 25}), 2);  // a Wednesday
  EXPECT_EQ(dates::weekday({1900, 1, 1}), 0);    // a Monday
  EXPECT_EQ(dates::weekday({2000, 2, 29}), 1);   // a Tuesday
  EXPECT_EQ(dates::days_in_month(1900, 2), 28);
  EXPECT_EQ(dates::days_in_month(2000, 2), 29);
  EXPECT_EQ(dates::all_dates().size(), 73049u);
  EXPECT_EQ(dates::iso({2026, 3, 5}), "2026-03-05");
}

TEST(Dates, EveryFormatRendersAndTwoDigitYearsStayInRange) {
  Rng rng(3);
  const dates::Date d{2026, 11, 25};
  std::set<std::string> seen;
  for (int f = 0; f < dates::format_count(); ++f)
    for (int i = 0; i < 50; ++i) seen.insert(dates::render(d, f, rng));
  auto has = [&](const std::string& s) {
    for (const auto& x : seen) {
      std::string lower = x;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string collapsed = std::regex_replace(lower, std::regex(" +"), " ");
      std::string want = s;
      for (auto& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (collapsed == want) return true;
    }
    return false;
  };
  for (const char* s : {"25 November 2026", "25 Nov 2026", "November 25, 2026", "Nov 25 2026",
                        "Wednesday, November 25, 2026", "11/25/26", "11/25/2026", "25.11.26", "25.11.2026",
                        "2026-11-25", "25th of November 2026", "the 25th of november, 2026", "25 nov. 2026"})
    EXPECT_TRUE(has(s)) << s;
  EXPECT_EQ(dates::render({1949, 5, 1}, 5, rng), "");  // 2-digit years are 1950-2049
  EXPECT_EQ(dates::render({2050, 5, 1}, 7, rng), "");
}

TEST(Dates, SplitsUseDisjointDatesAndAreDeterministic) {
  dates::Splits a = dates::make_splits(3000, 200, 300, 9), b = dates::make_splits(3000, 200, 300, 9);
  ASSERT_EQ(a.train.size(), 3000u);
  EXPECT_EQ(a.train[17].source, b.train[17].source);
  std::set<std::string> held;
  for (const auto& e : a.test) held.insert(e.target);
  for (const auto& e : a.dev) held.insert(e.target);
  for (const auto& e : a.train) EXPECT_EQ(held.count(e.target), 0u) << e.target << " is in train and held out";
  const std::regex iso("(19|20)\\d\\d-\\d\\d-\\d\\d");
  for (const auto& e : a.test) EXPECT_TRUE(std::regex_match(e.target, iso)) << e.target;
}

TEST(Tsv, ErrorsNameFileAndLine) {
  const std::string p = temp_path("bad.tsv");
  { std::ofstream(p) << "a\tb\nno tab here\n"; }
  try {
    read_tsv(p);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ":2:"), std::string::npos) << e.what();
  }
  { std::ofstream(p) << ""; }
  EXPECT_THROW(read_tsv(p), std::runtime_error);
  { std::ofstream(p) << "x\t" << std::string(5000, 'y') << "\n"; }
  EXPECT_THROW(read_tsv(p), std::runtime_error);
  EXPECT_THROW(read_tsv(p + ".missing"), std::runtime_error);
  { std::ofstream(p) << "a b\tc d\r\n\nx\ty\n"; }
  auto ok = read_tsv(p);
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(ok[0].target, "c d");
}

// Plain lines: a byte-order mark and "\r\n" are not data, a last line without '\n' is, empty
// lines are kept (an empty translation is a translation), and bad lines are named.
TEST(Lines, KeepEveryLineAndNameBadOnes) {
  EXPECT_EQ(parse_lines("\xEF\xBB\xBFone\r\n\nthree", "f"), (std::vector<std::string>{"one", "", "three"}));
  EXPECT_TRUE(parse_lines("", "f").empty());
  EXPECT_EQ(parse_lines("a\n", "f").size(), 1u);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] { parse_lines("ok\nbad \xc3\n", "f.txt"); }),
            "f.txt:2: invalid UTF-8 at byte 5 (0xc3) of the line");
  EXPECT_NE(
      message([] { parse_lines("ok\n" + std::string(70000, 'x'), "f.txt"); }).find("f.txt:2: line of 70000 bytes"),
      std::string::npos);
}

// Moses-style parallel files pair line i with line i; anything that does not pair up is named.
TEST(Lines, ParallelFilesPairUpOrSayWhereNot) {
  const std::string src = temp_path("p.src"), tgt = temp_path("p.tgt");
  { std::ofstream(src) << "hola\nadios\n"; }
  { std::ofstream(tgt) << "hello\ngoodbye\n"; }
  auto pairs = read_parallel(src, tgt);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[1].source, "adios");
  EXPECT_EQ(pairs[1].target, "goodbye");
  { std::ofstream(tgt) << "hello\n"; }
  try {
    read_parallel(src, tgt);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(src + " has 2 lines but " + tgt + " has 1"), std::string::npos) << e.what();
  }
  { std::ofstream(tgt) << "hello\n  \n"; }
  try {
    read_parallel(src, tgt);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(tgt + ":2: empty line (its pair on the other side is 'adios')"),
              std::string::npos)
        << e.what();
  }
  { std::ofstream(src) << ""; }
  { std::ofstream(tgt) << ""; }
  EXPECT_THROW(read_parallel(src, tgt), std::runtime_error);
}

// Subword alignments at the word level: weights summed over a word's source pieces, averaged
// over its target pieces; the </s> row stays; rows keep their sums.
TEST(WordAlignment, PiecesMergeIntoWords) {
  const WordGroups src = group_pieces({"\u2581The", "\u2581king", "dom", "."});
  EXPECT_EQ(src.words, (std::vector<std::string>{"The", "kingdom."}));
  EXPECT_EQ(src.word_of_piece, (std::vector<int>{0, 1, 1, 1}));
  const WordGroups tgt = group_pieces({"\u2581Das", "\u2581K\u00f6nig", "reich"});
  const AlignmentMatrix pieces = {{0.7f, 0.1f, 0.1f, 0.1f},   // Das
                                  {0.0f, 0.6f, 0.2f, 0.2f},   // K\u00f6nig
                                  {0.2f, 0.0f, 0.8f, 0.0f},   // reich
                                  {0.1f, 0.1f, 0.1f, 0.7f}};  // </s>
  const AlignmentMatrix words = merge_subwords(pieces, src, tgt);
  ASSERT_EQ(words.size(), 3u);
  EXPECT_NEAR(words[0][0], 0.7f, 1e-6);
  EXPECT_NEAR(words[0][1], 0.3f, 1e-6);
  EXPECT_NEAR(words[1][0], 0.1f, 1e-6);  // (0.0 + 0.2) / 2
  EXPECT_NEAR(words[1][1], 0.9f, 1e-6);  // (1.0 + 0.8) / 2
  EXPECT_NEAR(words[2][1], 0.9f, 1e-6);  // </s>, as it was
  for (const auto& row : words) EXPECT_NEAR(row[0] + row[1], 1.0f, 1e-6);
  EXPECT_EQ(group_pieces({"dom", "\u2581x"}).words, (std::vector<std::string>{"dom", "x"}))
      << "a first piece without a marker";
  EXPECT_THROW(merge_subwords({{1.0f}}, src, tgt), std::invalid_argument);
  const WordGroups chars = one_group_per_token({"a", "b"});
  EXPECT_EQ(merge_subwords({{0.5f, 0.5f}}, chars, one_group_per_token({"x"})), (AlignmentMatrix{{0.5f, 0.5f}}));
}

TEST(Vocab, SpecialsFirstAndDuplicatesRejected) {
  Vocab v;
  EXPECT_EQ(v.id("<pad>"), Vocab::kPad);
  EXPECT_EQ(v.add("x"), 4);
  EXPECT_EQ(v.add("x"), 4);
  EXPECT_EQ(v.id("never"), Vocab::kUnk);
  EXPECT_THROW(Vocab({"<pad>", "<unk>", "<s>", "</s>", "a", "a"}), std::invalid_argument);
  EXPECT_THROW(Vocab({"<unk>", "<pad>", "<s>", "</s>"}), std::invalid_argument);
}

TEST(Tokenizer, CharsSpacesCaseAndUtf8) {
  Tokenizer t{Tokenizer::Kind::kChar, true, true};
  EXPECT_EQ(t.split("  Nov   25 "), (std::vector<std::string>{"n", "o", "v", " ", "2", "5"}));
  Tokenizer u{Tokenizer::Kind::kChar, false, false};
  EXPECT_EQ(u.split("é1").size(), 2u);
  Tokenizer w{Tokenizer::Kind::kSpace, false, false};
  EXPECT_EQ(w.split(" AH  B\tC "), (std::vector<std::string>{"AH", "B", "C"}));
  EXPECT_EQ(w.join({"AH", "B"}), "AH B");
}

TEST(Batch, TimeMajorPaddingAndTargets) {
  std::vector<EncodedExample> ex = {{{5, 6, 7}, {8}}, {{9}, {10, 11}}};
  Batch b = make_batch(ex, {0, 1});
  EXPECT_EQ(b.S, 3);
  EXPECT_EQ(b.T, 3);
  EXPECT_EQ(b.src, (std::vector<int>{5, 9, 6, 0, 7, 0}));
  EXPECT_EQ(b.tgt_in, (std::vector<int>{2, 2, 8, 10, 0, 11}));
  EXPECT_EQ(b.tgt_out, (std::vector<int>{8, 10, 3, 11, 0, 3}));
  EXPECT_EQ(b.target_tokens(), 5);
  Rng rng(1);
  std::vector<EncodedExample> many(10, EncodedExample{{1, 2}, {3}});
  auto batches = make_batches(many, 4, &rng);
  EXPECT_EQ(batches.size(), 3u);
}

TEST(Metrics, EditDistanceExactMatchAndMultipleReferences) {
  EXPECT_EQ(edit_distance({"a", "b", "c"}, {"a", "c"}), 1u);
  EXPECT_EQ(edit_distance({}, {"a", "b"}), 2u);
  EXPECT_EQ(edit_distance({"k", "i", "t"}, {"s", "i", "t", "s"}), 2u);
  // Output 1 matches its second reference; output 2 is empty (2 deletions against a 2-token reference).
  Scores s = score({{"x", "y"}, {}}, {{{"x"}, {"x", "y"}}, {{"a", "b"}}});
  EXPECT_DOUBLE_EQ(s.exact_match, 0.5);
  EXPECT_DOUBLE_EQ(s.error_rate, 2.0 / 4.0);
  EXPECT_DOUBLE_EQ(s.token_accuracy, 2.0 / 4.0);
}

// Bounds 2, 4: lengths 0-2, 3-4, 5+; each bucket scored as score() scores its own inputs.
TEST(Metrics, ScoresByLengthBucket) {
  const std::vector<Tokens> out = {{"a"}, {"b"}, {"c"}, {"d", "e"}, {"x"}};
  const std::vector<std::vector<Tokens>> refs = {{{"a"}}, {{"x"}}, {{"c"}}, {{"d"}}, {{"x"}}};
  const auto buckets = score_by_length({1, 2, 3, 4, 9}, out, refs, {2, 4});
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].first, 0u);
  EXPECT_EQ(buckets[0].last, 2u);
  EXPECT_EQ(buckets[1].first, 3u);
  EXPECT_EQ(buckets[1].last, 4u);
  EXPECT_EQ(buckets[2].first, 5u);
  EXPECT_EQ(buckets[2].last, 0u);
  EXPECT_EQ(buckets[0].scores.sentences, 2u);
  EXPECT_DOUBLE_EQ(buckets[0].scores.exact_match, 0.5);  // a right, b wrong
  EXPECT_DOUBLE_EQ(buckets[1].scores.exact_match, 0.5);  // c right, "d e" wrong
  EXPECT_DOUBLE_EQ(buckets[1].scores.error_rate, 1.0 / 2.0);
  EXPECT_DOUBLE_EQ(buckets[2].scores.exact_match, 1.0);
  EXPECT_EQ(score_by_length({9}, {{"x"}}, {{{"x"}}}, {2, 4})[1].scores.sentences, 0u);  // empty bucket listed
  for (const std::vector<int>& bad : {std::vector<int>{4, 4}, {0}, {5, 2}, {2000000}})
    EXPECT_THROW(score_by_length({1}, {{"a"}}, {{{"a"}}}, bad), std::invalid_argument);
  EXPECT_THROW(score_by_length({1, 2}, {{"a"}}, {{{"a"}}}, {2}), std::invalid_argument);
}

TEST(AlignmentStats, HandWorkedDiagonalAndReordering) {
  // A one-hot diagonal: monotone, zero entropy, all mass on the diagonal.
  AlignmentMatrix diag = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  AlignmentStats d = alignment_stats(diag);
  EXPECT_DOUBLE_EQ(d.monotonicity, 1.0);
  EXPECT_DOUBLE_EQ(d.entropy, 0.0);
  EXPECT_DOUBLE_EQ(d.diagonality, 1.0);
  EXPECT_EQ(pharaoh(diag, 2), "0-0 1-1");  // the last row (</s>) left out
  // Reversed, with one uniform row (argmax: the first position); entropy (0 + log 3 + 0) / 3.
  AlignmentMatrix rev = {{0, 0, 1}, {1.f / 3, 1.f / 3, 1.f / 3}, {1, 0, 0}};
  AlignmentStats r = alignment_stats(rev);
  EXPECT_DOUBLE_EQ(r.monotonicity, 0.5);  // argmax 2 -> 0 (back) -> 0 (stays: not backwards)
  EXPECT_NEAR(r.entropy, std::log(3.0) / 3, 1e-6);
  EXPECT_EQ(pharaoh(rev, 3), "2-0 0-1 0-2");
  AlignmentStats total;
  accumulate(total, d);
  accumulate(total, r);
  EXPECT_EQ(total.steps, 6u);
  EXPECT_NEAR(total.entropy, (0.0 + std::log(3.0) / 3) / 2, 1e-6);
}

TEST(Files, AtomicWriteReplacesWholeFile) {
  const std::string p = temp_path("atomic.txt");
  write_file_atomic(p, "first");
  write_file_atomic(p, "second");
  EXPECT_EQ(read_file(p), "second");
  EXPECT_THROW(write_file_atomic("/nonexistent-dir/x", "y"), std::runtime_error);
}

}  // namespace
}  // namespace attend
