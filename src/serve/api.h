// attend serve: the JSON of the HTTP API. Requests are parsed strictly (every field checked for
// type and range, unknown fields refused, nesting and sizes bounded) into typed structs; errors
// carry the HTTP status and a message that names the field.
//
// POST /v1/translate, /v1/align:
//   {"model": "g2p", "text": ["...", ...] | "...", "beam": 1, "n_best": 1, "alignment": false,
//    "precision": "fp32"}
//   -> {"model": "g2p", "translations": [{"text", "score", "log_prob", ["n_best"], ["alignment",
//       "weights", "source_tokens", "target_tokens"], ["error"]}, ...]}
//   /v1/align always includes the alignment.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attend/models/translator.h"

namespace attend::serve {

// An error answered with `status` and {"error": message}.
struct ApiError : std::runtime_error {
  ApiError(int status, const std::string& message) : std::runtime_error(message), status(status) {}
  int status;
};

struct RequestLimits {
  size_t max_inputs = 64;         // texts per request
  size_t max_input_bytes = 2048;  // bytes per text
  int max_beam = 16;
  int max_depth = 4;  // JSON nesting (the API needs 2)
};

struct TranslateRequest {
  std::string model;
  std::vector<std::string> texts;
  int beam = 1, n_best = 1;
  bool alignment = false;
  std::string precision;  // "fp32" or "int8" when asked for (must be the model's); empty: the model's
};

// Throws ApiError(400) naming the field for malformed JSON, wrong types, out-of-range values and
// unknown fields.
TranslateRequest parse_translate_request(const std::string& body, bool align, const RequestLimits& limits);
// {"model": NAME} for POST /v1/models/reload; an empty body or no field means every model.
std::string parse_reload_request(const std::string& body);

// One element of "translations".
nlohmann::json translation_json(const Translation& t, const TranslateRequest& request);
// Serialised for the wire: invalid UTF-8 (never expected) is replaced, not thrown.
std::string dump(const nlohmann::json& j);
std::string error_body(const std::string& message);

}  // namespace attend::serve
