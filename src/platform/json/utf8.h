// UTF-8 checks shared by body parsing and validation: strict well-formedness and code point counts.
#pragma once

#include <cstddef>
#include <string_view>

namespace aether::platform::json {

// Offset of the first byte that is not part of a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are ill-formed), or npos when the text is valid.
std::size_t invalid_utf8_offset(std::string_view text);

// Number of code points in valid UTF-8 text (continuation bytes are not counted).
std::size_t count_code_points(std::string_view text);

}  // namespace aether::platform::json
