// attend attention: the registry of mechanisms. Each mechanism is one file in
// src/attention/mechanisms/ holding one self-describing entry: its names, paper, options (with
// their type, default, range, help and config.json key) and how to build it. Config parsing and
// validation, config.json, the command line's flags and help, and Python's keyword arguments
// and docstrings all iterate over the entries instead of naming mechanisms; a mechanism's state
// and extra loss terms are part of its class (mechanism.h).
//
// Adding a mechanism: a new file src/attention/mechanisms/NAME.cpp defining
//   void register_mechanism_NAME(MechanismRegistry& r) { r.add({...}); }
// CMake finds the file and calls the function (no other file changes).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attend/attention/mechanism.h"

namespace attend {

// One setting of a mechanism. The value is a double in AttentionConfig::options (ints are whole
// numbers; a choice is the index of its name).
struct MechanismOption {
  enum class Type { kInt, kFloat, kChoice };
  std::string key;  // config.json key and Python keyword ("window"); flag --window
  Type type = Type::kFloat;
  double default_value = 0.0;
  double min = 0.0, max = 0.0;                                             // valid range, inclusive
  std::string help;                                                        // one line for --help and docstrings
  std::vector<std::string> choices;                                        // kChoice: the names, in index order
  bool min_exclusive = false;                                              // (min, max] instead of [min, max]
  std::vector<std::pair<std::string, double>> named_values;                // words that stand for a value ("auto" = 0)
  std::string flag() const;                                                // "--" + key with '_' as '-'
  std::string range() const;                                               // "[0, 1]", "(0, 1000]", "reinforce|gumbel"
  std::string format(double v) const;                                      // a value as the user writes it
  double parse(const std::string& text, const std::string& origin) const;  // checked, throws naming origin
  bool valid(double v) const;  // within the type, range, choices or named values
};

// A parameter array that Python's attend.attention takes for this mechanism (and the name of the
// parameter it fills). `sizes` names the options that the array's dimensions set, in order
// ("" = a dimension checked but setting nothing, "attention_dim" = the additive size A).
struct MechanismArray {
  std::string kwarg;      // "Wp"
  std::string parameter;  // "position.W.weight"
  std::string shape;      // "[Dq, A]", for the docstring
  std::vector<std::string> sizes;
};

struct MechanismInfo {
  int rank = 100;                    // where it stands in lists (help, errors): the classic ones first
  std::string name;                  // as the user writes it: local-p
  std::vector<std::string> aliases;  // other names it goes by (soft: global, dynamic)
  std::string summary;               // one line: what it does
  std::string paper;                 // "Luong et al. 2015, eqs. 9-10"
  std::vector<MechanismOption> options;
  std::vector<MechanismArray> arrays;
  // What step() puts in AttentionResult::trace, one name per column, each a source position
  // (drawn over the heatmap by attend report), e.g. {"predicted centre p_t"}; empty for none.
  std::vector<std::string> trace;
  bool additive_only = false;  // extends the additive score (location, coverage)
  bool needs_summary = false;  // reads the encoder summary (static)
  std::function<std::shared_ptr<AttentionMechanism>(const AttentionConfig&, int query_dim, int key_dim, Rng&)> make;
  // Settings measured on the training data before a model is built (local-m's position rate
  // "auto"): sets options from the pairs' (source, target) lengths and returns a message, or "".
  std::function<std::string(AttentionConfig&, const std::vector<std::pair<int, int>>& lengths)> fit_to_data;
  // Checks that go beyond each option's range (local-p's window or sigma, location's odd width);
  // throws std::invalid_argument.
  std::function<void(const AttentionConfig&)> validate;
  const MechanismOption* option(const std::string& key) const;  // null if it has none of that name
};

class MechanismRegistry {
 public:
  void add(MechanismInfo info);  // throws on a duplicate name or alias
  void sort();                   // by rank, then name
  const std::vector<MechanismInfo>& all() const { return entries_; }

 private:
  std::vector<MechanismInfo> entries_;
};

// The default mechanism: the first by rank (soft attention).
const std::string& default_mechanism();
// Every registered mechanism, by rank (then name).
const std::vector<MechanismInfo>& mechanisms();
// By name or alias; an unknown name throws std::invalid_argument listing the known ones (and the
// closest).
const MechanismInfo& find_mechanism(const std::string& name);
// Every name and alias, for choice lists.
std::vector<std::string> mechanism_names(bool with_aliases = true);
// The window half-width D that the local mechanisms share (--window, default 5).
MechanismOption window_option();

// Every option key any mechanism has, once, with the mechanisms that have it ("local-m, local-p").
struct SharedOption {
  MechanismOption option;
  std::vector<std::string> mechanisms;
};
std::vector<SharedOption> all_mechanism_options();
// The mechanisms that have option `key`, as "local-m, local-p" ("" for none).
std::string option_owners(const std::string& key);

}  // namespace attend
