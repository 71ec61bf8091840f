#include "attend/data/utf8.h"

#include <cstdio>
#include <stdexcept>

namespace attend {

size_t utf8_error_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf)
      len = 2;
    else if (c == 0xe0)
      len = 3, lo = 0xa0;  // no overlong 3-byte forms
    else if (c == 0xed)
      len = 3, hi = 0x9f;  // no surrogates
    else if (c >= 0xe1 && c <= 0xef)
      len = 3;
    else if (c == 0xf0)
      len = 4, lo = 0x90;  // no overlong 4-byte forms
    else if (c == 0xf4)
      len = 4, hi = 0x8f;  // nothing above U+10FFFF
    else if (c >= 0xf1 && c <= 0xf3)
      len = 4;
    else
      return i;
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    i += len;
  }
  return kValidUtf8;
}

std::string describe_utf8_error(std::string_view text) {
  const size_t at = utf8_error_offset(text);
  if (at == kValidUtf8) return "";
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[at]));
  return "invalid UTF-8 at byte " + std::to_string(at + 1) + " (" + hex + ")";
}

std::u32string utf8_to_codepoints(std::string_view text) {
  if (utf8_error_offset(text) != kValidUtf8) throw std::invalid_argument(describe_utf8_error(text));
  std::u32string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = p[i];
    const size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    char32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3f);
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string codepoints_to_utf8(std::u32string_view codepoints) {
  std::string out;
  out.reserve(codepoints.size());
  for (char32_t c : codepoints) {
    if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
      throw std::invalid_argument("codepoints_to_utf8: U+" + std::to_string(static_cast<uint32_t>(c)) +
                                  " is not a Unicode scalar value");
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

bool is_unicode_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

}  // namespace attend
