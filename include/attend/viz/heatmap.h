// attend viz: pictures of attention alignments.
#pragma once

#include <string>
#include <vector>

namespace attend {

struct Alignment {
  std::vector<std::string> source;          // column labels
  std::vector<std::string> target;          // row labels
  std::vector<std::vector<float>> weights;  // [target][source], each row a distribution
  std::string title;
  void validate() const;  // throws std::invalid_argument when the matrix does not fit the labels
};

// The alignment as a PNG heatmap with labelled axes: source tokens across the top, output
// tokens down the left, darker = more weight, and a colour scale. Fonts come from FreeType
// (DejaVu Sans, or the TrueType file named by $ATTEND_FONT). Written atomically.
void write_alignment_png(const std::string& path, const Alignment& a);
// The same as a standalone SVG document (text labels, one rect per cell).
std::string alignment_svg(const Alignment& a);
// PNG or SVG by the extension of `path` (.png | .svg); anything else throws.
void write_alignment_image(const std::string& path, const Alignment& a);
// Several alignments of one input in one picture: rows of panels, each with its own title (a
// Transformer's: the mean, then a row per layer with a panel per head). `format` "png" or "svg",
// or by the extension of `path` when empty. Over 16,384 pixels a side is an error.
void write_alignment_grid(const std::string& path, const std::vector<std::vector<Alignment>>& rows,
                          std::string format = "");
std::string alignment_grid_svg(const std::vector<std::vector<Alignment>>& rows);
// A Unicode block heatmap for the terminal (" ░▒▓█" shades; 256-colour background when color).
std::string alignment_terminal(const Alignment& a, bool color);

}  // namespace attend
