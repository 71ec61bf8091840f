#include "data.h"

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "attend/data/bible.h"
#include "attend/data/tsv.h"
#include "attend/io/checkpoint.h"
#include "attend/io/files.h"
#include "attend/io/process.h"

namespace attend::cli {

namespace {

constexpr const char* kBiblePackages = "diatheke sword-text-sparv sword-text-web sword-text-kjv";

bool modules_installed(const bible::Pair& p) {
  if (!program_exists("diatheke")) return false;
  const std::string list = run_program({"diatheke", "-b", "system", "-k", "modulelist"}, 1 << 20);
  return list.find(p.source_module + " :") != std::string::npos &&
         list.find(p.target_module + " :") != std::string::npos;
}

// Installs diatheke and the modules with the project's script (which asks for nothing already
// there), or says how when the source tree with the script is not at hand.
void install_modules(const bible::Pair& p) {
  const std::string script = ATTEND_INSTALL_SCRIPT;
  if (!std::filesystem::exists(script))
    throw std::runtime_error(std::string("the Bible modules are not installed and ") + script +
                             " is not here to install them: run apt-get install " + kBiblePackages);
  std::printf("installing %s with %s bible\n", kBiblePackages, script.c_str());
  std::fflush(stdout);
  run_program({script, "bible"});
  if (!modules_installed(p))
    throw std::runtime_error("after " + script + " bible, diatheke still lacks " + p.source_module + " or " +
                             p.target_module + " (diatheke -b system -k modulelist)");
}

std::vector<bible::Verse> export_module(const std::string& module) {
  const std::string text =
      run_program({"diatheke", "-b", module, "-f", "OSIS", "-k", "Genesis 1:1 - Revelation 22:21"}, 256 << 20);
  std::vector<bible::Verse> verses = bible::parse_export(text, "diatheke -b " + module);
  if (verses.size() < 20000)  // every module here has 31,102 verses or more
    throw std::runtime_error("diatheke -b " + module + " gave " + std::to_string(verses.size()) +
                             " verses of the 66 books, expected about 31,000: is the module damaged?");
  return verses;
}

std::string keys_text(const std::vector<std::string>& keys) {
  std::string text;
  for (const std::string& k : keys) text.append(k).append("\n");
  return text;
}

}  // namespace

int run_data_bible(const std::string& pair, const std::string& out) {
  const bible::Pair p = bible::modules(pair);
  if (!modules_installed(p)) install_modules(p);
  const bible::Corpus c = bible::align(export_module(p.source_module), export_module(p.target_module));
  const std::pair<std::string, const bible::Split*> splits[] = {
      {"train", &c.train}, {"dev", &c.dev}, {"test", &c.test}};
  std::vector<CheckpointFile> files;
  for (const auto& [name, split] : splits) {
    files.push_back({name + ".tsv", tsv_text(split->examples)});
    files.push_back({name + ".keys", keys_text(split->keys)});
  }
  // The six files replace the old ones as one unit (with a manifest), whatever is killed when.
  const DirectoryLock lock(out, "attend data bible");
  save_checkpoint(out, files);
  std::printf(
      "wrote %s/{train,dev,test}.tsv and .keys: %zu/%zu/%zu verse pairs (%s -> %s); %zu verses without a "
      "partner dropped\n",
      out.c_str(), c.train.examples.size(), c.dev.examples.size(), c.test.examples.size(), p.source_module.c_str(),
      p.target_module.c_str(), c.dropped);
  return 0;
}

}  // namespace attend::cli
