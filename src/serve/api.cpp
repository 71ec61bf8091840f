#include "serve/api.h"

#include <cmath>
#include <set>

#include "attend/eval/alignment.h"

namespace attend::serve {
namespace {

using nlohmann::json;

// Parses with a bound on nesting, checked as the parser descends (so deep input costs nothing).
json parse_body(const std::string& body, int max_depth) {
  if (body.empty()) throw ApiError(400, "the request body is empty (expected a JSON object)");
  const json::parser_callback_t limit = [max_depth](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= max_depth)
      throw ApiError(400, "the JSON is nested deeper than " + std::to_string(max_depth) + " levels");
    return true;
  };
  try {
    json j = json::parse(body, limit);
    if (!j.is_object())
      throw ApiError(400, "the request body must be a JSON object, got " + std::string(j.type_name()));
    return j;
  } catch (const json::parse_error& e) {
    throw ApiError(400, std::string("malformed JSON: ") + e.what());
  }
}

void refuse_unknown(const json& j, const std::set<std::string>& known) {
  for (const auto& [key, value] : j.items()) {
    if (known.count(key)) continue;
    std::string names;
    for (const std::string& k : known) names += (names.empty() ? "" : ", ") + k;
    throw ApiError(400, "unknown field '" + key + "' (fields: " + names + ")");
  }
}

int int_field(const json& j, const char* name, int fallback, int lo, int hi) {
  if (!j.contains(name)) return fallback;
  const json& v = j[name];
  if (!v.is_number_integer())
    throw ApiError(400, std::string("field '") + name + "' must be an integer, got " + dump(v));
  const auto x = v.get<int64_t>();
  if (x < lo || x > hi)
    throw ApiError(400, std::string("field '") + name + "' must be " + std::to_string(lo) + ".." + std::to_string(hi) +
                            ", got " + std::to_string(x));
  return static_cast<int>(x);
}

std::string string_field(const json& j, const char* name) {
  if (!j.contains(name)) throw ApiError(400, std::string("field '") + name + "' is missing");
  if (!j[name].is_string())
    throw ApiError(400, std::string("field '") + name + "' must be a string, got " + j[name].type_name());
  return j[name].get<std::string>();
}

std::vector<std::string> texts_field(const json& j, const RequestLimits& limits) {
  if (!j.contains("text")) throw ApiError(400, "field 'text' is missing (a string or a list of strings)");
  const json& v = j["text"];
  if (!v.is_string() && !v.is_array())
    throw ApiError(400, std::string("field 'text' must be a string or a list of strings, got ") + v.type_name());
  const json list = v.is_string() ? json::array({v}) : v;
  if (list.empty()) throw ApiError(400, "field 'text' is an empty list");
  if (list.size() > limits.max_inputs)
    throw ApiError(400, "field 'text' has " + std::to_string(list.size()) + " inputs; at most " +
                            std::to_string(limits.max_inputs) + " per request");
  std::vector<std::string> texts;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "field 'text'[" + std::to_string(i) + "]";
    if (!list[i].is_string()) throw ApiError(400, where + " must be a string, got " + list[i].type_name());
    texts.push_back(list[i].get<std::string>());
    if (texts.back().size() > limits.max_input_bytes)
      throw ApiError(400, where + " has " + std::to_string(texts.back().size()) + " bytes; at most " +
                              std::to_string(limits.max_input_bytes));
  }
  return texts;
}

// Attention weights to 6 decimals: what a picture or an argmax needs, at a third of the bytes.
json rounded(const std::vector<std::vector<float>>& weights) {
  json rows = json::array();
  for (const auto& row : weights) {
    json r = json::array();
    for (float w : row)
      r.push_back(std::isfinite(w) ? json(std::round(static_cast<double>(w) * 1e6) / 1e6) : json(nullptr));
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

TranslateRequest parse_translate_request(const std::string& body, bool align, const RequestLimits& limits) {
  const json j = parse_body(body, limits.max_depth);
  refuse_unknown(j, {"model", "text", "beam", "n_best", "alignment", "precision"});
  TranslateRequest r;
  r.model = string_field(j, "model");
  r.texts = texts_field(j, limits);
  r.beam = int_field(j, "beam", 1, 1, limits.max_beam);
  r.n_best = int_field(j, "n_best", 1, 1, r.beam);
  r.alignment = align;
  if (j.contains("alignment")) {
    if (!j["alignment"].is_boolean())
      throw ApiError(400, std::string("field 'alignment' must be true or false, got ") + dump(j["alignment"]));
    r.alignment = align || j["alignment"].get<bool>();
  }
  if (j.contains("precision")) {
    r.precision = string_field(j, "precision");
    if (r.precision != "fp32" && r.precision != "int8")
      throw ApiError(400, "field 'precision' must be \"fp32\" or \"int8\", got '" + r.precision + "'");
  }
  return r;
}

std::string parse_reload_request(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return "";
  const json j = parse_body(body, 2);
  refuse_unknown(j, {"model"});
  return j.contains("model") ? string_field(j, "model") : "";
}

json translation_json(const Translation& t, const TranslateRequest& request) {
  json j = {{"text", t.text}};
  if (!t.error.empty()) {
    j["error"] = t.error;
    return j;
  }
  j["score"] = t.score;
  j["log_prob"] = t.log_prob;
  if (request.n_best > 1) {
    json alternatives = json::array();
    for (const Translation::Alternative& a : t.nbest)
      alternatives.push_back({{"text", a.text}, {"score", a.score}, {"log_prob", a.log_prob}});
    j["n_best"] = std::move(alternatives);
  }
  if (request.alignment) {
    json pairs = json::array();
    for (const auto& [i, jj] : hard_alignment(t.attention, t.target_tokens.size())) pairs.push_back({i, jj});
    j["alignment"] = std::move(pairs);
    j["weights"] = rounded(t.attention);
    j["source_tokens"] = t.source_tokens;
    j["target_tokens"] = t.target_tokens;
  }
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(const std::string& message) { return dump(json{{"error", message}}) + "\n"; }

}  // namespace attend::serve
