#include "attend/viz/heatmap.h"

#include <png.h>
#include <ft2build.h>
#include FT_FREETYPE_H

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "attend/io/files.h"

namespace attend {

void Alignment::validate() const {
  if (weights.size() != target.size()) {
    throw std::invalid_argument("alignment: " + std::to_string(weights.size()) + " weight rows for " +
                                std::to_string(target.size()) + " target tokens");
  }
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i].size() != source.size()) {
      throw std::invalid_argument("alignment: row " + std::to_string(i) + " has " + std::to_string(weights[i].size()) +
                                  " weights for " + std::to_string(source.size()) + " source tokens");
    }
  }
}

namespace {

// Visible stand-ins for tokens that would otherwise draw nothing.
std::string display(const std::string& token) {
  if (token == " ") return "\u2423";  // ␣
  if (token == "\t") return "\u21E5";
  return token;
}

// Decodes UTF-8 into code points (invalid bytes become U+FFFD).
std::vector<uint32_t> utf8(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    uint32_t cp = n == 1 ? c : c & (0xFF >> (n + 1));
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

struct Rgb {
  uint8_t r, g, b;
};

// White (0) to deep blue (1), through light blue: readable in print and on screens.
Rgb shade(float w) {
  w = std::clamp(w, 0.0f, 1.0f);
  const float stops[][3] = {{255, 255, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  const float x = w * 4.0f;
  const int i = std::min(3, static_cast<int>(x));
  const float f = x - i;
  auto mix = [&](int c) { return static_cast<uint8_t>(std::lround(stops[i][c] * (1 - f) + stops[i + 1][c] * f)); };
  return {mix(0), mix(1), mix(2)};
}

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(size_t(w) * h * 3, 255) {}
  int width() const { return w_; }
  int height() const { return h_; }
  void fill_rect(int x0, int y0, int w, int h, Rgb c) {
    for (int y = std::max(0, y0); y < std::min(h_, y0 + h); ++y)
      for (int x = std::max(0, x0); x < std::min(w_, x0 + w); ++x) set(x, y, c);
  }
  void blend(int x, int y, Rgb c, float alpha) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    uint8_t* p = &px_[(size_t(y) * w_ + x) * 3];
    p[0] = static_cast<uint8_t>(p[0] * (1 - alpha) + c.r * alpha);
    p[1] = static_cast<uint8_t>(p[1] * (1 - alpha) + c.g * alpha);
    p[2] = static_cast<uint8_t>(p[2] * (1 - alpha) + c.b * alpha);
  }
  void set(int x, int y, Rgb c) {
    uint8_t* p = &px_[(size_t(y) * w_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  const uint8_t* row(int y) const { return &px_[size_t(y) * w_ * 3]; }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

std::string font_path() {
  if (const char* env = std::getenv("ATTEND_FONT"); env && *env) {
    if (!std::filesystem::exists(env)) throw std::runtime_error(std::string("ATTEND_FONT: no such file ") + env);
    return env;
  }
  for (const char* p : {"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                        "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"})
    if (std::filesystem::exists(p)) return p;
  throw std::runtime_error("no font for alignment labels: install fonts-dejavu-core or set ATTEND_FONT to a .ttf file");
}

// FreeType text drawing; `vertical` draws bottom-to-top (rotated 90°), for column labels.
class Text {
 public:
  explicit Text(int pixel_size) {
    if (FT_Init_FreeType(&lib_)) throw std::runtime_error("FreeType: initialisation failed");
    const std::string path = font_path();
    if (FT_New_Face(lib_, path.c_str(), 0, &face_)) {
      FT_Done_FreeType(lib_);
      throw std::runtime_error(path + ": FreeType cannot load this font");
    }
    FT_Set_Pixel_Sizes(face_, 0, pixel_size);
  }
  ~Text() {
    FT_Done_Face(face_);
    FT_Done_FreeType(lib_);
  }
  Text(const Text&) = delete;
  Text& operator=(const Text&) = delete;

  int advance(const std::string& s) {
    int w = 0;
    for (uint32_t cp : utf8(s))
      if (!FT_Load_Char(face_, cp, FT_LOAD_DEFAULT)) w += static_cast<int>(face_->glyph->advance.x >> 6);
    return w;
  }
  int ascender() const { return static_cast<int>(face_->size->metrics.ascender >> 6); }

  // Horizontal: (x, baseline_y). Vertical: text runs upwards from (baseline_x, y).
  void draw(Canvas& c, const std::string& s, int x, int y, Rgb color, bool vertical = false) {
    for (uint32_t cp : utf8(s)) {
      if (FT_Load_Char(face_, cp, FT_LOAD_RENDER)) continue;
      const FT_GlyphSlot g = face_->glyph;
      const FT_Bitmap& bm = g->bitmap;
      for (unsigned r = 0; r < bm.rows; ++r)
        for (unsigned col = 0; col < bm.width; ++col) {
          const float a = bm.buffer[r * bm.pitch + col] / 255.0f;
          if (a <= 0) continue;
          const int gx = g->bitmap_left + static_cast<int>(col), gy = -g->bitmap_top + static_cast<int>(r);
          if (vertical)
            c.blend(x + gy, y - gx, color, a);  // rotate (gx, gy) by -90°
          else
            c.blend(x + gx, y + gy, color, a);
        }
      (vertical ? y : x) += static_cast<int>(g->advance.x >> 6) * (vertical ? -1 : 1);
    }
  }

 private:
  FT_Library lib_ = nullptr;
  FT_Face face_ = nullptr;
};

void png_append(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

// Encodes with libpng; returns false when libpng reported an error.
bool encode_png(const Canvas& c, std::string* out) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, out, png_append, nullptr);
  png_set_IHDR(png, info, c.width(), c.height(), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < c.height(); ++y) png_write_row(png, const_cast<png_bytep>(c.row(y)));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

namespace {

// `s` broken at spaces into lines of at most `width` pixels (a longer word gets a line of its own).
std::vector<std::string> wrap_words(const std::string& s, int width, Text& text) {
  std::vector<std::string> lines;
  std::string line;
  size_t begin = 0;
  while (begin <= s.size()) {
    size_t end = s.find(' ', begin);
    if (end == std::string::npos) end = s.size();
    const std::string word = s.substr(begin, end - begin);
    const std::string joined = line.empty() ? word : line + " " + word;
    if (!line.empty() && text.advance(joined) > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = joined;
    }
    begin = end + 1;
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// One heatmap panel: labelled grid, colour scale and title, drawn at (x0, y0) of a canvas.
class Panel {
 public:
  static constexpr int kCell = 26, kPad = 14, kFontPx = 15, kGap = 6, kScaleW = 16, kScaleGap = 18;
  static constexpr int kLineH = kFontPx + 6, kMinTitleW = 480;
  Panel(const Alignment& a, Text& text) : a_(a), text_(text) {
    a.validate();
    for (const auto& t : a.target) row_label_w_ = std::max(row_label_w_, text.advance(display(t)));
    for (const auto& s : a.source) col_label_h_ = std::max(col_label_h_, text.advance(display(s)));
    S_ = static_cast<int>(a.source.size()), T_ = static_cast<int>(a.target.size());
    const int legend_w = kScaleGap + kScaleW + 8 + text.advance("1.0");
    const int grid_w = kPad + row_label_w_ + kGap + S_ * kCell + legend_w + kPad;
    // A long title (a 40-word sentence and its translation) wraps to the width of the grid.
    const int title_w = std::max(grid_w, kMinTitleW) - 2 * kPad;
    if (!a.title.empty()) title_lines_ = wrap_words(a.title, title_w, text);
    int widest = 0;
    for (const auto& l : title_lines_) widest = std::max(widest, text.advance(l));
    title_h_ = title_lines_.empty() ? 0 : int(title_lines_.size()) * kLineH + 6;
    grid_x_ = kPad + row_label_w_ + kGap, grid_y_ = kPad + title_h_ + col_label_h_ + kGap;
    width_ = std::max(grid_w, kPad * 2 + widest);
    height_ = grid_y_ + std::max(T_ * kCell, 3 * kCell) + kPad;
  }
  int width() const { return width_; }
  int height() const { return height_; }

  void draw(Canvas& c, int x0, int y0) const {
    const Rgb ink{20, 20, 20}, grid{225, 225, 225};
    const int gx = x0 + grid_x_, gy = y0 + grid_y_;
    for (size_t i = 0; i < title_lines_.size(); ++i)
      text_.draw(c, title_lines_[i], x0 + kPad, y0 + kPad + text_.ascender() + int(i) * kLineH, ink);
    // Column labels, rotated, centred on their columns; row labels right-aligned.
    for (int s = 0; s < S_; ++s)
      text_.draw(c, display(a_.source[s]), gx + s * kCell + kCell / 2 + kFontPx / 3, gy - kGap, ink, /*vertical=*/true);
    for (int t = 0; t < T_; ++t) {
      const std::string l = display(a_.target[t]);
      text_.draw(c, l, gx - kGap - text_.advance(l), gy + t * kCell + kCell / 2 + kFontPx / 3, ink);
    }
    for (int t = 0; t < T_; ++t)
      for (int s = 0; s < S_; ++s) {
        c.fill_rect(gx + s * kCell, gy + t * kCell, kCell, kCell, grid);
        c.fill_rect(gx + s * kCell + 1, gy + t * kCell + 1, kCell - 1, kCell - 1, shade(a_.weights[t][s]));
      }
    // Colour scale 0..1 beside the grid.
    const int lx = gx + S_ * kCell + kScaleGap, lh = std::max(T_ * kCell, 3 * kCell);
    for (int y = 0; y < lh; ++y) c.fill_rect(lx, gy + y, kScaleW, 1, shade(1.0f - float(y) / std::max(1, lh - 1)));
    text_.draw(c, "1.0", lx + kScaleW + 6, gy + kFontPx - 3, ink);
    text_.draw(c, "0.0", lx + kScaleW + 6, gy + lh, ink);
  }

 private:
  const Alignment& a_;
  Text& text_;
  std::vector<std::string> title_lines_;
  int row_label_w_ = 0, col_label_h_ = 0, title_h_ = 0, S_ = 0, T_ = 0, grid_x_ = 0, grid_y_ = 0, width_ = 0,
      height_ = 0;
};

// Column widths and row heights of a grid of panels (rows may hold different numbers).
struct GridLayout {
  std::vector<int> x, y;  // left edge of each column, top edge of each row
  int width = 0, height = 0;
};
template <class Size>
GridLayout grid_layout(const std::vector<std::vector<Alignment>>& rows, Size size) {
  size_t columns = 0;
  for (const auto& r : rows) columns = std::max(columns, r.size());
  std::vector<int> col_w(columns, 0), row_h(rows.size(), 0);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) {
      const auto [w, h] = size(rows[i][j]);
      col_w[j] = std::max(col_w[j], w), row_h[i] = std::max(row_h[i], h);
    }
  GridLayout g;
  for (int w : col_w) g.x.push_back(g.width), g.width += w;
  for (int h : row_h) g.y.push_back(g.height), g.height += h;
  return g;
}

// An image beyond a sane size is an error before its pixels are allocated (a 10,000-token input
// would otherwise ask for gigabytes).
void check_image_size(int64_t width, int64_t height, const std::string& path) {
  constexpr int64_t kMaxSide = 16384;
  if (width > kMaxSide || height > kMaxSide)
    throw std::invalid_argument(path + ": the picture would be " + std::to_string(width) + " x " +
                                std::to_string(height) + " pixels, more than the limit of " + std::to_string(kMaxSide) +
                                " a side (too many tokens to draw; use --format pharaoh for long inputs)");
}

void check_grid(const std::vector<std::vector<Alignment>>& rows) {
  size_t n = 0;
  for (const auto& r : rows) n += r.size();
  if (n == 0) throw std::invalid_argument("alignment grid: no panels");
}

}  // namespace

namespace {
std::string grid_png(const std::vector<std::vector<Alignment>>& rows, const std::string& path) {
  check_grid(rows);
  Text text(Panel::kFontPx);
  const GridLayout g = grid_layout(rows, [&](const Alignment& a) {
    const Panel p(a, text);
    return std::pair{p.width(), p.height()};
  });
  check_image_size(g.width, g.height, path);
  Canvas c(g.width, g.height);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) Panel(rows[i][j], text).draw(c, g.x[j], g.y[i]);
  std::string bytes;
  if (!encode_png(c, &bytes)) throw std::runtime_error(path + ": PNG encoding failed");
  return bytes;
}
}  // namespace

void write_alignment_png(const std::string& path, const Alignment& a) {
  write_file_atomic(path, grid_png({{a}}, path));
}

namespace {
std::pair<int, int> svg_size(const Alignment& a) {
  const int cell = 26, left = 120, top = 110 + (a.title.empty() ? 0 : 24);
  return {left + static_cast<int>(a.source.size()) * cell + 20, top + static_cast<int>(a.target.size()) * cell + 20};
}
}  // namespace

std::string alignment_svg(const Alignment& a) {
  a.validate();
  auto esc = [](const std::string& s) {
    std::string o;
    for (char ch : s) {
      switch (ch) {
        case '&':
          o += "&amp;";
          break;
        case '<':
          o += "&lt;";
          break;
        case '>':
          o += "&gt;";
          break;
        case '"':
          o += "&quot;";
          break;
        default:
          o += ch;
      }
    }
    return o;
  };
  const int cell = 26, left = 120, top = 110 + (a.title.empty() ? 0 : 24);
  const int S = static_cast<int>(a.source.size()), T = static_cast<int>(a.target.size());
  const auto [width, height] = svg_size(a);
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"14\">\n<rect width=\"100%\" height=\"100%\" "
       "fill=\"white\"/>\n";
  if (!a.title.empty()) o << "<text x=\"10\" y=\"22\">" << esc(a.title) << "</text>\n";
  for (int s = 0; s < S; ++s) {
    const int x = left + s * cell + cell / 2 + 5, y = top - 6;
    o << "<text transform=\"translate(" << x << "," << y << ") rotate(-90)\">" << esc(display(a.source[s]))
      << "</text>\n";
  }
  for (int t = 0; t < T; ++t) {
    o << "<text x=\"" << left - 6 << "\" y=\"" << top + t * cell + cell / 2 + 5 << "\" text-anchor=\"end\">"
      << esc(display(a.target[t])) << "</text>\n";
    for (int s = 0; s < S; ++s) {
      const Rgb c = shade(a.weights[t][s]);
      o << "<rect x=\"" << left + s * cell << "\" y=\"" << top + t * cell << "\" width=\"" << cell << "\" height=\""
        << cell << "\" fill=\"rgb(" << int(c.r) << "," << int(c.g) << "," << int(c.b)
        << ")\" stroke=\"#e1e1e1\"><title>" << esc(a.target[t]) << " / " << esc(a.source[s]) << ": " << a.weights[t][s]
        << "</title></rect>\n";
    }
  }
  o << "</svg>\n";
  return o.str();
}

std::string alignment_grid_svg(const std::vector<std::vector<Alignment>>& rows) {
  check_grid(rows);
  const GridLayout g = grid_layout(rows, svg_size);
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << g.width << "\" height=\"" << g.height << "\">\n";
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) {
      std::string panel = alignment_svg(rows[i][j]);  // a nested <svg> placed by x and y
      panel.insert(4, " x=\"" + std::to_string(g.x[j]) + "\" y=\"" + std::to_string(g.y[i]) + "\"");
      o << panel;
    }
  o << "</svg>\n";
  return o.str();
}

void write_alignment_grid(const std::string& path, const std::vector<std::vector<Alignment>>& rows,
                          std::string format) {
  if (format.empty()) format = std::filesystem::path(path).extension().string();
  if (!format.empty() && format[0] == '.') format.erase(0, 1);
  if (format == "png") return write_file_atomic(path, grid_png(rows, path));
  if (format == "svg") {
    check_grid(rows);
    const GridLayout g = grid_layout(rows, svg_size);
    check_image_size(g.width, g.height, path);
    return write_file_atomic(
        path, rows.size() == 1 && rows[0].size() == 1 ? alignment_svg(rows[0][0]) : alignment_grid_svg(rows));
  }
  throw std::invalid_argument(path + ": unknown image type '" + format + "' (use .png or .svg)");
}

void write_alignment_image(const std::string& path, const Alignment& a) { write_alignment_grid(path, {{a}}); }

std::string alignment_terminal(const Alignment& a, bool color) {
  a.validate();
  static const char* kShades[] = {" ", "\u2591", "\u2592", "\u2593", "\u2588"};
  size_t label_w = 0;
  for (const auto& t : a.target) label_w = std::max(label_w, utf8(display(t)).size());
  std::ostringstream o;
  // Source tokens as a header, two columns per token (its first character; words are cut).
  o << std::string(label_w + 1, ' ');
  for (const auto& s : a.source) {
    const std::string d = display(s);
    const unsigned char c0 = static_cast<unsigned char>(d[0]);
    const size_t n = c0 < 0x80 ? 1 : (c0 >> 5) == 6 ? 2 : (c0 >> 4) == 14 ? 3 : 4;
    o << d.substr(0, n) << ' ';
  }
  o << '\n';
  for (size_t t = 0; t < a.target.size(); ++t) {
    const std::string l = display(a.target[t]);
    o << std::string(label_w - utf8(l).size(), ' ') << l << ' ';
    for (float w : a.weights[t]) {
      const int level = std::clamp(static_cast<int>(std::lround(w * 4.0f)), 0, 4);
      if (color) {
        const int grey = 232 + std::clamp(static_cast<int>(std::lround(w * 23.0f)), 0, 23);
        o << "\x1b[38;5;" << grey << "m" << kShades[level] << kShades[level] << "\x1b[0m";
      } else {
        o << kShades[level] << kShades[level];
      }
    }
    o << '\n';
  }
  return o.str();
}

}  // namespace attend
