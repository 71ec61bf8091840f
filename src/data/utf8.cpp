#include "attend/data/utf8.h"

#include <cstdio>

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

}  // namespace attend
