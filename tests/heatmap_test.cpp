// attend viz: the PNG heatmap keeps its shape for long sentences: a long title wraps to the
// width of the grid instead of stretching the picture.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "attend/io/files.h"
#include "attend/viz/heatmap.h"

namespace attend {
namespace {

// Width and height from a PNG's IHDR chunk (big-endian, at bytes 16 and 20).
std::pair<int, int> png_size(const std::string& png) {
  auto be32 = [&](size_t at) {
    int v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(png.at(at + i));
    return v;
  };
  return {be32(16), be32(20)};
}

TEST(Heatmap, ALongTitleWrapsToTheGridWidth) {
  Alignment a;
  a.source = {"a", "b", "c"}, a.target = {"x", "y"};
  a.weights = {{1, 0, 0}, {0, 0.5f, 0.5f}};
  const std::string path = ::testing::TempDir() + "/attend_heatmap_" + std::to_string(::getpid()) + ".png";
  write_alignment_png(path, a);
  const auto [w0, h0] = png_size(read_file(path));
  a.title = "w";
  for (int i = 0; i < 80; ++i) a.title += " word";  // about 40 words each side of a verse
  write_alignment_png(path, a);
  const auto [w, h] = png_size(read_file(path));
  EXPECT_LE(w, std::max(w0, 480)) << "the title stretched the picture";
  EXPECT_GT(h, h0 + 4 * 20) << "the title should take several lines";
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace attend
