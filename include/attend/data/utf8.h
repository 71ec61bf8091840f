// attend data: UTF-8 validation (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace attend {

inline constexpr size_t kValidUtf8 = std::string_view::npos;

// The offset of the first byte that is not part of valid UTF-8, or kValidUtf8.
size_t utf8_error_offset(std::string_view text);
// "" when valid, else e.g. "invalid UTF-8 at byte 7 (0xff)".
std::string describe_utf8_error(std::string_view text);

}  // namespace attend
