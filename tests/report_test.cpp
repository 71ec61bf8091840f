// attend viz: the report page's data: packed weights round-trip within 1/510, a non-finite weight
// is refused, and nothing in the data can end the script element that holds it. (The page in a
// browser: tests/browser/test_report.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "attend/viz/report.h"

namespace attend {
namespace {

TEST(ReportWeights, PackedWeightsRoundTripWithinHalfAStep) {
  const std::vector<std::vector<float>> w = {{0.0f, 0.25f, 0.75f}, {1.0f, 0.123f, 0.999f}, {0.5f, 0.001f, 0.4f}};
  const nlohmann::json packed = pack_weights(w);
  EXPECT_EQ(packed["rows"], 3);
  EXPECT_EQ(packed["cols"], 3);
  EXPECT_EQ(packed["data"].get<std::string>().size(), 12u);  // 9 bytes in base64
  const auto back = unpack_weights(packed);
  ASSERT_EQ(back.size(), 3u);
  for (size_t r = 0; r < 3; ++r)
    for (size_t c = 0; c < 3; ++c) EXPECT_NEAR(back[r][c], w[r][c], 0.5 / 255 + 1e-7) << r << "," << c;
}

TEST(ReportWeights, EveryLengthSurvivesBase64Padding) {
  for (size_t cols = 1; cols <= 7; ++cols) {
    std::vector<std::vector<float>> w(1, std::vector<float>(cols));
    for (size_t c = 0; c < cols; ++c) w[0][c] = static_cast<float>(c + 1) / 8.0f;
    const auto back = unpack_weights(pack_weights(w));
    ASSERT_EQ(back[0].size(), cols);
    for (size_t c = 0; c < cols; ++c) EXPECT_NEAR(back[0][c], w[0][c], 0.5 / 255 + 1e-7) << cols;
  }
}

TEST(ReportWeights, OutOfRangeIsClampedAndNonFiniteIsAnError) {
  const auto back = unpack_weights(pack_weights({{-0.5f, 1.5f}}));
  EXPECT_EQ(back[0][0], 0.0f);
  EXPECT_EQ(back[0][1], 1.0f);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    try {
      pack_weights({{0.5f, 0.5f}, {0.1f, bad}});
      FAIL() << "no error for " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("(1, 1)"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(pack_weights({{0.5f, 0.5f}, {0.1f}}), std::invalid_argument);  // ragged
  EXPECT_THROW(unpack_weights({{"rows", 2}, {"cols", 2}, {"data", "AAAA"}}), std::invalid_argument);
}

TEST(ReportPage, TextInTheDataCannotEndTheScriptElement) {
  const std::string hostile = "</script><script>alert(1)</script><!-- </SCRIPT >";
  const nlohmann::json data = {{"title", "<b>" + hostile}, {"models", nlohmann::json::array({{{"name", hostile}}})}};
  const std::string page = report_html(data);
  const size_t start = page.find("id=\"report-data\">");
  ASSERT_NE(start, std::string::npos);
  const size_t end = page.find("</script>", start);
  const std::string json = page.substr(start + 17, end - start - 17);
  EXPECT_EQ(json.find('<'), std::string::npos) << json;
  EXPECT_EQ(nlohmann::json::parse(json), data);  // the same document, read back
  EXPECT_NE(page.find("<title>&lt;b&gt;&lt;/script&gt;"), std::string::npos);
}

TEST(ReportPage, InvalidUtf8IsReplacedNotAnError) {
  const nlohmann::json data = {{"title", std::string("bad \xff byte")}, {"models", nlohmann::json::array()}};
  const std::string page = report_html(data);
  EXPECT_NE(page.find("bad \xEF\xBF\xBD byte"), std::string::npos);  // U+FFFD
  EXPECT_EQ(page.find('\xff'), std::string::npos);
}

TEST(ReportPage, TheScriptAndStylesAreInline) {
  const std::string page = report_html({{"models", nlohmann::json::array()}});
  EXPECT_NE(page.find("<style>"), std::string::npos);
  EXPECT_NE(page.find("function heatmap("), std::string::npos);
  for (const char* remote : {"src=\"http", "href=\"http", "@import", "url(http"})
    EXPECT_EQ(page.find(remote), std::string::npos) << remote;
}

}  // namespace
}  // namespace attend
