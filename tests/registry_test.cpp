// The mechanism registry: every registered mechanism is complete, reachable from every front end
// (config.json, the command line, Python's keywords) with every option it declares.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "attend/attention/registry.h"
#include "attend/io/files.h"
#include "attend/models/seq2seq.h"
#include "cli_run.h"

namespace attend {
namespace {

using testing::CliRun;
using testing::run;

// A value inside the option's range that is not its default.
std::string other_value(const MechanismOption& o) {
  if (o.type == MechanismOption::Type::kChoice)
    return o.choices.back() == o.format(o.default_value) ? o.choices.front() : o.choices.back();
  const double step = o.type == MechanismOption::Type::kInt ? 2.0 : 1.0;  // (+2 keeps odd widths odd)
  const double v = o.default_value + step <= o.max ? o.default_value + step : (o.default_value + o.min) / 2.0;
  return o.format(o.type == MechanismOption::Type::kInt ? std::floor(v) : v);
}

TEST(Registry, EveryMechanismIsCompleteAndUniquelyNamed) {
  std::set<std::string> names;
  for (const MechanismInfo& m : mechanisms()) {
    SCOPED_TRACE(m.name);
    EXPECT_TRUE(names.insert(m.name).second);
    for (const auto& a : m.aliases) EXPECT_TRUE(names.insert(a).second) << a;
    EXPECT_FALSE(m.summary.empty());
    EXPECT_FALSE(m.paper.empty());
    EXPECT_EQ(&find_mechanism(m.name), &m);
    for (const MechanismOption& o : m.options) {
      EXPECT_NO_THROW(o.parse(o.format(o.default_value), o.key)) << o.key << ": the default is out of its own range";
      EXPECT_THROW(o.parse("not-a-value", o.key), std::invalid_argument) << o.key;
      EXPECT_FALSE(o.help.empty()) << o.key;
    }
  }
  EXPECT_EQ(default_mechanism(), mechanisms().front().name);
  try {
    find_mechanism("monotonik");
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'monotonic'"), std::string::npos) << e.what();
  }
}

// Each option, set to a value other than its default, survives config.json both ways, and a
// model is built with it; an option of another mechanism is refused.
TEST(Registry, EveryOptionRoundTripsThroughConfigJson) {
  for (const MechanismInfo& m : mechanisms()) {
    SCOPED_TRACE(m.name);
    Seq2SeqConfig c;
    c.embedding = 4, c.hidden = 6, c.encoder_hidden = 3, c.src_vocab = 7, c.tgt_vocab = 7;
    c.attention.mechanism = m.name;
    c.attention.attention_dim = 5;
    for (const MechanismOption& o : m.options) c.attention.options[o.key] = o.parse(other_value(o), o.key);
    if (m.validate) {
      try {
        m.validate(c.attention);
      } catch (const std::invalid_argument&) {
        continue;  // (no such combination here)
      }
    }
    nlohmann::json j = c;
    for (const MechanismOption& o : m.options) ASSERT_TRUE(j.contains(o.key)) << o.key;
    const Seq2SeqConfig back = j.get<Seq2SeqConfig>();
    EXPECT_EQ(nlohmann::json(back), j);
    EXPECT_EQ(back.attention.options, c.attention.options);
    Rng rng(1);
    EXPECT_NO_THROW(Seq2Seq(back, rng));
    for (const MechanismInfo& other : mechanisms())
      for (const MechanismOption& o : other.options)
        if (!m.option(o.key)) {
          AttentionConfig bad = c.attention;
          bad.options[o.key] = o.default_value;
          EXPECT_THROW(bad.validate(), std::invalid_argument) << o.key;
        }
  }
}

// The command line has a flag for every option, and what it is given reaches config.json.
TEST(Registry, EveryOptionIsAFlagThatReachesTheModel) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("attend_registry_" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  {
    std::ofstream t(dir + "/t.tsv");
    for (int i = 0; i < 8; ++i) t << "abc\tabcabc\nba\tbaba\n";
  }
  const std::string help = run("train --help").output;
  size_t trained = 0;
  for (const MechanismInfo& m : mechanisms()) {
    SCOPED_TRACE(m.name);
    EXPECT_NE(help.find(m.summary), std::string::npos) << "--attention's help lists it";
    std::string flags;
    for (const MechanismOption& o : m.options) {
      EXPECT_NE(help.find(o.flag()), std::string::npos) << o.flag();
      flags += " " + o.flag() + " " + other_value(o);
    }
    const std::string out = dir + "/" + m.name;
    const CliRun r = run("train --task tsv --train " + dir + "/t.tsv --dev " + dir +
                         "/t.tsv --hidden 6 --embedding 4 "
                         "--attention-dim 4 --max-steps 1 --attention " +
                         m.name + (m.additive_only ? " --score additive" : "") + flags + " --out " + out);
    if (r.code != 0 && r.output.find("attention: ") != std::string::npos) ADD_FAILURE() << r.output;
    ASSERT_EQ(r.code, 0) << r.output;
    ++trained;
    const nlohmann::json config = nlohmann::json::parse(read_file(out + "/config.json"))["model"];
    EXPECT_EQ(config["attention"], m.name);
    for (const MechanismOption& o : m.options) {
      const std::string got =
          config[o.key].is_string() ? config[o.key].get<std::string>() : o.format(config[o.key].get<double>());
      EXPECT_EQ(got, other_value(o)) << o.key;
    }
  }
  EXPECT_EQ(trained, mechanisms().size());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace attend
