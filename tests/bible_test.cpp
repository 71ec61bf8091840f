// attend data bible: each quirk of diatheke's OSIS exports on a small fixture, the split by
// book, and (when Debian's modules are installed) the real es-en corpus.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "attend/data/bible.h"
#include "attend/data/tsv.h"
#include "attend/io/process.h"
#include "cli_run.h"

namespace attend::bible {
namespace {

TEST(BibleText, TaggedWordsGetTheirSpaceBackAndMarkupGoes) {
  EXPECT_EQ(plain_text("In the <w>beginning</w>, <w>God</w><w>created</w> <w>the</w> heavens."),
            "In the beginning, God created the heavens.");
  EXPECT_EQ(plain_text("<w lemma=\"G5547\">de Jesucristo</w>, <w>Hijo</w>.<milestone type=\"line\"/>"),
            "de Jesucristo, Hijo.");  // Strong's numbers are attributes: gone with the tag
  EXPECT_EQ(plain_text("<lg sID=\"a\"/><l level=\"1\"/>first line<l level=\"2\"/>second   line\t<lg eID=\"a\"/>"),
            "first line second line");
  EXPECT_EQ(plain_text("<title type=\"section\">A Heading</title>The verse &amp; more"), "The verse & more");
  EXPECT_EQ(plain_text("saints. Amen.            The following words used in the World English Bible (WEB) are "
                       "not very common... Abaddon Abaddon is Hebrew for destruction."),
            "saints. Amen.");
  EXPECT_EQ(plain_text("<milestone type=\"line\"/>"), "");
}

TEST(BibleExport, KeysAfterHeadingsAndBooksWithSpaces) {
  const std::string text =
      "Genesis 1:1: In the <w>beginning</w>.<milestone type=\"line\"/>\n"
      "A Psalm by David, when he fled from Absalom his son.  Psalms 3:1: Yahweh, how <w>many</w>!\n"
      "<w>David’s</w> Psalm of <w>praise</w>.   Revelation of John 22:21: The <w>grace</w>.\n"
      "<title canonical=\"true\">A praise psalm.</title> <l sID=\"x\"/>Tobit 6:18: <milestone type=\"line\"/>\n"
      "I John 1:1: That which was.\n"
      "III John 1:2: Beloved.\n"
      "John 3:16: For God so loved.\n"
      "Mark 9:44: <milestone type=\"line\"/>\n"
      "(engWEB2015eb)\n";
  const std::vector<Verse> v = parse_export(text, "fixture");
  ASSERT_EQ(v.size(), 7u) << "Tobit is not among the 66 books; the module's name is not a verse";
  EXPECT_EQ(v[0].key, "Genesis 1:1");
  EXPECT_EQ(v[1].key, "Psalms 3:1");
  EXPECT_EQ(v[1].text, "Yahweh, how many!") << "the Psalm title before the key is a heading";
  EXPECT_EQ(v[2].key, "Revelation of John 22:21");
  EXPECT_EQ(v[2].text, "The grace.") << "KJV repeats the last Psalm title before every later verse";
  EXPECT_EQ(v[3].key, "I John 1:1");
  EXPECT_EQ(v[4].key, "III John 1:2");
  EXPECT_EQ(v[5].key, "John 3:16");
  EXPECT_EQ(books()[v[5].book], "John");
  EXPECT_EQ(v[6].key, "Mark 9:44");
  EXPECT_EQ(v[6].text, "");
  try {
    parse_export("Ruth 1:1: a\nRuth 1:2: b\nRuth 1:1: c\n", "diatheke -b X");
    FAIL() << "a repeated verse was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "diatheke -b X: verse Ruth 1:1 appears twice (lines 1 and 3)");
  }
}

TEST(BibleAlign, PairsNonEmptyVersesOfBothAndSplitsByBook) {
  const std::string src =
      "Genesis 1:1: En el principio.\nRuth 1:1: Aconteció.\nMark 1:1: Principio.\nMark 9:44: Donde el gusano.\n"
      "Titus 1:1: Pablo.\nJames 1:1: Jacobo.\n";
  const std::string tgt =
      "Genesis 1:1: In the beginning.\nRuth 1:1: It happened.\nMark 1:1: The beginning.\nMark 9:44: "
      "<milestone type=\"line\"/>\nTitus 1:1: Paul.\nRomans 1:1: Paul, a servant.\n";
  const Corpus c = align(parse_export(src, "src"), parse_export(tgt, "tgt"));
  ASSERT_EQ(c.train.examples.size(), 1u);
  EXPECT_EQ(c.train.keys[0], "Genesis 1:1");
  EXPECT_EQ(c.train.examples[0].source, "En el principio.");
  EXPECT_EQ(c.train.examples[0].target, "In the beginning.");
  EXPECT_EQ(c.dev.keys, (std::vector<std::string>{"Ruth 1:1", "Titus 1:1"}));
  EXPECT_EQ(c.test.keys, (std::vector<std::string>{"Mark 1:1"}));
  // Mark 9:44 (empty in the target), James 1:1 (no target), Romans 1:1 (no source): 4 verses.
  EXPECT_EQ(c.dropped, 4u);
  EXPECT_THROW(modules("es-fr"), std::invalid_argument);
}

// The real thing, when Debian's modules are installed (scripts/install-deps.sh bible).
// A .keys file must name one verse per line of the data it belongs to.
TEST(BibleKeys, KeysFilesAreCheckedAgainstTheirData) {
  const std::string dir = ::testing::TempDir() + "/attend_keys_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/good.keys") << "Mark 1:1\nI Samuel 3:4\nRevelation of John 22:21\n";
  std::ofstream(dir + "/bad.keys") << "Mark 1:1\nMark one\nMark 1:3\n";
  std::ofstream(dir + "/nobook.keys") << "Mark 1:1\nMarcos 1:2\nMark 1:3\n";
  EXPECT_EQ(read_keys(dir + "/good.keys", 3, "t.tsv"), (std::vector<int>{40, 8, 65}));
  auto error = [&](const std::string& file, size_t lines) {
    try {
      read_keys(dir + "/" + file, lines, "t.tsv");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error("good.keys", 4),
            dir + "/good.keys names 3 verses but t.tsv has 4 lines: the keys are not those of this file");
  EXPECT_EQ(error("bad.keys", 3),
            dir + "/bad.keys:2: 'Mark one' is not a verse key (BOOK CHAPTER:VERSE, e.g. 'Mark 1:1')");
  EXPECT_NE(error("nobook.keys", 3).find("nobook.keys:2: 'Marcos 1:2' is not a verse key"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(BibleData, EsEnFromTheInstalledModules) {
  if (!program_exists("diatheke")) GTEST_SKIP() << "diatheke is not installed";
  const std::string list = run_program({"diatheke", "-b", "system", "-k", "modulelist"});
  if (list.find("spaRV1909eb") == std::string::npos || list.find("engWEB2015eb") == std::string::npos)
    GTEST_SKIP() << "the SWORD modules are not installed";
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("attend_bible_" + std::to_string(::getpid()))).string();
  const auto r = attend::testing::run("data bible --pair es-en --out " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto train = read_tsv(dir + "/train.tsv"), dev = read_tsv(dir + "/dev.tsv"), test = read_tsv(dir + "/test.tsv");
  EXPECT_GT(train.size() + dev.size() + test.size(), 30000u);
  EXPECT_LT(train.size() + dev.size() + test.size(), 31103u);
  EXPECT_NEAR(double(test.size()), 1000, 50);
  EXPECT_NEAR(double(dev.size()), 390, 30);
  std::ifstream keys(dir + "/test.keys");
  std::string first;
  std::getline(keys, first);
  EXPECT_EQ(first, "Esther 1:1");
  EXPECT_EQ(read_keys(dir + "/test.keys", test.size(), dir + "/test.tsv").size(), test.size());
  EXPECT_TRUE(std::filesystem::exists(dir + "/checkpoint.json")) << "the six files are written as one unit";
  for (const auto& e : train) {
    ASSERT_EQ(e.source.find('<'), std::string::npos) << e.source;
    ASSERT_EQ(e.target.find("The following words"), std::string::npos) << "the WEB glossary leaked";
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace attend::bible
