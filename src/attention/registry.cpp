#include "attend/attention/registry.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "../io/json_field.h"

namespace attend {

// Every file of src/attention/mechanisms/ defines register_mechanism_<file name>; CMake writes
// the list of them (mechanism_list.inc), so that a new file is all a new mechanism needs.
#define ATTEND_MECHANISM(name) void register_mechanism_##name(MechanismRegistry&);
#include "mechanism_list.inc"
#undef ATTEND_MECHANISM

namespace {

std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(10) << v;
  return s.str();
}

std::string must_be(const std::string& origin) { return origin.empty() ? "must be" : origin + " must be"; }

const MechanismRegistry& registry() {
  static const MechanismRegistry r = [] {
    MechanismRegistry reg;
#define ATTEND_MECHANISM(name) register_mechanism_##name(reg);
#include "mechanism_list.inc"
#undef ATTEND_MECHANISM
    reg.sort();
    return reg;
  }();
  return r;
}

}  // namespace

std::string MechanismOption::flag() const {
  std::string f = "--" + key;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}

std::string MechanismOption::range() const {
  if (type == Type::kChoice) {
    std::string r;
    for (const auto& c : choices) r.append(r.empty() ? "" : "|").append(c);
    return r;
  }
  std::string r(1, min_exclusive ? '(' : '[');
  r.append(number(min)).append(", ").append(number(max)).append("]");
  for (const auto& [word, value] : named_values) r += " or " + word;
  return r;
}

std::string MechanismOption::format(double v) const {
  for (const auto& [word, value] : named_values)
    if (v == value) return word;
  if (type == Type::kChoice) return v >= 0 && v < double(choices.size()) ? choices[static_cast<size_t>(v)] : number(v);
  return number(v);
}

double MechanismOption::parse(const std::string& text, const std::string& origin) const {
  for (const auto& [word, value] : named_values)
    if (text == word) return value;
  if (type == Type::kChoice) {
    for (size_t i = 0; i < choices.size(); ++i)
      if (choices[i] == text) return double(i);
    throw std::invalid_argument(must_be(origin) + " one of " + range() + ", got '" + text + "'");
  }
  size_t used = 0;
  double v = NAN;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !valid(v))
    throw std::invalid_argument(must_be(origin) + (type == Type::kInt ? " a whole number" : " a number") + " in " +
                                range() + ", got '" + text + "'");
  return v;
}

bool MechanismOption::valid(double v) const {
  for (const auto& [word, value] : named_values)
    if (v == value) return true;
  if (type == Type::kChoice) return v >= 0 && v < double(choices.size()) && v == std::floor(v);
  const bool whole = type != Type::kInt || v == std::floor(v);
  return whole && (min_exclusive ? v > min : v >= min) && v <= max;
}

const MechanismOption* MechanismInfo::option(const std::string& key) const {
  for (const auto& o : options)
    if (o.key == key) return &o;
  return nullptr;
}

void MechanismRegistry::add(MechanismInfo info) {
  std::vector<std::string> names = info.aliases;
  names.push_back(info.name);
  for (const auto& e : entries_)
    for (const auto& n : names)
      if (e.name == n || std::find(e.aliases.begin(), e.aliases.end(), n) != e.aliases.end())
        throw std::invalid_argument("mechanism registry: '" + n + "' is registered twice");
  if (!info.make) throw std::invalid_argument("mechanism registry: '" + info.name + "' cannot be built");
  entries_.push_back(std::move(info));
}

void MechanismRegistry::sort() {
  std::stable_sort(entries_.begin(), entries_.end(), [](const MechanismInfo& a, const MechanismInfo& b) {
    return a.rank != b.rank ? a.rank < b.rank : a.name < b.name;
  });
}

const std::vector<MechanismInfo>& mechanisms() { return registry().all(); }

const std::string& default_mechanism() { return mechanisms().front().name; }

std::vector<std::string> mechanism_names(bool with_aliases) {
  std::vector<std::string> names;
  for (const auto& m : mechanisms()) {
    names.push_back(m.name);
    if (with_aliases) names.insert(names.end(), m.aliases.begin(), m.aliases.end());
  }
  return names;
}

const MechanismInfo& find_mechanism(const std::string& name) {
  for (const auto& m : mechanisms())
    if (m.name == name || std::find(m.aliases.begin(), m.aliases.end(), name) != m.aliases.end()) return m;
  std::string known;
  for (const auto& n : mechanism_names(false)) known += (known.empty() ? "" : ", ") + n;
  const std::string near = closest_name(name, mechanism_names(true));
  throw std::invalid_argument("unknown attention '" + name + "'" +
                              (near.empty() ? "" : " (did you mean '" + near + "'?)") + "; this build has " + known);
}

MechanismOption window_option() {
  return {.key = "window",
          .type = MechanismOption::Type::kInt,
          .default_value = 5,
          .min = 0,
          .max = 1 << 20,
          .help = "half-width D of the window"};
}

std::string option_owners(const std::string& key) {
  std::string who;
  for (const auto& m : mechanisms())
    if (m.option(key)) who.append(who.empty() ? "" : ", ").append(m.name);
  return who;
}

std::vector<SharedOption> all_mechanism_options() {
  std::vector<SharedOption> out;
  for (const auto& m : mechanisms())
    for (const auto& o : m.options) {
      auto it = std::find_if(out.begin(), out.end(), [&](const SharedOption& s) { return s.option.key == o.key; });
      if (it == out.end())
        out.push_back({o, {m.name}});
      else
        it->mechanisms.push_back(m.name);
    }
  return out;
}

}  // namespace attend
