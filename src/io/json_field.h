// attend io (private): reading one field of a JSON object with errors that name it.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

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
        throw std::invalid_argument(w + ": '" + name + "' must be a whole number within int, got " + it->dump().substr(0, 60));
    }
    if constexpr (std::is_same_v<T, float>) {
      if (!it->is_number() || !(std::fabs(it->template get<double>()) <= 3.0e38))
        throw std::invalid_argument(w + ": '" + name + "' must be a number within float range, got " + it->dump().substr(0, 60));
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

}  // namespace attend
