// attend viz: `attend report`'s page: one self-contained HTML file (styles, script and data
// inlined; nothing fetched when it is opened) that shows how models trained and where they look.
//
// The page is drawn in the browser from one JSON document (the layout is the contract between
// this file and src/viz/report/report.js):
//   {"title", "generated", "warnings": [text],
//    "models": [{"name", "dir", "error" (the model could not be loaded; else absent),
//                "card": {...} (architecture, sizes, parameters, training settings, files),
//                "metrics": [metrics.jsonl records], "test": {...} or absent,
//                "maps": [{"name", "layer", "head"}], "subwords": bool,
//                "stats": {"monotonicity", "entropy", "diagonality", "steps"},
//                "samples": [{"source", "reference", "output", "correct", "error",
//                             "src": [tokens], "tgt": [tokens + "</s>"],
//                             "src_words", "tgt_words": [word index per token] (subwords only),
//                             "weights": packed matrix, "maps": [packed matrix] (several maps only),
//                             "trace": {"name": [value per row]} (what the mechanism exposes),
//                             "stats": {...}}]}]}
// A packed matrix is {"rows", "cols", "data"}: the weights in [0, 1] rounded to 1/255, one byte
// each, row-major, in base64 (a quarter of the size of JSON numbers; enough for colour and for
// two decimals on hover).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attend {

// [rows][cols] weights -> a packed matrix. Values outside [0, 1] are clamped and a non-finite one
// is an error (std::invalid_argument naming row and column): a picture must not hide a NaN.
nlohmann::json pack_weights(const std::vector<std::vector<float>>& weights);
// The inverse, for tests: [rows][cols] in steps of 1/255.
std::vector<std::vector<float>> unpack_weights(const nlohmann::json& packed);

// The page for `data` (the layout above). Text from the data cannot end the script element that
// holds it ("</script>" and "<!--" are escaped), and invalid UTF-8 in it is replaced (U+FFFD).
std::string report_html(const nlohmann::json& data);

}  // namespace attend
