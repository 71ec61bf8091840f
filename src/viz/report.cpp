#include "attend/viz/report.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "report_assets.inc"  // kReportCss, kReportJs: src/viz/report/, embedded by CMake

namespace attend {

namespace {
constexpr size_t kMaxPackedBytes = size_t(1) << 30;  // what EVP_EncodeBlock's int lengths allow, with room
}  // namespace

nlohmann::json pack_weights(const std::vector<std::vector<float>>& weights) {
  const size_t rows = weights.size(), cols = rows ? weights[0].size() : 0;
  if (rows * cols > kMaxPackedBytes)
    throw std::invalid_argument("pack_weights: " + std::to_string(rows) + " x " + std::to_string(cols) +
                                " weights are more than a page can hold");
  std::string bytes(rows * cols, '\0');
  for (size_t r = 0; r < rows; ++r) {
    if (weights[r].size() != cols)
      throw std::invalid_argument("pack_weights: row " + std::to_string(r) + " has " +
                                  std::to_string(weights[r].size()) + " weights, row 0 has " + std::to_string(cols));
    for (size_t c = 0; c < cols; ++c) {
      const float w = weights[r][c];
      if (!std::isfinite(w))
        throw std::invalid_argument("pack_weights: weight (" + std::to_string(r) + ", " + std::to_string(c) + ") is " +
                                    std::to_string(w));
      bytes[r * cols + c] = static_cast<char>(std::lround(std::clamp(w, 0.0f, 1.0f) * 255.0f));
    }
  }
  std::string b64(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  b64.resize(static_cast<size_t>(n));
  return {{"rows", rows}, {"cols", cols}, {"data", b64}};
}

std::vector<std::vector<float>> unpack_weights(const nlohmann::json& packed) {
  const size_t rows = packed.at("rows").get<size_t>(), cols = packed.at("cols").get<size_t>();
  const std::string b64 = packed.at("data").get<std::string>();
  if (rows * cols > kMaxPackedBytes || b64.size() != 4 * ((rows * cols + 2) / 3))
    throw std::invalid_argument("unpack_weights: " + std::to_string(b64.size()) + " base64 characters for " +
                                std::to_string(rows) + " x " + std::to_string(cols) + " weights");
  std::string bytes(b64.size() / 4 * 3 + 1, '\0');
  if (EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                      reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size())) < 0)
    throw std::invalid_argument("unpack_weights: the data is not base64");
  std::vector<std::vector<float>> out(rows, std::vector<float>(cols));
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) out[r][c] = static_cast<unsigned char>(bytes[r * cols + c]) / 255.0f;
  return out;
}

namespace {

// JSON that can sit inside <script type="application/json">: no "</" (which could close the
// element) and no "<!--" (which changes how the element's end is found). '<' only occurs inside
// JSON strings, where \u003c means the same character.
std::string script_safe_json(const nlohmann::json& data) {
  const std::string text = data.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + text.size() / 64);
  for (char c : text) out += c == '<' ? std::string("\\u003c") : std::string(1, c);
  return out;
}

// Text for an HTML element's content (the title).
std::string html_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string report_html(const nlohmann::json& data) {
  const std::string title = data.value("title", std::string("attend report"));
  // The title is dumped through the same replacing handler, so that invalid UTF-8 in it cannot
  // reach the page either.
  const std::string safe_title = nlohmann::json(title).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string page =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta name=\"generator\" content=\"attend report\">\n<title>" +
      html_text(nlohmann::json::parse(safe_title).get<std::string>()) + "</title>\n<style>\n";
  page += kReportCss;
  page +=
      "</style>\n</head>\n<body>\n"
      "<noscript><p class=\"warning\">This report draws its charts and heatmaps with JavaScript; "
      "open it in a browser with JavaScript enabled.</p></noscript>\n"
      "<main id=\"report\"></main>\n<script type=\"application/json\" id=\"report-data\">";
  page += script_safe_json(data);
  page += "</script>\n<script>\n";
  page += kReportJs;
  page += "</script>\n</body>\n</html>\n";
  return page;
}

}  // namespace attend
