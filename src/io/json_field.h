// attend io (private): reading one field of a JSON object with errors that name it.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <algorithm>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace attend {

// j[name] as T, or `fallback` when absent. A missing field, a wrong type, a fraction or an
// out-of-range number for an int, or a number beyond float range throws std::invalid_argument
// "<what>: 'name' ..." with the value found (no silent casts).
template <class T>
T json_field(const nlohmann::json& j, const char* name, const char* what, std::optional<T> fallback = std::nullopt) {
  const std::string w = what;
  if (!j.is_object()) throw std::invalid_argument(w + ": expected a JSON object, got " + j.dump().substr(0, 60));
  auto it = j.find(name);
  if (it == j.end()) {
    if (fallback) return *fallback;
    throw std::invalid_argument(w + ": '" + name + "' is missing");
  }
  try {
    if constexpr (std::is_same_v<T, int>) {
      const bool fits = (it->is_number_unsigned() && it->template get<uint64_t>() <= uint64_t(INT32_MAX)) ||
                        (it->is_number_integer() && !it->is_number_unsigned() &&
                         it->template get<int64_t>() >= INT32_MIN && it->template get<int64_t>() <= INT32_MAX);
      if (!fits)
        throw std::invalid_argument(w + ": '" + name + "' must be a whole number within int, got " +
                                    it->dump().substr(0, 60));
    }
    if constexpr (std::is_same_v<T, float>) {
      if (!it->is_number() || !(std::fabs(it->template get<double>()) <= 3.0e38))
        throw std::invalid_argument(w + ": '" + name + "' must be a number within float range, got " +
                                    it->dump().substr(0, 60));
    }
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument(w + ": '" + name + "' has the wrong type: " + it->dump().substr(0, 60));
  }
}

// A float setting as the double JSON will print: the shortest decimal that reads back as the
// same float (0.2f is written 0.2, not 0.20000000298023224).
inline double json_float(float f) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf - 1, f);
  *r.ptr = '\0';
  return std::strtod(buf, nullptr);
}

// Levenshtein distance between two strings (bytes).
inline size_t edit_distance_chars(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// The known name closest to `name` by edit distance, for "did you mean" hints ("" if none is close).
template <class Names>
std::string closest_name(const std::string& name, const Names& known) {
  std::string best;
  size_t best_d = std::max<size_t>(2, name.size() / 3) + 1;
  for (const auto& k : known) {
    const size_t d = edit_distance_chars(name, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best;
}

// A field that is not one of `known` (a misspelling would otherwise be ignored and its default
// used) throws std::invalid_argument naming it and the closest known name.
template <class Names>
void reject_unknown_fields(const nlohmann::json& j, const Names& known, const char* what) {
  if (!j.is_object()) return;
  for (const auto& [key, value] : j.items()) {
    bool ok = false;
    for (const auto& k : known) ok = ok || key == k;
    if (ok) continue;
    const std::string near = closest_name(key, known);
    throw std::invalid_argument(std::string(what) + ": unknown field '" + key.substr(0, 60) + "'" +
                                (near.empty() ? "" : " (did you mean '" + near + "'?)"));
  }
}

inline void reject_unknown_fields(const nlohmann::json& j, std::initializer_list<const char*> known, const char* what) {
  reject_unknown_fields<std::initializer_list<const char*>>(j, known, what);
}

}  // namespace attend
