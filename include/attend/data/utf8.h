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

// Code points of valid UTF-8 and back; throws std::invalid_argument with describe_utf8_error's
// message for invalid text (or a code point above U+10FFFF or a surrogate).
std::u32string utf8_to_codepoints(std::string_view text);
std::string codepoints_to_utf8(std::u32string_view codepoints);
// What Python's str.isspace() accepts: the split points of str.split(), which sacrebleu's
// tokenizers use.
bool is_unicode_space(char32_t c);

}  // namespace attend
